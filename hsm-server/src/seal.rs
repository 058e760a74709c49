//! The seal of a serving node ([`SealGate`]): sealed, it answers only health, readiness and
//! `/v1/sys/*`; unsealed, the whole API. Routes named as Vault names them:
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /v1/sys/seal-status` | anyone | [`SealStatus`] |
//! | `POST /v1/sys/unseal` | anyone (the share or passphrase is the credential) | one share, the passphrase, or `reset` |
//! | `POST /v1/sys/seal` | admin | drops every key from memory; the node is sealed until unsealed again |
//! | `POST /v1/sys/rekey` | admin, with the current shares or passphrase | a new master key and seal |
//!
//! While sealed, every other route answers `503 sealed` and `/v1/ready` answers `503
//! {"status":"sealed"}`; `/v1/health` answers `200 {"status":"sealed"}`. Each node of a
//! cluster is unsealed on its own (as Vault's), with the cluster's one seal.
//!
//! The HSM itself is opened by the node's [`Opener`] (the binary's: it knows the store and
//! the key file); the gate only holds it, in one place, so that sealing drops it: the
//! routers, the certificate logins of open connections and the binary's hooks hold it
//! weakly or are replaced, so the last `Arc` goes and the keys are zeroized.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use keyward_api::{Health, RekeyRequest, RekeyResponse, SealStatus, UnsealRequest};
use keyward_hsm::{
    passphrase, shamir, Error, Hsm, MasterKey, Role, SealConfig, SealType, UnsealStep, Unsealer,
};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::api::{ApiJson, AppState, Caller};
use crate::error::{ApiError, ErrorBody};

/// The node's store, as the gate needs it: given by the binary, which knows the store and
/// the key file.
pub trait NodeStore: Send + Sync {
    /// Opens the HSM with a master key (`None`: the node's key file, for a key-file seal).
    ///
    /// # Errors
    /// [`Error::Sealed`] if the key does not open the store; any error of opening it.
    fn open(&self, master: Option<&MasterKey>) -> Result<Hsm, Error>;

    /// The store's seal configuration as stored now (it changes with a rekey on any node).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::StoreInconsistent`].
    fn seal_config(&self) -> Result<SealConfig, Error>;
}

/// The node's store, boxed.
pub type Opener = Box<dyn NodeStore>;

/// Largest body of `/v1/sys/unseal` and `/v1/sys/rekey` (read before any login), bytes.
pub const MAX_SEAL_BODY_BYTES: usize = 8192;

enum State_ {
    Sealed(Unsealer),
    Unsealed(Arc<Hsm>),
}

/// The seal of one serving node: the HSM when unsealed, the shares given so far when sealed.
pub struct SealGate {
    state: Mutex<State_>,
    status: Mutex<SealStatus>,
    router: ArcSwap<Router>,
    opener: Opener,
    node: String,
    events: watch::Sender<Option<Arc<Hsm>>>,
    on_seal: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Unseal attempts: a bounded number at once, failures throttled per source address.
    guard: Arc<crate::login_guard::LoginGuard>,
}

impl std::fmt::Debug for SealGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealGate")
            .field("status", &*lock(&self.status))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn status_of(config: &SealConfig, sealed: bool, progress: u8) -> SealStatus {
    let (threshold, shares) = config
        .shamir
        .as_ref()
        .map_or((0, 0), |s| (s.threshold, s.shares));
    SealStatus {
        sealed,
        seal_type: config.seal_type.as_str().into(),
        threshold,
        shares,
        progress,
        generation: config.generation,
    }
}

impl SealGate {
    /// A gate over an HSM that is already open (unsealed at start by its key file, or in
    /// tests); `opener` opens it again after a seal. `node` names this node in the audit
    /// trail's `unseal` and `seal` entries.
    ///
    /// # Errors
    /// [`Error::Store`] reading the seal configuration.
    pub fn unsealed(hsm: Arc<Hsm>, opener: Opener, node: &str) -> Result<Arc<Self>, Error> {
        let status = status_of(&hsm.seal_config()?, false, 0);
        let gate = Self::build(State_::Unsealed(hsm.clone()), status, opener, node);
        gate.router.store(Arc::new(crate::router(hsm.clone())));
        gate.events.send_replace(Some(hsm));
        Ok(gate)
    }

