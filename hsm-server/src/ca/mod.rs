//! Keyward's issuing CA: root and intermediate CAs whose keys the HSM generates and never
//! releases, certificates issued from PKCS#10 requests or for HSM keys under named
//! [`Profile`]s, revocation, CRLs ([`crl`]) and OCSP ([`ocsp`]). rcgen builds certificates
//! and CRLs, x509-parser reads requests, RustCrypto's `x509-ocsp` encodes OCSP; every
//! signature is made by the CA's key in the HSM ([`crate::pki::HsmCertKey`]). The register
//! (CAs, issued certificates, revocations, the newest CRL) is `keyward-hsm`'s `ca` records;
//! each change there is audited.

pub mod api;
pub mod crl;
pub mod ocsp;
#[cfg(test)]
mod ocsp_tests;
pub mod pointers;
pub mod profile;

use std::net::IpAddr;

use keyward_hsm::{
    AttributeName, CaRecord, CaSettings, CertRecord, Error, Hsm, KeyClass, KeyHandle, KeySpec,
    KeyTemplate, Session,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer,
    KeyUsagePurpose, NameConstraints, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

pub use profile::Profile;

use crate::pki::HsmCertKey;

/// Longest validity of a CA certificate, in days (100 years).
pub const MAX_CA_DAYS: u32 = 36_500;

/// Refuses to act under `ca` when its certificate, or that of a CA above it, was revoked in
/// the register of the CA that issued it.
fn parent_still_valid(hsm: &Hsm, ca: &CaRecord) -> Result<(), Error> {
    let mut child = ca.clone();
    while let Some(parent) = child.parent.clone() {
        let serial = x509_parser::certificate::X509Certificate::from_der(&child.certificate)
            .map(|(_, c)| hex::encode(c.raw_serial()))
            .map_err(|_| Error::Internal("the CA certificate does not parse"))?;
        match hsm.issued_certificate(&parent, &serial) {
            Ok(c) if c.revocation.is_some() => {
                return Err(refused(format!(
                    "CA {}'s certificate was revoked by CA {parent}",
                    child.name
                )))
            }
            Ok(_) | Err(Error::CertificateNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        child = hsm.ca(&parent)?;
    }
    Ok(())
}

/// What a new CA is ([`create`]).
#[derive(Clone, Debug)]
pub struct NewCa {
    /// Its name.
    pub name: String,
    /// Its certificate's subject common name.
    pub common_name: String,
    /// Its key type (EC P-256/P-384, RSA 3072/4096).
    pub spec: KeySpec,
    /// Its certificate's validity in days.
    pub validity_days: u32,
    /// The CA that signs it; `None` for a root.
    pub parent: Option<String>,
    /// What it may issue (`path_len` and `permitted_dns` also go into its certificate).
    pub settings: CaSettings,
}

fn refused(reason: String) -> Error {
    Error::CertificateRequestRefused { reason }
}

fn internal(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |_| Error::Internal(what)
}

/// Now, in whole seconds (X.509 times have no fraction).
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn unix_s(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

/// A fresh random serial: 16 bytes, positive, first byte non-zero (RFC 5280 §4.1.2.2; CA/B
/// Forum: at least 64 random bits). Returns the bytes and their lowercase hex.
fn new_serial() -> Result<(Vec<u8>, String), Error> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::Internal("no randomness"))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    Ok((serial.to_vec(), hex::encode(serial)))
}

/// The `notAfter` of a DER certificate.
pub fn not_after(cert_der: &[u8]) -> Result<OffsetDateTime, Error> {
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map_err(|_| Error::Internal("stored certificate does not parse"))?;
    OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp())
        .map_err(|_| Error::Internal("certificate time out of range"))
}

/// The subject of a DER certificate, RFC 4514 text.
pub fn subject(cert_der: &[u8]) -> String {
    x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

/// PEM of DER certificates, one block each.
pub fn pem_chain<'a>(certs: impl IntoIterator<Item = &'a Vec<u8>>) -> String {
    certs
        .into_iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())))
        .collect()
}

/// The issuer of CA `ca`: its certificate's name and key identifier, its HSM key signing.
fn issuer(
    hsm: &Hsm,
    session: &Session,
    ca: &CaRecord,
) -> Result<Issuer<'static, HsmCertKey>, Error> {
    let key = HsmCertKey::new(hsm.signer(session, ca.key)?).map_err(|e| Error::InvalidInput {
        reason: e.to_string(),
    })?;
    Issuer::from_ca_cert_der(&ca.certificate.clone().into(), key)
        .map_err(internal("the CA certificate does not parse"))
}

