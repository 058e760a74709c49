//! Key versions, after Vault's transit engine: a secret key or a key pair keeps its handle and
//! label while [`Hsm::rotate_key`] adds versions to it. New signatures, MACs and ciphertexts
//! use the latest version; decrypt, verify and [`Hsm::rewrap`] take the version that made their
//! input (the API carries it as `kw:vN:BASE64` or `key_version`) and refuse versions below
//! `min_decryption_version` ([`Hsm::configure_key_versions`]); [`Hsm::trim_key_versions`]
//! destroys the material of versions no operation may use any more.
//!
//! Which keys have versions: secret keys (AES, generic secret) and key pairs. A pair rotates
//! through its private key, and its public key object gets the new version's public key with
//! the same number, so a signature of version N verifies with either half at version N. Keys
//! that wrap, unwrap or derive do not rotate: wrapped and derived keys carry no version, so
//! those operations always use the latest one. An imported public key has one version.
//!
//! Every version of a key lives in its one store record (see `store::record`), so a rotation,
//! like every change, is one commit with its audit entry. Version management is the owner's
//! (as attributes are) and needs `modifiable`.

use super::*;

/// The key material of each version a key object holds, oldest first: version `first + i` is
/// `materials[i]`. Part of the key's [`KeyState`], replaced whole by a rotation or trim.
pub(super) struct KeyVersions {
    first: u32,
    materials: Vec<Arc<Material>>,
}

impl KeyVersions {
    /// A key with one version, version 1.
    pub(super) fn one(material: Material) -> Self {
        KeyVersions {
            first: 1,
            materials: vec![Arc::new(material)],
        }
    }

    /// The versions `first`, `first + 1`, ... of a key read from its record.
    pub(super) fn from_record(first: u32, materials: Vec<Material>) -> Result<Self> {
        if first == 0 || materials.is_empty() {
            return Err(Error::Internal("a key without versions"));
        }
        Ok(KeyVersions {
            first,
            materials: materials.into_iter().map(Arc::new).collect(),
        })
    }

    /// The latest version's material.
    pub(super) fn latest(&self) -> &Material {
        self.latest_arc()
    }

    pub(super) fn latest_arc(&self) -> &Arc<Material> {
        // Never empty: every constructor holds at least one version.
        &self.materials[self.materials.len() - 1]
    }

    /// The material of `version`, if the key holds it.
    pub(super) fn get(&self, version: u32) -> Option<&Arc<Material>> {
        let i = usize::try_from(version.checked_sub(self.first)?).ok()?;
        self.materials.get(i)
    }

    /// Every version held, oldest first, with its number.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Material)> {
        (self.first..).zip(self.materials.iter().map(|m| &**m))
    }

    /// These versions and `material` as the next one.
    fn rotated(&self, material: Material) -> KeyVersions {
        let mut materials = self.materials.clone();
        materials.push(Arc::new(material));
        KeyVersions {
            first: self.first,
            materials,
        }
    }

    /// These versions without those below `min` (at least the latest stays).
    fn trimmed(&self, min: u32) -> KeyVersions {
        let drop = usize::try_from(min.saturating_sub(self.first))
            .unwrap_or(usize::MAX)
            .min(self.materials.len() - 1);
        KeyVersions {
            first: self.first + u32::try_from(drop).unwrap_or(0),
            materials: self.materials[drop..].to_vec(),
        }
    }

    /// Whether `newer` holds the same material as `self` for every version both hold: what a
    /// changed record of an existing key may not change (a rotation adds, a trim removes).
    pub(super) fn same_material(&self, newer: &KeyVersions) -> Result<bool> {
        for (v, m) in self.iter() {
            if let Some(n) = newer.get(v) {
                if stored_value(m)? != stored_value(n)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// A key and the version an operation uses: for a new signature, MAC or ciphertext the version
/// to make it with, for decrypt, verify and rewrap the version that made the input. `None`:
/// the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    /// The key.
    pub handle: KeyHandle,
    /// The version; `None` for the latest.
    pub version: Option<u32>,
}

impl KeyRef {
    /// The latest version of `handle`.
    pub fn latest(handle: KeyHandle) -> Self {
        KeyRef {
            handle,
            version: None,
        }
    }

    /// Version `version` of `handle`.
    pub fn version(handle: KeyHandle, version: u32) -> Self {
        KeyRef {
            handle,
            version: Some(version),
        }
    }
}

impl From<KeyHandle> for KeyRef {
    fn from(handle: KeyHandle) -> Self {
        KeyRef::latest(handle)
    }
}

/// A ciphertext, signature or MAC with the key version that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The key version that made `bytes`.
    pub key_version: u32,
    /// The ciphertext, signature or MAC, in the mechanism's layout.
    pub bytes: Vec<u8>,
}

/// New version settings for [`Hsm::configure_key_versions`]; `None` keeps a setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersionSettings {
    /// Refuse decrypt, verify and rewrap of input made with older versions: from the oldest
    /// version held (`min_available_version`) to `latest_version`. Lowering it again is
    /// allowed while the versions are held.
    pub min_decryption_version: Option<u32>,
    /// Refuse explicit older versions for new signatures, MACs and ciphertexts: 0 (any version
    /// from `min_decryption_version` on) or `min_decryption_version` to `latest_version`.
    pub min_encryption_version: Option<u32>,
}

