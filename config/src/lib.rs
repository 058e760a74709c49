//! Keyward's configuration: one TOML file, overridden by `KEYWARD_*` environment variables.
//!
//! Environment variables name a key path with `__` between segments, upper or lower case:
//! `KEYWARD_UPSTREAM__URL=http://127.0.0.1:8080` sets `upstream.url`,
//! `KEYWARD_HSM__DATA_DIR=/var/lib/keyward` sets `hsm.data_dir`. Variables that are not
//! configuration (`KEYWARD_CONFIG`, `KEYWARD_DATA_DIR`, and the client's `KEYWARD_SERVER`,
//! `KEYWARD_USER`, `KEYWARD_PASSWORD`, `KEYWARD_CA_CERT`, `KEYWARD_ADMIN_PASSWORD`) are not
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
//! assert_eq!(config.upstream.response_timeout_ms, 2500);
//! assert_eq!(config.listeners[0].certificates[0].chain_file, dir.path().join("web.pem"));
//! ```

#![deny(missing_docs)]

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::magic::RelativePathBuf;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;

/// Environment variables with the `KEYWARD_` prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "CONFIG",
    "DATA_DIR",
    "SERVER",
    "USER",
    "PASSWORD",
    "CA_CERT",
    "ADMIN_PASSWORD",
    "LOG",
];

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
    /// HTTPS listeners; at least one.
    pub listeners: Vec<ListenerConfig>,
    /// Where requests are forwarded.
    pub upstream: UpstreamConfig,
    /// `[api]`: the HSM REST API beside the proxy; absent = not served.
    pub api: Option<ApiConfig>,
}

/// `[api]`: serve the HSM REST API (TLS with the HSM's `api-tls` key from `keyward init`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiConfig {
    /// `address`: `IP:port`, e.g. `127.0.0.1:9200`.
    pub address: SocketAddr,
}

/// `[hsm]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HsmConfig {
    /// `data_dir`: folder holding the store (`keyward.sqlite3`) and the master key file
    /// (`master.key`). Default `keyward-data`.
    pub data_dir: PathBuf,
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// `level`: a `tracing` filter such as `info` or `keyward_proxy=debug,info`. Default `info`.
    pub level: String,
    /// `format`: `text` (default) or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "\"text\" or \"json\"")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(expecting = "\"1.2\" or \"1.3\"")]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[[listeners]]`: one HTTPS listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// `address`: `IP:port` to listen on, e.g. `0.0.0.0:443` or `[::]:443`.
    pub address: SocketAddr,
    /// `tls_versions`: default `["1.2", "1.3"]`.
    pub tls_versions: Vec<TlsVersion>,
    /// `alpn`: protocols offered in ALPN, in preference order. Default `["h2", "http/1.1"]`.
    pub alpn: Vec<String>,
    /// `handshake_timeout_ms`: a client that has not finished the TLS handshake in this many
    /// milliseconds is disconnected. Default 10000.
    pub handshake_timeout_ms: u64,
    /// `client_header_timeout_ms`: an HTTP/1.1 client must send a whole request head within
    /// this many milliseconds, counted from when the proxy starts waiting for it, which on an
    /// idle keep-alive connection is also the idle limit. Default 30000.
    pub client_header_timeout_ms: u64,
    /// `[[listeners.certificates]]`: at least one.
    pub certificates: Vec<CertificateConfig>,
}

/// `[[listeners.certificates]]`: a certificate chain whose private key is an HSM key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateConfig {
    /// `key_label`: label of the private key in the HSM (empty when `key_file` names it).
    pub key_label: String,
    /// `key_file`: a reference PEM (`keyward key generate-file --encoding reference-pem`) that
    /// names the key instead of `key_label`; its public-key hash is checked.
    pub key_file: Option<PathBuf>,
    /// `chain_file`: PEM file, leaf certificate first, then intermediates.
    pub chain_file: PathBuf,
    /// `server_names`: SNI names this certificate answers (`*.example.com` allowed). Default:
    /// the certificate's DNS subject alternative names.
    pub server_names: Vec<String>,
    /// `default`: serve this certificate when SNI is absent or matches nothing. Default: the
    /// first certificate of the listener.
    pub default: bool,
}

