//! A listener's rustls `ServerConfig`: certificates with HSM keys, versions, cipher suites,
//! key-exchange groups, ALPN, client-certificate verification, OCSP staples, tickets.
//!
//! Each certificate's key is resolved here once: by label in the HSM (wrapped by
//! [`super::signer`]), or from a PEM file in `bench-plain-keys` builds. Either way it is a
//! rustls `SigningKey`, handed to the [`super::resolver::SniResolver`] with its chain.

use std::path::Path;
use std::sync::Arc;

use keyward_config::{ListenerConfig, ResumptionConfig, TlsVersion};
use keyward_hsm::{Hsm, KeyClass, KeyInfo, KeyRef, KeySigner, Session};
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::Error;
use crate::metrics::metrics;
use crate::remote::{Remote, RemoteSigningKey};
use crate::server::Keys;
use crate::tls::resolver::{Entry, SniResolver};
use crate::tls::signer::signing_key;

/// Largest certificate chain, CA bundle or OCSP response file read, in bytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A certificate chain read from a PEM file, with what the leaf says about itself.
struct Chain {
    certs: Vec<CertificateDer<'static>>,
    dns_names: Vec<String>,
    not_after: i64,
    /// The leaf's serial number (DER INTEGER content bytes).
    serial: Vec<u8>,
}

/// An I/O error as a short phrase ("no such file", "permission denied").
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads a small regular file (at most [`MAX_FILE_BYTES`]).
fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| io_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    std::fs::read(path).map_err(|e| io_reason(&e))
}

fn read_chain(path: &Path) -> Result<Chain, Error> {
    let err = |reason: String| Error::CertificateFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_small(path).map_err(err)?;
    if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
        tracing::warn!(path = %path.display(), "the chain file also holds a PRIVATE KEY block, which Keyward ignores: keys live in the HSM; remove the key from this file");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("not a PEM certificate chain ({e})")))?;
    let leaf = certs
        .first()
        .ok_or_else(|| err("no CERTIFICATE block in the file".into()))?;
    let (_, parsed) = X509Certificate::from_der(leaf)
        .map_err(|_| err("the first certificate is not valid X.509 DER".into()))?;
    if !parsed.validity().is_valid() {
        tracing::warn!(
            path = %path.display(),
            not_before = %parsed.validity().not_before,
            not_after = %parsed.validity().not_after,
            "the leaf certificate is not valid now; clients will refuse it"
        );
    }
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push(n.to_ascii_lowercase());
            }
        }
    }
    let not_after = parsed.validity().not_after.timestamp();
    let serial = parsed.tbs_certificate.raw_serial().to_vec();
    Ok(Chain {
        certs,
        dns_names,
        not_after,
        serial,
    })
}

