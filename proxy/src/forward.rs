//! Forwarding one HTTP request to the upstream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::Error;

/// The body type of every response the proxy sends.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies also drop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Upstream settings, taken from `[upstream]`.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    authority: Authority,
    prefix: String,
    response_timeout: Duration,
    client: Client<HttpConnector, Incoming>,
}

impl Upstream {
    pub(crate) fn new(cfg: &keyward_config::PoolConfig) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Upstream {
            pool: "default".into(),
            reason: reason.to_owned(),
        };
        let uri: Uri = cfg.servers[0]
            .url
            .parse()
            .map_err(|_| bad("not a valid URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(bad("only http:// upstreams are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector);
        Ok(Upstream {
            authority,
            prefix,
            response_timeout: Duration::from_millis(cfg.response_timeout_ms),
            client,
        })
    }

    /// Forwards `req` from `peer`; every failure becomes a response here.
    pub(crate) async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let client_version = req.version();
        let req = match self.rewrite(req, peer) {
            Ok(r) => r,
            Err(status) => return Ok(plain(status, "invalid request")),
        };
        let res = match tokio::time::timeout(self.response_timeout, self.client.request(req)).await
        {
            Err(_elapsed) => return Ok(plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, upstream = %self.authority, "upstream request failed");
                return Ok(if is_timeout(&e) {
                    plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
                } else {
                    plain(StatusCode::BAD_GATEWAY, "upstream unavailable")
                });
            }
            Ok(Ok(res)) => res,
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::UPGRADE);
        // Answer in the client's protocol, not the upstream's: an HTTP/1.0 upstream must not
        // turn a keep-alive HTTP/1.1 client connection into HTTP/1.0.
        parts.version = client_version;
        Ok(Response::from_parts(parts, body.boxed()))
    }

    fn rewrite(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Request<Incoming>, StatusCode> {
        let (mut parts, body) = req.into_parts();
        // The client's host: HTTP/2 `:authority` (or an absolute-form URI), else the Host
        // header. HTTP/1.1 requires one (RFC 9112 §3.2), and it must be a valid authority.
        let host = match parts.uri.authority() {
            Some(a) => Some(a.clone()),
            None => match parts.headers.get(header::HOST) {
                Some(v) => Some(
                    v.to_str()
                        .ok()
                        .and_then(|h| h.parse::<Authority>().ok())
                        .ok_or(StatusCode::BAD_REQUEST)?,
                ),
                None => None,
            },
        };
        if host.is_none() && parts.version == Version::HTTP_11 {
            return Err(StatusCode::BAD_REQUEST);
        }
        if has_dot_segment(parts.uri.path()) {
            // "/../" could climb out of the upstream path prefix: refuse rather than guess.
            return Err(StatusCode::BAD_REQUEST);
        }
        strip_hop_by_hop(&mut parts.headers);
        // WebSocket and other upgrades are not forwarded yet; drop the request to upgrade.
        parts.headers.remove(header::UPGRADE);

        let path = parts
            .uri
            .path_and_query()
            .map(PathAndQuery::as_str)
            .unwrap_or("/");
        let target = format!("{}{}", self.prefix, path);
        parts.uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        parts.version = Version::HTTP_11;

        // Only the proxy says what the original host was.
        parts.headers.remove(X_FORWARDED_HOST);
        if let Some(host) = host {
            let value =
                HeaderValue::from_str(host.as_str()).map_err(|_| StatusCode::BAD_REQUEST)?;
            parts.headers.insert(header::HOST, value.clone());
            parts.headers.insert(X_FORWARDED_HOST, value);
        }
        let ip = peer.ip().to_canonical().to_string();
        let prior: Vec<&str> = parts
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let xff = if prior.is_empty() {
            ip
        } else {
            format!("{}, {ip}", prior.join(", "))
        };
        let xff = HeaderValue::from_str(&xff).map_err(|_| StatusCode::BAD_REQUEST)?;
        parts.headers.insert(X_FORWARDED_FOR, xff);
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        Ok(Request::from_parts(parts, body))
    }
}

/// Whether a path has a `.` or `..` segment, also percent-encoded (`%2e`): RFC 3986 §5.2.4
/// would resolve it, and it could climb out of the upstream path prefix.
pub(crate) fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

fn is_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// A short plain-text response, e.g. `502 Bad Gateway: upstream unavailable`.
pub(crate) fn plain(status: StatusCode, detail: &str) -> Response<ProxyBody> {
    let text = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        detail
    );
    let mut res = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_tokens_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn dot_segments_are_found_also_when_encoded() {
        for bad in ["/..", "/../x", "/a/./b", "/%2e%2E/x", "/a/%2e", "/.%2e/"] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for good in ["/", "/a/b", "/.well-known/x", "/a..b", "/%2e%2ex", "/..."] {
            assert!(!has_dot_segment(good), "{good}");
        }
    }

    #[test]
    fn error_bodies_are_short_plain_text() {
        let r = plain(StatusCode::BAD_GATEWAY, "upstream unavailable");
        assert_eq!(r.status(), 502);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
