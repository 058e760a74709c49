//! TLS session tickets whose keys are AES-256 key objects in the HSM, shared by every node
//! that uses the same store. Installed in each listener's `ServerConfig` by
//! [`crate::server`] (see [`super::config`]).
//!
//! A session ticket (TLS 1.3: RFC 8446 §4.6.1 NewSessionTicket; TLS 1.2: RFC 5077) carries the
//! server's session state, encrypted under a key only the servers hold, so a client resumes
//! without the server keeping state. Here that key is an HSM key object:
//!
//! - **Keys.** One AES-256 secret key per rotation period, labelled
//!   `tls-ticket-key-<period>` where `period = unix_time_s / ticket_key_rotation_s`, owned
//!   by the proxy's service user, `extractable = false`, `encrypt = decrypt = true`. Their
//!   values never leave the HSM: the proxy holds [`KeyCipher`] handles.
//! - **Ticket format.** `key name (16 bytes) ‖ IV (12) ‖ AES-256-GCM ciphertext ‖ tag (16)`,
//!   the key name being the AAD. The key name is the period (8 bytes, big-endian) followed by
//!   the key's handle (8 bytes, big-endian): not secret, the same on every node.
//! - **Rotation.** New tickets use the current period's key; tickets under the previous
//!   period's key (and the next one's, for clocks slightly ahead) are still accepted; older
//!   ones give a full handshake. The node holding the data directory's writer lock
//!   ([`NodeRole::Writer`]) makes sure the keys of the current and next periods exist, so
//!   other nodes learn the next key a whole period before they need it, and destroys keys
//!   outside the window (older than the previous period, or too far ahead, e.g. after the
//!   rotation setting changed). [`NodeRole::Reader`] nodes re-read the store's key objects
//!   (verified as at start-up, [`keyward_hsm::Hsm::sync_token_objects`]) every minute or
//!   sooner, and soon after they see a ticket under a key name they do not know.
//! - **Hot path.** `encrypt` and `decrypt` (once per handshake) read the key set lock-free
//!   (`ArcSwap`) and make one AES-GCM call in the HSM's memory: no store access, no lock,
//!   nothing logged. Maintenance runs in a background tokio task, the store work on the
//!   blocking pool.
//! - **Lifetime.** [`ProducesTickets::lifetime`] is the rotation period, at most RFC 8446's
//!   7 days: a ticket stays usable at least that long.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use keyward_config::ResumptionConfig;
use keyward_hsm::{
    AttributeName, Hsm, KeyCipher, KeyClass, KeyFilter, KeyHandle, KeySpec, KeyTemplate, Session,
    MAX_PAGE_SIZE,
};
use rustls::server::ProducesTickets;

use crate::error::Error;
use crate::metrics::metrics;

/// Whether this process may create ticket keys (it holds the data directory's writer lock)
/// or only reads those another node made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Holds the writer lock: creates and rotates ticket keys.
    Writer,
    /// Shares the store with a writer: loads the keys it makes.
    Reader,
}

/// Label prefix of ticket keys; the period number follows.
pub(crate) const LABEL_PREFIX: &str = keyward_hsm::TICKET_KEY_LABEL_PREFIX;
/// Bytes of the key name at the start of every ticket.
const KEY_NAME_LEN: usize = 16;
/// AES-GCM IV and tag lengths (NIST SP 800-38D).
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// RFC 8446 §4.6.1: a ticket lifetime is at most 7 days.
const MAX_TICKET_LIFETIME_S: u64 = 7 * 24 * 3600;
/// How often the background task runs at most apart (a reader re-reads the store this often).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// A reader re-reads the store for an unknown key name at most this often, in seconds.
const UNKNOWN_KEY_REFRESH_S: u64 = 5;

#[path = "tickets_remote.rs"]
mod remote;
use remote::RemoteTickets;

