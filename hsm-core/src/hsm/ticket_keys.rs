//! TLS session-ticket keys for a remote proxy fleet (`keyward serve` with `[hsm] mode =
//! "remote"`).
//!
//! A proxy that signs through the API still encrypts and decrypts its session tickets itself:
//! resumption must keep working, at full speed, while every HSM node is down, and every proxy
//! of the fleet must open the others' tickets. So the HSM makes the fleet's ticket keys and
//! releases them to it:
//!
//! - **Keys.** AES-256 secret keys labelled `tls-ticket-key-<period>` (`period = unix_time_s /
//!   rotation_s`), owned by the fleet's crypto-user, `extractable = false` (no wrap, no
//!   export), `encrypt = decrypt = true`. The label prefix is reserved: only the HSM makes
//!   such keys for a crypto-user, here. Every proxy that logs in as that user gets the same
//!   keys; another user's fleet has its own.
//! - **Release.** [`Hsm::release_ticket_keys`] makes the keys of the current and next periods
//!   if missing, destroys the caller's ticket keys outside `[period - 1, period + 1]`, and
//!   returns those inside, each encrypted with RSAES-OAEP (SHA-256, RFC 8017 §7.1) to a public
//!   key the proxy generated for this purpose and never stores (3072 bits at least), the key
//!   name as the OAEP label. One audit entry `tls.ticket-keys-release` per call names the
//!   handles. The values never appear in plaintext outside the HSM and the proxy's memory.
//! - **Key name.** `period (8 bytes, big-endian) ‖ handle (8 bytes, big-endian)`: the same
//!   name the embedded proxy's HSM ticketer uses (`keyward-proxy`'s `tls/tickets.rs`).

use super::*;
use crate::material::oaep_to_recipient;

/// Label prefix of session-ticket keys; the period number follows.
pub const TICKET_KEY_LABEL_PREFIX: &str = "tls-ticket-key-";
/// Smallest RSA key (bits) a ticket key is released to.
pub const TICKET_KEY_WRAP_MIN_BITS: usize = 3072;
/// Longest rotation period accepted, in seconds (RFC 8446 §4.6.1: tickets live at most 7 days).
const MAX_ROTATION_S: u64 = 7 * 24 * 3600;

/// One released ticket key.
#[derive(Clone, PartialEq, Eq)]
pub struct ReleasedTicketKey {
    /// The rotation period it serves.
    pub period: u64,
    /// Its key object.
    pub handle: KeyHandle,
    /// Its 16-byte name in tickets: period ‖ handle, both big-endian.
    pub name: [u8; 16],
    /// The 32-byte AES-256 value, RSAES-OAEP-encrypted (SHA-256, MGF1-SHA-256, the name as the
    /// label) to the recipient key.
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for ReleasedTicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleasedTicketKey")
            .field("period", &self.period)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// The name of ticket key `handle` of `period`.
fn key_name(period: u64, handle: KeyHandle) -> [u8; 16] {
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(&period.to_be_bytes());
    name[8..].copy_from_slice(&handle.0.to_be_bytes());
    name
}

/// The period a ticket-key label names, if it is one.
fn label_period(label: &str) -> Option<u64> {
    let digits = label.strip_prefix(TICKET_KEY_LABEL_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Hsm {
    /// The caller's session-ticket keys for the periods around `now_s` (see the module
    /// documentation), made if missing, encrypted to `recipient_spki`. Crypto-users only.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] for an admin; [`Error::InvalidInput`] for a rotation of 0
    /// or over 7 days, or a recipient key that is not RSA of at least
    /// [`TICKET_KEY_WRAP_MIN_BITS`] bits; [`Error::Store`] when a key cannot be made (the
    /// cluster store is down, say); [`Error::Crypto`].
    pub fn release_ticket_keys(
        &self,
        session: &Session,
        rotation_s: u64,
        now_s: u64,
        recipient_spki: &[u8],
    ) -> Result<Vec<ReleasedTicketKey>> {
        session.require(Role::CryptoUser)?;
        if rotation_s == 0 || rotation_s > MAX_ROTATION_S {
            return Err(Error::invalid(format!(
                "rotation_s must be 1 to {MAX_ROTATION_S} seconds"
            )));
        }
        // Refuse a bad recipient before making anything.
        oaep_to_recipient(recipient_spki, TICKET_KEY_WRAP_MIN_BITS, &[0; 32], b"check")?;
        let now = now_s / rotation_s;
        let in_window = |p: u64| p.saturating_add(1) >= now && p <= now.saturating_add(1);
        for period in [now, now.saturating_add(1)] {
            if !self
                .own_ticket_keys(session)
                .iter()
                .any(|(p, _)| *p == period)
            {
                self.make_ticket_key(session, period)?;
            }
        }
        for (period, handle) in self.own_ticket_keys(session) {
            if !in_window(period) {
                self.destroy_key(session, handle)?;
            }
        }
        let keys: Vec<(u64, KeyHandle)> = self
            .own_ticket_keys(session)
            .into_iter()
            .filter(|(p, _)| in_window(*p))
            .collect();
        let target = keys
            .iter()
            .map(|(_, h)| h.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.audited(
            session.user(),
            AuditEvent::TicketKeysRelease,
            Some(target),
            |_| {
                keys.iter()
                    .map(|&(period, handle)| {
                        let (_, state) = self.owned(session, handle)?;
                        let value = state
                            .latest()
                            .wrappable_bytes()
                            .ok_or(Error::Internal("ticket key without a value"))?;
                        let name = key_name(period, handle);
                        let wrapped = oaep_to_recipient(
                            recipient_spki,
                            TICKET_KEY_WRAP_MIN_BITS,
                            value,
                            &name,
                        )?;
                        Ok(ReleasedTicketKey {
                            period,
                            handle,
                            name,
                            wrapped,
                        })
                    })
                    .collect()
            },
        )
    }

    /// The (period, handle) of every live ticket key `session`'s user owns, by period.
    fn own_ticket_keys(&self, session: &Session) -> Vec<(u64, KeyHandle)> {
        let mut keys: Vec<(u64, KeyHandle)> = self
            .objects
            .load()
            .values()
            .filter(|o| !o.destroyed.load(Ordering::Acquire) && o.session.is_none())
            .filter_map(|o| {
                let s = o.state.load();
                (s.info.class == KeyClass::Secret && s.info.owner == session.user())
                    .then(|| label_period(&s.info.attributes.label).map(|p| (p, s.info.handle)))
                    .flatten()
            })
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Makes the ticket key of `period`; a key another node of the cluster made a moment ago
    /// counts as made.
    fn make_ticket_key(&self, session: &Session, period: u64) -> Result<()> {
        let template = KeyTemplate::labelled(&format!("{TICKET_KEY_LABEL_PREFIX}{period}"))
            .with(AttributeName::Encrypt, true)
            .with(AttributeName::Decrypt, true)
            .with(AttributeName::Sign, false)
            .with(AttributeName::Verify, false)
            .with(AttributeName::Extractable, false);
        match self.generate_secret(session, KeySpec::Aes256, &template, true) {
            Ok(_) | Err(Error::LabelExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
