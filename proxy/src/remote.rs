//! Remote ("keyless") signing: `[hsm] mode = "remote"`. The proxy holds no store and no
//! private key; each full handshake's signature is made by an HSM node over its API, as
//! Cloudflare's Keyless SSL edge asks its key server.
//!
//! - **The seam.** [`RemoteHsm`] is what the proxy needs from the nodes (find a key, sign,
//!   release ticket keys); the `keyward` binary implements it over `keyward-client` (one
//!   persistent HTTP/2 connection per node, multiplexing every sign; failover to the next node
//!   on a connection failure; login per node). Certificates still name keys by label.
//! - **Synchronous rustls, async network.** rustls calls `Signer::sign` synchronously, on the
//!   tokio worker that drives the handshake. The remote signer calls
//!   [`tokio::task::block_in_place`]: the worker hands its other tasks to a fresh worker
//!   thread, then this thread waits for the signature (the request itself runs on the
//!   runtime, multiplexed with every other sign). So a slow HSM delays only the handshakes
//!   waiting for a signature; the threads so parked are bounded by the listeners'
//!   `max_concurrent_handshakes` (and tokio's blocking-thread limit).
//! - **Bounded.** A listener takes one of `max_in_flight_signs` slots for each TLS handshake
//!   once its `ClientHello` has arrived and holds it to the end (`Remote::slots`); further connections wait for a slot
//!   in the async accept path, without a thread, up to the handshake timeout. So at most that
//!   many threads are ever parked in `sign`, below the runtime's blocking-thread limit (raised
//!   by as much). The sign itself is bounded by `sign_timeout_ms`: past it the handshake fails
//!   (after the `ServerHello`: no alert), the proxy keeps serving, and resumed handshakes
//!   (which need no signature) keep working.
//! - **Metrics.** `keyward_hsm_sign_duration_seconds` (the whole remote sign as the handshake
//!   sees it), `keyward_hsm_errors_total`, `keyward_remote_signs_in_flight`,
//!   `keyward_remote_sign_failures_total{reason}` (`timeout`, `error`).
//! - **Ticket keys** come from the nodes too ([`RemoteHsm::ticket_keys`], see
//!   `crate::tls::tickets`): the proxy encrypts tickets itself, so resumption needs no node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_hsm::{KeySpec, SignMechanism};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use tokio::sync::Semaphore;

use crate::http_layer::respond::LogGate;
use crate::metrics::metrics;
use crate::tls::signer::schemes_for;

/// A boxed future, as [`RemoteHsm`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A private key on the HSM nodes, as the proxy needs it.
#[derive(Clone, Debug)]
pub struct RemoteKey {
    /// Its handle.
    pub handle: u64,
    /// Its type.
    pub spec: KeySpec,
    /// `(version, SubjectPublicKeyInfo DER)` of every version still allowed to sign, newest
    /// first.
    pub versions: Vec<(u32, Vec<u8>)>,
}

/// One session-ticket key released by the nodes, still wrapped.
#[derive(Clone, Debug)]
pub struct WrappedTicketKey {
    /// Its rotation period.
    pub period: u64,
    /// Its 16-byte name (period ‖ handle, big-endian).
    pub name: [u8; 16],
    /// The AES-256 value, RSAES-OAEP-SHA256-encrypted to the proxy's key, the name as label.
    pub wrapped: Vec<u8>,
}

/// Why the nodes did not sign: a message for logs (never key bytes), and whether no node could
/// be reached at all (which makes the proxy refuse full handshakes for a moment, see
/// [`DOWN_FOR`]).
#[derive(Clone, Debug)]
pub struct SignFailure {
    /// No node answered (connection refused or reset, no answer in time, `5xx`).
    pub unreachable: bool,
    /// What happened.
    pub message: String,
}

