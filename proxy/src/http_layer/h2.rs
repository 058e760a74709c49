//! HTTP/2 client connections, served with the `h2` crate directly.
//!
//! Why not hyper's HTTP/2 server: it never sends an interim `100 Continue`, so a client that
//! sends `expect: 100-continue` (curl does for bodies over 1 MiB) waits for its own timeout
//! (curl: 1 s) before sending the body (hyper issue #2743). RFC 9110 §10.1.1: a server must
//! either answer the request at once or send `100` before it reads the body. Over HTTP/1.1
//! hyper sends the `100` when the service first reads the body; this module does the same
//! for HTTP/2 with `h2::server::SendResponse::send_informational`, which hyper does not
//! expose. A request the proxy refuses before reading the body (no route, `413` by
//! `content-length`, a bad Host) gets its final response without a `100`, as over HTTP/1.1;
//! the stream is then reset with `NO_ERROR` (RFC 9113 §8.1) once the client has ended its
//! side, or after [`EARLY_RESPONSE_LINGER`].
//!
//! The rest is what hyper's server did: the same settings (1 MiB stream and connection
//! windows, 16 KiB frames, 200 concurrent streams, 400 KiB send buffer, `max_header_bytes` as
//! `SETTINGS_MAX_HEADER_LIST_SIZE`), one task per stream, flow-control capacity released as
//! the request body is read, the response body sent as the client's window allows, trailers,
//! connection-specific response headers removed (RFC 9113 §8.2.2), `Date` added when absent,
//! `content-length` from an exact body size, a stream reset by the client drops its request,
//! and graceful shutdown with GOAWAY.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Notify};

use super::body::ProxyBody;
use super::headers::strip_hop_by_hop;
use crate::http_layer::handler::Handler;

/// hyper's HTTP/2 server defaults, kept.
const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
const CONNECTION_WINDOW_BYTES: u32 = 1024 * 1024;
const MAX_FRAME_BYTES: u32 = 16 * 1024;
const MAX_CONCURRENT_STREAMS: u32 = 200;
const MAX_SEND_BUFFER_BYTES: usize = 400 * 1024;
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// How long a stream answered before its request ended waits for the client to end it.
const EARLY_RESPONSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves one HTTP/2 connection until the client closes it, an error ends it, or `shutdown`
/// is notified (then: GOAWAY, and in-flight streams finish). `max_header_list_bytes`: the
/// largest request head accepted.
///
/// # Errors
/// The connection-level `h2` error (protocol error, I/O error), if any.
pub(crate) async fn serve<IO>(
    io: IO,
    handler: Arc<Handler>,
    max_header_list_bytes: u32,
    shutdown: Arc<Notify>,
) -> Result<(), h2::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_send_buffer_size(MAX_SEND_BUFFER_BYTES)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .max_header_list_size(max_header_list_bytes);
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = tokio::select! {
        c = handshake => c?,
        // Asked to stop before the client's preface: nothing to drain.
        () = shutdown.notified() => return Ok(()),
    };
    let mut closing = false;
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    tokio::spawn(serve_stream(handler.clone(), req, respond));
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            () = shutdown.notified(), if !closing => {
                closing = true;
                conn.graceful_shutdown();
            }
        }
    }
}

