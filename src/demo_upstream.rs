//! The quickstart's built-in demo upstream: a plain HTTP server on a loopback port that
//! answers every request with a greeting and the forwarding headers it received.

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

/// First line of every demo response; the README and tests look for it.
pub(crate) const GREETING: &str = "Hello from the Keyward demo upstream!";

async fn answer(req: Request) -> impl IntoResponse {
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
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// Starts the demo upstream on `127.0.0.1` with an OS-chosen port; returns that address.
pub(crate) async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(answer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
