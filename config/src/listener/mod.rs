//! `[[listeners]]`: the sockets Keyward listens on, what each does with a connection (HTTP,
//! TCP or redirect), its TLS parameters, limits and timeouts. Its sub-tables have files of
//! their own: `tls` (the TLS keys), `certificate`, `client_auth`, `proxy_protocol`.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::check::{is_header_name, is_reserved_header, Context};
use crate::upstream::{is_tcp_pool, Pools};
use crate::Error;

mod certificate;
mod client_auth;
mod proxy_protocol;
mod tls;

pub use certificate::CertificateConfig;
use certificate::RawCertificate;
pub use client_auth::ClientAuthConfig;
use client_auth::RawClientAuth;
pub use proxy_protocol::ProxyProtocolConfig;
use proxy_protocol::RawProxyProtocol;
pub use tls::{CipherSuite, KxGroup, TlsVersion, CIPHER_SUITES, DEFAULT_KX_GROUPS};

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
    /// `cipher_suites`: in preference order, named as rustls names them, e.g.
    /// `TLS13_AES_128_GCM_SHA256`, `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`. Empty (the
    /// default): rustls's aws-lc-rs list.
    pub cipher_suites: Vec<CipherSuite>,
    /// `kx_groups`: key-exchange groups in preference order: `X25519MLKEM768`, `X25519`,
    /// `secp256r1`, `secp384r1`. Default: all four, in that order.
    pub kx_groups: Vec<KxGroup>,
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
    /// `keepalive_rest_ms`: an HTTP/1.1 keep-alive connection that has been quiet between
    /// requests this long rests: its HTTP state and buffers are freed until the client's
    /// next byte. 0 (the default, as nginx frees its buffers after each request) keeps idle
    /// connections smallest (14 KiB each in BENCHMARKS.md); a few milliseconds spare busy
    /// keep-alive connections the cost of resting after every request (about 20% CPU per
    /// request) at the price of memory while many connections open at once.
    pub keepalive_rest_ms: u64,
    /// `max_connections`: connections served at once; at the limit, each listening socket
    /// holds one more connection accepted but unserved and the rest wait in the kernel
    /// backlog. Default 10000.
    pub max_connections: usize,
    /// `max_concurrent_handshakes`: TLS handshakes in progress at once. Default 1024.
    pub max_concurrent_handshakes: usize,
    /// `backlog`: the accept queue of each listening socket (`listen(2)`): connections the
    /// kernel has completed and Keyward has not yet accepted. Default 4096, 1 to 65535. The
    /// kernel silently caps it at `net.core.somaxconn` (`/proc/sys/net/core/somaxconn`,
    /// 4096 on Linux 5.4 and later); `keyward serve` logs a warning when it does. A full
    /// queue drops new SYNs (clients retry after 1 s, then 3 s): see
    /// `keyward_listen_overflows_total`.
    pub backlog: u32,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[listeners]] table")]
