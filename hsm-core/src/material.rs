//! Key values held in memory while the HSM is unsealed, and every cryptographic operation on
//! them. All of it is aws-lc-rs; nothing here is exported from the crate.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::agreement;
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptingKey, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
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
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `mechanism` can sign with this key (ignoring attributes).
    pub(crate) fn can_sign(&self, mechanism: SignMechanism) -> bool {
        match self {
            Material::Ec { signers, .. } => signers.0.pairs.iter().any(|(m, _, _)| *m == mechanism),
            Material::Rsa { .. } => rsa_sign_encoding(mechanism).is_some(),
            Material::Ed25519 { .. } => mechanism == SignMechanism::Ed25519,
            Material::Secret { .. } => mechanism.is_hmac(),
            Material::Public { .. } => false,
        }
    }

    fn check_digest(
        mechanism: SignMechanism,
        input: SignInput<'_>,
    ) -> Result<Option<digest::Digest>> {
        match input {
            SignInput::Message(_) => Ok(None),
            SignInput::Digest(d) => {
                if !mechanism.accepts_digest() {
                    return Err(Error::invalid(format!(
                        "{mechanism} signs whole messages, not digests"
                    )));
                }
                let alg = mechanism
                    .digest()
                    .ok_or(Error::Internal("digest mechanism without hash"))?;
                digest::Digest::import_less_safe(d, alg)
                    .map(Some)
                    .map_err(|_| {
                        Error::invalid(format!(
                            "a {mechanism} digest is {} bytes",
                            alg.output_len()
                        ))
                    })
            }
        }
    }

    /// Signs. The caller has checked policy and [`can_sign`](Self::can_sign).
    pub(crate) fn sign(
        &self,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        encoding: SignatureEncoding,
    ) -> Result<Vec<u8>> {
        let digest = Material::check_digest(mechanism, input)?;
        let msg = match input {
            SignInput::Message(m) => m,
            SignInput::Digest(d) => d,
        };
        match self {
            Material::Ec { signers, .. } => {
                let pair = signers
                    .0
                    .pairs
                    .iter()
                    .find(|(m, e, _)| *m == mechanism && *e == encoding)
                    .map(|(_, _, p)| p)
                    .ok_or(Error::Internal("ec signer after can_sign"))?;
                let sig = match &digest {
                    Some(d) => pair.sign_digest(d),
                    None => pair.sign(&SystemRandom::new(), msg),
                };
                sig.map(|s| s.as_ref().to_vec())
                    .map_err(|_| crypto("ecdsa sign"))
            }
            Material::Ed25519 { pair, .. } => Ok(pair.sign(msg).as_ref().to_vec()),
            Material::Rsa { pair, .. } => {
                let enc = rsa_sign_encoding(mechanism)
                    .ok_or(Error::Internal("rsa mechanism after can_sign"))?;
                let mut sig = vec![0u8; pair.public_modulus_len()];
                match &digest {
                    Some(d) => pair.sign_digest(enc, d, &mut sig),
                    None => pair.sign(enc, &SystemRandom::new(), msg, &mut sig),
                }
                .map_err(|_| crypto("rsa sign"))?;
                Ok(sig)
            }
            Material::Secret { value, .. } => {
                let alg =
                    hmac_alg(mechanism).ok_or(Error::Internal("hmac mechanism after can_sign"))?;
                Ok(hmac::sign(&hmac::Key::new(alg, value), msg)
                    .as_ref()
                    .to_vec())
            }
            Material::Public { .. } => Err(Error::Internal("sign with a public key")),
        }
    }

    /// Verifies; `Ok(false)` for a wrong signature, `Err` for an unusable mechanism.
    pub(crate) fn verify(
        &self,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        signature: &[u8],
        encoding: SignatureEncoding,
    ) -> Result<bool> {
        let digest = Material::check_digest(mechanism, input)?;
        if let Material::Secret { value, .. } = self {
            let alg = hmac_alg(mechanism).ok_or(Error::Internal("hmac mechanism"))?;
            let msg = match input {
                SignInput::Message(m) | SignInput::Digest(m) => m,
            };
            return Ok(hmac::verify(&hmac::Key::new(alg, value), msg, signature).is_ok());
        }
        let spki = self
            .spki()
            .ok_or(Error::Internal("asymmetric key without spki"))?;
        let spec = self.spec();
        let alg: &'static dyn signature::VerificationAlgorithm = match spec.key_type() {
            "ec" => ec_verify_alg(spec, mechanism, encoding)
                .ok_or(Error::Internal("ec verify mechanism"))?,
            "rsa" => rsa_verify_alg(mechanism).ok_or(Error::Internal("rsa verify mechanism"))?,
            _ => &signature::ED25519,
        };
        let key = UnparsedPublicKey::new(alg, spki);
        Ok(match (&digest, input) {
            (Some(d), _) => key.verify_digest(d, signature).is_ok(),
            (None, SignInput::Message(m)) => key.verify(m, signature).is_ok(),
            (None, SignInput::Digest(_)) => false,
        })
    }

    /// Whether `mechanism` can verify with this key.
    pub(crate) fn can_verify(&self, mechanism: SignMechanism, encoding: SignatureEncoding) -> bool {
        let spec = self.spec();
        match spec.key_type() {
            "ec" => ec_verify_alg(spec, mechanism, encoding).is_some(),
            "rsa" => rsa_verify_alg(mechanism).is_some(),
            "ed25519" => mechanism == SignMechanism::Ed25519,
            _ => mechanism.is_hmac(),
        }
    }

    fn aead_alg(&self) -> Option<&'static aead::Algorithm> {
        match self {
            Material::Secret {
                spec: KeySpec::Aes128,
                ..
            } => Some(&aead::AES_128_GCM),
            Material::Secret {
                spec: KeySpec::Aes192,
                ..
            } => Some(&aead::AES_192_GCM),
            Material::Secret {
                spec: KeySpec::Aes256,
                ..
            } => Some(&aead::AES_256_GCM),
            _ => None,
        }
    }

    fn cipher_alg(&self) -> Option<&'static aws_lc_rs::cipher::Algorithm> {
        match self {
            Material::Secret {
                spec: KeySpec::Aes128,
                ..
            } => Some(&aws_lc_rs::cipher::AES_128),
            Material::Secret {
                spec: KeySpec::Aes192,
                ..
            } => Some(&aws_lc_rs::cipher::AES_192),
            Material::Secret {
                spec: KeySpec::Aes256,
                ..
            } => Some(&aws_lc_rs::cipher::AES_256),
            _ => None,
        }
    }

    fn gcm_key(&self) -> Result<&LessSafeKey> {
        match self {
            Material::Secret { gcm: Some(k), .. } => Ok(k),
            _ => Err(Error::Internal("aes-gcm without an AES key")),
        }
    }

    fn secret_value(&self) -> Option<&[u8]> {
        match self {
            Material::Secret { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether `mechanism` can encrypt (public/secret) or decrypt (private/secret) with this key.
    pub(crate) fn can_encrypt(&self, mechanism: EncryptMechanism, decrypt: bool) -> bool {
        match mechanism {
            EncryptMechanism::AesGcm | EncryptMechanism::AesCbcPad => self.aead_alg().is_some(),
            _ => match self {
                Material::Rsa { .. } => true,
                Material::Public { spec, .. } => !decrypt && spec.key_type() == "rsa",
                _ => false,
            },
        }
    }

    /// Encrypts. Output layout per [`EncryptMechanism`].
    pub(crate) fn encrypt(
        &self,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        if mechanism != EncryptMechanism::AesGcm && !aad.is_empty() {
            return Err(Error::invalid(format!(
                "{mechanism} takes no additional authenticated data"
            )));
        }
        match mechanism {
            EncryptMechanism::AesGcm => {
                let key = self.gcm_key()?;
                let mut iv = [0u8; NONCE_LEN];
                aws_lc_rs::rand::fill(&mut iv).map_err(|_| crypto("random"))?;
                // One buffer: IV ‖ plaintext sealed in place ‖ tag.
                let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + GCM_TAG_LEN);
                out.extend_from_slice(&iv);
                out.extend_from_slice(plaintext);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(aad),
                        &mut out[NONCE_LEN..],
                    )
                    .map_err(|_| crypto("aes-gcm encrypt"))?;
                out.extend_from_slice(tag.as_ref());
                Ok(out)
            }
            EncryptMechanism::AesCbcPad => {
                let alg = self.cipher_alg().ok_or(Error::Internal("aes-cbc key"))?;
                let key = PaddedBlockEncryptingKey::cbc_pkcs7(
                    UnboundCipherKey::new(alg, self.secret_value().unwrap_or_default())
                        .map_err(|_| crypto("aes key"))?,
                )
                .map_err(|_| crypto("aes key"))?;
                let mut body = plaintext.to_vec();
                let ctx = key
                    .encrypt(&mut body)
                    .map_err(|_| crypto("aes-cbc encrypt"))?;
                let iv: &[u8] = (&ctx).try_into().map_err(|_| crypto("aes-cbc iv"))?;
                let mut out = iv.to_vec();
                out.extend_from_slice(&body);
                Ok(out)
            }
            _ => {
                let alg = oaep_alg(mechanism).ok_or(Error::Internal("oaep mechanism"))?;
                let spki = self.spki().ok_or(Error::Internal("rsa key without spki"))?;
                let key = OaepPublicEncryptingKey::new(
                    PublicEncryptingKey::from_der(spki).map_err(|_| crypto("rsa public key"))?,
                )
                .map_err(|_| crypto("rsa public key"))?;
                if plaintext.len() > key.max_plaintext_size(alg) {
                    return Err(Error::invalid(format!(
                        "{mechanism} with this key encrypts at most {} bytes",
                        key.max_plaintext_size(alg)
                    )));
                }
                let mut out = vec![0u8; key.ciphertext_size()];
                let n = key
                    .encrypt(alg, plaintext, &mut out, None)
                    .map_err(|_| crypto("rsa-oaep encrypt"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
        }
    }

    /// Decrypts the layout [`encrypt`](Self::encrypt) produces. Any authentication or padding
    /// failure is one error, `invalid_input` ("decryption failed"), with no detail to probe.
    pub(crate) fn decrypt(
        &self,
        mechanism: EncryptMechanism,
        input: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::invalid("decryption failed");
        if mechanism != EncryptMechanism::AesGcm && !aad.is_empty() {
            return Err(Error::invalid(format!(
                "{mechanism} takes no additional authenticated data"
            )));
        }
        match mechanism {
            EncryptMechanism::AesGcm => {
                if input.len() < NONCE_LEN + GCM_TAG_LEN {
                    return Err(Error::invalid(
                        "aes-gcm input is IV (12) ‖ ciphertext ‖ tag (16): too short",
                    ));
                }
                let key = self.gcm_key()?;
                let nonce =
                    Nonce::try_assume_unique_for_key(&input[..NONCE_LEN]).map_err(|_| failed())?;
                let mut body = Zeroizing::new(input[NONCE_LEN..].to_vec());
                let n = key
                    .open_in_place(nonce, Aad::from(aad), &mut body)
                    .map_err(|_| failed())?
                    .len();
                body.truncate(n);
                Ok(body)
            }
            EncryptMechanism::AesCbcPad => {
                let alg = self.cipher_alg().ok_or(Error::Internal("aes-cbc key"))?;
                if input.len() < CBC_IV_LEN + 16 || !(input.len() - CBC_IV_LEN).is_multiple_of(16) {
                    return Err(Error::invalid(
                        "aes-cbc-pad input is IV (16) ‖ ciphertext (a positive multiple of 16)",
                    ));
                }
                let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                    UnboundCipherKey::new(alg, self.secret_value().unwrap_or_default())
                        .map_err(|_| crypto("aes key"))?,
                )
                .map_err(|_| crypto("aes key"))?;
                let iv: [u8; CBC_IV_LEN] = input[..CBC_IV_LEN].try_into().map_err(|_| failed())?;
                let mut body = Zeroizing::new(input[CBC_IV_LEN..].to_vec());
                let n = key
                    .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| failed())?
                    .len();
                body.truncate(n);
                Ok(body)
            }
            _ => {
                let alg = oaep_alg(mechanism).ok_or(Error::Internal("oaep mechanism"))?;
                let Material::Rsa { oaep: key, .. } = self else {
                    return Err(Error::Internal("rsa-oaep decrypt without a private key"));
                };
                if input.len() != key.key_size_bytes() {
                    return Err(Error::invalid(format!(
                        "{mechanism} ciphertext is {} bytes",
                        key.key_size_bytes()
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let n = key
                    .decrypt(alg, input, &mut out, None)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
        }
    }

    /// Whether this key can wrap (or, with `unwrap`, unwrap) with `mechanism`.
    pub(crate) fn can_wrap(&self, mechanism: WrapMechanism, unwrap: bool) -> bool {
        match mechanism {
            WrapMechanism::AesKw | WrapMechanism::AesKwp => {
                matches!(
                    self,
                    Material::Secret {
                        spec: KeySpec::Aes128 | KeySpec::Aes256,
                        ..
                    }
                )
            }
            WrapMechanism::AesGcm => self.aead_alg().is_some(),
            WrapMechanism::RsaOaep | WrapMechanism::RsaAes => match self {
                Material::Rsa { .. } => true,
                Material::Public { spec, .. } => !unwrap && spec.key_type() == "rsa",
                _ => false,
            },
        }
    }

    fn kek(&self) -> Result<AesKek> {
        let value = self
            .secret_value()
            .ok_or(Error::Internal("kek without value"))?;
        let cipher = match value.len() {
            16 => &key_wrap::AES_128,
            32 => &key_wrap::AES_256,
            _ => return Err(Error::Internal("kek length")),
        };
        AesKek::new(cipher, value).map_err(|_| crypto("aes kek"))
    }

    /// Wraps `target` (a secret value or PKCS#8) under this key.
    pub(crate) fn wrap(&self, mechanism: WrapMechanism, target: &[u8]) -> Result<Vec<u8>> {
        match mechanism {
            WrapMechanism::AesKw => {
                if target.len() < 16 || !target.len().is_multiple_of(8) {
                    return Err(Error::invalid(
                        "aes-kw wraps a multiple of 8 bytes, at least 16; use aes-kwp",
                    ));
                }
                let mut out = vec![0u8; target.len() + 8];
                let n = self
                    .kek()?
                    .wrap(target, &mut out)
                    .map_err(|_| crypto("aes-kw wrap"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesKwp => {
                let mut out = vec![0u8; target.len().div_ceil(8) * 8 + 8];
                let n = self
                    .kek()?
                    .wrap_with_padding(target, &mut out)
                    .map_err(|_| crypto("aes-kwp wrap"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesGcm => self.encrypt(EncryptMechanism::AesGcm, target, b""),
            WrapMechanism::RsaOaep => self.encrypt(EncryptMechanism::RsaOaepSha256, target, b""),
            WrapMechanism::RsaAes => {
                let ephemeral = Material::generate(KeySpec::Aes256)?;
                let mut out = self.encrypt(
                    EncryptMechanism::RsaOaepSha256,
                    ephemeral.secret_value().unwrap_or_default(),
                    b"",
                )?;
                out.extend(ephemeral.wrap(WrapMechanism::AesKwp, target)?);
                Ok(out)
            }
        }
    }

    /// Unwraps bytes wrapped by [`wrap`](Self::wrap) (or by another implementation of the same
    /// standard). Failures are one `invalid_input` "unwrap failed".
    pub(crate) fn unwrap(
        &self,
        mechanism: WrapMechanism,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::invalid("unwrap failed");
        match mechanism {
            WrapMechanism::AesKw => {
                if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
                    return Err(failed());
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = self
                    .kek()?
                    .unwrap(wrapped, &mut out)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesKwp => {
                if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
                    return Err(failed());
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = self
                    .kek()?
                    .unwrap_with_padding(wrapped, &mut out)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesGcm => self
                .decrypt(EncryptMechanism::AesGcm, wrapped, b"")
                .map_err(|_| failed()),
            WrapMechanism::RsaOaep => self
                .decrypt(EncryptMechanism::RsaOaepSha256, wrapped, b"")
                .map_err(|_| failed()),
            WrapMechanism::RsaAes => {
                let Material::Rsa { pair, .. } = self else {
                    return Err(failed());
                };
                let n = pair.public_modulus_len();
                if wrapped.len() <= n {
                    return Err(failed());
                }
                let aes = self
                    .decrypt(EncryptMechanism::RsaOaepSha256, &wrapped[..n], b"")
                    .map_err(|_| failed())?;
                let ephemeral = Material::secret(KeySpec::Aes256, aes).map_err(|_| failed())?;
                ephemeral.unwrap(WrapMechanism::AesKwp, &wrapped[n..])
            }
        }
    }

    /// ECDH (SEC 1 §3.3.1) with `peer` (SubjectPublicKeyInfo DER or an uncompressed point),
    /// then HKDF-SHA256 (RFC 5869) with `salt` and `info` to `out_len` bytes.
    pub(crate) fn derive_ecdh(
        &self,
        peer: &[u8],
        salt: &[u8],
        info: &[u8],
        out_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let Material::Ec { spec, pkcs8, .. } = self else {
            return Err(Error::Internal("ecdh without an ec key"));
        };
        let alg = ecdh_alg(*spec).ok_or(Error::Internal("ecdh curve"))?;
        let private = agreement::PrivateKey::from_private_key_der(alg, pkcs8)
            .map_err(|_| crypto("ecdh private key"))?;
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let bad_peer =
            Error::invalid("the peer public key is not a valid point on the key's curve");
        if peer.first() == Some(&0x30) {
            // An SPKI must be the canonical named-curve form of a key on this curve.
            match Material::from_spki(peer) {
                Ok(m) if m.spec() == *spec => {}
                _ => return Err(bad_peer),
            }
        }
        agreement::agree(
            &private,
            agreement::UnparsedPublicKey::new(alg, peer),
            bad_peer,
            |secret| {
                let mut out = Zeroizing::new(vec![0u8; out_len]);
                hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
                    .extract(secret)
                    .expand(&[info], Len(out_len))
                    .and_then(|okm| okm.fill(&mut out))
                    .map_err(|_| Error::invalid("HKDF-SHA256 output is 1 to 8160 bytes"))?;
                Ok(out)
            },
        )
    }
}
