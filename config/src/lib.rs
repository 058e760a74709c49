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
//! assert_eq!(config.upstreams["default"].response_timeout_ms, 2500);
//! assert_eq!(config.listeners[0].certificates[0].chain_file, dir.path().join("web.pem"));
//! ```

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::magic::RelativePathBuf;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;

pub use api::{ApiConfig, ApiLimits, DEFAULT_ADMIN_LOCKOUT_S};
pub use ipnet::IpNet;

mod api;
use api::RawApi;

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
    "BIN",
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
    /// `[api]`: the HSM REST API beside the proxy; absent = not served.
    pub api: Option<ApiConfig>,
}

/// `[admin]`: the plain-HTTP admin listener with `/metrics`, `/healthz` and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminConfig {
    /// `address`: `IP:port`; default `127.0.0.1:9090`. `enabled = false` turns it off.
    pub address: Option<SocketAddr>,
}

/// `[lifecycle]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleConfig {
    /// `drain_timeout_ms`: after SIGTERM, in-flight requests get this long to finish before
    /// their connections are closed. Default 30000.
    pub drain_timeout_ms: u64,
}

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
    /// `access_log`: one line per request (target `keyward::access`). Default true.
    pub access_log: bool,
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

/// What a listener does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "lowercase",
    expecting = "\"http\", \"tcp\" or \"redirect\""
)]
pub enum ListenerMode {
    /// Terminate TLS and serve HTTP/1.1 and HTTP/2, routed to upstream pools.
    Http,
    /// Terminate TLS and forward the decrypted byte stream to a TCP pool (layer 4).
    Tcp,
    /// Plain HTTP (no TLS) answering every request with a redirect to HTTPS.
    Redirect,
}

/// Whether `X-Forwarded-*` and `Forwarded` headers from clients are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "\"replace\" or \"append\"")]
pub enum ForwardedTrust {
    /// Drop what the client sent; the proxy's values only (an edge proxy; the default).
    Replace,
    /// Append the proxy's values to the client's (behind another trusted proxy).
    Append,
}

/// `[listeners.proxy_protocol]`: expect a PROXY protocol v1 or v2 header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyProtocolConfig {
    /// `trusted_cidrs`: sources allowed to send the header (e.g. `["10.0.0.0/8"]`); a
    /// connection from any other source is closed. Required, non-empty.
    pub trusted_cidrs: Vec<IpNet>,
}

/// `[listeners.client_auth]`: mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientAuthConfig {
    /// `ca_file`: PEM bundle of the CAs that issue client certificates.
    pub ca_file: PathBuf,
    /// `required`: refuse handshakes without a client certificate. Default true.
    pub required: bool,
    /// `subject_header`: request header carrying the verified certificate's subject (RFC 4514
    /// string) to the upstream; a client's own header of that name is removed. Default
    /// `X-Client-Cert-Subject`.
    pub subject_header: String,
}

