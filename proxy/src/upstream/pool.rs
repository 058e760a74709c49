//! A pool and its request path: [`Pool::send_counted`] picks a server ([`super::balance`]),
//! sends the buffered request over hyper-util's client ([`super::connect`] makes its
//! connections), retries what may be retried, and reports failures to the server's passive
//! health ([`super::health`]). Also layer-4 connects ([`Pool::connect_tcp`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRAILER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use keyward_config::{Balance, HealthCheckConfig, PoolConfig};
use prometheus::{Histogram, IntCounter};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::connect::{stale, Connector, Stale};
use super::server::{InFlight, Server};
use crate::error::Error;
use crate::metrics::metrics;

/// A request ready for a pool: `parts.uri` is origin-form (path and query as the client sent
/// them); headers are final except what the pool sets per server (URI scheme/authority, path
/// prefix) and the framing headers (`Content-Length`, `Transfer-Encoding`, `Trailer`), which
/// the pool derives from `body` and `trailers`. The body is buffered, so a retry can send it
/// again.
pub(crate) struct UpstreamRequest {
    pub(crate) parts: http::request::Parts,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

/// Why a pool could not produce a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No server is healthy (503).
    NoServer,
    /// Connecting failed on every server tried (502).
    Connect,
    /// No response headers within `response_timeout_ms` (504).
    Timeout,
    /// The connection failed after the request was sent (502).
    Failed,
}

/// Every pool of the configuration.
pub(crate) struct Pools {
    pub(super) pools: BTreeMap<String, Arc<Pool>>,
}

/// One pool.
pub(crate) struct Pool {
    pub(super) name: String,
    pub(super) servers: Vec<Arc<Server>>,
    pub(super) balance: Balance,
    /// Round-robin position.
    pub(super) next: AtomicUsize,
    pub(super) client: Client<Connector, UpstreamBody>,
    /// The same connector without idle connections: each request on a new connection.
    pub(super) fresh_client: Client<Connector, UpstreamBody>,
    pub(super) retries: u32,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) read_timeout: Duration,
    pub(super) health_check: Option<HealthCheckConfig>,
    /// `keyward_upstream_request_duration_seconds{pool=name}`.
    pub(super) request_duration: Histogram,
    /// `keyward_upstream_retries_total{pool=name,reason}`: `connect`, `unsent`,
    /// `closed_idle`.
    pub(super) retried_connect: IntCounter,
    pub(super) retried_unsent: IntCounter,
    pub(super) retried_closed_idle: IntCounter,
}

/// How one exchange with a server failed.
enum Exchange {
    /// Connecting failed (counted against the server).
    ConnectFailed,
    /// No response headers within `response_timeout_ms` (counted against the server).
    TimedOut,
    /// The connection failed otherwise: maybe a stale pooled connection.
    Failed(hyper_util::client::legacy::Error),
}

impl Pools {
    /// Builds every pool: TLS settings (`tls_ca_file` PEM, else the Mozilla roots), clients,
    /// and `keyward_upstream_healthy{pool,server}` = 1 for every server.
    ///
    /// # Errors
    /// [`Error::Upstream`] naming the pool when its CA file cannot be read or holds no usable
    /// certificate, a `tls_server_name` or server authority is invalid, or rustls refuses
    /// the TLS settings.
    pub(crate) fn build(cfg: &BTreeMap<String, PoolConfig>) -> Result<Pools, Error> {
        let mut pools = BTreeMap::new();
        for (name, pc) in cfg {
            pools.insert(name.clone(), Arc::new(Pool::build(name, pc)?));
        }
        Ok(Pools { pools })
    }

    /// The pool named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.get(name).cloned()
    }
}

/// RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
pub(super) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Sets the framing headers for a buffered body (RFC 9112 §6): `Content-Length` for a
/// non-empty body without trailers (and `0` for an empty POST, PUT or PATCH); with trailers,
/// chunked transfer coding and a `Trailer` field naming them (RFC 9110 §6.6.2; hyper sends
/// only declared trailer fields).
fn set_framing(
    method: &Method,
    headers: &mut HeaderMap,
    body: &Bytes,
    trailers: Option<&HeaderMap>,
) {
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(TRAILER);
    match trailers {
        Some(t) if !t.is_empty() => {
            headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            let names = t.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&names) {
                headers.insert(TRAILER, v);
            }
        }
        _ if !body.is_empty() => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        _ if matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        _ => {}
    }
}

