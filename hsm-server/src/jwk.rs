//! Public keys as RFC 7517 JSON Web Keys (RFC 7518 §6 for EC and RSA, RFC 8037 for Ed25519).

use base64::Engine;
use keyward_hsm::KeySpec;
use serde_json::{json, Value};

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The subjectPublicKey BIT STRING's bytes of an SPKI (RFC 5280 §4.1.2.7), decoded with
/// RustCrypto's `spki`.
fn spk(spki: &[u8]) -> Option<&[u8]> {
    use der::Decode;
    spki::SubjectPublicKeyInfoRef::from_der(spki)
        .ok()?
        .subject_public_key
        .as_bytes()
}

/// The JWK of a public key, or `None` for types without one here.
pub(crate) fn jwk(spec: KeySpec, spki: &[u8]) -> Option<Value> {
    let key = spk(spki)?;
    match spec {
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 => {
            let (crv, n) = match spec {
                KeySpec::EcP256 => ("P-256", 32),
                KeySpec::EcP384 => ("P-384", 48),
                _ => ("P-521", 66),
            };
            if key.len() != 1 + 2 * n || key[0] != 4 {
                return None;
            }
            Some(
                json!({"kty": "EC", "crv": crv, "x": b64url(&key[1..1 + n]), "y": b64url(&key[1 + n..])}),
            )
        }
        KeySpec::Ed25519 => Some(json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(key)})),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            // RSAPublicKey (RFC 8017 §A.1.1); the integers without leading zero bytes.
            use der::Decode;
            let rsa = pkcs1::RsaPublicKey::from_der(key).ok()?;
            Some(json!({
                "kty": "RSA",
                "n": b64url(rsa.modulus.as_bytes()),
                "e": b64url(rsa.public_exponent.as_bytes()),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spki_of(spec: KeySpec) -> Vec<u8> {
        let hsm = keyward_hsm::test_util::TestHsm::new();
        let me = hsm.service();
        let t = keyward_hsm::KeyTemplate::labelled("k");
        let (_, public) = hsm.generate_key_pair(&me, spec, &t, &t).unwrap();
        hsm.public_key_spki(&me, public.handle).unwrap()
    }

    #[test]
    fn rsa_and_ec_keys_become_rfc_7518_jwks() {
        use base64::Engine;
        let rsa = jwk(KeySpec::Rsa2048, &spki_of(KeySpec::Rsa2048)).unwrap();
        assert_eq!(
            (rsa["kty"].as_str(), rsa["e"].as_str()),
            (Some("RSA"), Some("AQAB"))
        );
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(rsa["n"].as_str().unwrap())
            .unwrap();
        assert_eq!(n.len(), 256, "no leading zero byte, 2048 bits");
        assert!(n[0] & 0x80 != 0);
        let ec = jwk(KeySpec::EcP384, &spki_of(KeySpec::EcP384)).unwrap();
        assert_eq!(ec["crv"], "P-384");
        assert_eq!(ec["x"].as_str().unwrap().len(), 64, "48 bytes in base64url");
        assert_eq!(jwk(KeySpec::EcP256, b"not an spki"), None);
    }
}
