//! Counting outcomes and printing the report (text or one JSON object).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why one operation failed; the report counts errors by this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// TCP connect failed (refused, unreachable, ...).
    Connect,
    /// The TLS handshake failed: a rustls error (certificate, alert, protocol) or the
    /// connection broke during the handshake.
    Tls,
    /// The operation did not finish within `--timeout`.
    Timeout,
    /// An HTTP protocol or I/O error after the handshake.
    Http,
    /// The server answered with this non-2xx/3xx status.
    Status(u16),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Tls => f.write_str("tls"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Http => f.write_str("http"),
            ErrorKind::Status(code) => write!(f, "status_{code}"),
        }
    }
}

/// What one operation produced, sent by the load tasks to the collector.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// A completed TLS handshake; `resumed` per `HandshakeKind::Resumed`.
    Handshake {
        /// Whether the session was resumed (no certificate, no server signature).
        resumed: bool,
    },
    /// A completed operation (handshake-only, handshake + request, or one keep-alive
    /// request) and its latency.
    Done {
        /// Whether it included an HTTP request with a 2xx/3xx response.
        request: bool,
        /// From the (scheduled) start to the end of the operation.
        latency: Duration,
    },
    /// A failed operation.
    Failed(ErrorKind),
    /// An open-loop start that began later than scheduled (see `LATE_START`).
    LateStart,
}

/// Counters and the latency histogram of a run.
#[derive(Debug)]
pub struct Stats {
    /// Completed handshakes.
    pub handshakes: u64,
    /// Of those, resumed handshakes.
    pub resumed: u64,
    /// Requests answered with 2xx/3xx.
    pub requests: u64,
    /// Completed operations.
    pub done: u64,
    /// Failures by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Open-loop starts that were late.
    pub late_starts: u64,
    /// Latency of completed operations, microseconds.
    pub latency_us: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            handshakes: 0,
            resumed: 0,
            requests: 0,
            done: 0,
            errors: BTreeMap::new(),
            late_starts: 0,
            latency_us: latency_histogram(),
        }
    }
}

/// 1 µs .. 1 h at 3 significant digits; auto-resize covers anything longer.
fn latency_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid");
    h.auto(true);
    h
}

impl Stats {
    /// Adds one outcome.
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Handshake { resumed } => {
                self.handshakes += 1;
                self.resumed += u64::from(resumed);
            }
            Outcome::Done { request, latency } => {
                self.done += 1;
                self.requests += u64::from(request);
                let us = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                self.latency_us.saturating_record(us);
            }
            Outcome::Failed(kind) => *self.errors.entry(kind).or_default() += 1,
            Outcome::LateStart => self.late_starts += 1,
        }
    }
}

/// What was negotiated on the first successful connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Negotiated {
    /// Protocol version, e.g. `TLSv1_3`.
    pub version: String,
    /// Cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// Key-exchange group, e.g. `X25519`.
    pub group: String,
    /// ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The server's handshake signature scheme (first full handshake), e.g.
    /// `ECDSA_NISTP256_SHA256`; absent when every handshake was resumed.
    pub signature_scheme: Option<String>,
}

/// How many of the server's handshake signatures the client checked (`--verify-every`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Signatures {
    /// Checked against the certificate's public key.
    pub verified: u64,
    /// Accepted unchecked by sampling.
    pub unchecked: u64,
}

/// `idle` mode: connections held open.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Idle {
    /// Connections asked for.
    pub requested: usize,
    /// Connections open (handshake and first request done) when the hold began.
    pub held: usize,
    /// Of those, connections that answered a second request after the hold.
    pub alive_after_hold: usize,
    /// Seconds the connections were held.
    pub hold_s: f64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// The generator's own CPU use (`CLOCK_PROCESS_CPUTIME_ID`: user + system, all threads).
#[derive(Debug, Serialize)]
pub struct Cpu {
    /// Total CPU time during the run, milliseconds.
    pub total_ms: f64,
    /// `total_ms` ÷ completed handshakes (absent when there were none).
    pub per_handshake_ms: Option<f64>,
    /// `total_ms` ÷ successful requests (absent when there were none).
    pub per_request_ms: Option<f64>,
    /// `total_ms` ÷ wall time × 100: 100 means one core fully busy.
    pub core_percent: f64,
}

/// The whole report; `--json` prints it as one JSON object.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `handshake` or `request`.
    pub mode: &'static str,
    /// Target address as given.
    pub target: String,
    /// Settings of the run, for the record.
    pub settings: BTreeMap<&'static str, serde_json::Value>,
    /// Wall time from the first start to the last completion, seconds.
    pub elapsed_s: f64,
    /// Completed handshakes.
    pub handshakes: u64,
    /// Resumed handshakes (subset of `handshakes`).
    pub resumed: u64,
    /// Successful (2xx/3xx) requests.
    pub requests: u64,
    /// `handshakes` ÷ `elapsed_s`.
    pub handshakes_per_s: f64,
    /// `requests` ÷ `elapsed_s`.
    pub requests_per_s: f64,
    /// Failures by kind (`connect`, `tls`, `timeout`, `http`, `status_NNN`).
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub error_total: u64,
    /// Open-loop starts more than `LATE_START` behind schedule (0 in closed loop).
    pub late_starts: u64,
    /// Latency of completed operations.
    pub latency_ms: Latency,
    /// The generator's own CPU use.
    pub cpu: Cpu,
    /// Parameters of the first successful handshake (absent if none succeeded).
    pub negotiated: Option<Negotiated>,
    /// The server's handshake signatures the client checked or, sampling, did not.
    pub server_signatures: Signatures,
    /// `idle` mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
    /// The error of the first failed TLS handshake, if any (rustls's message).
    pub first_tls_error: Option<String>,
}

