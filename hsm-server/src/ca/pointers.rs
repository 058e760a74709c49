//! Where relying parties find a certificate's revocation status: the CRL distribution points
//! (RFC 5280 §4.2.1.13) and the OCSP responders in the authority information access extension
//! (RFC 5280 §4.2.2.1) that a CA writes into every certificate it signs. The URLs are the CA's
//! settings (`crl_urls`, `ocsp_urls`), given when it is created; Keyward serves both at
//! `GET /v1/ca/{name}/crl` and `POST /v1/ca/{name}/ocsp`, usually behind a public name.

use axum::http::Uri;
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

/// Checks a CA's `crl_urls` and `ocsp_urls`: at most [`MAX_URLS`] of each, each an absolute
/// `http` or `https` URL with a host, at most [`MAX_URL_BYTES`] bytes of printable ASCII.
///
/// # Errors
/// [`Error::InvalidInput`] naming the URL.
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
        for url in urls {
            let bad = |why: &str| Error::InvalidInput {
                reason: format!("{what}: {url:?} {why}"),
            };
            if url.len() > MAX_URL_BYTES || !url.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(&format!(
                    "must be at most {MAX_URL_BYTES} printable ASCII characters"
                )));
            }
            let uri: Uri = url.parse().map_err(|_| bad("is not a URL"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(bad("is not an absolute http or https URL"));
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
    fn only_absolute_http_urls_are_taken() {
        check(&with(
            &["http://pki.example.com/v1/ca/inter/crl"],
            &["https://ocsp.example.com:8443/v1/ca/inter/ocsp"],
        ))
        .unwrap();
        for bad in [
            "ftp://example.com/crl",
            "/v1/ca/inter/crl",
            "http://",
            "http://example.com/a b",
            "http://example.com/\u{e9}",
            "ldap://example.com/cn=x",
        ] {
            let e = check(&with(&[bad], &[])).unwrap_err().to_string();
            assert!(e.contains("crl_urls"), "{bad}: {e}");
            assert!(check(&with(&[], &[bad])).is_err(), "{bad}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(check(&with(&[&long], &[])).is_err());
        let many = ["http://a.example/"; MAX_URLS + 1];
        assert!(check(&with(&many, &[])).is_err());
    }
}
