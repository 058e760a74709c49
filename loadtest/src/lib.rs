//! `keyward-loadtest`: a tokio + rustls load generator that measures TLS handshakes and
//! keep-alive HTTP requests per second, latency percentiles (HdrHistogram), and its own
//! CPU cost, so a benchmark can show that the client was not the bottleneck.
//!
//! The binary is a thin wrapper: [`cli::Cli`] parses the command line, [`run::handshake`]
//! and [`run::request`] drive the load, and [`report::Report`] is what they return.
//! See `loadtest/README.md` for usage and method.
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

pub mod cli;
pub mod compare;
pub mod report;
pub mod run;
pub mod tls;
