//! The accept loop of one listening socket, and [`ListenerState`], the settings it and its
//! connections use (swapped as a whole on reload). Each accepted connection goes on to
//! [`super::serve`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_config::ListenerConfig;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use super::lifecycle::{Active, Lifecycle};
use super::limits::Limit;
use super::serve::serve_connection;
use crate::upstream::route::Router;
use crate::upstream::{Pool, Pools};

/// What one listening socket does now; replaced as a whole on reload.
pub(crate) struct ListenerState {
    pub(crate) cfg: ListenerConfig,
    /// `None` for a plain-HTTP redirect listener.
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) router: Router,
    pub(crate) pools: Arc<Pools>,
    /// The pool of a `tcp` listener.
    pub(crate) tcp_pool: Option<Arc<Pool>>,
    /// Per socket, kept across reloads (resized to the new limit).
    pub(crate) handshakes: Arc<Limit>,
    /// Per socket, kept across reloads (resized to the new limit).
    pub(crate) connections: Arc<Limit>,
    /// The `listener` metric label: the bound address.
    pub(crate) label: String,
    /// `keyward_connections_resting{listener}`.
    pub(crate) resting: prometheus::IntGauge,
    /// Client-certificate subject headers of every listener: removed from every request, so
    /// a client cannot forge one on a listener without client authentication.
    pub(crate) subject_headers: Arc<Vec<http::HeaderName>>,
    pub(crate) access_log: bool,
    /// Remote mode: the slots of handshakes that may sign through the HSM nodes
    /// ([`crate::remote::Remote::slots`]).
    pub(crate) sign_slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// Accepts connections on `socket` until draining starts. `state` gives the listener's
/// current settings (reloads swap it).
pub(crate) async fn accept_loop(
    socket: TcpListener,
    state: impl Fn() -> Arc<ListenerState> + Send + 'static,
    lifecycle: Arc<Lifecycle>,
) {
    let mut last_warned: Option<Instant> = None;
    let mut draining = lifecycle.draining.clone();
    // Resolved once: the label does not change on reload (the address cannot).
    let label = state().label.clone();
    let accepted_total = crate::metrics::metrics()
        .connections_accepted
        .with_label_values(&[label.as_str()]);
    let active_gauge = Active::gauge(&label);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = draining.wait_for(|d| *d) => return,
            a = socket.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning, and say so at most once a
                // second so that a flood of connections cannot flood the log.
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    last_warned = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At most `max_connections` served at once. The permit is taken after the accept, so
        // a loop waiting in accept holds none (with one socket per worker, a permit held by an
        // idle loop would strand connections queued on a busy one); at the limit, each loop
        // keeps the one connection it accepted waiting here, and accepts no more, so the rest
        // wait in the kernel's backlog.
        accepted_total.inc();
        let mut st = state();
        let permit = match st.connections.semaphore.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let p = tokio::select! {
                    biased;
                    _ = draining.wait_for(|d| *d) => return,
                    p = st.connections.semaphore.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                // The settings of now, not of before the wait: a reload while waiting applies.
                st = state();
                p
            }
        };
        let active = Active::new(lifecycle.clone(), &active_gauge);
        let lifecycle = lifecycle.clone();
        tokio::spawn(async move {
            serve_connection(st, tcp, peer, lifecycle).await;
            drop(active);
            drop(permit);
        });
    }
}