pub(crate) struct RawListener {
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
    #[serde(default)]
    keepalive_rest_ms: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_handshakes")]
    max_concurrent_handshakes: usize,
    #[serde(default = "default_backlog")]
    backlog: u32,
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
/// Default of `listeners[].backlog`: the kernel's `somaxconn` default since Linux 5.4
/// (nginx's default is 511, HAProxy's its `maxconn`).
pub const DEFAULT_BACKLOG: u32 = 4096;
fn default_backlog() -> u32 {
    DEFAULT_BACKLOG
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

/// The `[[listeners]]`, at least one; `cx` is the top level. `pools` and `routes_empty`
/// (whether there are no `[[routes]]`) decide which upstreams a listener may name.
pub(crate) fn validate_listeners(
    cx: &Context<'_>,
    raw: Vec<RawListener>,
    pools: &Pools,
    routes_empty: bool,
) -> Result<Vec<ListenerConfig>, Error> {
    if raw.is_empty() {
        return Err(cx.invalid("listeners", "at least one [[listeners]] table is required"));
    }
    let mut listeners: Vec<ListenerConfig> = Vec::new();
    for (i, l) in raw.into_iter().enumerate() {
        let table = cx.item("listeners", i);
        if l.address.port() != 0 && listeners.iter().any(|o| o.address == l.address) {
            return Err(table.invalid("address", "another listener has this address"));
        }
        listeners.push(l.validate(&table, pools, routes_empty)?);
    }
    Ok(listeners)
}

impl RawListener {
    /// One listener; `cx` is its table (`listeners[1]`).
    fn validate(
        mut self,
        cx: &Context<'_>,
        pools: &Pools,
        routes_empty: bool,
    ) -> Result<ListenerConfig, Error> {
        self.check_mode(cx, pools, routes_empty)?;
        tls::check_versions(cx, &self.tls_versions)?;
        let alpn = self.alpn(cx)?;
        let cipher_suites = tls::parse_cipher_suites(cx, &self.cipher_suites)?;
        let kx_groups = tls::parse_kx_groups(cx, &self.kx_groups)?;
        self.check_limits(cx)?;
        self.check_headers(cx)?;
        let trusted_proxies = cx.nets("trusted_proxies", &self.trusted_proxies)?;
        if !trusted_proxies.is_empty() && self.forwarded_headers != ForwardedTrust::Append {
            return Err(cx.invalid(
                "trusted_proxies",
                "only means something with forwarded_headers = \"append\"",
            ));
        }
        let proxy_protocol = self
            .proxy_protocol
            .map(|p| p.validate(&cx.table("proxy_protocol")))
            .transpose()?;
        let client_auth = self
            .client_auth
            .map(|c| c.validate(&cx.table("client_auth"), &self.request_id_header))
            .transpose()?;
        let certificates = validate_certificates(cx, self.mode, self.certificates)?;
        Ok(ListenerConfig {
            address: self.address,
            mode: self.mode,
            upstream: self.upstream,
            tls_versions: self.tls_versions,
            cipher_suites,
            kx_groups,
            alpn,
            handshake_timeout_ms: self.handshake_timeout_ms,
            client_header_timeout_ms: self.client_header_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            client_body_timeout_ms: self.client_body_timeout_ms,
            keepalive_rest_ms: self.keepalive_rest_ms,
            max_connections: self.max_connections,
            max_concurrent_handshakes: self.max_concurrent_handshakes,
            backlog: self.backlog,
            max_header_bytes: self.max_header_bytes,
            max_body_bytes: self.max_body_bytes,
            hsts: self.hsts,
            forwarded_headers: self.forwarded_headers,
            trusted_proxies,
            request_id_header: self.request_id_header,
            redirect_https_port: self.redirect_https_port,
            proxy_protocol,
            client_auth,
            certificates,
        })
    }

    /// What the mode needs: a `tcp` listener a TCP pool, an `http` listener an HTTP pool (its
    /// own, `default`, or routes), a `redirect` listener no TLS settings.
    fn check_mode(&self, cx: &Context<'_>, pools: &Pools, routes_empty: bool) -> Result<(), Error> {
        match self.mode {
            ListenerMode::Tcp => {
                let up = self.upstream.as_deref().ok_or_else(|| {
                    cx.invalid("upstream", "required for a tcp listener: a tcp:// pool")
                })?;
                if !pools.contains_key(up) {
                    return Err(cx.invalid("upstream", "names no [upstreams.NAME] pool"));
                }
                if !is_tcp_pool(pools, up) {
                    return Err(cx.invalid(
                        "upstream",
                        "a tcp listener needs a pool of tcp://HOST:PORT servers",
                    ));
                }
            }
            ListenerMode::Http => {
                if let Some(up) = self.upstream.as_deref() {
                    if !pools.contains_key(up) {
                        return Err(cx.invalid("upstream", "names no [upstreams.NAME] pool"));
                    }
                    if is_tcp_pool(pools, up) {
                        return Err(cx.invalid(
                            "upstream",
                            "names a tcp:// pool; an http listener needs an HTTP pool",
                        ));
                    }
                } else if is_tcp_pool(pools, "default") {
                    return Err(cx.root().invalid(
                        "upstream.url",
                        "is a tcp:// server, but an http listener forwards HTTP: use http:// or https://, or mode = \"tcp\" on the listener",
                    ));
                } else if routes_empty && !pools.contains_key("default") {
                    return Err(cx.root().invalid(
                        "upstream.url",
                        "required: the upstream URL requests are forwarded to (e.g. \"http://127.0.0.1:8080\"), or [[routes]] with [upstreams.NAME] pools",
                    ));
                }
            }
            ListenerMode::Redirect => {
                if !self.certificates.is_empty() || self.client_auth.is_some() {
                    return Err(cx.invalid(
                        "certificates",
                        "a redirect listener speaks plain HTTP: no certificates or client_auth",
                    ));
                }
                if self.redirect_https_port == 0 {
                    return Err(cx.invalid("redirect_https_port", "must be 1 to 65535"));
                }
            }
        }
        Ok(())
    }

    /// `alpn`, or its default for the mode: 1 to 255 bytes each; `h2` and `http/1.1` only
    /// for an `http` listener.
    fn alpn(&mut self, cx: &Context<'_>) -> Result<Vec<String>, Error> {
        let alpn = self.alpn.take().unwrap_or_else(|| match self.mode {
            ListenerMode::Http => vec!["h2".into(), "http/1.1".into()],
            _ => Vec::new(),
        });
        if alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
            return Err(cx.invalid("alpn", "protocol names are 1 to 255 bytes"));
        }
        if self.mode == ListenerMode::Http && alpn.iter().any(|p| p != "h2" && p != "http/1.1") {
            return Err(cx.invalid(
                "alpn",
                "an http listener speaks \"h2\" and \"http/1.1\" only",
            ));
        }
        Ok(alpn)
    }

    /// Timeouts and connection limits greater than 0; `max_header_bytes` at least 8192.
    fn check_limits(&self, cx: &Context<'_>) -> Result<(), Error> {
        cx.positive("handshake_timeout_ms", self.handshake_timeout_ms)?;
        cx.positive("client_header_timeout_ms", self.client_header_timeout_ms)?;
        cx.positive("idle_timeout_ms", self.idle_timeout_ms)?;
        cx.positive("client_body_timeout_ms", self.client_body_timeout_ms)?;
        cx.positive("max_connections", self.max_connections as u64)?;
        cx.positive(
            "max_concurrent_handshakes",
            self.max_concurrent_handshakes as u64,
        )?;
        if !(1..=65535).contains(&self.backlog) {
            return Err(cx.invalid("backlog", "must be 1 to 65535"));
        }
        if self.max_header_bytes < 8192 {
            return Err(cx.invalid("max_header_bytes", "must be at least 8192"));
        }
        Ok(())
    }

    /// `hsts` is a header value; `request_id_header` a header name the proxy does not own.
    fn check_headers(&self, cx: &Context<'_>) -> Result<(), Error> {
        if let Some(h) = &self.hsts {
            if h.is_empty() || h.bytes().any(|b| b < b' ' || b == 0x7f) {
                return Err(cx.invalid(
                    "hsts",
                    "must be a header value such as \"max-age=63072000\"",
                ));
            }
        }
        if !is_header_name(&self.request_id_header) || is_reserved_header(&self.request_id_header) {
            return Err(cx.invalid(
                "request_id_header",
                "must be a header name of its own (not Host, framing, hop-by-hop or forwarding headers)",
            ));
        }
        Ok(())
    }
}

/// `[[listeners.certificates]]`: at least one unless `redirect`, at most one default; `cx` is
/// the listener's table.
fn validate_certificates(
    cx: &Context<'_>,
    mode: ListenerMode,
    raw: Vec<RawCertificate>,
) -> Result<Vec<CertificateConfig>, Error> {
    if mode != ListenerMode::Redirect && raw.is_empty() {
        return Err(cx.invalid(
            "certificates",
            "at least one [[listeners.certificates]] table is required",
        ));
    }
    if raw.iter().filter(|c| c.default).count() > 1 {
        return Err(cx.invalid("certificates", "at most one certificate may be the default"));
    }
    raw.into_iter()
        .enumerate()
        .map(|(j, c)| c.validate(&cx.item("certificates", j)))
        .collect()
}
