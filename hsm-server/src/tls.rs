//! The API's TLS: its key is itself an HSM key (label [`API_KEY_LABEL`]), or, on a node that
//! an operator unseals (passphrase or shares), the file `DATA_DIR/api-tls.key` (mode 0600:
//! TLS must work before the HSM is unsealed, to carry the unseal shares, as Vault's listener
//! key is a file); its certificate the file `DATA_DIR/api-ca.pem` (also the CA file clients
//! trust), and an optional client CA for mutual TLS, whose certificates log their subject
//! common name in ([`common_name`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use keyward_hsm::{Hsm, KeyClass, KeySpec, Session, PROXY_USER};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::{pki, NodeError, SealGate};

/// Label of the API's TLS key.
pub const API_KEY_LABEL: &str = "api-tls";

/// Where `keyward init` writes the API certificate (also the CA file clients trust).
pub fn api_cert_path(dir: &Path) -> PathBuf {
    dir.join("api-ca.pem")
}

/// Where the API's key file is, on a node that an operator unseals.
pub fn api_key_path(dir: &Path) -> PathBuf {
    dir.join("api-tls.key")
}

/// Makes the API's TLS identity for a node that an operator unseals: a new P-256 key in the
/// file [`api_key_path`] (PKCS#8 PEM, mode 0600, created new: an existing file is an error)
/// and a self-signed certificate for `dns` and `ips`, valid for `days` days, written to
/// [`api_cert_path`].
pub fn provision_api_key_file(
    dir: &Path,
    dns: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<(), NodeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| {
        NodeError::Certificate {
            what: "generating the API key failed",
            source,
        }
    })?;
    let pem = pki::self_signed(&key, dns, ips, days)?;
    let secret = zeroize::Zeroizing::new(key.serialize_pem());
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(api_key_path(dir))?
        .write_all(secret.as_bytes())?;
    std::fs::write(api_cert_path(dir), pem)?;
    Ok(())
}

/// Makes the API's TLS identity in the data directory `dir`: a new P-256 key labelled
/// [`API_KEY_LABEL`] in the HSM and a self-signed certificate for `dns` and `ips`, valid for
/// `days` days, written to [`api_cert_path`].
pub fn provision_api_certificate(
    hsm: &Hsm,
    session: &Session,
    dir: &Path,
    dns: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<(), NodeError> {
    let (key, _) = pki::generate_tls_key(hsm, session, KeySpec::EcP256, API_KEY_LABEL)?;
    let signer = pki::HsmCertKey::new(hsm.signer(session, key.handle)?)?;
    let pem = pki::self_signed(&signer, dns, ips, days)?;
    std::fs::write(api_cert_path(dir), pem)?;
    Ok(())
}

/// A rustls server config for the API of the node behind `gate`: the certificate in
/// `DIR/api-ca.pem`; the key in `DIR/api-tls.key` when that file exists (a node an operator
/// unseals), else the HSM's [`API_KEY_LABEL`] key, taken from the HSM while it is unsealed
/// (a sealed node's API then refuses TLS handshakes: no key is left in memory).
/// With `client_ca`, clients may present a certificate issued by that CA (mutual TLS); its
/// subject common name is the user it logs in as. Clients without one still use passwords.
pub fn tls_config(
    gate: &Arc<SealGate>,
    dir: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, NodeError> {
    let path = api_cert_path(dir);
    let pem = std::fs::read(&path).map_err(|source| NodeError::ApiCertificateUnreadable {
        path: path.display().to_string(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|source| NodeError::NotPem {
            path: path.display().to_string(),
            source,
        })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key_path = api_key_path(dir);
    let resolver: Arc<dyn rustls::server::ResolvesServerCert> = if key_path.exists() {
        let certified = rustls::sign::CertifiedKey::new(chain, file_key(&key_path, &provider)?);
        Arc::new(rustls::sign::SingleCertAndKey::from(Arc::new(certified)))
    } else {
        let hsm_cert = Arc::new(HsmApiCert {
            gate: gate.clone(),
            chain,
            cached: Mutex::new(None),
        });
        if gate.hsm().is_none() {
            return Err(NodeError::ApiKeyUnusable {
                path: key_path.display().to_string(),
                reason: "it does not exist, and the API's HSM key cannot be used while the node is sealed".into(),
            });
        }
        // Fails the start now if the key is missing.
        hsm_cert.current()?;
        let weak = Arc::downgrade(&hsm_cert);
        gate.on_seal(Box::new(move || {
            if let Some(c) = weak.upgrade() {
                c.forget();
            }
        }));
        hsm_cert
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The API's certificate with the HSM's [`API_KEY_LABEL`] key, while the node is unsealed;
/// the signer is kept for the HSM it came from and dropped when the node seals.
struct HsmApiCert {
    gate: Arc<SealGate>,
    chain: Vec<CertificateDer<'static>>,
    cached: Mutex<Option<(Weak<Hsm>, Arc<rustls::sign::CertifiedKey>)>>,
}

impl std::fmt::Debug for HsmApiCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmApiCert").finish_non_exhaustive()
    }
}

impl HsmApiCert {
    fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn current(&self) -> Result<Arc<rustls::sign::CertifiedKey>, NodeError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let Some(hsm) = self.gate.hsm() else {
            *cached = None;
            return Err(NodeError::Hsm(keyward_hsm::Error::Sealed {
                reason: "the node is sealed",
            }));
        };
        if let Some((weak, key)) = &*cached {
            if weak.upgrade().is_some_and(|h| Arc::ptr_eq(&h, &hsm)) {
                return Ok(key.clone());
            }
        }
        let session = hsm.service_session(PROXY_USER)?;
        let key = hsm.find_by_label(&session, API_KEY_LABEL, KeyClass::Private)?;
        let signer = keyward_proxy::signing_key(hsm.signer(&session, key.handle)?);
        let certified = Arc::new(rustls::sign::CertifiedKey::new(self.chain.clone(), signer));
        *cached = Some((Arc::downgrade(&hsm), certified.clone()));
        Ok(certified)
    }
}

impl rustls::server::ResolvesServerCert for HsmApiCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current().ok()
    }
}

/// The API's key from its file, refused if group or others may read it.
fn file_key(
    path: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<dyn rustls::sign::SigningKey>, NodeError> {
    use rustls_pki_types::PrivateKeyDer;
    use std::os::unix::fs::PermissionsExt;
    let unusable = |reason: String| NodeError::ApiKeyUnusable {
        path: path.display().to_string(),
        reason,
    };
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unusable(format!(
            "mode {mode:04o} lets group or others read it (chmod 600)"
        )));
    }
    let pem = zeroize::Zeroizing::new(std::fs::read(path)?);
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| unusable("not a PEM private key".into()))?;
    provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| unusable(e.to_string()))
}

/// A verifier of client certificates issued by the CA(s) in the PEM file `path`; clients
/// without a certificate are let through (they log in with a password).
fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, NodeError> {
    let name = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| NodeError::ClientCaUnreadable {
        path: name(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|source| NodeError::NotPem {
            path: name(),
            source,
        })?;
        roots.add(cert).map_err(|source| NodeError::UnusableCa {
            path: name(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(NodeError::NoCertificate { path: name() });
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(NodeError::ClientVerifier)
}

/// The subject common name of a DER certificate: the user a client certificate logs in as.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}
