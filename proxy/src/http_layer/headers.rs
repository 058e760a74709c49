//! Header helpers shared by the request and response paths: hop-by-hop headers (RFC 9110
//! §7.6.1), `Connection` options, WebSocket upgrades, HTTP/1.0 keep-alive and request ids.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper::body::Body;

use super::body::ProxyBody;

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

/// Whether a `Connection` header of `headers` lists `token` (case-insensitive).
pub(super) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
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
pub(super) fn http10_keep_alive(res: &mut Response<ProxyBody>, method: &Method) {
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
pub(super) fn is_websocket(value: Option<&HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// A fresh request id: 16 random bytes as 32 lower-case hex digits.
pub(super) fn request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes: [u8; 16] = rand::random();
    let mut s = String::with_capacity(32);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

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
}
