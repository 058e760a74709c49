//! Long-lived key handles for callers outside a request: [`KeySigner`] (the TLS proxy's
//! `rustls` signer signs through it) and [`KeyCipher`] (session-ticket encryption). Both
//! re-check the key's state on every use without a lock or a store access.

use super::*;

/// A private key object ready to sign, held by long-lived users such as the TLS proxy.
///
/// Cloning is cheap (one `Arc`). `Debug` prints the handle and label only.
#[derive(Clone)]
pub struct KeySigner {
    obj: Arc<KeyObject>,
    /// Whose rights the signer uses: checked at every signature, so logout, expiry, unshare
    /// and user deletion take effect at once.
    session: Session,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.obj.state.load();
        f.debug_struct("KeySigner")
            .field("handle", &s.info.handle)
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
        self.obj.material.spec()
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        self.obj.material.spki().unwrap_or_default()
    }

    /// Whether `mechanism` fits this key's type (attributes are checked at each sign).
    pub fn supports(&self, mechanism: SignMechanism) -> bool {
        self.obj.material.can_sign(mechanism)
    }

    /// Signatures made with this key since the HSM was opened, by any caller.
    pub fn sign_count(&self) -> u64 {
        self.obj.usage.sign.load(Ordering::Relaxed)
    }

    /// Signs `message` (the whole message; the mechanism hashes it). ECDSA signatures are DER.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] once destroyed; [`Error::AttributeViolation`] if `sign` is false;
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
/// tag, as [`EncryptMechanism::AesGcm`]. Cloning is cheap (one `Arc`); the key's value stays
/// inside the HSM (zeroized when the last holder drops it). `Debug` prints the handle and
/// label only.
#[derive(Clone)]
pub struct KeyCipher {
    pub(super) obj: Arc<KeyObject>,
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
            .obj
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
            .obj
            .material
            .decrypt(EncryptMechanism::AesGcm, sealed, aad)?;
        self.obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }
}

impl Hsm {
    /// A handle for signing with one private key without looking it up again: what the TLS
    /// proxy keeps per certificate. The session's rights are checked now; each
    /// [`KeySigner::sign`] then checks the key's `sign` attribute and that it was not destroyed,
    /// and makes one aws-lc-rs call: no store, no lock.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); [`Error::MechanismInvalid`] for a key that is not private.
    pub fn signer(&self, session: &Session, handle: KeyHandle) -> Result<KeySigner> {
        let (obj, state) = self.usable(session, handle)?;
        if state.info.class != KeyClass::Private {
            return Err(Self::mechanism_invalid(&state, "sign"));
        }
        Ok(KeySigner {
            obj,
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
            || !obj.material.can_encrypt(EncryptMechanism::AesGcm, true)
        {
            return Err(Self::mechanism_invalid(
                &state,
                EncryptMechanism::AesGcm.as_str(),
            ));
        }
        Ok(KeyCipher {
            obj,
            session: session.clone(),
        })
    }
}
