//! The connection layer: accepting client connections and keeping them within bounds, up to
//! where TLS and HTTP take over.
//!
//! Where things are (private modules, so named without links in these public docs):
//! `conn::accept` runs the accept loop of a listening socket and holds the listener's current
//! settings; `conn::serve` takes one connection through the PROXY header
//! (`conn::proxy_protocol`), the TLS handshake (`tls::handshake`, which leads to the
//! certificate resolver and the HSM signer) and on to HTTP (`http_layer`) or a layer-4
//! stream; `conn::limits` holds the connection and handshake limits, `conn::io` the I/O
//! wrappers, `conn::lifecycle` the drain.
//!
//! A client connection's defences are shared by the proxy's listeners and by the HSM API's
//! listener (in the `keyward` binary), so that both behave alike:
//!
//! - [`Lifecycle`] and [`Active`]: the connections of a server and its drain (on SIGTERM the
//!   accept loops stop, open connections finish their requests, [`Lifecycle::wait_closed`]
//!   waits for them up to a deadline);
//! - [`Activity`], [`Tracked`] and [`ActiveRequest`]: when bytes last moved on a connection and
//!   whether a request is in flight, for the idle timeout;
//! - [`drive`]: runs a hyper connection with graceful shutdown on drain and on idle;
//! - [`read_body`]: reads a request body with a size limit and a timeout between reads.
//!
//! The TLS handshake timeout (`tokio::time::timeout` around the accept), the HTTP/1.1 header
//! timeout (hyper's `header_read_timeout` with a `TokioTimer`) and the connection limit (a
//! semaphore permit held per connection) are set where each server builds its connections.
//!
//! ```no_run
//! # async fn run(listener: tokio::net::TcpListener) {
//! use keyward_proxy::conn::{Active, Activity, Lifecycle, Tracked};
//! let (drain, draining) = tokio::sync::watch::channel(false);
//! let lifecycle = Lifecycle::new(draining);
//! let (tcp, _) = listener.accept().await.unwrap();
//! let gauge = Active::gauge("api"); // once per listener
//! let active = Active::new(lifecycle.clone(), &gauge);
//! let activity = Activity::new();
//! let io = Tracked::new(tcp, activity.clone());
//! // ... TLS, then keyward_proxy::conn::drive(hyper connection, ...) in a task holding `active`.
//! # drop((io, active));
//! let _ = drain.send(true);
//! lifecycle.wait_closed(std::time::Duration::from_secs(30)).await;
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;

mod accept;
mod h1;
mod io;
mod lifecycle;
mod limits;
mod proxy_protocol;
mod serve;

pub(crate) use accept::{accept_loop, ListenerState};
pub(crate) use io::ActiveResponse;
pub use io::{ActiveRequest, Activity, Tracked};
pub use lifecycle::{drive, Active, Lifecycle};
pub(crate) use limits::Limit;
pub(crate) use proxy_protocol::parse_proxy_header;

/// Reads a whole request body, at most `limit_bytes`, waiting at most `timeout` between two
/// reads; returns the bytes and the trailers, if any.
///
/// # Errors
/// The status and a short text to answer with: `408` when a read waited longer than
/// `timeout`, `413` beyond `limit_bytes`, `400` for broken framing.
pub async fn read_body<B>(
    body: B,
    limit_bytes: usize,
    timeout: Duration,
) -> Result<(Bytes, Option<HeaderMap>), (StatusCode, &'static str)>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = Limited::new(body, limit_bytes);
    tokio::pin!(body);
    let mut data = bytes::BytesMut::new();
    let mut trailers = None;
    loop {
        match tokio::time::timeout(timeout, body.as_mut().frame()).await {
            Err(_) => return Err((StatusCode::REQUEST_TIMEOUT, "request body timed out")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(if e.is::<http_body_util::LengthLimitError>() {
                    (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                } else {
                    (StatusCode::BAD_REQUEST, "invalid request body")
                })
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            },
        }
    }
    Ok((data.freeze(), trailers))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that sends `chunks` and then never ends.
    struct Stalled(std::collections::VecDeque<&'static [u8]>);

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            match self.0.pop_front() {
                Some(c) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
                    Bytes::from_static(c),
                )))),
                None => std::task::Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_limit_and_the_timeout() {
        let full = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let (bytes, trailers) = read_body(full, 5, Duration::from_secs(1)).await.unwrap();
        assert_eq!((&bytes[..], trailers), (&b"hello"[..], None));
        let big = http_body_util::Full::new(Bytes::from_static(b"hello!"));
        assert_eq!(
            read_body(big, 5, Duration::from_secs(1))
                .await
                .unwrap_err()
                .0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let stalled = Stalled([&b"he"[..], b"ll"].into());
        let started = tokio::time::Instant::now();
        assert_eq!(
            read_body(stalled, 100, Duration::from_millis(200))
                .await
                .unwrap_err()
                .0,
            StatusCode::REQUEST_TIMEOUT
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
