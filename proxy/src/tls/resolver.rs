//! Certificate selection by SNI and by the client's signature schemes: rustls calls
//! [`SniResolver::resolve`] during each handshake (from [`super::handshake`]); the chosen
//! entry's key then signs through rustls's `SigningKey` ([`super::signer`] for HSM keys).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use rustls::sign::SigningKey;
use rustls::SignatureScheme;

/// Every signature scheme rustls knows (RFC 8446 §4.2.3 and the TLS 1.2 ones it still
/// speaks), to learn once which of them a key can use.
pub(crate) const ALL_SCHEMES: [SignatureScheme; 16] = [
    SignatureScheme::RSA_PKCS1_SHA1,
    SignatureScheme::ECDSA_SHA1_Legacy,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
    SignatureScheme::ML_DSA_44,
    SignatureScheme::ML_DSA_65,
    SignatureScheme::ML_DSA_87,
];

/// One certificate chain with its key, and the signature schemes that key can use.
///
/// The key is any [`SigningKey`]: the HSM's ([`super::signer::HsmSigningKey`]), the
/// in-memory one of `bench-plain-keys` builds, a remote signer. Its schemes are asked once,
/// here, so that [`SniResolver::resolve`] compares plain data on every handshake.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) certified: Arc<CertifiedKey>,
    schemes: Arc<[SignatureScheme]>,
}

impl Entry {
    /// The entry for `certified`, whose key is asked which schemes it can sign with.
    pub(crate) fn new(certified: CertifiedKey) -> Entry {
        let schemes = supported_schemes(certified.key.as_ref());
        Entry {
            certified: Arc::new(certified),
            schemes,
        }
    }

    /// Whether the key can use one of the client's `offered` schemes (no allocation).
    fn compatible(&self, offered: &[SignatureScheme]) -> bool {
        self.schemes.iter().any(|s| offered.contains(s))
    }
}

/// The schemes of [`ALL_SCHEMES`] that `key` would choose when offered alone. rustls's
/// `choose_scheme` picks one of the offered schemes the key supports, so a client's list
/// suits the key exactly when it holds one of these.
fn supported_schemes(key: &dyn SigningKey) -> Arc<[SignatureScheme]> {
    ALL_SCHEMES
        .iter()
        .copied()
        .filter(|s| key.choose_scheme(&[*s]).is_some())
        .collect()
}

/// Picks a certificate: exact SNI name, then wildcard (`*.example.com` matches one label),
/// then the default. Among the certificates for a name, the first whose key can use one of
/// the client's signature schemes wins; ECDSA and Ed25519 entries come before RSA.
///
/// `resolve` runs on every handshake, resumed ones included: it does no I/O, takes no lock
/// and allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct SniResolver {
    exact: HashMap<String, Vec<Entry>>,
    wildcard: HashMap<String, Vec<Entry>>,
    default: Vec<Entry>,
}

impl SniResolver {
    pub(crate) fn add(&mut self, names: &[String], entry: Entry, is_default: bool) {
        for name in names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(suffix) => push_sorted(
                    self.wildcard.entry(suffix.to_owned()).or_default(),
                    entry.clone(),
                ),
                None => push_sorted(self.exact.entry(name).or_default(), entry.clone()),
            }
        }
        if is_default {
            push_sorted(&mut self.default, entry);
        }
    }
}

fn push_sorted(list: &mut Vec<Entry>, entry: Entry) {
    list.push(entry);
    // RSA last: prefer the cheaper ECDSA/Ed25519 signature when the client supports it.
    list.sort_by_key(|e| e.certified.key.algorithm() == rustls::SignatureAlgorithm::RSA);
}

fn pick<'a>(list: Option<&'a Vec<Entry>>, hello: &ClientHello<'_>) -> Option<&'a Entry> {
    list?
        .iter()
        .find(|e| e.compatible(hello.signature_schemes()))
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello.server_name().and_then(|name| {
            // rustls hands us the name already validated and lower-cased.
            pick(self.exact.get(name), &hello).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                pick(self.wildcard.get(parent), &hello)
            })
        });
        by_name
            .or_else(|| pick(Some(&self.default), &hello))
            .map(|e| e.certified.clone())
    }
}
