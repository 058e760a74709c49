//! Keyward's configuration: one TOML file, overridden by `KEYWARD_*` environment variables,
//! validated into a [`Config`] that `keyward serve` (the proxy, the admin listener and the
//! HSM API beside them) runs from.
//!
//! Environment variables name a key path with `__` between segments, upper or lower case:
//! `KEYWARD_UPSTREAM__URL=http://127.0.0.1:8080` sets `upstream.url`,
//! `KEYWARD_HSM__DATA_DIR=/var/lib/keyward` sets `hsm.data_dir`. Variables that are not
//! configuration (`KEYWARD_CONFIG`, `KEYWARD_DATA_DIR`, and the client's `KEYWARD_SERVER`,
//! `KEYWARD_USER`, `KEYWARD_PASSWORD`, `KEYWARD_CA_CERT`, `KEYWARD_ADMIN_PASSWORD`, and
//! `KEYWARD_HSM__STORE_PASSWORD`, read when the PostgreSQL store is opened) are not
//! read here. Unknown keys and invalid values are errors naming the key and where it came
//! from. Relative paths in the file are relative to the file's folder.
//!
//! The environment is passed in, never read here, so tests do not touch the process's
//! environment:
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("keyward.toml");
//! std::fs::write(&file, r#"
//! [[listeners]]
//! address = "127.0.0.1:8443"
//! [[listeners.certificates]]
//! key_label = "web"
//! chain_file = "web.pem"
//! [upstream]
//! url = "http://127.0.0.1:8080"
//! "#).unwrap();
//! let env = [("KEYWARD_UPSTREAM__RESPONSE_TIMEOUT_MS".to_string(), "2500".to_string())];
//! let config = keyward_config::Config::load(&file, env).unwrap();
//! assert_eq!(config.upstreams["default"].response_timeout_ms, 2500);
//! assert_eq!(config.listeners[0].certificates[0].chain_file, dir.path().join("web.pem"));
//! ```
//!
//! Each TOML table has a module of its own holding its public settings type, its raw serde
//! struct with the defaults next to it, and its validation: `hsm`, `log`, `listener` (with
//! `certificate`, `client_auth`, `proxy_protocol` and the TLS keys in `tls`), `upstream`
//! (with `server` and `health_check`), `route`, `resumption` (`[session_resumption]`),
//! `admin`, `lifecycle`, `runtime` and `api`. `load` reads the file and the environment; `check` holds
//! the validation context that names the offending key and the source that set it.
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use admin::AdminConfig;
pub use api::{ApiConfig, ApiLimits, DEFAULT_ADMIN_LOCKOUT_S};
pub use backup::BackupConfig;
pub use hsm::{HsmConfig, PostgresStore, RemoteHsm, MAX_IN_FLIGHT_SIGNS, MAX_STORE_POOL_SIZE};
pub use ipnet::IpNet;
pub use lifecycle::{LifecycleConfig, DEFAULT_DRAIN_TIMEOUT_MS};
pub use listener::{
    CertificateConfig, CipherSuite, ClientAuthConfig, ForwardedTrust, KxGroup, ListenerConfig,
    ListenerMode, ProxyProtocolConfig, TlsVersion, CIPHER_SUITES, DEFAULT_BACKLOG,
    DEFAULT_KX_GROUPS,
};
pub use log::{LogConfig, LogFormat};
pub use resumption::ResumptionConfig;
pub use route::RouteConfig;
pub use runtime::{RuntimeConfig, MAX_WORKER_THREADS};
pub use upstream::{Balance, HealthCheckConfig, PoolConfig, UpstreamScheme, UpstreamServer};

mod admin;
mod api;
mod backup;
mod check;
mod hsm;
mod lifecycle;
mod listener;
mod load;
mod log;
mod resumption;
mod route;
mod runtime;
mod upstream;

use admin::RawAdmin;
use api::RawApi;
use check::Context;
use hsm::{RawHsm, RawSeal};
use lifecycle::RawLifecycle;
use listener::RawListener;
use log::RawLog;
use resumption::RawResumption;
use route::RawRoute;
use runtime::RawRuntime;
use upstream::RawPool;

