//! The checks a request passes before anything is forwarded; each failure is a
//! [`Refusal`], answered in [`super::respond`]. In order: no `CONNECT`, a well-formed
//! authority (required from HTTP/1.1 on), one `Host`, no dot segments; later, once the headers
//! are rewritten ([`super::rewrite`]), the body: within `max_body_bytes` and
//! `client_body_timeout_ms`, and (HTTP/1.1) framed as the smuggling guard expects.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Request, StatusCode, Version};
use hyper::body::Body;
use hyper::upgrade::OnUpgrade;

use super::authority::{normalize, AuthorityError, HostAuthority};
use super::body::BodyError;
use super::h1guard::{RejectReason, RequestId};
use super::handler::Handler;
use super::headers::{connection_has, is_websocket};
use super::respond::Refusal;

/// A request that passed the head checks, taken apart.
pub(super) struct Checked<B> {
    pub(super) parts: http::request::Parts,
    pub(super) body: B,
    /// The normalised authority; `None` only for HTTP/1.0 (and 0.9) without one.
    pub(super) host: Option<HostAuthority>,
    pub(super) upgrade: Upgrade,
}

/// What the client asked for about protocol upgrades.
pub(super) struct Upgrade {
    /// `Upgrade` with `Connection: upgrade` on HTTP/1.1, whatever the protocol.
    pub(super) asked: bool,
    /// ... to WebSocket: the only upgrade spliced through.
    pub(super) websocket: bool,
    /// The client side of a WebSocket upgrade.
    pub(super) on_upgrade: Option<OnUpgrade>,
    /// The client's HTTP version: the response is sent in it.
    pub(super) client_version: Version,
}

/// Checks a request's method, authority and path, and takes it apart.
pub(super) fn check_head<B>(mut req: Request<B>) -> Result<Checked<B>, Refusal> {
    if req.method() == http::Method::CONNECT {
        // Not a tunnel: CONNECT (and HTTP/2 extended CONNECT) is refused, never forwarded.
        return Err(Refusal::Connect);
    }
    // WebSocket upgrades (RFC 6455 §4, RFC 9110 §7.8) are spliced through; no other
    // protocol (h2c upgrades could bypass the proxy's checks).
    let asked = req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_has(req.headers(), "upgrade");
    let websocket = asked && is_websocket(req.headers().get(header::UPGRADE));
    let on_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let client_version = req.version();
    let (parts, body) = req.into_parts();

    // The client's host: HTTP/2 `:authority` (or an absolute-form URI), else the Host
    // header, normalised once (lower-case, no trailing dot, port apart); a malformed one
    // (an empty label, say) is refused rather than left to miss its route and fall
    // through to the default pool. HTTP/1.1 requires one (RFC 9112 §3.2).
    let host = request_authority(&parts)?;
    if host.is_none() && parts.version != Version::HTTP_10 && parts.version != Version::HTTP_09 {
        // HTTP/1.1 needs Host (RFC 9112 §3.2); HTTP/2 needs :authority or Host (RFC 9113
        // §8.3.1) for the proxy to know the target.
        return Err(Refusal::MissingHost);
    }
    if parts.headers.get_all(header::HOST).iter().count() > 1 {
        return Err(Refusal::DuplicateHost);
    }
    if has_dot_segment(parts.uri.path()) {
        // "/../" could climb out of an upstream path prefix: refuse rather than guess.
        return Err(Refusal::DotSegment);
    }
    Ok(Checked {
        parts,
        body,
        host,
        upgrade: Upgrade {
            asked,
            websocket,
            on_upgrade,
            client_version,
        },
    })
}

/// The request's authority, normalised: the URI's (HTTP/2 `:authority`, an absolute-form
/// target) or else the `Host` header's. `Ok(None)` when there is neither.
pub(super) fn request_authority(
    parts: &http::request::Parts,
) -> Result<Option<HostAuthority>, Refusal> {
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

/// Whether a path has a `.` or `..` segment, also percent-encoded (`%2e`): RFC 3986 §5.2.4
/// would resolve it, and it could climb out of the upstream path prefix.
pub(crate) fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

impl Handler {
    /// Reads the request body (none for a WebSocket upgrade): refused when its declared or
    /// counted length is over `max_body_bytes`, when it stalls, or (HTTP/1.1) when the
    /// smuggling guard found its chunked framing invalid.
    ///
    /// The body is buffered (as nginx does by default): a body over the limit is refused
    /// before anything reaches the upstream, broken framing too, and retries can resend.
    pub(super) async fn checked_body<B>(
        &self,
        headers: &HeaderMap,
        body: B,
        websocket: bool,
        guarded: Option<RequestId>,
    ) -> Result<(Bytes, Option<HeaderMap>), Refusal>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BodyError>,
    {
        let limit = usize::try_from(self.st.cfg.max_body_bytes).unwrap_or(usize::MAX);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.st.cfg.max_body_bytes) {
            return Err(Refusal::BodyTooLarge);
        }
        let (bytes, trailers) = if websocket {
            drop(body);
            (Bytes::new(), None)
        } else {
            self.read_body(body, limit).await?
        };
        if let (Some(v), Some(request)) = (&self.verdicts, guarded) {
            if !v.body_verdict(request).is_ok() {
                return Err(Refusal::Framing(RejectReason::InvalidChunkedFraming));
            }
        }
        Ok((bytes, trailers))
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
