//! The module's state between `C_Initialize` and `C_Finalize`: the tokens (one SDK client per
//! cluster), the sessions, and a short-lived cache of the keys the application looked at.
//!
//! - **Fork safety.** The state records the process that initialized it. In a child after
//!   `fork()` every function but `C_Initialize` answers `CKR_CRYPTOKI_NOT_INITIALIZED` (one
//!   `getpid` and an atomic load, no lock that the parent may have held). `C_Initialize` in
//!   the child leaks the parent's state (its runtime's threads do not exist in the child, so it
//!   cannot be shut down) and builds a new one: new runtime, new connections, no login.
//! - **Threads.** The SDK is async; the module runs a small tokio runtime of its own and each
//!   call blocks the application's thread on it. Sessions are independent
//!   (`CKF_OS_LOCKING_OK`): one lock per session, and the session table's lock is held only
//!   to look a session up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use keyward_client::{Client, ClientConfig, Key, Role};
use zeroize::Zeroizing;

use crate::config::{Config, TokenConfig};
use crate::error::{rv, Doing, Rv};
use crate::session::{Session, SessionEntry};

/// The state, once initialized.
static MODULE: ArcSwapOption<Module> = ArcSwapOption::const_empty();
/// The process that initialized [`MODULE`] (0: none).
static INIT_PID: AtomicU32 = AtomicU32::new(0);
/// Serializes `C_Initialize` and `C_Finalize` (never taken by other functions).
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The longest PIN (`ulMaxPinLen`): `user:password` of at most this many bytes.
pub(crate) const MAX_PIN: usize = 1024;

/// How long a key's attributes read from the nodes are reused (`C_GetAttributeValue` is
/// called many times per key by most applications).
const CACHE_FOR: Duration = Duration::from_secs(5);

/// The state of an initialized module.
pub(crate) struct Module {
    runtime: Option<tokio::runtime::Runtime>,
    /// One per slot.
    pub(crate) tokens: Vec<Token>,
    sessions: Mutex<HashMap<CK_SESSION_HANDLE, Arc<SessionEntry>>>,
    next_session: AtomicU64,
}

/// One cluster: the slot's token.
pub(crate) struct Token {
    pub(crate) config: TokenConfig,
    pub(crate) client: Client,
    /// The logged-in user (PKCS#11 logins are per token, for every session).
    login: Mutex<Option<String>>,
    cache: Mutex<HashMap<u64, Cached>>,
}

/// A key as last read from the nodes, with its public key once asked for.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) key: Key,
    pub(crate) spki: Option<Vec<u8>>,
    at: Instant,
}

/// The state, or `CKR_CRYPTOKI_NOT_INITIALIZED` (also in a child process after `fork()` that
/// has not called `C_Initialize`).
pub(crate) fn module() -> Rv<Arc<Module>> {
    if INIT_PID.load(Ordering::Acquire) != std::process::id() {
        return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    MODULE.load_full().ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)
}

/// `C_Initialize`.
pub(crate) fn initialize() -> Rv {
    let _one = INIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if INIT_PID.load(Ordering::Acquire) == pid && MODULE.load().is_some() {
        return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED);
    }
    let module = Module::new().map_err(|e| {
        // The application sees only CKR_GENERAL_ERROR: say why once, where an operator looks.
        eprintln!("keyward-pkcs11: C_Initialize failed: {e}");
        CKR_GENERAL_ERROR
    })?;
    if let Some(parent) = MODULE.swap(Some(Arc::new(module))) {
        if INIT_PID.load(Ordering::Acquire) != pid {
            // The parent's state, inherited through fork(): its runtime threads are gone in
            // this process, so it can be neither used nor shut down.
            std::mem::forget(parent);
        }
    }
    INIT_PID.store(pid, Ordering::Release);
    Ok(())
}

/// `C_Finalize`.
pub(crate) fn finalize() -> Rv {
    let _one = INIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let m = module()?;
    // End the nodes' login sessions, and with them the session objects (best effort: an
    // unreachable node's session expires by itself).
    for token in &m.tokens {
        if token.user().is_some() {
            let _ = m.logout(token);
        }
    }
    drop(m);
    INIT_PID.store(0, Ordering::Release);
    drop(MODULE.swap(None));
    Ok(())
}

