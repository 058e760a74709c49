//! Issuance profiles and the rules a request must meet: names the CA may issue, key strength,
//! validity. Each refusal is [`Error::CertificateRequestRefused`] naming the offending value.

use keyward_hsm::{CaSettings, Error};
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose, SignatureAlgorithm};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Smallest RSA modulus certified, in bits (NIST SP 800-131A Rev. 2: 2048 since 2014).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus certified, in bits.
pub const MAX_RSA_BITS: usize = 8192;

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// TLS server: `digitalSignature` (+ `keyEncipherment` for RSA), EKU `serverAuth`, at
    /// least one DNS or IP name, at most 397 days (CA/Browser Forum Baseline Requirements
    /// §6.3.2).
    TlsServer,
    /// TLS client: `digitalSignature`, EKU `clientAuth`, at most 397 days.
    TlsClient,
    /// Code signing: `digitalSignature`, EKU `codeSigning`, no DNS or IP names, at most 1095
    /// days.
    CodeSigning,
    /// A subordinate CA whose key is held elsewhere: `keyCertSign`, `cRLSign`, path length 0,
    /// at most 1825 days.
    Intermediate,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 4] = [
        Profile::TlsServer,
        Profile::TlsClient,
        Profile::CodeSigning,
        Profile::Intermediate,
    ];

    /// Its name: `tls-server`, `tls-client`, `code-signing`, `intermediate`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::TlsServer => "tls-server",
            Profile::TlsClient => "tls-client",
            Profile::CodeSigning => "code-signing",
            Profile::Intermediate => "intermediate",
        }
    }

    /// The profile named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the profiles.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::InvalidInput {
                reason: format!(
                    "unknown profile {name:?}: tls-server, tls-client, code-signing or intermediate"
                ),
            })
    }

    /// Longest validity, in days.
    pub fn max_days(self) -> u32 {
        match self {
            Profile::TlsServer | Profile::TlsClient => 397,
            Profile::CodeSigning => 1095,
            Profile::Intermediate => 1825,
        }
    }

    /// Its key usages (RFC 5280 §4.2.1.3).
    pub(super) fn key_usages(self, rsa: bool) -> Vec<KeyUsagePurpose> {
        match self {
            Profile::TlsServer if rsa => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            Profile::TlsServer | Profile::TlsClient | Profile::CodeSigning => {
                vec![KeyUsagePurpose::DigitalSignature]
            }
            Profile::Intermediate => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ],
        }
    }

    /// Its extended key usages (RFC 5280 §4.2.1.12).
    pub(super) fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Profile::TlsServer => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Profile::TlsClient => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Profile::CodeSigning => vec![ExtendedKeyUsagePurpose::CodeSigning],
            Profile::Intermediate => Vec::new(),
        }
    }
}

fn refused(reason: String) -> Error {
    Error::CertificateRequestRefused { reason }
}

/// Whether `name` (lowercase) matches an `allowed_dns` pattern: `example.com` that name,
/// `*.example.com` that wildcard or one label below, `.example.com` any name below.
fn allowed_by(pattern: &str, name: &str) -> bool {
    if let Some(base) = pattern.strip_prefix("*.") {
        if name == pattern {
            return true;
        }
        return name
            .strip_suffix(base)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.') && label != "*");
    }
    if pattern.starts_with('.') {
        return name.ends_with(pattern) && name.len() > pattern.len();
    }
    name == pattern
}

/// Whether `name` is inside the permitted DNS subtree `base` (RFC 5280 §4.2.1.10: the name
/// itself or any name below it).
fn within_subtree(base: &str, name: &str) -> bool {
    let base = base.trim_start_matches('.');
    name == base
        || name
            .strip_suffix(base)
            .is_some_and(|head| head.ends_with('.'))
}

