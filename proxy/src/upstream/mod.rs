//! Upstream pools: servers, balancing, passive and active health, retries, upstream TLS and
//! layer-4 connects.
//!
//! A [`Pool`] is built from one `[upstreams.NAME]` table. HTTP pools own one hyper-util
//! legacy [`Client`] (HTTP/1.1 keep-alive, idle connections per server capped by
//! `pool_max_idle_per_host` and never reused once idle for `pool_idle_timeout_ms`) whose
//! connector ([`connect`]) speaks plain TCP to `http://` servers and TLS (rustls, aws-lc-rs)
//! to `https://` servers, the whole connect (TCP and TLS handshake) bounded by
//! `connect_timeout_ms`; plus a second client without idle connections, for requests that
//! must go out on a new connection.
//!
//! A server receives requests while it is *healthy*: not passively ejected and not failing its
//! active health check. Every state is an atomic, so the request path takes no lock:
//!
//! - **Balancing** among healthy servers: `round_robin` takes the next one of a shared atomic
//!   counter; `least_requests` picks two distinct servers at random and takes the one with
//!   fewer requests in flight ("power of two choices").
//! - **Passive ejection**: `max_fails` consecutive failures (connect error, response timeout)
//!   eject a server for `fail_timeout_ms`; one success resets the count. A server whose
//!   window has passed is tried again, and its next failure ejects it again at once, since
//!   the failures are still consecutive.
//! - **Active checks** ([`Pools::start_health_checks`]): every `interval_ms`, `GET
//!   {prefix}{path}` with `Host` set to the server's authority; a healthy server becomes
//!   unhealthy after `fall` consecutive failed checks, an unhealthy one healthy after `rise`
//!   consecutive passes.
//! - **Retries**: a request whose connection to a server could not be established (refused,
//!   connect timeout, TLS handshake failure) is sent to another healthy server, up to
//!   `retries` times, if its method is idempotent (RFC 9110 §9.2.2).
//! - **Stale pooled connections** ([`connect::stale`]): a request that failed on a pooled
//!   connection the server had closed (it was handed back unwritten, or, for an idempotent
//!   method, it was written but not one response byte came back on that connection, reused
//!   or not) is sent once more, to the same server on a new connection. That does not count against `retries` and is not a
//!   failure of the server (nginx does the same for its cached connections). Anything else
//!   that reached a server is never re-sent.
//!
//! `keyward_upstream_healthy{pool,server}` is 1 while a server is healthy and 0 otherwise;
//! `keyward_upstream_request_duration_seconds{pool}` observes each request from sending to
//! its response headers; `keyward_upstream_retries_total{pool,reason}` counts the requests
//! sent again (`connect`, `unsent`, `closed_idle`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRAILER, TRANSFER_ENCODING, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use keyward_config::{Balance, HealthCheckConfig, PoolConfig, UpstreamScheme, UpstreamServer};
use prometheus::{Histogram, IntCounter, IntGauge};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::metrics::metrics;

mod connect;
pub(crate) mod route;

use connect::{stale, Connector, Stale};

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
    pools: BTreeMap<String, Arc<Pool>>,
}

/// One pool.
pub(crate) struct Pool {
    name: String,
    servers: Vec<Arc<Server>>,
    balance: Balance,
    /// Round-robin position.
    next: AtomicUsize,
    client: Client<Connector, UpstreamBody>,
    /// The same connector without idle connections: each request on a new connection.
    fresh_client: Client<Connector, UpstreamBody>,
    retries: u32,
    connect_timeout: Duration,
    response_timeout: Duration,
    read_timeout: Duration,
    health_check: Option<HealthCheckConfig>,
    /// `keyward_upstream_request_duration_seconds{pool=name}`.
    request_duration: Histogram,
    /// `keyward_upstream_retries_total{pool=name,reason}`: `connect`, `unsent`,
    /// `closed_idle`.
    retried_connect: IntCounter,
    retried_unsent: IntCounter,
    retried_closed_idle: IntCounter,
}

/// One server of a pool and its health.
struct Server {
    /// The URL as configured (the `server` metric label).
    url: String,
    /// `host:port`, for `Host` in health checks and for layer-4 connects.
    authority_text: String,
    scheme: Scheme,
    authority: Authority,
    /// `""` or `/prefix` (no trailing `/`).
    prefix: String,
    /// Requests and layer-4 connections open now.
    in_flight: AtomicUsize,
    /// Consecutive failures (passive health).
    fails: AtomicU32,
    /// `max_fails` of the pool; 0 = never eject.
    max_fails: u32,
    fail_timeout: Duration,
    /// Ejected while `now_ms() < ejected_until_ms`.
    ejected_until_ms: AtomicU64,
    /// What the active health check says (true when there is none).
    check_ok: AtomicBool,
    /// When the pool was built; `now_ms` counts from here.
    epoch: Instant,
    /// `keyward_upstream_healthy{pool,server=url}`.
    gauge: IntGauge,
}

