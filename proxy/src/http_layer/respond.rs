//! Every status the proxy itself chooses for a client request is chosen here: refusals
//! ([`Refusal`], from [`super::check`] and the smuggling guard), requests that passed the
//! checks but got no upstream response ([`Unserved`], from [`super::route`] and
//! [`super::forward`]), and the redirect of a plain-HTTP listener. (The HTTP/2 `100
//! Continue` interim response is protocol, in [`super::h2`].)
//!
//! Refused client requests: this is the one place where a refusal becomes its HTTP response,
//! is counted in `keyward_http_requests_rejected_total{reason}` and is logged. An
//! [`Unserved`] request is neither counted there nor logged here (the access log and
//! `keyward_http_requests_total` have it, the pool logs the upstream's failure).
//!
//! Two kinds of refusal meet here: those the proxy decides while serving a request
//! ([`refuse`] builds the response), and those hyper's HTTP/1.1 parser decides before our
//! service ever sees the request (hyper has already answered `400`/`431`/`414` and closed the
//! connection; the listener reports them with [`record`], naming the reason the smuggling
//! guard found in the same bytes when there is one). Without the second kind, a smuggling
//! attempt stopped by hyper (obs-fold, `Content-Length: 1, 2`, `X-Forwarded-For :`) would leave
//! no trace at all.
//!
//! Logging is rate-limited per reason: at most one `warn` line per reason every
//! [`LOG_INTERVAL_MS`], carrying how many refusals of that reason were not logged since the
//! previous line. The limiter is one `AtomicU64` (last logged time) and one counter per reason:
//! no lock, and nothing is touched on requests that are not refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use prometheus::IntCounter;

use super::authority::AuthorityError;
use super::body::ProxyBody;
use super::h1guard::RejectReason;
use crate::metrics::metrics;
use crate::upstream::UpstreamError;

/// At most one log line per refusal reason in this many milliseconds.
pub(crate) const LOG_INTERVAL_MS: u64 = 10_000;

/// Why a client request was refused before anything was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The HTTP/1.1 smuggling guard refused the head or the chunked body.
    Framing(RejectReason),
    /// The guard did not inspect this request (after an upgrade or a refused request): fail
    /// closed.
    Uninspected,
    /// hyper's parser refused the head and the guard found nothing more specific (a bad
    /// request target, say).
    Unparsable,
    /// hyper refused a head over `max_header_bytes` (`431`) or a target too long (`414`).
    HeadTooLarge,
    /// The authority (`Host` / `:authority`) is malformed.
    InvalidHost(AuthorityError),
    /// HTTP/1.1 or HTTP/2 without any authority.
    MissingHost,
    /// More than one `Host` header.
    DuplicateHost,
    /// A `.` or `..` path segment (also percent-encoded).
    DotSegment,
    /// `CONNECT` (or HTTP/2 extended CONNECT): the proxy is no tunnel.
    Connect,
    /// The body is over `max_body_bytes` (declared or counted).
    BodyTooLarge,
    /// No body bytes within `client_body_timeout_ms`.
    BodyTimeout,
    /// The body could not be read (framing error, reset stream).
    InvalidBody,
    /// Forwarding headers could not be built from what the client sent.
    InvalidForwarded,
}

