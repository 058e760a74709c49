//! The node's data-key rotation worker: while the HSM is unsealed and a rotation is under way
//! (started by `keyward operator rotate` on this node or another), it rewrites the records
//! still under an older data-key version, in batches (each one transaction under the store's
//! write lock; signing never waits for it), until the older versions are destroyed. A node
//! that stops halfway leaves the rest to the next unsealed node: the store is the progress.

use std::sync::Arc;
use std::time::Duration;

/// Records rewritten per transaction (`KEYWARD_ROTATION_BATCH` overrides it, 1 to 100 000).
const BATCH: usize = 500;

/// A setting from the environment within `range`, else `default`.
fn env_or(name: &str, range: std::ops::RangeInclusive<u64>, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| range.contains(n))
        .unwrap_or(default)
}

fn batch() -> usize {
    usize::try_from(env_or("KEYWARD_ROTATION_BATCH", 1..=100_000, BATCH as u64)).unwrap_or(BATCH)
}

/// A pause between two batches, to spare a busy store (`KEYWARD_ROTATION_PAUSE_MS`, 0 to
/// 60 000; default 0).
fn pause() -> Duration {
    Duration::from_millis(env_or("KEYWARD_ROTATION_PAUSE_MS", 0..=60_000, 0))
}

/// Starts the worker of the node behind `gate`; it checks twice a second (a memory read).
pub(crate) fn run(gate: &keyward_server::SealGate) -> tokio::task::JoinHandle<()> {
    let events = gate.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let Some(hsm) = events.borrow().clone() else {
                continue;
            };
            if !hsm.rotation_pending() {
                continue;
            }
            let done = tokio::task::spawn_blocking(move || rewrite_all(&hsm)).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "data-key rotation paused; retrying"),
                Err(e) => tracing::warn!(error = %e, "data-key rotation paused; retrying"),
            }
        }
    })
}

fn rewrite_all(hsm: &Arc<keyward_hsm::Hsm>) -> Result<(), keyward_hsm::Error> {
    let (batch, pause) = (batch(), pause());
    let start = hsm.rotation_status()?;
    tracing::info!(
        version = start.current_version,
        pending = start.pending_records,
        total = start.total_records,
        batch,
        "data-key rotation: rewriting the records under older versions"
    );
    let mut next_report = 0u64;
    loop {
        let s = hsm.rotation_step(batch)?;
        if s.done() {
            tracing::info!(
                version = s.current_version,
                records = s.total_records,
                "data-key rotation finished: every record under the current version, the older versions destroyed"
            );
            return Ok(());
        }
        let rewritten = s.total_records.saturating_sub(s.pending_records);
        if rewritten >= next_report {
            tracing::info!(
                rewritten,
                total = s.total_records,
                "data-key rotation: {rewritten} of {} records rewritten",
                s.total_records
            );
            next_report = rewritten + (s.total_records / 10).max(1);
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}
