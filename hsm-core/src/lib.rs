//! Keyward's HSM core: key objects with PKCS#11/CloudHSM attributes, signing mechanisms,
//! policy checks, and sealing of an encrypted store.
//!
//! This crate does no network I/O and knows nothing of HTTP or TLS. Storage is reached through
//! [`keyward_keystore::Backend`]; all cryptography is aws-lc-rs.
//!
//! ```
//! use keyward_hsm::{Hsm, KeyPairOptions, KeySpec, MasterKey, SignMechanism};
//! use keyward_keystore::SqliteBackend;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteBackend::create(&dir.path().join("keyward.sqlite3")).unwrap();
//! let master = MasterKey::generate().unwrap();
//! let hsm = Hsm::create(Box::new(store), &master).unwrap();
//! let (private, _public) = hsm
//!     .generate_key_pair(KeySpec::EcP256, &KeyPairOptions { label: "web".into(), extractable: false })
//!     .unwrap();
//! let der_signature = hsm.sign(private.handle, SignMechanism::EcdsaSha256, b"message").unwrap();
//! assert!(der_signature.len() <= 72);
//! ```

#![deny(missing_docs)]

mod error;
mod hsm;
mod material;
mod mechanism;
mod object;
mod seal;
mod selftest;

pub use error::{Error, Result};
pub use hsm::{Hsm, KeySigner};
pub use mechanism::SignMechanism;
pub use object::{Attributes, KeyClass, KeyHandle, KeyInfo, KeyPairOptions, KeySpec};
pub use seal::{MasterKey, MASTER_KEY_LEN};

#[cfg(test)]
mod tests;