/// `[[listeners]]`: one listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// `address`: `IP:port` to listen on, e.g. `0.0.0.0:443` or `[::]:443`.
    pub address: SocketAddr,
    /// `mode`: `http` (default), `tcp` or `redirect`.
    pub mode: ListenerMode,
    /// `upstream`: the pool a `tcp` listener forwards to; for `http`, the pool used when no
    /// route matches (default: `default` when that pool exists).
    pub upstream: Option<String>,
    /// `tls_versions`: default `["1.2", "1.3"]`.
    pub tls_versions: Vec<TlsVersion>,
    /// `cipher_suites`: rustls names in preference order, e.g. `TLS13_AES_128_GCM_SHA256`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`. Default: rustls's aws-lc-rs list.
    pub cipher_suites: Vec<String>,
    /// `kx_groups`: key-exchange groups in preference order: `X25519MLKEM768`, `X25519`,
    /// `secp256r1`, `secp384r1`. Default: all four, in that order.
    pub kx_groups: Vec<String>,
    /// `alpn`: protocols offered in ALPN, in preference order. Default `["h2", "http/1.1"]`
    /// (none for `tcp`).
    pub alpn: Vec<String>,
    /// `handshake_timeout_ms`: a client that has not finished the TLS handshake (and the PROXY
    /// header) in this many milliseconds is disconnected. Default 10000.
    pub handshake_timeout_ms: u64,
    /// `client_header_timeout_ms`: an HTTP/1.1 client must send a whole request head within
    /// this many milliseconds from its first byte (slowloris defence). Default 30000.
    pub client_header_timeout_ms: u64,
    /// `idle_timeout_ms`: a connection with no request in flight and no bytes moving is closed
    /// after this long (HTTP keep-alive; for `tcp`, no bytes either way). Default 60000.
    pub idle_timeout_ms: u64,
    /// `client_body_timeout_ms`: longest wait between two reads of a request body; beyond it
    /// the client gets `408`. Default 60000.
    pub client_body_timeout_ms: u64,
    /// `max_connections`: connections open at once; more wait in the kernel backlog. Default
    /// 10000.
    pub max_connections: usize,
    /// `max_concurrent_handshakes`: TLS handshakes in progress at once. Default 1024.
    pub max_concurrent_handshakes: usize,
    /// `max_header_bytes`: request line plus headers; larger gets `431`. Default 16384
    /// (at least 8192).
    pub max_header_bytes: usize,
    /// `max_body_bytes`: request body; larger gets `413`. Default 1048576.
    pub max_body_bytes: u64,
    /// `hsts`: `Strict-Transport-Security` value added to responses (e.g.
    /// `max-age=63072000; includeSubDomains`). Default: none.
    pub hsts: Option<String>,
    /// `forwarded_headers`: `replace` (default) or `append`.
    pub forwarded_headers: ForwardedTrust,
    /// `trusted_proxies`: with `append`, only clients from these addresses or CIDR blocks have
    /// their forwarding headers kept; the others' are replaced. Empty (the default) = every
    /// client. The client address is the PROXY header's when one is used.
    pub trusted_proxies: Vec<IpNet>,
    /// `request_id_header`: header carrying the request id to the upstream and back to the
    /// client. Default `X-Request-Id`.
    pub request_id_header: String,
    /// `redirect_https_port`: for `redirect` listeners, the HTTPS port put in `Location`.
    /// Default 443 (omitted from the URL).
    pub redirect_https_port: u16,
    /// `[listeners.proxy_protocol]`: absent = no PROXY header expected.
    pub proxy_protocol: Option<ProxyProtocolConfig>,
    /// `[listeners.client_auth]`: absent = no client certificates asked for.
    pub client_auth: Option<ClientAuthConfig>,
    /// `[[listeners.certificates]]`: at least one (none for `redirect`).
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
    /// `private_key_file`: a PKCS#8 PEM private key held in process memory instead of the
    /// HSM. Benchmarks only (the baseline that isolates the HSM's cost): refused unless keyward
    /// was built with the `bench-plain-keys` feature.
    pub private_key_file: Option<PathBuf>,
    /// `chain_file`: PEM file, leaf certificate first, then intermediates.
    pub chain_file: PathBuf,
    /// `server_names`: SNI names this certificate answers (`*.example.com` allowed). Default:
    /// the certificate's DNS subject alternative names.
    pub server_names: Vec<String>,
    /// `default`: serve this certificate when SNI is absent or matches nothing. Default: the
    /// first certificate of the listener.
    pub default: bool,
    /// `ocsp_file`: a DER OCSP response (RFC 6960) stapled in the handshake; re-read on reload.
    pub ocsp_file: Option<PathBuf>,
}

/// How a pool spreads requests over its servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    rename_all = "snake_case",
    expecting = "\"round_robin\" or \"least_requests\""
)]
pub enum Balance {
    /// Each healthy server in turn.
    RoundRobin,
    /// Of two healthy servers picked at random, the one with fewer requests in flight.
    LeastRequests,
}

/// The scheme of an upstream server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// `http://`: HTTP/1.1 over TCP.
    Http,
    /// `https://`: HTTP/1.1 over TLS.
    Https,
    /// `tcp://`: a byte stream (for `tcp` listeners).
    Tcp,
}

/// One server of a pool, parsed from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamServer {
    /// The URL as configured, without a trailing `/`.
    pub url: String,
    /// `http`, `https` or `tcp`.
    pub scheme: UpstreamScheme,
    /// `host:port` (port filled in: 80, 443).
    pub authority: String,
    /// The host alone (no brackets for IPv6), for TLS server names.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path prefix prepended to request paths (`""` when none).
    pub prefix: String,
}

/// `[upstreams.NAME.health_check]`: active HTTP health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheckConfig {
    /// `path`: requested with `GET`. Default `/`.
    pub path: String,
    /// `interval_ms`: between checks of one server. Default 5000.
    pub interval_ms: u64,
    /// `timeout_ms`: a check slower than this fails. Default 2000.
    pub timeout_ms: u64,
    /// `expected_status`: the status a healthy server answers. Default 200.
    pub expected_status: u16,
    /// `rise`: consecutive passes that make an unhealthy server healthy. Default 2.
    pub rise: u32,
    /// `fall`: consecutive failures that make a healthy server unhealthy. Default 3.
    pub fall: u32,
}

