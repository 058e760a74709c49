//! One HTTP request: checks, routing, header rewriting, forwarding to a pool, upgrades,
//! the access log line and request metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use keyward_config::{ForwardedTrust, ListenerMode};

use crate::conn::{Activity, ListenerState};
use crate::http_layer::authority::{normalize, AuthorityError, HostAuthority};
use crate::http_layer::h1guard::{GuardVerdicts, RequestId, Verdict};
use crate::http_layer::headers::{
    has_dot_segment, plain, strip_hop_by_hop, BodyError, ProxyBody, ReadTimeout,
};
use crate::http_layer::respond::{refuse, Refusal, Refused};
use crate::metrics::metrics;
use crate::upstream::{UpstreamError, UpstreamRequest};

/// What the connection knows about its client.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The client's address: the TCP peer, or the PROXY header's source.
    pub(crate) client: SocketAddr,
    /// The verified client certificate's subject (RFC 4514 string), with mTLS.
    pub(crate) client_subject: Option<String>,
    /// Whether the connection is TLS (false on a redirect listener).
    pub(crate) tls: bool,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The request's authority, normalised: the URI's (HTTP/2 `:authority`, an absolute-form
/// target) or else the `Host` header's. `Ok(None)` when there is neither.
fn request_authority(parts: &http::request::Parts) -> Result<Option<HostAuthority>, Refusal> {
    let raw = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => match parts.headers.get(header::HOST) {
            Some(v) => v
                .to_str()
                .map_err(|_| Refusal::InvalidHost(AuthorityError::InvalidCharacter))?,
            None => return Ok(None),
        },
    };
    normalize(raw).map(Some).map_err(Refusal::InvalidHost)
}

/// Whether a `Connection` header of `headers` lists `token` (case-insensitive).
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// HTTP/1.0 keep-alive (RFC 9112 Appendix C.2.2): the client sent `Connection: keep-alive`.
/// HTTP/1.0 has no chunked coding, so the connection can stay open only when the response's
/// length is known: then the response says `Connection: keep-alive` (hyper keeps an HTTP/1.0
/// connection only when the response does). Otherwise the body is delimited by closing the
/// connection, and the response says `Connection: close`.
fn http10_keep_alive(res: &mut Response<ProxyBody>, method: &Method) {
    if connection_has(res.headers(), "close") {
        return;
    }
    let status = res.status();
    let known = res.headers().contains_key(header::CONTENT_LENGTH)
        || res.body().size_hint().exact().is_some()
        || *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let value = if known { "keep-alive" } else { "close" };
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static(value));
}

/// Whether an `Upgrade` header names exactly the WebSocket protocol.
fn is_websocket(value: Option<&HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Serves the requests of one connection.
pub(crate) struct Handler {
    st: Arc<ListenerState>,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    request_id_header: HeaderName,
    subject_header: Option<HeaderName>,
    hsts: Option<HeaderValue>,
    /// HTTP/1.1 only: the smuggling guard's verdicts, one per request.
    verdicts: Option<GuardVerdicts>,
}

/// A fresh request id: 16 random bytes as 32 lower-case hex digits.
fn request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes: [u8; 16] = rand::random();
    let mut s = String::with_capacity(32);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// RFC 7239 §6: an IPv6 node is quoted and bracketed; IPv4 is bare.
fn forwarded_node(addr: &SocketAddr) -> String {
    match addr.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("\"[{ip}]\""),
    }
}

impl Handler {
    pub(crate) fn new(
        st: Arc<ListenerState>,
        info: Arc<ConnInfo>,
        activity: Arc<Activity>,
        verdicts: Option<GuardVerdicts>,
    ) -> Self {
        let request_id_header = HeaderName::from_bytes(st.cfg.request_id_header.as_bytes())
            .unwrap_or(HeaderName::from_static("x-request-id"));
        let subject_header = st
            .cfg
            .client_auth
            .as_ref()
            .and_then(|c| HeaderName::from_bytes(c.subject_header.as_bytes()).ok());
        let hsts = st
            .cfg
            .hsts
            .as_deref()
            .and_then(|h| HeaderValue::from_str(h).ok());
        Handler {
            st,
            info,
            activity,
            request_id_header,
            subject_header,
            hsts,
            verdicts,
        }
    }

