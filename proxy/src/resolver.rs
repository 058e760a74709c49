//! Certificate selection by SNI and by the client's signature schemes.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::signer::HsmSigningKey;

/// The key of a certificate entry.
#[derive(Debug, Clone)]
pub(crate) enum EntryKey {
    /// An HSM key (the product).
    Hsm(Arc<HsmSigningKey>),
    /// A key in process memory (`bench-plain-keys` builds: the benchmark baseline).
    #[cfg_attr(not(feature = "bench-plain-keys"), allow(dead_code))]
    Plain(Arc<dyn rustls::sign::SigningKey>),
}

impl EntryKey {
    pub(crate) fn signing_key(&self) -> Arc<dyn rustls::sign::SigningKey> {
        match self {
            EntryKey::Hsm(k) => k.clone(),
            EntryKey::Plain(k) => k.clone(),
        }
    }

    fn compatible(&self, offered: &[rustls::SignatureScheme]) -> bool {
        match self {
            EntryKey::Hsm(k) => k.compatible(offered),
            EntryKey::Plain(k) => k.choose_scheme(offered).is_some(),
        }
    }
}

/// One certificate chain with its key.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) certified: Arc<CertifiedKey>,
    pub(crate) key: EntryKey,
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
        .find(|e| e.key.compatible(hello.signature_schemes()))
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
