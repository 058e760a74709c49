//! Names the key type that a PKCS#8 private key (RFC 5958) or a SubjectPublicKeyInfo (RFC 5280
//! §4.1.2.7) holds, for the message that refuses a type the HSM does not take ("got
//! secp256k1"). Reads only the algorithm identifier (and an RSA modulus's length): the words it
//! returns never contain key bytes.

use crate::{KeySpec, Result};

/// The type of a PKCS#8 private key (RFC 5958), checked as the HSM checks a key it unwraps, so
/// that a client refuses an unsupported key before it sends or creates anything.
///
/// # Errors
/// [`crate::Error::UnsupportedKeyType`] naming the type (e.g. `EC secp256k1`) and the types
/// the HSM takes; [`crate::Error::InvalidInput`] for bytes that are no valid private key.
pub fn private_key_spec(pkcs8: &[u8]) -> Result<KeySpec> {
    let copy = zeroize::Zeroizing::new(pkcs8.to_vec());
    Ok(crate::material::Material::from_pkcs8(None, copy)?.spec())
}

/// The asymmetric key types the HSM takes, as an error message lists them.
pub(crate) const SUPPORTED: &str =
    "RSA 2048, 3072 or 4096 bits, EC P-256, P-384 or P-521, and Ed25519";

/// One DER element: (tag, contents, the bytes after it); `None` when malformed.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The element at the start of `input` if it has `tag`: (contents, rest).
fn expect(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(input)?;
    (t == tag).then_some((content, rest))
}

/// An OBJECT IDENTIFIER's contents in dotted decimal (X.690 §8.19).
fn dotted(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == oid.len() {
            return None;
        }
    }
    (!arcs.is_empty()).then(|| {
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// The bit length of a DER INTEGER's contents (an RSA modulus).
fn bits(integer: &[u8]) -> usize {
    let Some(start) = integer.iter().position(|&b| b != 0) else {
        return 0;
    };
    (integer.len() - start) * 8 - integer[start].leading_zeros() as usize
}

fn curve_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.10" => "secp256k1",
        "1.3.132.0.33" => "P-224",
        "1.2.840.10045.3.1.1" => "P-192",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1",
        "1.3.36.3.3.2.8.1.1.13" => "brainpoolP512r1",
        "1.2.156.10197.1.301" => "SM2",
        _ => return None,
    })
}

/// Words for an AlgorithmIdentifier; `rsa_modulus` gives the RSA modulus once asked.
fn describe(algorithm: &[u8], rsa_modulus: impl FnOnce() -> Option<usize>) -> Option<String> {
    let (oid, params) = expect(0x06, algorithm)?;
    let oid = dotted(oid)?;
    let rsa = |name: &str| match rsa_modulus() {
        Some(b) => format!("{name} {b} bits"),
        None => name.to_owned(),
    };
    Some(match oid.as_str() {
        "1.2.840.113549.1.1.1" => rsa("RSA"),
        "1.2.840.113549.1.1.10" => rsa("RSASSA-PSS"),
        "1.2.840.10045.2.1" => match expect(0x06, params).and_then(|(c, _)| dotted(c)) {
            Some(curve) => match curve_name(&curve) {
                Some(name) => format!("EC {name}"),
                None => format!("EC curve {curve}"),
            },
            None => "EC with explicit curve parameters".to_owned(),
        },
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.2.840.10046.2.1" | "1.2.840.113549.1.3.1" => "Diffie-Hellman".to_owned(),
        _ => format!("algorithm {oid}"),
    })
}

/// What a PKCS#8 PrivateKeyInfo holds, e.g. `EC secp256k1`, `RSA 1024 bits`, `X25519`;
/// `None` when the bytes are not PKCS#8.
pub(crate) fn describe_pkcs8(der: &[u8]) -> Option<String> {
    let (info, _) = expect(0x30, der)?;
    let (_version, rest) = expect(0x02, info)?;
    let (algorithm, rest) = expect(0x30, rest)?;
    let (private_key, _) = expect(0x04, rest)?;
    describe(algorithm, || {
        // RSAPrivateKey (RFC 8017 A.1.2): version, modulus, ...
        let (key, _) = expect(0x30, private_key)?;
        let (_, rest) = expect(0x02, key)?;
        Some(bits(expect(0x02, rest)?.0))
    })
}

/// What a SubjectPublicKeyInfo holds (as [`describe_pkcs8`]); `None` when not an SPKI.
pub(crate) fn describe_spki(der: &[u8]) -> Option<String> {
    let (info, _) = expect(0x30, der)?;
    let (algorithm, rest) = expect(0x30, info)?;
    let (key, _) = expect(0x03, rest)?;
    describe(algorithm, || {
        // RSAPublicKey (RFC 8017 A.1.1) after the BIT STRING's unused-bits byte: modulus, ...
        let (public, _) = expect(0x30, key.get(1..)?)?;
        Some(bits(expect(0x02, public)?.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_private_keys_are_named() {
        for (der, want) in [
            (
                &include_bytes!("../testdata/unsupported-rsa1024.pk8.der")[..],
                "RSA 1024 bits",
            ),
            (
                include_bytes!("../testdata/unsupported-secp256k1.pk8.der"),
                "EC secp256k1",
            ),
            (
                include_bytes!("../testdata/unsupported-x25519.pk8.der"),
                "X25519",
            ),
            (
                include_bytes!("../testdata/unsupported-ed448.pk8.der"),
                "Ed448",
            ),
            (
                include_bytes!("../testdata/unsupported-p224.pk8.der"),
                "EC P-224",
            ),
            (
                include_bytes!("../testdata/selftest-rsa2048.pk8.der"),
                "RSA 2048 bits",
            ),
        ] {
            assert_eq!(describe_pkcs8(der).as_deref(), Some(want));
        }
    }

    #[test]
    fn private_key_spec_takes_supported_keys_and_names_the_others() {
        assert_eq!(
            private_key_spec(include_bytes!("../testdata/selftest-rsa2048.pk8.der")).unwrap(),
            KeySpec::Rsa2048
        );
        let e =
            private_key_spec(include_bytes!("../testdata/unsupported-x25519.pk8.der")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("unsupported key type: got X25519; the HSM takes {SUPPORTED}")
        );
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(
            private_key_spec(b"junk").unwrap_err().code(),
            "invalid_input"
        );
    }

    #[test]
    fn unsupported_public_keys_are_named() {
        for (der, want) in [
            (
                &include_bytes!("../testdata/unsupported-rsa1024.spki.der")[..],
                "RSA 1024 bits",
            ),
            (
                include_bytes!("../testdata/unsupported-secp256k1.spki.der"),
                "EC secp256k1",
            ),
            (
                include_bytes!("../testdata/unsupported-x25519.spki.der"),
                "X25519",
            ),
        ] {
            assert_eq!(describe_spki(der).as_deref(), Some(want));
        }
    }

    #[test]
    fn malformed_input_is_not_named_and_never_panics() {
        let good = include_bytes!("../testdata/unsupported-secp256k1.pk8.der");
        for cut in 0..good.len() {
            let _ = describe_pkcs8(&good[..cut]);
            let _ = describe_spki(&good[..cut]);
        }
        assert_eq!(describe_pkcs8(b"not DER at all"), None);
        assert_eq!(describe_pkcs8(&[]), None);
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]).as_deref(),
            Some("1.2.840.10045.2.1")
        );
        assert_eq!(dotted(&[0x2a, 0x86]), None);
        assert_eq!(bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bits(&[0x01]), 1);
    }
}
