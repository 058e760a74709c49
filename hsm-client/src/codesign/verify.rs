//! Checking a file's signature on this machine: the CMS structure, the message digest, the
//! signature (aws-lc-rs) and the signer certificate's path to a trusted root for code signing
//! (rustls-webpki). No HSM and no network.

use std::time::{Duration, SystemTime};

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::db::{rfc5280, rfc5911, rfc5912};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
use x509_cert::time::Time;
use x509_cert::Certificate;

use super::algorithm::{DigestAlgorithm, FileDigest, KeyKind, SignatureAlgorithm};
use crate::error::{Error, Result};

/// The extended key usage a signer certificate must have: id-kp-codeSigning (RFC 5280
/// §4.2.1.12).
static CODE_SIGNING: ObjectIdentifier = rfc5280::ID_KP_CODE_SIGNING;

/// Why a signature is not valid. Every variant is a verdict about the signature, its file or
/// its certificates; failures to read them are [`Error`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The signature is not a DER CMS structure this reads.
    #[error("not a DER CMS signature: {0}")]
    Malformed(der::Error),
    /// The ContentInfo holds something other than SignedData.
    #[error("the CMS content type is {0}, not id-signedData")]
    NotSignedData(ObjectIdentifier),
    /// The SignedData carries its content: it is not a detached signature.
    #[error("the signature carries its content: not a detached signature")]
    NotDetached,
    /// The signed content type is not id-data (the encapsulated or the signed attribute).
    #[error("the signed content type is {0}, not id-data")]
    ContentType(ObjectIdentifier),
    /// Not exactly one SignerInfo.
    #[error("{0} signers; exactly one is supported")]
    SignerCount(usize),
    /// The signer is named by subject key identifier; only IssuerAndSerialNumber is read.
    #[error("the signer is named by subject key identifier; only issuer and serial number are supported")]
    SignerIdentifier,
    /// The SignerInfo has no signed attributes (RFC 5652 §5.3: required for non-data content
    /// types, and this signs every file with them).
    #[error("the signer has no signed attributes")]
    NoSignedAttributes,
    /// A required signed attribute is missing, repeated or malformed.
    #[error("the signed attribute {0} is missing or malformed")]
    Attribute(&'static str),
    /// A digest algorithm other than SHA-256/384/512.
    #[error("unsupported digest algorithm {0}")]
    DigestAlgorithm(ObjectIdentifier),
    /// A signature algorithm (with its parameters) this does not verify.
    #[error("unsupported signature algorithm {oid} with {digest}")]
    SignatureAlgorithm {
        /// The algorithm's OID.
        oid: ObjectIdentifier,
        /// The digest algorithm it came with.
        digest: DigestAlgorithm,
    },
    /// The signature algorithm does not fit the signer certificate's key.
    #[error("the signature algorithm {0} does not fit the signer certificate's key")]
    AlgorithmKey(SignatureAlgorithm),
    /// No certificate in the signature (or given as untrusted) has the signer's issuer and
    /// serial number.
    #[error("the signer's certificate is not in the signature")]
    SignerCertificateMissing,
    /// The message digest is not the file's: the file changed.
    #[error("the message digest does not match the file")]
    DigestMismatch,
    /// The signature does not verify with the signer certificate's public key.
    #[error("the signature does not verify with the signer certificate's public key")]
    BadSignature,
    /// The signer certificate has no extended key usage extension with id-kp-codeSigning.
    #[error("the signer certificate is not for code signing: its extended key usage lacks id-kp-codeSigning")]
    NotCodeSigning,
    /// The signer certificate's key usage allows no signatures.
    #[error("the signer certificate's key usage has neither digitalSignature nor nonRepudiation")]
    KeyUsage,
    /// No path from the signer certificate to a trusted root valid for code signing at the
    /// signing time (expired, unknown issuer, no code-signing EKU, ...).
    #[error("the signer certificate is not trusted for code signing at {time}: {error}")]
    Untrusted {
        /// The time the path was checked at (the signing time, else now).
        time: String,
        /// What rustls-webpki found.
        error: webpki::Error,
    },
}