impl Hsm {
    /// Adds a new version to a secret key or a key pair (Vault transit's `rotate`): new key
    /// material generated inside the HSM under the same handle and label; new signatures, MACs
    /// and ciphertexts use it; input of older versions still decrypts and verifies down to
    /// `min_decryption_version`. For a pair, `handle` is the private key; its public key object
    /// gets the new version's public key. `check_value` becomes the new version's. The owner
    /// only; the key must be `modifiable` and must not `wrap`, `unwrap` or `derive` (their
    /// outputs carry no version). Audited as `key.rotate`; one commit for both halves.
    ///
    /// A [`KeySigner`] made earlier keeps signing with the version it was made for (the TLS
    /// proxy's certificate names that version's public key); [`Hsm::signer`] made later uses
    /// the new one.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::PermissionDenied`] (not the owner);
    /// [`Error::AttributeViolation`] (`modifiable` false); [`Error::InvalidInput`] for a public
    /// key or a key that wraps, unwraps or derives; [`Error::Crypto`], [`Error::Store`].
    pub fn rotate_key(&self, session: &Session, handle: KeyHandle) -> Result<KeyInfo> {
        let target = Some(handle.to_string());
        self.audited(session.user(), AuditEvent::KeyRotate, target, |audit| {
            // Checked before the key generation (seconds for RSA-4096, so outside the writer
            // lock) and again under the lock.
            let spec = {
                let ((_, state), public) = self.versions_managed(session, handle, "rotate")?;
                Self::check_rotatable(&state, public.as_ref().map(|(_, s)| &**s))?;
                state.info.spec
            };
            let material = Material::generate(spec)?;
            let mut manifest = self.begin_write()?;
            let ((obj, state), public) = self.versions_managed(session, handle, "rotate")?;
            Self::check_rotatable(&state, public.as_ref().map(|(_, s)| &**s))?;
            let latest = state
                .info
                .latest_version
                .checked_add(1)
                .ok_or_else(|| Error::invalid("the key has no version number left"))?;
            let mut changes = Vec::new();
            if let Some((pobj, pstate)) = &public {
                let half = material
                    .public_half()
                    .ok_or(Error::Internal("pair without public half"))?;
                let mut info = pstate.info.clone();
                info.latest_version = latest;
                info.attributes.check_value = half.check_value()?;
                let versions = Arc::new(pstate.versions.rotated(half));
                changes.push((pobj.clone(), pstate.clone(), info, versions));
            }
            let mut info = state.info.clone();
            info.latest_version = latest;
            info.attributes.check_value = material.check_value()?;
            let versions = Arc::new(state.versions.rotated(material));
            changes.insert(0, (obj.clone(), state.clone(), info.clone(), versions));
            self.store_states(&mut manifest, changes, audit)?;
            Ok(info)
        })
    }

    /// Changes a key's `min_decryption_version` and `min_encryption_version` (Vault transit's
    /// key `config`), for both halves of a pair (`handle`: the secret or private key). The
    /// owner only; the key must be `modifiable`. Audited as `key.config-versions`.
    ///
    /// # Errors
    /// As [`rotate_key`](Self::rotate_key); [`Error::InvalidInput`] for a setting out of range
    /// (see [`VersionSettings`]).
    pub fn configure_key_versions(
        &self,
        session: &Session,
        handle: KeyHandle,
        settings: VersionSettings,
    ) -> Result<KeyInfo> {
        let target = Some(handle.to_string());
        self.audited(session.user(), AuditEvent::KeyConfigVersions, target, |audit| {
            let mut manifest = self.begin_write()?;
            let ((obj, state), public) =
                self.versions_managed(session, handle, "configure versions")?;
            let old = &state.info;
            let min_dec = settings
                .min_decryption_version
                .unwrap_or(old.min_decryption_version);
            let min_enc = settings
                .min_encryption_version
                .unwrap_or(old.min_encryption_version);
            if !(old.min_available_version..=old.latest_version).contains(&min_dec) {
                return Err(Error::invalid(format!(
                    "min_decryption_version of key {handle} is {} to {} (the versions it holds)",
                    old.min_available_version, old.latest_version
                )));
            }
            if min_enc != 0 && !(min_dec..=old.latest_version).contains(&min_enc) {
                return Err(Error::invalid(format!(
                    "min_encryption_version of key {handle} is 0 (any version from min_decryption_version on) or {min_dec} to {}",
                    old.latest_version
                )));
            }
            let set = |info: &KeyInfo| {
                let mut info = info.clone();
                info.min_decryption_version = min_dec;
                info.min_encryption_version = min_enc;
                info
            };
            let info = set(old);
            let mut changes = vec![(obj.clone(), state.clone(), info.clone(), state.versions.clone())];
            if let Some((pobj, pstate)) = &public {
                let pinfo = set(&pstate.info);
                changes.push((pobj.clone(), pstate.clone(), pinfo, pstate.versions.clone()));
            }
            self.store_states(&mut manifest, changes, audit)?;
            Ok(info)
        })
    }

