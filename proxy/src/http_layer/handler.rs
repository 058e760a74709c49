//! One HTTP request, from the service call to the access log line. [`Handler::handle`] takes
//! the smuggling guard's verdict ([`super::h1guard`]), then for a proxied request runs the
//! steps in order: [`super::check`] (refusals), [`super::route`] (route and pool),
//! [`super::rewrite`] (headers), the body check, [`super::forward`] (the upstream and its
//! answer). Every status chosen on the way comes from [`super::respond`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::BodyExt as _;
use hyper::body::Body;
use keyward_config::ListenerMode;

use super::body::{BodyError, ProxyBody};
use super::check::{check_head, request_authority, Checked};
use super::h1guard::{GuardVerdicts, RequestId, Verdict};
use super::headers::{connection_has, http10_keep_alive, request_id};
use super::respond::{redirect, refuse, unserved, Refusal, Refused};
use super::route::{NO_ROUTE, REDIRECT};
use crate::conn::{Activity, ListenerState};
use crate::metrics::RouteRequests;
use crate::upstream::{Pool, UpstreamRequest};

/// A response with what the access log and the metrics name it by: the route (`none` when
/// refused before routing) and the pool (when one was chosen).
type Served = (Response<ProxyBody>, Arc<RouteRequests>, Option<Arc<Pool>>);

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

/// Serves the requests of one connection.
pub(crate) struct Handler {
    pub(super) st: Arc<ListenerState>,
    pub(super) info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    pub(super) request_id_header: HeaderName,
    pub(super) subject_header: Option<HeaderName>,
    hsts: Option<HeaderValue>,
    /// HTTP/1.1 only: the smuggling guard's verdicts, one per request.
    pub(super) verdicts: Option<GuardVerdicts>,
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
    pub(super) fn refused(&self) -> Refused<'_> {
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
        // Copied for the access log only (the request is consumed before the log line).
        let path = if self.st.access_log {
            req.uri().path().to_owned()
        } else {
            String::new()
        };
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
                (refuse(refusal, self.refused()), NO_ROUTE.clone(), None)
            }
            _ if self.st.cfg.mode == ListenerMode::Redirect => {
                (self.redirect(req), REDIRECT.clone(), None)
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
        route.count(status);
        if self.st.access_log {
            tracing::info!(
                target: "keyward::access",
                request_id = %id,
                client = %self.info.client,
                method = %method,
                path = %path,
                version = ?version,
                status = status.as_u16(),
                route = route.route(),
                pool = pool.as_ref().map_or("-", |p| p.name()),
                // Milliseconds with microsecond resolution.
                duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
                listener = %self.st.label,
                "request"
            );
        }
        if self.verdicts.is_some() && !res.body().is_end_stream() {
            // HTTP/1.1: the connection must not rest while this body is being sent.
            let responding = self.activity.response();
            return Ok(res.map(|b| super::body::Counted::new(b, responding).boxed()));
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
        match HeaderValue::from_str(&location) {
            Ok(v) => redirect(v),
            Err(_) => refuse(Refusal::Unparsable, self.refused()),
        }
    }

    /// Checks, routes, rewrites and forwards one request.
    async fn proxy<B>(&self, req: Request<B>, id: &str, guarded: Option<RequestId>) -> Served
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let Checked {
            mut parts,
            body,
            host,
            upgrade,
        } = match check_head(req) {
            Ok(checked) => checked,
            Err(refusal) => return (refuse(refusal, self.refused()), NO_ROUTE.clone(), None),
        };
        let (route, pool) = match self.route(host.as_ref(), parts.uri.path()) {
            Ok(routed) => routed,
            Err((why, route)) => return (unserved(why), route, None),
        };
        let refused = |refusal| (refuse(refusal, self.refused()), route.clone(), None);
        if let Err(refusal) = self.rewrite(&mut parts.headers, host.as_ref(), id, upgrade.websocket)
        {
            return refused(refusal);
        }
        let (bytes, trailers) = match self
            .checked_body(&parts.headers, body, upgrade.websocket, guarded)
            .await
        {
            Ok(b) => b,
            Err(refusal) => return refused(refusal),
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.version = Version::HTTP_11;
        let req = UpstreamRequest {
            parts,
            body: bytes,
            trailers,
        };
        let res = self.forward(&pool, req, upgrade).await;
        (res, route, Some(pool))
    }
}
