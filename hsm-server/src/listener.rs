//! Serving the API over TLS on a TCP listener.
//!
//! The listener has the proxy's defences, built from the same parts
//! ([`keyward_proxy::conn`]): a TLS handshake timeout, hyper's HTTP/1.1 header timeout
//! (slowloris), a timeout between two reads of a request body
//! (`408 request_timeout`), an idle timeout (HTTP/2 included), at most `max_connections` open
//! (the rest wait in the kernel's backlog), and a drain: when `shutdown` completes the
//! listening socket is closed (new connections are refused), requests in flight finish
//! (HTTP/1.1 connections close after their response, HTTP/2 ones get GOAWAY), and connections
//! still open at the drain deadline are dropped.
//!
//! A verified client certificate (see [`crate::tls`]) logs its subject common name in for
//! the connection's lifetime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::SealGate;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keyward_config::ApiLimits;
use keyward_proxy::conn::{drive, Active, Activity, Lifecycle, Tracked};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::tls::common_name;

/// What every connection of one API listener shares.
struct Connections {
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    gate: Arc<SealGate>,
    limits: ApiLimits,
    lifecycle: Arc<Lifecycle>,
    draining: watch::Receiver<bool>,
}

/// Serves the API of the node behind `gate` (sealed or not) on `listener` until `shutdown`
/// completes, then drains for at most `drain_timeout` (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    gate: Arc<SealGate>,
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
        router: gate.router(),
        gate,
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
    let gauge = Active::gauge(&label);
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
        let active = Active::new(connections.lifecycle.clone(), &gauge);
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
        // A verified client certificate logs its user in for this connection (on an unsealed
        // node; the HSM is held weakly, so that a seal drops it while the connection lasts).
        let hsm = self.gate.hsm();
        let cert_session = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(common_name)
            .and_then(|cn| match hsm.as_ref()?.certificate_session(&cn, Duration::from_secs(24 * 3600)) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::info!(%peer, user = %cn, code = e.code().as_str(), "client certificate login refused");
                    None
                }
            });
        let hsm = hsm.as_ref().map(Arc::downgrade);
        let router = self
            .router
            .clone()
            .layer(axum::Extension(crate::api::ClientAddr(peer.ip())));
        let router = match &cert_session {
            Some(s) => router.layer(axum::Extension(crate::api::ClientCertificateSession(
                s.clone(),
            ))),
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
        if let (Some(s), Some(hsm)) = (cert_session, hsm.and_then(|h| h.upgrade())) {
            hsm.logout(&s);
        }
    }
}
