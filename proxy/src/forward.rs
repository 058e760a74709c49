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
    pub(crate) fn new(cfg: &keyward_config::UpstreamConfig) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Upstream {
            url: cfg.url.clone(),
            reason: reason.to_owned(),
        };
        let uri: Uri = cfg.url.parse().map_err(|_| bad("not a valid URL"))?;
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
        let req = match self.rewrite(req, peer) {
            Ok(r) => r,
            Err(status) => return Ok(plain(status, "invalid request")),
        };
        let res = match tokio::time::timeout(self.response_timeout, self.client.request(req)).await
        {
            Err(_elapsed) => return Ok(plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, upstream = %self.authority, "upstream request failed");
                let timed_out = is_timeout(&e);
                return Ok(if timed_out {
                    plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
                } else {
                    plain(StatusCode::BAD_GATEWAY, "upstream unavailable")
                });
            }
            Ok(Ok(res)) => res,
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    fn rewrite(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Request<Incoming>, StatusCode> {
        let (mut parts, body) = req.into_parts();
        // The client's host: HTTP/2 `:authority` or the HTTP/1.1 Host header.
        let host = match parts.uri.authority() {
            Some(a) => {
                Some(HeaderValue::from_str(a.as_str()).map_err(|_| StatusCode::BAD_REQUEST)?)
            }
            None => parts.headers.get(header::HOST).cloned(),
        };
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

        if let Some(host) = host {
            parts.headers.insert(header::HOST, host.clone());
            parts.headers.insert(X_FORWARDED_HOST, host);
        }
        let ip = peer.ip().to_canonical().to_string();
        let xff = match parts
            .headers
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip,
        };
        parts.headers.remove(X_FORWARDED_FOR);
        parts.headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_str(&xff).map_err(|_| StatusCode::BAD_REQUEST)?,
        );
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        Ok(Request::from_parts(parts, body))
    }
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
    fn error_bodies_are_short_plain_text() {
        let r = plain(StatusCode::BAD_GATEWAY, "upstream unavailable");
        assert_eq!(r.status(), 502);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
