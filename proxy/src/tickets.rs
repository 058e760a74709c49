//! TLS session tickets whose keys are AES key objects in the HSM. (Stub: being built.)

use std::sync::Arc;

use keyward_config::ResumptionConfig;
use keyward_hsm::{Hsm, Session};
use rustls::server::ProducesTickets;

use crate::error::Error;

/// Whether this process may create ticket keys (it holds the data directory's writer lock)
/// or only reads those another node made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Holds the writer lock: creates and rotates ticket keys.
    Writer,
    /// Shares the store with a writer: loads the keys it makes.
    Reader,
}

/// Builds the ticketer shared by every listener (and kept across reloads).
pub(crate) fn ticketer(
    _hsm: &Arc<Hsm>,
    _session: &Session,
    _cfg: &ResumptionConfig,
    _role: NodeRole,
) -> Result<Arc<dyn ProducesTickets>, Error> {
    rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|error| Error::Tickets {
        reason: error.to_string(),
    })
}
