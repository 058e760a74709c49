//! A pool's connections to its servers: the connector (TCP, or TLS with rustls, bounded by
//! `connect_timeout_ms`), and what each connection has carried, so that a request that fails
//! on a reused connection can be told apart from one a server may have processed.
//!
//! Why: an upstream closes an idle keep-alive connection on its own timer (gunicorn after
//! 2 s, Node after 5 s). A request written on that connection at the same moment reaches a
//! socket the server has closed: the server never reads it and answers with FIN or RST, and
//! hyper reports "connection closed before message completed" or a reset. nginx re-sends such
//! a request on another connection (`proxy_next_upstream error` on a cached connection);
//! so does [`super::Pool::send_counted`], using [`stale`] to decide:
//!
//! - [`Stale::Unsent`]: hyper handed the request back unwritten (the connection closed while
//!   the request waited for it: `hyper::Error::is_canceled`, what hyper-util's
//!   `retry_canceled_requests` retries). Safe for every method.
//! - [`Stale::ClosedIdle`]: the connection had carried an earlier exchange, the request was
//!   written, and the connection failed before the server sent one byte of response. The
//!   server did not answer it; for idempotent methods (RFC 9110 §9.2.2) sending it again is
//!   safe even in the unlikely case that it was processed.
//!
//! The second needs to know, per connection, whether any response byte arrived since the
//! request began. [`Tracked`] wraps each connection above TLS and counts exchanges (a write
//! after the server's last bytes starts one) and response bytes; the counts travel with the
//! connection's `Connected` info, which hyper-util attaches to every request error.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use keyward_config::PoolConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One connection to a server, as hyper's client sees it.
pub(super) type UpstreamIo = TokioIo<Tracked<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>>>;

/// The connector of a pool's clients: HTTP or HTTPS, the whole connect bounded by a timeout,
/// every connection [`Tracked`].
#[derive(Clone)]
pub(super) struct Connector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl Connector {
    /// The connector for `cfg`'s servers.
    ///
    /// # Errors
    /// A reason (for [`crate::Error::Upstream`]) when the CA file is unusable, the
    /// `tls_server_name` is not a valid name, or rustls refuses the settings.
    pub(super) fn new(cfg: &PoolConfig) -> Result<Connector, String> {
        let timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(cfg)?)
            .https_or_http();
        let builder = match &cfg.tls_server_name {
            Some(n) => {
                let sn = ServerName::try_from(n.clone())
                    .map_err(|_| format!("tls_server_name {n:?} is not a valid name"))?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(sn))
            }
            None => builder,
        };
        Ok(Connector {
            inner: builder.enable_http1().wrap_connector(http),
            timeout,
        })
    }
}

impl tower::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map(|stream| TokioIo::new(Tracked::new(TokioIo::new(stream)))),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "upstream connect timed out",
                )
                .into()),
            }
        })
    }
}

/// rustls client settings for `https://` servers: aws-lc-rs, TLS 1.2 and 1.3; roots from
/// `tls_ca_file` (PEM `CERTIFICATE` blocks) or webpki-roots.
fn tls_config(cfg: &PoolConfig) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.tls_ca_file {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| format!("tls_ca_file {}: {}", path.display(), e.kind()))?;
            let blocks = pem::parse_many(&text)
                .map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
            for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
                roots
                    .add(CertificateDer::from(block.contents().to_vec()))
                    .map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "tls_ca_file {}: no CERTIFICATE block",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // No ALPN (hyper-rustls sets it; HTTP/1.1-only connectors send none): HTTP/1.1.
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// What one connection has carried. Written by the connection's task through [`Tracked`],
/// read by the request that failed on it; per connection, never shared wider.
#[derive(Debug, Default)]
struct History {
    /// Exchanges begun: the first write, and each write after bytes from the server.
    exchanges: AtomicU64,
    /// Bytes read from the server (above TLS), in all.
    read_bytes: AtomicU64,
    /// `read_bytes` when the current exchange began.
    read_at_exchange: AtomicU64,
}