/// Reads a reference PEM that names an HSM key.
fn read_reference(path: &Path) -> Result<keyward_hsm::KeyReference, Error> {
    let err = |reason: String| Error::CertificateFile {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(io_reason(&e)))?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return Err(err("not a small regular file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(io_reason(&e)))?;
    keyward_hsm::KeyReference::from_pem(&bytes).map_err(|e| err(e.to_string()))
}

/// Compares two SubjectPublicKeyInfo DER encodings by algorithm OID and key bits.
fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    match (
        SubjectPublicKeyInfo::from_der(a),
        SubjectPublicKeyInfo::from_der(b),
    ) {
        (Ok((_, a)), Ok((_, b))) => {
            a.algorithm.algorithm == b.algorithm.algorithm
                && a.subject_public_key.data == b.subject_public_key.data
        }
        _ => false,
    }
}

fn leaf_spki(chain: &Chain) -> Vec<u8> {
    X509Certificate::from_der(&chain.certs[0])
        .map(|(_, c)| c.tbs_certificate.subject_pki.raw.to_vec())
        .unwrap_or_default()
}

/// The crypto provider with the listener's cipher suites and key-exchange groups, in the
/// configured order (names as rustls spells them, e.g. `TLS13_AES_128_GCM_SHA256`,
/// `X25519MLKEM768`).
fn provider(listener: &ListenerConfig) -> CryptoProvider {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    if !listener.cipher_suites.is_empty() {
        let all = rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES;
        p.cipher_suites = listener
            .cipher_suites
            .iter()
            .filter_map(|name| {
                all.iter()
                    .find(|s| format!("{:?}", s.suite()) == *name)
                    .copied()
            })
            .collect();
    }
    let groups = rustls::crypto::aws_lc_rs::ALL_KX_GROUPS;
    p.kx_groups = listener
        .kx_groups
        .iter()
        .filter_map(|name| {
            groups
                .iter()
                .find(|g| format!("{:?}", g.name()) == *name)
                .copied()
        })
        .collect();
    p
}

/// Checks an OCSP response (RFC 6960 §4.2.1) before stapling it: a successful basic response
/// that says `good` for the leaf's serial number and whose `nextUpdate`, if any, is still ahead.
/// The responder's signature is the client's to check; this catches the wrong file or a stale
/// one, which would make clients that require stapling refuse the certificate.
fn check_ocsp(der_bytes: &[u8], leaf_serial: &[u8]) -> Result<(), String> {
    use der::Decode;
    use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
    let response =
        OcspResponse::from_der(der_bytes).map_err(|_| "not a DER OCSP response".to_owned())?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!(
            "the OCSP response status is {:?}, not successful",
            response.response_status
        ));
    }
    let bytes = response
        .response_bytes
        .ok_or("the OCSP response has no response bytes")?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|_| "the OCSP response is not a basic OCSP response".to_owned())?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| r.cert_id.serial_number.as_bytes() == leaf_serial)
        .ok_or("the OCSP response is for another certificate (serial number differs)")?;
    if !matches!(single.cert_status, CertStatus::Good(_)) {
        return Err("the OCSP response does not say \"good\" for this certificate".into());
    }
    if let Some(next) = &single.next_update {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if next.0.to_unix_duration() <= now {
            return Err("the OCSP response is past its nextUpdate; fetch a fresh one".into());
        }
    }
    Ok(())
}