/// A signature that verified.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verified {
    /// The signer certificate's subject (RFC 4514).
    pub signer: String,
    /// The signing-time attribute (CMS only).
    pub signing_time: Option<SystemTime>,
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
}

/// A parsed detached CMS signature: read it first, hash the file with its
/// [`digest_algorithm`](Self::digest_algorithm), then [`TrustAnchors::verify_cms`].
#[derive(Debug, Clone)]
pub struct DetachedCms {
    signed_data: SignedData,
    signer: SignerInfo,
    digest: DigestAlgorithm,
}

impl DetachedCms {
    /// Reads a DER `ContentInfo` holding a detached SignedData with one signer.
    ///
    /// # Errors
    /// The [`Invalid`] verdict of a structure that cannot be a valid detached signature.
    pub fn from_der(der: &[u8]) -> Result<DetachedCms, Invalid> {
        let info = ContentInfo::from_der(der).map_err(Invalid::Malformed)?;
        if info.content_type != rfc5911::ID_SIGNED_DATA {
            return Err(Invalid::NotSignedData(info.content_type));
        }
        let signed_data: SignedData = info.content.decode_as().map_err(Invalid::Malformed)?;
        let encap = &signed_data.encap_content_info;
        if encap.econtent_type != rfc5911::ID_DATA {
            return Err(Invalid::ContentType(encap.econtent_type));
        }
        if encap.econtent.is_some() {
            return Err(Invalid::NotDetached);
        }
        let signers = &signed_data.signer_infos.0;
        if signers.len() != 1 {
            return Err(Invalid::SignerCount(signers.len()));
        }
        let signer = signers.get(0).cloned().ok_or(Invalid::SignerCount(0))?;
        let digest = DigestAlgorithm::from_oid(signer.digest_alg.oid)
            .ok_or(Invalid::DigestAlgorithm(signer.digest_alg.oid))?;
        Ok(DetachedCms {
            signed_data,
            signer,
            digest,
        })
    }

    /// The hash the file gets.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest
    }

    /// The value of the only signed attribute `oid`, decoded as `T`.
    fn attribute<T: der::DecodeOwned>(
        &self,
        oid: ObjectIdentifier,
        name: &'static str,
    ) -> Result<Option<T>, Invalid> {
        let attrs = self
            .signer
            .signed_attrs
            .as_ref()
            .ok_or(Invalid::NoSignedAttributes)?;
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        let Some(attr) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() || attr.values.len() != 1 {
            return Err(Invalid::Attribute(name));
        }
        attr.values
            .get(0)
            .and_then(|value| value.to_der().ok())
            .and_then(|der| T::from_der(&der).ok())
            .map(Some)
            .ok_or(Invalid::Attribute(name))
    }

    /// The signing-time attribute, if any.
    ///
    /// # Errors
    /// [`Invalid::Attribute`] when it is malformed.
    pub fn signing_time(&self) -> Result<Option<SystemTime>, Invalid> {
        Ok(self
            .attribute::<Time>(rfc5911::ID_SIGNING_TIME, "signing-time")?
            .map(|t| SystemTime::UNIX_EPOCH + t.to_unix_duration()))
    }

    /// The signer's certificate among the signature's and `more`.
    fn signer_certificate(&self, more: &[Certificate]) -> Result<Certificate, Invalid> {
        let SignerIdentifier::IssuerAndSerialNumber(id) = &self.signer.sid else {
            return Err(Invalid::SignerIdentifier);
        };
        self.certificates()
            .chain(more.iter().cloned())
            .find(|c| {
                c.tbs_certificate.issuer == id.issuer
                    && c.tbs_certificate.serial_number == id.serial_number
            })
            .ok_or(Invalid::SignerCertificateMissing)
    }

    fn certificates(&self) -> impl Iterator<Item = Certificate> + '_ {
        self.signed_data
            .certificates
            .iter()
            .flat_map(|set| set.0.iter())
            .filter_map(|c| match c {
                cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                cms::cert::CertificateChoices::Other(_) => None,
            })
    }
}