impl Pool {
    /// `read_timeout_ms`: the longest wait between two reads of a response body.
    pub(crate) fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    pub(super) fn build(name: &str, cfg: &PoolConfig) -> Result<Pool, Error> {
        let bad = |reason: String| Error::Upstream {
            pool: name.to_owned(),
            reason,
        };
        let epoch = Instant::now();
        let mut servers = Vec::with_capacity(cfg.servers.len());
        for s in &cfg.servers {
            servers.push(Arc::new(Server::new(name, s, cfg, epoch).map_err(&bad)?));
        }
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let connector = Connector::new(cfg).map_err(&bad)?;
        // Requests handed back unwritten are retried here, not inside hyper-util, so that
        // they are counted and go out on a new connection.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .retry_canceled_requests(false)
            .build(connector.clone());
        let fresh_client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .retry_canceled_requests(false)
            .build(connector);
        let retried = |reason: &str| {
            metrics()
                .upstream_retries
                .with_label_values(&[name, reason])
        };
        Ok(Pool {
            name: name.to_owned(),
            servers,
            balance: cfg.balance,
            next: AtomicUsize::new(0),
            client,
            fresh_client,
            retries: cfg.retries,
            connect_timeout,
            response_timeout: Duration::from_millis(cfg.response_timeout_ms),
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            health_check: cfg.health_check.clone(),
            request_duration: metrics()
                .upstream_request_duration
                .with_label_values(&[name]),
            retried_connect: retried("connect"),
            retried_unsent: retried(Stale::Unsent.label()),
            retried_closed_idle: retried(Stale::ClosedIdle.label()),
        })
    }

    /// The pool's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[cfg(test)]
    /// Sends `req` to a healthy server: `scheme://authority{prefix}{path_and_query}`, HTTP/1.1,
    /// the client's `Host` kept. A connect failure of an idempotent request is retried on
    /// up to `retries` other healthy servers.
    ///
    /// # Errors
    /// [`UpstreamError::NoServer`] when no server is healthy; [`UpstreamError::Connect`] when
    /// connecting failed on every server tried; [`UpstreamError::Timeout`] when no response
    /// headers came within `response_timeout_ms`; [`UpstreamError::Failed`] when the
    /// connection failed after the request was sent.
    pub(crate) async fn send(
        &self,
        req: UpstreamRequest,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.send_counted(req).await.map(|(resp, _)| resp)
    }

    /// [`Pool::send`], returning also the [`InFlight`] guard of the server that answered:
    /// keep it until the response body has been relayed so that `least_requests` counts
    /// long responses (and upgraded connections) as busy. [`Pool::send`] drops it at the
    /// response headers.
    ///
    /// # Errors
    /// As [`Pool::send`].
    pub(crate) async fn send_counted(
        &self,
        req: UpstreamRequest,
    ) -> Result<(Response<Incoming>, InFlight), UpstreamError> {
        let UpstreamRequest {
            parts,
            body,
            trailers,
        } = req;
        let mut headers = parts.headers;
        set_framing(&parts.method, &mut headers, &body, trailers.as_ref());
        let idempotent = is_idempotent(&parts.method);
        // Connect attempts left: the first, and `retries` more for idempotent methods.
        let mut connects_left = if idempotent {
            self.retries.saturating_add(1)
        } else {
            1
        };
        // Servers whose connect failed; allocated only on a failure.
        let mut tried: Vec<usize> = Vec::new();
        // After a stale pooled connection: the server to send to again on a new connection,
        // and the retry counter. At most once per request.
        let mut again: Option<(usize, &IntCounter)> = None;
        let mut stale_retried = false;
        loop {
            let (i, fresh) = match again.take() {
                Some((i, counter)) => {
                    counter.inc();
                    (i, true)
                }
                None => {
                    if connects_left == 0 {
                        break;
                    }
                    let Some(i) = self.pick(&tried) else {
                        break;
                    };
                    if !tried.is_empty() {
                        self.retried_connect.inc();
                    }
                    connects_left -= 1;
                    (i, false)
                }
            };
            let server = &self.servers[i];
            let in_flight = InFlight::new(server);
            let uri = server
                .uri(parts.uri.path_and_query())
                .ok_or(UpstreamError::Failed)?;
            let mut upstream = Request::new(UpstreamBody::new(body.clone(), trailers.clone()));
            *upstream.method_mut() = parts.method.clone();
            *upstream.uri_mut() = uri;
            *upstream.version_mut() = Version::HTTP_11;
            *upstream.headers_mut() = headers.clone();
            let e = match self.exchange(server, upstream, fresh).await {
                Ok(resp) => return Ok((resp, in_flight)),
                Err(Exchange::ConnectFailed) => {
                    tried.push(i);
                    continue;
                }
                Err(Exchange::TimedOut) => return Err(UpstreamError::Timeout),
                Err(Exchange::Failed(e)) => e,
            };
            if let Some(why) = stale(&e, idempotent).filter(|_| !stale_retried) {
                debug!(
                    pool = %self.name,
                    server = %server.url,
                    reason = why.label(),
                    error = %ErrorChain(&e),
                    "stale pooled connection; sending again on a new connection",
                );
                stale_retried = true;
                let counter = match why {
                    Stale::Unsent => &self.retried_unsent,
                    Stale::ClosedIdle => &self.retried_closed_idle,
                };
                again = Some((i, counter));
                continue;
            }
            warn!(
                pool = %self.name,
                server = %server.url,
                error = %ErrorChain(&e),
                "upstream request failed",
            );
            return Err(UpstreamError::Failed);
        }
        Err(if tried.is_empty() {
            UpstreamError::NoServer
        } else {
            UpstreamError::Connect
        })
    }

