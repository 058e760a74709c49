//! Body types: [`ProxyBody`], the body of every response the proxy sends, and [`ReadTimeout`],
//! which bounds the wait between two frames of an upstream response.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// The error of a response body: the upstream's, or a read timeout.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the proxy sends.
pub(crate) type ProxyBody = BoxBody<Bytes, BodyError>;

/// A response body counted in its connection's [`crate::conn::Activity`] until it has been
/// sent whole (or dropped), so that an HTTP/1.1 connection never rests in the middle of one.
pub(crate) struct Counted<B> {
    inner: B,
    _responding: crate::conn::ActiveResponse,
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, responding: crate::conn::ActiveResponse) -> Self {
        Counted {
            inner,
            _responding: responding,
        }
    }
}

impl<B> hyper::body::Body for Counted<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A body that fails when no frame arrives within `timeout` of the previous one (nginx's
/// `proxy_read_timeout`): a stalled upstream cannot hold a client connection forever.
pub(crate) struct ReadTimeout<B> {
    inner: B,
    timeout: std::time::Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> ReadTimeout<B> {
    pub(crate) fn new(inner: B, timeout: std::time::Duration) -> Self {
        ReadTimeout {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B> hyper::body::Body for ReadTimeout<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + self.timeout;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err("upstream response body timed out".into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