impl Report {
    /// Builds the report from the collected stats, the wall time and the CPU time.
    pub fn new(
        mode: &'static str,
        target: String,
        settings: BTreeMap<&'static str, serde_json::Value>,
        stats: &Stats,
        elapsed: Duration,
        cpu: Duration,
        negotiated: Option<Negotiated>,
    ) -> Report {
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let cpu_ms = cpu.as_secs_f64() * 1000.0;
        let per = |n: u64| (n > 0).then(|| cpu_ms / n as f64);
        let h = &stats.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let empty = h.is_empty();
        let q = |q: f64| {
            if empty {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        Report {
            mode,
            target,
            settings,
            elapsed_s: elapsed.as_secs_f64(),
            handshakes: stats.handshakes,
            resumed: stats.resumed,
            requests: stats.requests,
            handshakes_per_s: stats.handshakes as f64 / secs,
            requests_per_s: stats.requests as f64 / secs,
            errors: stats
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            error_total: stats.errors.values().sum(),
            late_starts: stats.late_starts,
            latency_ms: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p99_9: q(0.999),
                max: if empty { 0.0 } else { ms(h.max()) },
                mean: if empty { 0.0 } else { h.mean() / 1000.0 },
            },
            cpu: Cpu {
                total_ms: cpu_ms,
                per_handshake_ms: per(stats.handshakes),
                per_request_ms: per(stats.requests),
                core_percent: cpu.as_secs_f64() / secs * 100.0,
            },
            negotiated,
            server_signatures: Signatures::default(),
            idle: None,
            first_tls_error: None,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} against {} for {:.2} s",
            self.mode, self.target, self.elapsed_s
        )?;
        if let Some(n) = &self.negotiated {
            let alpn = n.alpn.as_deref().unwrap_or("-");
            let sig = n.signature_scheme.as_deref().unwrap_or("-");
            writeln!(
                f,
                "  negotiated     {} {} {} signature={sig} alpn={alpn}",
                n.version, n.cipher_suite, n.group
            )?;
        }
        let s = self.server_signatures;
        writeln!(
            f,
            "  signatures     {} server handshake signatures checked, {} accepted unchecked (--verify-every)",
            s.verified, s.unchecked
        )?;
        if let Some(i) = &self.idle {
            writeln!(
                f,
                "  idle           {} of {} held for {:.1} s, {} answered afterwards",
                i.held, i.requested, i.hold_s, i.alive_after_hold
            )?;
        }
        writeln!(
            f,
            "  handshakes     {} ({} resumed), {:.1}/s",
            self.handshakes, self.resumed, self.handshakes_per_s
        )?;
        writeln!(
            f,
            "  requests       {}, {:.1}/s",
            self.requests, self.requests_per_s
        )?;
        write!(f, "  errors         {}", self.error_total)?;
        for (kind, n) in &self.errors {
            write!(f, " {kind}={n}")?;
        }
        writeln!(f)?;
        if let Some(e) = &self.first_tls_error {
            writeln!(f, "  first TLS error {e}")?;
        }
        if self.late_starts > 0 {
            writeln!(f, "  late starts    {}", self.late_starts)?;
        }
        let l = &self.latency_ms;
        writeln!(
            f,
            "  latency ms     p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        )?;
        write!(
            f,
            "  client CPU     {:.1} ms, {:.1}% of a core",
            self.cpu.total_ms, self.cpu.core_percent
        )?;
        if let Some(per) = self.cpu.per_handshake_ms {
            write!(f, ", {per:.4} ms/handshake")?;
        }
        if let Some(per) = self.cpu.per_request_ms {
            write!(f, ", {per:.4} ms/request")?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_reports() {
        let mut stats = Stats::default();
        for ms in 1..=100 {
            stats.record(Outcome::Handshake {
                resumed: ms % 2 == 0,
            });
            stats.record(Outcome::Done {
                request: true,
                latency: Duration::from_millis(ms),
            });
        }
        stats.record(Outcome::Failed(ErrorKind::Status(503)));
        stats.record(Outcome::Failed(ErrorKind::Tls));
        stats.record(Outcome::Failed(ErrorKind::Tls));
        let report = Report::new(
            "handshake",
            "x".into(),
            BTreeMap::new(),
            &stats,
            Duration::from_secs(2),
            Duration::from_millis(50),
            None,
        );
        assert_eq!(report.handshakes, 100);
        assert_eq!(report.resumed, 50);
        assert_eq!(report.handshakes_per_s, 50.0);
        assert_eq!(report.error_total, 3);
        assert_eq!(report.errors["tls"], 2);
        assert_eq!(report.errors["status_503"], 1);
        assert!(
            (report.latency_ms.p50 - 50.0).abs() < 0.1,
            "{}",
            report.latency_ms.p50
        );
        assert!(
            (report.latency_ms.p99 - 99.0).abs() < 0.1,
            "{}",
            report.latency_ms.p99
        );
        assert_eq!(report.cpu.per_handshake_ms, Some(0.5));
        assert!((report.cpu.core_percent - 2.5).abs() < 1e-9);
    }
}
