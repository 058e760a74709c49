//! TLS.

mod config;
pub(crate) mod resolver;
pub(crate) mod signer;
pub(crate) mod tickets;

pub(crate) use config::server_config;