/// Logs a key change at info once the proxy runs (rotations are rare and worth seeing), at
/// debug while it starts (start-up output stays the listener lines).
macro_rules! key_event {
    ($inner:expr, $($arg:tt)+) => {
        if $inner.started.load(Ordering::Relaxed) {
            tracing::info!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}

/// Builds the ticketer shared by every listener (and kept across reloads).
///
/// With `tickets = false`, a ticketer that is not enabled (rustls then sends no tickets and
/// uses the stateful cache). Otherwise the ticket keys are prepared now, as `role` allows
/// (a writer creates the keys of the current and next periods), and a background task keeps
/// them rotated. Must be called inside a tokio runtime.
///
/// # Errors
/// [`Error::Tickets`] if the keys cannot be made or loaded, or there is no tokio runtime.
pub(crate) fn ticketer(
    hsm: &Arc<Hsm>,
    session: &Session,
    cfg: &ResumptionConfig,
    role: NodeRole,
) -> Result<Arc<dyn ProducesTickets>, Error> {
    ticketer_from(
        Source::Local {
            hsm: hsm.clone(),
            session: session.clone(),
            role,
        },
        cfg,
    )
}

/// [`ticketer`] over a remote proxy's HSM nodes: the keys are released by the nodes
/// (`keyward_hsm`'s `ticket_keys` module) and used in this process's memory, so resumption
/// needs no node.
pub(crate) fn remote_ticketer(
    remote: &Arc<crate::remote::Remote>,
    cfg: &ResumptionConfig,
) -> Result<Arc<dyn ProducesTickets>, Error> {
    if !cfg.tickets {
        return Ok(Arc::new(NoTickets));
    }
    ticketer_from(Source::Remote(RemoteTickets::new(remote.clone())?), cfg)
}

fn ticketer_from(
    source: Source,
    cfg: &ResumptionConfig,
) -> Result<Arc<dyn ProducesTickets>, Error> {
    let role = source.role();
    if !cfg.tickets {
        return Ok(Arc::new(NoTickets));
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::Tickets {
        reason: "the ticket key rotation needs a tokio runtime".into(),
    })?;
    let ticketer = HsmTicketer::new(source, cfg.ticket_key_rotation_s, Box::new(unix_time_s))?;
    let keys = ticketer.inner.maintain()?;
    ticketer.inner.started.store(true, Ordering::Relaxed);
    tracing::debug!(
        role = ?role,
        rotation_s = cfg.ticket_key_rotation_s,
        keys = keys,
        "session tickets use HSM ticket keys"
    );
    ticketer.spawn_maintenance(&runtime);
    Ok(Arc::new(ticketer))
}

fn unix_time_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The ticketer when `tickets = false`.
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// One ticket key: its period, its name in tickets, and what encrypts with it.
struct TicketKey {
    period: u64,
    name: [u8; KEY_NAME_LEN],
    cipher: TicketCipher,
}

/// A ticket key's AES-256-GCM: an HSM handle (the value stays in the HSM), or, in remote mode,
/// the value the nodes released, in this process's memory (zeroized by aws-lc on drop).
#[derive(Clone)]
enum TicketCipher {
    Hsm(KeyCipher),
    Local(Arc<aws_lc_rs::aead::LessSafeKey>),
}

impl TicketCipher {
    /// IV (12 bytes, random) ‖ ciphertext ‖ tag (16 bytes), `aad` authenticated.
    fn encrypt(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            TicketCipher::Hsm(c) => c.encrypt(plain, aad).map_err(|e| e.to_string()),
            TicketCipher::Local(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let mut iv = [0u8; IV_LEN];
                aws_lc_rs::rand::fill(&mut iv).map_err(|_| "no randomness".to_owned())?;
                let mut out = Vec::with_capacity(IV_LEN + plain.len() + TAG_LEN);
                out.extend_from_slice(&iv);
                let mut body = plain.to_vec();
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(aad),
                    &mut body,
                )
                .map_err(|_| "AES-GCM encryption failed".to_owned())?;
                out.extend_from_slice(&body);
                Ok(out)
            }
        }
    }

    /// Opens what [`encrypt`](Self::encrypt) made. `Err(true)`: the HSM failed (counted);
    /// `Err(false)`: the ticket does not authenticate (the client's problem).
    fn decrypt(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, bool> {
        match self {
            TicketCipher::Hsm(c) => match c.decrypt(sealed, aad) {
                Ok(mut plain) => Ok(std::mem::take(&mut *plain)),
                Err(e) => Err(e.code() != "invalid_input"),
            },
            TicketCipher::Local(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let (iv, body) = sealed.split_at(IV_LEN);
                let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| false)?;
                let mut body = body.to_vec();
                let n = key
                    .open_in_place(nonce, Aad::from(aad), &mut body)
                    .map_err(|_| false)?
                    .len();
                body.truncate(n);
                Ok(body)
            }
        }
    }
}