    /// A gate of a node that starts sealed by `config` (read from the store with
    /// [`keyward_hsm::read_seal_config`]).
    pub fn sealed(config: SealConfig, opener: Opener, node: &str) -> Arc<Self> {
        let status = status_of(&config, true, 0);
        Self::build(State_::Sealed(Unsealer::new(config)), status, opener, node)
    }

    fn build(state: State_, status: SealStatus, opener: Opener, node: &str) -> Arc<Self> {
        Arc::new(SealGate {
            state: Mutex::new(state),
            status: Mutex::new(status),
            router: ArcSwap::from_pointee(sealed_router()),
            opener,
            node: node.to_owned(),
            events: watch::channel(None).0,
            on_seal: Mutex::new(Vec::new()),
            guard: Arc::new(crate::login_guard::LoginGuard::new(4, 1)),
        })
    }

    /// The seal's status now (unsealed: as the store says, so that a rekey through another
    /// node shows; blocking).
    pub fn status(&self) -> SealStatus {
        // Unsealed: through the HSM's own store connection. Sealed: as recorded (each unseal
        // attempt re-reads the seal first); never a new connection per call, since anyone may
        // ask.
        match self.hsm().map(|h| h.seal_config()) {
            Some(Ok(config)) => status_of(&config, false, 0),
            _ => self.cached_status(),
        }
    }

    /// The HSM while unsealed.
    pub fn hsm(&self) -> Option<Arc<Hsm>> {
        match &*lock(&self.state) {
            State_::Unsealed(h) => Some(h.clone()),
            State_::Sealed(_) => None,
        }
    }

    /// The HSM after each unseal (`Some`) and seal (`None`), for what the node runs beside
    /// the API (the proxy, following a cluster store). Drop the `Arc` when it turns `None`.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Hsm>>> {
        self.events.subscribe()
    }

    /// The API's router: `/v1/sys/*` here, every other route to the HSM's router while
    /// unsealed, or to `503 sealed`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/sys/seal-status", get(seal_status))
            .route("/v1/sys/unseal", post(unseal))
            .fallback(dispatch)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_SEAL_BODY_BYTES))
            // Its own routes only: the fallback hands requests to the HSM's router, whose
            // routes have their own limits.
            .route_layer(axum::middleware::from_fn_with_state(
                MAX_SEAL_BODY_BYTES,
                crate::body_limit::refuse_declared_over,
            ))
            .with_state(self.clone())
    }

    /// Applies one unseal request (blocking: Argon2id, opening the store).
    fn unseal_blocking(&self, req: UnsealRequest) -> Result<SealStatus, Error> {
        let mut state = lock(&self.state);
        let State_::Sealed(unsealer) = &mut *state else {
            drop(state);
            return Ok(self.status());
        };
        // A rekey through another node since this one sealed: the new seal counts (and the
        // shares given so far, of the old one, no longer do).
        let stored = self.opener.seal_config()?;
        if stored != *unsealer.config() {
            *unsealer = Unsealer::new(stored.clone());
            *lock(&self.status) = status_of(&stored, true, 0);
        }
        if req.reset {
            unsealer.reset();
            lock(&self.status).progress = 0;
            return Ok(self.cached_status());
        }
        let config = unsealer.config().clone();
        let master = match (config.seal_type, &req.key, &req.passphrase) {
            (SealType::KeyFile, None, None) => None,
            (SealType::Passphrase, None, Some(p)) => {
                Some(passphrase::master_key(&config, p.expose_secret())?)
            }
            (SealType::Shamir, Some(k), None) => match unsealer.add(k.expose_secret())? {
                UnsealStep::NeedMore { given, .. } => {
                    lock(&self.status).progress = given;
                    return Ok(self.cached_status());
                }
                UnsealStep::Complete(m) => Some(m),
            },
            (t, _, _) => {
                return Err(Error::InvalidInput {
                    reason: format!(
                        "this node's seal is {}: unseal it with {}",
                        t.as_str(),
                        match t {
                            SealType::KeyFile => "an empty request (the node reads its key file)",
                            SealType::Passphrase => "\"passphrase\" only",
                            SealType::Shamir => "one \"key\" (share) per request",
                        }
                    ),
                })
            }
        };
        lock(&self.status).progress = 0;
        let hsm = match self.opener.open(master.as_ref()) {
            Ok(h) => Arc::new(h),
            Err(Error::Sealed { .. }) if master.is_some() => {
                return Err(Error::UnsealKeyRejected {
                    reason: match config.seal_type {
                        SealType::Passphrase => "wrong passphrase".into(),
                        _ => "the shares given do not open the store (progress reset)".into(),
                    },
                })
            }
            Err(e) => return Err(e),
        };
        if !hsm.is_read_only() {
            hsm.record_unseal(&self.node)?;
        }
        tracing::info!(seal = config.seal_type.as_str(), "unsealed");
        *state = State_::Unsealed(hsm.clone());
        *lock(&self.status) = status_of(&hsm.seal_config()?, false, 0);
        self.router.store(Arc::new(crate::router(hsm.clone())));
        self.events.send_replace(Some(hsm));
        Ok(self.cached_status())
    }

    /// The status as last recorded (never blocks on the store or the state).
    fn cached_status(&self) -> SealStatus {
        lock(&self.status).clone()
    }

    /// Seals the node: the HSM's routers and hooks let go of it, its keys are dropped
    /// (zeroized) once the requests in flight end. Records `seal` in the audit trail first.
    ///
    /// # Errors
    /// [`Error::Store`] reading the seal configuration or writing the audit entry (the node
    /// stays unsealed).
    pub fn seal(&self) -> Result<SealStatus, Error> {
        let mut state = lock(&self.state);
        let State_::Unsealed(hsm) = &*state else {
            drop(state);
            return Ok(self.status());
        };
        let config = hsm.seal_config()?;
        if !hsm.is_read_only() {
            hsm.record_seal(&self.node)?;
        }
        *state = State_::Sealed(Unsealer::new(config.clone()));
        drop(state);
        self.router.store(Arc::new(sealed_router()));
        self.events.send_replace(None);
        for f in lock(&self.on_seal).iter() {
            f();
        }
        *lock(&self.status) = status_of(&config, true, 0);
        tracing::info!("sealed: every key dropped from memory");
        Ok(self.cached_status())
    }

    /// Runs `f` each time the node seals (to drop what holds the HSM's keys).
    pub fn on_seal(&self, f: Box<dyn Fn() + Send + Sync>) {
        lock(&self.on_seal).push(f);
    }

    /// The HSM, held weakly (what a connection keeps for its certificate login).
    pub fn weak_hsm(&self) -> Option<Weak<Hsm>> {
        self.hsm().map(|h| Arc::downgrade(&h))
    }
}

