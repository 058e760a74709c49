//! Who may see and use which key object, in one place: visibility (own, shared, admin), use
//! (owner or shared crypto-user), management (owner only), attribute checks (`CKA_SIGN`, ...),
//! input sizes, and the checked sign every entry point (API, proxy, [`KeySigner`]) goes
//! through.

use super::*;

pub(super) fn sign_checked(
    obj: &KeyObject,
    state: &KeyState,
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
    if !obj.material.can_sign(mechanism) {
        return Err(Hsm::mechanism_invalid(state, mechanism.as_str()));
    }
    if let SignInput::Message(m) = input {
        Hsm::check_len(m)?;
    }
    let sig = obj.material.sign(mechanism, input, encoding)?;
    obj.usage.sign.fetch_add(1, Ordering::Relaxed);
    Ok(sig)
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
    /// it and that `allowed` (the attribute named `attribute`) is set.
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
        )
    }
}