/// A connection or request counted as in flight on a server until dropped (the count
/// `least_requests` compares).
pub(crate) struct InFlight(Arc<Server>);

/// Active health-check tasks; aborted when dropped.
pub(crate) struct HealthChecks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
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

    /// Starts one active health-check task per server of every pool that has a
    /// `health_check` table. Must be called within a Tokio runtime. The tasks run until the
    /// returned guard is dropped.
    pub(crate) fn start_health_checks(&self) -> HealthChecks {
        let mut tasks = Vec::new();
        for pool in self.pools.values() {
            let Some(hc) = &pool.health_check else {
                continue;
            };
            for server in &pool.servers {
                tasks.push(tokio::spawn(health_loop(
                    Arc::clone(pool),
                    Arc::clone(server),
                    hc.clone(),
                )));
            }
        }
        HealthChecks { tasks }
    }
}

/// RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
fn is_idempotent(method: &Method) -> bool {
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

    fn build(name: &str, cfg: &PoolConfig) -> Result<Pool, Error> {
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
                    return Ok((resp, in_flight));
                }
                Ok(Err(e)) if e.is_connect() => {
                    warn!(
                        pool = %self.name,
                        server = %server.url,
                        error = %ErrorChain(&e),
                        "upstream connect failed",
                    );
                    server.record_failure(&self.name);
                    tried.push(i);
                }
                Ok(Err(e)) => {
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
                Err(_) => {
                    self.request_duration
                        .observe(started.elapsed().as_secs_f64());
                    warn!(pool = %self.name, server = %server.url, "upstream response timeout");
                    server.record_failure(&self.name);
                    return Err(UpstreamError::Timeout);
                }
            }
        }
        Err(if tried.is_empty() {
            UpstreamError::NoServer
        } else {
            UpstreamError::Connect
        })
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

    /// A healthy server not in `tried`, by the pool's balance; `None` when there is none.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = self.servers.first()?.now_ms();
        let eligible = |i: &usize| !tried.contains(i) && self.servers[*i].is_healthy(now);
        let nth = |n: usize| (0..self.servers.len()).filter(eligible).nth(n);
        let count = (0..self.servers.len()).filter(eligible).count();
        match (count, self.balance) {
            (0, _) => None,
            (1, _) => nth(0),
            (k, Balance::RoundRobin) => nth(self.next.fetch_add(1, Ordering::Relaxed) % k),
            (k, Balance::LeastRequests) => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..k);
                let mut b = rng.random_range(0..k - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (nth(a)?, nth(b)?);
                let load = |i: usize| self.servers[i].in_flight.load(Ordering::Relaxed);
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    /// One active check of `server`: `Ok` when it answers `expected_status` in time.
    async fn check(&self, uri: &Uri, host: &HeaderValue, hc: &HealthCheckConfig) -> CheckResult {
        let mut req = Request::new(UpstreamBody::new(Bytes::new(), None));
        *req.uri_mut() = uri.clone();
        req.headers_mut().insert(HOST, host.clone());
        req.headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static("keyward-health-check"));
        let timeout = Duration::from_millis(hc.timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        let resp = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => return CheckResult::Timeout,
            Ok(Err(e)) if e.is_connect() => return CheckResult::Connect,
            Ok(Err(_)) => return CheckResult::Failed,
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        // Read the (small) body so the connection can be reused.
        let _ = tokio::time::timeout_at(deadline, resp.into_body().collect()).await;
        if status.as_u16() == hc.expected_status {
            CheckResult::Pass
        } else {
            CheckResult::Status(status.as_u16())
        }
    }
}

/// The outcome of one active health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckResult {
    Pass,
    /// The server answered this status instead of `expected_status`.
    Status(u16),
    /// No response within `timeout_ms`.
    Timeout,
    /// Connecting failed.
    Connect,
    /// The connection failed after the request was sent.
    Failed,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Pass => f.write_str("health check passed"),
            CheckResult::Status(s) => write!(f, "health check answered status {s}"),
            CheckResult::Timeout => f.write_str("health check timed out"),
            CheckResult::Connect => f.write_str("health check could not connect"),
            CheckResult::Failed => f.write_str("health check connection failed"),
        }
    }
}

