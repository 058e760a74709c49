//! TLS.

mod config;
pub(crate) mod handshake;
pub(crate) mod resolver;
pub(crate) mod signer;
mod subject;
pub(crate) mod tickets;

pub(crate) use config::server_config;
