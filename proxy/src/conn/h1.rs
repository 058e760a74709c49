//! An HTTP/1.1 client connection: hyper while requests come, and a resting state in between.
//!
//! hyper keeps a read buffer and a write buffer of 8 KiB each for as long as its connection
//! lives, also while a keep-alive connection waits for its next request. Like nginx, which
//! frees its request buffers once a response is sent and nothing more was read, a connection
//! rests once it has been quiet between two requests for `keepalive_rest_ms` (default 0: at
//! once): the hyper connection is taken apart (its buffers freed; what it had read is kept
//! for replay), and the task waits for the next byte with a one-byte read. That byte (and
//! any read-ahead) is replayed into a new hyper connection. The smuggling guard sits under
//! the replay, so it sees every byte once; resting happens only when the guard says the bytes
//! read so far end between requests, every head was taken by the service, no response body
//! is still being sent and everything written was flushed. While resting, the connection
//! closes as it would in hyper: after the smaller of the idle and header timeouts without
//! activity, and at the drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::accept::ListenerState;
use super::io::{Activity, Prefixed};
use super::lifecycle::IDLE_GRACE;
use crate::http_layer::h1guard::{GuardVerdicts, H1Guard};
use crate::http_layer::handler::Handler;

/// Serves HTTP/1.1 on `io` (already behind the smuggling guard that fills `verdicts`).
pub(super) async fn serve_h1<IO>(
    st: &ListenerState,
    io: H1Guard<IO>,
    verdicts: &GuardVerdicts,
    handler: Arc<Handler>,
    activity: &Arc<Activity>,
    draining: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = Duration::from_millis(st.cfg.idle_timeout_ms);
    // The request future is boxed: hyper keeps a slot the size of the service future for
    // the whole connection; boxed, the request's state (~3 KiB) exists only while a request
    // is in flight.
    let service = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        Box::pin(async move { handler.handle(req).await })
    });
    // The header timeout runs from the first byte of a request head (slowloris); the idle
    // timeout closes keep-alive connections with no request in flight.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(st.cfg.client_header_timeout_ms))
        .max_buf_size(st.cfg.max_header_bytes.max(8192));
    // hyper's header timeout also runs while a keep-alive connection waits for its next
    // request, so a quiet connection ends after the smaller of the two, hyper or not.
    let limit = idle.min(Duration::from_millis(st.cfg.client_header_timeout_ms));
    let rest_after = Duration::from_millis(st.cfg.keepalive_rest_ms);
    let ready = || {
        activity.in_flight.load(Ordering::Relaxed) == 0
            && verdicts.between_requests()
            && activity.not_responding()
    };
    // One watcher for the connection's life (its timer re-arms only when it fires, its drain
    // registration is made once): not one per request.
    let mut stop = Box::pin(async {
        tokio::select! {
            () = activity.idle(limit) => Stop::Idle,
            _ = draining.wait_for(|d| *d) => Stop::Drain,
        }
    });
    let mut io = Prefixed::new(Vec::new(), io);
    loop {
        // Boxed: while resting, the task holds a pointer, not hyper's connection state.
        let mut conn = Box::pin(
            builder
                .serve_connection(hyper_util::rt::TokioIo::new(io), service.clone())
                .with_upgrades(),
        );
        // Between requests: checked each time hyper has done what it can (the condition
        // changes only then); a timer runs only for a nonzero `keepalive_rest_ms`.
        let rest = async {
            loop {
                std::future::poll_fn(|_| {
                    if ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                if rest_after.is_zero() {
                    return;
                }
                activity.idle(rest_after).await;
                if ready() {
                    return;
                }
            }
        };
        let stopped = tokio::select! {
            biased;
            r = conn.as_mut() => return r,
            () = rest => None,
            why = stop.as_mut() => Some(why),
        };
        if let Some(why) = stopped {
            // HTTP/1.1: close after the current response. A drain waits for it (the drain
            // deadline bounds that); an idle connection that ignores it goes after a grace.
            conn.as_mut().graceful_shutdown();
            return match why {
                Stop::Drain => conn.await,
                Stop::Idle => tokio::time::timeout(IDLE_GRACE, conn)
                    .await
                    .unwrap_or(Ok(())),
            };
        }
        // Between requests, nothing in flight: take hyper apart. `None` only after an
        // upgrade, which ends the connection future first.
        let Some(parts) = std::pin::Pin::into_inner(conn).into_parts() else {
            return Ok(());
        };
        let hyper::server::conn::http1::Parts {
            io: hyper_io,
            read_buf,
            ..
        } = parts;
        io = hyper_io.into_inner();
        // Empty lines before a request line are ignored (RFC 9112 §2.2): hyper holds them
        // unparsed, and replaying them would make a new hyper connection that rests at once
        // on the same bytes, for ever. Only what follows them is replayed.
        io.replay(after_blank_lines(&read_buf));
        // Now, not at the end of the loop body: `read_buf` shares hyper's whole read buffer.
        drop(read_buf);
        if !io.has_replay() {
            let resting = GaugeHeld::new(&st.resting);
            let mut byte = [0u8; 1];
            let woke = tokio::select! {
                biased;
                read = io.read(&mut byte) => matches!(read, Ok(1)),
                _ = stop.as_mut() => {
                    // Idle or draining: close it as hyper would (TLS close_notify, then FIN).
                    let _ = tokio::time::timeout(IDLE_GRACE, io.shutdown()).await;
                    false
                }
            };
            drop(resting);
            if !woke {
                // The client closed the connection (or it failed), or it was closed above.
                return Ok(());
            }
            io.replay(&byte);
        }
    }
}

/// `buf` without its leading CR and LF bytes.
fn after_blank_lines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(buf.len());
    &buf[start..]
}

/// Why a connection's watcher ended it.
enum Stop {
    /// Quiet, with no request in flight, for the idle limit.
    Idle,
    /// The server drains.
    Drain,
}

/// One in a gauge while it lives (also when the task is dropped at the drain deadline).
struct GaugeHeld<'a>(&'a prometheus::IntGauge);

impl<'a> GaugeHeld<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        GaugeHeld(gauge)
    }
}

impl Drop for GaugeHeld<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::after_blank_lines;

    #[test]
    fn only_leading_empty_lines_are_dropped_from_the_replay() {
        assert_eq!(after_blank_lines(b"\n"), b"");
        assert_eq!(after_blank_lines(b"\r\n\r\n"), b"");
        assert_eq!(after_blank_lines(b""), b"");
        assert_eq!(
            after_blank_lines(b"\r\nGET / HTTP/1.1\r\n\r\n"),
            b"GET / HTTP/1.1\r\n\r\n"
        );
        assert_eq!(after_blank_lines(b"GET /\r\n"), b"GET /\r\n");
    }
}