    /// Destroys the material of every version below `min_available_version` (Vault transit's
    /// `trim`), in both halves of a pair. Those versions can never be used again, so
    /// `min_available_version` must not be above `min_decryption_version` nor, when set,
    /// `min_encryption_version`: raise those first. The owner only; the key must be
    /// `modifiable`. Audited as `key.trim-versions`.
    ///
    /// # Errors
    /// As [`configure_key_versions`](Self::configure_key_versions).
    pub fn trim_key_versions(
        &self,
        session: &Session,
        handle: KeyHandle,
        min_available_version: u32,
    ) -> Result<KeyInfo> {
        let target = Some(format!("{handle} below {min_available_version}"));
        self.audited(session.user(), AuditEvent::KeyTrimVersions, target, |audit| {
            let mut manifest = self.begin_write()?;
            let ((obj, state), public) = self.versions_managed(session, handle, "trim versions")?;
            let old = &state.info;
            let n = min_available_version;
            if n < old.min_available_version {
                return Err(Error::invalid(format!(
                    "the versions of key {handle} below {} are destroyed already",
                    old.min_available_version
                )));
            }
            let limit = match old.min_encryption_version {
                0 => old.min_decryption_version,
                e => e.min(old.min_decryption_version),
            };
            if n > limit {
                return Err(Error::invalid(format!(
                    "min_available_version of key {handle} is at most {limit} (min_decryption_version and min_encryption_version): raise those first"
                )));
            }
            let trim = |s: &KeyState| {
                let mut info = s.info.clone();
                info.min_available_version = n;
                (info, Arc::new(s.versions.trimmed(n)))
            };
            let (info, versions) = trim(&state);
            let mut changes = vec![(obj.clone(), state.clone(), info.clone(), versions)];
            if let Some((pobj, pstate)) = &public {
                let (pinfo, pversions) = trim(pstate);
                changes.push((pobj.clone(), pstate.clone(), pinfo, pversions));
            }
            self.store_states(&mut manifest, changes, audit)?;
            Ok(info)
        })
    }

    /// Re-encrypts a ciphertext under the latest version of its key without the plaintext
    /// leaving the HSM (Vault transit's `rewrap`): decrypts with `key.version` (the version
    /// that made it; `None`: the latest), refused below `min_decryption_version`, then
    /// encrypts with the latest version, the same mechanism and the same `aad`. The key needs
    /// `decrypt` and `encrypt`. Not audited, as encrypt and decrypt are not.
    ///
    /// # Errors
    /// As [`decrypt_at`](Self::decrypt_at) and [`encrypt_at`](Self::encrypt_at).
    pub fn rewrap(
        &self,
        session: &Session,
        key: KeyRef,
        mechanism: EncryptMechanism,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Versioned> {
        let handle = key.handle;
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.decrypt, handle, "rewrap", "decrypt")?;
        Self::need(state.info.attributes.encrypt, handle, "rewrap", "encrypt")?;
        let (_, old) = state.version_to_open(key.version, "rewrap")?;
        let (to, new) = state.version_to_make(None, "rewrap")?;
        if !old.can_encrypt(mechanism, true) || !new.can_encrypt(mechanism, false) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(ciphertext)?;
        let plaintext = old.decrypt(mechanism, ciphertext, aad)?;
        obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
        let bytes = new.encrypt(mechanism, &plaintext, aad)?;
        obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
        Ok(Versioned {
            key_version: to,
            bytes,
        })
    }

    /// Refuses rotation of keys whose outputs carry no version: wrapping, unwrapping and
    /// deriving keys (either half of a pair).
    fn check_rotatable(state: &KeyState, public: Option<&KeyState>) -> Result<()> {
        let uses_keys = |a: &Attributes| a.wrap || a.unwrap || a.derive;
        if uses_keys(&state.info.attributes)
            || public.is_some_and(|s| uses_keys(&s.info.attributes))
        {
            return Err(Error::invalid(
                "keys that wrap, unwrap or derive do not rotate: wrapped and derived keys carry no key version",
            ));
        }
        Ok(())
    }
}