/// Checks a request's names against the CA's settings and the profile.
///
/// # Errors
/// [`Error::CertificateRequestRefused`] naming the first name refused.
pub fn check_names(
    settings: &CaSettings,
    profile: Profile,
    dns: &[String],
    ips: &[std::net::IpAddr],
) -> Result<(), Error> {
    match profile {
        Profile::TlsServer if dns.is_empty() && ips.is_empty() => {
            return Err(refused(
                "a tls-server certificate needs at least one DNS or IP name".into(),
            ))
        }
        Profile::CodeSigning | Profile::Intermediate if !dns.is_empty() || !ips.is_empty() => {
            return Err(refused(format!(
                "the {} profile issues no DNS or IP names",
                profile.name()
            )))
        }
        _ => {}
    }
    for name in dns {
        crate::pki::check_dns_name(name)
            .map_err(|_| refused(format!("{name:?} is not a DNS name")))?;
        if !settings.allowed_dns.is_empty()
            && !settings.allowed_dns.iter().any(|p| allowed_by(p, name))
        {
            return Err(refused(format!(
                "{name} is outside the names this CA may issue ({})",
                settings.allowed_dns.join(", ")
            )));
        }
        let bare = name.trim_start_matches("*.");
        if !settings.permitted_dns.is_empty()
            && !settings
                .permitted_dns
                .iter()
                .any(|b| within_subtree(b, bare))
        {
            return Err(refused(format!(
                "{name} is outside this CA's name constraints ({})",
                settings.permitted_dns.join(", ")
            )));
        }
    }
    if let Some(ip) = ips.first() {
        if !settings.allow_ip {
            return Err(refused(format!("{ip}: this CA issues no IP-address names")));
        }
    }
    Ok(())
}

/// Most names in a CA's `allowed_dns` or `permitted_dns` (each permitted subtree is written into
/// its certificate, which every OCSP response carries).
pub const MAX_NAME_RULES: usize = 64;

