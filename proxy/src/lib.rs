//! Keyward's edge proxy: terminates TLS with keys held in the HSM and forwards HTTP.
//!
//! The proxy never holds private key bytes. Each configured certificate names an HSM key by
//! label; [`HsmSigningKey`] implements rustls's `SigningKey` over that key, so the TLS 1.3
//! CertificateVerify and TLS 1.2 ServerKeyExchange signatures are made by the HSM.
//! Certificates are chosen by SNI (exact, then wildcard, then default) and by the client's
//! signature schemes (ECDSA/Ed25519 before RSA). Requests are served over HTTP/1.1 or HTTP/2
//! (ALPN) and forwarded over pooled HTTP/1.1 keep-alive connections with `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `X-Forwarded-Host` set and hop-by-hop headers removed. An
//! unreachable upstream gives `502`, one slower than `upstream.response_timeout_ms` gives `504`.
//!
//! ```no_run
//! # async fn run(config: keyward_config::Config, hsm: std::sync::Arc<keyward_hsm::Hsm>) -> Result<(), Box<dyn std::error::Error>> {
//! let session = hsm.service_session(keyward_hsm::PROXY_USER)?;
//! let proxy = keyward_proxy::Proxy::build(&config, &hsm, &session, keyward_proxy::NodeRole::Writer)?;
//! proxy.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod error;
mod forward;
pub mod metrics;
mod pool;
mod resolver;
mod route;
mod server;
mod signer;
mod tickets;

pub use error::Error;
pub use server::Proxy;
pub use signer::{signing_key, HsmSigningKey};
pub use tickets::NodeRole;
