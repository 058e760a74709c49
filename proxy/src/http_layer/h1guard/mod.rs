//! HTTP/1.1 request-smuggling guard: a read-only inspector of the request byte stream.
//!
//! hyper parses HTTP/1.1 requests well, but two of its choices are invisible to our service:
//! a request carrying both `Content-Length` and `Transfer-Encoding` is silently framed by the
//! chunked coding, and repeated `Content-Length` lines with equal values are silently merged.
//! A proxy must refuse both, because the next hop may frame the same bytes differently.
//! [`H1Guard`] sits between the TLS stream and hyper's `http1` connection, sees every byte
//! hyper reads (it never changes, adds or withholds one) and follows the framing of the
//! request stream itself. For each request head it pushes a [`Verdict`] into a per-connection
//! queue that the service reads through [`GuardVerdicts`] before forwarding anything.
//!
//! What is enforced (RFC 9112):
//!
//! - §2.2: empty lines before a request line are skipped; a bare LF ends a head line (as
//!   hyper/httparse accept it); a head larger than `max_head_bytes` is not inspected (hyper
//!   answers `431` itself when configured with the same limit).
//! - §5.2: obsolete line folding (a field line starting with SP or HTAB) is rejected, in the
//!   head and in the trailer section; so is any head httparse refuses (space before the colon,
//!   invalid bytes, more than 128 field lines). Also §3.2: an HTTP/1.1 request without `Host`
//!   or with more than one `Host` line is rejected.
//! - §6.1: `Transfer-Encoding` together with `Content-Length` is rejected (the "MAY reject"
//!   branch); so are `Transfer-Encoding` in an HTTP/1.0 request, a second `Transfer-Encoding`
//!   line, `chunked` applied twice, and a coding other than `chunked` (reported as
//!   [`RejectReason::UnsupportedTransferCoding`], a `501`, when `chunked` is still final).
//! - §6.3: a final coding other than `chunked` is rejected (item 4); `Content-Length` must be
//!   exactly one field line whose value is `1*DIGIT` fitting in a `u64`: lists (`5, 5`) and
//!   repeated lines are rejected even when the values agree (item 5 allows merging; a proxy
//!   should not). The body is then skipped by that length; without either field the body is
//!   empty (item 6).
//! - §7.1: the chunked body is checked against the grammar: `chunk-size` is `1*HEXDIG` that
//!   fits in a `u64`, optionally followed by `BWS ";"` extensions (under 16 KiB of extension
//!   bytes per message, hyper's limit, no CTLs), then CRLF, the data, CRLF; `0` ends the chunks,
//!   then trailer field lines (`token ":" value` CRLF, at most `max_head_bytes` in all) and the
//!   final CRLF. Whitespace after a chunk size that is not followed by `;` (hyper tolerates it)
//!   is rejected: it is not in the grammar.
//!
//! A request whose head is rejected stops inspection: its framing is ambiguous, so nothing
//! after it on the connection can be trusted, and the service must answer `400` (or the
//! reason's [`RejectReason::status`]) with `Connection: close`. Invalid chunked framing marks
//! the *current* request's body as rejected ([`GuardVerdicts::body_verdict`]) and also stops
//! inspection. An HTTP/1.1 request with `Upgrade` and `Connection: upgrade` (RFC 9110 §7.8),
//! or with the method `CONNECT`, stops inspection after its head, since after a `101`/`2xx`
//! the stream is no longer HTTP. Any request head
//! that arrives after inspection stopped gets [`Verdict::Uninspected`]: the service should
//! refuse it (fail closed), so a refused upgrade should be answered with `Connection: close`.
//!
//! Using it from the connection task and the service:
//!
//! ```ignore
//! let (io, verdicts) = H1Guard::new(tls, max_header_bytes); // same limit as hyper's
//! let service = service_fn(move |req| {
//!     let verdicts = verdicts.clone();
//!     async move {
//!         let head = verdicts.next_head(); // one call per request, in order
//!         if !head.verdict.is_ok() {
//!             return bad_request_and_close(head.verdict); // nothing is forwarded
//!         }
//!         let body = req.into_body().collect().await?; // buffer the whole body
//!         if !verdicts.body_verdict(head.request).is_ok() {
//!             return bad_request_and_close(Verdict::Reject(RejectReason::InvalidChunkedFraming));
//!         }
//!         forward(parts, body).await
//!     }
//! });
//! http1::Builder::new().max_header_size(max_header_bytes)
//!     .serve_connection(TokioIo::new(io), service).with_upgrades().await
//! ```
//!
//! Why the queue lines up with hyper's requests: hyper hands a request to the service only
//! after it has read (through this guard) the whole head, and requests on one HTTP/1.1
//! connection are served one at a time in order, so the n-th `next_head()` call gets the n-th
//! head the guard saw. A head hyper refuses itself (a parse error, `431`) ends the connection,
//! so the queue never falls out of step with a request that reaches the service.
//!
//! Cost: the common case (a whole head in one read) is one httparse pass over the read buffer
//! in place, a few case-insensitive name comparisons and one uncontended per-connection mutex
//! lock. A head split across reads is copied into a buffer that is only grown up to the end of
//! that head; the end is found incrementally, so a head sent one byte at a time is not
//! re-parsed. Bodies cost nothing per byte beyond chunk-size lines.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) mod chunked;
pub(crate) mod head;
#[cfg(test)]
mod tests;

