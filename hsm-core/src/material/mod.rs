//! Key values held in memory while the HSM is unsealed, and every cryptographic operation on
//! them. All of it is aws-lc-rs; nothing here is exported from the crate.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::agreement;
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptingKey, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey,
};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanism::{
    EncryptMechanism, SignInput, SignMechanism, SignatureEncoding, WrapMechanism,
};
use crate::object::KeySpec;

mod cipher;
pub(crate) use cipher::oaep_to_recipient;
mod sign;

const GCM_TAG_LEN: usize = 16;
const CBC_IV_LEN: usize = 16;

fn crypto(operation: &'static str) -> Error {
    Error::Crypto { operation }
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut v).map_err(|_| crypto("random"))?;
    Ok(v)
}

/// ECDSA key pairs for each (hash, encoding) that aws-lc-rs offers on a curve.
struct EcSigners {
    pairs: Vec<(SignMechanism, SignatureEncoding, EcdsaKeyPair)>,
}

fn ec_algorithms(
    spec: KeySpec,
) -> &'static [(
    SignMechanism,
    SignatureEncoding,
    &'static signature::EcdsaSigningAlgorithm,
)] {
    use SignMechanism as M;
    use SignatureEncoding as E;
    match spec {
        KeySpec::EcP256 => &[
            (
                M::EcdsaSha256,
                E::Der,
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            ),
            (
                M::EcdsaSha256,
                E::Raw,
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ),
        ],
        KeySpec::EcP384 => &[
            (
                M::EcdsaSha384,
                E::Der,
                &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            ),
            (
                M::EcdsaSha384,
                E::Raw,
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            ),
        ],
        KeySpec::EcP521 => &[
            (
                M::EcdsaSha256,
                E::Der,
                &signature::ECDSA_P521_SHA256_ASN1_SIGNING,
            ),
            (
                M::EcdsaSha256,
                E::Raw,
                &signature::ECDSA_P521_SHA256_FIXED_SIGNING,
            ),
            (
                M::EcdsaSha384,
                E::Der,
                &signature::ECDSA_P521_SHA384_ASN1_SIGNING,
            ),
            (
                M::EcdsaSha384,
                E::Raw,
                &signature::ECDSA_P521_SHA384_FIXED_SIGNING,
            ),
            (
                M::EcdsaSha512,
                E::Der,
                &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            ),
            (
                M::EcdsaSha512,
                E::Raw,
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            ),
        ],
        _ => &[],
    }
}

fn ec_verify_alg(
    spec: KeySpec,
    m: SignMechanism,
    e: SignatureEncoding,
) -> Option<&'static signature::EcdsaVerificationAlgorithm> {
    use SignMechanism as M;
    use SignatureEncoding as E;
    Some(match (spec, m, e) {
        (KeySpec::EcP256, M::EcdsaSha256, E::Der) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeySpec::EcP256, M::EcdsaSha256, E::Raw) => &signature::ECDSA_P256_SHA256_FIXED,
        (KeySpec::EcP256, M::EcdsaSha384, E::Der) => &signature::ECDSA_P256_SHA384_ASN1,
        (KeySpec::EcP384, M::EcdsaSha256, E::Der) => &signature::ECDSA_P384_SHA256_ASN1,
        (KeySpec::EcP384, M::EcdsaSha384, E::Der) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeySpec::EcP384, M::EcdsaSha384, E::Raw) => &signature::ECDSA_P384_SHA384_FIXED,
        (KeySpec::EcP521, M::EcdsaSha256, E::Der) => &signature::ECDSA_P521_SHA256_ASN1,
        (KeySpec::EcP521, M::EcdsaSha256, E::Raw) => &signature::ECDSA_P521_SHA256_FIXED,
        (KeySpec::EcP521, M::EcdsaSha384, E::Der) => &signature::ECDSA_P521_SHA384_ASN1,
        (KeySpec::EcP521, M::EcdsaSha384, E::Raw) => &signature::ECDSA_P521_SHA384_FIXED,
        (KeySpec::EcP521, M::EcdsaSha512, E::Der) => &signature::ECDSA_P521_SHA512_ASN1,
        (KeySpec::EcP521, M::EcdsaSha512, E::Raw) => &signature::ECDSA_P521_SHA512_FIXED,
        _ => return None,
    })
}