/// After a sign fails because no node could be reached, full handshakes are refused for this
/// long before their `ServerHello`, with a `handshake_failure` alert, instead of each one
/// trying the nodes again; then the next handshake tries them. rustls can send no alert once
/// its `ServerHello` is out, so without this every such handshake would end in a bare close.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// What the proxy needs from the HSM nodes. Errors are messages for logs (never key bytes).
pub trait RemoteHsm: Send + Sync + std::fmt::Debug + 'static {
    /// The private key labelled `label` that the proxy's user may use.
    fn private_key<'a>(&'a self, label: &'a str) -> BoxFuture<'a, Result<RemoteKey, String>>;
    /// Signs `message` (unhashed) with version `version` of key `handle`; `mechanism` is the
    /// API's name (`ecdsa-sha256`, `rsa-pss-sha256`, …). ECDSA signatures are DER.
    fn sign<'a>(
        &'a self,
        handle: u64,
        version: u32,
        mechanism: &'static str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignFailure>>;
    /// The user's ticket keys around now, encrypted to `recipient_spki` (RSA, DER).
    fn ticket_keys<'a>(
        &'a self,
        rotation_s: u64,
        recipient_spki: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<WrappedTicketKey>, String>>;
}

/// The nodes with the proxy's bounds: what listeners and the ticketer use.
#[derive(Debug)]
pub struct Remote {
    hsm: Arc<dyn RemoteHsm>,
    /// `max_in_flight_signs`: a handshake takes one once its `ClientHello` has arrived (see
    /// [`Remote::slots`]).
    slots: Arc<Semaphore>,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
    /// Until when (milliseconds since `epoch`) no node is thought reachable; 0: reachable.
    down_until_ms: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// One warning per [`LOG_EVERY_MS`] about failed signs, with the count of the others.
    log: LogGate,
}

/// At most one warning about failed remote signs per this many milliseconds.
const LOG_EVERY_MS: u64 = 10_000;

/// Why a remote signature failed.
#[derive(Debug, thiserror::Error)]
enum RemoteSignError {
    #[error("no signature from the HSM nodes within {0} ms (waiting for a slot included)")]
    Timeout(u128),
    #[error("the HSM nodes refused the signature: {}", .0.message)]
    Refused(SignFailure),
}

impl Remote {
    /// `hsm` with at most `max_in_flight` signs at once, each handshake waiting at most
    /// `timeout` for its signature. Must be called inside the tokio runtime that will drive
    /// the requests.
    pub fn new(hsm: Arc<dyn RemoteHsm>, max_in_flight: usize, timeout: Duration) -> Arc<Self> {
        Arc::new(Remote {
            hsm,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            timeout,
            runtime: tokio::runtime::Handle::current(),
            down_until_ms: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
            log: LogGate::default(),
        })
    }

    /// The nodes.
    pub(crate) fn hsm(&self) -> &dyn RemoteHsm {
        self.hsm.as_ref()
    }

