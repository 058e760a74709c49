//! Serving the HSM API over TLS whose key is itself an HSM key (label `api-tls`).
//!
//! The listener has the proxy's defences, built from the same parts
//! ([`keyward_proxy::conn`]): a TLS handshake timeout, hyper's HTTP/1.1 header timeout
//! (slowloris), a timeout between two reads of a request body
//! (`408 request_timeout`), an idle timeout (HTTP/2 included), at most `max_connections` open
//! (the rest wait in the kernel's backlog), and a drain: when `shutdown` completes the
//! listening socket is closed (new connections are refused), requests in flight finish
//! (HTTP/1.1 connections close after their response, HTTP/2 ones get GOAWAY), and connections
//! still open at the drain deadline are dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keyward_config::ApiLimits;
use keyward_hsm::{Hsm, KeyClass, Session};
use keyward_proxy::conn::{drive, Active, Activity, Lifecycle, Tracked};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

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

/// The flags of `keyward hsm serve` for its listener's defences (the `[api]` keys of
/// `keyward serve`, with the same defaults).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct LimitArgs {
    /// Deadline of a client's TLS handshake, in ms.
    #[arg(long, default_value_t = ApiLimits::default().handshake_timeout_ms, value_parser = positive)]
    handshake_timeout_ms: u64,
    /// Deadline of an HTTP/1.1 request head, in ms (slowloris defence; also while a keep-alive
    /// connection waits for its next request).
    #[arg(long, default_value_t = ApiLimits::default().client_header_timeout_ms, value_parser = positive)]
    client_header_timeout_ms: u64,
    /// Longest wait between two reads of a request body, in ms (then 408).
    #[arg(long, default_value_t = ApiLimits::default().client_body_timeout_ms, value_parser = positive)]
    client_body_timeout_ms: u64,
    /// A connection with no request in flight and no bytes moving is closed after this, in ms.
    #[arg(long, default_value_t = ApiLimits::default().idle_timeout_ms, value_parser = positive)]
    idle_timeout_ms: u64,
    /// Connections open at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = ApiLimits::default().max_connections as u64, value_parser = positive)]
    max_connections: u64,
    /// After SIGTERM, requests in flight get this long to finish, in ms.
    #[arg(long, default_value_t = keyward_config::DEFAULT_DRAIN_TIMEOUT_MS, value_parser = positive)]
    drain_timeout_ms: u64,
    /// How long an admin stays locked after 5 consecutive failed logins, in s; 0: until another
    /// admin (or `keyward recover reset-password`) sets a new password. Crypto-users stay
    /// locked until an admin resets them.
    #[arg(long, default_value_t = keyward_config::DEFAULT_ADMIN_LOCKOUT_S)]
    admin_lockout_s: u64,
    #[command(flatten)]
    accept: AcceptArgs,
}

/// What `serve` and `hsm serve` accept at start instead of refusing to open the store; each
/// acceptance is written to the audit trail.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct AcceptArgs {
    /// Start although the audit trail is damaged (an entry edited, swapped, deleted or
    /// inserted): the stretch from the first bad entry to now is recorded as accepted, pinned
    /// by a digest, and audited (`audit.damage-accepted`); any later change in it, and damage
    /// elsewhere, still stops the node; `audit verify` keeps reporting it. For one start, after
    /// investigating: do not leave it in a unit file.
    #[arg(long)]
    pub(crate) accept_audit_damage: bool,
    /// Start although the store is older than its rollback anchor (`keyward.sqlite3.anchor`:
    /// confirmed changes are missing) or the anchor is missing: the node starts from the store
    /// as it is, writes a new anchor and audits it (`store.rollback-accepted`).
    #[arg(long)]
    pub(crate) accept_rollback: bool,
}

impl AcceptArgs {
    pub(crate) fn options(self) -> keyward_hsm::OpenOptions {
        keyward_hsm::OpenOptions {
            accept_audit_damage: self.accept_audit_damage,
            accept_rollback: self.accept_rollback,
        }
    }
}

fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> ApiLimits {
        let mut limits = ApiLimits::default();
        limits.handshake_timeout_ms = self.handshake_timeout_ms;
        limits.client_header_timeout_ms = self.client_header_timeout_ms;
        limits.client_body_timeout_ms = self.client_body_timeout_ms;
        limits.idle_timeout_ms = self.idle_timeout_ms;
        limits.max_connections = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        limits
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// `keyward hsm serve`: opens `dir` as its writer, serves the API on `listen` until
/// `shutdown`, drains, and records the unseal and the seal in the audit trail.
pub(crate) async fn run_node(
    dir: &Path,
    listen: SocketAddr,
    client_ca: Option<&Path>,
    limits: &LimitArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listener = bind(listen).await?;
    let (hsm, _writer) = crate::data_dir::open_for_writing(dir, limits.accept.options())?;
    hsm.set_admin_lockout(Duration::from_secs(limits.admin_lockout_s));
    let hsm = Arc::new(hsm);
    let session = hsm.service_session(keyward_hsm::PROXY_USER)?;
    let tls = tls_config(&hsm, &session, dir, client_ca)?;
    hsm.record_unseal("hsm serve")?;
    tracing::info!(addr = %listener.local_addr()?, "serving the HSM API");
    serve(
        listener,
        tls,
        hsm.clone(),
        limits.limits(),
        limits.drain_timeout(),
        shutdown,
    )
    .await;
    hsm.record_seal("hsm serve")?;
    Ok(())
}

/// What every connection of one API listener shares.
struct Connections {
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    hsm: Arc<Hsm>,
    limits: ApiLimits,
    lifecycle: Arc<Lifecycle>,
    draining: watch::Receiver<bool>,
}

/// Serves the API on `listener` until `shutdown` completes, then drains for at most
/// `drain_timeout` (see the module documentation).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    hsm: Arc<Hsm>,
    limits: ApiLimits,
    drain_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let label = listener
        .local_addr()
        .map_or_else(|_| "api".to_owned(), |a| a.to_string());
    let (drain_tx, draining) = watch::channel(false);
    let lifecycle = Lifecycle::new(draining.clone());
    let connections = Arc::new(Connections {
        acceptor: tokio_rustls::TlsAcceptor::from(tls),
        router: keyward_server::router(hsm.clone()),
        hsm,
        limits,
        lifecycle: lifecycle.clone(),
        draining,
    });
    // The accept loop owns the listening socket: it closes when the loop is dropped here.
    tokio::select! {
        _ = accept_loop(listener, connections, label) => {}
        _ = shutdown => {}
    }
    tracing::info!(
        connections = lifecycle.open_connections(),
        deadline_ms = drain_timeout.as_millis() as u64,
        "API draining: no new connections; waiting for in-flight requests"
    );
    let _ = drain_tx.send(true);
    if lifecycle.wait_closed(drain_timeout).await {
        tracing::info!("API drained: every connection closed");
    } else {
        tracing::warn!(
            connections = lifecycle.open_connections(),
            "API drain deadline reached; closing the remaining connections"
        );
    }
}

/// Accepts connections, at most `max_connections` open at once (the rest wait in the kernel's
/// backlog); each runs in its own task holding its permit.
async fn accept_loop(listener: TcpListener, connections: Arc<Connections>, label: String) {
    let slots = Arc::new(Semaphore::new(connections.limits.max_connections));
    let mut last_warned: Option<Instant> = None;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off, and say so at most once a second.
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "API accept failed; backing off");
                    last_warned = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let active = Active::new(connections.lifecycle.clone(), &label);
        let connections = connections.clone();
        tokio::spawn(async move {
            connections.serve(tcp, peer).await;
            drop(active);
            drop(permit);
        });
    }
}

impl Connections {
    /// One connection: the TLS handshake (within `handshake_timeout_ms`), then HTTP/2 when
    /// ALPN chose it, else HTTP/1.1 with the header timeout; idle and drain handled by
    /// [`drive`].
    async fn serve(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let activity = Activity::new();
        let io = Tracked::new(tcp, activity.clone());
        let handshake_timeout = Duration::from_millis(self.limits.handshake_timeout_ms);
        let tls = match tokio::time::timeout(handshake_timeout, self.acceptor.accept(io)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "API TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "API TLS handshake timed out");
                return;
            }
        };
        // A verified client certificate logs its user in for this connection.
        let cert_session = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(common_name)
            .and_then(|cn| match self.hsm.certificate_session(&cn, Duration::from_secs(24 * 3600)) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::info!(%peer, user = %cn, code = e.code(), "client certificate login refused");
                    None
                }
            });
        let router = self
            .router
            .clone()
            .layer(axum::Extension(keyward_server::api::ClientAddr(peer.ip())));
        let router = match &cert_session {
            Some(s) => router.layer(axum::Extension(
                keyward_server::api::ClientCertificateSession(s.clone()),
            )),
            None => router,
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let body_timeout = Duration::from_millis(self.limits.client_body_timeout_ms);
        let counted = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            let in_flight = counted.request();
            async move {
                let _in_flight = in_flight;
                // The body streams into the router, which authenticates before it reads a body
                // (and reads at most the route's limit): nothing is buffered for a caller that
                // is refused. Each read waits at most `client_body_timeout_ms` (then 408).
                let (parts, body) = req.into_parts();
                let body = axum::body::Body::new(tower_http::timeout::TimeoutBody::new(
                    body_timeout,
                    body,
                ));
                router
                    .oneshot(hyper::Request::from_parts(parts, body))
                    .await
            }
        });
        let idle = Duration::from_millis(self.limits.idle_timeout_ms);
        let mut draining = self.draining.clone();
        let io = TokioIo::new(tls);
        let result = if h2 {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service);
            drive(
                conn,
                |c| c.graceful_shutdown(),
                &activity,
                idle,
                &mut draining,
            )
            .await
        } else {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(self.limits.client_header_timeout_ms))
                .serve_connection(io, service);
            drive(
                conn,
                |c| c.graceful_shutdown(),
                &activity,
                idle,
                &mut draining,
            )
            .await
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "API connection ended with an error");
        }
        if let Some(s) = cert_session {
            self.hsm.logout(&s);
        }
    }
}
