//! The proxy's error type: what [`crate::Proxy::build`] and [`crate::ProxyHandle::reload`]
//! return. Errors while serving become HTTP responses in [`crate::http_layer::respond`].

use std::path::PathBuf;

/// Errors building or starting the proxy. Runtime errors on one connection are logged and
/// answered (502/504), never returned here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate chain file could not be read or holds no certificate.
    #[error("certificate file {path}: {reason}")]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The HSM refused or does not have the key a certificate names.
    #[error("HSM key {label:?} for certificate {path}: {error}")]
    Key {
        /// The key label from the configuration.
        label: String,
        /// The certificate file.
        path: PathBuf,
        /// The HSM's error.
        error: keyward_hsm::Error,
    },
    /// The remote HSM nodes refused, or could not be asked for, the key a certificate names.
    #[error("remote HSM key {label:?} for certificate {path}: {reason}")]
    RemoteKey {
        /// The key label from the configuration.
        label: String,
        /// The certificate file.
        path: PathBuf,
        /// The nodes' answer or the transport error.
        reason: String,
    },
    /// The certificate's public key is not the HSM key's public key.
    #[error("certificate {path} does not belong to HSM key {label:?}: the public keys differ")]
    KeyMismatch {
        /// The key label.
        label: String,
        /// The certificate file.
        path: PathBuf,
    },
    /// rustls refused the TLS settings.
    #[error("TLS settings for listener {address}: {error}")]
    Tls {
        /// The listener.
        address: std::net::SocketAddr,
        /// rustls's error.
        error: rustls::Error,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {address}: {error}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
    /// An upstream pool cannot be set up (e.g. its CA file is unreadable).
    #[error("upstream pool {pool:?}: {reason}")]
    Upstream {
        /// The pool's name.
        pool: String,
        /// What is wrong.
        reason: String,
    },
    /// A file the configuration names (client CA bundle, OCSP response) is unusable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Session-ticket keys could not be loaded or made in the HSM.
    #[error("session tickets: {reason}")]
    Tickets {
        /// What is wrong.
        reason: String,
    },
    /// A reload changed what needs a restart (e.g. the set of listener addresses).
    #[error("reload: {reason}")]
    Reload {
        /// What changed.
        reason: String,
    },
}
