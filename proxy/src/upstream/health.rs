//! Server health. Passive: consecutive failures eject a server for `fail_timeout_ms`
//! ([`Server::record_failure`]). Active: one task per server checks it every `interval_ms`
//! ([`Pools::start_health_checks`]). Both feed `keyward_upstream_healthy{pool,server}` and
//! what [`super::balance`] may pick.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Uri};
use http_body_util::BodyExt;
use keyward_config::HealthCheckConfig;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::pool::{Pool, Pools, UpstreamBody};
use super::server::Server;

/// Active health-check tasks; aborted when dropped.
pub(crate) struct HealthChecks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Pools {
    /// Starts one active health-check task per server of every pool that has a
    /// `health_check` table. Must be called within a Tokio runtime. The tasks run until the
    /// returned guard is dropped.
    pub(crate) fn start_health_checks(&self) -> HealthChecks {
        let mut tasks = Vec::new();
        for pool in self.pools.values() {
            let Some(hc) = &pool.health_check else {
                continue;
            };
            for server in &pool.servers {
                tasks.push(tokio::spawn(health_loop(
                    Arc::clone(pool),
                    Arc::clone(server),
                    hc.clone(),
                )));
            }
        }
        HealthChecks { tasks }
    }
}

impl Server {
    pub(super) fn is_healthy(&self, now_ms: u64) -> bool {
        self.check_ok.load(Ordering::Relaxed)
            && now_ms >= self.ejected_until_ms.load(Ordering::Relaxed)
    }

    pub(super) fn refresh_gauge(&self) {
        self.gauge.set(i64::from(self.is_healthy(self.now_ms())));
    }

    pub(super) fn record_success(&self) {
        if self.fails.load(Ordering::Relaxed) != 0 {
            self.fails.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; the `max_fails`-th in a row ejects the server for `fail_timeout`
    /// and schedules the gauge's return to 1 when the window has passed.
    pub(super) fn record_failure(self: &Arc<Self>, pool: &str) {
        if self.max_fails == 0 {
            return;
        }
        let fails = self.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if fails < self.max_fails {
            return;
        }
        let now = self.now_ms();
        let window = u64::try_from(self.fail_timeout.as_millis()).unwrap_or(u64::MAX);
        let until = now.saturating_add(window);
        let previous = self.ejected_until_ms.fetch_max(until, Ordering::Relaxed);
        if previous > now {
            return; // Already ejected: the window was extended.
        }
        warn!(
            pool = %pool,
            server = %self.url,
            consecutive_failures = fails,
            ejected_ms = window,
            "upstream server ejected",
        );
        self.refresh_gauge();
        let weak: Weak<Server> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(server) = weak.upgrade() else {
                    return;
                };
                let now = server.now_ms();
                let until = server.ejected_until_ms.load(Ordering::Relaxed);
                if now >= until {
                    server.refresh_gauge();
                    return;
                }
                drop(server);
                tokio::time::sleep(Duration::from_millis(until - now)).await;
            }
        });
    }
}

impl Pool {
    /// One active check of `server`: `Ok` when it answers `expected_status` in time.
    async fn check(&self, uri: &Uri, host: &HeaderValue, hc: &HealthCheckConfig) -> CheckResult {
        let mut req = Request::new(UpstreamBody::new(Bytes::new(), None));
        *req.uri_mut() = uri.clone();
        req.headers_mut().insert(HOST, host.clone());
        req.headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static("keyward-health-check"));
        let timeout = Duration::from_millis(hc.timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        let resp = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => return CheckResult::Timeout,
            Ok(Err(e)) if e.is_connect() => return CheckResult::Connect,
            Ok(Err(_)) => return CheckResult::Failed,
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        // Read the (small) body so the connection can be reused.
        let _ = tokio::time::timeout_at(deadline, resp.into_body().collect()).await;
        if status.as_u16() == hc.expected_status {
            CheckResult::Pass
        } else {
            CheckResult::Status(status.as_u16())
        }
    }
}

/// The outcome of one active health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckResult {
    Pass,
    /// The server answered this status instead of `expected_status`.
    Status(u16),
    /// No response within `timeout_ms`.
    Timeout,
    /// Connecting failed.
    Connect,
    /// The connection failed after the request was sent.
    Failed,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Pass => f.write_str("health check passed"),
            CheckResult::Status(s) => write!(f, "health check answered status {s}"),
            CheckResult::Timeout => f.write_str("health check timed out"),
            CheckResult::Connect => f.write_str("health check could not connect"),
            CheckResult::Failed => f.write_str("health check connection failed"),
        }
    }
}

/// Checks `server` every `interval_ms` and moves it between healthy and unhealthy after
/// `fall` failures or `rise` passes in a row.
async fn health_loop(pool: Arc<Pool>, server: Arc<Server>, hc: HealthCheckConfig) {
    let uri = PathAndQuery::try_from(hc.path.as_str())
        .ok()
        .and_then(|pq| server.uri(Some(&pq)));
    let (Some(uri), Ok(host)) = (uri, HeaderValue::from_str(&server.authority_text)) else {
        warn!(
            pool = %pool.name,
            server = %server.url,
            path = %hc.path,
            "health check path does not make a valid URI; not checking",
        );
        return;
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(hc.interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streak = 0u32;
    loop {
        ticker.tick().await;
        let result = pool.check(&uri, &host, &hc).await;
        let passed = result == CheckResult::Pass;
        let healthy = server.check_ok.load(Ordering::Relaxed);
        if passed == healthy {
            streak = 0;
            continue;
        }
        streak += 1;
        debug!(pool = %pool.name, server = %server.url, %result, streak, "health check");
        let needed = if healthy { hc.fall } else { hc.rise };
        if streak < needed {
            continue;
        }
        streak = 0;
        server.check_ok.store(passed, Ordering::Relaxed);
        server.refresh_gauge();
        if passed {
            info!(
                pool = %pool.name,
                server = %server.url,
                reason = %result,
                "upstream server healthy again",
            );
        } else {
            warn!(
                pool = %pool.name,
                server = %server.url,
                reason = %result,
                "upstream server unhealthy",
            );
        }
    }
}
