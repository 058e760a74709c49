//! Forwarding a checked, rewritten request to its upstream pool ([`crate::upstream`]) and
//! shaping the answer: an upstream failure becomes its status in [`super::respond`]; a
//! WebSocket `101` is spliced through; any other response loses its hop-by-hop headers, is
//! sent in the client's HTTP version, and its body is bounded by the pool's read timeout.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::{ProxyBody, ReadTimeout};
use super::check::Upgrade;
use super::handler::Handler;
use super::headers::{is_websocket, strip_hop_by_hop};
use super::respond::{unserved, Unserved};
use crate::upstream::{InFlight, Pool, UpstreamRequest};

impl Handler {
    /// Sends `req` through `pool` and returns the response for the client.
    pub(super) async fn forward(
        &self,
        pool: &Pool,
        req: UpstreamRequest,
        upgrade: Upgrade,
    ) -> Response<ProxyBody> {
        let (res, in_flight) = match pool.send_counted(req).await {
            Ok(r) => r,
            Err(e) => return unserved(Unserved::Upstream(e)),
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS
            && !(upgrade.websocket && is_websocket(res.headers().get(header::UPGRADE)))
        {
            // A 101 we did not ask for, or to another protocol: not spliced.
            return unserved(Unserved::UnexpectedSwitch);
        }
        if upgrade.websocket && res.status() == StatusCode::SWITCHING_PROTOCOLS {
            return self.splice(res, upgrade.on_upgrade, in_flight);
        }
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::UPGRADE);
        if upgrade.asked {
            // The guard stopped inspecting at the upgrade request; a refused upgrade ends the
            // connection rather than leave later requests unchecked.
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // Answer in the client's protocol, not the upstream's: an HTTP/1.0 upstream must not
        // turn a keep-alive HTTP/1.1 client connection into HTTP/1.0.
        parts.version = upgrade.client_version;
        // The server counts as busy (least_requests) until the body has been sent.
        let body = ReadTimeout::new(body, pool.read_timeout()).map_frame(move |frame| {
            let _ = &in_flight;
            frame
        });
        Response::from_parts(parts, body.boxed())
    }

    /// Answers `101` to the client and copies bytes both ways between the two upgraded
    /// connections until either side closes.
    fn splice(
        &self,
        mut upstream_res: Response<Incoming>,
        client: Option<hyper::upgrade::OnUpgrade>,
        in_flight: InFlight,
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