/// Whether a request asks for `100 Continue` before it sends its body (RFC 9110 §10.1.1).
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// One stream: the request through the handler, `100 Continue` when the handler starts
/// reading a body the client holds back, then the response.
async fn serve_stream(
    handler: Arc<Handler>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, recv) = req.into_parts();
    let (wants_continue, mut continue_asked) =
        if !recv.is_end_stream() && expects_continue(&parts.headers) {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
    let (stash, mut stashed) = oneshot::channel();
    let body = StreamBody {
        recv: Some(recv),
        wants_continue,
        data_done: false,
        stash: Some(stash),
    };
    let handling = handler.handle(Request::from_parts(parts, body));
    tokio::pin!(handling);
    let answered = poll_fn(|cx| {
        if let Poll::Ready(Ok(res)) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(res));
        }
        if let Some(asked) = continue_asked.as_mut() {
            if let Poll::Ready(signal) = Pin::new(asked).poll(cx) {
                continue_asked = None;
                if signal.is_ok() {
                    let mut interim = Response::new(());
                    *interim.status_mut() = StatusCode::CONTINUE;
                    if let Err(e) = respond.send_informational(interim) {
                        tracing::debug!(error = %e, "HTTP/2 100 Continue not sent");
                    }
                }
            }
        }
        // The client reset the stream (or the connection failed): drop the request.
        if respond.poll_reset(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    let Some(res) = answered else {
        return;
    };
    let (mut head, body) = res.into_parts();
    strip_hop_by_hop(&mut head.headers);
    head.headers.remove(header::UPGRADE);
    if !head.headers.contains_key(header::DATE) {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
        {
            head.headers.insert(header::DATE, v);
        }
    }
    let end = body.is_end_stream();
    if !end {
        if let Some(n) = body.size_hint().exact() {
            head.headers
                .entry(header::CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(n));
        }
    }
    match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(send) if !end => send_body(send, body).await,
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/2 response not sent");
            respond.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    }
    // Answered before the whole request arrived (413, 404, a refusal): dropping the stream
    // now would reset it (NO_ERROR, RFC 9113 §8.1), and some clients (curl 7.88) then drop
    // the response they were reading. Let the client end its side first, for a little while.
    if let Ok(recv) = stashed.try_recv() {
        if !recv.is_end_stream() {
            let _ = tokio::time::timeout(EARLY_RESPONSE_LINGER, linger(recv)).await;
        }
    }
}

/// Waits for the client to end (or reset) a request stream whose body is no longer wanted.
/// Data is discarded without releasing flow-control capacity: the client can send no more
/// than its window.
async fn linger(mut recv: RecvStream) {
    poll_fn(|cx| loop {
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(_) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
}

/// Sends `body` on `send` as the client's flow-control window allows, then its trailers or
/// the end of the stream. A body error resets the stream (the client sees the response cut,
/// not a short body that looks whole).
async fn send_body(mut send: SendStream<Bytes>, mut body: ProxyBody) {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = poll_fn(|cx| send.poll_reset(cx)) => return,
        };
        let result = match frame {
            None => send.send_data(Bytes::new(), true),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; HTTP/2 stream reset");
                send.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    match send_data(&mut send, data, end).await {
                        Ok(()) if end => return,
                        Ok(()) => continue,
                        Err(e) => Err(e),
                    }
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => send.send_trailers(trailers),
                    Err(_) => continue, // An unknown frame kind: skip it.
                },
            },
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "HTTP/2 response body not sent");
        }
        return;
    }
}

/// Sends `data` in pieces as capacity is granted; the last piece carries END_STREAM if `end`.
async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if end {
            send.send_data(data, true)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(granted) => granted?,
            // The stream can no longer send: the client reset it.
            None => return Ok(()),
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}

/// A request body read from an HTTP/2 stream. Its first poll asks the stream task to send
/// `100 Continue`, when the client asked for one. Dropped, it hands the stream back to the
/// stream task (`stash`), which decides when the stream may be reset.
pub(crate) struct StreamBody {
    recv: Option<RecvStream>,
    wants_continue: Option<oneshot::Sender<()>>,
    data_done: bool,
    stash: Option<oneshot::Sender<RecvStream>>,
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if let (Some(recv), Some(stash)) = (self.recv.take(), self.stash.take()) {
            let _ = stash.send(recv);
        }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if let Some(tx) = self.wants_continue.take() {
            let _ = tx.send(());
        }
        let this = &mut *self;
        let Some(recv) = this.recv.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.data_done {
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // The bytes are ours now: let the client send as many more.
                    let _ = recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.as_ref().is_none_or(RecvStream::is_end_stream)
    }
}