fn rsa_sign_encoding(m: SignMechanism) -> Option<&'static dyn signature::RsaEncoding> {
    use SignMechanism as M;
    Some(match m {
        M::RsaPkcs1Sha256 => &signature::RSA_PKCS1_SHA256,
        M::RsaPkcs1Sha384 => &signature::RSA_PKCS1_SHA384,
        M::RsaPkcs1Sha512 => &signature::RSA_PKCS1_SHA512,
        M::RsaPssSha256 => &signature::RSA_PSS_SHA256,
        M::RsaPssSha384 => &signature::RSA_PSS_SHA384,
        M::RsaPssSha512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn rsa_verify_alg(m: SignMechanism) -> Option<&'static signature::RsaParameters> {
    use SignMechanism as M;
    Some(match m {
        M::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        M::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        M::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        M::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        M::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
        M::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn hmac_alg(m: SignMechanism) -> Option<hmac::Algorithm> {
    Some(match m {
        SignMechanism::HmacSha256 => hmac::HMAC_SHA256,
        SignMechanism::HmacSha384 => hmac::HMAC_SHA384,
        SignMechanism::HmacSha512 => hmac::HMAC_SHA512,
        _ => return None,
    })
}

fn oaep_alg(m: EncryptMechanism) -> Option<&'static aws_lc_rs::rsa::OaepAlgorithm> {
    Some(match m {
        EncryptMechanism::RsaOaepSha256 => &OAEP_SHA256_MGF1SHA256,
        EncryptMechanism::RsaOaepSha384 => &OAEP_SHA384_MGF1SHA384,
        EncryptMechanism::RsaOaepSha512 => &OAEP_SHA512_MGF1SHA512,
        _ => return None,
    })
}

fn rsa_spec(bits: usize) -> Option<KeySpec> {
    match bits {
        2048 => Some(KeySpec::Rsa2048),
        3072 => Some(KeySpec::Rsa3072),
        4096 => Some(KeySpec::Rsa4096),
        _ => None,
    }
}

/// [`Error::UnsupportedKeyType`] for a key whose type (in [`crate::key_type`]'s words) the HSM
/// does not take; `None` for a type it takes (the key is then malformed) or unknown bytes.
fn unsupported(found: Option<String>) -> Option<Error> {
    const TAKEN: [&str; 7] = [
        "EC P-256",
        "EC P-384",
        "EC P-521",
        "Ed25519",
        "RSA 2048 bits",
        "RSA 3072 bits",
        "RSA 4096 bits",
    ];
    let found = found?;
    (!TAKEN.contains(&found.as_str())).then_some(Error::UnsupportedKeyType { found })
}

fn ecdh_alg(spec: KeySpec) -> Option<&'static agreement::Algorithm> {
    match spec {
        KeySpec::EcP256 => Some(&agreement::ECDH_P256),
        KeySpec::EcP384 => Some(&agreement::ECDH_P384),
        KeySpec::EcP521 => Some(&agreement::ECDH_P521),
        _ => None,
    }
}

/// A key value and what aws-lc-rs built from it.
pub(crate) enum Material {
    Secret {
        spec: KeySpec,
        value: Zeroizing<Vec<u8>>,
        /// The prepared AES-GCM key for AES specs (aws-lc-rs cleanses it on drop).
        gcm: Option<Box<LessSafeKey>>,
    },
    Ec {
        spec: KeySpec,
        pkcs8: Zeroizing<Vec<u8>>,
        signers: EcSignersBox,
        spki: Vec<u8>,
    },
    Rsa {
        spec: KeySpec,
        pkcs8: Zeroizing<Vec<u8>>,
        pair: RsaKeyPair,
        oaep: OaepPrivateDecryptingKey,
        spki: Vec<u8>,
    },
    Ed25519 {
        pkcs8: Zeroizing<Vec<u8>>,
        pair: Ed25519KeyPair,
        spki: Vec<u8>,
    },
    Public {
        spec: KeySpec,
        spki: Vec<u8>,
    },
}

/// Boxed so that `Material` stays small.
pub(crate) struct EcSignersBox(Box<EcSigners>);

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Material({}, ..)", self.spec())
    }
}

