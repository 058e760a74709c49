//! Reference PEM files: a PEM block that names an HSM key and holds no key material, for use
//! where tools expect a key file (CloudHSM's "fake PEM", without its pitfalls: nothing in it
//! can be mistaken for key bytes).
//!
//! ```text
//! -----BEGIN KEYWARD KEY REFERENCE-----
//! base64 of {"v":1,"label":"web","handle":123,"spec":"ec-p256","spki_sha256":"<64 hex>"}
//! -----END KEYWARD KEY REFERENCE-----
//! ```
//!
//! `spki_sha256` is SHA-256 over the key's SubjectPublicKeyInfo DER: whoever resolves the
//! reference checks it, so a reference can never select another key of the same label.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The PEM label of a reference file.
pub const REFERENCE_PEM_TAG: &str = "KEYWARD KEY REFERENCE";

/// What a reference file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyReference {
    /// Format version, 1.
    pub v: u32,
    /// The private key's label.
    pub label: String,
    /// Its handle on the HSM that wrote the file (informative: handles are per store).
    pub handle: u64,
    /// Its spec, e.g. `ec-p256`.
    pub spec: String,
    /// SHA-256 of the key's SubjectPublicKeyInfo DER, lower-case hex.
    pub spki_sha256: String,
}

/// SHA-256 of `spki_der`, lower-case hex.
pub fn spki_sha256(spki_der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        spki_der,
    ))
}

impl KeyReference {
    /// The reference as a PEM block.
    pub fn to_pem(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        pem::encode(&pem::Pem::new(REFERENCE_PEM_TAG, json))
    }

    /// Parses a reference PEM block.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if it is not one (including any other PEM, e.g. a private key).
    pub fn from_pem(text: &[u8]) -> Result<Self> {
        let block = pem::parse(text).map_err(|_| Error::invalid("not a PEM file"))?;
        if block.tag() != REFERENCE_PEM_TAG {
            return Err(Error::invalid(format!(
                "expected a \"{REFERENCE_PEM_TAG}\" PEM block, found \"{}\"",
                block.tag()
            )));
        }
        let r: KeyReference = serde_json::from_slice(block.contents())
            .map_err(|_| Error::invalid("the key reference does not decode"))?;
        if r.v != 1 || r.spki_sha256.len() != 64 {
            return Err(Error::invalid("unsupported key reference version"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r = KeyReference {
            v: 1,
            label: "web".into(),
            handle: 7,
            spec: "ec-p256".into(),
            spki_sha256: spki_sha256(b"x"),
        };
        let pem = r.to_pem();
        assert!(pem.starts_with("-----BEGIN KEYWARD KEY REFERENCE-----"));
        assert_eq!(KeyReference::from_pem(pem.as_bytes()).unwrap(), r);
        let other = pem.replace("KEYWARD KEY REFERENCE", "PRIVATE KEY");
        assert_eq!(
            KeyReference::from_pem(other.as_bytes()).unwrap_err().code(),
            "invalid_input"
        );
        assert!(KeyReference::from_pem(b"junk").is_err());
    }
}