/// Trusted roots and untrusted intermediates for signer certificates.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    roots: Vec<CertificateDer<'static>>,
    untrusted: Vec<Certificate>,
}

fn to_der(cert: &Certificate) -> Result<CertificateDer<'static>> {
    cert.to_der()
        .map(CertificateDer::from)
        .map_err(|source| Error::Der {
            what: "encode a certificate",
            source,
        })
}

impl TrustAnchors {
    /// Roots (trusted) and intermediates (untrusted: they must chain to a root).
    ///
    /// # Errors
    /// [`Error::Der`] when a certificate cannot be encoded.
    pub fn new(roots: &[Certificate], untrusted: Vec<Certificate>) -> Result<TrustAnchors> {
        Ok(TrustAnchors {
            roots: roots.iter().map(to_der).collect::<Result<_>>()?,
            untrusted,
        })
    }

    /// Verifies a detached CMS signature of the file whose digest (of
    /// [`DetachedCms::digest_algorithm`]) is `content`: content type id-data, the message
    /// digest, the signature over the DER of the signed attributes (RFC 5652 §5.4) with the
    /// signer certificate's key, and that certificate's path to a root, for code signing, at
    /// the signing time (else now).
    ///
    /// # Errors
    /// The [`Invalid`] verdict.
    pub fn verify_cms(&self, cms: &DetachedCms, content: &FileDigest) -> Result<Verified, Invalid> {
        let content_type = cms
            .attribute::<ObjectIdentifier>(rfc5911::ID_CONTENT_TYPE, "content-type")?
            .ok_or(Invalid::Attribute("content-type"))?;
        if content_type != rfc5911::ID_DATA {
            return Err(Invalid::ContentType(content_type));
        }
        let message_digest = cms
            .attribute::<OctetString>(rfc5911::ID_MESSAGE_DIGEST, "message-digest")?
            .ok_or(Invalid::Attribute("message-digest"))?;
        if content.algorithm() != cms.digest || message_digest.as_bytes() != content.as_bytes() {
            return Err(Invalid::DigestMismatch);
        }
        let signing_time = cms.signing_time()?;
        let signer = &cms.signer;
        let algorithm = SignatureAlgorithm::from_cms(&signer.signature_algorithm, cms.digest)
            .ok_or(Invalid::SignatureAlgorithm {
                oid: signer.signature_algorithm.oid,
                digest: cms.digest,
            })?;
        let cert = cms.signer_certificate(&self.untrusted)?;
        let signed = signer
            .signed_attrs
            .as_ref()
            .ok_or(Invalid::NoSignedAttributes)?
            .to_der()
            .map_err(Invalid::Malformed)?;
        let key = signer_key(&cert, algorithm)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(algorithm.verification(), key)
            .verify(&signed, signer.signature.as_bytes())
            .map_err(|_| Invalid::BadSignature)?;
        let intermediates: Vec<Certificate> = cms
            .certificates()
            .chain(self.untrusted.iter().cloned())
            .collect();
        self.check_path(&cert, &intermediates, signing_time)?;
        Ok(Verified {
            signer: cert.tbs_certificate.subject.to_string(),
            signing_time,
            algorithm,
        })
    }

    /// Verifies a raw signature (what [`crate::Client::sign_digest_raw`] makes) of the file
    /// whose digest (of `algorithm`'s hash) is `content` with `cert`'s key, and `cert`'s path
    /// to a root for code signing now.
    ///
    /// # Errors
    /// The [`Invalid`] verdict (Ed25519 is [`Invalid::SignatureAlgorithm`]: it signs whole
    /// messages, not digests).
    pub fn verify_raw(
        &self,
        cert: &Certificate,
        algorithm: SignatureAlgorithm,
        content: &FileDigest,
        signature: &[u8],
    ) -> Result<Verified, Invalid> {
        if !algorithm.signs_digests() || content.algorithm() != algorithm.digest() {
            return Err(Invalid::SignatureAlgorithm {
                oid: cert.tbs_certificate.subject_public_key_info.algorithm.oid,
                digest: content.algorithm(),
            });
        }
        let key = signer_key(cert, algorithm)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(algorithm.verification(), key)
            .verify_digest(content.aws(), signature)
            .map_err(|_| Invalid::BadSignature)?;
        self.check_path(cert, &self.untrusted, None)?;
        Ok(Verified {
            signer: cert.tbs_certificate.subject.to_string(),
            signing_time: None,
            algorithm,
        })
    }

