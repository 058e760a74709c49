//! `[[listeners.certificates]]`: the certificate chains a listener serves, each with the HSM
//! key (or, for benchmarks, the in-memory key) that signs its handshakes.

use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::Deserialize;

use crate::check::{check_host_pattern, Context};
use crate::Error;

/// `[[listeners.certificates]]`: a certificate chain whose private key is an HSM key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateConfig {
    /// `key_label`: label of the private key in the HSM (empty when `key_file` names it).
    pub key_label: String,
    /// `key_file`: a reference PEM (`keyward key generate-file --encoding reference-pem`) that
    /// names the key instead of `key_label`; its public-key hash is checked.
    pub key_file: Option<PathBuf>,
    /// `private_key_file`: a PKCS#8 PEM private key held in process memory instead of the
    /// HSM. Benchmarks only (the baseline that isolates the HSM's cost): refused unless keyward
    /// was built with the `bench-plain-keys` feature.
    pub private_key_file: Option<PathBuf>,
    /// `chain_file`: PEM file, leaf certificate first, then intermediates.
    pub chain_file: PathBuf,
    /// `server_names`: SNI names this certificate answers (`*.example.com` allowed). Default:
    /// the certificate's DNS subject alternative names.
    pub server_names: Vec<String>,
    /// `default`: serve this certificate when SNI is absent or matches nothing. Default: the
    /// first certificate of the listener.
    pub default: bool,
    /// `ocsp_file`: a DER OCSP response (RFC 6960) stapled in the handshake; re-read on reload.
    pub ocsp_file: Option<PathBuf>,
    /// `renew_ca`: the issuing CA (in this node's HSM) that renews this certificate before it
    /// expires: a new one for the same key and names is written to `chain_file` and served
    /// without a restart. Needs `key_label`.
    pub renew_ca: Option<String>,
    /// `renew_before_days`: renew when the certificate has fewer days left than this
    /// (default 30; 1 to 3650).
    pub renew_before_days: u32,
}

/// Default of `renew_before_days`.
const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners.certificates]] table")]
pub(crate) struct RawCertificate {
    #[serde(default)]
    key_label: Option<String>,
    #[serde(default)]
    key_file: Option<RelativePathBuf>,
    #[serde(default)]
    private_key_file: Option<RelativePathBuf>,
    chain_file: RelativePathBuf,
    #[serde(default)]
    server_names: Vec<String>,
    #[serde(default)]
    pub(crate) default: bool,
    #[serde(default)]
    ocsp_file: Option<RelativePathBuf>,
    #[serde(default)]
    renew_ca: Option<String>,
    #[serde(default)]
    renew_before_days: Option<u32>,
}

impl RawCertificate {
    /// One certificate; `cx` is its table (`listeners[0].certificates[1]`).
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<CertificateConfig, Error> {
        let key_label = self.key_label(cx)?;
        let mut server_names = Vec::new();
        for n in self.server_names {
            server_names.push(check_host_pattern(&n).map_err(|m| cx.invalid("server_names", m))?);
        }
        if let Some(ca) = &self.renew_ca {
            if key_label.is_empty() {
                return Err(cx.invalid("renew_ca", "needs key_label (the key the CA certifies)"));
            }
            // The HSM checks the name when it looks the CA up; here only that it can be one.
            if ca.is_empty() || ca.len() > 64 || ca.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(cx.invalid("renew_ca", "must be a CA name (1 to 64 characters)"));
            }
        } else if self.renew_before_days.is_some() {
            return Err(cx.invalid("renew_before_days", "needs renew_ca"));
        }
        let renew_before_days = self.renew_before_days.unwrap_or(DEFAULT_RENEW_BEFORE_DAYS);
        if !(1..=3650).contains(&renew_before_days) {
            return Err(cx.invalid("renew_before_days", "must be 1 to 3650"));
        }
        Ok(CertificateConfig {
            renew_ca: self.renew_ca,
            renew_before_days,
            key_label,
            key_file: self.key_file.map(|f| f.relative()),
            private_key_file: self.private_key_file.map(|f| f.relative()),
            chain_file: self.chain_file.relative(),
            server_names,
            default: self.default,
            ocsp_file: self.ocsp_file.map(|f| f.relative()),
        })
    }

    /// The key's label: exactly one of `key_label`, `key_file` and `private_key_file` names
    /// the key; the label is empty for the latter two.
    fn key_label(&self, cx: &Context<'_>) -> Result<String, Error> {
        match (&self.key_label, &self.key_file) {
            (None, None) if self.private_key_file.is_some() => Ok(String::new()),
            (_, _) if self.private_key_file.is_some() => Err(
                cx.invalid_table("private_key_file replaces key_label and key_file; give only one")
            ),
            (Some(l), None) if !l.is_empty() => Ok(l.clone()),
            (None, Some(_)) => Ok(String::new()),
            (Some(l), None) if l.is_empty() => Err(cx.invalid("key_label", "must not be empty")),
            _ => Err(cx.invalid_table("name the key with exactly one of key_label and key_file")),
        }
    }
}
