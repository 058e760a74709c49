//! The API's TLS: its key is itself an HSM key (label [`API_KEY_LABEL`]), its certificate the
//! file `DATA_DIR/api-ca.pem` (also the CA file clients trust), and an optional client CA for
//! mutual TLS, whose certificates log their subject common name in ([`common_name`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_hsm::{Hsm, KeyClass, KeySpec, Session};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::{pki, NodeError};

/// Label of the API's TLS key.
pub const API_KEY_LABEL: &str = "api-tls";

/// Where `keyward init` writes the API certificate (also the CA file clients trust).
pub fn api_cert_path(dir: &Path) -> PathBuf {
    dir.join("api-ca.pem")
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

/// A rustls server config for the API: the certificate in `DIR/api-ca.pem`, the key in the HSM.
/// With `client_ca`, clients may present a certificate issued by that CA (mutual TLS); its
/// subject common name is the user it logs in as. Clients without one still use passwords.
pub fn tls_config(
    hsm: &Hsm,
    session: &Session,
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
    let key = hsm.find_by_label(session, API_KEY_LABEL, KeyClass::Private)?;
    let signer = keyward_proxy::signing_key(hsm.signer(session, key.handle)?);
    let certified = Arc::new(rustls::sign::CertifiedKey::new(chain, signer));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