impl Material {
    /// Generates a new key of `spec` inside the HSM. For asymmetric specs this is the private
    /// key; its public half is [`Material::public_half`].
    pub(crate) fn generate(spec: KeySpec) -> Result<Self> {
        spec.check()?;
        if let Some(len) = spec.secret_len() {
            return Material::secret(spec, random(len)?);
        }
        let pkcs8: Zeroizing<Vec<u8>> = match spec {
            KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 => {
                let alg = ec_algorithms(spec)[0].2;
                let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
                    .map_err(|_| crypto("ec key generation"))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let size = match spec {
                    KeySpec::Rsa2048 => KeySize::Rsa2048,
                    KeySpec::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| crypto("rsa key generation"))?;
                let der = pair.as_der().map_err(|_| crypto("rsa key encoding"))?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            KeySpec::Ed25519 => {
                let pair =
                    Ed25519KeyPair::generate().map_err(|_| crypto("ed25519 key generation"))?;
                let doc = pair
                    .to_pkcs8()
                    .map_err(|_| crypto("ed25519 key encoding"))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            _ => return Err(Error::Internal("secret spec after secret_len")),
        };
        Material::from_pkcs8(Some(spec), pkcs8)
    }

    /// A secret key from its value; the length must fit the spec.
    pub(crate) fn secret(spec: KeySpec, value: Zeroizing<Vec<u8>>) -> Result<Self> {
        spec.check()?;
        if spec.secret_len() != Some(value.len()) {
            return Err(Error::invalid(format!(
                "a {spec} key is {:?} bytes, got {}",
                spec.secret_len(),
                value.len()
            )));
        }
        let gcm = match spec {
            KeySpec::Aes128 => Some(&aead::AES_128_GCM),
            KeySpec::Aes192 => Some(&aead::AES_192_GCM),
            KeySpec::Aes256 => Some(&aead::AES_256_GCM),
            _ => None,
        }
        .map(|alg| UnboundKey::new(alg, &value).map(|k| Box::new(LessSafeKey::new(k))))
        .transpose()
        .map_err(|_| crypto("aes key"))?;
        Ok(Material::Secret { spec, value, gcm })
    }

    /// A private key from PKCS#8 DER (RFC 5958). With `expected`, the key must be of that spec;
    /// without, the type is detected (EC P-256/384/521, RSA 2048/3072/4096, Ed25519).
    pub(crate) fn from_pkcs8(expected: Option<KeySpec>, pkcs8: Zeroizing<Vec<u8>>) -> Result<Self> {
        let bad = || Error::invalid("not a valid PKCS#8 private key of a supported type");
        let candidates: Vec<KeySpec> = match expected {
            Some(s) => vec![s],
            None => KeySpec::ASYMMETRIC.to_vec(),
        };
        for spec in candidates {
            match spec {
                KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 => {
                    let mut pairs = Vec::new();
                    for (m, e, alg) in ec_algorithms(spec) {
                        match EcdsaKeyPair::from_pkcs8(alg, &pkcs8) {
                            Ok(p) => pairs.push((*m, *e, p)),
                            Err(_) => break,
                        }
                    }
                    if pairs.len() != ec_algorithms(spec).len() {
                        continue;
                    }
                    let spki = pairs[0]
                        .2
                        .public_key()
                        .as_der()
                        .map_err(|_| crypto("public key encoding"))?
                        .as_ref()
                        .to_vec();
                    return Ok(Material::Ec {
                        spec,
                        pkcs8,
                        signers: EcSignersBox(Box::new(EcSigners { pairs })),
                        spki,
                    });
                }
                KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                    let Ok(pair) = RsaKeyPair::from_pkcs8(&pkcs8) else {
                        continue;
                    };
                    if rsa_spec(pair.public_modulus_len() * 8) != Some(spec) {
                        if expected.is_some() {
                            return Err(bad());
                        }
                        // Detect the size from the key itself.
                        let Some(actual) = rsa_spec(pair.public_modulus_len() * 8) else {
                            return Err(Error::UnsupportedKeyType {
                                found: format!("RSA {} bits", pair.public_modulus_len() * 8),
                            });
                        };
                        return Material::from_pkcs8(Some(actual), pkcs8);
                    }
                    let oaep = OaepPrivateDecryptingKey::new(
                        PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|_| bad())?,
                    )
                    .map_err(|_| bad())?;
                    let spki = pair
                        .public_key()
                        .as_der()
                        .map_err(|_| crypto("public key encoding"))?
                        .as_ref()
                        .to_vec();
                    return Ok(Material::Rsa {
                        spec,
                        pkcs8,
                        pair,
                        oaep,
                        spki,
                    });
                }
                KeySpec::Ed25519 => {
                    let Ok(pair) = Ed25519KeyPair::from_pkcs8(&pkcs8) else {
                        continue;
                    };
                    let spki = pair
                        .public_key()
                        .as_der()
                        .map_err(|_| crypto("public key encoding"))?
                        .as_ref()
                        .to_vec();
                    return Ok(Material::Ed25519 { pkcs8, pair, spki });
                }
                _ => return Err(bad()),
            }
        }
        Err(match expected {
            None => unsupported(crate::key_type::describe_pkcs8(&pkcs8)).unwrap_or_else(bad),
            Some(_) => bad(),
        })
    }

