//! `[upstream]` and `[upstreams.NAME]`: the pools of servers requests are forwarded to.
//! `[upstream]` (one `url`) is shorthand for the pool named `default`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::Deserialize;

use crate::check::{check_host_pattern, Context};
use crate::Error;

mod health_check;
mod server;

pub use health_check::HealthCheckConfig;
use health_check::RawHealthCheck;
use server::parse_server;
pub use server::{UpstreamScheme, UpstreamServer};

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

/// The validated pools by name.
pub(crate) type Pools = BTreeMap<String, PoolConfig>;

/// Whether `name` is a pool of `tcp://` servers.
pub(crate) fn is_tcp_pool(pools: &Pools, name: &str) -> bool {
    pools
        .get(name)
        .is_some_and(|p| p.servers[0].scheme == UpstreamScheme::Tcp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an upstream table")]
pub(crate) struct RawPool {
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

/// The pools of `[upstream]` (named `default`) and `[upstreams.NAME]`; `cx` is the top level.
pub(crate) fn validate_pools(
    cx: &Context<'_>,
    upstream: Option<RawPool>,
    upstreams: BTreeMap<String, RawPool>,
) -> Result<Pools, Error> {
    // (name, table, whether it is the `[upstream]` shorthand, pool)
    let mut raw_pools: Vec<(String, Context<'_>, bool, RawPool)> = Vec::new();
    if let Some(up) = upstream {
        if upstreams.contains_key("default") {
            return Err(cx.invalid(
                "upstream",
                "[upstream] is the pool named \"default\"; [upstreams.default] defines it again",
            ));
        }
        raw_pools.push(("default".into(), cx.table("upstream"), true, up));
    }
    for (name, pool) in upstreams {
        let table = cx.table(&format!("upstreams.{name}"));
        raw_pools.push((name, table, false, pool));
    }
    let mut pools = Pools::new();
    for (name, table, shorthand, pool) in raw_pools {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(table.invalid_table("pool names use letters, digits, - and _"));
        }
        pools.insert(name, pool.validate(&table, shorthand)?);
    }
    Ok(pools)
}

impl RawPool {
    /// One pool; `cx` is its table, `shorthand` whether it is `[upstream]`.
    fn validate(self, cx: &Context<'_>, shorthand: bool) -> Result<PoolConfig, Error> {
        let servers = self.servers(cx, shorthand)?;
        let tcp = servers[0].scheme == UpstreamScheme::Tcp;
        if servers
            .iter()
            .any(|s| (s.scheme == UpstreamScheme::Tcp) != tcp)
        {
            return Err(cx.invalid(
                "servers",
                "mixes tcp:// with http(s):// servers; a pool is one or the other",
            ));
        }
        cx.positive("connect_timeout_ms", self.connect_timeout_ms)?;
        cx.positive("response_timeout_ms", self.response_timeout_ms)?;
        cx.positive("read_timeout_ms", self.read_timeout_ms)?;
        cx.positive("fail_timeout_ms", self.fail_timeout_ms)?;
        if let Some(n) = &self.tls_server_name {
            check_host_pattern(n)
                .ok()
                .filter(|h| !h.starts_with("*."))
                .ok_or_else(|| cx.invalid("tls_server_name", "must be a DNS name"))?;
        }
        let health_check = self
            .health_check
            .map(|h| h.validate(&cx.table("health_check"), tcp))
            .transpose()?;
        Ok(PoolConfig {
            servers,
            balance: self.balance,
            connect_timeout_ms: self.connect_timeout_ms,
            response_timeout_ms: self.response_timeout_ms,
            read_timeout_ms: self.read_timeout_ms,
            pool_idle_timeout_ms: self.pool_idle_timeout_ms,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
            retries: self.retries,
            max_fails: self.max_fails,
            fail_timeout_ms: self.fail_timeout_ms,
            tls_ca_file: self.tls_ca_file.map(|f| f.relative()),
            tls_server_name: self.tls_server_name.map(|s| s.to_ascii_lowercase()),
            health_check,
        })
    }

    /// `url` or `servers` parsed: at least one server, none listed twice.
    fn servers(&self, cx: &Context<'_>, shorthand: bool) -> Result<Vec<UpstreamServer>, Error> {
        let urls: &[String] = match (&self.url, self.servers.is_empty()) {
            (Some(u), true) => std::slice::from_ref(u),
            (None, false) => &self.servers,
            (Some(_), false) => {
                return Err(cx.invalid("url", "give either url (one server) or servers, not both"))
            }
            (None, true) => {
                return Err(cx.invalid(
                    if shorthand { "url" } else { "servers" },
                    "required: where requests are forwarded (e.g. \"http://127.0.0.1:8080\")",
                ))
            }
        };
        let mut servers: Vec<UpstreamServer> = Vec::new();
        for (i, u) in urls.iter().enumerate() {
            let key = if shorthand {
                "url".to_owned()
            } else {
                format!("servers[{i}]")
            };
            let s = parse_server(u).map_err(|m| cx.invalid(&key, m))?;
            if servers.iter().any(|o| o.url == s.url) {
                return Err(cx.invalid(&key, "the same server is listed twice"));
            }
            servers.push(s);
        }
        Ok(servers)
    }
}
