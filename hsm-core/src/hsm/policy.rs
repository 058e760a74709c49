//! Who may see and use which key object, in one place: visibility (own, shared, admin), use
//! (owner or shared crypto-user), management (owner only), attribute checks (`CKA_SIGN`, ...),
//! key versions (which version an operation may use), input sizes, and the checked sign every
//! entry point (API, proxy, [`KeySigner`]) goes through.

use super::*;

/// A key object whose versions are managed, and its state as read under the writer lock.
pub(super) type Managed = (Arc<KeyObject>, Arc<KeyState>);

/// Signs with `key`, version `key.0` of the object, after every check that may have changed
/// since the caller found it: not destroyed, `sign` set, the version still allowed for new
/// signatures (two comparisons), the mechanism fits.
pub(super) fn sign_checked(
    obj: &KeyObject,
    state: &KeyState,
    key: (u32, &Material),
    mechanism: SignMechanism,
    input: SignInput<'_>,
    encoding: SignatureEncoding,
) -> Result<Vec<u8>> {
    let handle = state.info.handle;
    if obj.destroyed.load(Ordering::Acquire) {
        return Err(Error::KeyNotFound { handle });
    }
    if !state.info.attributes.sign {
        return Err(Error::AttributeViolation {
            handle,
            operation: "sign",
            attribute: "sign",
        });
    }
    let (version, material) = key;
    state.check_make(version, "sign")?;
    if !material.can_sign(mechanism) {
        return Err(Hsm::mechanism_invalid(state, mechanism.as_str()));
    }
    if let SignInput::Message(m) = input {
        Hsm::check_len(m)?;
    }
    let sig = material.sign(mechanism, input, encoding)?;
    obj.usage.sign.fetch_add(1, Ordering::Relaxed);
    Ok(sig)
}

/// Which key version an operation may use (Vault transit's rules).
impl KeyState {
    /// The version a new signature, MAC or ciphertext is made with: the latest, or `requested`
    /// if it is not below `min_decryption_version` nor `min_encryption_version`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a version the key never had; [`Error::KeyVersionRetired`].
    pub(super) fn version_to_make(
        &self,
        requested: Option<u32>,
        operation: &'static str,
    ) -> Result<(u32, &Arc<Material>)> {
        let Some(v) = requested else {
            return Ok((self.info.latest_version, self.versions.latest_arc()));
        };
        self.check_exists(v)?;
        self.check_make(v, operation)?;
        self.held(v, operation)
    }

    /// The version that made a ciphertext or signature (`None`: the latest), if it is not
    /// below `min_decryption_version`.
    ///
    /// # Errors
    /// As [`version_to_make`](Self::version_to_make).
    pub(super) fn version_to_open(
        &self,
        version: Option<u32>,
        operation: &'static str,
    ) -> Result<(u32, &Arc<Material>)> {
        let v = version.unwrap_or(self.info.latest_version);
        self.check_exists(v)?;
        if v < self.info.min_decryption_version {
            return Err(self.retired(v, self.info.min_decryption_version, operation));
        }
        self.held(v, operation)
    }

    /// Whether `version` may still make new signatures, MACs and ciphertexts: what a
    /// [`KeySigner`] pinned to a version checks at every signature.
    pub(super) fn check_make(&self, version: u32, operation: &'static str) -> Result<()> {
        let min = self
            .info
            .min_decryption_version
            .max(self.info.min_encryption_version);
        if version < min {
            return Err(self.retired(version, min, operation));
        }
        Ok(())
    }

    /// The material of `version` whatever the minimums say, if the key still holds it (public
    /// key export).
    ///
    /// # Errors
    /// As [`version_to_make`](Self::version_to_make).
    pub(super) fn version_held(&self, version: u32, operation: &'static str) -> Result<&Material> {
        self.check_exists(version)?;
        Ok(self.held(version, operation)?.1)
    }

    fn check_exists(&self, version: u32) -> Result<()> {
        if version == 0 || version > self.info.latest_version {
            return Err(Error::invalid(format!(
                "key {} has no version {version}; its versions are 1 to {}",
                self.info.handle, self.info.latest_version
            )));
        }
        Ok(())
    }

    /// The material of `version`; a trimmed version is retired.
    fn held(&self, version: u32, operation: &'static str) -> Result<(u32, &Arc<Material>)> {
        self.versions
            .get(version)
            .map(|m| (version, m))
            .ok_or_else(|| self.retired(version, self.info.min_available_version, operation))
    }

    fn retired(&self, version: u32, min_version: u32, operation: &'static str) -> Error {
        Error::KeyVersionRetired {
            handle: self.info.handle,
            version,
            min_version,
            operation,
        }
    }
}

impl Hsm {
    pub(super) fn object(&self, handle: KeyHandle) -> Result<Arc<KeyObject>> {
        let find = || match self.objects.load().get(&handle) {
            Some(o) if !o.destroyed.load(Ordering::Acquire) => Some(o.clone()),
            _ => None,
        };
        // On a shared store, a key another node made a moment ago may not have been announced
        // yet: catch up once before answering that it does not exist (read-your-writes across
        // nodes for a client that made it elsewhere).
        find()
            .or_else(|| {
                self.catch_up_on_miss();
                find()
            })
            .ok_or(Error::KeyNotFound { handle })
    }

    /// `info` as `session` may see it: a user a key is shared with sees itself in
    /// `shared_with`, not the other users (their names and access are the owner's business).
    pub(super) fn as_seen_by(session: &Session, mut info: KeyInfo) -> KeyInfo {
        if session.role() != Role::Admin && info.owner != session.user() {
            info.shared_with.retain(|u| u == session.user());
        }
        info
    }