impl Refusal {
    /// The status the client gets.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::Framing(r) => r.status(),
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Uninspected
            | Self::Unparsable
            | Self::InvalidHost(_)
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::DotSegment
            | Self::InvalidBody
            | Self::InvalidForwarded => StatusCode::BAD_REQUEST,
        }
    }

    /// The `reason` label: a stable snake_case name.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Framing(r) => r.as_str(),
            Self::Uninspected => "uninspected",
            Self::Unparsable => "unparsable",
            Self::HeadTooLarge => "head_too_large",
            Self::InvalidHost(_) => "invalid_host",
            Self::MissingHost => "missing_host",
            Self::DuplicateHost => "duplicate_host",
            Self::DotSegment => "dot_segment",
            Self::Connect => "connect_method",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::InvalidBody => "invalid_body",
            Self::InvalidForwarded => "invalid_forwarded",
        }
    }

    /// The short text of the response body.
    fn detail(self) -> &'static str {
        match self {
            Self::Framing(RejectReason::InvalidChunkedFraming) => "invalid chunked framing",
            Self::Framing(_) | Self::Uninspected => "ambiguous or invalid HTTP/1.1 framing",
            Self::Unparsable => "invalid request",
            Self::HeadTooLarge => "request head too large",
            Self::InvalidHost(_) => "invalid Host header",
            Self::MissingHost => "a Host header is required",
            Self::DuplicateHost => "more than one Host header",
            Self::DotSegment => "dot segments in the path",
            Self::Connect => "CONNECT is not supported",
            Self::BodyTooLarge => "request body too large",
            Self::BodyTimeout => "request body timed out",
            Self::InvalidBody => "invalid request body",
            Self::InvalidForwarded => "invalid forwarding header",
        }
    }

    /// Whether the connection must close after the response: the framing of what follows on
    /// an HTTP/1.1 connection cannot be trusted.
    fn closes_connection(self) -> bool {
        matches!(self, Self::Framing(_) | Self::Uninspected)
    }

    /// The refusal for a hyper connection error, if the error is hyper's parser refusing a
    /// request head (hyper has answered it). `guard` is the smuggling guard's reason for the
    /// same head, when it had one: it names the problem more precisely than hyper's error.
    pub(crate) fn from_hyper(error: &hyper::Error, guard: Option<RejectReason>) -> Option<Self> {
        if !error.is_parse() {
            return None;
        }
        Some(match guard {
            Some(r) => Self::Framing(r),
            None if error.is_parse_too_large() => Self::HeadTooLarge,
            None => Self::Unparsable,
        })
    }
}

/// Who was refused, for the log line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refused<'a> {
    /// The client's address.
    pub(crate) client: SocketAddr,
    /// The listener's label (its bound address).
    pub(crate) listener: &'a str,
}

/// The response for `refusal`, counted and (rate-limited) logged.
pub(crate) fn refuse(refusal: Refusal, who: Refused<'_>) -> Response<ProxyBody> {
    record(refusal, who);
    let mut res = plain(refusal.status(), refusal.detail());
    if refusal.closes_connection() {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if refusal == Refusal::Connect {
        res.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
        );
    }
    res
}

/// Counts `refusal` in `keyward_http_requests_rejected_total` and logs it unless a line for
/// the same reason was logged within [`LOG_INTERVAL_MS`].
pub(crate) fn record(refusal: Refusal, who: Refused<'_>) {
    let Some(slot) = SLOTS.iter().find(|s| s.label == refusal.label()) else {
        // Every label has a slot (a unit test checks that); still, never lose the count.
        metrics()
            .http_requests_rejected
            .with_label_values(&[refusal.label()])
            .inc();
        return;
    };
    slot.counter.inc();
    if let Some(suppressed) = slot.gate.admit(now_ms(), LOG_INTERVAL_MS) {
        let detail = match refusal {
            Refusal::InvalidHost(e) => e.to_string(),
            other => other.detail().to_owned(),
        };
        tracing::warn!(
            reason = refusal.label(),
            status = refusal.status().as_u16(),
            client = %who.client,
            listener = who.listener,
            detail = %detail,
            suppressed,
            "request refused (one line per reason every {}s; `suppressed`: refusals not logged since the last line)",
            LOG_INTERVAL_MS / 1000
        );
    }
}

/// Why a request that passed the checks got no upstream response.
#[derive(Debug)]
pub(crate) enum Unserved {
    /// No route matches the host and path, and the listener has no fallback pool.
    NoRoute,
    /// The route names a pool that does not exist.
    PoolMissing,
    /// The pool could not get a response from a server.
    Upstream(UpstreamError),
    /// The upstream switched protocols unasked, or to something other than WebSocket.
    UnexpectedSwitch,
}

