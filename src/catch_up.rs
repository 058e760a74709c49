//! Following a cluster store: a thread that catches the HSM up with the other nodes' commits
//! when the store signals one (PostgreSQL `NOTIFY`) and at least every [`EVERY`], so a lost
//! notification only delays a change.

use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use keyward_hsm::Hsm;

/// The catch-up period without notifications.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// Starts following the store if other nodes write it; returns whether it does. The thread
/// ends when the HSM is dropped.
pub(crate) fn follow(hsm: &Arc<Hsm>) -> Result<bool> {
    let Some(changes) = hsm.subscribe_changes()? else {
        return Ok(false);
    };
    let hsm = Arc::downgrade(hsm);
    std::thread::Builder::new()
        .name("keyward-catch-up".into())
        .spawn(move || loop {
            match changes.recv_timeout(EVERY) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // One catch-up covers every signal that arrived meanwhile.
            while changes.try_recv().is_ok() {}
            let Some(hsm) = hsm.upgrade() else { return };
            match hsm.catch_up() {
                Ok(true) => tracing::debug!("caught up with the other nodes' changes"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot catch up with the cluster store; retrying")
                }
            }
        })?;
    Ok(true)
}