/// A configuration error: one line that names the key and its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error's text.
        reason: String,
    },
    /// A key is unknown, missing or has an invalid value.
    #[error("{source_name}: {key}: {message}")]
    Invalid {
        /// Where the value came from: the file's path or an environment variable's name.
        source_name: String,
        /// The key path, e.g. `listeners[0].address`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration of `keyward serve`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The HSM's storage.
    pub hsm: HsmConfig,
    /// Logging.
    pub log: LogConfig,
    /// Listening sockets; at least one.
    pub listeners: Vec<ListenerConfig>,
    /// Upstream pools by name. `[upstream]` (one URL) is the pool named `default`.
    pub upstreams: BTreeMap<String, PoolConfig>,
    /// `[[routes]]`: Host and path-prefix rules, most specific first (see [`RouteConfig`]).
    pub routes: Vec<RouteConfig>,
    /// `[session_resumption]`.
    pub session_resumption: ResumptionConfig,
    /// `[admin]`: metrics and health endpoints.
    pub admin: AdminConfig,
    /// `[lifecycle]`: shutdown.
    pub lifecycle: LifecycleConfig,
    /// `[runtime]`: worker threads.
    pub runtime: RuntimeConfig,
    /// `[api]`: the HSM REST API beside the proxy; absent = not served.
    pub api: Option<ApiConfig>,
    /// `[backup]`: the backup schedule (needs `[api]`); absent = none.
    pub backup: Option<BackupConfig>,
}

/// The whole file as serde reads it, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a configuration table")]
struct RawConfig {
    #[serde(default)]
    hsm: RawHsm,
    #[serde(default)]
    seal: RawSeal,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    listeners: Vec<RawListener>,
    upstream: Option<RawPool>,
    #[serde(default)]
    upstreams: BTreeMap<String, RawPool>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    session_resumption: RawResumption,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    lifecycle: RawLifecycle,
    #[serde(default)]
    runtime: RawRuntime,
    api: Option<RawApi>,
    backup: Option<backup::RawBackup>,
}

/// Serde default for the switches that are on unless turned off.
fn yes() -> bool {
    true
}

/// Validates `raw` table by table, in the order that decides which error a file with several
/// gets; `source_of` names where the value at a key path came from.
fn validate(raw: RawConfig, source_of: &dyn Fn(&str) -> String) -> Result<Config, Error> {
    let cx = Context::new(source_of);
    let mut hsm = raw.hsm.validate(&cx.table("hsm"))?;
    hsm.key_file = raw.seal.key_file();
    let log = raw.log.validate(&cx.table("log"))?;
    let upstreams = upstream::validate_pools(&cx, raw.upstream, raw.upstreams)?;
    let routes = route::validate_routes(&cx, raw.routes, &upstreams)?;
    let listeners =
        listener::validate_listeners(&cx, raw.listeners, &upstreams, routes.is_empty())?;
    let session_resumption = raw
        .session_resumption
        .validate(&cx.table("session_resumption"))?;
    let api = raw.api.map(|a| a.validate(&cx.table("api"))).transpose()?;
    let backup = raw
        .backup
        .map(|b| b.validate(&cx.table("backup")))
        .transpose()?;
    if hsm.remote.is_some() && api.is_some() {
        return Err(cx.table("api").invalid(
            "address",
            "the HSM API needs the HSM in this process; a proxy with [hsm] mode = \"remote\" serves no [api]",
        ));
    }
    if backup.is_some() && api.is_none() {
        return Err(cx.table("backup").invalid(
            "destination",
            "a backup schedule runs on a node that serves [api] (the node that writes the store)",
        ));
    }
    let runtime = raw.runtime.validate(&cx.table("runtime"))?;
    Ok(Config {
        hsm,
        log,
        listeners,
        upstreams,
        routes,
        session_resumption,
        admin: raw.admin.validate(),
        lifecycle: raw.lifecycle.validate(),
        runtime,
        api,
        backup,
    })
}

#[cfg(test)]
mod tests;