    /// A public key from SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7); the type is detected.
    pub(crate) fn from_spki(spki: &[u8]) -> Result<Self> {
        let bad = || Error::invalid("not a SubjectPublicKeyInfo of a supported key type");
        let normalize = |k: signature::ParsedPublicKey| -> Result<Vec<u8>> {
            Ok(k.as_der().map_err(|_| bad())?.as_ref().to_vec())
        };
        // Only DER SPKI is accepted: aws-lc-rs also takes raw points, so insist on a SEQUENCE.
        if spki.first() != Some(&0x30) {
            return Err(bad());
        }
        for (spec, alg) in [
            (
                KeySpec::EcP256,
                &signature::ECDSA_P256_SHA256_ASN1 as &'static dyn signature::VerificationAlgorithm,
            ),
            (KeySpec::EcP384, &signature::ECDSA_P384_SHA384_ASN1),
            (KeySpec::EcP521, &signature::ECDSA_P521_SHA512_ASN1),
            (KeySpec::Ed25519, &signature::ED25519),
        ] {
            if let Ok(k) = signature::ParsedPublicKey::new(alg, spki) {
                let der = normalize(k)?;
                // Only the canonical form: a named curve (RFC 5480 §2.1.1 forbids explicit
                // parameters) and an uncompressed point, exactly as the HSM would export it.
                if der != spki {
                    return Err(Error::invalid(
                        "EC and Ed25519 public keys must be DER SPKI with a named curve and an uncompressed point",
                    ));
                }
                return Ok(Material::Public { spec, spki: der });
            }
        }
        if let Ok(k) = PublicEncryptingKey::from_der(spki) {
            let spec = rsa_spec(k.key_size_bits()).ok_or_else(|| Error::UnsupportedKeyType {
                found: format!("RSA {} bits", k.key_size_bits()),
            })?;
            let der = k.as_der().map_err(|_| bad())?.as_ref().to_vec();
            return Ok(Material::Public { spec, spki: der });
        }
        Err(unsupported(crate::key_type::describe_spki(spki)).unwrap_or_else(bad))
    }

    /// The public half of a private key.
    pub(crate) fn public_half(&self) -> Option<Material> {
        let spki = self.spki()?.to_vec();
        Some(Material::Public {
            spec: self.spec(),
            spki,
        })
    }

    pub(crate) fn spec(&self) -> KeySpec {
        match self {
            Material::Secret { spec, .. }
            | Material::Ec { spec, .. }
            | Material::Rsa { spec, .. }
            | Material::Public { spec, .. } => *spec,
            Material::Ed25519 { .. } => KeySpec::Ed25519,
        }
    }

    /// SubjectPublicKeyInfo DER, for asymmetric keys.
    pub(crate) fn spki(&self) -> Option<&[u8]> {
        match self {
            Material::Ec { spki, .. }
            | Material::Rsa { spki, .. }
            | Material::Ed25519 { spki, .. }
            | Material::Public { spki, .. } => Some(spki),
            Material::Secret { .. } => None,
        }
    }

    /// The bytes a wrap protects: a secret key's value or a private key's PKCS#8 DER.
    pub(crate) fn wrappable_bytes(&self) -> Option<&[u8]> {
        match self {
            Material::Secret { value, .. } => Some(value),
            Material::Ec { pkcs8, .. }
            | Material::Rsa { pkcs8, .. }
            | Material::Ed25519 { pkcs8, .. } => Some(pkcs8),
            Material::Public { .. } => None,
        }
    }

    /// Key check value: AES-ECB(0^128)[..3] for AES, else SHA-1(SPKI or value)[..3]; hex.
    pub(crate) fn check_value(&self) -> Result<String> {
        let bytes: Vec<u8> = match self {
            Material::Secret { spec, value, .. } if spec.key_type() == "aes" => {
                let alg = match value.len() {
                    16 => &aws_lc_rs::cipher::AES_128,
                    24 => &aws_lc_rs::cipher::AES_192,
                    _ => &aws_lc_rs::cipher::AES_256,
                };
                let key = EncryptingKey::ecb(
                    UnboundCipherKey::new(alg, value).map_err(|_| crypto("aes key"))?,
                )
                .map_err(|_| crypto("aes key"))?;
                let mut block = [0u8; 16];
                key.encrypt(&mut block).map_err(|_| crypto("aes-ecb"))?;
                block[..3].to_vec()
            }
            // A check value of a short secret would let anyone who reads it recover the secret
            // by trying every value: such secrets get none.
            Material::Secret { value, .. } if value.len() < 16 => return Ok(String::new()),
            Material::Secret { value, .. } => {
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, value).as_ref()[..3].to_vec()
            }
            other => {
                let spki = other
                    .spki()
                    .ok_or(Error::Internal("asymmetric key without spki"))?;
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, spki).as_ref()[..3].to_vec()
            }
        };
        Ok(hex::encode(bytes))
    }
}