    /// The path from `cert` to a root, valid at `time` (else now): `cert` with
    /// id-kp-codeSigning, each CA with it where it names extended key usages at all (the
    /// EKU-chaining rule of rustls-webpki, Mozilla and Microsoft).
    fn check_path(
        &self,
        cert: &Certificate,
        intermediates: &[Certificate],
        time: Option<SystemTime>,
    ) -> Result<(), Invalid> {
        check_key_usage(cert)?;
        check_code_signing(cert)?;
        let time = time.unwrap_or_else(SystemTime::now);
        let since_epoch = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let untrusted = |error| Invalid::Untrusted {
            time: utc_text(time),
            error,
        };
        let der = |c: &Certificate| {
            c.to_der()
                .map(CertificateDer::from)
                .map_err(Invalid::Malformed)
        };
        let end_entity = der(cert)?;
        let intermediates = intermediates
            .iter()
            .map(der)
            .collect::<Result<Vec<_>, _>>()?;
        let anchors = self
            .roots
            .iter()
            .map(webpki::anchor_from_trusted_cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(untrusted)?;
        let ee = webpki::EndEntityCert::try_from(&end_entity).map_err(untrusted)?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            webpki::KeyUsage::required_if_present(CODE_SIGNING.as_bytes()),
            None,
            None,
        )
        .map(drop)
        .map_err(untrusted)
    }
}

/// `cert`'s public key bytes for aws-lc-rs, when `algorithm` fits it.
fn signer_key(cert: &Certificate, algorithm: SignatureAlgorithm) -> Result<&[u8], Invalid> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let fits = KeyKind::of(spki).is_ok_and(|kind| algorithm.fits(kind));
    if !fits {
        return Err(Invalid::AlgorithmKey(algorithm));
    }
    spki.subject_public_key
        .as_bytes()
        .ok_or(Invalid::AlgorithmKey(algorithm))
}

/// RFC 5280 §4.2.1.3: a key usage extension, where present, must allow signatures.
fn check_key_usage(cert: &Certificate) -> Result<(), Invalid> {
    let Some(ext) = extension(cert, rfc5912::ID_CE_KEY_USAGE) else {
        return Ok(());
    };
    let ku = KeyUsage::from_der(ext.extn_value.as_bytes()).map_err(Invalid::Malformed)?;
    if ku.digital_signature() || ku.non_repudiation() {
        Ok(())
    } else {
        Err(Invalid::KeyUsage)
    }
}

/// RFC 5280 §4.2.1.12: the signer certificate must name id-kp-codeSigning (the path check
/// above lets certificates without the extension pass, as CAs may).
fn check_code_signing(cert: &Certificate) -> Result<(), Invalid> {
    let Some(ext) = extension(cert, rfc5912::ID_CE_EXT_KEY_USAGE) else {
        return Err(Invalid::NotCodeSigning);
    };
    let eku = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes()).map_err(Invalid::Malformed)?;
    if eku.0.contains(&CODE_SIGNING) {
        Ok(())
    } else {
        Err(Invalid::NotCodeSigning)
    }
}

fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&x509_cert::ext::Extension> {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid)
}

/// `time` as RFC 3339 UTC, whole seconds.
fn utc_text(time: SystemTime) -> String {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| der::DateTime::from_unix_duration(Duration::from_secs(d.as_secs())).ok())
        .map_or_else(|| format!("{time:?}"), |dt| dt.to_string())
}
