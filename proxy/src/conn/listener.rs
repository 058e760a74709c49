//! Accept loops and connections: PROXY protocol, limits, the TLS handshake (with metrics),
//! then HTTP/1.1, HTTP/2, a TCP byte stream (layer 4) or a plain-HTTP redirect.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use keyward_config::{ListenerConfig, ListenerMode};
use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::LazyConfigAcceptor;

use crate::http_layer::h1guard::H1Guard;
use crate::http_layer::handler::{ConnInfo, Handler};
use crate::http_layer::respond::{record, Refusal, Refused};
use crate::metrics::metrics;
use crate::upstream::route::Router;
use crate::upstream::{Pool, Pools};

/// What one listening socket does now; replaced as a whole on reload.
pub(crate) struct ListenerState {
    pub(crate) cfg: ListenerConfig,
    /// `None` for a plain-HTTP redirect listener.
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) router: Router,
    pub(crate) pools: Arc<Pools>,
    /// The pool of a `tcp` listener.
    pub(crate) tcp_pool: Option<Arc<Pool>>,
    /// Per socket, kept across reloads (resized to the new limit).
    pub(crate) handshakes: Arc<Limit>,
    /// Per socket, kept across reloads (resized to the new limit).
    pub(crate) connections: Arc<Limit>,
    /// The `listener` metric label: the bound address.
    pub(crate) label: String,
    /// Client-certificate subject headers of every listener: removed from every request, so
    /// a client cannot forge one on a listener without client authentication.
    pub(crate) subject_headers: Arc<Vec<http::HeaderName>>,
    pub(crate) access_log: bool,
}

/// A concurrency limit that keeps counting across reloads: connections opened before a
/// reload still hold their permits, and a new limit resizes the same semaphore.
pub(crate) struct Limit {
    pub(crate) semaphore: Arc<Semaphore>,
    size: std::sync::Mutex<usize>,
}

impl Limit {
    pub(crate) fn new(size: usize) -> Arc<Limit> {
        Arc::new(Limit {
            semaphore: Arc::new(Semaphore::new(size)),
            size: std::sync::Mutex::new(size),
        })
    }

    /// Grows or shrinks the limit. Shrinking takes effect as permits come back.
    pub(crate) fn resize(self: &Arc<Self>, size: usize) {
        let mut current = self.size.lock().unwrap_or_else(|e| e.into_inner());
        if size > *current {
            self.semaphore.add_permits(size - *current);
        } else if size < *current {
            let mut excess = *current - size;
            excess -= self.semaphore.forget_permits(excess);
            if excess > 0 {
                // Permits in use now: take them out as they are released.
                let me = self.clone();
                tokio::spawn(async move {
                    if let Ok(p) = me.semaphore.acquire_many(excess as u32).await {
                        p.forget();
                    }
                });
            }
        }
        *current = size;
    }
}

/// Shared by the accept loops and connections of a server (the proxy's listeners; the HSM
/// API's): whether it drains, and how many connections are still open.
pub struct Lifecycle {
    /// Becomes true when draining starts (SIGTERM).
    pub(crate) draining: watch::Receiver<bool>,
    /// Connections open now, of every listener.
    pub(crate) active: AtomicUsize,
    /// Woken when `active` drops to zero.
    pub(crate) idle: tokio::sync::Notify,
}

impl Lifecycle {
    /// A lifecycle that starts draining when `draining` becomes true.
    pub fn new(draining: watch::Receiver<bool>) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            draining,
            active: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        })
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Waits until every connection has closed, at most `within`; false when some are still
    /// open then.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                let notified = self.idle.notified();
                if self.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Counts a connection in `keyward_connections_active` and in the drain count until dropped.
pub struct Active {
    lifecycle: Arc<Lifecycle>,
    gauge: prometheus::IntGauge,
}

impl Active {
    /// Counts a connection of the listener labelled `label` (its bound address).
    pub fn new(lifecycle: Arc<Lifecycle>, label: &str) -> Active {
        let gauge = metrics().connections_active.with_label_values(&[label]);
        gauge.inc();
        lifecycle.active.fetch_add(1, Ordering::SeqCst);
        Active { lifecycle, gauge }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.gauge.dec();
        if self.lifecycle.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.lifecycle.idle.notify_waiters();
        }
    }
}