impl Drop for Module {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Module {
    fn new() -> Result<Module, String> {
        let config = Config::load()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keyward-pkcs11")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the module's runtime: {e}"))?;
        let _entered = runtime.enter();
        let mut tokens = Vec::new();
        for (i, t) in config.token.into_iter().enumerate() {
            // Two tries per call (the second on another node when there is one), a node that
            // failed skipped for 2 s: a stopped node costs a call at most 2 × the timeout.
            let mut cfg = ClientConfig::new(t.servers.iter().cloned())
                .ca_cert_pem_file(&t.ca_file)
                .map_err(|e| format!("token[{i}].ca_file {}: {e}", t.ca_file.display()))?
                .request_timeout(t.request_timeout())
                .connect_timeout(t.request_timeout().min(Duration::from_secs(2)))
                .max_attempts(2)
                .cool_down(Duration::from_secs(2));
            if let (Some(cert), Some(key)) = (&t.client_cert_file, &t.client_key_file) {
                cfg = cfg
                    .client_identity_pem_files(cert, key)
                    .map_err(|e| format!("token[{i}] client certificate: {e}"))?;
            }
            let client = Client::new(cfg).map_err(|e| format!("token[{i}]: {e}"))?;
            tokens.push(Token {
                config: t,
                client,
                login: Mutex::new(None),
                cache: Mutex::new(HashMap::new()),
            });
        }
        drop(_entered);
        Ok(Module {
            runtime: Some(runtime),
            tokens,
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
        })
    }

    /// Runs an SDK call to completion on the module's runtime, from the application's thread.
    pub(crate) fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(fut),
            None => unreachable!("the runtime lives as long as the module"),
        }
    }

    /// The token of slot `slot`.
    pub(crate) fn token(&self, slot: CK_SLOT_ID) -> Rv<&Token> {
        usize::try_from(slot)
            .ok()
            .and_then(|i| self.tokens.get(i))
            .ok_or(CKR_SLOT_ID_INVALID)
    }

    /// Opens a session on `slot`.
    pub(crate) fn open_session(&self, slot: CK_SLOT_ID, rw: bool) -> Rv<CK_SESSION_HANDLE> {
        self.token(slot)?;
        let handle = self.next_session.fetch_add(1, Ordering::Relaxed);
        let entry = SessionEntry {
            slot,
            rw,
            state: Mutex::new(Session::default()),
        };
        self.sessions_map().insert(handle, Arc::new(entry));
        Ok(handle)
    }

    /// A session by handle.
    pub(crate) fn session(&self, handle: CK_SESSION_HANDLE) -> Rv<Arc<SessionEntry>> {
        self.sessions_map()
            .get(&handle)
            .cloned()
            .ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    /// Closes one session; the last one closed on a token logs it out.
    pub(crate) fn close_session(&self, handle: CK_SESSION_HANDLE) -> Rv {
        let session = self
            .sessions_map()
            .remove(&handle)
            .ok_or(CKR_SESSION_HANDLE_INVALID)?;
        self.logout_if_last(session.slot);
        Ok(())
    }

    /// Closes every session of `slot` and logs the token out.
    pub(crate) fn close_all(&self, slot: CK_SLOT_ID) -> Rv {
        self.token(slot)?;
        self.sessions_map().retain(|_, s| s.slot != slot);
        self.logout_if_last(slot);
        Ok(())
    }

    /// The number of sessions on `slot`: `(all, read-write)`.
    pub(crate) fn session_counts(&self, slot: CK_SLOT_ID) -> (u64, u64) {
        let map = self.sessions_map();
        let mine: Vec<_> = map.values().filter(|s| s.slot == slot).collect();
        let rw = mine.iter().filter(|s| s.rw).count();
        (mine.len() as u64, rw as u64)
    }

    fn logout_if_last(&self, slot: CK_SLOT_ID) {
        if self.session_counts(slot).0 == 0 {
            if let Ok(token) = self.token(slot) {
                if token.user().is_some() {
                    let _ = self.logout(token);
                }
            }
        }
    }

    fn sessions_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CK_SESSION_HANDLE, Arc<SessionEntry>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `C_Login` as a crypto-user: `pin` is `user:password` (or the password of the
    /// configured `username`).
    pub(crate) fn login(&self, token: &Token, pin: &[u8]) -> Rv {
        if token.user().is_some() {
            return Err(CKR_USER_ALREADY_LOGGED_IN);
        }
        // The PIN borrows the application's buffer: nothing to zeroize here; the copies are.
        if pin.len() > MAX_PIN {
            return Err(CKR_PIN_LEN_RANGE);
        }
        if pin.is_empty() && token.config.client_cert_file.is_some() {
            return self.login_by_certificate(token);
        }
        let pin = std::str::from_utf8(pin).map_err(|_| CKR_PIN_INCORRECT)?;
        let (user, password) = match pin.split_once(':') {
            Some((u, p)) => (u.to_owned(), Zeroizing::new(p.to_owned())),
            None => match &token.config.username {
                Some(u) => (u.clone(), Zeroizing::new(pin.to_string())),
                None => return Err(CKR_PIN_INCORRECT),
            },
        };
        if user.is_empty() || password.is_empty() {
            return Err(CKR_PIN_INCORRECT);
        }
        let session = self
            .block_on(token.client.login(&user, password.as_str()))
            .map_err(|e| rv(&e, Doing::Login))?;
        if session.role != Role::CryptoUser {
            let _ = self.block_on(token.client.logout());
            return Err(CKR_USER_TYPE_INVALID);
        }
        *lock(&token.login) = Some(user);
        token.clear_cache();
        Ok(())
    }

    /// `C_Login` with an empty PIN on a token with a client certificate: the nodes log the
    /// connection in as the certificate's user; one call checks that they do.
    fn login_by_certificate(&self, token: &Token) -> Rv {
        let probe = keyward_client::KeyFilter {
            limit: Some(1),
            ..keyward_client::KeyFilter::default()
        };
        self.block_on(token.client.list_keys(&probe))
            .map_err(|e| match rv(&e, Doing::Login) {
                // No session for this certificate: no user of its name, a locked one, or a
                // sealed node.
                CKR_USER_NOT_LOGGED_IN => CKR_PIN_INCORRECT,
                other => other,
            })?;
        *lock(&token.login) = Some("(client certificate)".to_owned());
        token.clear_cache();
        Ok(())
    }

    /// `C_Logout`.
    pub(crate) fn logout(&self, token: &Token) -> Rv {
        if lock(&token.login).take().is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        token.clear_cache();
        // The server-side session ends too; an unreachable node's session expires by itself.
        let _ = self.block_on(token.client.logout());
        Ok(())
    }

    /// A key, from the cache when read less than [`CACHE_FOR`] ago.
    pub(crate) fn key(&self, token: &Token, handle: u64, doing: Doing) -> Rv<Cached> {
        token.need_login()?;
        if let Some(c) = lock(&token.cache).get(&handle) {
            if c.at.elapsed() < CACHE_FOR {
                return Ok(c.clone());
            }
        }
        let key = self
            .block_on(token.client.get_key(handle))
            .map_err(|e| rv(&e, doing))?;
        Ok(token.remember(key))
    }

    /// A key with its SubjectPublicKeyInfo DER (asymmetric keys).
    pub(crate) fn key_with_spki(&self, token: &Token, handle: u64) -> Rv<Cached> {
        let mut c = self.key(token, handle, Doing::Object)?;
        if c.spki.is_none() && c.key.class.as_str() != "secret" {
            let public = self
                .block_on(token.client.public_key(handle))
                .map_err(|e| rv(&e, Doing::Object))?;
            c.spki = Some(public.der);
            lock(&token.cache).insert(handle, c.clone());
        }
        Ok(c)
    }
}

impl Token {
    /// The logged-in user.
    pub(crate) fn user(&self) -> Option<String> {
        lock(&self.login).clone()
    }

    /// `CKR_USER_NOT_LOGGED_IN` unless logged in.
    pub(crate) fn need_login(&self) -> Rv {
        match self.user() {
            Some(_) => Ok(()),
            None => Err(CKR_USER_NOT_LOGGED_IN),
        }
    }

    /// Caches a key read from the nodes.
    pub(crate) fn remember(&self, key: Key) -> Cached {
        let c = Cached {
            key,
            spki: None,
            at: Instant::now(),
        };
        let mut cache = lock(&self.cache);
        if cache.len() > 10_000 {
            cache.retain(|_, c| c.at.elapsed() < CACHE_FOR);
        }
        cache.insert(c.key.handle, c.clone());
        c
    }

    /// Forgets a key (after it changed or was destroyed).
    pub(crate) fn forget(&self, handle: u64) {
        lock(&self.cache).remove(&handle);
    }

    fn clear_cache(&self) {
        lock(&self.cache).clear();
    }
}

/// Locks a mutex, also after a panic in another thread (each critical section leaves its data
/// consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
