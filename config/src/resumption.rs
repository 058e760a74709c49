//! `[session_resumption]`: TLS session tickets and the stateful session cache.

use serde::Deserialize;

use crate::check::Context;
use crate::{yes, Error};

/// `[session_resumption]`: TLS session tickets (RFC 8446 §4.6.1, RFC 5077) and the stateful
/// session cache.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumptionConfig {
    /// `tickets`: issue and accept session tickets. Default true.
    pub tickets: bool,
    /// `ticket_key_rotation_s`: a new ticket key (an AES-256 key object in the HSM) is used
    /// every this many seconds; tickets from the previous key are still accepted. Default
    /// 21600 (6 h).
    pub ticket_key_rotation_s: u64,
    /// `session_cache_entries`: stateful sessions kept in memory per listener (TLS 1.2
    /// session IDs, and TLS 1.3 when `tickets` is false); 0 disables. Default 20000.
    pub session_cache_entries: usize,
    /// `tls13_tickets`: TLS 1.3 NewSessionTicket messages sent after each full or resumed
    /// handshake (RFC 8446 §4.6.1), 0 to 4; each one costs the server an encryption and a
    /// record. Default 1: browsers use one ticket per connection (and a new connection gets
    /// a new ticket); clients that open several connections at once from one ticket cache
    /// may want 2 (OpenSSL's default, and rustls's).
    pub tls13_tickets: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [session_resumption] table")]
pub(crate) struct RawResumption {
    #[serde(default = "yes")]
    tickets: bool,
    #[serde(default = "default_rotation")]
    ticket_key_rotation_s: u64,
    #[serde(default = "default_cache_entries")]
    session_cache_entries: usize,
    #[serde(default = "default_tls13_tickets")]
    tls13_tickets: usize,
}

impl Default for RawResumption {
    fn default() -> Self {
        RawResumption {
            tickets: true,
            ticket_key_rotation_s: default_rotation(),
            session_cache_entries: default_cache_entries(),
            tls13_tickets: default_tls13_tickets(),
        }
    }
}

fn default_rotation() -> u64 {
    6 * 3600
}
fn default_cache_entries() -> usize {
    20_000
}
fn default_tls13_tickets() -> usize {
    1
}

impl RawResumption {
    /// The `[session_resumption]` settings; `cx` is the `session_resumption` table.
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<ResumptionConfig, Error> {
        cx.positive("ticket_key_rotation_s", self.ticket_key_rotation_s)?;
        if self.tls13_tickets > 4 {
            return Err(cx.invalid("tls13_tickets", "must be 0 to 4"));
        }
        Ok(ResumptionConfig {
            tls13_tickets: self.tls13_tickets,
            tickets: self.tickets,
            ticket_key_rotation_s: self.ticket_key_rotation_s,
            session_cache_entries: self.session_cache_entries,
        })
    }
}
