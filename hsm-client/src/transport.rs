//! Nodes, health, failover, retries, per-node sessions and the HTTPS client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use keyward_api::{ErrorBody, ErrorCode, LoginRequest, LoginResponse, SessionToken};

/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

type Http = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Whether a call may be sent twice.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Retry {
    /// Repeating it has no further effect: retried with backoff, fails over on any transport error.
    Safe,
    /// Creates something: fails over only when the request was not sent (connect error),
    /// unless the caller gave an idempotency key.
    Unsafe,
}

/// One request, independent of the node.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) body: Option<Zeroizing<Vec<u8>>>,
    pub(crate) auth: bool,
    pub(crate) retry: Retry,
    pub(crate) idempotency_key: Option<&'a str>,
    /// At least this long for an answer, whatever the configured request timeout (a login
    /// hashes a password on the node).
    pub(crate) min_timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: String, retry: Retry) -> Self {
        Call {
            method,
            path,
            body: None,
            auth: true,
            retry,
            idempotency_key: None,
            min_timeout: None,
        }
    }

    pub(crate) fn json(mut self, body: &impl serde::Serialize) -> Result<Self> {
        let v = serde_json::to_vec(body).map_err(|e| Error::Decode(e.to_string()))?;
        self.body = Some(Zeroizing::new(v));
        Ok(self)
    }

    pub(crate) fn idempotency_key(mut self, key: Option<&'a str>) -> Self {
        self.idempotency_key = key;
        self
    }

    fn safe(&self) -> bool {
        self.retry == Retry::Safe || self.idempotency_key.is_some()
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    base: String,
    down_until: Mutex<Option<Instant>>,
    token: Mutex<Option<Arc<SessionToken>>>,
    login_gate: tokio::sync::Mutex<()>,
}

impl Node {
    fn down_until(&self) -> Option<Instant> {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_up(&self, now: Instant) -> bool {
        self.down_until().is_none_or(|t| t <= now)
    }

    fn mark_down(&self, cool_down: Duration) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + cool_down);
    }

    fn mark_up(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn token(&self) -> Option<Arc<SessionToken>> {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_token(&self, t: Option<Arc<SessionToken>>) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }

    fn clear_token_if(&self, t: &Arc<SessionToken>) {
        let mut g = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if g.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, t)) {
            *g = None;
        }
    }
}

/// The health of one node, as [`crate::Client::nodes`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's base URL.
    pub url: String,
    /// False while the node is in its cool-down after a failure.
    pub healthy: bool,
    /// Whether the client holds a session token for this node.
    pub logged_in: bool,
}

/// Longest `Retry-After` of a `429` that [`Inner::send`] waits out itself.
pub(crate) const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(5);
/// How often [`Inner::send`] waits out a `429` for one call.
pub(crate) const THROTTLE_RETRIES: u32 = 3;

/// A failed send: a `429` with the wait it asked for, or any other error.
enum Throttled {
    Wait(Duration, Error),
    No(Error),
}

impl From<Error> for Throttled {
    fn from(e: Error) -> Self {
        Throttled::No(e)
    }
}

/// What to do after a failed attempt on one node.
enum Next {
    /// Return this error to the caller now.
    Stop,
    /// Try the next node; mark this one down first when `true`.
    Failover(bool),
}

fn classify(e: &Error, safe: bool) -> Next {
    match e {
        Error::Connect(_) | Error::UntrustedCertificate { .. } => Next::Failover(true),
        Error::Transport(_) | Error::Timeout if safe => Next::Failover(true),
        Error::Api { status, .. } if safe && *status >= 500 => Next::Failover(*status == 503),
        _ => Next::Stop,
    }
}

