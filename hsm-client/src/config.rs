//! Client configuration.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// How messages name trust anchors given as bytes.
const DEFAULT_CA_SOURCE: &str = "the configured CA certificate";

/// How to reach the HSM nodes. Build with [`ClientConfig::new`] and the `with`-style setters.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) nodes: Vec<String>,
    pub(crate) ca_cert_pem: Vec<u8>,
    /// Where the trust anchors came from, for messages: `the CA file PATH`.
    pub(crate) ca_source: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) cool_down: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) max_attempts: usize,
    /// A client certificate (PEM chain) and its private key (PKCS#8 PEM) for mutual TLS.
    pub(crate) client_identity: Option<ClientIdentity>,
}

/// A client certificate and key; `Debug` shows neither's bytes.
#[derive(Clone)]
pub(crate) struct ClientIdentity {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(<certificate and key>)")
    }
}

impl ClientConfig {
    /// Nodes as `https://host:port` base URLs (the API lives under `/v1` below each).
    pub fn new<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            nodes: nodes.into_iter().map(Into::into).collect(),
            ca_cert_pem: Vec::new(),
            ca_source: DEFAULT_CA_SOURCE.to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            cool_down: Duration::from_secs(5),
            backoff_base: Duration::from_millis(50),
            max_attempts: 3,
            client_identity: None,
        }
    }

    /// The trust anchors: one or more CA certificates as PEM bytes.
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert_pem = pem.into();
        DEFAULT_CA_SOURCE.clone_into(&mut self.ca_source);
        self
    }

    /// The trust anchors, read from a PEM file.
    pub fn ca_cert_pem_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        let mut config = self.ca_cert_pem(pem);
        config.ca_source = format!("the CA file {}", path.display());
        Ok(config)
    }

    /// TCP connect plus TLS handshake timeout (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Timeout of one request to one node, body included (default 30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// How long a node that failed is skipped (default 5 s).
    pub fn cool_down(mut self, d: Duration) -> Self {
        self.cool_down = d;
        self
    }

    /// First retry delay of the exponential backoff (default 50 ms; jittered).
    pub fn backoff_base(mut self, d: Duration) -> Self {
        self.backoff_base = d;
        self
    }

    /// Passes over the node set for retryable calls (default 3, at least 1).
    pub fn max_attempts(mut self, n: usize) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// A client certificate for the nodes' mutual TLS (a node started with a client CA): the
    /// certificate chain (PEM, leaf first) and its private key (PKCS#8, PKCS#1 or SEC 1 PEM),
    /// read from files. A node logs the connection in as the user named by the certificate's
    /// common name; calls then need no [`Client::login`](crate::Client::login).
    pub fn client_identity_pem_files(
        mut self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::Config(format!("reading {}: {e}", p.display())))
        };
        self.client_identity = Some(ClientIdentity {
            cert_pem: read(cert.as_ref())?,
            key_pem: zeroize::Zeroizing::new(read(key.as_ref())?),
        });
        Ok(self)
    }
}