/// Accepts connections on `socket` until draining starts. `state` gives the listener's
/// current settings (reloads swap it).
pub(crate) async fn accept_loop(
    socket: TcpListener,
    state: impl Fn() -> Arc<ListenerState> + Send + 'static,
    lifecycle: Arc<Lifecycle>,
) {
    let mut last_warned: Option<Instant> = None;
    let mut draining = lifecycle.draining.clone();
    loop {
        let st = state();
        // At most `max_connections` open: the rest wait in the kernel's backlog.
        let permit = tokio::select! {
            biased;
            _ = draining.wait_for(|d| *d) => return,
            p = st.connections.semaphore.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = draining.wait_for(|d| *d) => return,
            a = socket.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning, and say so at most once a
                // second so that a flood of connections cannot flood the log.
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    last_warned = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The settings of now, not of before the wait: a reload while waiting applies here.
        let st = state();
        let active = Active::new(lifecycle.clone(), &st.label);
        let lifecycle = lifecycle.clone();
        tokio::spawn(async move {
            serve_connection(st, tcp, peer, lifecycle).await;
            drop(active);
            drop(permit);
        });
    }
}

/// Bytes read ahead of the TLS stream (after a PROXY header), replayed first.
pub(crate) struct Prefixed<IO> {
    prefix: Vec<u8>,
    pos: usize,
    inner: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How long an idle connection may take to close after being asked to.
const IDLE_GRACE: Duration = Duration::from_secs(2);

/// The PROXY protocol v2 signature (12 bytes).
const PROXY_V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included (the spec's 107 bytes).
const PROXY_V1_MAX: usize = 107;
/// The longest v2 header accepted (16-byte fixed part plus addresses and TLVs).
const PROXY_V2_MAX: usize = 16 + 1024;

/// Parses a PROXY protocol v1 or v2 header (haproxy's proxy-protocol.txt, §2.1 and §2.2) at
/// the start of `buf`. `Ok(None)`: more bytes are needed. `Ok(Some((addr, len)))`: the header
/// is `len` bytes long and carries the client address `addr` (`None` for `LOCAL`/`UNKNOWN`:
/// use the TCP peer's). `Err`: not a valid header.
pub(crate) fn parse_proxy_header(
    buf: &[u8],
) -> Result<Option<(Option<SocketAddr>, usize)>, &'static str> {
    if buf.len() >= 12 && buf[..12] == PROXY_V2_SIGNATURE[..] {
        if buf.len() < 16 {
            return Ok(None);
        }
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > PROXY_V2_MAX {
            return Err("PROXY v2 header too long");
        }
        if buf.len() < len {
            return Ok(None);
        }
        let header =
            ppp::v2::Header::try_from(&buf[..len]).map_err(|_| "malformed PROXY v2 header")?;
        let addr = match (header.command, header.addresses) {
            (ppp::v2::Command::Local, _) => None,
            (_, ppp::v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            (_, ppp::v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            _ => None,
        };
        return Ok(Some((addr, len)));
    }
    if buf.len() >= 6 && buf.starts_with(b"PROXY ") {
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            if buf.len() >= PROXY_V1_MAX {
                return Err("PROXY v1 header too long");
            }
            return Ok(None);
        };
        if end + 2 > PROXY_V1_MAX {
            return Err("PROXY v1 header too long");
        }
        // The v1 header is ASCII (spec §2.1). Checking that here also keeps ppp from slicing a
        // multi-byte character after a stray CR (it panics there; found by fuzzing).
        let line = &buf[..end + 2];
        if !line.is_ascii() || line[..end].contains(&b'\r') {
            return Err("malformed PROXY v1 header");
        }
        let text = std::str::from_utf8(line).map_err(|_| "malformed PROXY v1 header")?;
        let header = ppp::v1::Header::try_from(text).map_err(|_| "malformed PROXY v1 header")?;
        let addr = match header.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v1::Addresses::Unknown => None,
        };
        return Ok(Some((addr, end + 2)));
    }
    let could_be_v2 = PROXY_V2_SIGNATURE.starts_with(&buf[..buf.len().min(12)]);
    let could_be_v1 = b"PROXY ".starts_with(&buf[..buf.len().min(6)]);
    if could_be_v1 || could_be_v2 {
        Ok(None)
    } else {
        Err("no PROXY header")
    }
}

/// Reads a PROXY protocol header from `tcp` (see [`parse_proxy_header`]); returns the client
/// address it carries and the bytes read after it.
async fn read_proxy_header(
    tcp: &mut TcpStream,
) -> Result<(Option<SocketAddr>, Vec<u8>), &'static str> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|_| "read error before the PROXY header")?;
        if n == 0 {
            return Err("connection closed before a PROXY header");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((addr, len)) = parse_proxy_header(&buf)? {
            return Ok((addr, buf[len..].to_vec()));
        }
    }
}

/// Records when bytes last moved on a connection and how many requests are in flight on it,
/// to close idle connections.
#[derive(Default)]
pub struct Activity {
    base: Option<Instant>,
    last_ms: AtomicU64,
    /// Requests in flight on the connection (an HTTP connection is idle only with none).
    pub(crate) in_flight: AtomicUsize,
}

impl Activity {
    /// A connection's activity, starting now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Some(Instant::now()),
            ..Activity::default()
        })
    }
    /// Counts a request in flight (the connection is not idle) until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> ActiveRequest {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    fn touch(&self) {
        if let Some(base) = self.base {
            let ms = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }
    fn idle_for(&self) -> Duration {
        let now = self.base.map_or(0, |b| b.elapsed().as_millis() as u64);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
    /// Resolves once nothing moved and no request was in flight for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= limit && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wait = limit.saturating_sub(idle).max(Duration::from_millis(100));
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight on its connection, from [`Activity::request`], until dropped.
pub struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An IO wrapper that touches an [`Activity`] on every read and write.
pub struct Tracked<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> Tracked<IO> {
    /// Wraps `inner`; every byte read or written counts as activity.
    pub fn new(inner: IO, activity: Arc<Activity>) -> Tracked<IO> {
        Tracked { inner, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn version_label(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "unknown",
    }
}

async fn serve_connection(
    st: Arc<ListenerState>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    lifecycle: Arc<Lifecycle>,
) {
    let _ = tcp.set_nodelay(true);
    let handshake_timeout = Duration::from_millis(st.cfg.handshake_timeout_ms);
    let mut client = peer;
    let mut prefix = Vec::new();
    if let Some(pp) = &st.cfg.proxy_protocol {
        let ip = peer.ip().to_canonical();
        if !pp.trusted_cidrs.iter().any(|net| net.contains(&ip)) {
            metrics().proxy_protocol_rejected.inc();
            tracing::debug!(%peer, "PROXY header expected from a trusted source only; connection refused");
            return;
        }
        match tokio::time::timeout(handshake_timeout, read_proxy_header(&mut tcp)).await {
            Ok(Ok((addr, rest))) => {
                client = addr.unwrap_or(peer);
                prefix = rest;
            }
            Ok(Err(reason)) => {
                metrics().proxy_protocol_rejected.inc();
                tracing::debug!(%peer, reason, "PROXY header refused");
                return;
            }
            Err(_) => {
                metrics().proxy_protocol_rejected.inc();
                tracing::debug!(%peer, "no PROXY header before the handshake timeout");
                return;
            }
        }
    }
    let activity = Activity::new();
    let io = Tracked {
        inner: Prefixed {
            prefix,
            pos: 0,
            inner: tcp,
        },
        activity: activity.clone(),
    };
    let Some(tls_config) = st.tls.clone() else {
        // A plain-HTTP redirect listener.
        let info = Arc::new(ConnInfo {
            client,
            client_subject: None,
            tls: false,
        });
        serve_http(st, io, false, info, activity, lifecycle).await;
        return;
    };

    // The TLS handshake, at most `max_concurrent_handshakes` at a time.
    let Ok(_permit) = st.handshakes.semaphore.clone().acquire_owned().await else {
        return;
    };
    let handshake = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), io).await?;
        let began = Instant::now();
        let stream = start.into_stream(tls_config).await?;
        Ok::<_, std::io::Error>((stream, began))
    };
    let (tls, began) = match tokio::time::timeout(handshake_timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            metrics()
                .tls_handshakes
                .with_label_values(&["unknown", "error", "false"])
                .inc();
            tracing::debug!(%client, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            metrics()
                .tls_handshakes
                .with_label_values(&["unknown", "timeout", "false"])
                .inc();
            tracing::debug!(%client, "TLS handshake timed out");
            return;
        }
    };
    drop(_permit);
    let conn = tls.get_ref().1;
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    metrics()
        .tls_handshakes
        .with_label_values(&[
            version_label(conn.protocol_version()),
            "ok",
            if resumed { "true" } else { "false" },
        ])
        .inc();
    metrics()
        .tls_handshake_duration
        .observe(began.elapsed().as_secs_f64());
    let client_subject = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| {
            x509_parser::prelude::X509Certificate::from_der(leaf)
                .ok()
                .map(|(_, c)| rfc4514(c.subject()))
        });
    let h2 = conn.alpn_protocol() == Some(b"h2");

    if st.cfg.mode == ListenerMode::Tcp {
        serve_tcp(st, tls, client, activity, lifecycle).await;
        return;
    }
    let info = Arc::new(ConnInfo {
        client,
        client_subject,
        tls: true,
    });
    serve_http(st, tls, h2, info, activity, lifecycle).await;
}