pub(crate) struct Inner {
    http: Http,
    pub(crate) nodes: Vec<Node>,
    next: AtomicUsize,
    pub(crate) credentials: Mutex<Option<Arc<LoginRequest>>>,
    config: ClientConfig,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.base).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn tls_config(
    ca_pem: &[u8],
    identity: Option<&crate::config::ClientIdentity>,
) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| Error::Config(format!("ca_cert_pem: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("ca_cert_pem: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Config(
            "ca_cert_pem holds no CERTIFICATE block".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .with_root_certificates(roots);
    let Some(id) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(&id.cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("client certificate: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Config(
            "client certificate: no CERTIFICATE block".into(),
        ));
    }
    // The error names the problem, never the key's bytes.
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&id.key_pem)
        .map_err(|e| Error::Config(format!("client key: {e}")))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::Config(format!("client certificate and key: {e}")))
}

fn node_base(url: &str) -> Result<String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Error::Config(format!("node URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(Error::Config(format!(
            "node URL {url:?}: only https is allowed"
        )));
    }
    if uri.authority().is_none() || uri.query().is_some() {
        return Err(Error::Config(format!(
            "node URL {url:?}: use https://host:port[/prefix]"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl Inner {
    pub(crate) fn new(config: ClientConfig) -> Result<Self> {
        if config.nodes.is_empty() {
            return Err(Error::Config("no node URL".into()));
        }
        let nodes = config
            .nodes
            .iter()
            .map(|u| {
                Ok(Node {
                    base: node_base(u)?,
                    down_until: Mutex::new(None),
                    token: Mutex::new(None),
                    login_gate: tokio::sync::Mutex::new(()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(
                &config.ca_cert_pem,
                config.client_identity.as_ref(),
            )?)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Inner {
            http,
            nodes,
            next: AtomicUsize::new(0),
            credentials: Mutex::new(None),
            config,
        })
    }

    pub(crate) fn credentials(&self) -> Option<Arc<LoginRequest>> {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn status(&self) -> Vec<NodeStatus> {
        let now = Instant::now();
        self.nodes
            .iter()
            .map(|n| NodeStatus {
                url: n.base.clone(),
                healthy: n.is_up(now),
                logged_in: n.token().is_some(),
            })
            .collect()
    }

    /// Round-robin over healthy nodes, then the ones cooling down (soonest back first).
    fn order(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let (mut up, mut down): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|i| (start + i) % n)
            .partition(|&i| self.nodes[i].is_up(now));
        down.sort_by_key(|&i| self.nodes[i].down_until());
        up.extend(down);
        up
    }

    /// Runs a call with failover and retries; returns the answering node and the body.
    pub(crate) async fn execute(self: &Arc<Self>, call: &Call<'_>) -> Result<(usize, Bytes)> {
        let safe = call.safe();
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(self.config.backoff_base)
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.config.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut last = None;
        loop {
            for idx in self.order() {
                match self.attempt(idx, call).await {
                    Ok(body) => {
                        self.nodes[idx].mark_up();
                        return Ok((idx, body));
                    }
                    Err(e) => match classify(&e, safe) {
                        Next::Stop => {
                            if matches!(e, Error::Transport(_) | Error::Timeout) {
                                self.nodes[idx].mark_down(self.config.cool_down);
                            }
                            return Err(e);
                        }
                        Next::Failover(down) => {
                            tracing::debug!(node = %self.nodes[idx].base, error = %e, "node failed; trying the next");
                            if down {
                                self.nodes[idx].mark_down(self.config.cool_down);
                            }
                            last = Some(e);
                        }
                    },
                }
            }
            if !safe {
                break;
            }
            match delays.next() {
                Some(d) => tokio::time::sleep(d).await,
                None => break,
            }
        }
        Err(Error::AllNodesFailed {
            last: Box::new(last.unwrap_or(Error::Config("no node".into()))),
        })
    }

    /// One node: log in if needed, send, and on `401 session_invalid` log in again and resend once.
    /// Without stored credentials (a client started from a saved token) the 401 is returned.
    async fn attempt(self: &Arc<Self>, idx: usize, call: &Call<'_>) -> Result<Bytes> {
        let node = &self.nodes[idx];
        let mut relogged = false;
        loop {
            // With a client certificate and no password login, the connection is the session.
            let by_certificate =
                self.config.client_identity.is_some() && self.credentials().is_none();
            let token = if call.auth && !by_certificate {
                Some(self.token_for(idx).await?)
            } else {
                None
            };
            match self.send(node, call, token.as_deref()).await {
                Err(Error::Api {
                    status: 401, code, ..
                }) if code == ErrorCode::SessionInvalid
                    && !relogged
                    && token.is_some()
                    && self.credentials().is_some() =>
                {
                    if let Some(t) = &token {
                        node.clear_token_if(t);
                    }
                    relogged = true;
                }
                other => return other,
            }
        }
    }

    /// The node's token, logging in with the stored credentials when it has none.
    ///
    /// The login runs as a task of its own where a tokio runtime runs: a caller that gives up
    /// (its own deadline) does not cancel it, so the node's password hash is not wasted and the
    /// next caller finds the token instead of starting another login. Callers of one node wait
    /// for one login at a time (its gate).
    async fn token_for(self: &Arc<Self>, idx: usize) -> Result<Arc<SessionToken>> {
        if let Some(t) = self.nodes[idx].token() {
            return Ok(t);
        }
        let creds = self.credentials().ok_or(Error::NotLoggedIn)?;
        let inner = self.clone();
        let login = async move {
            let node = &inner.nodes[idx];
            let _gate = node.login_gate.lock().await;
            if let Some(t) = node.token() {
                return Ok(t);
            }
            let login = login_call(&creds)?;
            let body = inner.send(node, &login, None).await?;
            let r: LoginResponse = decode(&body)?;
            let t = Arc::new(r.token);
            node.set_token(Some(t.clone()));
            Ok(t)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt
                .spawn(login)
                .await
                .map_err(|e| Error::Transport(Box::new(e)))?,
            Err(_) => login.await,
        }
    }

    /// Sends one call to one node. A `429` whose `Retry-After` is at most
    /// [`MAX_THROTTLE_WAIT`] is waited out and sent again, up to [`THROTTLE_RETRIES`] times (the
    /// node refused it before doing anything, so this is safe for every call; CloudHSM's SDK
    /// does the same for its throttling answers). Longer waits are returned to the caller.
    pub(crate) async fn send(
        &self,
        node: &Node,
        call: &Call<'_>,
        token: Option<&SessionToken>,
    ) -> Result<Bytes> {
        let mut throttled = 0;
        loop {
            match self.send_once(node, call, token).await {
                Err(Throttled::Wait(wait, e)) => {
                    if throttled >= THROTTLE_RETRIES || wait > MAX_THROTTLE_WAIT {
                        return Err(e);
                    }
                    throttled += 1;
                    tracing::debug!(node = %node.base, wait_s = wait.as_secs(), "throttled; waiting");
                    tokio::time::sleep(wait).await;
                }
                Err(Throttled::No(e)) => return Err(e),
                Ok(body) => return Ok(body),
            }
        }
    }

    async fn send_once(
        &self,
        node: &Node,
        call: &Call<'_>,
        token: Option<&SessionToken>,
    ) -> std::result::Result<Bytes, Throttled> {
        let uri = format!("{}{}", node.base, call.path);
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(uri)
            .header(ACCEPT, "application/json");
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose_secret()))
                .map_err(|_| Error::Config("token is not a header value".into()))?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        if let Some(k) = call.idempotency_key {
            let v = HeaderValue::from_str(k)
                .map_err(|_| Error::Config("idempotency key is not a header value".into()))?;
            req = req.header("idempotency-key", v);
        }
        let body = match &call.body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::copy_from_slice(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| Error::Config(format!("request: {e}")))?;
        let exchange = async {
            let res = self.http.request(req).await.map_err(|e| {
                if !e.is_connect() {
                    return Error::Transport(Box::new(e));
                }
                match certificate_problem(&e) {
                    Some(reason) => Error::UntrustedCertificate {
                        node: node.base.clone(),
                        ca: self.config.ca_source.clone(),
                        reason,
                    },
                    None => Error::Connect(Box::new(e)),
                }
            })?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = Limited::new(res.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(Error::Transport)?
                .to_bytes();
            Ok::<_, Error>((status, retry_after, body))
        };
        let limit = call.min_timeout.map_or(self.config.request_timeout, |m| {
            m.max(self.config.request_timeout)
        });
        let (status, retry_after, body) = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| Error::Timeout)??;
        if status.is_success() {
            return Ok(body);
        }
        let e = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => Error::Api {
                status: status.as_u16(),
                code: e.code,
                message: e.message,
            },
            Err(_) => Error::Api {
                status: status.as_u16(),
                code: ErrorCode::Other("unknown".into()),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            },
        };
        Err(match retry_after {
            Some(wait) if status == hyper::StatusCode::TOO_MANY_REQUESTS => {
                Throttled::Wait(wait, e)
            }
            _ => Throttled::No(e),
        })
    }

    /// Sends one call to one node, without failover (used by logout).
    pub(crate) fn node(&self, idx: usize) -> &Node {
        &self.nodes[idx]
    }

    pub(crate) fn node_token(&self, idx: usize) -> Option<Arc<SessionToken>> {
        self.nodes[idx].token()
    }

    /// The index of the node whose base URL is `url` (a trailing `/` is ignored).
    pub(crate) fn node_index(&self, url: &str) -> Option<usize> {
        let url = url.trim_end_matches('/');
        self.nodes.iter().position(|n| n.base == url)
    }
}

/// Why the server's certificate failed verification, in words, when rustls's certificate
/// error is in `error`'s chain (an `io::Error` from the TLS connector hides it: it is looked
/// for inside each `io::Error` too); `None` for any other failure (refused, unreachable).
pub(crate) fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref::<rustls::Error>() {
            return Some(match c {
                C::UnknownIssuer => "it was issued by a CA that is not in it".to_owned(),
                C::BadSignature => "it was signed by a different CA of the same name".to_owned(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "it does not cover the host name in the node URL".to_owned()
                }
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
                other => format!("{other:?}"),
            });
        }
        // An io::Error's `source()` skips the error it wraps: step into that one instead.
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The login call of stored credentials (kept as the request itself, password zeroized on
/// drop).
/// The least time a login gets (Argon2id on the node, a busy node's queue).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The least time a key-pair generation gets: RSA-4096 searches for primes for seconds on a
/// busy node, longer than a short request timeout (e.g. the PKCS#11 module's 2 s default).
pub(crate) const KEY_PAIR_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn login_call(creds: &LoginRequest) -> Result<Call<'static>> {
    let mut c = Call::new(Method::POST, "/v1/auth/login".into(), Retry::Safe).json(creds)?;
    c.auth = false;
    c.min_timeout = Some(LOGIN_TIMEOUT);
    Ok(c)
}

pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::certificate_problem;

    #[test]
    fn a_certificate_error_is_found_inside_io_errors_and_nothing_else_is() {
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        // As the connector wraps it: a boxed error whose source is the io::Error.
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Outer(#[source] std::io::Error);
        // The connector nests io::Errors.
        let outer = Outer(std::io::Error::other(io));
        assert_eq!(
            certificate_problem(&outer).as_deref(),
            Some("it was issued by a CA that is not in it")
        );
        let refused = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(certificate_problem(&refused), None);
        let other_tls = Outer(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::DecryptError,
        ));
        assert_eq!(certificate_problem(&other_tls), None);
        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert_eq!(
            certificate_problem(&name).as_deref(),
            Some("it does not cover the host name in the node URL")
        );
    }
}