/// Creates a CA: generates its key pair in the HSM (labelled `ca-NAME`; the private key signs,
/// is not extractable and, once the CA is registered, bound to it: neither destroyable nor
/// modifiable, and refused for raw signing), makes its certificate (self-signed, or signed by `parent`'s key:
/// the caller must be allowed to sign with it), and registers it. On failure after the key
/// was made, the key is destroyed.
///
/// # Errors
/// [`Error::CaExists`], [`Error::CaNotFound`] (parent), [`Error::InvalidInput`],
/// [`Error::CertificateRequestRefused`] (names outside the parent's constraints, a validity
/// beyond the parent's), the key errors of [`Hsm`].
pub fn create(hsm: &Hsm, session: &Session, new: &NewCa) -> Result<CaRecord, Error> {
    keyward_hsm::check_ca_name(&new.name)?;
    match hsm.ca(&new.name) {
        Ok(_) => {
            return Err(Error::CaExists {
                name: new.name.clone(),
            })
        }
        Err(Error::CaNotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    if !matches!(
        new.spec,
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::Rsa3072 | KeySpec::Rsa4096
    ) {
        return Err(Error::InvalidInput {
            reason: format!(
                "a CA key is ec-p256, ec-p384, rsa-3072 or rsa-4096, not {}",
                new.spec
            ),
        });
    }
    if new.validity_days == 0 {
        return Err(Error::InvalidInput {
            reason: "validity_days must be at least 1".into(),
        });
    }
    if new.validity_days > MAX_CA_DAYS {
        return Err(Error::InvalidInput {
            reason: format!("validity_days must be 1 to {MAX_CA_DAYS}"),
        });
    }
    let parent = new.parent.as_deref().map(|p| hsm.ca(p)).transpose()?;
    let mut settings = new.settings.clone();
    if let Some(p) = &parent {
        // The caller must be allowed to use the parent before learning anything about it.
        hsm.may_use_ca(session, p)?;
        parent_still_valid(hsm, p)?;
        // An intermediate lives inside its parent's constraints.
        match (p.settings.path_len, settings.path_len) {
            (Some(0), _) => {
                return Err(refused(format!(
                    "CA {} has path length 0: it cannot sign another CA",
                    p.name
                )))
            }
            (Some(n), None) => settings.path_len = Some(n - 1),
            (Some(n), Some(m)) if m >= n => {
                return Err(refused(format!(
                    "path length {m} is not below CA {}'s {n}",
                    p.name
                )))
            }
            _ => {}
        }
    }
    profile::check_ca_settings(
        &new.common_name,
        &mut settings,
        parent.as_ref().map(|p| &p.settings),
    )?;

    let label = format!("ca-{}", new.name);
    let private = KeyTemplate::labelled(&label)
        .with(AttributeName::Sign, true)
        .with(AttributeName::Extractable, false);
    let public = KeyTemplate::labelled(&label).with(AttributeName::Verify, true);
    let (key, pubkey) = hsm.generate_key_pair(session, new.spec, &private, &public)?;
    let mut recorded: Option<(String, String)> = None;
    let made = (|| {
        let signer =
            HsmCertKey::new(hsm.signer(session, key.handle)?).map_err(|e| Error::InvalidInput {
                reason: e.to_string(),
            })?;
        let now = now();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, new.common_name.as_str());
        p.distinguished_name = dn;
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = p.not_before + time::Duration::days(i64::from(new.validity_days));
        if let Some(parent) = &parent {
            let limit = not_after(&parent.certificate)?;
            if p.not_after > limit {
                p.not_after = limit;
            }
        }
        p.is_ca = IsCa::Ca(match settings.path_len {
            Some(n) => BasicConstraints::Constrained(n),
            None => BasicConstraints::Unconstrained,
        });
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        if !settings.permitted_dns.is_empty() {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: settings
                    .permitted_dns
                    .iter()
                    .map(|n| GeneralSubtree::DnsName(n.clone()))
                    .collect(),
                excluded_subtrees: Vec::new(),
            });
        }
        let (serial, _) = new_serial()?;
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        let (der, chain) = match &parent {
            None => (
                p.self_signed(&signer)
                    .map_err(internal("signing the CA certificate failed"))?
                    .der()
                    .to_vec(),
                Vec::new(),
            ),
            Some(parent) => {
                p.use_authority_key_identifier_extension = true;
                pointers::apply(&parent.settings, &mut p)?;
                let issuer = issuer(hsm, session, parent)?;
                let der = p
                    .signed_by(&signer, &issuer)
                    .map_err(internal("signing the CA certificate failed"))?
                    .der()
                    .to_vec();
                let mut chain = vec![parent.certificate.clone()];
                chain.extend(parent.chain.iter().cloned());
                (der, chain)
            }
        };
        if let Some(parent) = &parent {
            // The parent's register holds the intermediate like any certificate it issued,
            // so the parent can revoke it.
            recorded = Some((parent.name.clone(), hex::encode(&serial)));
            hsm.record_issued(
                session,
                &CertRecord {
                    ca: parent.name.clone(),
                    serial: hex::encode(&serial),
                    profile: Profile::Intermediate.name().to_owned(),
                    subject: format!("CN={}", new.common_name),
                    dns: Vec::new(),
                    ips: Vec::new(),
                    not_before_unix_s: unix_s(p.not_before),
                    not_after_unix_s: unix_s(p.not_after),
                    certificate: der.clone(),
                    issued_by: session.user().to_owned(),
                    issued_unix_ms: unix_s(now) * 1000,
                    revocation: None,
                },
            )?;
        }
        let record = CaRecord {
            name: new.name.clone(),
            key: key.handle,
            owner: session.user().to_owned(),
            parent: new.parent.clone(),
            certificate: der,
            chain,
            settings,
            crl_number: 0,
            crl: None,
            crl_next_update_unix_s: 0,
            revoked: Vec::new(),
            created_unix_ms: unix_s(now) * 1000,
        };
        hsm.create_ca(session, &record)?;
        Ok(record)
    })();
    if made.is_err() {
        let _ = hsm.destroy_key(session, key.handle);
        let _ = hsm.destroy_key(session, pubkey.handle);
        if let Some((parent, serial)) = recorded {
            // Its key is gone: the certificate must not stay valid (5: cessationOfOperation).
            let _ = hsm.revoke_certificate(session, &parent, &serial, 5);
        }
    }
    made
}

