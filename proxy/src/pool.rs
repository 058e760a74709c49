//! Upstream pools: servers, balancing, health checks, retries. (Stub: being built.)

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};
use hyper::body::Incoming;
use keyward_config::PoolConfig;
use tokio::net::TcpStream;

use crate::error::Error;

/// A request ready for a pool: `parts.uri` is origin-form (path and query as the client sent
/// them); headers are final except what the pool sets per server (URI scheme/authority, path
/// prefix). The body is buffered, so a retry can send it again.
pub(crate) struct UpstreamRequest {
    pub(crate) parts: http::request::Parts,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

/// Why a pool could not produce a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No server is healthy (503).
    NoServer,
    /// Connecting failed on every server tried (502).
    Connect,
    /// No response headers within `response_timeout_ms` (504).
    Timeout,
    /// The connection failed after the request was sent (502).
    Failed,
}

/// Every pool of the configuration.
pub(crate) struct Pools {
    pools: BTreeMap<String, Arc<Pool>>,
}

/// One pool.
pub(crate) struct Pool {
    name: String,
}

/// A connection or request counted as in flight on a server until dropped.
pub(crate) struct InFlight;

/// Active health-check tasks; aborted when dropped.
pub(crate) struct HealthChecks;

impl Pools {
    pub(crate) fn build(cfg: &BTreeMap<String, PoolConfig>) -> Result<Pools, Error> {
        Ok(Pools {
            pools: cfg
                .keys()
                .map(|k| (k.clone(), Arc::new(Pool { name: k.clone() })))
                .collect(),
        })
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.get(name).cloned()
    }

    pub(crate) fn start_health_checks(&self) -> HealthChecks {
        HealthChecks
    }
}

impl Pool {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) async fn send(
        &self,
        _req: UpstreamRequest,
    ) -> Result<Response<Incoming>, UpstreamError> {
        Err(UpstreamError::NoServer)
    }

    pub(crate) async fn connect_tcp(&self) -> Result<(TcpStream, InFlight), UpstreamError> {
        Err(UpstreamError::NoServer)
    }
}
