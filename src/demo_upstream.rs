//! The quickstart's built-in demo upstream: a plain HTTP server on a loopback port that
//! answers every request with a greeting and the forwarding headers it received.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::net::TcpListener;

/// First line of every demo response; the README and tests look for it.
pub(crate) const GREETING: &str = "Hello from the Keyward demo upstream!";

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = format!("{GREETING}\n{} {}\n", req.method(), req.uri());
    for name in [
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ] {
        if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
            body.push_str(&format!("{name}: {v}\n"));
        }
    }
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default())
}

/// Starts the demo upstream on `127.0.0.1` with an OS-chosen port; returns that address.
pub(crate) async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tcp),
                        hyper::service::service_fn(answer),
                    )
                    .await;
            });
        }
    });
    Ok(addr)
}