/// The router of a sealed node.
fn sealed_router() -> Router {
    Router::new()
        .route(
            "/v1/health",
            get(|| async {
                Json(Health {
                    status: "sealed".into(),
                })
            }),
        )
        .route(
            "/v1/ready",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(Health {
                        status: "sealed".into(),
                    }),
                )
            }),
        )
        .fallback(|body: axum::body::Body| async move {
            // Read a small body before answering: an HTTP/2 answer sent while the request
            // body is still coming resets the stream, which clients report as a framing
            // error instead of this answer. Larger bodies are not read.
            let _ = axum::body::to_bytes(body, MAX_SEAL_BODY_BYTES).await;
            ApiError::Hsm(Error::Sealed {
                reason: "unseal this node first (`keyward operator unseal`)",
            })
        })
}

async fn dispatch(State(gate): State<Arc<SealGate>>, mut req: Request) -> Response {
    req.extensions_mut().insert(gate.clone());
    let router = gate.router.load_full();
    match (*router).clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

fn blocking_error(_: tokio::task::JoinError) -> ApiError {
    ApiError::Hsm(Error::Internal("seal task"))
}

#[utoipa::path(get, path = "/v1/sys/seal-status", tag = "sys",
    responses((status = 200, body = SealStatus)))]
/// The node's seal: sealed or not, its type, shares and threshold, unseal progress.
pub async fn seal_status(State(gate): State<Arc<SealGate>>) -> Result<Json<SealStatus>, ApiError> {
    tokio::task::spawn_blocking(move || gate.status())
        .await
        .map(Json)
        .map_err(blocking_error)
}

