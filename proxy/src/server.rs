//! Listeners: TLS accept loops serving HTTP/1.1 and HTTP/2 to the upstream.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keyward_config::{Config, ListenerConfig, TlsVersion};
use keyward_hsm::{Hsm, KeyClass, Session};
use rustls::server::ServerSessionMemoryCache;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::Error;
use crate::forward::Upstream;
use crate::resolver::{Entry, SniResolver};
use crate::signer::signing_key;

/// Stateful TLS session cache entries per listener (TLS 1.2 session IDs, TLS 1.3 stateful).
const SESSION_CACHE_ENTRIES: usize = 20_000;

struct Listener {
    socket: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    client_header_timeout: Duration,
}

/// Largest certificate chain file read, in bytes.
const MAX_CHAIN_FILE_BYTES: u64 = 1024 * 1024;

/// A built proxy: sockets bound, certificates loaded, keys resolved in the HSM.
pub struct Proxy {
    listeners: Vec<Listener>,
    upstream: Arc<Upstream>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listeners", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

/// A certificate chain read from a PEM file, with what the leaf says about itself.
struct Chain {
    certs: Vec<CertificateDer<'static>>,
    dns_names: Vec<String>,
}

fn read_chain(path: &Path) -> Result<Chain, Error> {
    let err = |reason: String| Error::CertificateFile {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX_CHAIN_FILE_BYTES {
        return Err(err(format!("larger than {MAX_CHAIN_FILE_BYTES} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| err(e.kind().to_string()))?;
    if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
        tracing::warn!(path = %path.display(), "the chain file also holds a PRIVATE KEY block, which Keyward ignores: keys live in the HSM; remove the key from this file");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("not a PEM certificate chain ({e})")))?;
    let leaf = certs
        .first()
        .ok_or_else(|| err("no CERTIFICATE block in the file".into()))?;
    let (_, parsed) = X509Certificate::from_der(leaf)
        .map_err(|_| err("the first certificate is not valid X.509 DER".into()))?;
    if !parsed.validity().is_valid() {
        tracing::warn!(
            path = %path.display(),
            not_before = %parsed.validity().not_before,
            not_after = %parsed.validity().not_after,
            "the leaf certificate is not valid now; clients will refuse it"
        );
    }
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push(n.to_ascii_lowercase());
            }
        }
    }
    Ok(Chain { certs, dns_names })
}

/// Reads a reference PEM that names an HSM key.
fn read_reference(path: &Path) -> Result<keyward_hsm::KeyReference, Error> {
    let err = |reason: String| Error::CertificateFile {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.kind().to_string()))?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return Err(err("not a small regular file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(e.kind().to_string()))?;
    keyward_hsm::KeyReference::from_pem(&bytes).map_err(|e| err(e.to_string()))
}

/// Compares two SubjectPublicKeyInfo DER encodings by algorithm OID and key bits.
fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    match (
        SubjectPublicKeyInfo::from_der(a),
        SubjectPublicKeyInfo::from_der(b),
    ) {
        (Ok((_, a)), Ok((_, b))) => {
            a.algorithm.algorithm == b.algorithm.algorithm
                && a.subject_public_key.data == b.subject_public_key.data
        }
        _ => false,
    }
}

fn leaf_spki(chain: &Chain) -> Vec<u8> {
    X509Certificate::from_der(&chain.certs[0])
        .map(|(_, c)| c.tbs_certificate.subject_pki.raw.to_vec())
        .unwrap_or_default()
}

fn tls_config(
    listener: &ListenerConfig,
    hsm: &Hsm,
    session: &Session,
) -> Result<ServerConfig, Error> {
    let mut resolver = SniResolver::default();
    for (i, cert) in listener.certificates.iter().enumerate() {
        let chain = read_chain(&cert.chain_file)?;
        let reference = match &cert.key_file {
            Some(path) => Some(read_reference(path)?),
            None => None,
        };
        let label = reference
            .as_ref()
            .map_or(cert.key_label.as_str(), |r| r.label.as_str());
        let key_err = |error| Error::Key {
            label: label.to_owned(),
            path: cert.chain_file.clone(),
            error,
        };
        let info = hsm
            .find_by_label(session, label, KeyClass::Private)
            .map_err(key_err)?;
        let signer = hsm.signer(session, info.handle).map_err(key_err)?;
        if let (Some(r), Some(path)) = (&reference, &cert.key_file) {
            if keyward_hsm::spki_sha256(signer.spki_der()) != r.spki_sha256 {
                return Err(Error::CertificateFile {
                    path: path.clone(),
                    reason: format!(
                        "names key {:?}, but the HSM key of that label has another public key",
                        r.label
                    ),
                });
            }
        }
        if !same_public_key(&leaf_spki(&chain), signer.spki_der()) {
            return Err(Error::KeyMismatch {
                label: label.to_owned(),
                path: cert.chain_file.clone(),
            });
        }
        let key = signing_key(signer);
        let names = if cert.server_names.is_empty() {
            chain.dns_names.clone()
        } else {
            cert.server_names.clone()
        };
        let is_default =
            cert.default || (i == 0 && !listener.certificates.iter().any(|c| c.default));
        let certified = Arc::new(CertifiedKey::new(chain.certs, key.clone()));
        resolver.add(&names, Entry { certified, key }, is_default);
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = listener
        .tls_versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let tls_err = |error| Error::Tls {
        address: listener.address,
        error,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = listener
        .alpn
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    // `config.ticketer` is set by `Proxy::build`, last.
    Ok(config)
}

impl Proxy {
    /// Reads every certificate file, resolves each key label in the HSM, checks that each
    /// certificate's public key is its HSM key's, and binds every listener.
    ///
    /// Keys are used as `session`'s user (normally [`keyward_hsm::PROXY_USER`]). Session
    /// tickets use HSM ticket keys shared by every node on the store; `role` says whether this
    /// node makes and rotates them ([`NodeRole::Writer`](crate::NodeRole)) or loads those the
    /// writer makes.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::CertificateFile`], [`Error::Key`], [`Error::KeyMismatch`], [`Error::Tls`],
    /// [`Error::Upstream`], [`Error::Tickets`], [`Error::Bind`]; the first one found, with
    /// nothing left bound.
    pub fn build(
        config: &Config,
        hsm: &Arc<Hsm>,
        session: &Session,
        role: crate::tickets::NodeRole,
    ) -> Result<Proxy, Error> {
        let pool = config
            .upstreams
            .get("default")
            .ok_or_else(|| Error::Upstream {
                pool: "default".into(),
                reason: "not configured".into(),
            })?;
        let upstream = Arc::new(Upstream::new(pool)?);
        let mut prepared = Vec::new();
        for l in &config.listeners {
            prepared.push((l, tls_config(l, hsm, session)?));
        }
        let mut bound = Vec::new();
        for (l, tls) in prepared {
            let socket = std::net::TcpListener::bind(l.address)
                .and_then(|s| {
                    s.set_nonblocking(true)?;
                    TcpListener::from_std(s)
                })
                .map_err(|error| Error::Bind {
                    address: l.address,
                    error,
                })?;
            bound.push((l, tls, socket));
        }
        // Last: a writer node may create ticket keys in the store, which a start refused for
        // a bad configuration must not do.
        let ticketer = crate::tickets::ticketer(hsm, session, &config.session_resumption, role)?;
        let mut listeners = Vec::new();
        for (l, mut tls, socket) in bound {
            tls.ticketer = ticketer.clone();
            listeners.push(Listener {
                socket,
                acceptor: TlsAcceptor::from(Arc::new(tls)),
                handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
                client_header_timeout: Duration::from_millis(l.client_header_timeout_ms),
            });
        }
        Ok(Proxy {
            listeners,
            upstream,
        })
    }

    /// The bound addresses, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tasks = tokio::task::JoinSet::new();
        for l in self.listeners {
            tasks.spawn(accept_loop(l, self.upstream.clone()));
        }
        shutdown.await;
        tasks.abort_all();
    }
}

async fn accept_loop(l: Listener, upstream: Arc<Upstream>) {
    let mut last_warned: Option<std::time::Instant> = None;
    loop {
        let (tcp, peer) = match l.socket.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning, and say so at most once a
                // second so that a flood of connections cannot flood the log.
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    last_warned = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Connection {
            acceptor: l.acceptor.clone(),
            upstream: upstream.clone(),
            handshake_timeout: l.handshake_timeout,
            client_header_timeout: l.client_header_timeout,
        };
        tokio::spawn(conn.serve(tcp, peer));
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    upstream: Arc<Upstream>,
    handshake_timeout: Duration,
    client_header_timeout: Duration,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let tls =
            match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
        let upstream = self.upstream;
        let service = hyper::service::service_fn(move |req| {
            let upstream = upstream.clone();
            async move { upstream.forward(req, peer).await }
        });
        // The protocol is what ALPN chose (RFC 9113 §3.2: h2 over TLS is negotiated by ALPN),
        // so no bytes are sniffed before a timeout applies.
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = hyper_util::rt::TokioIo::new(tls);
        let result = if h2 {
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(io, service)
                .await
        } else {
            // The header timeout also bounds how long an idle keep-alive HTTP/1.1 connection
            // (or a new one that sends nothing) waits for its next request.
            hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(self.client_header_timeout)
                .serve_connection(io, service)
                .await
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}