/// `[upstreams.NAME]`: a pool of upstream servers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// `servers`: URLs `http://HOST[:PORT][/PREFIX]`, `https://...` or `tcp://HOST:PORT`, all
    /// of one scheme family (HTTP or TCP).
    pub servers: Vec<UpstreamServer>,
    /// `balance`: `round_robin` (default) or `least_requests`.
    pub balance: Balance,
    /// `connect_timeout_ms`: TCP (and upstream TLS) connect timeout. Default 5000.
    pub connect_timeout_ms: u64,
    /// `response_timeout_ms`: from sending the request to the response headers; beyond it
    /// the client gets 504. Default 60000.
    pub response_timeout_ms: u64,
    /// `read_timeout_ms`: longest wait between two reads of a response body; beyond it the
    /// response is cut (HTTP/1.1: the connection closes; HTTP/2: the stream is reset).
    /// Default 60000.
    pub read_timeout_ms: u64,
    /// `pool_idle_timeout_ms`: an idle keep-alive connection is not reused once idle this
    /// long (and is closed within twice that). Default 4000: below the 5 s keep-alive timeout
    /// of Node, Apache and uvicorn, so Keyward gives up an idle connection before the server
    /// does; shorter upstream timeouts (gunicorn's 2 s) meet the race only at the instant the
    /// server closes, and the request is then sent again on a new connection.
    pub pool_idle_timeout_ms: u64,
    /// `pool_max_idle_per_host`: idle keep-alive connections kept per server. Default 128.
    pub pool_max_idle_per_host: usize,
    /// `retries`: an idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) whose
    /// connection to a server failed is tried on up to this many other servers. Default 1.
    pub retries: u32,
    /// `max_fails`: consecutive failed requests (connect error, timeout, 5xx from a connect
    /// failure) that eject a server passively; 0 disables. Default 3.
    pub max_fails: u32,
    /// `fail_timeout_ms`: how long a passively ejected server gets no requests. Default 10000.
    pub fail_timeout_ms: u64,
    /// `tls_ca_file`: PEM CAs for `https://` servers. Default: the Mozilla roots
    /// (webpki-roots).
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_server_name`: name checked in `https://` servers' certificates. Default: each
    /// server's host.
    pub tls_server_name: Option<String>,
    /// `[upstreams.NAME.health_check]`: absent = no active checks.
    pub health_check: Option<HealthCheckConfig>,
}

/// `[[routes]]`: requests whose Host and path match go to `upstream`.
///
/// Matching: exact host before wildcard host (`*.example.com`, one label) before any host
/// (no `host`); within those, the longest `path_prefix` wins; ties go to the first in the
/// file. A prefix matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteConfig {
    /// `name`: the `route` label in metrics and logs. Default `upstream` + `:` + index.
    pub name: String,
    /// `host`: exact (`www.example.com`) or wildcard (`*.example.com`); absent = any.
    pub host: Option<String>,
    /// `path_prefix`: default `/`.
    pub path_prefix: String,
    /// `upstream`: the pool's name.
    pub upstream: String,
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
    api: Option<RawApi>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [admin] table")]
struct RawAdmin {
    #[serde(default = "default_admin_address")]
    address: SocketAddr,
    #[serde(default = "yes")]
    enabled: bool,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            address: default_admin_address(),
            enabled: true,
        }
    }
}

fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [lifecycle] table")]
struct RawLifecycle {
    #[serde(default = "default_drain")]
    drain_timeout_ms: u64,
}

impl Default for RawLifecycle {
    fn default() -> Self {
        RawLifecycle {
            drain_timeout_ms: default_drain(),
        }
    }
}

/// Default of `[lifecycle] drain_timeout_ms` (also of `keyward hsm serve --drain-timeout-ms`).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;

fn default_drain() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [session_resumption] table")]
struct RawResumption {
    #[serde(default = "yes")]
    tickets: bool,
    #[serde(default = "default_rotation")]
    ticket_key_rotation_s: u64,
    #[serde(default = "default_cache_entries")]
    session_cache_entries: usize,
}

impl Default for RawResumption {
    fn default() -> Self {
        RawResumption {
            tickets: true,
            ticket_key_rotation_s: default_rotation(),
            session_cache_entries: default_cache_entries(),
        }
    }
}

fn default_rotation() -> u64 {
    6 * 3600
}
fn default_cache_entries() -> usize {
    20_000
}
fn yes() -> bool {
    true
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
    #[serde(default = "yes")]
    access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: default_level(),
            format: default_format(),
            access_log: true,
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
#[serde(deny_unknown_fields, expecting = "a [listeners.proxy_protocol] table")]
struct RawProxyProtocol {
    #[serde(default)]
    trusted_cidrs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [listeners.client_auth] table")]
struct RawClientAuth {
    ca_file: RelativePathBuf,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default = "default_subject_header")]
    subject_header: String,
}

