//! Following a cluster store: a thread that catches the HSM up with the other nodes' commits
//! when the store signals one (PostgreSQL `NOTIFY`) and at least every [`EVERY`], so a lost
//! notification only delays a change, and records this node's heartbeat (`keyward cluster
//! status` shows it) as often.

use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use keyward_hsm::Hsm;

/// The catch-up and heartbeat period without notifications.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// This node in a cluster: its name (`host/address:port`, unique in the cluster) and what it
/// runs.
#[derive(Clone, Debug)]
pub(crate) struct NodeName {
    pub(crate) node: String,
    pub(crate) runs: String,
    started_unix_ms: u64,
}

impl NodeName {
    /// `HOST/ADDRESS` (the host name from `$HOSTNAME`, else the kernel's, and the address the
    /// node listens on) running `command`.
    pub(crate) fn new(addr: std::net::SocketAddr, command: &str) -> NodeName {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| "localhost".into());
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        NodeName {
            node: format!("{host}/{addr}"),
            runs: format!("keyward {} {command}", env!("CARGO_PKG_VERSION")),
            started_unix_ms,
        }
    }

    fn beat(&self, hsm: &Hsm) {
        if let Err(e) = hsm.heartbeat(&self.node, &self.runs, self.started_unix_ms) {
            tracing::warn!(error = %e, "cannot record this node's heartbeat in the cluster store");
        }
    }
}

/// Starts following the store if other nodes write it; returns whether it does. The thread
/// ends when the HSM is dropped. Call [`leave`] when the node stops.
pub(crate) fn follow(hsm: &Arc<Hsm>, me: &NodeName) -> Result<bool> {
    let Some(changes) = hsm.subscribe_changes()? else {
        return Ok(false);
    };
    me.beat(hsm);
    tracing::info!(node = %me.node, "following the cluster store (catch-up on NOTIFY and every 5 s, heartbeats)");
    let hsm = Arc::downgrade(hsm);
    let me = me.clone();
    std::thread::Builder::new()
        .name("keyward-catch-up".into())
        .spawn(move || {
            let mut last_beat = std::time::Instant::now();
            let mut failing = false;
            loop {
                match changes.recv_timeout(EVERY) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                // One catch-up covers every signal that arrived meanwhile.
                while changes.try_recv().is_ok() {}
                let Some(hsm) = hsm.upgrade() else { return };
                match hsm.catch_up() {
                    Ok(changed) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("the cluster store is reachable again; caught up");
                        } else if changed {
                            tracing::debug!("caught up with the other nodes' changes");
                        }
                    }
                    Err(e) => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot catch up with the cluster store; retrying every 5 s");
                    }
                }
                if last_beat.elapsed() >= EVERY {
                    me.beat(&hsm);
                    last_beat = std::time::Instant::now();
                }
            }
        })?;
    Ok(true)
}

/// Follows the store (see [`follow`]) each time the node behind `gate` unseals, after
/// `on_unseal` (settings of the new HSM); the thread of an HSM ends when a seal drops it.
pub(crate) fn follow_gate(
    gate: &keyward_server::SealGate,
    me: NodeName,
    on_unseal: impl Fn(&Hsm) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut events = gate.subscribe();
    let on_unseal = Arc::new(on_unseal);
    tokio::spawn(async move {
        loop {
            let unsealed = events.borrow_and_update().clone();
            if let Some(hsm) = unsealed {
                let (me, on_unseal) = (me.clone(), on_unseal.clone());
                let followed = tokio::task::spawn_blocking(move || {
                    on_unseal(&hsm);
                    follow(&hsm, &me)
                })
                .await;
                if let Ok(Err(e)) = followed {
                    tracing::warn!(error = %e, "cannot follow the cluster store");
                }
            }
            if events.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Removes this node's heartbeat from a cluster store (a clean stop).
pub(crate) fn leave(hsm: &Hsm, me: &NodeName) {
    if let Err(e) = hsm.forget_node(&me.node) {
        tracing::warn!(error = %e, "cannot remove this node's heartbeat from the cluster store");
    }
}