    /// Runs `fut` to completion from synchronous code: on a runtime worker, after handing the
    /// worker's other tasks to another thread (`block_in_place`); elsewhere, directly.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let on_multi_thread_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_multi_thread_worker {
            tokio::task::block_in_place(|| self.runtime.block_on(fut))
        } else {
            self.runtime.block_on(fut)
        }
    }

    /// Whether the nodes were unreachable less than [`DOWN_FOR`] ago (a relaxed load of one
    /// atomic: the only shared state a full handshake reads before signing).
    pub(crate) fn is_down(&self) -> bool {
        let until = self
            .down_until_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        until != 0 && (self.epoch.elapsed().as_millis() as u64) < until
    }

    /// A slot for one handshake, waited for without a thread: each listener takes one before
    /// the TLS handshake starts and holds it to the end, so that at most
    /// `max_in_flight_signs` threads ever wait in [`Signer::sign`] (each waiting signer parks
    /// its thread, and tokio's pool of such threads is finite: waiting there would deadlock
    /// the runtime under overload).
    pub(crate) fn slots(&self) -> Arc<Semaphore> {
        self.slots.clone()
    }

    /// One signature (its handshake holds a slot), within the timeout.
    fn sign(
        &self,
        handle: u64,
        version: u32,
        mechanism: &'static str,
        message: &[u8],
    ) -> Result<Vec<u8>, RemoteSignError> {
        let m = metrics();
        let started = Instant::now();
        let result = self.block_on(async {
            tokio::time::timeout(self.timeout, async {
                let _in_flight = InFlight::new(&m.remote_signs_in_flight);
                self.hsm
                    .sign(handle, version, mechanism, message)
                    .await
                    .map_err(RemoteSignError::Refused)
            })
            .await
            .unwrap_or(Err(RemoteSignError::Timeout(self.timeout.as_millis())))
        });
        m.hsm_sign_duration.observe(started.elapsed().as_secs_f64());
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        // Only "no node could be reached" refuses the next handshakes at once; a timeout may
        // be one slow node or a burst waiting for slots, and the next sign may well succeed.
        let down = matches!(
            &result,
            Err(RemoteSignError::Refused(SignFailure {
                unreachable: true,
                ..
            }))
        );
        if down {
            let until = now_ms + DOWN_FOR.as_millis() as u64;
            self.down_until_ms
                .store(until, std::sync::atomic::Ordering::Relaxed);
        } else if result.is_ok()
            && self
                .down_until_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                != 0
        {
            self.down_until_ms
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        if let Err(e) = &result {
            m.hsm_errors.inc();
            let reason = match e {
                RemoteSignError::Timeout(_) => "timeout",
                RemoteSignError::Refused(_) => "error",
            };
            m.remote_sign_failures.with_label_values(&[reason]).inc();
            if let Some(suppressed) = self.log.admit(now_ms, LOG_EVERY_MS) {
                tracing::warn!(
                    error = %e,
                    handle,
                    suppressed,
                    "remote signature failed: this full handshake fails (resumed sessions need no signature)"
                );
            }
        }
        result
    }
}

/// Counts one sign in `keyward_remote_signs_in_flight` until dropped (also when the timeout
/// drops the request half-way).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A remote private key as rustls sees it: its handle, version and public key, never bytes.
#[derive(Debug)]
pub(crate) struct RemoteSigningKey {
    remote: Arc<Remote>,
    handle: u64,
    version: u32,
    spec: KeySpec,
    spki: Vec<u8>,
}

impl RemoteSigningKey {
    pub(crate) fn new(
        remote: Arc<Remote>,
        handle: u64,
        version: u32,
        spec: KeySpec,
        spki: Vec<u8>,
    ) -> Self {
        RemoteSigningKey {
            remote,
            handle,
            version,
            spec,
            spki,
        }
    }
}

impl SigningKey for RemoteSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        // No node reachable a moment ago: refuse now, before the ServerHello, so that rustls
        // sends a `handshake_failure` alert (no scheme in common) instead of failing later
        // without one.
        if self.remote.is_down() {
            metrics()
                .remote_sign_failures
                .with_label_values(&["down"])
                .inc();
            let now_ms = self.remote.epoch.elapsed().as_millis() as u64;
            if let Some(suppressed) = self.remote.log.admit(now_ms, LOG_EVERY_MS) {
                tracing::warn!(
                    suppressed,
                    "no HSM node reachable: full handshakes are refused with a handshake_failure alert (resumed sessions are still served)"
                );
            }
            return None;
        }
        let (scheme, mechanism) = schemes_for(self.spec)
            .iter()
            .find(|(s, _)| offered.contains(s))?;
        Some(Box::new(RemoteSigner {
            remote: self.remote.clone(),
            handle: self.handle,
            version: self.version,
            scheme: *scheme,
            mechanism: *mechanism,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.spec.key_type() {
            "ec" => SignatureAlgorithm::ECDSA,
            "ed25519" => SignatureAlgorithm::ED25519,
            _ => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct RemoteSigner {
    remote: Arc<Remote>,
    handle: u64,
    version: u32,
    scheme: SignatureScheme,
    mechanism: SignMechanism,
}

impl Signer for RemoteSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.remote
            .sign(self.handle, self.version, self.mechanism.as_str(), message)
            .map_err(|e| {
                tracing::debug!(error = %e, handle = self.handle, "remote signature failed");
                rustls::Error::Other(rustls::OtherError(Arc::new(e)))
            })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
