//! Using keys through a session: sign, verify, encrypt, decrypt, wrap and random. Every call
//! checks the session and the key's attributes in [`policy`](super::policy) first; none writes
//! the store (usage is counted in memory).

use super::*;

impl Hsm {
    /// Signs (or MACs) with a key the session may use; the key needs `sign`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::PermissionDenied`], [`Error::AttributeViolation`],
    /// [`Error::MechanismInvalid`], [`Error::InvalidInput`] (digest length, size).
    pub fn sign(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        encoding: SignatureEncoding,
    ) -> Result<Vec<u8>> {
        let (obj, state) = self.usable(session, handle)?;
        sign_checked(&obj, &state, mechanism, input, encoding)
    }

    /// Verifies a signature or MAC; `Ok(false)` when it does not verify. The key needs
    /// `verify`.
    ///
    /// # Errors
    /// As [`sign`](Self::sign).
    pub fn verify(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        signature: &[u8],
        encoding: SignatureEncoding,
    ) -> Result<bool> {
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.verify, handle, "verify", "verify")?;
        if !obj.material.can_verify(mechanism, encoding) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        match input {
            SignInput::Message(m) | SignInput::Digest(m) => Self::check_len(m)?,
        }
        let ok = obj.material.verify(mechanism, input, signature, encoding)?;
        obj.usage.verify.fetch_add(1, Ordering::Relaxed);
        Ok(ok)
    }

    /// Encrypts with a key the session may use; the key needs `encrypt`. Output layout per
    /// [`EncryptMechanism`].
    ///
    /// # Errors
    /// As [`sign`](Self::sign).
    pub fn encrypt(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.encrypt, handle, "encrypt", "encrypt")?;
        if !obj.material.can_encrypt(mechanism, false) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(plaintext)?;
        let out = obj.material.encrypt(mechanism, plaintext, aad)?;
        obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Decrypts with a key the session may use; the key needs `decrypt`.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); a failed authentication or padding check is
    /// [`Error::InvalidInput`] "decryption failed".
    pub fn decrypt(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: EncryptMechanism,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.decrypt, handle, "decrypt", "decrypt")?;
        if !obj.material.can_encrypt(mechanism, true) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(ciphertext)?;
        let out = obj.material.decrypt(mechanism, ciphertext, aad)?;
        obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// `len` random bytes from the HSM's DRBG (aws-lc-rs, NIST SP 800-90A CTR-DRBG), 1 to
    /// [`MAX_RANDOM_BYTES`]. Any logged-in user.
    ///
    /// # Errors
    /// [`Error::SessionInvalid`], [`Error::InvalidInput`].
    pub fn random(&self, session: &Session, len: usize) -> Result<Vec<u8>> {
        session.check()?;
        if !(1..=MAX_RANDOM_BYTES).contains(&len) {
            return Err(Error::invalid(format!(
                "random output is 1 to {MAX_RANDOM_BYTES} bytes"
            )));
        }
        let mut v = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut v).map_err(|_| Error::Crypto {
            operation: "random",
        })?;
        Ok(v)
    }

    /// Wraps (exports) `target` under `wrapping_key`. The session must own `target`, which
    /// must be `extractable` (and, with `wrap_with_trusted`, the wrapping key `trusted`); the
    /// wrapping key needs `wrap` and may be owned or shared. Private keys are wrapped as PKCS#8.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::AttributeViolation`], [`Error::MechanismInvalid`].
    pub fn wrap_key(
        &self,
        session: &Session,
        wrapping_key: KeyHandle,
        mechanism: WrapMechanism,
        target: KeyHandle,
    ) -> Result<Vec<u8>> {
        self.audited(
            session.user(),
            AuditEvent::KeyWrap,
            Some(target.to_string()),
            |_| {
                let (wobj, wstate) = self.usable(session, wrapping_key)?;
                let (tobj, tstate) = self.owned(session, target)?;
                Self::need(wstate.info.attributes.wrap, wrapping_key, "wrap", "wrap")?;
                Self::need(
                    tstate.info.attributes.extractable,
                    target,
                    "wrap (export)",
                    "extractable",
                )?;
                if tstate.info.attributes.wrap_with_trusted {
                    Self::need(
                        wstate.info.attributes.trusted,
                        wrapping_key,
                        "wrap a wrap_with_trusted key",
                        "trusted",
                    )?;
                }
                if !wobj.material.can_wrap(mechanism, false) {
                    return Err(Self::mechanism_invalid(&wstate, mechanism.as_str()));
                }
                let bytes = tobj.material.wrappable_bytes().ok_or_else(|| {
                    Error::invalid("public keys are exported as SPKI, not wrapped")
                })?;
                let out = wobj.material.wrap(mechanism, bytes)?;
                wobj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
                Ok(out)
            },
        )
    }
}
