//! Signature algorithms of code signing: which HSM mechanism signs, which hash the file gets,
//! how CMS names them (RFC 5754, RFC 5758, RFC 4055/4056, RFC 8419) and which aws-lc-rs
//! algorithm verifies them.

use std::fmt;
use std::io::Read;

use aws_lc_rs::{digest, signature};
use const_oid::db::{rfc5912, rfc8410};
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Any, Decode, Encode};
use pkcs1::{RsaPssParams, TrailerField};
use spki::{AlgorithmIdentifier, AlgorithmIdentifierOwned, AlgorithmIdentifierRef};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::error::{Error, Result};

/// A hash of code signing, applied to the file on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    fn aws(self) -> &'static digest::Algorithm {
        match self {
            DigestAlgorithm::Sha256 => &digest::SHA256,
            DigestAlgorithm::Sha384 => &digest::SHA384,
            DigestAlgorithm::Sha512 => &digest::SHA512,
        }
    }

    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha256 => rfc5912::ID_SHA_256,
            DigestAlgorithm::Sha384 => rfc5912::ID_SHA_384,
            DigestAlgorithm::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    pub(crate) fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|d| d.oid() == oid)
    }

    /// The digest length in bytes.
    pub fn output_len(self) -> usize {
        self.aws().output_len()
    }

    /// The CMS `DigestAlgorithmIdentifier`: parameters absent (RFC 5754 §2).
    pub(crate) fn identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }

    /// Hashes everything `input` yields, 64 KiB at a time (constant memory).
    ///
    /// # Errors
    /// [`Error::Read`] when reading fails.
    pub fn hash_reader(self, mut input: impl Read) -> Result<FileDigest> {
        let mut ctx = digest::Context::new(self.aws());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => ctx.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Read(e)),
            }
        }
        Ok(FileDigest {
            algorithm: self,
            digest: ctx.finish(),
        })
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha384 => "SHA-384",
            DigestAlgorithm::Sha512 => "SHA-512",
        })
    }
}

/// The digest of a file, made by [`DigestAlgorithm::hash_reader`].
#[derive(Clone)]
pub struct FileDigest {
    algorithm: DigestAlgorithm,
    digest: digest::Digest,
}

impl FileDigest {
    /// Its algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.digest.as_ref()
    }

    pub(crate) fn aws(&self) -> &digest::Digest {
        &self.digest
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FileDigest({}, {})",
            self.algorithm,
            hex::encode(self.as_bytes())
        )
    }
}

/// The public-key types code signing takes, read from a SubjectPublicKeyInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    EcP256,
    EcP384,
    EcP521,
    Rsa,
    Ed25519,
}