/// Where ticket keys come from.
enum Source {
    /// This process's HSM: a writer makes and rotates the keys, a reader re-reads them.
    Local {
        hsm: Arc<Hsm>,
        session: Session,
        role: NodeRole,
    },
    /// The HSM nodes of a remote-mode proxy, which make the keys and release them.
    Remote(RemoteTickets),
}

impl Source {
    /// A remote proxy re-reads like a reader (the nodes make the keys).
    fn role(&self) -> NodeRole {
        match self {
            Source::Local { role, .. } => *role,
            Source::Remote(_) => NodeRole::Reader,
        }
    }
}

/// The key name of the key object `handle` for `period` (not secret).
fn key_name(period: u64, handle: KeyHandle) -> [u8; KEY_NAME_LEN] {
    let mut name = [0u8; KEY_NAME_LEN];
    name[..8].copy_from_slice(&period.to_be_bytes());
    name[8..].copy_from_slice(&handle.0.to_be_bytes());
    name
}

/// The period a ticket key label names, if it is a ticket key label.
fn label_period(label: &str) -> Option<u64> {
    let digits = label.strip_prefix(LABEL_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Session tickets under HSM key objects (see the module documentation).
pub(crate) struct HsmTicketer {
    inner: Arc<Inner>,
    /// Wakes the maintenance task early (a reader saw an unknown key name).
    wake: Arc<tokio::sync::Notify>,
}

struct Inner {
    source: Source,
    rotation_s: u64,
    /// Unix time in seconds (a parameter so that tests control it).
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    /// The keys of the previous, current and next periods that exist; replaced whole.
    keys: ArcSwap<Vec<TicketKey>>,
    /// When (unix seconds) a reader last asked for an early re-read.
    last_wake_s: AtomicU64,
    /// Set once the start-up maintenance is done (for the log level of key changes).
    started: AtomicBool,
}

impl std::fmt::Debug for HsmTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.inner.keys.load();
        f.debug_struct("HsmTicketer")
            .field("role", &self.inner.source.role())
            .field("rotation_s", &self.inner.rotation_s)
            .field(
                "key_periods",
                &keys.iter().map(|k| k.period).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl HsmTicketer {
    fn new(
        source: Source,
        rotation_s: u64,
        clock: Box<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<HsmTicketer, Error> {
        if rotation_s == 0 {
            return Err(Error::Tickets {
                reason: "ticket_key_rotation_s must be positive".into(),
            });
        }
        Ok(HsmTicketer {
            inner: Arc::new(Inner {
                source,
                rotation_s,
                clock,
                keys: ArcSwap::from_pointee(Vec::new()),
                last_wake_s: AtomicU64::new(0),
                started: AtomicBool::new(false),
            }),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Starts the background task: maintenance at every period boundary and at least every
    /// [`MAINTENANCE_INTERVAL`], or when woken. It ends when the ticketer is dropped.
    fn spawn_maintenance(&self, runtime: &tokio::runtime::Handle) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let wake = self.wake.clone();
        runtime.spawn(async move {
            loop {
                let Some(delay) = weak.upgrade().map(|i| i.next_maintenance()) else {
                    return;
                };
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = wake.notified() => {}
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let result = tokio::task::spawn_blocking(move || inner.maintain()).await;
                match result {
                    Ok(Ok(_)) => {}
                    // Already counted and logged by `maintain`.
                    Ok(Err(_)) => {}
                    Err(e) => {
                        metrics().hsm_errors.inc();
                        tracing::warn!(error = %e, "session ticket key maintenance failed");
                    }
                }
            }
        });
    }

    /// Asks the maintenance task for an early re-read, at most every
    /// [`UNKNOWN_KEY_REFRESH_S`] seconds (readers only). Lock-free unless it wakes the task.
    fn want_refresh(&self) {
        if self.inner.source.role() != NodeRole::Reader {
            return;
        }
        let now = (self.inner.clock)();
        let last = self.inner.last_wake_s.load(Ordering::Relaxed);
        if now >= last.saturating_add(UNKNOWN_KEY_REFRESH_S)
            && self
                .inner
                .last_wake_s
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }
}

impl Inner {
    fn period_now(&self) -> u64 {
        (self.clock)() / self.rotation_s
    }

    fn label(period: u64) -> String {
        format!("{LABEL_PREFIX}{period}")
    }

    /// Time until the next run: the next period boundary, or the interval if sooner (1 s at
    /// least).
    fn next_maintenance(&self) -> Duration {
        let now = (self.clock)();
        let to_boundary = self.rotation_s - now % self.rotation_s;
        Duration::from_secs(to_boundary.max(1)).min(MAINTENANCE_INTERVAL)
    }

    /// Brings the key set up to date: the writer creates and destroys keys, a reader re-reads
    /// the store; then the set of usable keys is rebuilt. Returns how many keys are usable.
    /// Failures are counted in `keyward_hsm_errors_total` and logged.
    fn maintain(&self) -> Result<usize, Error> {
        let result = self.maintain_inner();
        if let Err(e) = &result {
            metrics().hsm_errors.inc();
            tracing::warn!(error = %e, "session ticket keys could not be brought up to date; the keys known so far stay in use");
        }
        result
    }

    fn maintain_inner(&self) -> Result<usize, Error> {
        let now = self.period_now();
        let keys = match &self.source {
            Source::Local { hsm, session, role } => {
                self.maintain_local(hsm, session, *role, now)?
            }
            Source::Remote(r) => {
                let old = self.keys.load();
                // Each release is an audit entry on the nodes: ask only when the keys of the
                // current or the next period are not held yet (about once per period).
                let held = |p: u64| old.iter().any(|k| k.period == p);
                if held(now) && held(now.saturating_add(1)) {
                    return Ok(old.len());
                }
                let mut keys = r.fetch(self.rotation_s)?;
                for k in &mut keys {
                    // Keep the key already in use (same name, same value).
                    if let Some(o) = old.iter().find(|o| o.name == k.name) {
                        k.cipher = o.cipher.clone();
                    } else {
                        key_event!(
                            self,
                            period = k.period,
                            "received a session ticket key from the HSM nodes"
                        );
                    }
                }
                keys
            }
        };
        let count = keys.len();
        if !keys.iter().any(|k| k.period == now) {
            tracing::warn!(
                period = now,
                "no session ticket key for the current period yet; is a writer node running (or, in remote mode, did the HSM nodes release one)?"
            );
        }
        self.keys.store(Arc::new(keys));
        Ok(count)
    }

    /// The keys in this process's HSM: the writer makes and destroys them, a reader re-reads.
    fn maintain_local(
        &self,
        hsm: &Hsm,
        session: &Session,
        role: NodeRole,
        now: u64,
    ) -> Result<Vec<TicketKey>, Error> {
        let hsm_err = |what: &str, e: keyward_hsm::Error| Error::Tickets {
            reason: format!("{what}: {e}"),
        };
        match role {
            NodeRole::Writer => {
                // On a cluster store, another node may have made this period's key already.
                hsm.catch_up()
                    .map_err(|e| hsm_err("catching up with the cluster store", e))?;
                for period in [now, now.saturating_add(1)] {
                    self.ensure_key(hsm, session, period)?;
                }
            }
            NodeRole::Reader => {
                let changes = hsm
                    .sync_token_objects()
                    .map_err(|e| hsm_err("re-reading key objects from the store", e))?;
                if !changes.is_empty() {
                    tracing::debug!(
                        added = changes.added.len(),
                        updated = changes.updated.len(),
                        removed = changes.removed.len(),
                        "learned key objects another node changed"
                    );
                }
            }
        }
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let page = hsm
                .list_keys(
                    session,
                    &KeyFilter {
                        class: Some(KeyClass::Secret),
                        key_type: Some("aes".into()),
                        ..KeyFilter::default()
                    },
                    after,
                    MAX_PAGE_SIZE,
                )
                .map_err(|e| hsm_err("listing ticket keys", e))?;
            for k in page.keys {
                if k.owner != session.user() {
                    continue;
                }
                if let Some(period) = label_period(&k.attributes.label) {
                    found.push((period, k.handle));
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let in_window = |p: u64| p.saturating_add(1) >= now && p <= now.saturating_add(1);
        if role == NodeRole::Writer {
            for &(period, handle) in found.iter().filter(|(p, _)| !in_window(*p)) {
                hsm.destroy_key(session, handle)
                    .map_err(|e| hsm_err("destroying an old ticket key", e))?;
                key_event!(self, period, %handle, "destroyed a session ticket key outside the rotation window");
            }
        }
        let old = self.keys.load();
        let mut keys = Vec::new();
        for (period, handle) in found.into_iter().filter(|(p, _)| in_window(*p)) {
            let name = key_name(period, handle);
            let cipher = match old.iter().find(|k| k.name == name) {
                Some(k) => k.cipher.clone(),
                None => TicketCipher::Hsm(
                    hsm.cipher(session, handle)
                        .map_err(|e| hsm_err("using a ticket key", e))?,
                ),
            };
            keys.push(TicketKey {
                period,
                name,
                cipher,
            });
        }
        keys.sort_by_key(|k| k.period);
        Ok(keys)
    }

    /// The writer: creates the key of `period` unless it exists.
    fn ensure_key(&self, hsm: &Hsm, session: &Session, period: u64) -> Result<(), Error> {
        let label = Self::label(period);
        // Only a key this service user owns counts: a key another user labelled alike (from a
        // store made before such labels were reserved) and shared with it must not take the
        // place of the ticket key.
        match hsm.find_by_label(session, &label, KeyClass::Secret) {
            Ok(k) if k.owner == session.user() => return Ok(()),
            Ok(_)
            | Err(
                keyward_hsm::Error::LabelNotFound { .. }
                | keyward_hsm::Error::LabelAmbiguous { .. },
            ) => {}
            Err(e) => {
                return Err(Error::Tickets {
                    reason: format!("looking up ticket key {label:?}: {e}"),
                })
            }
        }
        let template = KeyTemplate::labelled(&label)
            .with(AttributeName::Encrypt, true)
            .with(AttributeName::Decrypt, true)
            .with(AttributeName::Sign, false)
            .with(AttributeName::Verify, false)
            .with(AttributeName::Extractable, false);
        let info = match hsm.generate_secret_key(session, KeySpec::Aes256, &template) {
            Ok(info) => info,
            // Another node of the cluster made it a moment ago (the HSM caught up before it
            // checked the label).
            Err(keyward_hsm::Error::LabelExists { .. }) => return Ok(()),
            Err(e) => {
                return Err(Error::Tickets {
                    reason: format!("creating ticket key {label:?}: {e}"),
                })
            }
        };
        key_event!(self, period, handle = %info.handle, label = %label, "created a session ticket key in the HSM");
        Ok(())
    }
}

impl ProducesTickets for HsmTicketer {
    fn enabled(&self) -> bool {
        true
    }

    /// The rotation period, at most 7 days (RFC 8446 §4.6.1), in seconds.
    fn lifetime(&self) -> u32 {
        u32::try_from(self.inner.rotation_s.min(MAX_TICKET_LIFETIME_S)).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let now = self.inner.period_now();
        let keys = self.inner.keys.load();
        // The current key; before a reader has learned it, the previous one.
        let key = keys
            .iter()
            .find(|k| k.period == now)
            .or_else(|| keys.iter().find(|k| k.period.saturating_add(1) == now));
        let Some(key) = key else {
            metrics().hsm_errors.inc();
            self.want_refresh();
            return None;
        };
        if key.period != now {
            self.want_refresh();
        }
        match key.cipher.encrypt(plain, &key.name) {
            Ok(sealed) => {
                let mut ticket = Vec::with_capacity(KEY_NAME_LEN + sealed.len());
                ticket.extend_from_slice(&key.name);
                ticket.extend_from_slice(&sealed);
                Some(ticket)
            }
            Err(e) => {
                metrics().hsm_errors.inc();
                tracing::debug!(error = %e, "session ticket encryption failed");
                None
            }
        }
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < KEY_NAME_LEN + IV_LEN + TAG_LEN {
            return None;
        }
        let (name, sealed) = ticket.split_at(KEY_NAME_LEN);
        let now = self.inner.period_now();
        let in_window = |p: u64| p.saturating_add(1) >= now && p <= now.saturating_add(1);
        let keys = self.inner.keys.load();
        let Some(key) = keys.iter().find(|k| k.name == name) else {
            // A key this node may not know yet: only if its period is current (a reader
            // that has not re-read the store since the writer made it).
            let period = u64::from_be_bytes(name[..8].try_into().ok()?);
            if in_window(period) {
                self.want_refresh();
            }
            return None;
        };
        if !in_window(key.period) {
            return None;
        }
        match key.cipher.decrypt(sealed, name) {
            Ok(plain) => Some(plain),
            Err(hsm_failed) => {
                // A ticket that does not authenticate is the client's problem, not the HSM's.
                if hsm_failed {
                    metrics().hsm_errors.inc();
                }
                tracing::debug!(hsm_failed, "session ticket refused");
                None
            }
        }
    }
}

/// Binds tickets to a client-authentication policy: a listener that verifies client
/// certificates accepts only tickets issued under the same policy (the same CA bundle and
/// `required` setting), so a session resumed from a listener without (or with another) client
/// authentication cannot skip the certificate check. The context (a SHA-256 digest of the
/// policy) is prefixed to the session state before sealing and checked after opening.
pub(crate) struct ContextTicketer {
    inner: Arc<dyn ProducesTickets>,
    context: [u8; 32],
}

impl std::fmt::Debug for ContextTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextTicketer").finish_non_exhaustive()
    }
}

impl ContextTicketer {
    /// `policy`: bytes describing the client-authentication policy (CA bundle and flags).
    pub(crate) fn bind(inner: Arc<dyn ProducesTickets>, policy: &[u8]) -> Arc<dyn ProducesTickets> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, policy);
        let mut context = [0u8; 32];
        context.copy_from_slice(digest.as_ref());
        Arc::new(ContextTicketer { inner, context })
    }
}

impl ProducesTickets for ContextTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut bound = Vec::with_capacity(self.context.len() + plain.len());
        bound.extend_from_slice(&self.context);
        bound.extend_from_slice(plain);
        self.inner.encrypt(&bound)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher)?;
        let rest = plain.strip_prefix(&self.context[..])?;
        Some(rest.to_vec())
    }
}

#[cfg(test)]
#[path = "tickets_tests.rs"]
mod tests;
