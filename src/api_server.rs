//! Serving the HSM API over TLS whose key is itself an HSM key (label `api-tls`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use keyward_hsm::{Hsm, KeyClass, Session};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;

/// Label of the API's TLS key.
pub(crate) const API_KEY_LABEL: &str = "api-tls";

/// Where `keyward init` writes the API certificate (also the CA file clients trust).
pub(crate) fn api_cert_path(dir: &Path) -> PathBuf {
    dir.join("api-ca.pem")
}

/// A rustls server config for the API: the certificate in `DIR/api-ca.pem`, the key in the HSM.
/// With `client_ca`, clients may present a certificate issued by that CA (mutual TLS); its
/// subject common name is the user it logs in as. Clients without one still use passwords.
pub(crate) fn tls_config(
    hsm: &Hsm,
    session: &Session,
    dir: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>> {
    let path = api_cert_path(dir);
    let pem = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read the API certificate {} (run `keyward init`)",
            path.display()
        )
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
    let key = hsm.find_by_label(session, API_KEY_LABEL, KeyClass::Private)?;
    let signer = keyward_proxy::signing_key(hsm.signer(session, key.handle)?);
    let certified = Arc::new(rustls::sign::CertifiedKey::new(chain, signer));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder =
        match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read client CA {}", path.display()))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    roots
                        .add(cert.with_context(|| {
                            format!("{} is not a PEM certificate", path.display())
                        })?)
                        .with_context(|| {
                            format!("{} holds an unusable CA certificate", path.display())
                        })?;
                }
                if roots.is_empty() {
                    anyhow::bail!("{} holds no certificate", path.display());
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
                builder.with_client_cert_verifier(verifier)
            }
        };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Binds `addr` (before anything else is started, so a busy port is reported at once).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// The subject common name of a DER certificate.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
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

/// Serves the API on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    hsm: Arc<Hsm>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let router = keyward_server::router(hsm.clone());
    let accept = async {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            let hsm = hsm.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(Ok(tls)) =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                        .await
                else {
                    tracing::debug!(%peer, "API TLS handshake failed");
                    return;
                };
                // A verified client certificate logs its user in for this connection.
                let cert_session = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(common_name)
                    .and_then(|cn| match hsm.certificate_session(&cn, std::time::Duration::from_secs(24 * 3600)) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::info!(%peer, user = %cn, code = e.code(), "client certificate login refused");
                            None
                        }
                    });
                let router = router.layer(axum::Extension(keyward_server::api::ClientAddr(
                    peer.ip(),
                )));
                let router = match &cert_session {
                    Some(s) => router.layer(axum::Extension(
                        keyward_server::api::ClientCertificateSession(s.clone()),
                    )),
                    None => router,
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                if let Err(e) = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "API connection ended with an error");
                }
                if let Some(s) = cert_session {
                    hsm.logout(&s);
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
}
