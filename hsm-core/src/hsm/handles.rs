//! Long-lived key handles for callers outside a request: [`KeySigner`] (the TLS proxy's
//! `rustls` signer signs through it) and [`KeyCipher`] (session-ticket encryption). Both
//! re-check the key's state on every use without a lock or a store access.
//!
//! Each holds one version of its key, chosen when it is made (the latest, or for a signer the
//! one asked for): a TLS certificate names one public key, so the proxy's signer keeps signing
//! with the version whose public key the certificate holds after the key is rotated, until a
//! reload with a new certificate makes a signer for the new version. A held version that
//! falls below the key's `min_decryption_version` or `min_encryption_version` stops working
//! at once ([`Error::KeyVersionRetired`]).

use super::*;

/// A private key object ready to sign, held by long-lived users such as the TLS proxy.
///
/// Cloning is cheap (two `Arc`s). `Debug` prints the handle, version and label only.
#[derive(Clone)]
pub struct KeySigner {
    obj: Arc<KeyObject>,
    /// The version this signer signs with, and its material (held, so signing needs no
    /// lookup; zeroized when the last holder of a trimmed version drops it).
    version: u32,
    material: Arc<Material>,
    /// Whose rights the signer uses: checked at every signature, so logout, expiry, unshare
    /// and user deletion take effect at once.
    session: Session,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.obj.state.load();
        f.debug_struct("KeySigner")
            .field("handle", &s.info.handle)
            .field("version", &self.version)
            .field("label", &s.info.attributes.label)
            .finish()
    }
}

impl KeySigner {
    /// The key's description now.
    pub fn info(&self) -> KeyInfo {
        self.obj.state.load().info.clone()
    }

    /// The key's type.
    pub fn spec(&self) -> KeySpec {
        self.material.spec()
    }

    /// The key version this signer signs with.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The public key of this signer's version as SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        self.material.spki().unwrap_or_default()
    }

    /// Whether `mechanism` fits this key's type (attributes are checked at each sign).
    pub fn supports(&self, mechanism: SignMechanism) -> bool {
        self.material.can_sign(mechanism)
    }

    /// Signatures made with this key since the HSM was opened, by any caller.
    pub fn sign_count(&self) -> u64 {
        self.obj.usage.sign.load(Ordering::Relaxed)
    }

    /// Signs `message` (the whole message; the mechanism hashes it) with this signer's
    /// version. ECDSA signatures are DER.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] once destroyed; [`Error::AttributeViolation`] if `sign` is false;
    /// [`Error::KeyVersionRetired`] once the version is below the key's minimum;
    /// [`Error::MechanismInvalid`]; [`Error::Crypto`].
    pub fn sign(&self, mechanism: SignMechanism, message: &[u8]) -> Result<Vec<u8>> {
        let state = self.obj.state.load();
        self.session.check()?;
        if !Hsm::may_use(&self.session, &state.info) || !self.obj.in_scope(&self.session) {
            return Err(Error::PermissionDenied {
                reason: "the key is no longer owned by or shared with this signer's user",
            });
        }
        sign_checked(
            &self.obj,
            &state,
            (self.version, &self.material),
            mechanism,
            SignInput::Message(message),
            SignatureEncoding::Der,
        )
    }
}

/// A secret AES key object ready for AES-GCM (NIST SP 800-38D), held by long-lived users such
/// as the TLS proxy's session-ticket encrypter.
///
/// Output of [`encrypt`](Self::encrypt): 12-byte IV chosen by the HSM ‖ ciphertext ‖ 16-byte
/// tag, as [`EncryptMechanism::AesGcm`]. It uses the version that was the latest when it was
/// made. Cloning is cheap (two `Arc`s); the key's value stays inside the HSM (zeroized when
/// the last holder drops it). `Debug` prints the handle and label only.
#[derive(Clone)]
pub struct KeyCipher {
    pub(super) obj: Arc<KeyObject>,
    /// The version this cipher uses, and its material.
    pub(super) version: u32,
    material: Arc<Material>,
    /// Whose rights the cipher uses: checked at every call, as for [`KeySigner`].
    pub(super) session: Session,
}

impl std::fmt::Debug for KeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.obj.state.load();
        f.debug_struct("KeyCipher")
            .field("handle", &s.info.handle)
            .field("label", &s.info.attributes.label)
            .finish()
    }
}

