//! Signing files with an HSM key: a detached CMS SignedData (RFC 5652 §5) or a raw signature.
//! The file's digest is made on this machine; the HSM signs the signed attributes (CMS) or
//! the digest (raw), so neither the file nor the key travels.

use std::time::{Duration, SystemTime};

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911;
use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, DateTime, Decode, Encode};
use x509_cert::attr::Attribute;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Time;
use x509_cert::Certificate;

use super::algorithm::{FileDigest, SignatureAlgorithm};
use crate::error::{Error, Result};
use crate::{Client, SignInput, SignItem};

/// An HSM key ready to sign files: the key version whose public key is the signer
/// certificate's, the algorithm, and the certificates a CMS signature carries. Made by
/// [`Client::code_signer`].
#[derive(Debug, Clone)]
pub struct CodeSigner {
    key: u64,
    key_version: u32,
    algorithm: SignatureAlgorithm,
    certificate: Option<Certificate>,
    chain: Vec<Certificate>,
}

impl CodeSigner {
    /// The algorithm it signs with; hash the file with its
    /// [`digest`](SignatureAlgorithm::digest).
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The key version that signs.
    pub fn key_version(&self) -> u32 {
        self.key_version
    }
}

/// Reads PEM certificates: every `CERTIFICATE` block of the text, in order (text around the
/// blocks, such as `openssl x509 -text` output, is ignored).
///
/// # Errors
/// [`Error::Der`] when the text holds no certificate or a malformed one.
pub fn certificates_from_pem(text: &[u8]) -> Result<Vec<Certificate>> {
    let none = || Error::Der {
        what: "find a PEM certificate (-----BEGIN CERTIFICATE-----)",
        source: der::ErrorKind::Failed.into(),
    };
    let blocks = pem::parse_many(text).map_err(|_| none())?;
    let certs = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| Certificate::from_der(b.contents()).map_err(der_err("read the PEM certificates")))
        .collect::<Result<Vec<_>>>()?;
    if certs.is_empty() {
        return Err(none());
    }
    Ok(certs)
}

fn der_err(what: &'static str) -> impl FnOnce(der::Error) -> Error {
    move |source| Error::Der { what, source }
}

/// A SubjectPublicKeyInfo in a form two encoders agree on: decoded and encoded again.
fn canonical_spki(der: &[u8]) -> Result<Vec<u8>> {
    SubjectPublicKeyInfoOwned::from_der(der)
        .and_then(|s| s.to_der())
        .map_err(der_err("read a public key"))
}

impl Client {
    /// Prepares key `key` (a private key handle) to sign files.
    ///
    /// With a `certificate` (the signer's, needed for CMS), its public key must be the key's:
    /// the newest key version the HSM lets sign whose public key it is signs (after a
    /// rotation, a certificate of an older version keeps signing with that version), and
    /// `chain` (intermediates) goes into CMS signatures beside it. Without one (raw
    /// signatures only), the latest version signs. `mechanism` (e.g. `rsa-pss-sha256`)
    /// picks the algorithm, else the key's default ([`SignatureAlgorithm::for_key`]).
    ///
    /// # Errors
    /// [`Error::CertificateKeyMismatch`] when no usable version has the certificate's public
    /// key; [`Error::UnsupportedKey`], [`Error::MechanismMismatch`]; API errors (the key is
    /// unknown, not yours, ...).
    pub async fn code_signer(
        &self,
        key: u64,
        certificate: Option<Certificate>,
        chain: Vec<Certificate>,
        mechanism: Option<&str>,
    ) -> Result<CodeSigner> {
        let info = self.get_key(key).await?;
        let (key_version, spki) = match &certificate {
            None => {
                let public = self.public_key_at(key, None).await?;
                (info.latest_version, public.der)
            }
            Some(cert) => {
                let wanted = cert
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(der_err("read the certificate's public key"))?;
                // Signing with an explicit version is refused below both limits.
                let oldest = info
                    .min_available_version
                    .max(info.min_decryption_version)
                    .max(info.min_encryption_version)
                    .max(1);
                let mut found = None;
                for version in (oldest..=info.latest_version).rev() {
                    let public = self.public_key_at(key, Some(version)).await?;
                    if canonical_spki(&public.der)? == wanted {
                        found = Some(version);
                        break;
                    }
                }
                let version = found.ok_or(Error::CertificateKeyMismatch { key })?;
                (version, wanted)
            }
        };
        let spki = SubjectPublicKeyInfoOwned::from_der(&spki)
            .map_err(der_err("read the key's public key"))?;
        Ok(CodeSigner {
            key,
            key_version,
            algorithm: SignatureAlgorithm::for_key(&spki, mechanism)?,
            certificate,
            chain,
        })
    }

