//! Envelope encryption's data keys, as AWS KMS `GenerateDataKey` and Vault transit's `datakey`
//! make them: a fresh random key made here and returned twice, in plaintext for the caller to
//! encrypt its content with, and wrapped under a key encryption key (KEK) to be stored beside
//! that content; and the unwrap of such a wrapped key when the content is read back.
//!
//! Policy (PKCS#11's `CKA_WRAP` / `CKA_UNWRAP`): making a data key needs the KEK's `wrap`,
//! opening one its `unwrap`. A `trusted` KEK (or the private half of a `trusted` public key)
//! opens no data key: it wraps `wrap_with_trusted` keys, whose wrapped bytes must not come back
//! in plaintext. What is unwrapped must have a data key's length ([`DATA_KEY_LENGTHS`]). Both
//! operations are audited (`crypto.data-key`, `crypto.data-key-unwrap`, the KEK's handle as the
//! target); neither stores anything.

use super::*;

/// The lengths a data key may have, in bytes (AES-128, AES-192, AES-256).
pub const DATA_KEY_LENGTHS: [usize; 3] = [16, 24, 32];

/// A data key: its value (zeroized on drop, never printed), the value wrapped under the KEK,
/// and the KEK version that wrapped it (which unwrapping needs once the KEK is rotated).
pub struct DataKey {
    /// The data key's value.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The value wrapped under the KEK with the asked mechanism.
    pub wrapped: Vec<u8>,
    /// The KEK version that wrapped it.
    pub key_version: u32,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("wrapped_bytes", &self.wrapped.len())
            .field("key_version", &self.key_version)
            .finish()
    }
}

impl Hsm {
    /// Makes a data key of `len` bytes (one of [`DATA_KEY_LENGTHS`]) from the HSM's DRBG and
    /// wraps it under version `kek.version` (`None`: the latest) of the KEK, which the session
    /// may use and which has `wrap`. For `rsa-oaep-sha256` the KEK is an RSA public key (or a
    /// private key, whose public half wraps).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::AttributeViolation`] (no `wrap`),
    /// [`Error::MechanismInvalid`] (a KEK of another type), [`Error::KeyVersionRetired`],
    /// [`Error::InvalidInput`] for another length.
    pub fn generate_data_key(
        &self,
        session: &Session,
        kek: KeyRef,
        mechanism: DataKeyMechanism,
        len: usize,
    ) -> Result<DataKey> {
        let handle = kek.handle;
        self.audited(
            session.user(),
            AuditEvent::DataKeyGenerate,
            Some(handle.to_string()),
            |_| {
                let (obj, state) = self.usable(session, handle)?;
                Self::need(
                    state.info.attributes.wrap,
                    handle,
                    "generate a data key",
                    "wrap",
                )?;
                let (key_version, material) = state.version_to_make(kek.version, "wrap")?;
                let wrap = mechanism.wrap_mechanism();
                if !material.can_wrap(wrap, false) {
                    return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
                }
                check_data_key_len(len)?;
                let mut plaintext = Zeroizing::new(vec![0u8; len]);
                aws_lc_rs::rand::fill(&mut plaintext).map_err(|_| Error::Crypto {
                    operation: "random",
                })?;
                let wrapped = material.wrap(wrap, &plaintext)?;
                obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
                Ok(DataKey {
                    plaintext,
                    wrapped,
                    key_version,
                })
            },
        )
    }

    /// Unwraps a data key made by [`generate_data_key`](Self::generate_data_key) with version
    /// `kek.version` (`None`: the latest) of the KEK, which the session may use and which has
    /// `unwrap` (for `rsa-oaep-sha256`: the private key). Versions below the KEK's
    /// `min_decryption_version` are refused.
    ///
    /// # Errors
    /// As [`generate_data_key`](Self::generate_data_key) (`unwrap` instead of `wrap`);
    /// [`Error::PermissionDenied`] for a `trusted` KEK; [`Error::InvalidInput`] "unwrap
    /// failed" when the bytes do not authenticate or do not hold a data key.
    pub fn unwrap_data_key(
        &self,
        session: &Session,
        kek: KeyRef,
        mechanism: DataKeyMechanism,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let handle = kek.handle;
        self.audited(
            session.user(),
            AuditEvent::DataKeyUnwrap,
            Some(handle.to_string()),
            |_| {
                let (obj, state) = self.usable(session, handle)?;
                Self::need(
                    state.info.attributes.unwrap,
                    handle,
                    "unwrap a data key",
                    "unwrap",
                )?;
                if self.trusted_kek(&state.info) {
                    return Err(Error::PermissionDenied {
                        reason: "a trusted key wraps wrap_with_trusted keys: it unwraps no data key in plaintext",
                    });
                }
                let (_, material) = state.version_to_open(kek.version, "unwrap")?;
                let wrap = mechanism.wrap_mechanism();
                if !material.can_wrap(wrap, true) {
                    return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
                }
                Self::check_len(wrapped)?;
                let value = material.unwrap(wrap, wrapped)?;
                obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
                if !DATA_KEY_LENGTHS.contains(&value.len()) {
                    return Err(Error::invalid("unwrap failed"));
                }
                Ok(value)
            },
        )
    }

    /// Whether `info`'s key, or the public half of its pair, is `trusted`.
    fn trusted_kek(&self, info: &KeyInfo) -> bool {
        info.attributes.trusted
            || info.linked_handle.is_some_and(|l| {
                self.objects
                    .load()
                    .get(&l)
                    .is_some_and(|o| o.state.load().info.attributes.trusted)
            })
    }
}

fn check_data_key_len(len: usize) -> Result<()> {
    if DATA_KEY_LENGTHS.contains(&len) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "a data key is 16, 24 or 32 bytes (got {len})"
        )))
    }
}