/// The CA bundle that issues client certificates.
fn client_roots(path: &Path) -> Result<RootCertStore, Error> {
    let err = |reason: String| Error::File {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_small(path).map_err(err)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| err(format!("not a PEM certificate bundle ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("a certificate is not a usable CA ({e})")))?;
    }
    if roots.is_empty() {
        return Err(err("no CERTIFICATE block in the file".into()));
    }
    Ok(roots)
}

/// Resolves a certificate's HSM key (by label or reference PEM) and checks it matches the
/// chain. Returns the key for rustls and the label.
///
/// Key versions: a certificate holds the public key of one version of its key. The signer is
/// made for the newest version still allowed to sign whose public key is the certificate's:
/// after `keyward key rotate`, the proxy keeps serving the certificate it has with the version
/// it was issued for; a reload with a certificate for the new version (CSR or self-signed
/// certificate made after the rotation) switches to the new version. Once the old version is
/// below the key's `min_decryption_version` or `min_encryption_version`, its handshakes fail
/// (and a reload refuses that certificate): replace the certificate before retiring it.
fn hsm_key(
    cert: &keyward_config::CertificateConfig,
    chain: &Chain,
    hsm: &Hsm,
    session: &Session,
) -> Result<(Arc<dyn SigningKey>, String), Error> {
    let (reference, label) = key_label(cert)?;
    let label = label.as_str();
    let key_err = |error| Error::Key {
        label: label.to_owned(),
        path: cert.chain_file.clone(),
        error,
    };
    let info = hsm
        .find_by_label(session, label, KeyClass::Private)
        .map_err(key_err)?;
    let leaf = leaf_spki(chain);
    let Some(signer) = version_signer(hsm, session, &info, &leaf).map_err(key_err)? else {
        return Err(Error::KeyMismatch {
            label: label.to_owned(),
            path: cert.chain_file.clone(),
        });
    };
    check_reference(reference.as_ref(), cert, signer.spki_der())?;
    Ok((signing_key(signer), label.to_owned()))
}

/// The reference file a certificate names (if any) and the label of its key.
fn key_label(
    cert: &keyward_config::CertificateConfig,
) -> Result<(Option<keyward_hsm::KeyReference>, String), Error> {
    let reference = match &cert.key_file {
        Some(path) => Some(read_reference(path)?),
        None => None,
    };
    let label = reference
        .as_ref()
        .map_or(cert.key_label.as_str(), |r| r.label.as_str())
        .to_owned();
    Ok((reference, label))
}

/// Refuses a key whose public key (`spki`, DER) is not the one the reference file names.
fn check_reference(
    reference: Option<&keyward_hsm::KeyReference>,
    cert: &keyward_config::CertificateConfig,
    spki: &[u8],
) -> Result<(), Error> {
    if let (Some(r), Some(path)) = (reference, &cert.key_file) {
        if keyward_hsm::spki_sha256(spki) != r.spki_sha256 {
            return Err(Error::CertificateFile {
                path: path.clone(),
                reason: format!(
                    "names key {:?}, but the HSM key of that label has another public key",
                    r.label
                ),
            });
        }
    }
    Ok(())
}

/// [`hsm_key`] for a remote-mode proxy: the key is looked up on the HSM nodes, the signer
/// signs through them ([`crate::remote`]).
fn remote_key(
    cert: &keyward_config::CertificateConfig,
    chain: &Chain,
    remote: &Arc<Remote>,
) -> Result<(Arc<dyn SigningKey>, String), Error> {
    let (reference, label) = key_label(cert)?;
    let key = remote
        .block_on(remote.hsm().private_key(&label))
        .map_err(|reason| Error::RemoteKey {
            label: label.clone(),
            path: cert.chain_file.clone(),
            reason,
        })?;
    let leaf = leaf_spki(chain);
    let Some((version, spki)) = key
        .versions
        .iter()
        .find(|(_, spki)| same_public_key(&leaf, spki))
    else {
        return Err(Error::KeyMismatch {
            label,
            path: cert.chain_file.clone(),
        });
    };
    check_reference(reference.as_ref(), cert, spki)?;
    let signer =
        RemoteSigningKey::new(remote.clone(), key.handle, *version, key.spec, spki.clone());
    Ok((Arc::new(signer), label))
}

/// A signer for the newest version of `info` that may still sign and whose public key is
/// `leaf_spki` (the certificate's); `None` when no such version exists.
fn version_signer(
    hsm: &Hsm,
    session: &Session,
    info: &KeyInfo,
    leaf_spki: &[u8],
) -> Result<Option<KeySigner>, keyward_hsm::Error> {
    let oldest = info
        .min_decryption_version
        .max(info.min_encryption_version)
        .max(info.min_available_version);
    for version in (oldest..=info.latest_version).rev() {
        let signer = hsm.signer_at(session, KeyRef::version(info.handle, version))?;
        if same_public_key(leaf_spki, signer.spki_der()) {
            return Ok(Some(signer));
        }
    }
    Ok(None)
}

/// A private key read from a PEM file into process memory: the benchmark baseline only.
#[cfg(feature = "bench-plain-keys")]
fn plain_key(path: &Path, chain: &Chain) -> Result<Arc<dyn SigningKey>, Error> {
    let err = |reason: String| Error::File {
        path: path.to_owned(),
        reason,
    };
    let pem = read_small(path).map_err(err)?;
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| err("not a PEM private key".into()))?;
    let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| err(format!("unusable private key ({e})")))?;
    let spki = key
        .public_key()
        .ok_or_else(|| err("no public key".into()))?;
    if !same_public_key(&leaf_spki(chain), &spki) {
        return Err(err("the certificate's public key is not this key's".into()));
    }
    tracing::warn!(path = %path.display(), "a private key is held in process memory (bench-plain-keys build): for benchmarks only");
    Ok(key)
}

/// Without the `bench-plain-keys` feature, keys in files are refused.
#[cfg(not(feature = "bench-plain-keys"))]
fn plain_key(path: &Path, _chain: &Chain) -> Result<Arc<dyn SigningKey>, Error> {
    Err(Error::File {
        path: path.to_owned(),
        reason: "private_key_file is for benchmarks only: this keyward was built without the bench-plain-keys feature; keys belong in the HSM (key_label)".into(),
    })
}