/// What to certify ([`issue`]).
#[derive(Clone, Debug)]
pub enum Subject {
    /// A PKCS#10 request, DER: its signature is checked.
    Csr(Vec<u8>),
    /// A private key in the HSM the caller may see.
    Key(KeyHandle),
}

/// A certificate request ([`issue`]).
#[derive(Clone, Debug)]
pub struct Request {
    /// The profile.
    pub profile: Profile,
    /// The key to certify.
    pub subject: Subject,
    /// DNS names; empty: the CSR's.
    pub dns: Vec<String>,
    /// IP addresses; empty: the CSR's.
    pub ips: Vec<IpAddr>,
    /// Subject common name; `None`: the CSR's, else the first DNS name.
    pub common_name: Option<String>,
    /// Validity in days; `None`: the smaller of the profile's and the CA's limit.
    pub validity_days: Option<u32>,
}

/// What a CSR asks for: its public key (SPKI DER), names and common name.
struct CsrContents {
    spki: Vec<u8>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    common_name: Option<String>,
}

fn read_csr(der: &[u8]) -> Result<CsrContents, Error> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|_| refused("the CSR does not parse as PKCS#10 (RFC 2986)".into()))?;
    if !rest.is_empty() {
        return Err(refused("the CSR has trailing bytes".into()));
    }
    // The key first: a weak key is refused as such (aws-lc-rs would not even verify with it).
    profile::check_public_key(csr.certification_request_info.subject_pki.raw)?;
    csr.verify_signature()
        .map_err(|_| refused("the CSR's signature does not verify with its public key".into()))?;
    let info = &csr.certification_request_info;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                        16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                        _ => return Err(refused("the CSR has a malformed IP name".into())),
                    },
                    other => {
                        return Err(refused(format!(
                            "the CSR asks for a name of a kind this CA does not issue: {other}"
                        )))
                    }
                }
            }
        }
    }
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CsrContents {
        spki: info.subject_pki.raw.to_vec(),
        dns,
        ips,
        common_name,
    })
}

/// Issues a certificate from CA `ca_name` under `req.profile`: the request must meet the
/// profile and the CA's settings (names, key strength, validity), then the CA's key signs it
/// in the HSM and the register records it (audited `ca.issue`). The caller must be allowed
/// to sign with the CA's key.
///
/// # Errors
/// [`Error::CertificateRequestRefused`] naming what was refused; [`Error::CaNotFound`]; the key
/// errors of [`Hsm`].
pub fn issue(
    hsm: &Hsm,
    session: &Session,
    ca_name: &str,
    req: &Request,
) -> Result<CertRecord, Error> {
    let issued = issue_checked(hsm, session, ca_name, req);
    match &issued {
        // Refused before the register's own (audited) commit: recorded here.
        Err(e) if !matches!(e, Error::Store(_) | Error::CaNotFound { .. }) => {
            if let Err(audit) = hsm.record_refused_issue(session, ca_name, e) {
                tracing::warn!(ca = ca_name, error = %audit, "a refused certificate request could not be audited");
            }
        }
        _ => {}
    }
    issued
}