impl KeyKind {
    /// The key type of `spki` (RFC 5480 §2, RFC 3279 §2.3.1, RFC 8410 §3).
    pub(crate) fn of(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyKind> {
        let alg = &spki.algorithm;
        let unsupported = || Error::UnsupportedKey {
            algorithm: alg.oid.to_string(),
        };
        if alg.oid == rfc5912::RSA_ENCRYPTION {
            return Ok(KeyKind::Rsa);
        }
        if alg.oid == rfc8410::ID_ED_25519 {
            return Ok(KeyKind::Ed25519);
        }
        if alg.oid != rfc5912::ID_EC_PUBLIC_KEY {
            return Err(unsupported());
        }
        let curve = alg
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(unsupported)?;
        match curve {
            c if c == rfc5912::SECP_256_R_1 => Ok(KeyKind::EcP256),
            c if c == rfc5912::SECP_384_R_1 => Ok(KeyKind::EcP384),
            c if c == rfc5912::SECP_521_R_1 => Ok(KeyKind::EcP521),
            _ => Err(Error::UnsupportedKey {
                algorithm: format!("{} on curve {curve}", alg.oid),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::EcP521 => "EC P-521",
            KeyKind::Rsa => "RSA",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// A signature algorithm of code signing: an HSM mechanism with its hash.
///
/// | algorithm | HSM mechanism | key | CMS `signatureAlgorithm` |
/// | --- | --- | --- | --- |
/// | `EcdsaSha256` | `ecdsa-sha256` | P-256 | ecdsa-with-SHA256 (RFC 5758 §3.2, RFC 5753) |
/// | `EcdsaSha384` | `ecdsa-sha384` | P-384 | ecdsa-with-SHA384 |
/// | `EcdsaSha512` | `ecdsa-sha512` | P-521 | ecdsa-with-SHA512 |
/// | `RsaPkcs1Sha256/384/512` | `rsa-pkcs1-sha*` | RSA | sha*WithRSAEncryption, NULL parameters (RFC 4055 §5, RFC 5754 §3.2) |
/// | `RsaPssSha256/384/512` | `rsa-pss-sha*` | RSA | id-RSASSA-PSS with explicit RSASSA-PSS-params: the hash, MGF1 with the same hash, salt length = the hash length (the HSM's), trailer field 1 (RFC 4055 §3.1, RFC 4056 §2) |
/// | `Ed25519` | `ed25519` | Ed25519 | id-Ed25519, parameters absent; message digest SHA-512 (RFC 8419 §3) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256.
    EcdsaSha256,
    /// ECDSA P-384 with SHA-384.
    EcdsaSha384,
    /// ECDSA P-521 with SHA-512.
    EcdsaSha512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    RsaPssSha512,
    /// Pure Ed25519 (RFC 8032).
    Ed25519,
}

use SignatureAlgorithm as A;

const ALL: [SignatureAlgorithm; 10] = [
    A::EcdsaSha256,
    A::EcdsaSha384,
    A::EcdsaSha512,
    A::RsaPkcs1Sha256,
    A::RsaPkcs1Sha384,
    A::RsaPkcs1Sha512,
    A::RsaPssSha256,
    A::RsaPssSha384,
    A::RsaPssSha512,
    A::Ed25519,
];

impl SignatureAlgorithm {
    /// The algorithm for a key of `spki`: `mechanism` (an HSM mechanism name such as
    /// `rsa-pss-sha256`) when given, else the key's default: `ecdsa-sha256` for P-256,
    /// `ecdsa-sha384` for P-384, `ecdsa-sha512` for P-521, `rsa-pkcs1-sha256` for RSA,
    /// `ed25519` for Ed25519.
    ///
    /// # Errors
    /// [`Error::UnsupportedKey`] for other keys, [`Error::MechanismMismatch`] for a mechanism
    /// that is unknown or does not fit the key.
    pub fn for_key(
        spki: &SubjectPublicKeyInfoOwned,
        mechanism: Option<&str>,
    ) -> Result<SignatureAlgorithm> {
        let kind = KeyKind::of(spki)?;
        let Some(name) = mechanism else {
            return Ok(match kind {
                KeyKind::EcP256 => A::EcdsaSha256,
                KeyKind::EcP384 => A::EcdsaSha384,
                KeyKind::EcP521 => A::EcdsaSha512,
                KeyKind::Rsa => A::RsaPkcs1Sha256,
                KeyKind::Ed25519 => A::Ed25519,
            });
        };
        ALL.into_iter()
            .find(|a| a.mechanism() == name && a.fits(kind))
            .ok_or_else(|| Error::MechanismMismatch {
                mechanism: name.to_owned(),
                key: kind.name(),
                expected: ALL
                    .into_iter()
                    .filter(|a| a.fits(kind))
                    .map(SignatureAlgorithm::mechanism)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub(crate) fn fits(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (A::EcdsaSha256, KeyKind::EcP256)
                | (A::EcdsaSha384, KeyKind::EcP384)
                | (A::EcdsaSha512, KeyKind::EcP521)
                | (
                    A::RsaPkcs1Sha256
                        | A::RsaPkcs1Sha384
                        | A::RsaPkcs1Sha512
                        | A::RsaPssSha256
                        | A::RsaPssSha384
                        | A::RsaPssSha512,
                    KeyKind::Rsa
                )
                | (A::Ed25519, KeyKind::Ed25519)
        )
    }

    /// The HSM mechanism (`POST /v1/crypto/sign`).
    pub fn mechanism(self) -> &'static str {
        match self {
            A::EcdsaSha256 => "ecdsa-sha256",
            A::EcdsaSha384 => "ecdsa-sha384",
            A::EcdsaSha512 => "ecdsa-sha512",
            A::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            A::RsaPkcs1Sha384 => "rsa-pkcs1-sha384",
            A::RsaPkcs1Sha512 => "rsa-pkcs1-sha512",
            A::RsaPssSha256 => "rsa-pss-sha256",
            A::RsaPssSha384 => "rsa-pss-sha384",
            A::RsaPssSha512 => "rsa-pss-sha512",
            A::Ed25519 => "ed25519",
        }
    }

    /// The hash the file gets (for Ed25519: the CMS message digest, RFC 8419 §3.1).
    pub fn digest(self) -> DigestAlgorithm {
        match self {
            A::EcdsaSha256 | A::RsaPkcs1Sha256 | A::RsaPssSha256 => DigestAlgorithm::Sha256,
            A::EcdsaSha384 | A::RsaPkcs1Sha384 | A::RsaPssSha384 => DigestAlgorithm::Sha384,
            A::EcdsaSha512 | A::RsaPkcs1Sha512 | A::RsaPssSha512 | A::Ed25519 => {
                DigestAlgorithm::Sha512
            }
        }
    }

    fn is_pss(self) -> bool {
        matches!(self, A::RsaPssSha256 | A::RsaPssSha384 | A::RsaPssSha512)
    }

    fn is_rsa_pkcs1(self) -> bool {
        matches!(
            self,
            A::RsaPkcs1Sha256 | A::RsaPkcs1Sha384 | A::RsaPkcs1Sha512
        )
    }

    /// Whether the HSM signs a digest with it (Ed25519 signs whole messages only).
    pub fn signs_digests(self) -> bool {
        self != A::Ed25519
    }

    /// The CMS `SignatureAlgorithmIdentifier` (see the table above).
    pub(crate) fn identifier(self) -> Result<AlgorithmIdentifierOwned> {
        let oid = match self {
            A::EcdsaSha256 => rfc5912::ECDSA_WITH_SHA_256,
            A::EcdsaSha384 => rfc5912::ECDSA_WITH_SHA_384,
            A::EcdsaSha512 => rfc5912::ECDSA_WITH_SHA_512,
            A::RsaPkcs1Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            A::RsaPkcs1Sha384 => rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
            A::RsaPkcs1Sha512 => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
            A::RsaPssSha256 | A::RsaPssSha384 | A::RsaPssSha512 => rfc5912::ID_RSASSA_PSS,
            A::Ed25519 => rfc8410::ID_ED_25519,
        };
        let parameters = match self {
            A::RsaPkcs1Sha256 | A::RsaPkcs1Sha384 | A::RsaPkcs1Sha512 => {
                Some(Any::from(AnyRef::NULL))
            }
            A::RsaPssSha256 | A::RsaPssSha384 | A::RsaPssSha512 => Some(
                Any::encode_from(&self.pss_params()).map_err(|source| Error::Der {
                    what: "encode the RSASSA-PSS parameters",
                    source,
                })?,
            ),
            _ => None,
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters })
    }

    /// RSASSA-PSS-params of the HSM's PSS: the hash, MGF1 with it, salt length = its length.
    fn pss_params(self) -> RsaPssParams<'static> {
        let hash = AlgorithmIdentifierRef {
            oid: self.digest().oid(),
            parameters: Some(AnyRef::NULL),
        };
        RsaPssParams {
            hash,
            mask_gen: AlgorithmIdentifier {
                oid: rfc5912::ID_MGF_1,
                parameters: Some(hash),
            },
            salt_len: u8::try_from(self.digest().output_len()).unwrap_or(u8::MAX),
            trailer_field: TrailerField::BC,
        }
    }

    /// The algorithm a CMS SignerInfo names with `signature_algorithm` and `digest`; `None`
    /// when it is not one of these (PSS parameters other than the HSM's included).
    pub(crate) fn from_cms(
        signature_algorithm: &AlgorithmIdentifierOwned,
        digest: DigestAlgorithm,
    ) -> Option<SignatureAlgorithm> {
        let oid = signature_algorithm.oid;
        if oid == rfc5912::ID_RSASSA_PSS {
            let params = signature_algorithm.parameters.as_ref()?.to_der().ok()?;
            let params = RsaPssParams::from_der(&params).ok()?;
            return ALL.into_iter().find(|a| {
                a.is_pss() && a.digest() == digest && same_pss_params(&params, &a.pss_params())
            });
        }
        if oid == rfc5912::RSA_ENCRYPTION {
            // RFC 3370 §3.2: rsaEncryption with the hash of the digest algorithm.
            return ALL
                .into_iter()
                .find(|a| a.is_rsa_pkcs1() && a.digest() == digest);
        }
        ALL.into_iter().find(|a| {
            !a.is_pss() && a.digest() == digest && a.identifier().is_ok_and(|id| id.oid == oid)
        })
    }

    /// The aws-lc-rs algorithm that verifies it.
    pub(crate) fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            A::EcdsaSha256 => &signature::ECDSA_P256_SHA256_ASN1,
            A::EcdsaSha384 => &signature::ECDSA_P384_SHA384_ASN1,
            A::EcdsaSha512 => &signature::ECDSA_P521_SHA512_ASN1,
            A::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            A::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            A::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            A::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            A::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
            A::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
            A::Ed25519 => &signature::ED25519,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mechanism())
    }
}

/// Whether two RSASSA-PSS-params say the same, taking NULL and absent hash parameters as
/// equal (RFC 4055 §2.1).
fn same_pss_params(a: &RsaPssParams<'_>, b: &RsaPssParams<'_>) -> bool {
    fn hash_oid(h: &AlgorithmIdentifierRef<'_>) -> Option<ObjectIdentifier> {
        match h.parameters {
            None => Some(h.oid),
            Some(p) if p.is_null() => Some(h.oid),
            Some(_) => None,
        }
    }
    let mgf_hash = |p: &RsaPssParams<'_>| p.mask_gen.parameters.as_ref().and_then(hash_oid);
    a.mask_gen.oid == b.mask_gen.oid
        && hash_oid(&a.hash).is_some()
        && hash_oid(&a.hash) == hash_oid(&b.hash)
        && mgf_hash(a).is_some()
        && mgf_hash(a) == mgf_hash(b)
        && a.salt_len == b.salt_len
        && a.trailer_field == b.trailer_field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spki_of(
        alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
    ) -> SubjectPublicKeyInfoOwned {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let der = pair.public_key().as_der().unwrap();
        SubjectPublicKeyInfoOwned::from_der(der.as_ref()).unwrap()
    }

    #[test]
    fn the_key_picks_the_default_and_refuses_a_mechanism_of_another_key() {
        let p256 = spki_of(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        let p384 = spki_of(&signature::ECDSA_P384_SHA384_ASN1_SIGNING);
        assert_eq!(
            SignatureAlgorithm::for_key(&p256, None).unwrap(),
            A::EcdsaSha256
        );
        assert_eq!(
            SignatureAlgorithm::for_key(&p384, None).unwrap(),
            A::EcdsaSha384
        );
        let err = SignatureAlgorithm::for_key(&p256, Some("rsa-pss-sha256")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("rsa-pss-sha256") && text.contains("ecdsa-sha256"),
            "{text}"
        );
        assert!(SignatureAlgorithm::for_key(&p256, Some("ecdsa-sha384")).is_err());
    }

    #[test]
    fn every_algorithm_reads_back_from_its_cms_identifier() {
        for a in ALL {
            let id = a.identifier().unwrap();
            assert_eq!(
                SignatureAlgorithm::from_cms(&id, a.digest()),
                Some(a),
                "{a}"
            );
        }
        // PSS with another salt length is not the HSM's PSS.
        let mut params = A::RsaPssSha256.pss_params();
        params.salt_len = 20;
        let id = AlgorithmIdentifierOwned {
            oid: rfc5912::ID_RSASSA_PSS,
            parameters: Some(Any::encode_from(&params).unwrap()),
        };
        assert_eq!(
            SignatureAlgorithm::from_cms(&id, DigestAlgorithm::Sha256),
            None
        );
        // The digest must be the signature's hash.
        let id = A::EcdsaSha256.identifier().unwrap();
        assert_eq!(
            SignatureAlgorithm::from_cms(&id, DigestAlgorithm::Sha384),
            None
        );
    }

    #[test]
    fn pss_parameters_say_the_hsm_salt_length() {
        let id = A::RsaPssSha384.identifier().unwrap();
        let der = id.parameters.unwrap().to_der().unwrap();
        let params = RsaPssParams::from_der(&der).unwrap();
        assert_eq!(params.salt_len, 48);
        assert_eq!(params.hash.oid, rfc5912::ID_SHA_384);
        assert_eq!(params.mask_gen.oid, rfc5912::ID_MGF_1);
        assert_eq!(params.mask_gen.parameters.unwrap().oid, rfc5912::ID_SHA_384);
    }

    #[test]
    fn hashing_a_reader_in_pieces_is_the_one_shot_digest() {
        let data = vec![7u8; 200_000];
        let d = DigestAlgorithm::Sha256.hash_reader(&data[..]).unwrap();
        assert_eq!(
            d.as_bytes(),
            digest::digest(&digest::SHA256, &data).as_ref()
        );
    }
}