/// Checks `server` every `interval_ms` and moves it between healthy and unhealthy after
/// `fall` failures or `rise` passes in a row.
async fn health_loop(pool: Arc<Pool>, server: Arc<Server>, hc: HealthCheckConfig) {
    let uri = PathAndQuery::try_from(hc.path.as_str())
        .ok()
        .and_then(|pq| server.uri(Some(&pq)));
    let (Some(uri), Ok(host)) = (uri, HeaderValue::from_str(&server.authority_text)) else {
        warn!(
            pool = %pool.name,
            server = %server.url,
            path = %hc.path,
            "health check path does not make a valid URI; not checking",
        );
        return;
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(hc.interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streak = 0u32;
    loop {
        ticker.tick().await;
        let result = pool.check(&uri, &host, &hc).await;
        let passed = result == CheckResult::Pass;
        let healthy = server.check_ok.load(Ordering::Relaxed);
        if passed == healthy {
            streak = 0;
            continue;
        }
        streak += 1;
        debug!(pool = %pool.name, server = %server.url, %result, streak, "health check");
        let needed = if healthy { hc.fall } else { hc.rise };
        if streak < needed {
            continue;
        }
        streak = 0;
        server.check_ok.store(passed, Ordering::Relaxed);
        server.refresh_gauge();
        if passed {
            info!(
                pool = %pool.name,
                server = %server.url,
                reason = %result,
                "upstream server healthy again",
            );
        } else {
            warn!(
                pool = %pool.name,
                server = %server.url,
                reason = %result,
                "upstream server unhealthy",
            );
        }
    }
}

impl Server {
    fn new(
        pool: &str,
        s: &UpstreamServer,
        cfg: &PoolConfig,
        epoch: Instant,
    ) -> Result<Server, String> {
        let authority: Authority = s
            .authority
            .parse()
            .map_err(|_| format!("server {}: invalid host:port", s.url))?;
        let scheme = match s.scheme {
            UpstreamScheme::Https => Scheme::HTTPS,
            _ => Scheme::HTTP,
        };
        let gauge = metrics()
            .upstream_healthy
            .with_label_values(&[pool, s.url.as_str()]);
        gauge.set(1);
        Ok(Server {
            url: s.url.clone(),
            authority_text: s.authority.clone(),
            scheme,
            authority,
            prefix: s.prefix.trim_end_matches('/').to_owned(),
            in_flight: AtomicUsize::new(0),
            fails: AtomicU32::new(0),
            max_fails: cfg.max_fails,
            fail_timeout: Duration::from_millis(cfg.fail_timeout_ms),
            ejected_until_ms: AtomicU64::new(0),
            check_ok: AtomicBool::new(true),
            epoch,
            gauge,
        })
    }

    /// Milliseconds since the pool was built.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_healthy(&self, now_ms: u64) -> bool {
        self.check_ok.load(Ordering::Relaxed)
            && now_ms >= self.ejected_until_ms.load(Ordering::Relaxed)
    }

    fn refresh_gauge(&self) {
        self.gauge.set(i64::from(self.is_healthy(self.now_ms())));
    }

    /// `scheme://authority{prefix}{path_and_query}`; `None` if that is not a valid URI.
    fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Option<Uri> {
        let pq = match (self.prefix.is_empty(), path_and_query) {
            (true, Some(pq)) => pq.clone(),
            (true, None) => PathAndQuery::from_static("/"),
            (false, pq) => {
                let rest = pq.map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{rest}", self.prefix)).ok()?
            }
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }

    fn record_success(&self) {
        if self.fails.load(Ordering::Relaxed) != 0 {
            self.fails.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; the `max_fails`-th in a row ejects the server for `fail_timeout`
    /// and schedules the gauge's return to 1 when the window has passed.
    fn record_failure(self: &Arc<Self>, pool: &str) {
        if self.max_fails == 0 {
            return;
        }
        let fails = self.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if fails < self.max_fails {
            return;
        }
        let now = self.now_ms();
        let window = u64::try_from(self.fail_timeout.as_millis()).unwrap_or(u64::MAX);
        let until = now.saturating_add(window);
        let previous = self.ejected_until_ms.fetch_max(until, Ordering::Relaxed);
        if previous > now {
            return; // Already ejected: the window was extended.
        }
        warn!(
            pool = %pool,
            server = %self.url,
            consecutive_failures = fails,
            ejected_ms = window,
            "upstream server ejected",
        );
        self.refresh_gauge();
        let weak: Weak<Server> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(server) = weak.upgrade() else {
                    return;
                };
                let now = server.now_ms();
                let until = server.ejected_until_ms.load(Ordering::Relaxed);
                if now >= until {
                    server.refresh_gauge();
                    return;
                }
                drop(server);
                tokio::time::sleep(Duration::from_millis(until - now)).await;
            }
        });
    }
}

impl InFlight {
    fn new(server: &Arc<Server>) -> InFlight {
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(server))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A buffered request body replayed as one data frame, then the trailers (if any) as a
/// trailers frame, which hyper writes as a chunked body's trailer section.
pub(crate) struct UpstreamBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl UpstreamBody {
    fn new(data: Bytes, trailers: Option<HeaderMap>) -> UpstreamBody {
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

#[cfg(test)]
mod tests;