    /// A detached CMS signature of the file whose digest is `digest` (RFC 5652 §5, DER):
    /// `ContentInfo` of id-signedData; the encapsulated content id-data without content; the
    /// signer's certificate and chain; one SignerInfo (IssuerAndSerialNumber, version 1) with
    /// the signed attributes content-type (id-data), signing-time (`signing_time`, UTCTime
    /// before 2050, RFC 5652 §11.3) and message-digest (§11.2). The HSM signs the DER of the
    /// signed attributes as a SET OF (§5.4) with `signer`'s key version.
    ///
    /// # Errors
    /// [`Error::MissingCertificate`] when `signer` was made without a certificate;
    /// [`Error::DigestMismatch`] when `digest` is not of the signer's hash; [`Error::Der`];
    /// API errors of the signature.
    pub async fn sign_detached_cms(
        &self,
        signer: &CodeSigner,
        digest: &FileDigest,
        signing_time: SystemTime,
    ) -> Result<Vec<u8>> {
        let cert = signer
            .certificate
            .as_ref()
            .ok_or(Error::MissingCertificate)?;
        check_digest(signer, digest)?;
        let signed_attrs = signed_attributes(digest, signing_time)?;
        let to_sign = signed_attrs
            .to_der()
            .map_err(der_err("encode the signed attributes"))?;
        let signature = self
            .sign_versioned(&SignItem {
                key: signer.key,
                mechanism: signer.algorithm.mechanism().to_owned(),
                input: SignInput::Message(to_sign),
                encoding: None,
                key_version: Some(signer.key_version),
            })
            .await?;
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: digest.algorithm().identifier(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: signer.algorithm.identifier()?,
            signature: OctetString::new(signature.bytes)
                .map_err(der_err("encode the signature"))?,
            unsigned_attrs: None,
        };
        let certificates = std::iter::once(cert)
            .chain(&signer.chain)
            .map(|c| CertificateChoices::Certificate(c.clone()))
            .collect::<Vec<_>>();
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![digest.algorithm().identifier()])
                .map_err(der_err("encode the digest algorithms"))?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: rfc5911::ID_DATA,
                econtent: None,
            },
            certificates: Some(
                CertificateSet::try_from(certificates)
                    .map_err(der_err("encode the certificates"))?,
            ),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer_info])
                .map_err(der_err("encode the signer info"))?,
        };
        ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data).map_err(der_err("encode the SignedData"))?,
        }
        .to_der()
        .map_err(der_err("encode the ContentInfo"))
    }

    /// The raw signature of the file whose digest is `digest`: what `POST /v1/crypto/sign`
    /// returns for the whole file (ECDSA: DER `Ecdsa-Sig-Value`; RSA: modulus-length bytes),
    /// made from the digest.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for Ed25519 (it signs whole messages, which the HSM would have
    /// to receive); [`Error::DigestMismatch`]; API errors of the signature.
    pub async fn sign_digest_raw(
        &self,
        signer: &CodeSigner,
        digest: &FileDigest,
    ) -> Result<Vec<u8>> {
        if !signer.algorithm.signs_digests() {
            return Err(Error::Unsupported(
                "a raw Ed25519 signature covers the whole file, which would have to be sent to \
                 the HSM: use a CMS signature (its signed attributes are what Ed25519 signs)",
            ));
        }
        check_digest(signer, digest)?;
        let signature = self
            .sign_versioned(&SignItem {
                key: signer.key,
                mechanism: signer.algorithm.mechanism().to_owned(),
                input: SignInput::Digest(digest.as_bytes().to_vec()),
                encoding: None,
                key_version: Some(signer.key_version),
            })
            .await?;
        Ok(signature.bytes)
    }
}

