//! I/O wrappers of a client connection: [`Prefixed`] replays the bytes read ahead of the TLS
//! stream (after a PROXY header), [`Tracked`] records in an [`Activity`] when bytes last moved
//! and how many requests are in flight, for the idle timeout ([`super::drive`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read ahead, replayed first: what followed a PROXY header (ahead of the TLS stream),
/// and on a resting HTTP/1.1 connection what hyper had read and the byte that woke it.
pub(crate) struct Prefixed<IO> {
    prefix: Vec<u8>,
    pos: usize,
    inner: IO,
}

impl<IO> Prefixed<IO> {
    /// Reads `prefix` first, then `inner`.
    pub(crate) fn new(prefix: Vec<u8>, inner: IO) -> Prefixed<IO> {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<IO> Prefixed<IO> {
    /// Whether bytes are waiting to be replayed.
    pub(crate) fn has_replay(&self) -> bool {
        self.pos < self.prefix.len()
    }

    /// Puts `bytes` in front of what is still to be replayed.
    pub(crate) fn replay(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut prefix = bytes.to_vec();
        prefix.extend_from_slice(&self.prefix[self.pos..]);
        self.prefix = prefix;
        self.pos = 0;
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                // Replayed: hold no memory for it.
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Records when bytes last moved on a connection and how many requests are in flight on it,
/// to close idle connections.
#[derive(Default)]
pub struct Activity {
    base: Option<Instant>,
    last_ms: AtomicU64,
    /// Requests in flight on the connection (an HTTP connection is idle only with none).
    pub(crate) in_flight: AtomicUsize,
    /// Response bodies not yet sent whole (an HTTP/1.1 connection rests only with none).
    pub(crate) responding: AtomicUsize,
}

impl Activity {
    /// A connection's activity, starting now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Some(Instant::now()),
            ..Activity::default()
        })
    }
    /// Counts a request in flight (the connection is not idle) until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> ActiveRequest {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    /// Counts a response body being sent until the guard is dropped.
    pub(crate) fn response(self: &Arc<Self>) -> ActiveResponse {
        self.responding.fetch_add(1, Ordering::Relaxed);
        ActiveResponse(self.clone())
    }

    /// Whether no response body is being sent.
    pub(crate) fn not_responding(&self) -> bool {
        self.responding.load(Ordering::Relaxed) == 0
    }

    pub(crate) fn touch(&self) {
        if let Some(base) = self.base {
            let ms = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }
    fn idle_for(&self) -> Duration {
        let now = self.base.map_or(0, |b| b.elapsed().as_millis() as u64);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
    /// Resolves once nothing moved and no request was in flight for `limit`.
    pub(crate) async fn idle(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= limit && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wait = limit.saturating_sub(idle).max(Duration::from_millis(100));
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight on its connection, from [`Activity::request`], until dropped.
pub struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body being sent on its connection, from [`Activity::response`], until dropped.
pub(crate) struct ActiveResponse(Arc<Activity>);

impl Drop for ActiveResponse {
    fn drop(&mut self) {
        self.0.responding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An IO wrapper that touches an [`Activity`] on every read and write.
pub struct Tracked<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> Tracked<IO> {
    /// Wraps `inner`; every byte read or written counts as activity.
    pub fn new(inner: IO, activity: Arc<Activity>) -> Tracked<IO> {
        Tracked { inner, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