use x509_parser::prelude::FromDer as _;

/// The RFC 4514 string of a distinguished name: RDNs last-to-first, `+` between the
/// attributes of a multi-valued RDN, short names for the types RFC 4514 §3 lists (others as
/// dotted OIDs with `#` and the hex DER value), and special characters escaped (§2.4).
/// Control and non-ASCII bytes are escaped as `\XX` hex pairs, so the result is always a
/// valid HTTP header value.
pub(crate) fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::ToDer;
    const SHORT: [(&str, &str); 9] = [
        ("2.5.4.3", "CN"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.6", "C"),
        ("2.5.4.9", "STREET"),
        ("0.9.2342.19200300.100.1.25", "DC"),
        ("0.9.2342.19200300.100.1.1", "UID"),
    ];
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            let short = SHORT.iter().find(|(o, _)| *o == oid).map(|(_, n)| *n);
            match (short, attr.as_str()) {
                (Some(n), Ok(value)) => {
                    out.push_str(n);
                    out.push('=');
                    escape_value(value, &mut out);
                }
                _ => {
                    out.push_str(&oid);
                    out.push_str("=#");
                    for b in attr.attr_value().to_der_vec().unwrap_or_default() {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_value(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\')
            || (i == 0 && (b == b' ' || b == b'#'))
            || (i + 1 == bytes.len() && b == b' ');
        if special {
            out.push('\\');
            out.push(char::from(b));
        } else if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
}

async fn serve_tcp<IO>(
    st: Arc<ListenerState>,
    mut client_io: IO,
    client: SocketAddr,
    activity: Arc<Activity>,
    lifecycle: Arc<Lifecycle>,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Some(pool) = st.tcp_pool.clone() else {
        return;
    };
    let (upstream, _in_flight) = match pool.connect_tcp().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%client, pool = pool.name(), error = ?e, "layer-4 upstream unavailable");
            return;
        }
    };
    let mut upstream = upstream;
    let idle = Duration::from_millis(st.cfg.idle_timeout_ms);
    let mut draining = lifecycle.draining.clone();
    let started = Instant::now();
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client_io, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(%client, error = %e, "layer-4 stream ended with an error");
            }
        }
        _ = activity.idle(idle) => {
            tracing::debug!(%client, "layer-4 stream idle; closed");
        }
        // A byte stream cannot be drained gracefully: it runs until the drain deadline.
        _ = async { let _ = draining.wait_for(|d| *d).await; std::future::pending::<()>().await } => {}
    }
    if st.access_log {
        tracing::info!(
            target: "keyward::access",
            client = %client,
            listener = %st.label,
            pool = pool.name(),
            duration_ms = started.elapsed().as_millis() as u64,
            "tcp"
        );
    }
}

