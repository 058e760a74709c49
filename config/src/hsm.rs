//! `[hsm]`: where the HSM keeps its store and master key.

use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// `[hsm]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HsmConfig {
    /// `data_dir`: folder holding the master key file (`master.key`), the API's TLS files
    /// and, without `store`, the store (`keyward.sqlite3`). Default `keyward-data`.
    pub data_dir: PathBuf,
    /// `store` and its `store_*` keys: the cluster's PostgreSQL database, when the records
    /// live there instead of in `data_dir`.
    pub store: Option<PostgresStore>,
    /// `[seal] key_file`: the master key file of a store sealed by a key file (e.g. a
    /// Kubernetes Secret mounted read-only); `None`: `data_dir/master.key`. Refused when
    /// group or others may read it.
    pub key_file: Option<PathBuf>,
    /// `mode = "remote"` and its keys: the proxy signs through HSM nodes' API instead of
    /// opening a store (`None`: `mode = "local"`, the default).
    pub remote: Option<RemoteHsm>,
}

/// `[hsm] mode = "remote"`: the proxy holds no store and no key; each full handshake's
/// signature is made by an HSM node over its API (Cloudflare's Keyless SSL model).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteHsm {
    /// `servers`: the HSM nodes' API base URLs (`https://host:port`), tried in turn.
    pub servers: Vec<String>,
    /// `ca_file`: PEM CA certificate(s) that issued the nodes' API certificates.
    pub ca_file: PathBuf,
    /// `username`: the crypto-user the proxy logs in as; it owns (or was shared) the keys the
    /// certificates name.
    pub username: String,
    /// `password_file`: a file whose content (trailing newline removed) is that user's
    /// password; without it, the environment variable `KEYWARD_HSM__PASSWORD`.
    pub password_file: Option<PathBuf>,
    /// `max_in_flight_signs`: full handshakes signing through the nodes at once, 1–4096,
    /// default 256; further handshakes wait for a slot (without a thread) after their
    /// `ClientHello`.
    pub max_in_flight_signs: usize,
    /// `sign_timeout_ms`: how long a handshake waits for a slot and its signature, failover
    /// included, before it is refused with a TLS alert; default 3000.
    pub sign_timeout_ms: u64,
}

/// The largest `max_in_flight_signs` (each sign in flight parks a thread of the proxy).
pub const MAX_IN_FLIGHT_SIGNS: usize = 4096;

impl HsmConfig {
    /// The settings of a store in `data_dir` alone (SQLite).
    pub fn in_data_dir(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            store: None,
            key_file: None,
            remote: None,
        }
    }

    /// The master key file of a key-file seal: `[seal] key_file`, else `data_dir/master.key`.
    pub fn master_key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

/// `[seal]` as serde reads it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [seal] table")]
pub(crate) struct RawSeal {
    key_file: Option<RelativePathBuf>,
}

impl RawSeal {
    /// `key_file`, resolved.
    pub(crate) fn key_file(self) -> Option<PathBuf> {
        self.key_file.map(|p| p.relative())
    }
}

/// A PostgreSQL store: `[hsm] store = "postgres://USER@HOST[:PORT]/DATABASE[?sslmode=…]"`.
///
/// The password comes from `store_password_file`, else the environment variable
/// `KEYWARD_HSM__STORE_PASSWORD` (read when the store is opened, never logged). A password in
/// the URL itself works, but shows wherever the URL does (`ps`, configuration files): prefer
/// the file.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresStore {
    /// `store`: the libpq URL (`postgres://` or `postgresql://`).
    pub url: String,
    /// `store_password_file`: a file whose content (trailing newline removed) is the password.
    pub password_file: Option<PathBuf>,
    /// `store_ca_file`: PEM CA certificate(s) of the database server; TLS is then required
    /// (unless the URL says `sslmode=`) and the server's name is verified.
    pub ca_file: Option<PathBuf>,
    /// `store_pool_size`: connections per node, 1–64, default 8.
    pub pool_size: usize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password; its scheme and host are enough to tell which store.
        let shown = match self.url.split_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => self.url.clone(),
        };
        f.debug_struct("PostgresStore")
            .field("url", &shown)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The largest `store_pool_size` accepted.
pub const MAX_STORE_POOL_SIZE: usize = 64;