/// `[upstream]`: the HTTP server requests are forwarded to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// `url`: `http://host:port`, optionally with a path prefix that is prepended.
    pub url: String,
    /// `connect_timeout_ms`: TCP connect timeout. Default 5000.
    pub connect_timeout_ms: u64,
    /// `response_timeout_ms`: time from sending the request to receiving the response
    /// headers; beyond it the client gets 504. Default 60000.
    pub response_timeout_ms: u64,
    /// `pool_idle_timeout_ms`: idle keep-alive connections to the upstream are closed after
    /// this long. Default 90000.
    pub pool_idle_timeout_ms: u64,
    /// `pool_max_idle_per_host`: idle keep-alive connections kept. Default 128.
    pub pool_max_idle_per_host: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a configuration table")]
struct RawConfig {
    #[serde(default)]
    hsm: RawHsm,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    listeners: Vec<RawListener>,
    upstream: Option<RawUpstream>,
    api: Option<RawApi>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [api] table")]
struct RawApi {
    address: SocketAddr,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an [hsm] table")]
struct RawHsm {
    data_dir: Option<RelativePathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [log] table")]
struct RawLog {
    #[serde(default = "default_level")]
    level: String,
    #[serde(default = "default_format")]
    format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: default_level(),
            format: default_format(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}
fn default_format() -> LogFormat {
    LogFormat::Text
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners]] table")]
struct RawListener {
    address: SocketAddr,
    #[serde(default = "default_versions")]
    tls_versions: Vec<TlsVersion>,
    #[serde(default = "default_alpn")]
    alpn: Vec<String>,
    #[serde(default = "default_handshake_timeout")]
    handshake_timeout_ms: u64,
    #[serde(default = "default_client_header_timeout")]
    client_header_timeout_ms: u64,
    #[serde(default)]
    certificates: Vec<RawCertificate>,
}

fn default_versions() -> Vec<TlsVersion> {
    vec![TlsVersion::Tls12, TlsVersion::Tls13]
}
fn default_alpn() -> Vec<String> {
    vec!["h2".into(), "http/1.1".into()]
}
fn default_handshake_timeout() -> u64 {
    10_000
}
fn default_client_header_timeout() -> u64 {
    30_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners.certificates]] table")]
struct RawCertificate {
    #[serde(default)]
    key_label: Option<String>,
    #[serde(default)]
    key_file: Option<RelativePathBuf>,
    chain_file: RelativePathBuf,
    #[serde(default)]
    server_names: Vec<String>,
    #[serde(default)]
    default: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [upstream] table")]
struct RawUpstream {
    url: Option<String>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_response_timeout")]
    response_timeout_ms: u64,
    #[serde(default = "default_pool_idle")]
    pool_idle_timeout_ms: u64,
    #[serde(default = "default_pool_max_idle")]
    pool_max_idle_per_host: usize,
}

fn default_connect_timeout() -> u64 {
    5_000
}
fn default_response_timeout() -> u64 {
    60_000
}
fn default_pool_idle() -> u64 {
    90_000
}
fn default_pool_max_idle() -> usize {
    128
}

/// One `KEYWARD_*` variable as a figment provider, so errors name the variable.
struct EnvVar {
    name: String,
    path: String,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value: Value = self.value.parse().unwrap_or_else(|e| match e {});
        let nested = figment::util::nest(&self.path, value);
        let dict = nested.into_dict().unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

impl Config {
    /// Reads `file`, then applies the `KEYWARD_*` variables among `env`, then validates.
    ///
    /// # Errors
    /// [`Error::Read`] if the file cannot be read; [`Error::Invalid`] naming the first bad key.
    pub fn load(
        file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Error> {
        std::fs::read_to_string(file).map_err(|e| Error::Read {
            path: file.to_owned(),
            reason: e.kind().to_string(),
        })?;
        let file_name = file.display().to_string();
        let mut figment = Figment::from(Toml::file_exact(file));
        let mut vars: Vec<EnvVar> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix("KEYWARD_")?;
                if NOT_CONFIG.iter().any(|n| n.eq_ignore_ascii_case(rest)) {
                    return None;
                }
                Some(EnvVar {
                    path: rest.to_ascii_lowercase().replace("__", "."),
                    name: k,
                    value: v,
                })
            })
            .collect();
        vars.sort_by(|a, b| a.name.cmp(&b.name));
        for var in vars {
            figment = figment.merge(var);
        }
        let raw: RawConfig = figment.extract().map_err(|e| from_figment(e, &file_name))?;
        validate(raw, &|key: &str| source_of(&figment, key, &file_name))
    }
}

/// Where the value at `key` (e.g. `upstream.url`, `listeners[0].alpn`) came from.
fn source_of(figment: &Figment, key: &str, file_name: &str) -> String {
    let lookup = key.split('[').next().unwrap_or(key);
    match figment.find_metadata(lookup) {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            _ => md.name.to_string(),
        },
        None => file_name.to_owned(),
    }
}

/// Folds a possibly multi-line message (TOML syntax errors quote the line) into one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn from_figment(err: figment::Error, file_name: &str) -> Error {
    let source_name = match &err.metadata {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            _ => md.name.to_string(),
        },
        None => file_name.to_owned(),
    };
    let mut path = err.path.clone();
    let message = match &err.kind {
        figment::error::Kind::UnknownField(found, expected) => {
            if path.last() != Some(found) {
                path.push(found.clone());
            }
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            format!("unknown key (expected one of: {})", expected.join(", "))
        }
        figment::error::Kind::MissingField(field) => {
            if path.last().map(String::as_str) != Some(field.as_ref()) {
                path.push(field.to_string());
            }
            "required key is missing".to_owned()
        }
        other => one_line(&other.to_string()),
    };
    Error::Invalid {
        source_name,
        key: key_path(&path),
        message,
    }
}

