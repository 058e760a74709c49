//! One upstream server of a pool: its address, its request count ([`InFlight`], what
//! `least_requests` compares) and its health state, which [`super::health`] keeps.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use keyward_config::{PoolConfig, UpstreamScheme, UpstreamServer};
use prometheus::IntGauge;

use crate::metrics::metrics;

/// One server of a pool and its health.
pub(super) struct Server {
    /// The URL as configured (the `server` metric label).
    pub(super) url: String,
    /// `host:port`, for `Host` in health checks and for layer-4 connects.
    pub(super) authority_text: String,
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    /// `""` or `/prefix` (no trailing `/`).
    pub(super) prefix: String,
    /// Requests and layer-4 connections open now.
    pub(super) in_flight: AtomicUsize,
    /// Consecutive failures (passive health).
    pub(super) fails: AtomicU32,
    /// `max_fails` of the pool; 0 = never eject.
    pub(super) max_fails: u32,
    pub(super) fail_timeout: Duration,
    /// Ejected while `now_ms() < ejected_until_ms`.
    pub(super) ejected_until_ms: AtomicU64,
    /// What the active health check says (true when there is none).
    pub(super) check_ok: AtomicBool,
    /// When the pool was built; `now_ms` counts from here.
    pub(super) epoch: Instant,
    /// `keyward_upstream_healthy{pool,server=url}`.
    pub(super) gauge: IntGauge,
}

/// A connection or request counted as in flight on a server until dropped (the count
/// `least_requests` compares).
pub(crate) struct InFlight(pub(super) Arc<Server>);

impl Server {
    pub(super) fn new(
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
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `scheme://authority{prefix}{path_and_query}`; `None` if that is not a valid URI.
    pub(super) fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Option<Uri> {
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
}

impl InFlight {
    pub(super) fn new(server: &Arc<Server>) -> InFlight {
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(server))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