fn issue_checked(
    hsm: &Hsm,
    session: &Session,
    ca_name: &str,
    req: &Request,
) -> Result<CertRecord, Error> {
    let ca = hsm.ca(ca_name)?;
    hsm.may_use_ca(session, &ca)?;
    parent_still_valid(hsm, &ca)?;
    if req.profile == Profile::Intermediate && ca.settings.path_len == Some(0) {
        return Err(refused(format!(
            "CA {} has path length 0: it cannot sign another CA",
            ca.name
        )));
    }
    let issuer = issuer(hsm, session, &ca)?;
    let (spki, mut dns, mut ips, csr_cn) = match &req.subject {
        Subject::Csr(der) => {
            let c = read_csr(der)?;
            (c.spki, c.dns, c.ips, c.common_name)
        }
        Subject::Key(handle) => {
            let info = hsm.key_info(session, *handle)?;
            if info.class != KeyClass::Private {
                return Err(Error::InvalidInput {
                    reason: format!("key {handle} is not a private key"),
                });
            }
            (
                hsm.public_key_spki(session, *handle)?,
                Vec::new(),
                Vec::new(),
                None,
            )
        }
    };
    if !req.dns.is_empty() || !req.ips.is_empty() {
        dns = req.dns.iter().map(|d| d.to_ascii_lowercase()).collect();
        ips = req.ips.clone();
    } else if matches!(req.profile, Profile::CodeSigning | Profile::Intermediate) {
        // These profiles carry no names: a CSR's are ignored (asking for names is refused).
        dns.clear();
        ips.clear();
    }
    dns.dedup();
    let key = profile::check_public_key(&spki)?;
    profile::check_names(&ca.settings, req.profile, &dns, &ips)?;
    let limit = req.profile.max_days().min(ca.settings.max_validity_days);
    let days = req.validity_days.unwrap_or(limit);
    if days == 0 || days > limit {
        return Err(refused(format!(
            "a validity of {days} days is outside 1 to {limit} (the {} profile allows {}, CA {} {})",
            req.profile.name(),
            req.profile.max_days(),
            ca.name,
            ca.settings.max_validity_days
        )));
    }
    let common_name = req
        .common_name
        .clone()
        .or(csr_cn)
        .or_else(|| dns.first().cloned())
        .or_else(|| ips.first().map(ToString::to_string))
        .ok_or_else(|| refused("the certificate needs a common name".into()))?;
    if common_name.is_empty() || common_name.len() > 64 {
        return Err(refused(
            "the common name must be 1 to 64 characters (RFC 5280 ub-common-name)".into(),
        ));
    }
    if req.profile == Profile::TlsServer
        && !dns.iter().any(|d| d.eq_ignore_ascii_case(&common_name))
        && !ips.iter().any(|i| i.to_string() == common_name)
    {
        // A TLS server's names are its SANs (RFC 6125 §6.4.4); a CN that is not one of them
        // would be a name the SAN policy never saw.
        return Err(refused(format!(
            "common name {common_name:?} is not one of the certificate's DNS or IP names"
        )));
    }

    let now = now();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name.as_str());
    p.distinguished_name = dn;
    p.subject_alt_names = dns
        .iter()
        .map(|d| {
            d.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| refused(format!("{d:?} is not a DNS name")))
        })
        .collect::<Result<_, _>>()?;
    p.subject_alt_names
        .extend(ips.iter().map(|i| SanType::IpAddress(*i)));
    p.not_before = now - time::Duration::minutes(5);
    p.not_after =
        (p.not_before + time::Duration::days(i64::from(days))).min(not_after(&ca.certificate)?);
    p.key_usages = req.profile.key_usages(key.rsa);
    p.extended_key_usages = req.profile.extended_key_usages();
    p.is_ca = match req.profile {
        Profile::Intermediate => {
            // Held to this CA's policy by its certificate, since its key is not in the HSM.
            p.name_constraints = profile::sub_ca_constraints(&ca.settings);
            IsCa::Ca(BasicConstraints::Constrained(0))
        }
        _ => IsCa::ExplicitNoCa,
    };
    p.use_authority_key_identifier_extension = true;
    pointers::apply(&ca.settings, &mut p)?;
    let (serial, serial_hex) = new_serial()?;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = p
        .signed_by(&key, &issuer)
        .map_err(internal("signing the certificate in the HSM failed"))?;
    let record = CertRecord {
        ca: ca.name.clone(),
        serial: serial_hex,
        profile: req.profile.name().to_owned(),
        subject: format!("CN={common_name}"),
        dns,
        ips: ips.iter().map(ToString::to_string).collect(),
        not_before_unix_s: unix_s(p.not_before),
        not_after_unix_s: unix_s(p.not_after),
        certificate: cert.der().to_vec(),
        issued_by: session.user().to_owned(),
        issued_unix_ms: unix_s(now) * 1000,
        revocation: None,
    };
    hsm.record_issued(session, &record)?;
    Ok(record)
}

