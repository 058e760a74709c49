//! Ciphertexts and signatures with the key version that made them: `kw:vN:BASE64`, after
//! Vault transit's `vault:vN:` prefix.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The prefix of the self-describing form: `kw:v` + version + `:` + standard padded base64.
pub const VERSIONED_PREFIX: &str = "kw:v";

/// A ciphertext or signature as text: either the self-describing form `kw:vN:BASE64`, which
/// carries the key version N (1 or more, decimal), or bare standard padded base64, whose
/// version comes from the request's `key_version` field, else is 1 (what every ciphertext and
/// signature was before keys had versions, so older clients keep working with keys that were
/// never rotated). Kept as received and decoded where it is used, as [`crate::Base64`] is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionedBase64(String);

/// Why a [`VersionedBase64`] does not decode; `Display` says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidVersioned(&'static str);

impl fmt::Display for InvalidVersioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidVersioned {}

impl VersionedBase64 {
    /// `bytes` made by key version `key_version`, as `kw:vN:BASE64`.
    pub fn new(key_version: u32, bytes: &[u8]) -> Self {
        VersionedBase64(format!(
            "{VERSIONED_PREFIX}{key_version}:{}",
            STANDARD.encode(bytes)
        ))
    }

    /// `bytes` as bare base64 (no version: see the type's rules).
    pub fn bare(bytes: &[u8]) -> Self {
        VersionedBase64(STANDARD.encode(bytes))
    }

    /// Text as received, e.g. a `kw:v2:...` string a client kept.
    pub fn from_text(text: impl Into<String>) -> Self {
        VersionedBase64(text.into())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The version the text carries (`None` for bare base64) and the bytes.
    ///
    /// # Errors
    /// [`InvalidVersioned`] for a malformed prefix, version 0, or bytes that are not standard
    /// padded base64.
    pub fn decode(&self) -> Result<(Option<u32>, Vec<u8>), InvalidVersioned> {
        let (version, b64) = match self.0.strip_prefix(VERSIONED_PREFIX) {
            Some(rest) => {
                let (n, b64) = rest
                    .split_once(':')
                    .ok_or(InvalidVersioned("expected kw:vN:BASE64"))?;
                let plain_digits = !n.is_empty()
                    && n.len() <= 10
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && !n.starts_with('0');
                let v = plain_digits
                    .then(|| n.parse::<u32>().ok())
                    .flatten()
                    .ok_or(InvalidVersioned(
                        "the key version of kw:vN: is a decimal number from 1",
                    ))?;
                (Some(v), b64)
            }
            None => (None, self.0.as_str()),
        };
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| InvalidVersioned("not standard padded base64"))?;
        Ok((version, bytes))
    }

    /// The key version and bytes, with the version from the text, else from `key_version` (a
    /// request's separate field), else 1.
    ///
    /// # Errors
    /// As [`decode`](Self::decode); [`InvalidVersioned`] when the text and `key_version` name
    /// different versions, or `key_version` is 0.
    pub fn decode_with(
        &self,
        key_version: Option<u32>,
    ) -> Result<(u32, Vec<u8>), InvalidVersioned> {
        let (carried, bytes) = self.decode()?;
        let version = match (carried, key_version) {
            (Some(a), Some(b)) if a != b => {
                return Err(InvalidVersioned(
                    "the kw:vN: prefix and key_version name different versions",
                ))
            }
            (_, Some(0)) => return Err(InvalidVersioned("key_version is 1 or more")),
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => 1,
        };
        Ok((version, bytes))
    }
}

impl fmt::Debug for VersionedBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionedBase64({:?})", self.0)
    }
}

impl fmt::Display for VersionedBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_text_round_trips_and_bare_base64_is_version_1() {
        let v = VersionedBase64::new(2, b"\x00\x01ciphertext");
        assert!(v.as_str().starts_with("kw:v2:"), "{v}");
        assert_eq!(
            v.decode().unwrap(),
            (Some(2), b"\x00\x01ciphertext".to_vec())
        );
        assert_eq!(v.decode_with(None).unwrap().0, 2);
        assert_eq!(v.decode_with(Some(2)).unwrap().0, 2);
        let bare = VersionedBase64::bare(b"abc");
        assert_eq!(bare.decode_with(None).unwrap(), (1, b"abc".to_vec()));
        assert_eq!(bare.decode_with(Some(7)).unwrap().0, 7);
        for bad in [
            "kw:v0:YWJj",
            "kw:v:YWJj",
            "kw:v02:YWJj",
            "kw:v-1:YWJj",
            "kw:v99999999999:YWJj",
            "kw:v2",
            "kw:v2:not base64",
            "not base64",
        ] {
            assert!(VersionedBase64::from_text(bad).decode().is_err(), "{bad}");
        }
        assert!(v.decode_with(Some(3)).is_err());
        assert!(bare.decode_with(Some(0)).is_err());
    }
}
