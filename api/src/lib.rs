//! The wire types of Keyward's HSM REST API (`/v1`): every request and response body, declared
//! once, used by the server (`keyward-server`), the Rust SDK (`keyward-client`) and the CLI.
//!
//! - Bytes travel as standard padded base64 (RFC 4648 §4) text: [`Base64`], or
//!   [`SecretBase64`] for plaintext and random bytes (zeroized, redacted in `Debug`). Both are
//!   decoded where they are used, so a bad field is an error of that field (of that batch
//!   item), not of the whole body.
//! - Ciphertexts and signatures carry the key version that made them: `key_version`, and the
//!   self-describing text `kw:vN:BASE64` ([`VersionedBase64`]), after Vault transit.
//! - Passwords and bearer tokens are [`Password`] and [`SessionToken`]: not `Clone`, zeroized
//!   on drop, redacted in `Debug`.
//! - Names with a fixed set of values ([`KeyClass`], [`KeySpec`], [`Mechanism`], [`Role`],
//!   [`ErrorCode`]) parse from and print as the exact strings of the wire.
//! - Feature `openapi`: utoipa schemas (the server's OpenAPI document). Feature `hsm`:
//!   conversions from and to `keyward-hsm` types, all in one module.
//!
//! Where this crate sits among the others: `docs/architecture.md`.
//!
//! ```
//! use keyward_api::{Base64, KeySpec, SignRequest};
//!
//! let spec: KeySpec = "generic-secret-32".parse().unwrap();
//! assert_eq!(spec.to_string(), "generic-secret-32");
//! let req = SignRequest {
//!     key: 7,
//!     mechanism: "hmac-sha256".into(),
//!     message: Some(Base64::encode(b"hello")),
//!     digest: None,
//!     encoding: None,
//!     key_version: None,
//! };
//! let json = serde_json::to_string(&req).unwrap();
//! assert_eq!(json, r#"{"key":7,"mechanism":"hmac-sha256","message":"aGVsbG8="}"#);
//! ```

#![deny(missing_docs)]

mod audit;
mod base64;
mod ca;
mod crypto;
mod data_key;
mod error;
#[cfg(feature = "hsm")]
mod hsm;
mod keys;
mod names;
mod secret;
mod sys;
mod tickets;
mod users;
mod versioned;

pub use crate::base64::{Base64, InvalidBase64, SecretBase64};
pub use audit::{AuditEntry, AuditQuery, AuditReport};
pub use ca::{Ca, CreateCaRequest, CrlInfo, IssueRequest, IssuedCertificate, RevokeRequest};
pub use crypto::{
    Batch, BatchItem, BatchResults, Ciphertext, DecryptRequest, EncryptRequest, Plaintext,
    RandomBytes, RandomRequest, RewrapRequest, SignRequest, Signature, Verified, VerifyRequest,
};
pub use data_key::{DataKey, DataKeyRequest, DataKeyUnwrapRequest};
pub use error::{ErrorBody, ErrorCode};
pub use keys::{
    Attributes, DeriveRequest, DestroyQuery, GeneratePairRequest, GenerateSymmetricRequest,
    ImportPublicRequest, Key, KeyConfigRequest, KeyPage, KeyPair, KeyTemplate, ListQuery,
    PublicKey, PublicKeyQuery, SetAttributeRequest, ShareRequest, TrimRequest, UnwrapRequest,
    WrapRequest, Wrapped,
};
pub use names::{KeyClass, KeySpec, Mechanism, Role, UnknownName};
pub use secret::{Password, SessionToken};
pub use sys::{RekeyRequest, RekeyResponse, RotationStatus, SealStatus, UnsealRequest};
pub use tickets::{TicketKey, TicketKeys, TicketKeysRequest};
pub use users::{CreateUserRequest, Health, LoginRequest, LoginResponse, PasswordRequest, User};
pub use versioned::{InvalidVersioned, VersionedBase64, VERSIONED_PREFIX};

#[cfg(test)]
mod tests;
