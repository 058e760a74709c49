//! Where relying parties find a certificate's revocation status: the CRL distribution points
//! (RFC 5280 §4.2.1.13) and the OCSP responders in the authority information access extension
//! (RFC 5280 §4.2.2.1) that a CA writes into every certificate it signs. The URLs are the CA's
//! settings (`crl_urls`, `ocsp_urls`), given when it is created; Keyward serves both at
//! `GET /v1/ca/{name}/crl` and `POST /v1/ca/{name}/ocsp`, usually behind a public name.

use der::asn1::Ia5String;
use der::Encode;
use keyward_hsm::{CaSettings, Error};
use rcgen::{CertificateParams, CrlDistributionPoint, CustomExtension};
use spki::ObjectIdentifier;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

/// Most URLs of each kind.
pub const MAX_URLS: usize = 4;
/// Longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 512;

/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const AIA: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// Longest part of a refused URL a message quotes, in characters.
const QUOTED: usize = 80;

/// `url` as an error message quotes it: at most [`QUOTED`] characters.
fn quoted(url: &str) -> String {
    if url.chars().count() <= QUOTED {
        format!("{url:?}")
    } else {
        let head: String = url.chars().take(QUOTED).collect();
        format!("{head:?}... ({} bytes)", url.len())
    }
}

