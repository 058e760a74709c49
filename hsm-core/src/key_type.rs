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

/// Words for an algorithm identifier (RFC 5280 §4.1.1.2); `rsa_modulus_bits` gives the RSA
/// modulus's length once asked. Names come from const-oid's database of registered OIDs.
fn describe(
    algorithm: &spki::AlgorithmIdentifierRef<'_>,
    rsa_modulus_bits: impl FnOnce() -> Option<u32>,
) -> String {
    use const_oid::db::{rfc5912, rfc8410, DB};
    let rsa = |name: &str| match rsa_modulus_bits() {
        Some(b) => format!("{name} {b} bits"),
        None => name.to_owned(),
    };
    // SEC 2 §2.4.1; not in const-oid's database.
    const SECP_256_K_1: const_oid::ObjectIdentifier =
        const_oid::ObjectIdentifier::new_unwrap("1.3.132.0.10");
    let named = |oid: &const_oid::ObjectIdentifier| match *oid {
        SECP_256_K_1 => "secp256k1".to_owned(),
        rfc5912::SECP_256_R_1 => "P-256".to_owned(),
        rfc5912::SECP_384_R_1 => "P-384".to_owned(),
        rfc5912::SECP_521_R_1 => "P-521".to_owned(),
        rfc5912::SECP_224_R_1 => "P-224".to_owned(),
        _ => DB
            .by_oid(oid)
            .map_or_else(|| oid.to_string(), str::to_owned),
    };
    match algorithm.oid {
        rfc5912::RSA_ENCRYPTION => rsa("RSA"),
        rfc5912::ID_RSASSA_PSS => rsa("RSASSA-PSS"),
        rfc5912::ID_EC_PUBLIC_KEY => match algorithm
            .parameters
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
        {
            Some(curve) => format!("EC {}", named(&curve)),
            None => "EC with explicit curve parameters".to_owned(),
        },
        rfc8410::ID_X_25519 => "X25519".to_owned(),
        rfc8410::ID_X_448 => "X448".to_owned(),
        rfc8410::ID_ED_25519 => "Ed25519".to_owned(),
        rfc8410::ID_ED_448 => "Ed448".to_owned(),
        rfc5912::ID_DSA => "DSA".to_owned(),
        rfc5912::DHPUBLICNUMBER => "Diffie-Hellman".to_owned(),
        ref oid => format!("algorithm {}", named(oid)),
    }
}

/// The length in bits of a big-endian unsigned integer's value.
fn bits(n: &[u8]) -> u32 {
    let Some(start) = n.iter().position(|&b| b != 0) else {
        return 0;
    };
    u32::try_from(n.len() - start).unwrap_or(u32::MAX / 8) * 8 - n[start].leading_zeros()
}

/// What a PKCS#8 PrivateKeyInfo (RFC 5958) holds, e.g. `EC secp256k1`, `RSA 1024 bits`,
/// `X25519`; `None` when the bytes are not PKCS#8. Decoded with RustCrypto's `pkcs8`/`pkcs1`.
pub(crate) fn describe_pkcs8(der: &[u8]) -> Option<String> {
    use der::Decode;
    let info = pkcs8::PrivateKeyInfo::from_der(der).ok()?;
    Some(describe(&info.algorithm, || {
        let key = pkcs1::RsaPrivateKey::from_der(info.private_key).ok()?;
        Some(bits(key.modulus.as_bytes()))
    }))
}

/// What a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) holds; `None` when the bytes are not one.
pub(crate) fn describe_spki(der: &[u8]) -> Option<String> {
    use der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(der).ok()?;
    Some(describe(&info.algorithm, || {
        let key = pkcs1::RsaPublicKey::from_der(info.subject_public_key.as_bytes()?).ok()?;
        Some(bits(key.modulus.as_bytes()))
    }))
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
        assert_eq!(bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bits(&[0x01]), 1);
    }
}