use chunked::Chunk;
use head::{EndOfHead, Framing};

/// Why a request is refused. Every reason is a framing ambiguity that a later hop could
/// resolve differently (request smuggling) or a head that is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RejectReason {
    /// Both `Content-Length` and `Transfer-Encoding` are present (RFC 9112 §6.1).
    ContentLengthWithTransferEncoding,
    /// More than one `Content-Length` field line, or a list value such as `5, 5`, even when
    /// all values agree (RFC 9112 §6.3 item 5; a proxy does not merge them).
    DuplicateContentLength,
    /// A `Content-Length` value that is not `1*DIGIT` or does not fit in a `u64` (RFC 9110
    /// §8.6).
    InvalidContentLength,
    /// More than one `Transfer-Encoding` field line.
    DuplicateTransferEncoding,
    /// `Transfer-Encoding` whose final coding is not `chunked`, that applies `chunked` twice,
    /// or that is empty (RFC 9112 §6.1, §6.3 item 4).
    InvalidTransferEncoding,
    /// `Transfer-Encoding` applies a coding other than `chunked` before the final `chunked`
    /// (e.g. `gzip, chunked`); the proxy does not implement it (RFC 9112 §6.1: `501`).
    UnsupportedTransferCoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1: faulty framing).
    TransferEncodingInHttp10,
    /// A field line that starts with SP or HTAB, i.e. obsolete line folding (RFC 9112 §5.2).
    ObsFold,
    /// httparse refused the head (bad request line, bad field name or value, whitespace
    /// before a colon, a lone CR, ...).
    MalformedHead,
    /// More than 128 field lines in the head.
    TooManyHeaders,
    /// An HTTP/1.1 request without a `Host` field (RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` field line (RFC 9112 §3.2).
    DuplicateHost,
    /// The chunked body does not follow RFC 9112 §7.1 (bad chunk size, missing CRLF after
    /// the chunk data, bad trailer line, too many extension or trailer bytes). Found while
    /// the body is read, so it is reported by [`GuardVerdicts::body_verdict`].
    InvalidChunkedFraming,
}

impl RejectReason {
    /// The status the client should get: `501` for [`Self::UnsupportedTransferCoding`],
    /// `431` for [`Self::TooManyHeaders`], `400` for everything else. The response must also
    /// close the connection (`Connection: close`).
    pub(crate) fn status(self) -> http::StatusCode {
        match self {
            Self::UnsupportedTransferCoding => http::StatusCode::NOT_IMPLEMENTED,
            Self::TooManyHeaders => http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// A short stable name, e.g. for a metrics label: `"content_length_with_transfer_encoding"`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            Self::DuplicateContentLength => "duplicate_content_length",
            Self::InvalidContentLength => "invalid_content_length",
            Self::DuplicateTransferEncoding => "duplicate_transfer_encoding",
            Self::InvalidTransferEncoding => "invalid_transfer_encoding",
            Self::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Self::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            Self::ObsFold => "obs_fold",
            Self::MalformedHead => "malformed_head",
            Self::TooManyHeaders => "too_many_headers",
            Self::MissingHost => "missing_host",
            Self::DuplicateHost => "duplicate_host",
            Self::InvalidChunkedFraming => "invalid_chunked_framing",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the guard concluded about one request (its head, or its body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The framing is unambiguous; the request may be forwarded.
    Ok,
    /// The request must be refused with `reason.status()` and the connection closed.
    Reject(RejectReason),
    /// The guard did not inspect this request: inspection had stopped (after a rejected
    /// request, an upgrade or `CONNECT` request, a head over `max_head_bytes`), or hyper
    /// delivered a head the guard never completed. Refuse it (fail closed).
    Uninspected,
}

impl Verdict {
    /// True only for [`Verdict::Ok`].
    pub(crate) fn is_ok(self) -> bool {
        self == Self::Ok
    }
}

/// Identifies one request on a connection (0 for the first head the guard saw), so the
/// service can ask about its body later. [`RequestId::UNKNOWN`] for uninspected requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestId(u64);

impl RequestId {
    /// The id of a request the guard did not inspect.
    pub(crate) const UNKNOWN: Self = Self(u64::MAX);
}

/// The head verdict of the next request, as returned by [`GuardVerdicts::next_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadVerdict {
    /// Pass to [`GuardVerdicts::body_verdict`] once the body has been read.
    pub(crate) request: RequestId,
    /// Whether the head may be forwarded.
    pub(crate) verdict: Verdict,
}

/// The verdicts of one connection, shared by the [`H1Guard`] (which pushes them) and the
/// service (which pops them). Cloning is cheap (an `Arc`); the lock is per connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct GuardVerdicts {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Head verdicts not yet taken by the service, oldest first. Bounded by how far hyper
    /// reads ahead (its read buffer), since the guard only sees what hyper reads.
    heads: VecDeque<HeadVerdict>,
    /// The request whose chunked body turned out invalid (inspection stops there, so there
    /// is at most one).
    bad_body: Option<RequestId>,
    /// The bytes read so far end inside a request (a head, a body) or inspection stopped.
    mid_request: bool,
    /// Bytes written since the last completed flush.
    unflushed: bool,
}

impl GuardVerdicts {
    /// The head verdict of the next request, in the order hyper delivers requests to the
    /// service. Call it exactly once per request, first thing in the service. Never blocks
    /// on I/O: when the guard has no verdict, the answer is [`Verdict::Uninspected`].
    pub(crate) fn next_head(&self) -> HeadVerdict {
        self.lock().heads.pop_front().unwrap_or(HeadVerdict {
            request: RequestId::UNKNOWN,
            verdict: Verdict::Uninspected,
        })
    }

