//! Certificates and CSRs signed inside the HSM (rcgen with the HSM as the signer).

use std::net::IpAddr;

use anyhow::{Context, Result};
use keyward_hsm::{KeySigner, KeySpec, SignMechanism};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    SanType, SignatureAlgorithm,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// An HSM private key seen by rcgen: it gives the public key and signs the TBS bytes.
pub(crate) struct HsmRcgenKey {
    signer: KeySigner,
    raw_public_key: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    mechanism: SignMechanism,
}

impl HsmRcgenKey {
    pub(crate) fn new(signer: KeySigner) -> Result<Self> {
        let (algorithm, mechanism) = match signer.spec() {
            KeySpec::EcP256 => (&rcgen::PKCS_ECDSA_P256_SHA256, SignMechanism::EcdsaSha256),
            KeySpec::EcP384 => (&rcgen::PKCS_ECDSA_P384_SHA384, SignMechanism::EcdsaSha384),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                (&rcgen::PKCS_RSA_SHA256, SignMechanism::RsaPkcs1Sha256)
            }
            KeySpec::EcP521 => (&rcgen::PKCS_ECDSA_P521_SHA512, SignMechanism::EcdsaSha512),
            KeySpec::Ed25519 => (&rcgen::PKCS_ED25519, SignMechanism::Ed25519),
            other => anyhow::bail!("{other} keys cannot sign certificates"),
        };
        let (_, spki) = SubjectPublicKeyInfo::from_der(signer.spki_der())
            .context("HSM public key is not valid SPKI")?;
        let raw_public_key = spki.subject_public_key.data.to_vec();
        Ok(HsmRcgenKey {
            signer,
            raw_public_key,
            algorithm,
            mechanism,
        })
    }
}

impl rcgen::PublicKeyData for HsmRcgenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public_key
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for HsmRcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign(self.mechanism, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Checks a DNS name for a certificate (RFC 5280 §4.2.1.6, RFC 1035 preferred syntax; a
/// leading `*.` wildcard label allowed).
fn check_dns_name(name: &str) -> Result<()> {
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
        anyhow::bail!("--dns {name:?} is not a valid DNS name")
    }
}

fn params(dns: &[String], ips: &[IpAddr]) -> Result<CertificateParams> {
    for name in dns {
        check_dns_name(name)?;
    }
    let mut p = CertificateParams::new(dns.to_vec()).context("invalid DNS name")?;
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
/// hour ago, for TLS servers. Returns PEM.
pub(crate) fn self_signed(
    key: &HsmRcgenKey,
    dns: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<String> {
    let mut p = params(dns, ips)?;
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now
        .checked_add(time::Duration::days(i64::from(days)))
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| anyhow::anyhow!("--days {days} ends after the year 9999"))?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // A fresh random serial for every certificate (RFC 5280 §4.1.2.2: unique per issuer; CA/B
    // Forum: at least 64 random bits). 16 bytes, top bit clear so the INTEGER is positive.
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).context("no randomness for the serial number")?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = p
        .self_signed(key)
        .context("signing the certificate in the HSM failed")?;
    Ok(cert.pem())
}

/// A PKCS#10 certificate signing request (RFC 2986), signed by the HSM key. Returns PEM.
pub(crate) fn csr(key: &HsmRcgenKey, dns: &[String], ips: &[IpAddr]) -> Result<String> {
    let p = params(dns, ips)?;
    let req = p
        .serialize_request(key)
        .context("signing the CSR in the HSM failed")?;
    req.pem().context("encoding the CSR")
}
