//! Keyward client: a typed async Rust SDK for the Keyward HSM REST API (`/v1`).
//!
//! - HTTPS only: rustls with the aws-lc-rs provider, trust anchors from the CA certificate
//!   you give ([`ClientConfig::ca_cert_pem`]), pooled HTTP/2 connections (ALPN `h2`, with
//!   `http/1.1` fallback).
//! - Several nodes: health-aware round-robin; a node that fails is skipped for a cool-down
//!   (5 s by default). A request that fails at the transport level moves to the next node.
//! - Retries with jittered exponential backoff (50 ms base, 3 passes over the nodes) for
//!   calls that are safe to repeat (reads, deletes, sign, verify, encrypt, decrypt, hmac,
//!   random, wrap, batches). Calls that create something (key generation, import, unwrap,
//!   derive, user creation, share) are retried only with an idempotency key
//!   ([`CallOptions::idempotency_key`]); without one they move to another node only when
//!   the request was never sent. API errors (4xx) are never retried.
//! - Sessions: the client keeps one token per node. It logs in on one node with
//!   [`Client::login`], keeps the credentials (zeroized, never printed), and logs in on each
//!   other node the first time a call goes there, and again (repeating the call once) when a
//!   node answers `401 session_invalid`. (Nodes of one PostgreSQL cluster store share
//!   sessions, so one token would do; nodes with stores of their own do not.)
//! - Bytes are `Vec<u8>`/`&[u8]` here, standard base64 on the wire.
//! - Key versions: [`Client::encrypt_versioned`], [`Client::sign_versioned`] and
//!   [`Client::rewrap`] return a [`Versioned`] (bytes and key version; `to_text()` gives
//!   `kw:vN:BASE64`); [`DecryptItem::versioned`] and [`VerifyItem::versioned`] send the
//!   version back. Items without a version are version 1, as before keys had versions.
//! - Key handles: nodes of one cluster store (PostgreSQL, `--store`) share keys, users and
//!   handles: a key generated on one node is used on any other at once (a node that does not
//!   know a handle yet catches up with the store before it answers `404`), which is what
//!   the example below relies on. Nodes with stores of their own (SQLite) share nothing: a
//!   handle from one is unknown on another. Idempotency keys hold across the nodes of one
//!   cluster store (a retried creation gets the first answer from any node), and per node
//!   otherwise.
//! - Envelope encryption of streams of any size in constant memory:
//!   [`Client::encrypt_stream`] / [`Client::decrypt_stream`] (AES-256-GCM chunks here, the
//!   data key made and wrapped by the HSM; the format is in the `envelope` module's
//!   documentation and the README's "Envelope encryption").
//! - Private keys are imported wrapped (`rsa-aes`) under a one-use transport key made on the
//!   node ([`Client::import_private_pkcs8`]), never in plaintext.
//!
//! Two nodes of one cluster store (this example runs as a test against real nodes:
//! `tests/cluster_e2e/sdk.rs`, `the_sdk_two_node_example_works_on_a_cluster`):
//!
//! ```no_run
//! # async fn run() -> Result<(), keyward_client::Error> {
//! use keyward_client::{CallOptions, Client, ClientConfig, KeyTemplate, SignItem, VerifyItem};
//!
//! let config = ClientConfig::new(["https://hsm-a:8443", "https://hsm-b:8443"])
//!     .ca_cert_pem_file("/etc/keyward/ca.pem")?;
//! let client = Client::new(config)?;
//! client.login("alice", "alice-password").await?;
//! let pair = client
//!     .generate_pair(
//!         "ec-p256",
//!         &KeyTemplate::new("signing").with("sign", true),
//!         &KeyTemplate::new("signing").with("verify", true),
//!         CallOptions::default(),
//!     )
//!     .await?;
//! let sig = client.sign(&SignItem::message(pair.private.handle, "ecdsa-sha256", b"hello".to_vec())).await?;
//! let ok = client
//!     .verify(&VerifyItem::message(pair.public.handle, "ecdsa-sha256", b"hello".to_vec(), sig))
//!     .await?;
//! assert!(ok);
//! # Ok(()) }
//! ```
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

#![deny(missing_docs)]

mod ca;
mod client;
pub mod codesign;
mod config;
mod data_key;
mod envelope;
mod error;
mod import;
mod sys;
mod transport;
mod types;

pub use client::Client;
pub use config::ClientConfig;
pub use data_key::DataKey;
pub use envelope::{
    EnvelopeError, EnvelopeInfo, ENVELOPE_CHUNK_BYTES, ENVELOPE_CHUNK_RANGE, ENVELOPE_MAGIC,
    ENVELOPE_VERSION,
};
pub use error::{BoxError, Error, Result};
/// The error of one batch item: the API's error body.
pub use keyward_api::ErrorBody as ItemError;
pub use keyward_api::{
    Attributes, AuditEntry, AuditReport, Ca, CreateCaRequest, CrlInfo, ErrorCode, IssueRequest,
    IssuedCertificate, Key, KeyClass, KeyConfigRequest, KeyPage, KeyPair, KeySpec, KeyTemplate,
    Mechanism, Password, RekeyRequest, RekeyResponse, RevokeRequest, Role, RotationStatus,
    SealStatus, SessionToken, TicketKey, TicketKeys, UnsealRequest, User, VERSIONED_PREFIX,
};
pub use transport::NodeStatus;
pub use types::*;