impl PostgresStore {
    /// Settings for `url` with no password file, no CA file and 8 pooled connections.
    ///
    /// # Errors
    /// A message if `url` is not a `postgres://` or `postgresql://` URL.
    pub fn from_url(url: &str) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "must be a postgres:// URL (without it, the store is {} in data_dir)",
                "keyward.sqlite3"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            password_file: None,
            ca_file: None,
            pool_size: 8,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an [hsm] table")]
pub(crate) struct RawHsm {
    data_dir: Option<RelativePathBuf>,
    store: Option<String>,
    store_password_file: Option<RelativePathBuf>,
    store_ca_file: Option<RelativePathBuf>,
    store_pool_size: Option<usize>,
    mode: Option<String>,
    servers: Option<Vec<String>>,
    ca_file: Option<RelativePathBuf>,
    username: Option<String>,
    password_file: Option<RelativePathBuf>,
    max_in_flight_signs: Option<usize>,
    sign_timeout_ms: Option<u64>,
}

impl RawHsm {
    /// The `[hsm]` settings, relative paths resolved; `cx` is the `hsm` table.
    pub(crate) fn validate(mut self, cx: &Context<'_>) -> Result<HsmConfig, Error> {
        let remote = match self.mode.as_deref() {
            None | Some("local") => {
                for (key, set) in [
                    ("servers", self.servers.is_some()),
                    ("ca_file", self.ca_file.is_some()),
                    ("username", self.username.is_some()),
                    ("password_file", self.password_file.is_some()),
                    ("max_in_flight_signs", self.max_in_flight_signs.is_some()),
                    ("sign_timeout_ms", self.sign_timeout_ms.is_some()),
                ] {
                    if set {
                        return Err(cx.invalid(key, "is for mode = \"remote\" only".to_owned()));
                    }
                }
                None
            }
            Some("remote") => Some(self.remote(cx)?),
            Some(other) => {
                return Err(cx.invalid(
                    "mode",
                    format!("is {other:?}; use \"local\" (the default: the HSM in this process) or \"remote\" (sign through HSM nodes)"),
                ))
            }
        };
        let mut config = self.local(cx)?;
        config.remote = remote;
        Ok(config)
    }

    /// The keys of `mode = "remote"` (taken out of `self`).
    fn remote(&mut self, cx: &Context<'_>) -> Result<RemoteHsm, Error> {
        if self.store.is_some() {
            return Err(cx.invalid(
                "store",
                "is for the HSM nodes; a remote-mode proxy opens no store".to_owned(),
            ));
        }
        let servers = self.servers.take().unwrap_or_default();
        if servers.is_empty() {
            return Err(cx.invalid(
                "servers",
                "must list the HSM nodes' API URLs (https://host:port) when mode = \"remote\""
                    .to_owned(),
            ));
        }
        for s in &servers {
            if !s.starts_with("https://") {
                return Err(cx.invalid("servers", format!("{s:?} is not an https:// URL")));
            }
        }
        let ca_file = self.ca_file.take().map(|p| p.relative()).ok_or_else(|| {
            cx.invalid(
                "ca_file",
                "must name the PEM CA of the HSM nodes' API certificates when mode = \"remote\""
                    .to_owned(),
            )
        })?;
        let username = self.username.take().unwrap_or_default();
        if username.is_empty() {
            return Err(cx.invalid(
                "username",
                "must name the crypto-user the proxy logs in as when mode = \"remote\"".to_owned(),
            ));
        }
        let max_in_flight_signs = self.max_in_flight_signs.take().unwrap_or(256);
        if !(1..=MAX_IN_FLIGHT_SIGNS).contains(&max_in_flight_signs) {
            return Err(cx.invalid(
                "max_in_flight_signs",
                format!("must be 1 to {MAX_IN_FLIGHT_SIGNS}"),
            ));
        }
        let sign_timeout_ms = self.sign_timeout_ms.take().unwrap_or(3000);
        cx.positive("sign_timeout_ms", sign_timeout_ms)?;
        Ok(RemoteHsm {
            servers,
            ca_file,
            username,
            password_file: self.password_file.take().map(|p| p.relative()),
            max_in_flight_signs,
            sign_timeout_ms,
        })
    }

    /// The local store's settings.
    fn local(self, cx: &Context<'_>) -> Result<HsmConfig, Error> {
        let data_dir = self
            .data_dir
            .map(|p| p.relative())
            .unwrap_or_else(|| PathBuf::from("keyward-data"));
        let Some(url) = self.store else {
            for (key, set) in [
                ("store_password_file", self.store_password_file.is_some()),
                ("store_ca_file", self.store_ca_file.is_some()),
                ("store_pool_size", self.store_pool_size.is_some()),
            ] {
                if set {
                    return Err(cx.invalid(key, "is set but `store` is not".to_owned()));
                }
            }
            return Ok(HsmConfig::in_data_dir(data_dir));
        };
        let mut store = PostgresStore::from_url(&url).map_err(|m| cx.invalid("store", m))?;
        store.password_file = self.store_password_file.map(|p| p.relative());
        store.ca_file = self.store_ca_file.map(|p| p.relative());
        if let Some(n) = self.store_pool_size {
            if !(1..=MAX_STORE_POOL_SIZE).contains(&n) {
                return Err(cx.invalid(
                    "store_pool_size",
                    format!("must be 1 to {MAX_STORE_POOL_SIZE}"),
                ));
            }
            store.pool_size = n;
        }
        Ok(HsmConfig {
            data_dir,
            store: Some(store),
            key_file: None,
            remote: None,
        })
    }
}