    /// Sends `upstream` to `server` (on a new connection when `fresh`) and waits at most
    /// `response_timeout_ms` for the response headers. A connect failure and a timeout count
    /// against the server (passive health) and are logged here; any other failure is the
    /// caller's to judge (a stale pooled connection is sent again).
    async fn exchange(
        &self,
        server: &Arc<Server>,
        upstream: Request<UpstreamBody>,
        fresh: bool,
    ) -> Result<Response<Incoming>, Exchange> {
        let started = Instant::now();
        let client = if fresh {
            &self.fresh_client
        } else {
            &self.client
        };
        match tokio::time::timeout(self.response_timeout, client.request(upstream)).await {
            Ok(Ok(resp)) => {
                self.request_duration
                    .observe(started.elapsed().as_secs_f64());
                server.record_success();
                Ok(resp)
            }
            Ok(Err(e)) if e.is_connect() => {
                warn!(
                    pool = %self.name,
                    server = %server.url,
                    error = %ErrorChain(&e),
                    "upstream connect failed",
                );
                server.record_failure(&self.name);
                Err(Exchange::ConnectFailed)
            }
            Ok(Err(e)) => Err(Exchange::Failed(e)),
            Err(_) => {
                self.request_duration
                    .observe(started.elapsed().as_secs_f64());
                warn!(pool = %self.name, server = %server.url, "upstream response timeout");
                server.record_failure(&self.name);
                Err(Exchange::TimedOut)
            }
        }
    }

    /// Opens a TCP connection to a healthy server of a `tcp://` pool (layer 4), chosen by
    /// `balance`; on failure (refused, `connect_timeout_ms`) tries each other healthy server
    /// once. The [`InFlight`] guard counts the connection until dropped.
    ///
    /// # Errors
    /// [`UpstreamError::NoServer`] when no server is healthy; [`UpstreamError::Connect`] when
    /// every server tried failed.
    pub(crate) async fn connect_tcp(&self) -> Result<(TcpStream, InFlight), UpstreamError> {
        let mut tried: Vec<usize> = Vec::new();
        while let Some(i) = self.pick(&tried) {
            let server = &self.servers[i];
            let guard = InFlight::new(server);
            let connect = TcpStream::connect(server.authority_text.as_str());
            match tokio::time::timeout(self.connect_timeout, connect).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    server.record_success();
                    return Ok((stream, guard));
                }
                Ok(Err(e)) => {
                    debug!(
                        pool = %self.name,
                        server = %server.url,
                        error = %e,
                        "upstream connect failed",
                    );
                }
                Err(_) => {
                    debug!(pool = %self.name, server = %server.url, "upstream connect timeout");
                }
            }
            server.record_failure(&self.name);
            tried.push(i);
        }
        Err(if tried.is_empty() {
            UpstreamError::NoServer
        } else {
            UpstreamError::Connect
        })
    }

    #[cfg(test)]
    /// How many servers are healthy now (e.g. for a readiness check).
    pub(crate) fn healthy_count(&self) -> usize {
        let Some(first) = self.servers.first() else {
            return 0;
        };
        let now = first.now_ms();
        self.servers.iter().filter(|s| s.is_healthy(now)).count()
    }
}

/// A buffered request body replayed as one data frame, then the trailers (if any) as a
/// trailers frame, which hyper writes as a chunked body's trailer section.
pub(crate) struct UpstreamBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl UpstreamBody {
    pub(super) fn new(data: Bytes, trailers: Option<HeaderMap>) -> UpstreamBody {
        UpstreamBody {
            data: (!data.is_empty()).then_some(data),
            trailers: trailers.filter(|t| !t.is_empty()),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let len = self.data.as_ref().map_or(0, |d| d.len() as u64);
        if self.trailers.is_none() {
            SizeHint::with_exact(len)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(len);
            hint
        }
    }
}

/// Displays an error and its sources, `: `-separated (hyper's errors hide the cause).
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
