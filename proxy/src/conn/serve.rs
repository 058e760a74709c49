//! One client connection, from the accepted TCP socket to its last byte: the PROXY header
//! ([`super::proxy_protocol`]), the TLS handshake ([`crate::tls::handshake`], where the
//! certificate is picked and the HSM signs), then HTTP/1.1 behind the smuggling guard, HTTP/2
//! ([`crate::http_layer`]), a layer-4 byte stream, or a plain-HTTP redirect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_config::ListenerMode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::accept::ListenerState;
use super::h1::serve_h1;
use super::io::{Activity, Prefixed, Tracked};
use super::lifecycle::{drive, Lifecycle};
use super::proxy_protocol::client_address;
use crate::http_layer::h1guard::H1Guard;
use crate::http_layer::handler::{ConnInfo, Handler};
use crate::http_layer::respond::{record, Refusal, Refused};
use crate::tls::handshake;

/// Serves one accepted connection until it closes.
pub(super) async fn serve_connection(
    st: Arc<ListenerState>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    lifecycle: Arc<Lifecycle>,
) {
    let _ = tcp.set_nodelay(true);
    let handshake_timeout = Duration::from_millis(st.cfg.handshake_timeout_ms);
    let proxy_protocol = st.cfg.proxy_protocol.as_ref();
    let Some((client, prefix)) = Box::pin(client_address(
        proxy_protocol,
        &mut tcp,
        peer,
        handshake_timeout,
    ))
    .await
    else {
        return;
    };
    let activity = Activity::new();
    let io = Tracked::new(Prefixed::new(prefix, tcp), activity.clone());
    let Some(tls_config) = st.tls.clone() else {
        // A plain-HTTP redirect listener.
        let info = Arc::new(ConnInfo {
            client,
            client_subject: None,
            tls: false,
        });
        Box::pin(serve_http(st, io, false, info, activity, lifecycle)).await;
        return;
    };

    // The TLS handshake, at most `max_concurrent_handshakes` at a time.
    let Ok(permit) = st.handshakes.semaphore.clone().acquire_owned().await else {
        return;
    };
    // Each stage's future is boxed for the time it runs: the task itself stays small (a
    // connection's task lives as long as the connection, idle or not), and the handshake's
    // state is freed once it is done.
    let Some((tls, began)) = Box::pin(handshake::accept(
        io,
        tls_config,
        handshake_timeout,
        client,
        st.sign_slots.as_ref(),
    ))
    .await
    else {
        return;
    };
    drop(permit);
    let session = handshake::Session::record(tls.get_ref().1, began);

    if st.cfg.mode == ListenerMode::Tcp {
        Box::pin(serve_tcp(st, tls, client, activity, lifecycle)).await;
        return;
    }
    let info = Arc::new(ConnInfo {
        client,
        client_subject: session.client_subject,
        tls: true,
    });
    Box::pin(serve_http(st, tls, session.h2, info, activity, lifecycle)).await;
}

/// A layer-4 (`mode = "tcp"`) connection: bytes copied both ways to one upstream server until
/// either side closes, the connection idles, or the drain deadline.
async fn serve_tcp<IO>(
    st: Arc<ListenerState>,
    mut client_io: IO,
    client: SocketAddr,
    activity: Arc<Activity>,
    lifecycle: Arc<Lifecycle>,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Some(pool) = st.tcp_pool.clone() else {
        return;
    };
    let (upstream, _in_flight) = match pool.connect_tcp().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%client, pool = pool.name(), error = ?e, "layer-4 upstream unavailable");
            return;
        }
    };
    let mut upstream = upstream;
    let idle = Duration::from_millis(st.cfg.idle_timeout_ms);
    let mut draining = lifecycle.draining.clone();
    let started = Instant::now();
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client_io, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(%client, error = %e, "layer-4 stream ended with an error");
            }
        }
        _ = activity.idle(idle) => {
            tracing::debug!(%client, "layer-4 stream idle; closed");
        }
        // A byte stream cannot be drained gracefully: it runs until the drain deadline.
        _ = async { let _ = draining.wait_for(|d| *d).await; std::future::pending::<()>().await } => {}
    }
    if st.access_log {
        tracing::info!(
            target: "keyward::access",
            client = %client,
            listener = %st.label,
            pool = pool.name(),
            duration_ms = started.elapsed().as_millis() as u64,
            "tcp"
        );
    }
}

/// HTTP/1.1 (behind the smuggling guard) or HTTP/2 on `io`, one [`Handler`] per connection.
async fn serve_http<IO>(
    st: Arc<ListenerState>,
    io: IO,
    h2: bool,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    lifecycle: Arc<Lifecycle>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = Duration::from_millis(st.cfg.idle_timeout_ms);
    let mut draining = lifecycle.draining.clone();
    // One handler per connection (with the smuggling guard's verdicts on HTTP/1.1).
    let handler_with = |verdicts| {
        Arc::new(Handler::new(
            st.clone(),
            info.clone(),
            activity.clone(),
            verdicts,
        ))
    };
    if h2 {
        // HTTP/2 with the h2 crate directly (h2conn.rs: `100 Continue`, which hyper's HTTP/2
        // server never sends).
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let conn = crate::http_layer::h2::serve(
            io,
            handler_with(None),
            u32::try_from(st.cfg.max_header_bytes).unwrap_or(u32::MAX),
            shutdown.clone(),
        );
        let result = drive(
            Box::pin(conn),
            |_| shutdown.notify_one(),
            &activity,
            idle,
            &mut draining,
        )
        .await;
        if let Err(e) = result {
            tracing::debug!(client = %info.client, error = %e, "HTTP/2 connection ended with an error");
        }
        return;
    }
    let result = {
        // HTTP/1.1 framing is checked by the smuggling guard before hyper sees it; both get
        // the same head-size limit, so hyper answers 431 first.
        let (io, verdicts) = H1Guard::new(io, st.cfg.max_header_bytes.max(8192));
        let handler = handler_with(Some(verdicts.clone()));
        let result = serve_h1(&st, io, &verdicts, handler, &activity, &mut draining).await;
        // hyper answers a head its parser refuses (400, 431, 414) and ends the connection
        // without calling the service: count and log that refusal here.
        if let Err(e) = &result {
            if let Some(refusal) = Refusal::from_hyper(e, verdicts.unserved_rejection()) {
                record(
                    refusal,
                    Refused {
                        client: info.client,
                        listener: &st.label,
                    },
                );
            }
        }
        result
    };
    if let Err(e) = result {
        tracing::debug!(client = %info.client, error = %e, "connection ended with an error");
    }
}
