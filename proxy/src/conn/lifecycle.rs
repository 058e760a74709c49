//! A server's lifecycle: [`Lifecycle`] (drain on SIGTERM, wait for open connections),
//! [`Active`] (one open connection, counted until dropped) and [`drive`], which runs one hyper
//! connection until it ends, shutting it down gracefully on drain or when idle (idleness is
//! measured by [`super::io::Activity`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::io::Activity;
use crate::metrics::metrics;

/// How long an idle connection may take to close after being asked to.
pub(super) const IDLE_GRACE: Duration = Duration::from_secs(2);

/// Shared by the accept loops and connections of a server (the proxy's listeners; the HSM
/// API's): whether it drains, and how many connections are still open.
pub struct Lifecycle {
    /// Becomes true when draining starts (SIGTERM).
    pub(crate) draining: watch::Receiver<bool>,
    /// Connections open now, of every listener.
    pub(crate) active: AtomicUsize,
    /// Woken when `active` drops to zero.
    pub(crate) idle: tokio::sync::Notify,
}

impl Lifecycle {
    /// A lifecycle that starts draining when `draining` becomes true.
    pub fn new(draining: watch::Receiver<bool>) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            draining,
            active: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        })
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Waits until every connection has closed, at most `within`; false when some are still
    /// open then.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                let notified = self.idle.notified();
                if self.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Counts a connection in `keyward_connections_active` and in the drain count until dropped.
pub struct Active {
    lifecycle: Arc<Lifecycle>,
    gauge: prometheus::IntGauge,
}

impl Active {
    /// Counts a connection in `gauge`: the listener's child of `keyward_connections_active`,
    /// resolved once per listener with [`Active::gauge`] (not per connection: resolving takes
    /// the metric family's lock).
    pub fn new(lifecycle: Arc<Lifecycle>, gauge: &prometheus::IntGauge) -> Active {
        let gauge = gauge.clone();
        gauge.inc();
        lifecycle.active.fetch_add(1, Ordering::SeqCst);
        Active { lifecycle, gauge }
    }

    /// The `keyward_connections_active` gauge of the listener labelled `label` (its bound
    /// address).
    pub fn gauge(label: &str) -> prometheus::IntGauge {
        metrics().connections_active.with_label_values(&[label])
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.gauge.dec();
        if self.lifecycle.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.lifecycle.idle.notify_waiters();
        }
    }
}

/// Runs a hyper connection until it ends: on draining or when idle it is asked to shut down
/// gracefully (HTTP/1.1: close after the current response; HTTP/2: GOAWAY); an idle one that
/// ignores that (or never sent the HTTP/2 preface) is dropped after `IDLE_GRACE`.
pub async fn drive<C, E>(
    conn: C,
    mut graceful_shutdown: impl FnMut(Pin<&mut C>),
    activity: &Activity,
    idle: Duration,
    draining: &mut watch::Receiver<bool>,
) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    let mut shutting = false;
    let grace = tokio::time::sleep(IDLE_GRACE);
    tokio::pin!(grace);
    let mut grace_armed = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = draining.wait_for(|d| *d), if !shutting => {
                shutting = true;
                graceful_shutdown(conn.as_mut());
            }
            _ = activity.idle(idle), if !shutting => {
                shutting = true;
                graceful_shutdown(conn.as_mut());
                grace.as_mut().reset(tokio::time::Instant::now() + IDLE_GRACE);
                grace_armed = true;
            }
            _ = grace.as_mut(), if grace_armed => return Ok(()),
        }
    }
}