    /// Whether the body of `request` was framed correctly. Meaningful once the service has
    /// read the whole body (hyper cannot finish a body before the guard has seen its last
    /// byte): [`Verdict::Reject`] with [`RejectReason::InvalidChunkedFraming`] if the
    /// chunked framing was invalid, [`Verdict::Uninspected`] for [`RequestId::UNKNOWN`],
    /// otherwise [`Verdict::Ok`].
    pub(crate) fn body_verdict(&self, request: RequestId) -> Verdict {
        if request == RequestId::UNKNOWN {
            return Verdict::Uninspected;
        }
        if self.lock().bad_body == Some(request) {
            Verdict::Reject(RejectReason::InvalidChunkedFraming)
        } else {
            Verdict::Ok
        }
    }

    /// The guard's reason for refusing the oldest head the service never took, if it refused
    /// it. After hyper ended the connection with a parse error, that is the head hyper refused
    /// (hyper answered it itself, so the service never asked).
    pub(crate) fn unserved_rejection(&self) -> Option<RejectReason> {
        match self.lock().heads.front() {
            Some(HeadVerdict {
                verdict: Verdict::Reject(reason),
                ..
            }) => Some(*reason),
            _ => None,
        }
    }

    /// Whether the connection is between requests: every byte read so far belongs to
    /// complete requests, the service has taken every head read (so hyper holds no part of
    /// a request), and everything written was flushed. An HTTP/1.1 connection may then rest
    /// (drop hyper's state).
    pub(crate) fn between_requests(&self) -> bool {
        let shared = self.lock();
        !shared.mid_request && !shared.unflushed && shared.heads.is_empty()
    }

    fn set_unflushed(&self, unflushed: bool) {
        self.lock().unflushed = unflushed;
    }

    fn set_mid_request(&self, mid: bool) {
        self.lock().mid_request = mid;
    }

    fn push_head(&self, head: HeadVerdict) {
        self.lock().heads.push_back(head);
    }