/// `["listeners", "0", "address"]` → `listeners[0].address`.
fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for p in parts {
        if p.parse::<usize>().is_ok() {
            out.push_str(&format!("[{p}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}

/// Log levels a `log.level` directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `tracing` filter: comma-separated `LEVEL` or `TARGET=LEVEL` directives.
fn valid_log_filter(filter: &str) -> bool {
    !filter.trim().is_empty()
        && filter.split(',').all(|d| {
            let level =
                d.rsplit_once('=').map_or(
                    d,
                    |(target, level)| if target.trim().is_empty() { "" } else { level },
                );
            LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
        })
}

/// Checks `upstream.url`: `http://HOST[:PORT][/PREFIX]`, no user info, query or fragment.
fn check_upstream_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("must start with http:// (TLS to upstreams is not supported yet)")?;
    if url.contains('?') || url.contains('#') {
        return Err("must not have a query or a fragment");
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host: http://HOST[:PORT][/PREFIX]");
    }
    let port = if authority.starts_with('[') {
        authority.rsplit_once("]:").map(|(_, p)| p)
    } else {
        authority.rsplit_once(':').map(|(_, p)| p)
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("the port must be 1 to 65535");
        }
    }
    Ok(())
}

fn validate(raw: RawConfig, source_of: &dyn Fn(&str) -> String) -> Result<Config, Error> {
    let invalid = |key: String, message: &str| Error::Invalid {
        source_name: source_of(&key),
        key,
        message: message.to_owned(),
    };
    if !valid_log_filter(&raw.log.level) {
        return Err(invalid(
            "log.level".into(),
            "not a log filter: use off, error, warn, info, debug or trace, optionally per target (\"keyward_proxy=debug,info\")",
        ));
    }
    let raw_up = raw.upstream.ok_or_else(|| {
        invalid(
            "upstream.url".into(),
            "required: the upstream URL requests are forwarded to (e.g. \"http://127.0.0.1:8080\")",
        )
    })?;
    let url = raw_up
        .url
        .ok_or_else(|| invalid("upstream.url".into(), "required key is missing"))?;
    check_upstream_url(&url).map_err(|m| invalid("upstream.url".into(), m))?;
    for (key, v) in [
        ("upstream.connect_timeout_ms", raw_up.connect_timeout_ms),
        ("upstream.response_timeout_ms", raw_up.response_timeout_ms),
    ] {
        if v == 0 {
            return Err(invalid(key.into(), "must be greater than 0"));
        }
    }
    if raw.listeners.is_empty() {
        return Err(invalid(
            "listeners".into(),
            "at least one [[listeners]] table is required",
        ));
    }
    let mut listeners = Vec::new();
    for (i, l) in raw.listeners.into_iter().enumerate() {
        let key = |k: &str| format!("listeners[{i}].{k}");
        if l.tls_versions.is_empty() {
            return Err(invalid(
                key("tls_versions"),
                "must name at least one version",
            ));
        }
        if l.alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err(invalid(key("alpn"), "protocol names are 1 to 255 bytes"));
        }
        if l.handshake_timeout_ms == 0 {
            return Err(invalid(
                key("handshake_timeout_ms"),
                "must be greater than 0",
            ));
        }
        if l.certificates.is_empty() {
            return Err(invalid(
                key("certificates"),
                "at least one [[listeners.certificates]] table is required",
            ));
        }
        if l.certificates.iter().filter(|c| c.default).count() > 1 {
            return Err(invalid(
                key("certificates"),
                "at most one certificate may be the default",
            ));
        }
        let mut certificates = Vec::new();
        for (j, c) in l.certificates.into_iter().enumerate() {
            let key_label = match (c.key_label, &c.key_file) {
                (Some(l), None) if !l.is_empty() => l,
                (None, Some(_)) => String::new(),
                (Some(l), None) if l.is_empty() => {
                    return Err(invalid(
                        format!("listeners[{i}].certificates[{j}].key_label"),
                        "must not be empty",
                    ))
                }
                _ => {
                    return Err(invalid(
                        format!("listeners[{i}].certificates[{j}]"),
                        "name the key with exactly one of key_label and key_file",
                    ))
                }
            };
            certificates.push(CertificateConfig {
                key_label,
                key_file: c.key_file.map(|f| f.relative()),
                chain_file: c.chain_file.relative(),
                server_names: c
                    .server_names
                    .into_iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
                default: c.default,
            });
        }
        listeners.push(ListenerConfig {
            address: l.address,
            tls_versions: l.tls_versions,
            alpn: l.alpn,
            handshake_timeout_ms: l.handshake_timeout_ms,
            client_header_timeout_ms: l.client_header_timeout_ms,
            certificates,
        });
    }
    let api = raw.api.map(|a| ApiConfig { address: a.address });
    Ok(Config {
        hsm: HsmConfig {
            data_dir: raw
                .hsm
                .data_dir
                .map(|p| p.relative())
                .unwrap_or_else(|| PathBuf::from("keyward-data")),
        },
        log: LogConfig {
            level: raw.log.level,
            format: raw.log.format,
        },
        listeners,
        upstream: UpstreamConfig {
            url: url.trim_end_matches('/').to_owned(),
            connect_timeout_ms: raw_up.connect_timeout_ms,
            response_timeout_ms: raw_up.response_timeout_ms,
            pool_idle_timeout_ms: raw_up.pool_idle_timeout_ms,
            pool_max_idle_per_host: raw_up.pool_max_idle_per_host,
        },
        api,
    })
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

#[cfg(test)]
mod tests;