fn check_digest(signer: &CodeSigner, digest: &FileDigest) -> Result<()> {
    if digest.algorithm() != signer.algorithm.digest() {
        return Err(Error::DigestMismatch {
            expected: signer.algorithm.digest().to_string(),
            got: digest.algorithm().to_string(),
        });
    }
    Ok(())
}

/// content-type (id-data), signing-time and message-digest, as a DER SET OF.
fn signed_attributes(digest: &FileDigest, signing_time: SystemTime) -> Result<SignedAttributes> {
    let attribute = |oid: ObjectIdentifier, value: der::Result<Any>| -> Result<Attribute> {
        let value = value.map_err(der_err("encode a signed attribute"))?;
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])
                .map_err(der_err("encode a signed attribute"))?,
        })
    };
    let attrs = vec![
        attribute(
            rfc5911::ID_CONTENT_TYPE,
            Any::encode_from(&rfc5911::ID_DATA),
        )?,
        attribute(
            rfc5911::ID_SIGNING_TIME,
            Any::encode_from(&cms_time(signing_time)?),
        )?,
        attribute(
            rfc5911::ID_MESSAGE_DIGEST,
            OctetString::new(digest.as_bytes()).and_then(|d| Any::encode_from(&d)),
        )?,
    ];
    SetOfVec::try_from(attrs).map_err(der_err("encode the signed attributes"))
}

/// `time` in whole seconds: UTCTime from 1950 to 2049, GeneralizedTime otherwise (RFC 5652
/// §11.3).
pub(crate) fn cms_time(time: SystemTime) -> Result<Time> {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Error::Der {
            what: "encode the signing time",
            source: der::ErrorKind::DateTime.into(),
        })?;
    let dt = DateTime::from_unix_duration(Duration::from_secs(since_epoch.as_secs()))
        .map_err(der_err("encode the signing time"))?;
    if dt.year() < 2050 {
        UtcTime::from_date_time(dt)
            .map(Time::UtcTime)
            .map_err(der_err("encode the signing time"))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_a_certificate_is_an_error_that_says_so() {
        for text in [
            &b""[..],
            b"\n",
            b"hello",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            let err = certificates_from_pem(text).unwrap_err().to_string();
            assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
        }
        let err = certificates_from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("cannot read the PEM certificates"), "{err}");
    }

    #[test]
    fn signing_times_before_2050_are_utc_times_and_later_ones_generalized() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(matches!(cms_time(t).unwrap(), Time::UtcTime(_)));
        // 2050-01-01T00:00:00Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(2_524_608_000);
        assert!(matches!(cms_time(t).unwrap(), Time::GeneralTime(_)));
    }

    #[test]
    fn signed_attributes_are_a_sorted_set_with_the_digest() {
        let digest = super::super::DigestAlgorithm::Sha256
            .hash_reader(&b"hello"[..])
            .unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let attrs = signed_attributes(&digest, t).unwrap();
        let der = attrs.to_der().unwrap();
        assert_eq!(der[0], 0x31, "a SET OF (RFC 5652 §5.4)");
        let oids: Vec<_> = attrs.iter().map(|a| a.oid).collect();
        assert_eq!(oids.len(), 3);
        assert!(oids.contains(&rfc5911::ID_CONTENT_TYPE));
        assert!(oids.contains(&rfc5911::ID_SIGNING_TIME));
        let md = attrs
            .iter()
            .find(|a| a.oid == rfc5911::ID_MESSAGE_DIGEST)
            .unwrap();
        let value = md
            .values
            .get(0)
            .unwrap()
            .decode_as::<OctetString>()
            .unwrap();
        assert_eq!(value.as_bytes(), digest.as_bytes());
    }
}