/// Builds the `ServerConfig` of one TLS listener: resolves every certificate's key in the
/// HSM, checks it matches the chain, reads OCSP staples and the client CA bundle. The caller
/// sets `ticketer` last.
pub(crate) fn server_config(
    listener: &ListenerConfig,
    resumption: &ResumptionConfig,
    keys: &Keys,
) -> Result<ServerConfig, Error> {
    let mut resolver = SniResolver::default();
    for (i, cert) in listener.certificates.iter().enumerate() {
        let chain = read_chain(&cert.chain_file)?;
        let (key, label): (Arc<dyn SigningKey>, String) = match &cert.private_key_file {
            Some(path) => (plain_key(path, &chain)?, "plain-key-file".to_owned()),
            None => match keys {
                Keys::Local { hsm, session, .. } => hsm_key(cert, &chain, hsm, session)?,
                Keys::Remote(remote) => remote_key(cert, &chain, remote)?,
            },
        };
        let label = label.as_str();
        let names = if cert.server_names.is_empty() {
            chain.dns_names.clone()
        } else {
            cert.server_names.clone()
        };
        let metric_name = names.first().cloned().unwrap_or_else(|| label.to_owned());
        metrics()
            .certificate_not_after
            .with_label_values(&[metric_name.as_str(), label])
            .set(chain.not_after);
        let is_default =
            cert.default || (i == 0 && !listener.certificates.iter().any(|c| c.default));
        let chain_serial = chain.serial.clone();
        let mut certified = CertifiedKey::new(chain.certs, key);
        if let Some(path) = &cert.ocsp_file {
            let ocsp = read_small(path).map_err(|reason| Error::File {
                path: path.clone(),
                reason,
            })?;
            check_ocsp(&ocsp, &chain_serial).map_err(|reason| Error::File {
                path: path.clone(),
                reason,
            })?;
            certified.ocsp = Some(ocsp);
        }
        resolver.add(&names, Entry::new(certified), is_default);
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = listener
        .tls_versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let tls_err = |error| Error::Tls {
        address: listener.address,
        error,
    };
    let provider = Arc::new(provider(listener));
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(tls_err)?;
    let builder = match &listener.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let roots = Arc::new(client_roots(&auth.ca_file)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth.required {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| Error::File {
                path: auth.ca_file.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    // The server's cipher-suite order wins (`cipher_suites` is a preference order).
    config.ignore_client_order = true;
    config.alpn_protocols = listener
        .alpn
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    config.session_storage = if resumption.session_cache_entries == 0 {
        Arc::new(rustls::server::NoServerSessionStorage {})
    } else {
        ServerSessionMemoryCache::new(resumption.session_cache_entries)
    };
    config.send_tls13_tickets = resumption.tls13_tickets;
    Ok(config)
}

#[cfg(all(test, feature = "bench-plain-keys"))]
mod plain_key_tests {
    use super::*;

    /// Runs a rustls handshake between `client` and `server` in memory.
    fn handshake(
        client: &mut rustls::ClientConnection,
        server: &mut rustls::ServerConnection,
    ) -> Result<(), rustls::Error> {
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    #[test]
    fn a_plain_key_file_serves_handshakes_in_bench_builds() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        let toml = dir.path().join("keyward.toml");
        std::fs::write(
            &toml,
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nprivate_key_file = \"key.pem\"\nchain_file = \"cert.pem\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let config = keyward_config::Config::load(&toml, Vec::new()).unwrap();
        let test_hsm = keyward_hsm::test_util::TestHsm::new();
        let session = test_hsm.service();
        let (_store, hsm) = test_hsm.into_parts();
        let keys = Keys::Local {
            hsm: Arc::new(hsm),
            session,
            role: crate::NodeRole::Writer,
        };
        let server_config =
            server_config(&config.listeners[0], &config.session_resumption, &keys).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_config),
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        handshake(&mut client, &mut server).unwrap();
        assert_eq!(
            client.peer_certificates().unwrap()[0].as_ref(),
            cert.der().as_ref()
        );
    }
}