#[utoipa::path(post, path = "/v1/sys/unseal", tag = "sys", request_body = UnsealRequest,
    responses((status = 200, body = SealStatus), (status = 400, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
/// Gives one unseal share (`key`), the passphrase, or `reset`; answers the status after it.
/// A share that is not one of this seal's, or given twice, answers `400 unseal_key_rejected`
/// and counts nothing; so does a wrong passphrase. An unsealed node answers its status. After
/// 10 refused attempts from one address, each further one must wait (1 s doubling to 60 s),
/// else `429 too_many_requests` with `Retry-After`.
pub async fn unseal(
    State(gate): State<Arc<SealGate>>,
    addr: Option<Extension<crate::api::ClientAddr>>,
    ApiJson(req): ApiJson<UnsealRequest>,
) -> Result<Json<SealStatus>, ApiError> {
    // The share or passphrase is the credential: attempts are bounded and failures throttled
    // per address as logins are (10 free failures, then 1 s doubling to 60 s: `429` with
    // `Retry-After`).
    let admission = gate.guard.admit_address(addr.map(|Extension(a)| a.0))?;
    let result = tokio::task::spawn_blocking(move || gate.unseal_blocking(req))
        .await
        .map_err(blocking_error)?;
    match &result {
        Err(Error::UnsealKeyRejected { .. }) => admission.failed(),
        _ => admission.succeeded(),
    }
    result.map(Json).map_err(ApiError::Hsm)
}

fn require_admin(s: &keyward_hsm::Session) -> Result<(), ApiError> {
    if s.role() == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Hsm(Error::PermissionDenied {
            reason: "only admins seal or rekey a node",
        }))
    }
}

fn gate_of(gate: Option<Extension<Arc<SealGate>>>) -> Result<Arc<SealGate>, ApiError> {
    gate.map(|Extension(g)| g).ok_or(ApiError::NotFound)
}

