//! Private key material held in memory while the HSM is unsealed. Never leaves this crate.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::mechanism::SignMechanism;
use crate::object::KeySpec;

/// A private key ready to sign. aws-lc-rs frees (and cleanses) its key structures on drop.
pub(crate) enum PrivateMaterial {
    Ec {
        pair: EcdsaKeyPair,
        mechanism: SignMechanism,
    },
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for PrivateMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateMaterial(..)")
    }
}

fn ecdsa_alg(spec: KeySpec) -> Option<(&'static signature::EcdsaSigningAlgorithm, SignMechanism)> {
    match spec {
        KeySpec::EcP256 => Some((
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            SignMechanism::EcdsaSha256,
        )),
        KeySpec::EcP384 => Some((
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            SignMechanism::EcdsaSha384,
        )),
        _ => None,
    }
}

impl PrivateMaterial {
    /// Generates a new key inside the HSM and returns it with its PKCS#8 DER encoding.
    pub(crate) fn generate(spec: KeySpec) -> Result<(Self, Zeroizing<Vec<u8>>)> {
        let crypto = |operation| Error::Crypto { operation };
        let pkcs8: Zeroizing<Vec<u8>> = match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let (alg, _) = ecdsa_alg(spec).ok_or(Error::Internal("ec spec"))?;
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
        };
        let material = Self::from_pkcs8(spec, &pkcs8)?;
        Ok((material, pkcs8))
    }

    /// Parses PKCS#8 DER (RFC 5958) of the given spec.
    pub(crate) fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> Result<Self> {
        let bad = || Error::invalid(format!("not a valid PKCS#8 {spec} private key"));
        Ok(match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let (alg, mechanism) = ecdsa_alg(spec).ok_or(Error::Internal("ec spec"))?;
                PrivateMaterial::Ec {
                    pair: EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| bad())?,
                    mechanism,
                }
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| bad())?;
                let bits = pair.public_modulus_len() * 8;
                let want = match spec {
                    KeySpec::Rsa2048 => 2048,
                    KeySpec::Rsa3072 => 3072,
                    _ => 4096,
                };
                if bits != want {
                    return Err(bad());
                }
                PrivateMaterial::Rsa(pair)
            }
            KeySpec::Ed25519 => {
                PrivateMaterial::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| bad())?)
            }
        })
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7).
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>> {
        let enc = |_| Error::Crypto {
            operation: "public key encoding",
        };
        Ok(match self {
            PrivateMaterial::Ec { pair, .. } => {
                pair.public_key().as_der().map_err(enc)?.as_ref().to_vec()
            }
            PrivateMaterial::Rsa(pair) => {
                pair.public_key().as_der().map_err(enc)?.as_ref().to_vec()
            }
            PrivateMaterial::Ed25519(pair) => {
                pair.public_key().as_der().map_err(enc)?.as_ref().to_vec()
            }
        })
    }

    /// Whether `mechanism` fits this key.
    pub(crate) fn supports(&self, mechanism: SignMechanism) -> bool {
        use SignMechanism as M;
        match self {
            PrivateMaterial::Ec { mechanism: m, .. } => *m == mechanism,
            PrivateMaterial::Rsa(_) => matches!(
                mechanism,
                M::RsaPkcs1Sha256
                    | M::RsaPkcs1Sha384
                    | M::RsaPkcs1Sha512
                    | M::RsaPssSha256
                    | M::RsaPssSha384
                    | M::RsaPssSha512
            ),
            PrivateMaterial::Ed25519(_) => mechanism == M::Ed25519,
        }
    }

    /// Signs `message`; the caller has checked [`supports`](Self::supports).
    pub(crate) fn sign(&self, mechanism: SignMechanism, message: &[u8]) -> Result<Vec<u8>> {
        use SignMechanism as M;
        match self {
            PrivateMaterial::Ec { pair, .. } => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Crypto {
                    operation: "ecdsa sign",
                }),
            PrivateMaterial::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            PrivateMaterial::Rsa(pair) => {
                let encoding: &'static dyn signature::RsaEncoding = match mechanism {
                    M::RsaPkcs1Sha256 => &signature::RSA_PKCS1_SHA256,
                    M::RsaPkcs1Sha384 => &signature::RSA_PKCS1_SHA384,
                    M::RsaPkcs1Sha512 => &signature::RSA_PKCS1_SHA512,
                    M::RsaPssSha256 => &signature::RSA_PSS_SHA256,
                    M::RsaPssSha384 => &signature::RSA_PSS_SHA384,
                    M::RsaPssSha512 => &signature::RSA_PSS_SHA512,
                    _ => return Err(Error::Internal("rsa mechanism after supports()")),
                };
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(encoding, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| Error::Crypto {
                        operation: "rsa sign",
                    })?;
                Ok(sig)
            }
        }
    }
}
