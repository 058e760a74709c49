//! Certificates and CSRs signed inside the HSM: rcgen builds them, an HSM key signs them
//! ([`HsmCertKey`]), so the private key never leaves the HSM.
//!
//! Today: self-signed TLS server certificates (X.509 v3, RFC 5280) and PKCS#10 requests
//! (RFC 2986) for `keyward cert`, `keyward init` and the quickstart. The CA work will grow
//! issuing here, where both the CLI and the API can use it.

use std::net::IpAddr;

use keyward_hsm::{
    AttributeName, Hsm, KeyInfo, KeySigner, KeySpec, KeyTemplate, Session, SignMechanism,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    SanType, SignatureAlgorithm,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::NodeError;

/// Generates a TLS key pair labelled `label`: the private key signs and is not extractable,
/// the public key verifies. Returns `(private, public)`.
pub fn generate_tls_key(
    hsm: &Hsm,
    session: &Session,
    spec: KeySpec,
    label: &str,
) -> Result<(KeyInfo, KeyInfo), keyward_hsm::Error> {
    let private = KeyTemplate::labelled(label)
        .with(AttributeName::Sign, true)
        .with(AttributeName::Extractable, false);
    let public = KeyTemplate::labelled(label).with(AttributeName::Verify, true);
    hsm.generate_key_pair(session, spec, &private, &public)
}

/// An HSM private key seen by rcgen: it gives the public key and signs the TBS bytes.
pub struct HsmCertKey {
    signer: KeySigner,
    raw_public_key: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    mechanism: SignMechanism,
}

impl HsmCertKey {
    /// The signer of an EC (P-256, P-384, P-521), RSA or Ed25519 key; RSA signs with
    /// PKCS#1 v1.5 SHA-256. Fails with [`NodeError::CannotSignCertificates`] for other keys.
    pub fn new(signer: KeySigner) -> Result<Self, NodeError> {
        let (algorithm, mechanism) = match signer.spec() {
            KeySpec::EcP256 => (&rcgen::PKCS_ECDSA_P256_SHA256, SignMechanism::EcdsaSha256),
            KeySpec::EcP384 => (&rcgen::PKCS_ECDSA_P384_SHA384, SignMechanism::EcdsaSha384),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                (&rcgen::PKCS_RSA_SHA256, SignMechanism::RsaPkcs1Sha256)
            }
            KeySpec::EcP521 => (&rcgen::PKCS_ECDSA_P521_SHA512, SignMechanism::EcdsaSha512),
            KeySpec::Ed25519 => (&rcgen::PKCS_ED25519, SignMechanism::Ed25519),
            other => return Err(NodeError::CannotSignCertificates { spec: other }),
        };
        let (_, spki) =
            SubjectPublicKeyInfo::from_der(signer.spki_der()).map_err(|_| NodeError::BadSpki)?;
        let raw_public_key = spki.subject_public_key.data.to_vec();
        Ok(HsmCertKey {
            signer,
            raw_public_key,
            algorithm,
            mechanism,
        })
    }
}

impl rcgen::PublicKeyData for HsmCertKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public_key
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for HsmCertKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign(self.mechanism, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Checks a DNS name for a certificate (RFC 5280 §4.2.1.6, RFC 1035 preferred syntax; a
/// leading `*.` wildcard label allowed).
pub(crate) fn check_dns_name(name: &str) -> Result<(), NodeError> {
    let body = name.strip_prefix("*.").unwrap_or(name);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(NodeError::InvalidDnsName {
            name: name.to_owned(),
        })
    }
}

fn params(dns: &[String], ips: &[IpAddr]) -> Result<CertificateParams, NodeError> {
    for name in dns {
        check_dns_name(name)?;
    }
    let mut p = CertificateParams::new(dns.to_vec()).map_err(|source| NodeError::Certificate {
        what: "invalid DNS name",
        source,
    })?;
    for ip in ips {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let mut dn = DistinguishedName::new();
    let cn = dns
        .first()
        .cloned()
        .or_else(|| ips.first().map(|i| i.to_string()))
        .unwrap_or_default();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    Ok(p)
}

/// A self-signed end-entity certificate (X.509 v3, RFC 5280) valid for `days` days from one
/// hour ago, for TLS servers, with a random 128-bit serial. Returns PEM.
pub fn self_signed(
    key: &impl rcgen::SigningKey,
    dns: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<String, NodeError> {
    let mut p = params(dns, ips)?;
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now
        .checked_add(time::Duration::days(i64::from(days)))
        .filter(|t| t.year() <= 9999)
        .ok_or(NodeError::ValidityTooLong { days })?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // A fresh random serial for every certificate (RFC 5280 §4.1.2.2: unique per issuer; CA/B
    // Forum: at least 64 random bits). 16 bytes, top bit clear so the INTEGER is positive.
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| NodeError::NoRandomness)?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = p
        .self_signed(key)
        .map_err(|source| NodeError::Certificate {
            what: "signing the certificate in the HSM failed",
            source,
        })?;
    Ok(cert.pem())
}

/// A PKCS#10 certificate signing request (RFC 2986), signed by the HSM key. Returns PEM.
pub fn csr(key: &HsmCertKey, dns: &[String], ips: &[IpAddr]) -> Result<String, NodeError> {
    let p = params(dns, ips)?;
    let req = p
        .serialize_request(key)
        .map_err(|source| NodeError::Certificate {
            what: "signing the CSR in the HSM failed",
            source,
        })?;
    req.pem().map_err(|source| NodeError::Certificate {
        what: "encoding the CSR",
        source,
    })
}

/// The SubjectPublicKeyInfo (DER) of the first certificate in `pem`; `None` when `pem` holds
/// no parsable certificate.
pub fn certificate_spki(pem: &[u8]) -> Option<Vec<u8>> {
    let block = x509_parser::pem::parse_x509_pem(pem).ok()?.1;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&block.contents).ok()?;
    Some(cert.tbs_certificate.subject_pki.raw.to_vec())
}
