//! Prometheus metrics of the proxy (the `prometheus` crate), served by the admin listener.
//!
//! Names follow Prometheus's conventions: `keyward_` prefix, base units (seconds), `_total`
//! for counters. One process-wide registry: [`metrics()`] is cheap (a static reference) and
//! every update is an atomic operation, so the handshake path takes no lock here.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    /// `keyward_tls_handshakes_total{version,result,resumed}`: `version` `1.2`/`1.3`/`unknown`,
    /// `result` `ok`/`error`/`timeout`, `resumed` `true`/`false`.
    pub tls_handshakes: IntCounterVec,
    /// `keyward_tls_handshake_duration_seconds`: from the first ClientHello byte read to the
    /// handshake's end, successful handshakes only.
    pub tls_handshake_duration: Histogram,
    /// `keyward_hsm_sign_duration_seconds`: one HSM signature in a handshake.
    pub hsm_sign_duration: Histogram,
    /// `keyward_hsm_errors_total`: HSM operations that failed in the proxy (signatures,
    /// ticket encryption).
    pub hsm_errors: IntCounter,
    /// `keyward_remote_signs_in_flight`: remote-mode signatures sent to the HSM nodes and not
    /// yet answered (at most `[hsm] max_in_flight_signs`).
    pub remote_signs_in_flight: IntGauge,
    /// `keyward_remote_sign_failures_total{reason}`: remote-mode signatures that failed:
    /// `timeout` (no signature within `sign_timeout_ms`, or no slot within the listener's
    /// handshake timeout: the connection is closed unserved), `error` (every node refused
    /// or could not be reached), `down` (refused before the `ServerHello`: no node was reachable
    /// less than 1 s ago, see `remote::DOWN_FOR`).
    pub remote_sign_failures: IntCounterVec,
    /// `keyward_connections_active{listener}`: client connections open now.
    pub connections_active: IntGaugeVec,
    /// `keyward_http_requests_total{route,status}`: requests answered, by route name (or
    /// `none` when no route matched) and status code.
    pub http_requests: IntCounterVec,
    /// `keyward_upstream_request_duration_seconds{pool}`: from sending a request upstream to
    /// the response headers.
    pub upstream_request_duration: HistogramVec,
    /// `keyward_upstream_healthy{pool,server}`: 1 when the server receives requests, else 0.
    pub upstream_healthy: IntGaugeVec,
    /// `keyward_certificate_not_after_seconds{name,key}`: the leaf certificate's notAfter as a
    /// Unix time, by its first server name (or key label).
    pub certificate_not_after: IntGaugeVec,
    /// `keyward_config_reloads_total{result}`: SIGHUP reloads, `ok` or `error`.
    pub config_reloads: IntCounterVec,
    /// `keyward_proxy_protocol_rejected_total`: connections refused for a missing, malformed
    /// or untrusted PROXY header.
    pub proxy_protocol_rejected: IntCounter,
    /// `keyward_http_requests_rejected_total{reason}`: client requests refused before
    /// forwarding, by the proxy or by hyper's own HTTP/1.1 parser (which answers those
    /// itself); `reason` is a stable snake_case name such as `obs_fold` or `invalid_host`.
    pub http_requests_rejected: IntCounterVec,
    /// `keyward_upstream_retries_total{pool,reason}`: requests sent again: `connect` (the
    /// connect failed; another server), `unsent` (the pooled connection closed before the
    /// request was written), `closed_idle` (a reused connection closed after the request was
    /// written but before any response byte; idempotent requests only).
    pub upstream_retries: IntCounterVec,
    /// `keyward_connections_accepted_total{listener}`: client connections accepted (the accept
    /// rate is its `rate()`).
    pub connections_accepted: IntCounterVec,
    /// `keyward_connections_resting{listener}`: HTTP/1.1 keep-alive connections resting
    /// between requests (their HTTP state freed until the next byte arrives).
    pub connections_resting: IntGaugeVec,
    /// `keyward_listen_backlog{listener}`: the accept queue length of each of the listener's
    /// sockets: the configured `backlog`, capped by `net.core.somaxconn`.
    pub listen_backlog: IntGaugeVec,
    /// `keyward_listen_sockets{listener}`: listening sockets (one accept loop each).
    pub listen_sockets: IntGaugeVec,
    /// `keyward_worker_threads`: the threads that run connections (`[runtime] worker_threads`).
    pub worker_threads: IntGauge,
    /// `keyward_listen_overflows_total`: connections the kernel dropped because an accept queue
    /// was full (`TcpExt: ListenOverflows` of `/proc/net/netstat`, read at each scrape). The
    /// kernel counts them for the whole network namespace since boot, every listening socket
    /// in it included; a rising value while Keyward is the only server means its listeners'
    /// queues fill: raise `backlog` (and `net.core.somaxconn`) or `worker_threads`.
    pub listen_overflows: IntCounter,
    /// `keyward_listen_drops_total`: every connection dropped at a listening socket
    /// (`TcpExt: ListenDrops`: overflows included), as [`Metrics::listen_overflows`].
    pub listen_drops: IntCounter,
}