fn default_subject_header() -> String {
    "X-Client-Cert-Subject".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners]] table")]
struct RawListener {
    address: SocketAddr,
    #[serde(default = "default_mode")]
    mode: ListenerMode,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default = "default_versions")]
    tls_versions: Vec<TlsVersion>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default = "default_kx_groups")]
    kx_groups: Vec<String>,
    #[serde(default)]
    alpn: Option<Vec<String>>,
    #[serde(default = "default_handshake_timeout")]
    handshake_timeout_ms: u64,
    #[serde(default = "default_client_header_timeout")]
    client_header_timeout_ms: u64,
    #[serde(default = "default_idle_timeout")]
    idle_timeout_ms: u64,
    #[serde(default = "default_idle_timeout")]
    client_body_timeout_ms: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_handshakes")]
    max_concurrent_handshakes: usize,
    #[serde(default = "default_max_header_bytes")]
    max_header_bytes: usize,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    #[serde(default)]
    hsts: Option<String>,
    #[serde(default = "default_forwarded")]
    forwarded_headers: ForwardedTrust,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default = "default_request_id_header")]
    request_id_header: String,
    #[serde(default = "default_redirect_port")]
    redirect_https_port: u16,
    #[serde(default)]
    proxy_protocol: Option<RawProxyProtocol>,
    #[serde(default)]
    client_auth: Option<RawClientAuth>,
    #[serde(default)]
    certificates: Vec<RawCertificate>,
}

fn default_mode() -> ListenerMode {
    ListenerMode::Http
}
fn default_versions() -> Vec<TlsVersion> {
    vec![TlsVersion::Tls12, TlsVersion::Tls13]
}
/// Key-exchange groups offered by default, preferred first.
pub const DEFAULT_KX_GROUPS: [&str; 4] = ["X25519MLKEM768", "X25519", "secp256r1", "secp384r1"];
fn default_kx_groups() -> Vec<String> {
    DEFAULT_KX_GROUPS.iter().map(|s| s.to_string()).collect()
}
fn default_handshake_timeout() -> u64 {
    10_000
}
fn default_client_header_timeout() -> u64 {
    30_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_handshakes() -> usize {
    1024
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_forwarded() -> ForwardedTrust {
    ForwardedTrust::Replace
}
fn default_request_id_header() -> String {
    "X-Request-Id".into()
}
fn default_redirect_port() -> u16 {
    443
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners.certificates]] table")]
struct RawCertificate {
    #[serde(default)]
    key_label: Option<String>,
    #[serde(default)]
    key_file: Option<RelativePathBuf>,
    #[serde(default)]
    private_key_file: Option<RelativePathBuf>,
    chain_file: RelativePathBuf,
    #[serde(default)]
    server_names: Vec<String>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    ocsp_file: Option<RelativePathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an upstream table")]
struct RawPool {
    /// `[upstream]` shorthand: one server.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default = "default_balance")]
    balance: Balance,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_response_timeout")]
    response_timeout_ms: u64,
    #[serde(default = "default_response_timeout")]
    read_timeout_ms: u64,
    #[serde(default = "default_pool_idle")]
    pool_idle_timeout_ms: u64,
    #[serde(default = "default_pool_max_idle")]
    pool_max_idle_per_host: usize,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_max_fails")]
    max_fails: u32,
    #[serde(default = "default_fail_timeout")]
    fail_timeout_ms: u64,
    #[serde(default)]
    tls_ca_file: Option<RelativePathBuf>,
    #[serde(default)]
    tls_server_name: Option<String>,
    #[serde(default)]
    health_check: Option<RawHealthCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a health_check table")]
struct RawHealthCheck {
    #[serde(default = "default_health_path")]
    path: String,
    #[serde(default = "default_health_interval")]
    interval_ms: u64,
    #[serde(default = "default_health_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_expected_status")]
    expected_status: u16,
    #[serde(default = "default_rise")]
    rise: u32,
    #[serde(default = "default_fall")]
    fall: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[routes]] table")]
struct RawRoute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default = "default_path_prefix")]
    path_prefix: String,
    upstream: String,
}

