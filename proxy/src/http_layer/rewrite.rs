//! How a checked request's headers are rewritten before it is forwarded: hop-by-hop headers
//! and `Expect` removed, our request id, the verified client-certificate subject (and no
//! client-sent one), `X-Forwarded-*` and `Forwarded` (RFC 7239), the WebSocket upgrade
//! headers restored. The rewritten request then goes to [`super::forward`].

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use keyward_config::ForwardedTrust;

use super::authority::HostAuthority;
use super::handler::Handler;
use super::headers::strip_hop_by_hop;
use super::respond::Refusal;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// RFC 7239 §6: an IPv6 node is quoted and bracketed; IPv4 is bare.
fn forwarded_node(addr: &SocketAddr) -> String {
    match addr.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("\"[{ip}]\""),
    }
}

impl Handler {
    /// Rewrites the headers of a request to forward: `id` is its request id, `host` its
    /// authority, `websocket` whether it is a WebSocket upgrade (its `Upgrade` and
    /// `Connection: upgrade` are kept).
    pub(super) fn rewrite(
        &self,
        headers: &mut HeaderMap,
        host: Option<&HostAuthority>,
        id: &str,
        websocket: bool,
    ) -> Result<(), Refusal> {
        let upgrade_value = headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(headers);
        headers.remove(header::UPGRADE);
        // The body is read before forwarding (hyper answers the client's `100-continue`), so
        // the upstream is not asked to wait for it.
        headers.remove(header::EXPECT);
        // The request id: ours, replacing any the client sent.
        headers.remove(&self.request_id_header);
        if let Ok(v) = HeaderValue::from_str(id) {
            headers.insert(self.request_id_header.clone(), v);
        }
        // The verified client certificate's subject, and only that: no client may send a
        // subject header of any listener's, even where no certificate is asked for.
        for name in self.st.subject_headers.iter() {
            headers.remove(name);
        }
        if let Some(name) = &self.subject_header {
            if let Some(subject) = &self.info.client_subject {
                if let Ok(v) = HeaderValue::from_str(subject) {
                    headers.insert(name.clone(), v);
                }
            }
        }
        self.set_forwarded(headers, host)?;
        if websocket {
            if let Some(u) = upgrade_value {
                headers.insert(header::UPGRADE, u);
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
        }
        Ok(())
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
}
