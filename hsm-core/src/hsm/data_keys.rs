//! Envelope encryption's data keys, as AWS KMS `GenerateDataKey` and Vault transit's `datakey`
//! make them: a fresh random key made here and returned twice, in plaintext for the caller to
//! encrypt its content with, and wrapped under a key encryption key (KEK) to be stored beside
//! that content; and the unwrap of such a wrapped key when the content is read back.
//!
//! Policy (PKCS#11's `CKA_WRAP` / `CKA_UNWRAP`): making a data key needs the KEK's `wrap`,
//! opening one its `unwrap`. A `trusted` KEK (or the private half of a `trusted` public key)
//! opens no data key: it wraps `wrap_with_trusted` keys, whose wrapped bytes must not come back
//! in plaintext. What is wrapped is [`DATA_KEY_TAG`] followed by the data key, and what is
//! unwrapped must be so tagged and hold a data key's length ([`DATA_KEY_LENGTHS`]): a key object
//! wrapped under the same KEK (`C_WrapKey`, `keyward key wrap`) is not tagged, so this never
//! returns a key object's value in plaintext (domain separation). Both
//! operations are audited (`crypto.data-key`, `crypto.data-key-unwrap`, the KEK's handle as the
//! target); neither stores anything.

use super::*;

/// What precedes a data key inside its wrapping: `KWDK` and format version 1 (5 bytes).
pub const DATA_KEY_TAG: &[u8; 5] = b"KWDK\x01";

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
                    "data-key generation",
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
                let mut tagged = Zeroizing::new(Vec::with_capacity(DATA_KEY_TAG.len() + len));
                tagged.extend_from_slice(DATA_KEY_TAG);
                tagged.extend_from_slice(&plaintext);
                let wrapped = material.wrap(wrap, &tagged)?;
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
                    "data-key unwrap",
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
                match value.strip_prefix(DATA_KEY_TAG.as_slice()) {
                    Some(key) if DATA_KEY_LENGTHS.contains(&key.len()) => {
                        Ok(Zeroizing::new(key.to_vec()))
                    }
                    _ => Err(Error::invalid(
                        "unwrap failed: not a data key made by data-key generation (a wrapped key object never unwraps here)",
                    )),
                }
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