/// The names of RFC 5280 §5.3.1's reason codes.
/// (`removeFromCRL`, 8, is for delta CRLs only and is not taken.)
pub const REASONS: [(u8, &str); 9] = [
    (0, "unspecified"),
    (1, "keyCompromise"),
    (2, "cACompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (6, "certificateHold"),
    (9, "privilegeWithdrawn"),
    (10, "aACompromise"),
];

/// The reason code named `name`.
///
/// # Errors
/// [`Error::InvalidInput`] listing the names.
pub fn reason_code(name: &str) -> Result<u8, Error> {
    REASONS
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(c, _)| *c)
        .ok_or_else(|| Error::InvalidInput {
            reason: format!(
                "unknown revocation reason {name:?}: {}",
                REASONS.map(|(_, n)| n).join(", ")
            ),
        })
}

/// The name of reason code `code`.
pub fn reason_name(code: u8) -> &'static str {
    REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unspecified", |(_, n)| n)
}

/// A TLS server certificate from CA `ca_name` for the proxy's key labelled `key_label` on
/// this node (owned by the proxy's service user), as `keyward cert issue` without `--server`
/// and the proxy's renewal make it: the key signs a CSR, and the CA issues from it on its
/// owner's behalf (whoever runs this holds the node's master key). Returns the record and
/// the full chain, PEM (leaf first).
///
/// # Errors
/// As [`issue`]; [`Error::LabelNotFound`] for the key.
pub fn issue_for_proxy_key(
    hsm: &Hsm,
    ca_name: &str,
    key_label: &str,
    dns: &[String],
    ips: &[IpAddr],
    validity_days: Option<u32>,
) -> Result<(CertRecord, String), Error> {
    let proxy = hsm.service_session(keyward_hsm::PROXY_USER)?;
    let info = hsm.find_by_label(&proxy, key_label, KeyClass::Private)?;
    let key =
        HsmCertKey::new(hsm.signer(&proxy, info.handle)?).map_err(|e| Error::InvalidInput {
            reason: e.to_string(),
        })?;
    let csr = crate::pki::csr(&key, dns, ips).map_err(|e| Error::InvalidInput {
        reason: e.to_string(),
    })?;
    let der = pem::parse(csr.as_bytes())
        .map_err(|_| Error::Internal("CSR PEM"))?
        .into_contents();
    let session = hsm.ca_service_session(ca_name)?;
    let record = issue(
        hsm,
        &session,
        ca_name,
        &Request {
            profile: Profile::TlsServer,
            subject: Subject::Csr(der),
            dns: dns.to_vec(),
            ips: ips.to_vec(),
            common_name: None,
            validity_days,
        },
    )?;
    let ca = hsm.ca(ca_name)?;
    let chain = pem_chain(
        std::iter::once(&record.certificate)
            .chain(std::iter::once(&ca.certificate))
            .chain(&ca.chain),
    );
    Ok((record, chain))
}

/// A certificate's DNS and IP names.
pub type Names = (Vec<String>, Vec<IpAddr>);

/// What a served certificate's renewal needs from its chain file (PEM, leaf first): `None`
/// while it has more than `before_days` left, else its DNS and IP names (the new certificate
/// carries the same).
///
/// # Errors
/// [`Error::InvalidInput`] when the file holds no certificate that parses.
pub fn renewal_due(chain_pem: &[u8], before_days: u32) -> Result<Option<Names>, Error> {
    use x509_parser::extensions::GeneralName;
    let bad = || Error::InvalidInput {
        reason: "the chain file holds no certificate that parses".into(),
    };
    let block = x509_parser::pem::parse_x509_pem(chain_pem)
        .map_err(|_| bad())?
        .1;
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(&block.contents).map_err(|_| bad())?;
    let left = cert.validity().not_after.timestamp() - now().unix_timestamp();
    if left > i64::from(before_days) * 86_400 {
        return Ok(None);
    }
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()));
                }
                GeneralName::IPAddress(b) if b.len() == 16 => {
                    ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()));
                }
                _ => {}
            }
        }
    }
    Ok(Some((dns, ips)))
}