#[utoipa::path(post, path = "/v1/sys/seal", tag = "sys", security(("bearer" = [])),
    responses((status = 200, body = SealStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// Seals this node (admin): every key leaves memory; the API answers `503 sealed` until it
/// is unsealed again. Other nodes of a cluster are not affected.
pub async fn seal(
    Caller(c): Caller,
    gate: Option<Extension<Arc<SealGate>>>,
) -> Result<Json<SealStatus>, ApiError> {
    require_admin(&c)?;
    let gate = gate_of(gate)?;
    tokio::task::spawn_blocking(move || gate.seal())
        .await
        .map_err(blocking_error)?
        .map(Json)
        .map_err(ApiError::Hsm)
}

#[utoipa::path(post, path = "/v1/sys/rekey", tag = "sys", security(("bearer" = [])),
    request_body = RekeyRequest,
    responses((status = 200, body = RekeyResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// A new master key under a new seal (admin, with the current seal's shares or passphrase):
/// the root key is re-encrypted, no other record changes, unsealed nodes keep running; the
/// old shares or passphrase stop working at every node's next unseal. The new shares are in
/// the answer, once.
pub async fn rekey(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(req): ApiJson<RekeyRequest>,
) -> Result<Json<RekeyResponse>, ApiError> {
    require_admin(&c)?;
    let hsm = s.hsm.clone();
    tokio::task::spawn_blocking(move || rekey_blocking(&hsm, &c, req))
        .await
        .map_err(blocking_error)?
        .map(Json)
}

#[utoipa::path(post, path = "/v1/sys/backup", tag = "sys", security(("bearer" = [])),
    responses((status = 200, description = "The archive (`application/octet-stream`); its name in `Content-Disposition`, its header (JSON) in `X-Keyward-Backup`", content_type = "application/octet-stream"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// A backup archive of the whole store (admin): every record, one consistent state,
/// encrypted under a backup key wrapped by this seal's master key (format: `keyward_hsm::backup`).
/// Audited as `backup.create`. Restoring it needs the same seal.
pub async fn backup(
    State(s): State<AppState>,
    Caller(c): Caller,
    gate: Option<Extension<Arc<SealGate>>>,
) -> Result<Response, ApiError> {
    let node = gate.map_or_else(|| "api".to_owned(), |Extension(g)| g.node.clone());
    let hsm = s.hsm.clone();
    let (header, archive) = tokio::task::spawn_blocking(move || hsm.backup(&c, &node))
        .await
        .map_err(blocking_error)??;
    let name = format!("{}-{}.kwbackup", header.created_unix_ms, header.id);
    let header = serde_json::to_string(&header)
        .map_err(|_| ApiError::Hsm(Error::Internal("backup header")))?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (
                axum::http::HeaderName::from_static("x-keyward-backup"),
                header,
            ),
        ],
        archive,
    )
        .into_response())
}

fn rotation_dto(s: keyward_hsm::RotationStatus) -> keyward_api::RotationStatus {
    keyward_api::RotationStatus {
        done: s.done(),
        current_version: s.current_version,
        versions: s.versions,
        pending_records: s.pending_records,
        total_records: s.total_records,
    }
}

#[utoipa::path(post, path = "/v1/sys/rotate", tag = "sys", security(("bearer" = [])),
    responses((status = 200, body = keyward_api::RotationStatus), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// Starts a data-key rotation (admin): records written from now on are sealed under a new
/// data-key version; the node rewrites the older records in the background, in batches,
/// and destroys the older version when none is left (`GET /v1/sys/rotation`). `400
/// invalid_input` while one is under way.
pub async fn rotate(
    State(s): State<AppState>,
    Caller(c): Caller,
) -> Result<Json<keyward_api::RotationStatus>, ApiError> {
    let hsm = s.hsm.clone();
    let status = tokio::task::spawn_blocking(move || hsm.rotate_data_key(&c))
        .await
        .map_err(blocking_error)??;
    Ok(Json(rotation_dto(status)))
}

#[utoipa::path(get, path = "/v1/sys/rotation", tag = "sys", security(("bearer" = [])),
    responses((status = 200, body = keyward_api::RotationStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// Where the data-key rotation stands (admin): versions readable, records still under an
/// older one.
pub async fn rotation(
    State(s): State<AppState>,
    Caller(c): Caller,
) -> Result<Json<keyward_api::RotationStatus>, ApiError> {
    require_admin(&c)?;
    let hsm = s.hsm.clone();
    let status = tokio::task::spawn_blocking(move || hsm.rotation_status())
        .await
        .map_err(blocking_error)??;
    Ok(Json(rotation_dto(status)))
}

fn rekey_blocking(
    hsm: &Hsm,
    admin: &keyward_hsm::Session,
    req: RekeyRequest,
) -> Result<RekeyResponse, ApiError> {
    let current = hsm.seal_config()?;
    // Proof of the current seal.
    let proof = match current.seal_type {
        SealType::KeyFile => None,
        SealType::Passphrase => {
            let p = req.current_passphrase.as_ref().ok_or_else(|| {
                ApiError::BadRequest(
                    "the current seal is a passphrase: give current_passphrase".into(),
                )
            })?;
            Some(passphrase::master_key(&current, p.expose_secret())?)
        }
        SealType::Shamir => {
            let mut u = Unsealer::new(current.clone());
            let mut master = None;
            for k in &req.current_keys {
                if let UnsealStep::Complete(m) = u.add(k.expose_secret())? {
                    master = Some(m);
                    break;
                }
            }
            Some(master.ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "the current seal is shamir: give at least {} of its shares in current_keys",
                    u.threshold()
                ))
            })?)
        }
    };
    if let Some(m) = &proof {
        hsm.check_master_key(m).map_err(|_| {
            ApiError::Hsm(Error::UnsealKeyRejected {
                reason: "the current shares or passphrase do not open the store".into(),
            })
        })?;
    }
    let (master, config, keys) = match req.seal_type.as_str() {
        "shamir" => {
            let (n, m) = match (req.shares, req.threshold) {
                (Some(n), Some(m)) => (n, m),
                _ => {
                    return Err(ApiError::BadRequest(
                        "a shamir seal needs shares and threshold".into(),
                    ))
                }
            };
            let master = MasterKey::generate()?;
            let (keys, config) = shamir::split(&master, n, m)?;
            let keys = keys
                .iter()
                .map(|k| keyward_api::Password::from(k.expose()))
                .collect();
            (master, config, keys)
        }
        "passphrase" => {
            let p = req
                .passphrase
                .as_ref()
                .ok_or_else(|| ApiError::BadRequest("a passphrase seal needs passphrase".into()))?;
            let (master, config) = passphrase::new_seal(p.expose_secret())?;
            (master, config, Vec::new())
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "a rekey makes a shamir or passphrase seal, not {:?}",
                other.chars().take(32).collect::<String>()
            )))
        }
    };
    let config = hsm.rekey(admin, &master, config)?;
    Ok(RekeyResponse {
        status: status_of(&config, false, 0),
        keys,
    })
}