impl KeyCipher {
    /// The key's description now.
    pub fn info(&self) -> KeyInfo {
        self.obj.state.load().info.clone()
    }

    /// The key's handle.
    pub fn handle(&self) -> KeyHandle {
        self.obj.state.load().info.handle
    }

    /// Encrypts `plaintext` (at most [`MAX_DATA_BYTES`]) with AES-GCM and a fresh random
    /// 96-bit IV, authenticating `aad` too. The key needs `encrypt`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] once destroyed; [`Error::AttributeViolation`] if `encrypt` is
    /// false; [`Error::PermissionDenied`], [`Error::SessionInvalid`]; [`Error::InvalidInput`]
    /// for too much input; [`Error::Crypto`].
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.check(|a| a.encrypt, "encrypt", "encrypt")?;
        Hsm::check_len(plaintext)?;
        let out = self
            .material
            .encrypt(EncryptMechanism::AesGcm, plaintext, aad)?;
        self.obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Decrypts what [`encrypt`](Self::encrypt) made with this key and the same `aad`. The key
    /// needs `decrypt`.
    ///
    /// # Errors
    /// As [`encrypt`](Self::encrypt) (with `decrypt`); input that was changed, made under
    /// another key or with another `aad`, or is too short, is [`Error::InvalidInput`]
    /// ("decryption failed"), with nothing to tell the cases apart.
    pub fn decrypt(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.check(|a| a.decrypt, "decrypt", "decrypt")?;
        Hsm::check_len(sealed)?;
        let out = self
            .material
            .decrypt(EncryptMechanism::AesGcm, sealed, aad)?;
        self.obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }
}

impl Hsm {
    /// A handle for signing with the latest version of one private key without looking it up
    /// again. The session's rights are checked now; each [`KeySigner::sign`] then checks the
    /// key's `sign` attribute, that it was not destroyed and that its version is still
    /// allowed, and makes one aws-lc-rs call: no store, no lock. The signer keeps this
    /// version after a rotation.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); [`Error::MechanismInvalid`] for a key that is not private.
    pub fn signer(&self, session: &Session, handle: KeyHandle) -> Result<KeySigner> {
        self.signer_at(session, handle.into())
    }

    /// A signer for version `key.version` of a private key (`None`: the latest), as
    /// [`signer`](Self::signer): what the TLS proxy keeps per certificate, for the version
    /// whose public key the certificate holds.
    ///
    /// # Errors
    /// As [`signer`](Self::signer); [`Error::KeyVersionRetired`]; [`Error::InvalidInput`] for
    /// a version the key never had.
    pub fn signer_at(&self, session: &Session, key: KeyRef) -> Result<KeySigner> {
        let (obj, state) = self.usable(session, key.handle)?;
        if state.info.class != KeyClass::Private {
            return Err(Self::mechanism_invalid(&state, "sign"));
        }
        let (version, material) = state.version_to_make(key.version, "sign")?;
        let material = material.clone();
        drop(state);
        Ok(KeySigner {
            obj,
            version,
            material,
            session: session.clone(),
        })
    }

    /// A handle for AES-GCM encryption and decryption with one secret AES key object without
    /// looking it up again: what the TLS proxy keeps per session-ticket key. The session's
    /// rights are checked now; each [`KeyCipher::encrypt`] / [`KeyCipher::decrypt`] then
    /// checks the key's `encrypt` / `decrypt` attribute, that it was not destroyed and that the
    /// session may still use it, and makes one aws-lc-rs call: no store, no lock. The key's
    /// value never leaves the HSM.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::PermissionDenied`], [`Error::SessionInvalid`];
    /// [`Error::MechanismInvalid`] for a key that is not a secret AES key.
    pub fn cipher(&self, session: &Session, handle: KeyHandle) -> Result<KeyCipher> {
        let (obj, state) = self.usable(session, handle)?;
        if state.info.class != KeyClass::Secret
            || !state.latest().can_encrypt(EncryptMechanism::AesGcm, true)
        {
            return Err(Self::mechanism_invalid(
                &state,
                EncryptMechanism::AesGcm.as_str(),
            ));
        }
        let version = state.info.latest_version;
        let material = state.versions.latest_arc().clone();
        drop(state);
        Ok(KeyCipher {
            obj,
            version,
            material,
            session: session.clone(),
        })
    }
}