    fn reject_body(&self, request: RequestId) {
        self.lock().bad_body = Some(request);
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // The critical sections cannot panic halfway, so a poisoned state is still whole.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An `AsyncRead + AsyncWrite` wrapper that inspects the HTTP/1.1 request bytes read through
/// it (see the module documentation). Writes pass through untouched.
#[derive(Debug)]
pub(crate) struct H1Guard<IO> {
    io: IO,
    inspector: Inspector,
    /// hyper wrote since its last completed flush.
    unflushed: bool,
}

impl<IO> H1Guard<IO> {
    /// Wraps `io`. `max_head_bytes` bounds one request head (request line, field lines and
    /// the empty line, leading empty lines not counted); use hyper's `max_header_size` so
    /// hyper, not the guard, gives up first. Returns the guard and the handle the service
    /// reads verdicts from.
    pub(crate) fn new(io: IO, max_head_bytes: usize) -> (Self, GuardVerdicts) {
        let verdicts = GuardVerdicts::default();
        let inspector = Inspector::new(max_head_bytes, verdicts.clone());
        (
            Self {
                io,
                inspector,
                unflushed: false,
            },
            verdicts,
        )
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for H1Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.inspector.feed(&buf.filled()[before..]);
        this.inspector.publish_position();
        Poll::Ready(Ok(()))
    }
}

impl<IO> H1Guard<IO> {
    /// Notes that hyper is writing (or flushed all it wrote), for
    /// [`GuardVerdicts::between_requests`]: publishes only changes, twice per response.
    fn set_unflushed(&mut self, unflushed: bool) {
        if self.unflushed != unflushed {
            self.unflushed = unflushed;
            self.inspector.verdicts.set_unflushed(unflushed);
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for H1Guard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.set_unflushed(true);
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.set_unflushed(true);
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = ready!(Pin::new(&mut this.io).poll_flush(cx));
        if flushed.is_ok() {
            this.set_unflushed(false);
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where the inspector is in the request stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before or inside a request head.
    Head,
    /// Skipping a `Content-Length` body; `remaining` > 0.
    Body { remaining: u64 },
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not inspecting any more (rejected request, upgrade, oversized head).
    Stopped,
}

/// The sans-I/O core of [`H1Guard`]: fed the bytes read, in order.
#[derive(Debug)]
struct Inspector {
    state: State,
    /// What [`GuardVerdicts::between_requests`] was last told.
    published_mid_request: bool,
    /// The part of a head received so far, when it spans reads; empty otherwise.
    head: Vec<u8>,
    end_of_head: EndOfHead,
    max_head_bytes: usize,
    /// The id the next head gets.
    next_request: u64,
    /// The request whose body is being skipped.
    current: RequestId,
    chunk_extension_bytes: usize,
    trailer_bytes: usize,
    verdicts: GuardVerdicts,
}

impl Inspector {
    fn new(max_head_bytes: usize, verdicts: GuardVerdicts) -> Self {
        Self {
            state: State::Head,
            published_mid_request: false,
            head: Vec::new(),
            end_of_head: EndOfHead::Line,
            max_head_bytes,
            next_request: 0,
            current: RequestId::UNKNOWN,
            chunk_extension_bytes: 0,
            trailer_bytes: 0,
            verdicts,
        }
    }

    /// Tells the service side whether the bytes read so far end between requests (only
    /// when that changed: the lock is taken at most twice per request).
    fn publish_position(&mut self) {
        let mid = !(matches!(self.state, State::Head) && self.head.is_empty());
        if mid != self.published_mid_request {
            self.published_mid_request = mid;
            self.verdicts.set_mid_request(mid);
        }
    }

    /// Inspects the next bytes of the request stream.
    fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            input = match self.state {
                State::Stopped => return,
                State::Head => self.feed_head(input),
                State::Body { remaining } => {
                    let skip =
                        usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                    let remaining = remaining - skip as u64;
                    self.state = if remaining == 0 {
                        State::Head
                    } else {
                        State::Body { remaining }
                    };
                    &input[skip..]
                }
                State::Chunked(chunk) => self.feed_chunked(chunk, input),
            };
        }
    }

    /// Records the verdict of a complete head and sets up the body.
    fn finish_head(&mut self, judged: Result<Framing, RejectReason>) {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let framing = match judged {
            Ok(framing) => framing,
            Err(reason) => {
                self.verdicts.push_head(HeadVerdict {
                    request,
                    verdict: Verdict::Reject(reason),
                });
                self.stop(reason.as_str());
                return;
            }
        };
        self.verdicts.push_head(HeadVerdict {
            request,
            verdict: Verdict::Ok,
        });
        self.current = request;
        self.state = match framing {
            Framing::Empty | Framing::Length(0) => State::Head,
            Framing::Length(remaining) => State::Body { remaining },
            Framing::Chunked => {
                self.chunk_extension_bytes = 0;
                self.trailer_bytes = 0;
                State::Chunked(Chunk::Size {
                    size: 0,
                    digits: false,
                })
            }
            Framing::Opaque => {
                self.stop("upgrade or CONNECT request");
                return;
            }
        };
    }

    fn stop(&mut self, why: &'static str) {
        tracing::debug!(why, "HTTP/1.1 request inspection stopped");
        self.state = State::Stopped;
    }
}

/// Feeds `data` to a fresh inspector in pieces of `split` bytes (at least 1) and drains every
/// verdict: the fuzz target's entry point. Never panics on any input.
pub(crate) fn inspect_all(data: &[u8], split: usize, max_head_bytes: usize) -> Vec<Verdict> {
    let verdicts = GuardVerdicts::default();
    let mut inspector = Inspector::new(max_head_bytes.max(64), verdicts.clone());
    for piece in data.chunks(split.max(1)) {
        inspector.feed(piece);
    }
    let mut out = Vec::new();
    loop {
        let head = verdicts.next_head();
        if head.request == RequestId::UNKNOWN {
            break;
        }
        out.push(head.verdict);
        let _ = verdicts.body_verdict(head.request);
    }
    out
}