    /// Who a refusal was for, for its log line.
    fn refused(&self) -> Refused<'_> {
        Refused {
            client: self.info.client,
            listener: &self.st.label,
        }
    }

    /// Answers one request (HTTP/1.1's `Incoming` body, or an HTTP/2 stream's); every failure
    /// becomes a response here.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Result<Response<ProxyBody>, Infallible>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let _in_flight = self.activity.request();
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let version = req.version();
        let keep_alive_10 =
            version == Version::HTTP_10 && connection_has(req.headers(), "keep-alive");
        let id = request_id();
        let head = self.verdicts.as_ref().map(GuardVerdicts::next_head);
        let (mut res, route, pool) = match head {
            Some(h) if !h.verdict.is_ok() => {
                let refusal = match h.verdict {
                    Verdict::Reject(reason) => Refusal::Framing(reason),
                    _ => Refusal::Uninspected,
                };
                (refuse(refusal, self.refused()), "none".to_owned(), None)
            }
            _ if self.st.cfg.mode == ListenerMode::Redirect => {
                (self.redirect(req), "redirect".to_owned(), None)
            }
            _ => self.proxy(req, &id, head.map(|h| h.request)).await,
        };
        if keep_alive_10 {
            http10_keep_alive(&mut res, &method);
        }
        let status = res.status();
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(self.request_id_header.clone(), v);
        }
        if let Some(h) = &self.hsts {
            if self.info.tls {
                res.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, h.clone());
            }
        }
        metrics()
            .http_requests
            .with_label_values(&[route.as_str(), status.as_str()])
            .inc();
        if self.st.access_log {
            tracing::info!(
                target: "keyward::access",
                request_id = %id,
                client = %self.info.client,
                method = %method,
                path = %path,
                version = ?version,
                status = status.as_u16(),
                route = %route,
                pool = pool.as_deref().unwrap_or("-"),
                // Milliseconds with microsecond resolution.
                duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
                listener = %self.st.label,
                "request"
            );
        }
        Ok(res)
    }

    /// A plain-HTTP request on a redirect listener: `308` to the same host and path over HTTPS.
    fn redirect<B>(&self, req: Request<B>) -> Response<ProxyBody> {
        let (parts, _) = req.into_parts();
        let host = match request_authority(&parts) {
            Ok(Some(h)) => h,
            Ok(None) => return refuse(Refusal::MissingHost, self.refused()),
            Err(refusal) => return refuse(refusal, self.refused()),
        };
        let port = self.st.cfg.redirect_https_port;
        let authority = if port == 443 {
            host.name().to_owned()
        } else {
            format!("{}:{port}", host.name())
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let location = format!("https://{authority}{path}");
        let mut res = plain(StatusCode::PERMANENT_REDIRECT, "use HTTPS");
        match HeaderValue::from_str(&location) {
            Ok(v) => {
                res.headers_mut().insert(header::LOCATION, v);
                res
            }
            Err(_) => refuse(Refusal::Unparsable, self.refused()),
        }
    }

    /// Routes and forwards; returns the response, the route name and the pool name.
    async fn proxy<B>(
        &self,
        req: Request<B>,
        id: &str,
        guarded: Option<RequestId>,
    ) -> (Response<ProxyBody>, String, Option<String>)
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let bad = |refusal: Refusal| (refuse(refusal, self.refused()), "none".to_owned(), None);
        let mut req = req;
        if req.method() == http::Method::CONNECT {
            // Not a tunnel: CONNECT (and HTTP/2 extended CONNECT) is refused, never forwarded.
            return bad(Refusal::Connect);
        }
        // WebSocket upgrades (RFC 6455 §4, RFC 9110 §7.8) are spliced through; no other
        // protocol (h2c upgrades could bypass the proxy's checks).
        let asks_upgrade = req.version() == Version::HTTP_11
            && req.headers().contains_key(header::UPGRADE)
            && connection_has(req.headers(), "upgrade");
        let upgrade = asks_upgrade && is_websocket(req.headers().get(header::UPGRADE));
        let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let client_version = req.version();
        let (mut parts, body) = req.into_parts();

        // The client's host: HTTP/2 `:authority` (or an absolute-form URI), else the Host
        // header, normalised once (lower-case, no trailing dot, port apart); a malformed one
        // (an empty label, say) is refused rather than left to miss its route and fall
        // through to the default pool. HTTP/1.1 requires one (RFC 9112 §3.2).
        let host = match request_authority(&parts) {
            Ok(h) => h,
            Err(refusal) => return bad(refusal),
        };
        if host.is_none() && parts.version != Version::HTTP_10 && parts.version != Version::HTTP_09
        {
            // HTTP/1.1 needs Host (RFC 9112 §3.2); HTTP/2 needs :authority or Host (RFC 9113
            // §8.3.1) for the proxy to know the target.
            return bad(Refusal::MissingHost);
        }
        if parts.headers.get_all(header::HOST).iter().count() > 1 {
            return bad(Refusal::DuplicateHost);
        }
        if has_dot_segment(parts.uri.path()) {
            // "/../" could climb out of an upstream path prefix: refuse rather than guess.
            return bad(Refusal::DotSegment);
        }
        let host_name = host.as_ref().map(HostAuthority::name);
        let Some(route) = self.st.router.route(host_name, parts.uri.path()) else {
            return (
                plain(StatusCode::NOT_FOUND, "no route for this host and path"),
                "none".into(),
                None,
            );
        };
        let route_name = route.name.clone();
        let Some(pool) = self.st.pools.get(&route.upstream) else {
            return (
                plain(StatusCode::BAD_GATEWAY, "upstream pool missing"),
                route_name,
                None,
            );
        };
        let pool_name = pool.name().to_owned();

        let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::UPGRADE);
        // The body is read before forwarding (hyper answers the client's `100-continue`), so
        // the upstream is not asked to wait for it.
        parts.headers.remove(header::EXPECT);
        // The request id: ours, replacing any the client sent.
        parts.headers.remove(&self.request_id_header);
        if let Ok(v) = HeaderValue::from_str(id) {
            parts.headers.insert(self.request_id_header.clone(), v);
        }
        // The verified client certificate's subject, and only that: no client may send a
        // subject header of any listener's, even where no certificate is asked for.
        for name in self.st.subject_headers.iter() {
            parts.headers.remove(name);
        }
        if let Some(name) = &self.subject_header {
            if let Some(subject) = &self.info.client_subject {
                if let Ok(v) = HeaderValue::from_str(subject) {
                    parts.headers.insert(name.clone(), v);
                }
            }
        }
        if let Err(refusal) = self.set_forwarded(&mut parts.headers, host.as_ref()) {
            return (refuse(refusal, self.refused()), route_name, None);
        }
        if upgrade {
            if let Some(u) = upgrade_value {
                parts.headers.insert(header::UPGRADE, u);
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
        }

        // Buffer the body (as nginx does by default): a body over the limit is refused
        // before anything reaches the upstream, broken framing too, and retries can resend.
        let limit = usize::try_from(self.st.cfg.max_body_bytes).unwrap_or(usize::MAX);
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.st.cfg.max_body_bytes) {
            return (
                refuse(Refusal::BodyTooLarge, self.refused()),
                route_name,
                None,
            );
        }
        let (bytes, trailers) = if upgrade {
            drop(body);
            (Bytes::new(), None)
        } else {
            match self.read_body(body, limit).await {
                Ok(b) => b,
                Err(refusal) => return (refuse(refusal, self.refused()), route_name, None),
            }
        };
        if let (Some(v), Some(request)) = (&self.verdicts, guarded) {
            if !v.body_verdict(request).is_ok() {
                let refusal = Refusal::Framing(
                    crate::http_layer::h1guard::RejectReason::InvalidChunkedFraming,
                );
                return (refuse(refusal, self.refused()), route_name, None);
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.version = Version::HTTP_11;
        let req = UpstreamRequest {
            parts,
            body: bytes,
            trailers,
        };
        let (res, in_flight) = match pool.send_counted(req).await {
            Ok(r) => r,
            Err(e) => {
                let (status, detail) = match e {
                    UpstreamError::NoServer => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no healthy upstream server",
                    ),
                    UpstreamError::Connect => (StatusCode::BAD_GATEWAY, "upstream unavailable"),
                    UpstreamError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream timed out"),
                    UpstreamError::Failed => (StatusCode::BAD_GATEWAY, "upstream failed"),
                };
                return (plain(status, detail), route_name, Some(pool_name));
            }
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS
            && !(upgrade && is_websocket(res.headers().get(header::UPGRADE)))
        {
            // A 101 we did not ask for, or to another protocol: not spliced.
            return (
                plain(
                    StatusCode::BAD_GATEWAY,
                    "unexpected protocol switch from upstream",
                ),
                route_name,
                Some(pool_name),
            );
        }
        if upgrade && res.status() == StatusCode::SWITCHING_PROTOCOLS {
            return (
                self.splice(res, on_upgrade, in_flight),
                route_name,
                Some(pool_name),
            );
        }
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::UPGRADE);
        if asks_upgrade {
            // The guard stopped inspecting at the upgrade request; a refused upgrade ends the
            // connection rather than leave later requests unchecked.
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // Answer in the client's protocol, not the upstream's: an HTTP/1.0 upstream must not
        // turn a keep-alive HTTP/1.1 client connection into HTTP/1.0.
        parts.version = client_version;
        // The server counts as busy (least_requests) until the body has been sent.
        let body = ReadTimeout::new(body, pool.read_timeout()).map_frame(move |frame| {
            let _ = &in_flight;
            frame
        });
        (
            Response::from_parts(parts, body.boxed()),
            route_name,
            Some(pool_name),
        )
    }

    /// Reads the whole request body, at most `limit` bytes, waiting at most
    /// `client_body_timeout_ms` between two reads.
    async fn read_body<B>(
        &self,
        body: B,
        limit: usize,
    ) -> Result<(Bytes, Option<HeaderMap>), Refusal>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BodyError>,
    {
        let timeout = std::time::Duration::from_millis(self.st.cfg.client_body_timeout_ms);
        crate::conn::read_body(body, limit, timeout)
            .await
            .map_err(|(status, _)| match status {
                StatusCode::REQUEST_TIMEOUT => Refusal::BodyTimeout,
                StatusCode::PAYLOAD_TOO_LARGE => Refusal::BodyTooLarge,
                _ => Refusal::InvalidBody,
            })
    }

    /// Sets `X-Forwarded-For/Proto/Host` and `Forwarded` (RFC 7239), replacing or appending
    /// to what the client sent, per `forwarded_headers`.
    fn set_forwarded(
        &self,
        headers: &mut HeaderMap,
        host: Option<&HostAuthority>,
    ) -> Result<(), Refusal> {
        let client_ip = self.info.client.ip().to_canonical();
        let append = self.st.cfg.forwarded_headers == ForwardedTrust::Append
            && (self.st.cfg.trusted_proxies.is_empty()
                || self
                    .st
                    .cfg
                    .trusted_proxies
                    .iter()
                    .any(|net| net.contains(&client_ip)));
        let ip = self.info.client.ip().to_canonical().to_string();
        let proto = if self.info.tls { "https" } else { "http" };
        let joined = |headers: &HeaderMap, name: &HeaderName| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect()
        };
        let prior_xff = if append {
            joined(headers, &X_FORWARDED_FOR)
        } else {
            Vec::new()
        };
        let prior_fwd = if append {
            joined(headers, &FORWARDED)
        } else {
            Vec::new()
        };
        let prior_proto = headers.get(&X_FORWARDED_PROTO).cloned();
        let prior_host = headers.get(&X_FORWARDED_HOST).cloned();
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &FORWARDED,
        ] {
            headers.remove(name);
        }
        let mut xff = prior_xff;
        xff.push(ip);
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_str(&xff.join(", ")).map_err(|_| Refusal::InvalidForwarded)?,
        );
        match (append, prior_proto) {
            (true, Some(p)) => headers.insert(X_FORWARDED_PROTO, p),
            _ => headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto)),
        };
        // The client's authority as sent (it normalised, so it is well-formed).
        let host_text = host.map(HostAuthority::received);
        let host_value = match &host_text {
            Some(h) => Some(HeaderValue::from_str(h).map_err(|_| Refusal::InvalidForwarded)?),
            None => None,
        };
        if let Some(h) = &host_value {
            headers.insert(header::HOST, h.clone());
        }
        match (append, prior_host, &host_value) {
            (true, Some(p), _) => {
                headers.insert(X_FORWARDED_HOST, p);
            }
            (_, _, Some(h)) => {
                headers.insert(X_FORWARDED_HOST, h.clone());
            }
            _ => {}
        }
        let mut element = format!("for={};proto={proto}", forwarded_node(&self.info.client));
        if let Some(h) = &host_text {
            element.push_str(&format!(";host=\"{h}\""));
        }
        let mut fwd = prior_fwd;
        fwd.push(element);
        headers.insert(
            FORWARDED,
            HeaderValue::from_str(&fwd.join(", ")).map_err(|_| Refusal::InvalidForwarded)?,
        );
        Ok(())
    }

    /// Answers `101` to the client and copies bytes both ways between the two upgraded
    /// connections until either side closes.
    fn splice(
        &self,
        mut upstream_res: Response<Incoming>,
        client: Option<hyper::upgrade::OnUpgrade>,
        in_flight: crate::upstream::InFlight,
    ) -> Response<ProxyBody> {
        let upstream = hyper::upgrade::on(&mut upstream_res);
        let (mut parts, _) = upstream_res.into_parts();
        // Keep Upgrade and Connection: upgrade; they are this response's point.
        let upgrade = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(u) = upgrade {
            parts.headers.insert(header::UPGRADE, u);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        let client_addr = self.info.client;
        if let Some(client) = client {
            tokio::spawn(async move {
                let (c, u) = match tokio::join!(client, upstream) {
                    (Ok(c), Ok(u)) => (c, u),
                    _ => {
                        tracing::debug!(client = %client_addr, "upgrade failed on one side");
                        return;
                    }
                };
                let mut c = hyper_util::rt::TokioIo::new(c);
                let mut u = hyper_util::rt::TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                drop(in_flight);
            });
        }
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed();
        Response::from_parts(parts, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn response(status: u16, body: ProxyBody) -> Response<ProxyBody> {
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        res
    }

    fn known(text: &'static str) -> ProxyBody {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed()
    }

    /// A body whose length is not known in advance (as a chunked upstream response).
    fn unknown(text: &'static str) -> ProxyBody {
        known(text).map_frame(|f| f).boxed()
    }

    fn connection(res: &Response<ProxyBody>) -> Option<&str> {
        res.headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn http10_keep_alive_only_when_the_length_is_known() {
        assert!(unknown("x").size_hint().exact().is_none());
        let cases: Vec<(Response<ProxyBody>, Method, &str)> = vec![
            (response(200, known("hello")), Method::GET, "keep-alive"),
            (
                {
                    let mut r = response(200, unknown("hello"));
                    r.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
                    r
                },
                Method::GET,
                "keep-alive",
            ),
            (response(200, unknown("hello")), Method::GET, "close"),
            (response(200, unknown("")), Method::HEAD, "keep-alive"),
            (response(204, unknown("")), Method::DELETE, "keep-alive"),
            (response(304, unknown("")), Method::GET, "keep-alive"),
        ];
        for (mut res, method, want) in cases {
            let status = res.status();
            http10_keep_alive(&mut res, &method);
            assert_eq!(connection(&res), Some(want), "{method} {status}");
        }
        // A response that closes anyway is left alone.
        let mut res = response(400, known("no"));
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        http10_keep_alive(&mut res, &Method::GET);
        assert_eq!(connection(&res), Some("close"));
    }

    #[test]
    fn the_authority_comes_from_the_uri_before_the_host_header() {
        let parts = |uri: &str, host: Option<&str>| {
            let mut b = Request::builder().uri(uri);
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            b.body(()).unwrap().into_parts().0
        };
        let name =
            |p: &http::request::Parts| request_authority(p).map(|h| h.map(|h| h.name().to_owned()));
        assert_eq!(
            name(&parts("https://Tenant.test./x", Some("other.test"))),
            Ok(Some("tenant.test".into()))
        );
        assert_eq!(
            name(&parts("/x", Some("TENANT.test.:443"))),
            Ok(Some("tenant.test".into()))
        );
        assert_eq!(name(&parts("/x", None)), Ok(None));
        assert_eq!(
            name(&parts("/x", Some("tenant.test.."))),
            Err(Refusal::InvalidHost(AuthorityError::EmptyLabel))
        );
    }
}
