//! The node's CRL schedule: while the HSM is unsealed, once a minute, every CA whose newest
//! CRL has used half of its period (or that has none) gets a new one, signed in the HSM on the
//! CA owner's behalf (`keyward_server::ca::crl::current`). So a CRL is fresh whether or not
//! anyone fetches it; `GET /v1/ca/NAME/crl` does the same check. Several nodes may race for
//! the same CRL number: the store takes one, the others keep it.

use std::time::Duration;

/// How often the CAs are checked.
const EVERY: Duration = Duration::from_secs(60);

/// Starts the schedule of the node behind `gate`.
pub(crate) fn run(gate: &keyward_server::SealGate) -> tokio::task::JoinHandle<()> {
    let events = gate.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let Some(hsm) = events.borrow().clone() else {
                continue;
            };
            let done = tokio::task::spawn_blocking(move || {
                for ca in hsm.cas()? {
                    if let Err(e) = keyward_server::ca::crl::current(&hsm, &ca.name) {
                        tracing::warn!(ca = %ca.name, error = %e, "scheduled CRL failed; retrying in a minute");
                    }
                }
                Ok::<(), keyward_hsm::Error>(())
            })
            .await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "scheduled CRLs: the CAs cannot be read; retrying in a minute");
            }
        }
    })
}