    /// A key the session may see: its own or shared with it; admins see all. Other users'
    /// keys, public keys included, are not visible (their labels and owners are other
    /// tenants' metadata): looking one up answers [`Error::KeyNotFound`], as for a handle that
    /// does not exist.
    pub(super) fn visible(session: &Session, info: &KeyInfo) -> bool {
        session.role() == Role::Admin || Self::may_use(session, info)
    }

    pub(super) fn may_use(session: &Session, info: &KeyInfo) -> bool {
        info.owner == session.user() || info.shared_with.iter().any(|u| u == session.user())
    }

    /// Looks up a key the session may use: crypto-users, owner or shared user. A key the
    /// session may not use answers [`Error::KeyNotFound`], exactly as a missing handle does,
    /// so handles cannot be probed for existence.
    pub(super) fn usable(
        &self,
        session: &Session,
        handle: KeyHandle,
    ) -> Result<(Arc<KeyObject>, StateGuard)> {
        session.require(Role::CryptoUser)?;
        let obj = self.object(handle)?;
        let state = obj.state.load();
        if !obj.in_scope(session) || !Self::may_use(session, &state.info) {
            return Err(Error::KeyNotFound { handle });
        }
        Ok((obj, state))
    }

    /// Looks up a key the session owns (management: export, wrap target, destroy, share,
    /// attributes).
    pub(super) fn owned(
        &self,
        session: &Session,
        handle: KeyHandle,
    ) -> Result<(Arc<KeyObject>, StateGuard)> {
        let (obj, state) = self.usable(session, handle)?;
        if state.info.owner != session.user() {
            // A shared user sees the key, so refusing it tells nothing new.
            return Err(Error::PermissionDenied {
                reason: "only the key's owner may manage it",
            });
        }
        Ok((obj, state))
    }

    /// Looks up a key whose versions the session manages (rotate, version settings, trim): a
    /// secret key or the private key of a pair that the session owns, `modifiable`, with the
    /// pair's public key object when it still exists.
    ///
    /// # Errors
    /// As [`owned`](Self::owned); [`Error::InvalidInput`] for a public key;
    /// [`Error::AttributeViolation`] when `modifiable` is false.
    pub(super) fn versions_managed(
        &self,
        session: &Session,
        handle: KeyHandle,
        operation: &'static str,
    ) -> Result<(Managed, Option<Managed>)> {
        let (obj, state) = self.owned(session, handle)?;
        if state.info.class == KeyClass::Public {
            return Err(Error::invalid(format!(
                "key {handle} is a public key: versions are managed on a secret key or on the private key of a pair{}",
                state
                    .info
                    .linked_handle
                    .map(|l| format!(" (here key {l})"))
                    .unwrap_or_default()
            )));
        }
        Self::need(
            state.info.attributes.modifiable,
            handle,
            operation,
            "modifiable",
        )?;
        let state = arc_swap::Guard::into_inner(state);
        let public = state.info.linked_handle.and_then(|l| {
            let o = self.objects.load().get(&l).cloned()?;
            if o.destroyed.load(Ordering::Acquire) {
                return None;
            }
            let s = o.state.load_full();
            Some((o, s))
        });
        if let Some((_, p)) = &public {
            let same = |a: &KeyInfo, b: &KeyInfo| {
                (
                    a.latest_version,
                    a.min_decryption_version,
                    a.min_encryption_version,
                    a.min_available_version,
                ) == (
                    b.latest_version,
                    b.min_decryption_version,
                    b.min_encryption_version,
                    b.min_available_version,
                )
            };
            if !same(&state.info, &p.info) {
                return Err(Error::Internal(
                    "the halves of a key pair have other versions",
                ));
            }
        }
        Ok(((obj, state), public))
    }

    pub(super) fn need(
        attr_on: bool,
        handle: KeyHandle,
        operation: &'static str,
        attribute: &'static str,
    ) -> Result<()> {
        if attr_on {
            Ok(())
        } else {
            Err(Error::AttributeViolation {
                handle,
                operation,
                attribute,
            })
        }
    }

    pub(super) fn mechanism_invalid(state: &KeyState, mechanism: &'static str) -> Error {
        Error::MechanismInvalid {
            handle: state.info.handle,
            mechanism,
            key_type: state.info.spec.as_str(),
        }
    }

    pub(super) fn check_len(data: &[u8]) -> Result<()> {
        if data.len() > MAX_DATA_BYTES {
            return Err(Error::invalid(format!(
                "input is larger than {MAX_DATA_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

impl KeyCipher {
    /// Checks, for one operation, that the key still exists, that the session may still use
    /// it, that `allowed` (the attribute named `attribute`) is set and that the cipher's
    /// version is still allowed for it.
    pub(super) fn check(
        &self,
        allowed: impl Fn(&Attributes) -> bool,
        operation: &'static str,
        attribute: &'static str,
    ) -> Result<()> {
        let state = self.obj.state.load();
        let handle = state.info.handle;
        self.session.check()?;
        if self.obj.destroyed.load(Ordering::Acquire) {
            return Err(Error::KeyNotFound { handle });
        }
        if !Hsm::may_use(&self.session, &state.info) || !self.obj.in_scope(&self.session) {
            return Err(Error::PermissionDenied {
                reason: "the key is no longer owned by or shared with this cipher's user",
            });
        }
        Hsm::need(
            allowed(&state.info.attributes),
            handle,
            operation,
            attribute,
        )?;
        if operation == "decrypt" {
            state
                .version_to_open(Some(self.version), operation)
                .map(|_| ())
        } else {
            state.check_make(self.version, operation)
        }
    }
}