impl Unserved {
    /// The status the client gets: `404` without a route, `503` without a healthy server,
    /// `504` for a slow server, `502` otherwise.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Upstream(UpstreamError::NoServer) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(UpstreamError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::PoolMissing
            | Self::Upstream(UpstreamError::Connect | UpstreamError::Failed)
            | Self::UnexpectedSwitch => StatusCode::BAD_GATEWAY,
        }
    }

    /// The short text of the response body.
    fn detail(&self) -> &'static str {
        match self {
            Self::NoRoute => "no route for this host and path",
            Self::PoolMissing => "upstream pool missing",
            Self::Upstream(UpstreamError::NoServer) => "no healthy upstream server",
            Self::Upstream(UpstreamError::Connect) => "upstream unavailable",
            Self::Upstream(UpstreamError::Timeout) => "upstream timed out",
            Self::Upstream(UpstreamError::Failed) => "upstream failed",
            Self::UnexpectedSwitch => "unexpected protocol switch from upstream",
        }
    }
}

/// The response for a request the upstream side could not serve (not a refusal: neither
/// counted in `keyward_http_requests_rejected_total` nor logged here).
pub(crate) fn unserved(why: Unserved) -> Response<ProxyBody> {
    plain(why.status(), why.detail())
}

/// The answer of a plain-HTTP redirect listener: `308` to `location` (an `https://` URL).
pub(crate) fn redirect(location: HeaderValue) -> Response<ProxyBody> {
    let mut res = plain(StatusCode::PERMANENT_REDIRECT, "use HTTPS");
    res.headers_mut().insert(header::LOCATION, location);
    res
}

/// A short plain-text response, e.g. `502 Bad Gateway: upstream unavailable`.
pub(crate) fn plain(status: StatusCode, detail: &str) -> Response<ProxyBody> {
    let text = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        detail
    );
    let mut res = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Milliseconds since the first refusal of the process (any monotonic origin will do).
fn now_ms() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Lets one log line through per interval; counts the others.
#[derive(Debug, Default)]
pub(crate) struct LogGate {
    /// When the last line was let through, plus one (0: never).
    last_ms: AtomicU64,
    /// Refusals not logged, ever (only grows, so a racing winner cannot erase a count).
    suppressed: AtomicU64,
    /// `suppressed` as of the last line let through.
    reported: AtomicU64,
}