/// Why `url` is not one a certificate may carry, if it is not: it must be an absolute `http`
/// or `https` URL (WHATWG URL parsing, as the `url` crate does it) already in normal form (what
/// the parser would write back, so nothing is percent-encoded or rewritten on the way into a
/// certificate), at most [`MAX_URL_BYTES`] bytes, with a DNS name (RFC 1035 labels) or IP
/// address host, no user name or password (certificates are public), no port 0, no fragment,
/// only the characters RFC 3986 §2 lets a URL carry as they are, and percent signs only before
/// two hex digits.
fn refusal(url: &str) -> Option<String> {
    if url.len() > MAX_URL_BYTES {
        return Some(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    // RFC 3986 §2: unreserved, sub-delims, gen-delims but `#`, and `%` (checked below).
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?[]%".contains(c);
    if let Some(c) = url.chars().find(|c| !allowed(*c)) {
        return Some(format!(
            "holds {c:?}, which a URL carries only percent-encoded (RFC 3986 §2)"
        ));
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return Some("is not a URL".into());
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some("is not an absolute http or https URL".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || url.contains('@') {
        return Some("holds a user name or password (certificates are public)".into());
    }
    match parsed.host() {
        Some(url::Host::Domain(d)) => {
            if d.contains('*') || crate::pki::check_dns_name(d).is_err() {
                return Some(format!("has host {}, which is not a DNS name", quoted(d)));
            }
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
        None => return Some("has no host".into()),
    }
    if parsed.port() == Some(0) {
        return Some("has port 0".into());
    }
    if parsed.fragment().is_some() {
        return Some("has a fragment (#...)".into());
    }
    let bytes = url.as_bytes();
    let bad_percent = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if bad_percent {
        return Some("has a % not followed by two hex digits".into());
    }
    if parsed.as_str() != url {
        return Some(format!(
            "is not in normal form (characters a URL does not carry as they are, or parts it writes otherwise: {})",
            quoted(parsed.as_str())
        ));
    }
    None
}

/// Checks a CA's `crl_urls` and `ocsp_urls`: at most [`MAX_URLS`] of each, no duplicates, each
/// one a certificate may carry: an absolute `http` or `https` URL in normal form (see the
/// README, "Where relying parties look").
///
/// # Errors
/// [`Error::InvalidInput`] naming the list and quoting the URL (cut at 80 characters).
pub fn check(settings: &CaSettings) -> Result<(), Error> {
    for (what, urls) in [
        ("crl_urls", &settings.crl_urls),
        ("ocsp_urls", &settings.ocsp_urls),
    ] {
        if urls.len() > MAX_URLS {
            return Err(Error::InvalidInput {
                reason: format!("{what} holds {} URLs; at most {MAX_URLS}", urls.len()),
            });
        }
        for (i, url) in urls.iter().enumerate() {
            let why = if urls[..i].contains(url) {
                Some("is given twice".to_owned())
            } else {
                refusal(url)
            };
            if let Some(why) = why {
                return Err(Error::InvalidInput {
                    reason: format!("{what}: {} {why}", quoted(url)),
                });
            }
        }
    }
    Ok(())
}

/// Writes `settings`' URLs into the certificate about to be signed: a CRL distribution point
/// with every CRL URL, and an authority information access entry (id-ad-ocsp) per OCSP URL.
///
/// # Errors
/// [`Error::Internal`] when a URL does not encode (it was checked at creation).
pub fn apply(settings: &CaSettings, params: &mut CertificateParams) -> Result<(), Error> {
    if !settings.crl_urls.is_empty() {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: settings.crl_urls.clone(),
        }];
    }
    if !settings.ocsp_urls.is_empty() {
        let access = settings
            .ocsp_urls
            .iter()
            .map(|url| {
                Ok(AccessDescription {
                    access_method: AD_OCSP,
                    access_location: GeneralName::UniformResourceIdentifier(
                        Ia5String::new(url).map_err(|_| Error::Internal("an OCSP URL"))?,
                    ),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let der = AuthorityInfoAccessSyntax(access)
            .to_der()
            .map_err(|_| Error::Internal("encoding the authority information access"))?;
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(&AIA, der));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(crl: &[&str], ocsp: &[&str]) -> CaSettings {
        CaSettings {
            allowed_dns: Vec::new(),
            allow_ip: false,
            max_validity_days: 397,
            crl_period_s: 86_400,
            path_len: None,
            permitted_dns: Vec::new(),
            crl_urls: crl.iter().map(|s| (*s).to_owned()).collect(),
            ocsp_urls: ocsp.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn only_absolute_http_urls_in_normal_form_are_taken() {
        check(&with(
            &[
                "http://pki.example.com/v1/ca/inter/crl",
                "http://192.0.2.7/a%20b.crl",
            ],
            &[
                "https://ocsp.example.com:8443/v1/ca/inter/ocsp",
                "http://[2001:db8::1]/ocsp",
            ],
        ))
        .unwrap();
        for bad in [
            "ftp://example.com/crl",
            "/v1/ca/inter/crl",
            "http://",
            "",
            "http://example.com/a b",
            "http://example.com/\u{e9}",
            "ldap://example.com/cn=x",
            "javascript:alert(1)",
            "http://host:abc/crl",
            "http://host:65536/crl",
            "http://host:0/crl",
            "http://host:/crl",
            "http://-/crl",
            "http://a..b/crl",
            "http://256.1.1.1/crl",
            "http://*.example.com/crl",
            "http://user:pass@example.com/crl",
            "http://user@example.com/crl",
            "http://:@example.com/crl",
            "http://example.com/c\"rl",
            "http://example.com/{x}",
            "http://example.com/|x",
            "http://example.com/^x",
            "http://example.com/x\\y",
            "http://example.com/%zz",
            "http://example.com/crl#frag",
            "http://EXAMPLE.com/crl",
            "http://example.com",
            "http://example.com:80/crl",
        ] {
            let e = check(&with(&[bad], &[])).expect_err(bad).to_string();
            assert!(e.contains("crl_urls"), "{bad}: {e}");
            assert!(check(&with(&[], &[bad])).is_err(), "{bad}");
        }
        let e = check(&with(&["http://example.com/\u{fc}"], &[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'\u{fc}'"),
            "the character, not its first byte: {e}"
        );
        let host = format!("http://{}.com/", "a_".repeat(100));
        let e = check(&with(&[&host], &[])).unwrap_err().to_string();
        assert!(e.len() < 300, "the host quoted whole: {e}");
        let long = format!("http://example.com/{}", "a".repeat(20 * MAX_URL_BYTES));
        let e = check(&with(&[&long], &[])).unwrap_err().to_string();
        assert!(
            e.len() < 300,
            "the message quotes all of it: {} bytes",
            e.len()
        );
        let many = ["http://a.example/"; MAX_URLS + 1];
        assert!(check(&with(&many, &[])).is_err());
        let e = check(&with(&["http://a.example/1", "http://a.example/1"], &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