fn default_path_prefix() -> String {
    "/".into()
}
fn default_balance() -> Balance {
    Balance::RoundRobin
}
fn default_connect_timeout() -> u64 {
    5_000
}
fn default_response_timeout() -> u64 {
    60_000
}
fn default_pool_idle() -> u64 {
    4_000
}
fn default_pool_max_idle() -> usize {
    128
}
fn default_retries() -> u32 {
    1
}
fn default_max_fails() -> u32 {
    3
}
fn default_fail_timeout() -> u64 {
    10_000
}
fn default_health_path() -> String {
    "/".into()
}
fn default_health_interval() -> u64 {
    5_000
}
fn default_health_timeout() -> u64 {
    2_000
}
fn default_expected_status() -> u16 {
    200
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
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

/// Parses an upstream server URL: `http://HOST[:PORT][/PREFIX]`, `https://...`, or
/// `tcp://HOST:PORT`; no user info, query or fragment.
fn parse_server(url: &str) -> Result<UpstreamServer, &'static str> {
    let url = url.trim_end_matches('/');
    let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
        (UpstreamScheme::Http, r, Some(80))
    } else if let Some(r) = url.strip_prefix("https://") {
        (UpstreamScheme::Https, r, Some(443))
    } else if let Some(r) = url.strip_prefix("tcp://") {
        (UpstreamScheme::Tcp, r, None)
    } else {
        return Err("must start with http://, https:// or tcp://");
    };
    if url.contains('?') || url.contains('#') {
        return Err("must not have a query or a fragment");
    }
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host: SCHEME://HOST[:PORT][/PREFIX]");
    }
    if scheme == UpstreamScheme::Tcp && !prefix.is_empty() {
        return Err("a tcp:// server has no path: tcp://HOST:PORT");
    }
    if prefix
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err("the path prefix must not contain spaces or control characters");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [ in an IPv6 address")?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or("bad port")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("must name a host: SCHEME://HOST[:PORT][/PREFIX]");
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err("the port must be 1 to 65535"),
        },
        None => default_port.ok_or("a tcp:// server needs a port: tcp://HOST:PORT")?,
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(UpstreamServer {
        url: url.to_owned(),
        scheme,
        authority,
        host: host.to_owned(),
        port,
        prefix: prefix.to_owned(),
    })
}