impl LogGate {
    /// `Some(n)` when a line may be logged at `now_ms` (`n`: calls suppressed since the last
    /// line), `None` when one was let through less than `interval_ms` ago. Of concurrent
    /// callers, one wins.
    pub(crate) fn admit(&self, now_ms: u64, interval_ms: u64) -> Option<u64> {
        let stamp = now_ms.saturating_add(1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || stamp.saturating_sub(last) >= interval_ms;
        if due
            && self
                .last_ms
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let total = self.suppressed.load(Ordering::Relaxed);
            let before = self.reported.fetch_max(total, Ordering::Relaxed);
            return Some(total.saturating_sub(before));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// One reason's counter (resolved once) and log gate.
struct Slot {
    label: &'static str,
    counter: IntCounter,
    gate: LogGate,
}

/// Every `reason` label (a unit test checks that this is exactly the set of labels).
const LABELS: [&str; 23] = [
    "content_length_with_transfer_encoding",
    "duplicate_content_length",
    "invalid_content_length",
    "duplicate_transfer_encoding",
    "invalid_transfer_encoding",
    "unsupported_transfer_coding",
    "transfer_encoding_in_http10",
    "obs_fold",
    "malformed_head",
    "too_many_headers",
    "missing_host",
    "duplicate_host",
    "invalid_chunked_framing",
    "uninspected",
    "unparsable",
    "head_too_large",
    "invalid_host",
    "dot_segment",
    "connect_method",
    "body_too_large",
    "body_timeout",
    "invalid_body",
    "invalid_forwarded",
];

static SLOTS: LazyLock<Vec<Slot>> = LazyLock::new(|| {
    LABELS
        .iter()
        .map(|label| Slot {
            label,
            counter: metrics().http_requests_rejected.with_label_values(&[label]),
            gate: LogGate::default(),
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    fn every_refusal() -> Vec<Refusal> {
        use RejectReason::*;
        let framing = [
            ContentLengthWithTransferEncoding,
            DuplicateContentLength,
            InvalidContentLength,
            DuplicateTransferEncoding,
            InvalidTransferEncoding,
            UnsupportedTransferCoding,
            TransferEncodingInHttp10,
            ObsFold,
            MalformedHead,
            TooManyHeaders,
            MissingHost,
            DuplicateHost,
            InvalidChunkedFraming,
        ];
        let mut all: Vec<Refusal> = framing.into_iter().map(Refusal::Framing).collect();
        all.extend([
            Refusal::Uninspected,
            Refusal::Unparsable,
            Refusal::HeadTooLarge,
            Refusal::InvalidHost(AuthorityError::EmptyLabel),
            Refusal::MissingHost,
            Refusal::DuplicateHost,
            Refusal::DotSegment,
            Refusal::Connect,
            Refusal::BodyTooLarge,
            Refusal::BodyTimeout,
            Refusal::InvalidBody,
            Refusal::InvalidForwarded,
        ]);
        all
    }

    #[test]
    fn every_refusal_has_a_slot_a_client_error_status_and_a_body() {
        let mut labels: Vec<&str> = every_refusal().iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        let mut listed = LABELS.to_vec();
        listed.sort_unstable();
        assert_eq!(
            labels, listed,
            "LABELS must list every refusal's label, once"
        );
        for r in every_refusal() {
            assert!(
                SLOTS.iter().any(|s| s.label == r.label()),
                "{r:?}: label {} has no slot",
                r.label()
            );
            assert!(
                r.status().is_client_error() || r.status() == StatusCode::NOT_IMPLEMENTED,
                "{r:?}"
            );
            let res = refuse(
                r,
                Refused {
                    client: SocketAddr::from(([127, 0, 0, 1], 1)),
                    listener: "test",
                },
            );
            assert_eq!(res.status(), r.status());
            assert_eq!(
                res.headers().contains_key(header::CONNECTION),
                matches!(r, Refusal::Framing(_) | Refusal::Uninspected),
                "{r:?}"
            );
        }
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let counter = |label: &str| {
            metrics()
                .http_requests_rejected
                .with_label_values(&[label])
                .get()
        };
        let before = counter("dot_segment");
        let who = Refused {
            client: SocketAddr::from(([127, 0, 0, 1], 1)),
            listener: "test",
        };
        record(Refusal::DotSegment, who);
        record(Refusal::DotSegment, who);
        assert!(counter("dot_segment") >= before + 2);
    }

    #[test]
    fn the_gate_lets_one_line_through_per_interval_and_counts_the_rest() {
        let gate = LogGate::default();
        assert_eq!(gate.admit(0, 1000), Some(0));
        assert_eq!(gate.admit(1, 1000), None);
        assert_eq!(gate.admit(999, 1000), None);
        assert_eq!(gate.admit(1000, 1000), Some(2));
        assert_eq!(gate.admit(1500, 1000), None);
        assert_eq!(gate.admit(5000, 1000), Some(1));
        assert_eq!(gate.admit(5000, 1000), None);
    }

    #[test]
    fn concurrent_callers_let_exactly_one_line_through() {
        let gate = std::sync::Arc::new(LogGate::default());
        let reports: Vec<u64> = (0..8)
            .map(|_| {
                let gate = gate.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter_map(|_| gate.admit(7, 60_000))
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(reports.len(), 1, "one line let through: {reports:?}");
        assert_eq!(gate.suppressed.load(Ordering::Relaxed), 7999);
        // The winner reports the losers it saw (racing ones may already count); the next line
        // reports the rest, so the two together account for every suppressed call, once.
        let next = gate.admit(60_007, 60_000).expect("due after the interval");
        assert_eq!(reports[0] + next, 7999);
    }

    #[test]
    fn unserved_requests_get_gateway_statuses() {
        let cases = [
            (Unserved::NoRoute, 404),
            (Unserved::PoolMissing, 502),
            (Unserved::Upstream(UpstreamError::NoServer), 503),
            (Unserved::Upstream(UpstreamError::Connect), 502),
            (Unserved::Upstream(UpstreamError::Timeout), 504),
            (Unserved::Upstream(UpstreamError::Failed), 502),
            (Unserved::UnexpectedSwitch, 502),
        ];
        for (why, status) in cases {
            assert_eq!(unserved(why).status(), status);
        }
    }

    #[test]
    fn error_bodies_are_short_plain_text() {
        let r = plain(StatusCode::BAD_GATEWAY, "upstream unavailable");
        assert_eq!(r.status(), 502);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
