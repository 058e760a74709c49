//! Using keys through a session: sign, verify, encrypt, decrypt, wrap and random. Every call
//! checks the session and the key's attributes in [`policy`](super::policy) first; none writes
//! the store (usage is counted in memory).

use super::*;

impl Hsm {
    /// Signs (or MACs) with the latest version of a key the session may use; the key needs
    /// `sign`. [`sign_at`](Self::sign_at) also says which version signed.
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
        Ok(self
            .sign_at(session, handle.into(), mechanism, input, encoding)?
            .bytes)
    }

    /// Signs (or MACs) with version `key.version` of a key (`None`: the latest); returns the
    /// signature with the version that made it. An explicit version must not be below
    /// `min_decryption_version` nor `min_encryption_version`.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); [`Error::KeyVersionRetired`]; [`Error::InvalidInput`] for a
    /// version the key never had.
    pub fn sign_at(
        &self,
        session: &Session,
        key: KeyRef,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        encoding: SignatureEncoding,
    ) -> Result<Versioned> {
        let (obj, state) = self.usable(session, key.handle)?;
        if state.info.issuing_ca.is_some() {
            // Raw data signed by a CA's key could be a certificate, CRL or OCSP response the
            // CA never made (outside its policy, register and audit).
            return Err(Error::PermissionDenied {
                reason: "an issuing CA's key signs only through the CA (/v1/ca), not raw data",
            });
        }
        let (version, material) = state.version_to_make(key.version, "sign")?;
        let bytes = sign_checked(
            &obj,
            &state,
            (version, material),
            mechanism,
            input,
            encoding,
        )?;
        Ok(Versioned {
            key_version: version,
            bytes,
        })
    }

    /// Verifies a signature or MAC made by the latest version of the key; `Ok(false)` when it
    /// does not verify. The key needs `verify`. See [`verify_at`](Self::verify_at) for older
    /// versions.
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
        self.verify_at(
            session,
            handle.into(),
            mechanism,
            input,
            signature,
            encoding,
        )
    }

    /// Verifies a signature or MAC made by version `key.version` of the key (`None`: the
    /// latest); versions below `min_decryption_version` are refused. For a pair, either half
    /// verifies (the public key object holds every version's public key).
    ///
    /// # Errors
    /// As [`sign_at`](Self::sign_at).
    pub fn verify_at(
        &self,
        session: &Session,
        key: KeyRef,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        signature: &[u8],
        encoding: SignatureEncoding,
    ) -> Result<bool> {
        let handle = key.handle;
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.verify, handle, "verify", "verify")?;
        let (_, material) = state.version_to_open(key.version, "verify")?;
        if !material.can_verify(mechanism, encoding) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        match input {
            SignInput::Message(m) | SignInput::Digest(m) => Self::check_len(m)?,
        }
        let ok = material.verify(mechanism, input, signature, encoding)?;
        obj.usage.verify.fetch_add(1, Ordering::Relaxed);
        Ok(ok)
    }

    /// Encrypts with the latest version of a key the session may use; the key needs
    /// `encrypt`. Output layout per [`EncryptMechanism`]. [`encrypt_at`](Self::encrypt_at)
    /// also says which version encrypted, which decrypting needs once the key is rotated.
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
        Ok(self
            .encrypt_at(session, handle.into(), mechanism, plaintext, aad)?
            .bytes)
    }

    /// Encrypts with version `key.version` of a key (`None`: the latest); returns the
    /// ciphertext with the version that made it. An explicit version must not be below
    /// `min_decryption_version` nor `min_encryption_version`.
    ///
    /// # Errors
    /// As [`sign_at`](Self::sign_at).
    pub fn encrypt_at(
        &self,
        session: &Session,
        key: KeyRef,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Versioned> {
        self.encrypt_at_with_iv(session, key, mechanism, plaintext, aad, None)
    }

    /// [`encrypt_at`](Self::encrypt_at) with the caller's IV for AES-GCM (12 bytes) and
    /// AES-CBC (16 bytes), as PKCS#11's `C_EncryptInit` takes one (`None`: a random IV, what
    /// every other caller should use). A GCM IV must never repeat under one key (NIST SP
    /// 800-38D §8): that is the caller's to ensure.
    ///
    /// # Errors
    /// As [`sign_at`](Self::sign_at); [`Error::InvalidInput`] for an IV of the wrong length
    /// or with another mechanism.
    pub fn encrypt_at_with_iv(
        &self,
        session: &Session,
        key: KeyRef,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
        iv: Option<&[u8]>,
    ) -> Result<Versioned> {
        let handle = key.handle;
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.encrypt, handle, "encrypt", "encrypt")?;
        let (version, material) = state.version_to_make(key.version, "encrypt")?;
        if !material.can_encrypt(mechanism, false) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(plaintext)?;
        let bytes = material.encrypt_with_iv(mechanism, plaintext, aad, iv)?;
        obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
        Ok(Versioned {
            key_version: version,
            bytes,
        })
    }

    /// Decrypts with the latest version of a key the session may use; the key needs
    /// `decrypt`. See [`decrypt_at`](Self::decrypt_at) for older versions.
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
        self.decrypt_at(session, handle.into(), mechanism, ciphertext, aad)
    }

    /// Decrypts a ciphertext made by version `key.version` of the key (`None`: the latest);
    /// versions below `min_decryption_version` are refused.
    ///
    /// # Errors
    /// As [`decrypt`](Self::decrypt); [`Error::KeyVersionRetired`]; [`Error::InvalidInput`]
    /// for a version the key never had.
    pub fn decrypt_at(
        &self,
        session: &Session,
        key: KeyRef,
        mechanism: EncryptMechanism,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let handle = key.handle;
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.decrypt, handle, "decrypt", "decrypt")?;
        let (_, material) = state.version_to_open(key.version, "decrypt")?;
        if !material.can_encrypt(mechanism, true) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(ciphertext)?;
        let out = material.decrypt(mechanism, ciphertext, aad)?;
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
    /// Both keys' latest versions are used: a wrapped key carries no version, and is unwrapped
    /// into a new key with one version.
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
                let (_, tstate) = self.owned(session, target)?;
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
                if !wstate.latest().can_wrap(mechanism, false) {
                    return Err(Self::mechanism_invalid(&wstate, mechanism.as_str()));
                }
                let bytes = tstate.latest().wrappable_bytes().ok_or_else(|| {
                    Error::invalid("public keys are exported as SPKI, not wrapped")
                })?;
                let out = wstate.latest().wrap(mechanism, bytes)?;
                wobj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
                Ok(out)
            },
        )
    }
}