/// Cipher suite names rustls's aws-lc-rs provider knows.
pub const CIPHER_SUITES: [&str; 9] = [
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Whether `name` is a valid HTTP header field name (RFC 9110 §5.1 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the proxy sets or that frame the message: not usable for ids or subjects.
fn is_reserved_header(name: &str) -> bool {
    const RESERVED: [&str; 16] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "expect",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A host name in a route or server name list: lower-cased, `*.` allowed first.
fn check_host_pattern(host: &str) -> Result<String, &'static str> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let bare = h.strip_prefix("*.").unwrap_or(&h);
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || bare.split('.').any(str::is_empty)
    {
        return Err("must be a host name such as www.example.com or *.example.com (no port)");
    }
    Ok(h)
}

fn validate(raw: RawConfig, source_of: &dyn Fn(&str) -> String) -> Result<Config, Error> {
    let invalid = |key: String, message: &str| Error::Invalid {
        source_name: source_of(&key),
        key,
        message: message.to_owned(),
    };
    let positive = |key: String, v: u64| {
        if v == 0 {
            Err(invalid(key, "must be greater than 0"))
        } else {
            Ok(())
        }
    };
    if !valid_log_filter(&raw.log.level) {
        return Err(invalid(
            "log.level".into(),
            "not a log filter: use off, error, warn, info, debug or trace, optionally per target (\"keyward_proxy=debug,info\")",
        ));
    }

    // Pools: `[upstream]` is the pool named "default".
    let mut raw_pools: Vec<(String, String, RawPool)> = Vec::new();
    if let Some(up) = raw.upstream {
        if raw.upstreams.contains_key("default") {
            return Err(invalid(
                "upstream".into(),
                "[upstream] is the pool named \"default\"; [upstreams.default] defines it again",
            ));
        }
        raw_pools.push(("default".into(), "upstream".into(), up));
    }
    for (name, pool) in raw.upstreams {
        let key = format!("upstreams.{name}");
        raw_pools.push((name, key, pool));
    }
    let mut upstreams = BTreeMap::new();
    for (name, key, p) in raw_pools {
        let k = |s: &str| format!("{key}.{s}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(key, "pool names use letters, digits, - and _"));
        }
        let urls: Vec<String> = match (p.url, p.servers.is_empty()) {
            (Some(u), true) => vec![u],
            (None, false) => p.servers,
            (Some(_), false) => {
                return Err(invalid(
                    k("url"),
                    "give either url (one server) or servers, not both",
                ))
            }
            (None, true) => {
                return Err(invalid(
                    k(if key == "upstream" { "url" } else { "servers" }),
                    "required: where requests are forwarded (e.g. \"http://127.0.0.1:8080\")",
                ))
            }
        };
        let mut servers = Vec::new();
        for (i, u) in urls.iter().enumerate() {
            let skey = if key == "upstream" {
                k("url")
            } else {
                format!("{key}.servers[{i}]")
            };
            let s = parse_server(u).map_err(|m| invalid(skey.clone(), m))?;
            if servers.iter().any(|o: &UpstreamServer| o.url == s.url) {
                return Err(invalid(skey, "the same server is listed twice"));
            }
            servers.push(s);
        }
        let tcp = servers[0].scheme == UpstreamScheme::Tcp;
        if servers
            .iter()
            .any(|s| (s.scheme == UpstreamScheme::Tcp) != tcp)
        {
            return Err(invalid(
                k("servers"),
                "mixes tcp:// with http(s):// servers; a pool is one or the other",
            ));
        }
        positive(k("connect_timeout_ms"), p.connect_timeout_ms)?;
        positive(k("response_timeout_ms"), p.response_timeout_ms)?;
        positive(k("read_timeout_ms"), p.read_timeout_ms)?;
        positive(k("fail_timeout_ms"), p.fail_timeout_ms)?;
        if let Some(n) = &p.tls_server_name {
            check_host_pattern(n)
                .ok()
                .filter(|h| !h.starts_with("*."))
                .ok_or_else(|| invalid(k("tls_server_name"), "must be a DNS name"))?;
        }
        let health_check = match p.health_check {
            None => None,
            Some(h) => {
                let hk = |s: &str| format!("{key}.health_check.{s}");
                if tcp {
                    return Err(invalid(
                        format!("{key}.health_check"),
                        "HTTP health checks need http:// or https:// servers",
                    ));
                }
                if !h.path.starts_with('/') || h.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(invalid(
                        hk("path"),
                        "must be an absolute path such as /healthz",
                    ));
                }
                positive(hk("interval_ms"), h.interval_ms)?;
                positive(hk("timeout_ms"), h.timeout_ms)?;
                positive(hk("rise"), u64::from(h.rise))?;
                positive(hk("fall"), u64::from(h.fall))?;
                if !(100..=599).contains(&h.expected_status) {
                    return Err(invalid(hk("expected_status"), "must be 100 to 599"));
                }
                Some(HealthCheckConfig {
                    path: h.path,
                    interval_ms: h.interval_ms,
                    timeout_ms: h.timeout_ms,
                    expected_status: h.expected_status,
                    rise: h.rise,
                    fall: h.fall,
                })
            }
        };
        upstreams.insert(
            name,
            PoolConfig {
                servers,
                balance: p.balance,
                connect_timeout_ms: p.connect_timeout_ms,
                response_timeout_ms: p.response_timeout_ms,
                read_timeout_ms: p.read_timeout_ms,
                pool_idle_timeout_ms: p.pool_idle_timeout_ms,
                pool_max_idle_per_host: p.pool_max_idle_per_host,
                retries: p.retries,
                max_fails: p.max_fails,
                fail_timeout_ms: p.fail_timeout_ms,
                tls_ca_file: p.tls_ca_file.map(|f| f.relative()),
                tls_server_name: p.tls_server_name.map(|s| s.to_ascii_lowercase()),
                health_check,
            },
        );
    }
    let is_tcp_pool = |name: &str| {
        upstreams
            .get(name)
            .is_some_and(|p: &PoolConfig| p.servers[0].scheme == UpstreamScheme::Tcp)
    };

    let mut routes = Vec::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let key = |s: &str| format!("routes[{i}].{s}");
        if !upstreams.contains_key(&r.upstream) {
            return Err(invalid(key("upstream"), "names no [upstreams.NAME] pool"));
        }
        if is_tcp_pool(&r.upstream) {
            return Err(invalid(
                key("upstream"),
                "names a tcp:// pool; routes need an HTTP pool",
            ));
        }
        let host = match r.host {
            Some(h) => Some(check_host_pattern(&h).map_err(|m| invalid(key("host"), m))?),
            None => None,
        };
        if !r.path_prefix.starts_with('/') || r.path_prefix.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(invalid(
                key("path_prefix"),
                "must start with / and have no spaces",
            ));
        }
        if routes
            .iter()
            .any(|o: &RouteConfig| o.host == host && o.path_prefix == r.path_prefix)
        {
            return Err(invalid(
                key("path_prefix"),
                "another route has the same host and path_prefix",
            ));
        }
        routes.push(RouteConfig {
            name: r.name.unwrap_or_else(|| format!("{}:{i}", r.upstream)),
            host,
            path_prefix: r.path_prefix,
            upstream: r.upstream,
        });
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
        if l.address.port() != 0
            && listeners
                .iter()
                .any(|o: &ListenerConfig| o.address == l.address)
        {
            return Err(invalid(key("address"), "another listener has this address"));
        }
        match l.mode {
            ListenerMode::Tcp => {
                let up = l.upstream.as_deref().ok_or_else(|| {
                    invalid(
                        key("upstream"),
                        "required for a tcp listener: a tcp:// pool",
                    )
                })?;
                if !upstreams.contains_key(up) {
                    return Err(invalid(key("upstream"), "names no [upstreams.NAME] pool"));
                }
                if !is_tcp_pool(up) {
                    return Err(invalid(
                        key("upstream"),
                        "a tcp listener needs a pool of tcp://HOST:PORT servers",
                    ));
                }
            }
            ListenerMode::Http => {
                if let Some(up) = l.upstream.as_deref() {
                    if !upstreams.contains_key(up) {
                        return Err(invalid(key("upstream"), "names no [upstreams.NAME] pool"));
                    }
                    if is_tcp_pool(up) {
                        return Err(invalid(
                            key("upstream"),
                            "names a tcp:// pool; an http listener needs an HTTP pool",
                        ));
                    }
                } else if l.upstream.is_none() && is_tcp_pool("default") {
                    return Err(invalid(
                        "upstream.url".into(),
                        "is a tcp:// server, but an http listener forwards HTTP: use http:// or https://, or mode = \"tcp\" on the listener",
                    ));
                } else if routes.is_empty() && !upstreams.contains_key("default") {
                    return Err(invalid(
                        "upstream.url".into(),
                        "required: the upstream URL requests are forwarded to (e.g. \"http://127.0.0.1:8080\"), or [[routes]] with [upstreams.NAME] pools",
                    ));
                }
            }
            ListenerMode::Redirect => {
                if !l.certificates.is_empty() || l.client_auth.is_some() {
                    return Err(invalid(
                        key("certificates"),
                        "a redirect listener speaks plain HTTP: no certificates or client_auth",
                    ));
                }
                if l.redirect_https_port == 0 {
                    return Err(invalid(key("redirect_https_port"), "must be 1 to 65535"));
                }
            }
        }
        if l.tls_versions.is_empty() {
            return Err(invalid(
                key("tls_versions"),
                "must name at least one version",
            ));
        }
        let alpn = l.alpn.unwrap_or_else(|| match l.mode {
            ListenerMode::Http => vec!["h2".into(), "http/1.1".into()],
            _ => Vec::new(),
        });
        if alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err(invalid(key("alpn"), "protocol names are 1 to 255 bytes"));
        }
        if l.mode == ListenerMode::Http && alpn.iter().any(|p| p != "h2" && p != "http/1.1") {
            return Err(invalid(
                key("alpn"),
                "an http listener speaks \"h2\" and \"http/1.1\" only",
            ));
        }
        for s in &l.cipher_suites {
            if !CIPHER_SUITES.contains(&s.as_str()) {
                return Err(invalid(
                    key("cipher_suites"),
                    &format!(
                        "unknown cipher suite {s:?} (known: {})",
                        CIPHER_SUITES.join(", ")
                    ),
                ));
            }
        }
        if l.kx_groups.is_empty() {
            return Err(invalid(key("kx_groups"), "must name at least one group"));
        }
        for g in &l.kx_groups {
            if !DEFAULT_KX_GROUPS.contains(&g.as_str()) {
                return Err(invalid(
                    key("kx_groups"),
                    &format!(
                        "unknown group {g:?} (known: {})",
                        DEFAULT_KX_GROUPS.join(", ")
                    ),
                ));
            }
        }
        positive(key("handshake_timeout_ms"), l.handshake_timeout_ms)?;
        positive(key("client_header_timeout_ms"), l.client_header_timeout_ms)?;
        positive(key("idle_timeout_ms"), l.idle_timeout_ms)?;
        positive(key("client_body_timeout_ms"), l.client_body_timeout_ms)?;
        positive(key("max_connections"), l.max_connections as u64)?;
        positive(
            key("max_concurrent_handshakes"),
            l.max_concurrent_handshakes as u64,
        )?;
        if l.max_header_bytes < 8192 {
            return Err(invalid(key("max_header_bytes"), "must be at least 8192"));
        }
        if let Some(h) = &l.hsts {
            if h.is_empty() || h.bytes().any(|b| b < b' ' || b == 0x7f) {
                return Err(invalid(
                    key("hsts"),
                    "must be a header value such as \"max-age=63072000\"",
                ));
            }
        }
        if !is_header_name(&l.request_id_header) || is_reserved_header(&l.request_id_header) {
            return Err(invalid(
                key("request_id_header"),
                "must be a header name of its own (not Host, framing, hop-by-hop or forwarding headers)",
            ));
        }
        let parse_nets = |list: &[String], k: &str| -> Result<Vec<IpNet>, Error> {
            list.iter()
                .map(|c| {
                    c.parse::<IpNet>()
                        .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            invalid(key(k), &format!("{c:?} is not an address or CIDR block"))
                        })
                })
                .collect()
        };
        let trusted_proxies = parse_nets(&l.trusted_proxies, "trusted_proxies")?;
        if !trusted_proxies.is_empty() && l.forwarded_headers != ForwardedTrust::Append {
            return Err(invalid(
                key("trusted_proxies"),
                "only means something with forwarded_headers = \"append\"",
            ));
        }
        let proxy_protocol = match l.proxy_protocol {
            None => None,
            Some(p) => {
                if p.trusted_cidrs.is_empty() {
                    return Err(invalid(
                        key("proxy_protocol.trusted_cidrs"),
                        "name the load balancers' addresses (e.g. [\"10.0.0.0/8\"]); others are refused",
                    ));
                }
                let mut nets = Vec::new();
                for c in &p.trusted_cidrs {
                    let net = c
                        .parse::<IpNet>()
                        .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            invalid(
                                key("proxy_protocol.trusted_cidrs"),
                                &format!("{c:?} is not an address or CIDR block"),
                            )
                        })?;
                    nets.push(net);
                }
                Some(ProxyProtocolConfig {
                    trusted_cidrs: nets,
                })
            }
        };
        let client_auth = match l.client_auth {
            None => None,
            Some(c) => {
                if !is_header_name(&c.subject_header)
                    || is_reserved_header(&c.subject_header)
                    || c.subject_header.eq_ignore_ascii_case(&l.request_id_header)
                {
                    return Err(invalid(
                        key("client_auth.subject_header"),
                        "must be a header name of its own (not Host, framing, hop-by-hop or forwarding headers, nor the request id header)",
                    ));
                }
                Some(ClientAuthConfig {
                    ca_file: c.ca_file.relative(),
                    required: c.required,
                    subject_header: c.subject_header,
                })
            }
        };
        if l.mode != ListenerMode::Redirect && l.certificates.is_empty() {
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
                (None, None) if c.private_key_file.is_some() => String::new(),
                (_, _) if c.private_key_file.is_some() => {
                    return Err(invalid(
                        format!("listeners[{i}].certificates[{j}]"),
                        "private_key_file replaces key_label and key_file; give only one",
                    ))
                }
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
            let mut server_names = Vec::new();
            for n in c.server_names {
                server_names.push(check_host_pattern(&n).map_err(|m| {
                    invalid(format!("listeners[{i}].certificates[{j}].server_names"), m)
                })?);
            }
            certificates.push(CertificateConfig {
                key_label,
                key_file: c.key_file.map(|f| f.relative()),
                private_key_file: c.private_key_file.map(|f| f.relative()),
                chain_file: c.chain_file.relative(),
                server_names,
                default: c.default,
                ocsp_file: c.ocsp_file.map(|f| f.relative()),
            });
        }
        listeners.push(ListenerConfig {
            address: l.address,
            mode: l.mode,
            upstream: l.upstream,
            tls_versions: l.tls_versions,
            cipher_suites: l.cipher_suites,
            kx_groups: l.kx_groups,
            alpn,
            handshake_timeout_ms: l.handshake_timeout_ms,
            client_header_timeout_ms: l.client_header_timeout_ms,
            idle_timeout_ms: l.idle_timeout_ms,
            client_body_timeout_ms: l.client_body_timeout_ms,
            max_connections: l.max_connections,
            max_concurrent_handshakes: l.max_concurrent_handshakes,
            max_header_bytes: l.max_header_bytes,
            max_body_bytes: l.max_body_bytes,
            hsts: l.hsts,
            forwarded_headers: l.forwarded_headers,
            trusted_proxies,
            request_id_header: l.request_id_header,
            redirect_https_port: l.redirect_https_port,
            proxy_protocol,
            client_auth,
            certificates,
        });
    }
    let r = raw.session_resumption;
    positive(
        "session_resumption.ticket_key_rotation_s".into(),
        r.ticket_key_rotation_s,
    )?;
    let api = raw
        .api
        .map(RawApi::validate)
        .transpose()
        .map_err(|key| invalid(key, "must be greater than 0"))?;
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
            access_log: raw.log.access_log,
        },
        listeners,
        upstreams,
        routes,
        session_resumption: ResumptionConfig {
            tickets: r.tickets,
            ticket_key_rotation_s: r.ticket_key_rotation_s,
            session_cache_entries: r.session_cache_entries,
        },
        admin: AdminConfig {
            address: raw.admin.enabled.then_some(raw.admin.address),
        },
        lifecycle: LifecycleConfig {
            drain_timeout_ms: raw.lifecycle.drain_timeout_ms,
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