/// The `Connected` extra that carries a connection's [`History`] to request errors.
#[derive(Clone, Debug)]
struct HistoryHandle(Arc<History>);

/// A connection wrapper that keeps its [`History`]. Reads and writes pass through untouched.
pub(super) struct Tracked<S> {
    inner: S,
    history: Arc<History>,
    /// Bytes came from the server since the last write: the next write begins an exchange.
    read_since_write: bool,
}

impl<S> Tracked<S> {
    fn new(inner: S) -> Tracked<S> {
        Tracked {
            inner,
            history: Arc::default(),
            read_since_write: true,
        }
    }

    fn on_write(&mut self) {
        if self.read_since_write {
            self.read_since_write = false;
            let h = &self.history;
            h.exchanges.fetch_add(1, Ordering::Release);
            h.read_at_exchange
                .store(h.read_bytes.load(Ordering::Acquire), Ordering::Release);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.history
                .read_bytes
                .fetch_add(n as u64, Ordering::Release);
            self.read_since_write = true;
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.on_write();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.on_write();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Tracked<S> {
    fn connected(&self) -> Connected {
        self.inner
            .connected()
            .extra(HistoryHandle(self.history.clone()))
    }
}

/// Why a failed request may be sent again on a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stale {
    /// hyper gave the request back unwritten.
    Unsent,
    /// The connection failed after an idempotent request was written, before any response
    /// byte: typically a pooled connection the server closed as it idled (also one that was
    /// opened, never used and pooled), or a server that closed without answering.
    ClosedIdle,
}

impl Stale {
    /// The `reason` label of `keyward_upstream_retries_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Stale::Unsent => "unsent",
            Stale::ClosedIdle => "closed_idle",
        }
    }
}

/// Whether `error` (a request error that is not a connect error) shows a stale pooled
/// connection rather than a server that may have processed the request: see the module
/// documentation. [`Stale::ClosedIdle`] only when `idempotent`.
pub(super) fn stale(error: &hyper_util::client::legacy::Error, idempotent: bool) -> Option<Stale> {
    let canceled = std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<hyper::Error>())
        .is_some_and(hyper::Error::is_canceled);
    if canceled {
        return Some(Stale::Unsent);
    }
    if !idempotent {
        return None;
    }
    let mut extras = http::Extensions::new();
    error.connect_info()?.get_extras(&mut extras);
    // Any connection, reused or not: one that the pool opened for another request and kept
    // idle is as stale as a reused one, and an idempotent request may be repeated (RFC 9110
    // §9.2.2), as nginx's `proxy_next_upstream error` does before any response byte.
    let history = &extras.get::<HistoryHandle>()?.0;
    let answered = history.read_bytes.load(Ordering::Acquire)
        != history.read_at_exchange.load(Ordering::Acquire);
    (!answered).then_some(Stale::ClosedIdle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn exchanges_begin_with_a_write_after_server_bytes() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut t = Tracked::new(client);
        let h = t.history.clone();
        let state = |h: &History| {
            (
                h.exchanges.load(Ordering::Acquire),
                h.read_bytes.load(Ordering::Acquire),
                h.read_at_exchange.load(Ordering::Acquire),
            )
        };
        // Request 1 in two writes, its response in one read.
        t.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        t.write_all(b"\r\n").await.unwrap();
        assert_eq!(state(&h), (1, 0, 0));
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = t.read(&mut buf).await.unwrap();
        assert_eq!(state(&h), (1, n as u64, 0));
        // Request 2: a new exchange; nothing read for it yet.
        t.write_all(b"GET /2 HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(state(&h), (2, n as u64, n as u64));
        let mut sink = [0u8; 64];
        let _ = server.read(&mut sink).await.unwrap();
        server.write_all(b"H").await.unwrap();
        let _ = t.read(&mut buf).await.unwrap();
        assert_eq!(state(&h), (2, n as u64 + 1, n as u64));
    }
}