/// Buckets for sub-millisecond to second latencies, in seconds.
const FAST_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];
/// Buckets for upstream requests, in seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let m = Metrics {
        tls_handshakes: IntCounterVec::new(
            Opts::new("keyward_tls_handshakes_total", "TLS handshakes by protocol version, result and whether the session was resumed."),
            &["version", "result", "resumed"],
        )?,
        tls_handshake_duration: Histogram::with_opts(
            HistogramOpts::new("keyward_tls_handshake_duration_seconds", "Duration of successful TLS handshakes.")
                .buckets(FAST_BUCKETS.to_vec()),
        )?,
        hsm_sign_duration: Histogram::with_opts(
            HistogramOpts::new("keyward_hsm_sign_duration_seconds", "Duration of one HSM signature made for a TLS handshake.")
                .buckets(FAST_BUCKETS.to_vec()),
        )?,
        hsm_errors: IntCounter::new("keyward_hsm_errors_total", "HSM operations of the proxy that failed.")?,
        remote_signs_in_flight: IntGauge::new("keyward_remote_signs_in_flight", "Remote-mode signatures sent to the HSM nodes and not yet answered.")?,
        remote_sign_failures: IntCounterVec::new(
            Opts::new("keyward_remote_sign_failures_total", "Remote-mode signatures that failed, by reason (timeout, error, down)."),
            &["reason"],
        )?,
        connections_active: IntGaugeVec::new(
            Opts::new("keyward_connections_active", "Client connections open now."),
            &["listener"],
        )?,
        http_requests: IntCounterVec::new(
            Opts::new("keyward_http_requests_total", "HTTP requests answered, by route and status code."),
            &["route", "status"],
        )?,
        upstream_request_duration: HistogramVec::new(
            HistogramOpts::new("keyward_upstream_request_duration_seconds", "Time from sending a request upstream to its response headers.")
                .buckets(REQUEST_BUCKETS.to_vec()),
            &["pool"],
        )?,
        upstream_healthy: IntGaugeVec::new(
            Opts::new("keyward_upstream_healthy", "1 when the upstream server receives requests, 0 when ejected or failing its health check."),
            &["pool", "server"],
        )?,
        certificate_not_after: IntGaugeVec::new(
            Opts::new("keyward_certificate_not_after_seconds", "The served leaf certificate's notAfter, as a Unix time in seconds."),
            &["name", "key"],
        )?,
        config_reloads: IntCounterVec::new(
            Opts::new("keyward_config_reloads_total", "Configuration reloads (SIGHUP) by result."),
            &["result"],
        )?,
        proxy_protocol_rejected: IntCounter::new(
            "keyward_proxy_protocol_rejected_total",
            "Connections refused for a missing, malformed or untrusted PROXY protocol header.",
        )?,
        http_requests_rejected: IntCounterVec::new(
            Opts::new("keyward_http_requests_rejected_total", "Client requests refused before forwarding (by the proxy or by the HTTP/1.1 parser), by reason."),
            &["reason"],
        )?,
        upstream_retries: IntCounterVec::new(
            Opts::new("keyward_upstream_retries_total", "Upstream requests sent again, by pool and reason (connect, unsent, closed_idle)."),
            &["pool", "reason"],
        )?,
        connections_accepted: IntCounterVec::new(
            Opts::new("keyward_connections_accepted_total", "Client connections accepted, by listener."),
            &["listener"],
        )?,
        connections_resting: IntGaugeVec::new(
            Opts::new("keyward_connections_resting", "HTTP/1.1 keep-alive connections resting between requests (HTTP state freed)."),
            &["listener"],
        )?,
        listen_backlog: IntGaugeVec::new(
            Opts::new("keyward_listen_backlog", "Accept queue length of each listening socket (backlog capped by net.core.somaxconn)."),
            &["listener"],
        )?,
        listen_sockets: IntGaugeVec::new(
            Opts::new("keyward_listen_sockets", "Listening sockets (SO_REUSEPORT, one accept loop each), by listener."),
            &["listener"],
        )?,
        worker_threads: IntGauge::new("keyward_worker_threads", "Worker threads running connections.")?,
        listen_overflows: IntCounter::new(
            "keyward_listen_overflows_total",
            "Connections dropped because an accept queue was full (kernel TcpExt ListenOverflows, whole network namespace, since boot).",
        )?,
        listen_drops: IntCounter::new(
            "keyward_listen_drops_total",
            "Connections dropped at listening sockets (kernel TcpExt ListenDrops, whole network namespace, since boot).",
        )?,
        registry,
    };
    m.registry.register(Box::new(m.tls_handshakes.clone()))?;
    m.registry
        .register(Box::new(m.tls_handshake_duration.clone()))?;
    m.registry.register(Box::new(m.hsm_sign_duration.clone()))?;
    m.registry.register(Box::new(m.hsm_errors.clone()))?;
    m.registry
        .register(Box::new(m.remote_signs_in_flight.clone()))?;
    m.registry
        .register(Box::new(m.remote_sign_failures.clone()))?;
    m.registry
        .register(Box::new(m.connections_active.clone()))?;
    m.registry.register(Box::new(m.http_requests.clone()))?;
    m.registry
        .register(Box::new(m.upstream_request_duration.clone()))?;
    m.registry.register(Box::new(m.upstream_healthy.clone()))?;
    m.registry
        .register(Box::new(m.certificate_not_after.clone()))?;
    m.registry.register(Box::new(m.config_reloads.clone()))?;
    m.registry
        .register(Box::new(m.proxy_protocol_rejected.clone()))?;
    m.registry
        .register(Box::new(m.http_requests_rejected.clone()))?;
    m.registry.register(Box::new(m.upstream_retries.clone()))?;
    m.registry
        .register(Box::new(m.connections_accepted.clone()))?;
    m.registry.register(Box::new(m.listen_backlog.clone()))?;
    m.registry
        .register(Box::new(m.connections_resting.clone()))?;
    m.registry.register(Box::new(m.listen_sockets.clone()))?;
    m.registry.register(Box::new(m.worker_threads.clone()))?;
    m.registry.register(Box::new(m.listen_overflows.clone()))?;
    m.registry.register(Box::new(m.listen_drops.clone()))?;
    Ok(m)
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().expect("metric names and labels are valid constants"));

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// The Prometheus text exposition format (version 0.0.4) of every metric.
    pub fn render(&self) -> String {
        self.read_kernel_counters();
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Metrics {
    /// Brings the counters the kernel keeps up to its values (one scrape at a time, so each
    /// increase is added once).
    fn read_kernel_counters(&self) {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((overflows, drops)) = crate::listen::listen_overflows() {
            for (counter, now) in [
                (&self.listen_overflows, overflows),
                (&self.listen_drops, drops),
            ] {
                counter.inc_by(now.saturating_sub(counter.get()));
            }
        }
    }
}

/// The `keyward_http_requests_total` children of one route, each resolved on its first use
/// and then kept (resolving takes the metric family's lock: not once per request).
pub(crate) struct RouteRequests {
    route: Box<str>,
    /// By status code − 100 (100 to 599).
    by_status: Box<[std::sync::OnceLock<IntCounter>]>,
}

impl RouteRequests {
    /// The counters of the route named `route` (its `route` label).
    pub(crate) fn new(route: &str) -> RouteRequests {
        RouteRequests {
            route: route.into(),
            by_status: (100..600).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// The route's name.
    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// Counts one request answered with `status`.
    pub(crate) fn count(&self, status: http::StatusCode) {
        let code = status.as_u16();
        match self.by_status.get(usize::from(code).wrapping_sub(100)) {
            Some(slot) => slot
                .get_or_init(|| {
                    metrics()
                        .http_requests
                        .with_label_values(&[&self.route, status.as_str()])
                })
                .inc(),
            None => metrics()
                .http_requests
                .with_label_values(&[&self.route, status.as_str()])
                .inc(),
        }
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