/// Checks a CA's own settings before anything is made: at most [`MAX_NAME_RULES`] names in
/// each list, none twice; `allowed_dns` patterns and
/// `permitted_dns` subtrees are DNS names (a pattern may start with `*.` or `.`; a subtree
/// may not hold a wildcard), the common name is 1 to 64 characters without control
/// characters, and with a `parent`, the settings stay inside the parent's: names it may issue
/// (inherited when none are given), IP names only if the parent allows them, subtrees inside
/// its subtrees (inherited when none are given).
///
/// # Errors
/// [`Error::CertificateRequestRefused`] naming the value.
pub fn check_ca_settings(
    common_name: &str,
    settings: &mut CaSettings,
    parent: Option<&CaSettings>,
) -> Result<(), Error> {
    for (what, list) in [
        ("allowed_dns", &settings.allowed_dns),
        ("permitted_dns", &settings.permitted_dns),
    ] {
        if list.len() > MAX_NAME_RULES {
            return Err(refused(format!(
                "{what} holds {} names; at most {MAX_NAME_RULES}",
                list.len()
            )));
        }
        if let Some((_, twice)) = list
            .iter()
            .enumerate()
            .find(|(i, n)| list[..*i].contains(n))
        {
            return Err(refused(format!("{what} names {twice:?} twice")));
        }
    }
    if common_name.is_empty()
        || common_name.chars().count() > 64
        || common_name.chars().any(char::is_control)
    {
        return Err(refused(
            "the common name must be 1 to 64 characters without control characters (RFC 5280 ub-common-name)".into(),
        ));
    }
    for p in &settings.allowed_dns {
        let body = p
            .strip_prefix("*.")
            .or_else(|| p.strip_prefix('.'))
            .unwrap_or(p);
        crate::pki::check_dns_name(body)
            .map_err(|_| refused(format!("allowed name {p:?} is not a DNS name pattern")))?;
    }
    for n in &settings.permitted_dns {
        if n.contains('*') {
            return Err(refused(format!(
                "permitted subtree {n:?} holds a wildcard: name a domain (example.com covers every name below it)"
            )));
        }
        crate::pki::check_dns_name(n.trim_start_matches('.'))
            .map_err(|_| refused(format!("permitted subtree {n:?} is not a DNS name")))?;
    }
    let Some(parent) = parent else {
        return Ok(());
    };
    if settings.allow_ip && !parent.allow_ip {
        return Err(refused(
            "the parent CA issues no IP-address names, so this CA may not either".into(),
        ));
    }
    if settings.allowed_dns.is_empty() {
        settings.allowed_dns = parent.allowed_dns.clone();
    } else if !parent.allowed_dns.is_empty() {
        for p in &settings.allowed_dns {
            if !pattern_within(p, &parent.allowed_dns) {
                return Err(refused(format!(
                    "allowed name {p} is outside the parent CA's ({})",
                    parent.allowed_dns.join(", ")
                )));
            }
        }
    }
    if settings.permitted_dns.is_empty() {
        settings.permitted_dns = parent.permitted_dns.clone();
    } else if !parent.permitted_dns.is_empty() {
        for n in &settings.permitted_dns {
            if !parent
                .permitted_dns
                .iter()
                .any(|b| within_subtree(b, n.trim_start_matches('.')))
            {
                return Err(refused(format!(
                    "permitted subtree {n} is outside the parent CA's ({})",
                    parent.permitted_dns.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Whether every name the pattern `p` allows is allowed by one of `parents`.
fn pattern_within(p: &str, parents: &[String]) -> bool {
    parents.iter().any(|q| {
        if p == q {
            return true;
        }
        if let Some(base) = q.strip_prefix('.') {
            // Any name below `base`: an exact name, wildcard or suffix below it is inside.
            let body = p.trim_start_matches("*.").trim_start_matches('.');
            return body.ends_with(&format!(".{base}"))
                || (body == base && (p.starts_with("*.") || p.starts_with('.')));
        }
        // An exact name or a one-label wildcard parent allows that name, or one below.
        !p.starts_with('.') && !p.starts_with("*.") && allowed_by(q, p)
    })
}

/// The name constraints a sub-CA whose key is held elsewhere gets from CA `settings`
/// (the `intermediate` profile), so that relying parties hold it to the issuing CA's policy:
/// the permitted subtrees, else the domains of the allowed names (each pattern's domain: a
/// subtree covers the names below it too, so this may be broader than an exact-name pattern),
/// and every IP address excluded when the CA issues none. `None` when the CA allows any name.
pub(super) fn sub_ca_constraints(settings: &CaSettings) -> Option<rcgen::NameConstraints> {
    use rcgen::{CidrSubnet, GeneralSubtree};
    let mut permitted: Vec<String> = settings.permitted_dns.clone();
    if permitted.is_empty() {
        permitted = settings
            .allowed_dns
            .iter()
            .map(|p| {
                p.trim_start_matches("*.")
                    .trim_start_matches('.')
                    .to_owned()
            })
            .collect();
        permitted.dedup();
    }
    if permitted.is_empty() && settings.allow_ip {
        return None;
    }
    let excluded = if settings.allow_ip {
        Vec::new()
    } else {
        vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ]
    };
    Some(rcgen::NameConstraints {
        permitted_subtrees: permitted.into_iter().map(GeneralSubtree::DnsName).collect(),
        excluded_subtrees: excluded,
    })
}

/// A subject public key rcgen can certify: the raw key and the algorithm that names its type.
pub struct SubjectKey {
    raw: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    /// Whether it is an RSA key.
    pub rsa: bool,
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

/// Checks a SubjectPublicKeyInfo (DER): RSA of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits,
/// EC on P-256, P-384 or P-521, or Ed25519.
///
/// # Errors
/// [`Error::CertificateRequestRefused`] for a weak or unknown key.
pub fn check_public_key(spki_der: &[u8]) -> Result<SubjectKey, Error> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| refused("the public key does not parse".into()))?;
    let raw = spki.subject_public_key.data.to_vec();
    let alg = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let (algorithm, rsa): (&'static SignatureAlgorithm, bool) =
        match (alg.as_str(), curve.as_deref()) {
            ("1.2.840.113549.1.1.1", _) => {
                let bits = match spki.parsed() {
                    Ok(PublicKey::RSA(k)) => k.key_size(),
                    _ => return Err(refused("the RSA public key does not parse".into())),
                };
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(refused(format!(
                        "a {bits}-bit RSA key is refused: {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
                    )));
                }
                (&rcgen::PKCS_RSA_SHA256, true)
            }
            ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => {
                (&rcgen::PKCS_ECDSA_P256_SHA256, false)
            }
            ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => (&rcgen::PKCS_ECDSA_P384_SHA384, false),
            ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => (&rcgen::PKCS_ECDSA_P521_SHA512, false),
            ("1.3.101.112", _) => (&rcgen::PKCS_ED25519, false),
            ("1.2.840.10045.2.1", c) => {
                return Err(refused(format!(
                    "EC curve {} is refused: P-256, P-384 or P-521",
                    c.unwrap_or("(none)")
                )))
            }
            (other, _) => {
                return Err(refused(format!(
                "public key algorithm {other} is refused: RSA, EC (P-256, P-384, P-521) or Ed25519"
            )))
            }
        };
    Ok(SubjectKey {
        raw,
        algorithm,
        rsa,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allowed: &[&str], permitted: &[&str]) -> CaSettings {
        CaSettings {
            allowed_dns: allowed.iter().map(|s| s.to_string()).collect(),
            allow_ip: false,
            max_validity_days: 397,
            crl_period_s: 86400,
            path_len: None,
            permitted_dns: permitted.iter().map(|s| s.to_string()).collect(),
            crl_urls: Vec::new(),
            ocsp_urls: Vec::new(),
        }
    }

    #[test]
    fn allowed_patterns() {
        assert!(allowed_by("example.com", "example.com"));
        assert!(!allowed_by("example.com", "www.example.com"));
        assert!(allowed_by("*.example.com", "www.example.com"));
        assert!(allowed_by("*.example.com", "*.example.com"));
        assert!(!allowed_by("*.example.com", "a.b.example.com"));
        assert!(!allowed_by("*.example.com", "example.com"));
        assert!(!allowed_by("*.example.com", "wwwexample.com"));
        assert!(allowed_by(".example.com", "a.b.example.com"));
        assert!(!allowed_by(".example.com", "example.com"));
        assert!(!allowed_by(".example.com", "badexample.com"));
    }

    #[test]
    fn subtrees() {
        assert!(within_subtree("example.com", "example.com"));
        assert!(within_subtree("example.com", "a.example.com"));
        assert!(!within_subtree("example.com", "badexample.com"));
        assert!(within_subtree(".example.com", "a.example.com"));
    }

    #[test]
    fn names_checked_against_settings_and_profile() {
        let s = settings(&[".example.com"], &["example.com"]);
        let ok = |dns: &[&str], p| {
            let dns: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
            check_names(&s, p, &dns, &[])
        };
        assert!(ok(&["www.example.com"], Profile::TlsServer).is_ok());
        let e = ok(&["www.evil.com"], Profile::TlsServer).unwrap_err();
        assert!(e.to_string().contains("www.evil.com is outside"), "{e}");
        assert!(ok(&[], Profile::TlsServer).is_err());
        assert!(ok(&["www.example.com"], Profile::CodeSigning).is_err());
        assert!(ok(&[], Profile::CodeSigning).is_ok());
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        assert!(check_names(&s, Profile::TlsServer, &[], &[ip]).is_err());
        // Name constraints apply even when any name is allowed.
        let s = settings(&[], &["example.com"]);
        let dns = vec!["example.org".to_string()];
        assert!(check_names(&s, Profile::TlsServer, &dns, &[]).is_err());
    }

    #[test]
    fn name_lists_are_bounded_and_without_repeats() {
        let many: Vec<String> = (0..=MAX_NAME_RULES)
            .map(|i| format!("n{i}.example.com"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for mut s in [settings(&many, &[]), settings(&[], &many)] {
            let e = check_ca_settings("CA", &mut s, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("at most 64"), "{e}");
        }
        let mut s = settings(&[], &["a.example.com", "b.example.com", "a.example.com"]);
        let e = check_ca_settings("CA", &mut s, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        check_ca_settings("CA", &mut settings(&many[..MAX_NAME_RULES], &[]), None).unwrap();
    }
}
