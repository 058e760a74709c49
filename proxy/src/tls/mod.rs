//! The TLS layer: everything between the accepted TCP stream and the first HTTP byte.
//!
//! - [`handshake`]: runs rustls's acceptor on a connection (called from
//!   [`crate::conn`]'s `serve`), counts the handshake, reads the client subject and ALPN;
//! - [`config`]: builds a listener's `ServerConfig` from the configuration: certificate
//!   chains, their keys (looked up in the HSM), versions, suites, groups, client
//!   authentication, OCSP staples;
//! - [`resolver`]: picks the certificate of each handshake by SNI and signature schemes;
//! - [`signer`]: the certificate's key as rustls's `SigningKey`: the HSM signs the
//!   handshake there ([`signer::HsmSigningKey`]);
//! - [`tickets`]: session tickets sealed with HSM-held keys, shared across nodes;
//! - [`subject`]: the client certificate's subject as an RFC 4514 string.

mod config;
pub(crate) mod handshake;
pub(crate) mod resolver;
#[cfg(test)]
mod rotation_tests;
pub(crate) mod signer;
mod subject;
pub(crate) mod tickets;

pub(crate) use config::server_config;
