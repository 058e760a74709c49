//! Keyward's HSM core: key objects with PKCS#11/CloudHSM attributes, signing mechanisms,
//! policy checks, and sealing of an encrypted store.
//!
//! This crate does no network I/O and knows nothing of HTTP or TLS. Storage is reached through
//! [`keyward_keystore::Backend`]; all cryptography is aws-lc-rs.
//!
//! Every operation takes a [`Session`]: a logged-in user (admin or crypto-user), or an
//! in-process service identity such as [`PROXY_USER`]. Policy (roles, ownership, sharing,
//! attributes) is checked here, so every entry point obeys it.
//!
//! One process writes a store ([`Hsm::open`]); other nodes sharing it open it with
//! [`Hsm::open_read_only`], never write, and learn the writer's new key objects with
//! [`Hsm::sync_token_objects`]. Long-lived users hold [`KeySigner`] (sign) and [`KeyCipher`]
//! (AES-GCM) handles, which use a key without a lookup, a store access or a shared lock.
//!
//! Secret keys and key pairs have versions, after Vault's transit engine: [`Hsm::rotate_key`]
//! adds one under the same handle and label, the `*_at` operations take a [`KeyRef`] (a handle
//! and a version) and return [`Versioned`] output, and [`Hsm::rewrap`] moves a ciphertext to
//! the latest version without the plaintext leaving the HSM.
//!
//! ```
//! use keyward_hsm::*;
//! use keyward_keystore::SqliteBackend;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteBackend::create(&dir.path().join("keyward.sqlite3")).unwrap();
//! let hsm = Hsm::create(Box::new(store), &MasterKey::generate().unwrap()).unwrap();
//! let me = hsm.service_session(PROXY_USER).unwrap();
//! let private = KeyTemplate::labelled("web").with(AttributeName::Sign, true).with(AttributeName::Extractable, false);
//! let (key, _public) = hsm
//!     .generate_key_pair(&me, KeySpec::EcP256, &private, &KeyTemplate::labelled("web"))
//!     .unwrap();
//! let der = hsm
//!     .sign(&me, key.handle, SignMechanism::EcdsaSha256, SignInput::Message(b"message"), SignatureEncoding::Der)
//!     .unwrap();
//! assert!(der.len() <= 72);
//! ```
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

#![deny(missing_docs)]

mod audit;
pub mod backup;
mod error;
mod hsm;
mod kdf;
mod key_type;
mod material;
mod mechanism;
mod object;
mod reference;
mod seal;
mod selftest;
mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
mod users;

pub use audit::{AuditEntry, AuditReport};
pub use error::{Error, ErrorCode, Result};
pub use hsm::{check_ca_name, CaRecord, CaSettings, CertRecord, Revocation, CA_NAME_MAX};
pub use hsm::{store_sequence, RotationStatus};
pub use hsm::{
    DataKey, EcdhKdf, EcdhParams, Hsm, KeyCipher, KeyFilter, KeyPage, KeyRef, KeySigner, KeyUsage,
    OpenOptions, ReleasedTicketKey, TokenObjectChanges, UnwrapTarget, VersionSettings, Versioned,
    DATA_KEY_LENGTHS, DATA_KEY_TAG, DEFAULT_ADMIN_LOCKOUT, MAX_DATA_BYTES, MAX_PAGE_SIZE,
    MAX_RANDOM_BYTES, MAX_SESSION_TTL, RESERVED_LABEL_PREFIXES, TICKET_KEY_LABEL_PREFIX,
    TICKET_KEY_WRAP_MIN_BITS,
};
pub use kdf::kdf_slots;
pub use key_type::private_key_spec;
pub use mechanism::{
    DataKeyMechanism, EncryptMechanism, SignInput, SignMechanism, SignatureEncoding, WrapMechanism,
};
pub use object::{
    AttributeName, AttributeValue, Attributes, KeyClass, KeyHandle, KeyInfo, KeySpec, KeyTemplate,
    GENERIC_SECRET_MAX_BYTES,
};
pub use reference::{spki_sha256, KeyReference, REFERENCE_PEM_TAG};
pub use seal::{
    passphrase, read_seal_config, shamir, MasterKey, PassphraseParams, SealConfig, SealType,
    ShamirParams, UnsealShare, UnsealStep, Unsealer, MASTER_KEY_LEN,
};
pub use users::{Password, Role, Session, SessionToken, UserInfo, MAX_FAILED_LOGINS, PROXY_USER};

#[cfg(test)]
mod backup_tests;
#[cfg(test)]
mod ca_tests;
#[cfg(test)]
mod crypto_tests;
#[cfg(test)]
mod data_keys_tests;
#[cfg(test)]
mod ecdh_null_tests;
#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod seal_tests;
#[cfg(test)]
mod shared_store_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod ticket_keys_tests;
#[cfg(test)]
mod versions_tests;
