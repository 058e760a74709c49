//! The TLS handshake of a client connection and what it tells: rustls's [`LazyConfigAcceptor`]
//! reads the ClientHello, the listener's `ServerConfig` ([`super::config`]) picks the
//! certificate by SNI and signature schemes ([`super::resolver::SniResolver`]), and its key
//! signs the handshake: for an HSM key, `HsmSigner::sign` in [`super::signer`].
//! Counted in `keyward_tls_handshakes_total{version,result,resumed}` and
//! `keyward_tls_handshake_duration_seconds`.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rustls::server::Acceptor;
use rustls::{ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use x509_parser::prelude::FromDer as _;

use super::subject::rfc4514;
use crate::metrics::metrics;

/// Runs the TLS handshake on `io` with `config`, at most `timeout`. Returns the stream and
/// when the handshake began (after the ClientHello arrived); `None` after a failed or timed-out
/// handshake, which is counted and logged at debug level.
pub(crate) async fn accept<IO>(
    io: IO,
    config: Arc<ServerConfig>,
    timeout: Duration,
    client: SocketAddr,
    sign_slots: Option<&Arc<tokio::sync::Semaphore>>,
) -> Option<(TlsStream<IO>, Instant)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), io).await?;
        // Remote mode: a signing slot, once a ClientHello has come (a silent connection holds
        // none), waited for here, where waiting takes no thread; held to the handshake's end.
        let _slot = match sign_slots {
            Some(slots) => Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| std::io::Error::other("the signer is closed"))?,
            ),
            None => None,
        };
        let began = Instant::now();
        let stream = start.into_stream(config).await?;
        Ok::<_, std::io::Error>((stream, began))
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            metrics()
                .tls_handshakes
                .with_label_values(&["unknown", "error", "false"])
                .inc();
            tracing::debug!(%client, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics()
                .tls_handshakes
                .with_label_values(&["unknown", "timeout", "false"])
                .inc();
            tracing::debug!(%client, "TLS handshake timed out");
            None
        }
    }
}

/// What a finished handshake says about the connection.
pub(crate) struct Session {
    /// The verified client certificate's subject (RFC 4514), with client authentication.
    pub(crate) client_subject: Option<String>,
    /// Whether ALPN chose HTTP/2.
    pub(crate) h2: bool,
}

impl Session {
    /// Counts the finished handshake (version, resumed or not, duration since `began`) and
    /// reads the client subject and the ALPN protocol.
    pub(crate) fn record(conn: &ServerConnection, began: Instant) -> Session {
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => 0,
            Some(rustls::ProtocolVersion::TLSv1_3) => 1,
            _ => 2,
        };
        SUCCEEDED[version][usize::from(resumed)].inc();
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
        Session { client_subject, h2 }
    }
}

/// The `keyward_tls_handshakes_total{result="ok"}` children, resolved once (resolving takes
/// the metric family's lock): by version (`1.2`, `1.3`, `unknown`), then not resumed /
/// resumed.
static SUCCEEDED: LazyLock<[[IntCounter; 2]; 3]> = LazyLock::new(|| {
    ["1.2", "1.3", "unknown"].map(|version| {
        ["false", "true"].map(|resumed| {
            metrics()
                .tls_handshakes
                .with_label_values(&[version, "ok", resumed])
        })
    })
});