/// Runs a hyper connection until it ends: on draining or when idle it is asked to shut down
/// gracefully (HTTP/1.1: close after the current response; HTTP/2: GOAWAY); an idle one that
/// ignores that (or never sent the HTTP/2 preface) is dropped after [`IDLE_GRACE`].
pub async fn drive<C, E>(
    conn: C,
    mut graceful_shutdown: impl FnMut(Pin<&mut C>),
    activity: &Activity,
    idle: Duration,
    draining: &mut watch::Receiver<bool>,
) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    let mut shutting = false;
    let grace = tokio::time::sleep(IDLE_GRACE);
    tokio::pin!(grace);
    let mut grace_armed = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = draining.wait_for(|d| *d), if !shutting => {
                shutting = true;
                graceful_shutdown(conn.as_mut());
            }
            _ = activity.idle(idle), if !shutting => {
                shutting = true;
                graceful_shutdown(conn.as_mut());
                grace.as_mut().reset(tokio::time::Instant::now() + IDLE_GRACE);
                grace_armed = true;
            }
            _ = grace.as_mut(), if grace_armed => return Ok(()),
        }
    }
}

async fn serve_http<IO>(
    st: Arc<ListenerState>,
    io: IO,
    h2: bool,
    info: Arc<ConnInfo>,
    activity: Arc<Activity>,
    lifecycle: Arc<Lifecycle>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = Duration::from_millis(st.cfg.idle_timeout_ms);
    let mut draining = lifecycle.draining.clone();
    // One handler per connection (with the smuggling guard's verdicts on HTTP/1.1).
    let handler_with = |verdicts| {
        Arc::new(Handler::new(
            st.clone(),
            info.clone(),
            activity.clone(),
            verdicts,
        ))
    };
    if h2 {
        // HTTP/2 with the h2 crate directly (h2conn.rs: `100 Continue`, which hyper's HTTP/2
        // server never sends).
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let conn = crate::http_layer::h2::serve(
            io,
            handler_with(None),
            u32::try_from(st.cfg.max_header_bytes).unwrap_or(u32::MAX),
            shutdown.clone(),
        );
        let result = drive(
            conn,
            |_| shutdown.notify_one(),
            &activity,
            idle,
            &mut draining,
        )
        .await;
        if let Err(e) = result {
            tracing::debug!(client = %info.client, error = %e, "HTTP/2 connection ended with an error");
        }
        return;
    }
    let result = {
        // HTTP/1.1 framing is checked by the smuggling guard before hyper sees it; both get
        // the same head-size limit, so hyper answers 431 first.
        let (io, verdicts) = H1Guard::new(io, st.cfg.max_header_bytes.max(8192));
        let handler = handler_with(Some(verdicts.clone()));
        // The request future is boxed: hyper keeps a slot the size of the service future for
        // the whole connection, also while it idles between requests; boxed, the request's
        // state (~3 KiB) exists only while a request is in flight.
        let service = hyper::service::service_fn(move |req| {
            let handler = handler.clone();
            Box::pin(async move { handler.handle(req).await })
        });
        let io = hyper_util::rt::TokioIo::new(io);
        // The header timeout runs from the first byte of a request head (slowloris); the idle
        // timeout closes keep-alive connections with no request in flight.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_millis(st.cfg.client_header_timeout_ms))
            .max_buf_size(st.cfg.max_header_bytes.max(8192))
            .serve_connection(io, service)
            .with_upgrades();
        let result = drive(
            conn,
            |c| c.graceful_shutdown(),
            &activity,
            idle,
            &mut draining,
        )
        .await;
        // hyper answers a head its parser refuses (400, 431, 414) and ends the connection
        // without calling the service: count and log that refusal here.
        if let Err(e) = &result {
            if let Some(refusal) = Refusal::from_hyper(e, verdicts.unserved_rejection()) {
                record(
                    refusal,
                    Refused {
                        client: info.client,
                        listener: &st.label,
                    },
                );
            }
        }
        result
    };
    if let Err(e) = result {
        tracing::debug!(client = %info.client, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_proxy_header, rfc4514};
    use x509_parser::prelude::FromDer;

    #[test]
    fn subjects_are_rfc4514_strings_with_escapes() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, "guest, O=Admins\r\n#x ");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(
            rfc4514(parsed.subject()),
            "CN=guest\\, O=Admins\\0D\\0A#x\\ ,O=Acme\\, Inc.,C=DE"
        );
    }

    #[test]
    fn proxy_headers_v1_v2_partial_and_bad() {
        let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 55555 443\r\nrest";
        let (addr, len) = parse_proxy_header(v1).unwrap().unwrap();
        assert_eq!(addr.unwrap().to_string(), "203.0.113.7:55555");
        assert_eq!(&v1[len..], b"rest");
        for cut in 0..len {
            assert_eq!(parse_proxy_header(&v1[..cut]), Ok(None), "cut at {cut}");
        }
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse_proxy_header(unknown), Ok(Some((None, unknown.len()))));
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x40, 1, 187,
        ]);
        let (addr, len) = parse_proxy_header(&v2).unwrap().unwrap();
        assert_eq!(addr.unwrap().to_string(), "198.51.100.9:40000");
        assert_eq!(len, v2.len());
        for cut in 0..len {
            assert_eq!(parse_proxy_header(&v2[..cut]), Ok(None), "cut at {cut}");
        }
        // LOCAL command: the peer's address is used.
        let mut local = v2.clone();
        local[12] = 0x20;
        assert_eq!(parse_proxy_header(&local).unwrap().unwrap().0, None);
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01",
            b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\r\n",
        ] {
            assert!(parse_proxy_header(bad).is_err(), "{bad:?}");
        }
        // Found by cargo fuzz: a CR followed by a multi-byte UTF-8 character.
        let crash = b"PROXY \xdb\xafPROXY \xdb\xaf\xd4\xad\xca\xbf\r\xd4\xad\xca\xbf\r\n";
        assert!(parse_proxy_header(crash).is_err());
        let long = [b"PROXY ".as_slice(), &[b'A'; 200]].concat();
        assert!(parse_proxy_header(&long).is_err());
    }
}
