//! Creating and destroying key objects: generate (pairs and secrets), import a public key,
//! unwrap, derive (ECDH + HKDF), destroy; handles, labels and the common `add_objects` path.

use super::*;

impl Hsm {
    pub(super) fn new_handle(&self, taken: &ObjectMap) -> Result<KeyHandle> {
        // Handles are random so that nodes sharing a store do not collide.
        loop {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Crypto {
                operation: "random",
            })?;
            // 53 bits, so handles survive JSON numbers in any client; never 0.
            let h = KeyHandle(u64::from_be_bytes(b) & ((1 << 53) - 1));
            if h.0 != 0 && !taken.contains_key(&h) {
                return Ok(h);
            }
        }
    }

    /// Checks a label for a key `session` creates or relabels: labels with a reserved prefix
    /// ([`RESERVED_LABEL_PREFIXES`]) are for service users only, and the session's user must not
    /// own another key of `class` with this label (labels are unique per owner and class, as
    /// CloudHSM keys are found by owner and label; two users may each own a key `data`).
    pub(super) fn check_new_label(
        &self,
        session: &Session,
        label: &str,
        class: KeyClass,
    ) -> Result<()> {
        self.check_label(session, label, class, false)
    }

    /// [`check_new_label`](Self::check_new_label); `made_by_hsm`: the HSM itself names this key
    /// (a ticket key it makes for a remote proxy fleet), so a reserved prefix is allowed.
    pub(super) fn check_label(
        &self,
        session: &Session,
        label: &str,
        class: KeyClass,
        made_by_hsm: bool,
    ) -> Result<()> {
        // Case and leading spaces do not make another name (`KEYWARD-x`, ` keyward-x`).
        let folded = label.trim_start().to_ascii_lowercase();
        if !made_by_hsm
            && RESERVED_LABEL_PREFIXES
                .iter()
                .any(|p| folded.starts_with(p))
            && !self.is_service_user(session.user())
        {
            return Err(Error::PermissionDenied {
                reason: "labels starting with keyward- or tls-ticket-key- are reserved for Keyward's own service keys",
            });
        }
        if self.objects.load().values().any(|o| {
            !o.destroyed.load(Ordering::Acquire) && {
                let s = o.state.load();
                s.info.class == class
                    && s.info.owner == session.user()
                    && s.info.attributes.label == label
            }
        }) {
            return Err(Error::LabelExists {
                label: label.to_owned(),
                class: class.as_str(),
            });
        }
        Ok(())
    }

    pub(super) fn is_service_user(&self, name: &str) -> bool {
        lock(&self.users)
            .get(name)
            .is_some_and(|(u, _)| u.password_hash.is_none())
    }

    /// Adds new objects: stores the token ones (with the manifest) and publishes all of them.
    pub(super) fn add_objects(
        &self,
        session: &Session,
        new: Vec<(KeyInfo, Material)>,
        audit: &Audit<'_>,
    ) -> Result<Vec<KeyInfo>> {
        // Session objects would not be written, but their creation could not be audited.
        self.check_writable("create a key")?;
        let mut manifest = self.begin_write()?;
        // Re-checked under the writer lock: the session may have ended, its user been deleted,
        // or another call may have taken a label while this key was being generated.
        session.check()?;
        if !lock(&self.users).contains_key(session.user()) {
            return Err(Error::SessionInvalid);
        }
        // Uniqueness only: every caller checked the reserved prefixes before generating.
        for (info, _) in &new {
            self.check_label(session, &info.attributes.label, info.class, true)?;
        }
        let mut map: ObjectMap = (**self.objects.load()).clone();
        let mut infos = Vec::new();
        let mut handles: Vec<KeyHandle> = Vec::new();
        while handles.len() < new.len() {
            let h = self.new_handle(&map)?;
            if !handles.contains(&h) {
                handles.push(h);
            }
        }
        let mut writes = Vec::new();
        let mut changes: Vec<(String, Option<u64>)> = Vec::new();
        let mut objects = Vec::new();
        for (i, (mut info, material)) in new.into_iter().enumerate() {
            info.handle = handles[i];
            // Link pairs created together: the second of two objects links the first.
            if let Some(link) = info.linked_handle {
                info.linked_handle = Some(handles[link.0 as usize]);
            }
            info.attributes.check_value = material.check_value()?;
            let owner_session = if info.attributes.token {
                None
            } else {
                Some(session.clone())
            };
            let versions = KeyVersions::one(material);
            if info.attributes.token {
                let record = self.key_record(&info, &versions, 1)?;
                changes.push((record.id.clone(), Some(1)));
                writes.push(Write::Insert(record));
            }
            infos.push(info.clone());
            objects.push(Arc::new(KeyObject::new(info, 1, versions, owner_session)));
        }
        // The entry names the first new object (the private key of a pair).
        if let Some(first) = infos.first() {
            audit.set_target(first.handle.to_string());
        }
        if !writes.is_empty() {
            let changes: Vec<(RecordKind, &str, Option<u64>)> = changes
                .iter()
                .map(|(id, v)| (RecordKind::Key, id.as_str(), *v))
                .collect();
            self.commit(&mut manifest, writes, &changes, Some(audit))?;
        }
        for o in objects {
            let h = o.state.load().info.handle;
            map.insert(h, o);
        }
        self.objects.store(Arc::new(map));
        Ok(infos)
    }

    pub(super) fn new_info(
        &self,
        session: &Session,
        class: KeyClass,
        spec: KeySpec,
        attributes: Attributes,
        linked: Option<KeyHandle>,
    ) -> KeyInfo {
        KeyInfo {
            handle: KeyHandle(0),
            linked_handle: linked,
            class,
            spec,
            owner: session.user().to_owned(),
            shared_with: Vec::new(),
            attributes,
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 1,
            issuing_ca: None,
        }
    }

    /// Generates a key pair inside the HSM (crypto-users only): a private and a public key
    /// object with linked handles. Returns `(private, public)`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::InvalidInput`] (bad template, label taken,
    /// symmetric spec), [`Error::Crypto`], [`Error::Store`].
    pub fn generate_key_pair(
        &self,
        session: &Session,
        spec: KeySpec,
        private: &KeyTemplate,
        public: &KeyTemplate,
    ) -> Result<(KeyInfo, KeyInfo)> {
        self.audited(session.user(), AuditEvent::KeyGenerate, None, |audit| {
            session.require(Role::CryptoUser)?;
            if spec.is_secret() {
                return Err(Error::invalid(format!(
                    "{spec} is a symmetric key type; generate a secret key"
                )));
            }
            let pa = private.build(KeyClass::Private)?;
            let pu = public.build(KeyClass::Public)?;
            pa.check_separation(Some(&pu))?;
            self.check_new_label(session, &pa.label, KeyClass::Private)?;
            self.check_new_label(session, &pu.label, KeyClass::Public)?;
            let material = Material::generate(spec)?;
            let public_material = material
                .public_half()
                .ok_or(Error::Internal("pair without public half"))?;
            let pi = self.new_info(session, KeyClass::Private, spec, pa, Some(KeyHandle(1)));
            let ui = self.new_info(session, KeyClass::Public, spec, pu, Some(KeyHandle(0)));
            let infos =
                self.add_objects(session, vec![(pi, material), (ui, public_material)], audit)?;
            Ok((infos[0].clone(), infos[1].clone()))
        })
    }

    /// Generates a secret key (AES or generic secret) inside the HSM (crypto-users only).
    ///
    /// # Errors
    /// As [`generate_key_pair`](Self::generate_key_pair).
    pub fn generate_secret_key(
        &self,
        session: &Session,
        spec: KeySpec,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        self.generate_secret(session, spec, template, false)
    }

    /// [`generate_secret_key`](Self::generate_secret_key); `made_by_hsm` as in
    /// [`check_label`](Self::check_label).
    pub(super) fn generate_secret(
        &self,
        session: &Session,
        spec: KeySpec,
        template: &KeyTemplate,
        made_by_hsm: bool,
    ) -> Result<KeyInfo> {
        self.audited(session.user(), AuditEvent::KeyGenerate, None, |audit| {
            session.require(Role::CryptoUser)?;
            if !spec.is_secret() {
                return Err(Error::invalid(format!(
                    "{spec} is an asymmetric key type; generate a key pair"
                )));
            }
            spec.check()?;
            let a = template.build(KeyClass::Secret)?;
            a.check_separation(None)?;
            self.check_label(session, &a.label, KeyClass::Secret, made_by_hsm)?;
            let material = Material::generate(spec)?;
            let info = self.new_info(session, KeyClass::Secret, spec, a, None);
            Ok(self
                .add_objects(session, vec![(info, material)], audit)?
                .remove(0))
        })
    }

    /// Imports a public key from SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), DER or PEM
    /// (`-----BEGIN PUBLIC KEY-----`, RFC 7468 §13) (crypto-users only). Secret and private
    /// keys enter only by [`unwrap_key`](Self::unwrap_key).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bytes that are not a supported SPKI; as above.
    pub fn import_public_key(
        &self,
        session: &Session,
        spki_der: &[u8],
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        self.audited(session.user(), AuditEvent::KeyImport, None, |audit| {
            session.require(Role::CryptoUser)?;
            let der = if spki_der.starts_with(b"-----BEGIN") {
                let block = pem::parse(spki_der).map_err(|_| Error::invalid("not a PEM block"))?;
                if block.tag() != "PUBLIC KEY" {
                    return Err(Error::invalid(
                        "expected a PEM \"PUBLIC KEY\" block (SubjectPublicKeyInfo)",
                    ));
                }
                block.into_contents()
            } else {
                spki_der.to_vec()
            };
            let material = Material::from_spki(&der)?;
            let mut a = template.build(KeyClass::Public)?;
            a.local = false;
            self.check_new_label(session, &a.label, KeyClass::Public)?;
            let info = self.new_info(session, KeyClass::Public, material.spec(), a, None);
            Ok(self
                .add_objects(session, vec![(info, material)], audit)?
                .remove(0))
        })
    }

    /// Unwraps (imports) a key wrapped under `unwrapping_key` (owned or shared, with `unwrap`)
    /// as a new key object owned by the session. The new key is not `local`; its other
    /// attributes come from `template`.
    ///
    /// # Errors
    /// As [`wrap_key`](Self::wrap_key); [`Error::InvalidInput`] "unwrap failed" when the bytes
    /// do not authenticate or do not hold a key of the asked type.
    pub fn unwrap_key(
        &self,
        session: &Session,
        unwrapping_key: KeyHandle,
        mechanism: WrapMechanism,
        wrapped: &[u8],
        target: UnwrapTarget,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        self.audited(session.user(), AuditEvent::KeyUnwrap, None, |audit| {
            // Wrapped keys carry no key version: the latest one unwraps.
            let (uobj, ustate) = self.usable(session, unwrapping_key)?;
            Self::need(
                ustate.info.attributes.unwrap,
                unwrapping_key,
                "unwrap",
                "unwrap",
            )?;
            if !ustate.latest().can_wrap(mechanism, true) {
                return Err(Self::mechanism_invalid(&ustate, mechanism.as_str()));
            }
            Self::check_len(wrapped)?;
            if let UnwrapTarget::Secret(spec) = target {
                spec.check()?;
                if !spec.is_secret() {
                    return Err(Error::invalid(
                        "UnwrapTarget::Secret takes a symmetric key type",
                    ));
                }
            }
            let value = ustate.latest().unwrap(mechanism, wrapped)?;
            uobj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
            // One message for every mismatch: the error says nothing about the unwrapped bytes,
            // except the name of a key type the HSM does not take (never key bytes).
            let unfit = || {
                Error::invalid("unwrap failed: the unwrapped bytes are not a key of the asked type")
            };
            let (class, material) = match target {
                UnwrapTarget::Secret(spec) => (
                    KeyClass::Secret,
                    Material::secret(spec, value).map_err(|_| unfit())?,
                ),
                UnwrapTarget::Private => (
                    KeyClass::Private,
                    Material::from_pkcs8(None, value).map_err(|e| match e {
                        Error::UnsupportedKeyType { .. } => e,
                        _ => unfit(),
                    })?,
                ),
            };
            let mut a = template.build(class)?;
            a.check_separation(None)?;
            a.local = false;
            a.always_sensitive = false;
            a.never_extractable = false;
            // A key that comes through a trusted (or trusted-only) unwrapping key keeps the
            // restriction: it may again be wrapped only by trusted keys. This is what keeps a
            // wrap_with_trusted key from losing the attribute in a wrap/unwrap round trip.
            if ustate.info.attributes.trusted || ustate.info.attributes.wrap_with_trusted {
                a.wrap_with_trusted = true;
            }
            self.check_new_label(session, &a.label, class)?;
            let info = self.new_info(session, class, material.spec(), a, None);
            Ok(self
                .add_objects(session, vec![(info, material)], audit)?
                .remove(0))
        })
    }

    /// Derives a secret key by ECDH (SEC 1 §3.3.1) between `base_key` (an EC P-256/384/521
    /// private key with `derive`) and `params.peer_public`, then HKDF-SHA256 (RFC 5869) with
    /// `params.salt` and `params.info`, into a new key of `spec` (AES or generic secret) owned
    /// by the session.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); [`Error::InvalidInput`] for a peer key not on the curve.
    pub fn derive_key(
        &self,
        session: &Session,
        base_key: KeyHandle,
        params: &EcdhParams<'_>,
        spec: KeySpec,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        self.derive_key_with(
            session,
            base_key,
            params,
            EcdhKdf::HkdfSha256,
            spec,
            template,
        )
    }

    /// [`derive_key`](Self::derive_key) with the KDF chosen: [`EcdhKdf::Null`] makes the key
    /// of the shared secret itself (PKCS#11's `CKM_ECDH1_DERIVE` with `CKD_NULL`).
    ///
    /// # Errors
    /// As [`derive_key`](Self::derive_key); [`Error::InvalidInput`] for a salt or info with
    /// [`EcdhKdf::Null`], or a key longer than the shared secret.
    pub fn derive_key_with(
        &self,
        session: &Session,
        base_key: KeyHandle,
        params: &EcdhParams<'_>,
        kdf: EcdhKdf,
        spec: KeySpec,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        if kdf == EcdhKdf::Null && !(params.salt.is_empty() && params.info.is_empty()) {
            return Err(Error::invalid(
                "a derivation without KDF takes no salt or info",
            ));
        }
        self.audited(session.user(), AuditEvent::KeyDerive, None, |audit| {
            let (_, bstate) = self.usable(session, base_key)?;
            Self::need(bstate.info.attributes.derive, base_key, "derive", "derive")?;
            if bstate.info.spec.key_type() != "ec" || bstate.info.class != KeyClass::Private {
                return Err(Self::mechanism_invalid(&bstate, "ecdh"));
            }
            spec.check()?;
            let len = spec
                .secret_len()
                .ok_or_else(|| Error::invalid("derive makes AES or generic-secret keys"))?;
            Self::check_len(params.peer_public)?;
            Self::check_len(params.info)?;
            Self::check_len(params.salt)?;
            // Derived keys carry no key version: the latest one derives.
            let value = bstate.latest().derive_ecdh(
                params.peer_public,
                kdf,
                params.salt,
                params.info,
                len,
            )?;
            let material = Material::secret(spec, value)?;
            let mut a = template.build(KeyClass::Secret)?;
            a.check_separation(None)?;
            a.local = false;
            // The derived secret is no more exportable than its base key.
            let base = &bstate.info.attributes;
            a.extractable = a.extractable && base.extractable;
            a.never_extractable = base.never_extractable && !a.extractable;
            a.always_sensitive = base.always_sensitive && a.sensitive;
            a.wrap_with_trusted = a.wrap_with_trusted || base.wrap_with_trusted;
            self.check_new_label(session, &a.label, KeyClass::Secret)?;
            let new = self.new_info(session, KeyClass::Secret, spec, a, None);
            Ok(self
                .add_objects(session, vec![(new, material)], audit)?
                .remove(0))
        })
    }

    /// Destroys a key the session owns (it must be `destroyable`, and not an issuing CA's key).
    /// Signers held elsewhere stop working at once.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (also for a CA's key), [`Error::AttributeViolation`].
    pub fn destroy_key(&self, session: &Session, handle: KeyHandle) -> Result<()> {
        self.audited(
            session.user(),
            AuditEvent::KeyDestroy,
            Some(handle.to_string()),
            |audit| {
                let (obj, state) = self.owned(session, handle)?;
                Self::need(
                    state.info.attributes.destroyable,
                    handle,
                    "destroy",
                    "destroyable",
                )?;
                super::ca::refuse_ca_key(&state.info)?;
                self.remove_object(&obj, &state, audit)
            },
        )
    }

    /// Destroys any crypto-user's token key (admins only): the way to remove a key whose owner
    /// is gone or that should not exist, without shell access to the store. Unlike
    /// [`destroy_key`](Self::destroy_key) it ignores `destroyable`, so it is a separate call
    /// and audit event (`key.destroy-by-admin`, naming the key's owner and label). Keys of
    /// service users (the node's own API TLS key, the proxy's certificate and ticket keys) are
    /// refused: destroying them would take the node down; they are managed on the node. Session
    /// keys belong to one session and are not reachable here.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] for a non-admin, a service user's key or an issuing CA's key;
    /// [`Error::KeyNotFound`].
    pub fn destroy_key_as_admin(&self, admin: &Session, handle: KeyHandle) -> Result<()> {
        let target = Some(handle.to_string());
        self.audited(admin.user(), AuditEvent::KeyDestroyByAdmin, target, |audit| {
            admin.require(Role::Admin)?;
            let obj = self.object(handle)?;
            if obj.session.is_some() {
                return Err(Error::KeyNotFound { handle });
            }
            let state = obj.state.load();
            audit.set_target(format!(
                "{handle} owner={} label={:?}",
                state.info.owner,
                printable(&state.info.attributes.label)
            ));
            if self.is_service_user(&state.info.owner) {
                return Err(Error::PermissionDenied {
                    reason: "keys of Keyward's service users (the node's API and proxy keys) are managed on the node, not through the API",
                });
            }
            super::ca::refuse_ca_key(&state.info)?;
            self.remove_object(&obj, &state, audit)
        })
    }

    /// Deletes a key object's record (token keys) and drops it from memory; signers and
    /// ciphers held elsewhere stop working at once.
    pub(super) fn remove_object(
        &self,
        obj: &KeyObject,
        state: &KeyState,
        audit: &Audit<'_>,
    ) -> Result<()> {
        let handle = state.info.handle;
        let mut manifest = self.begin_write()?;
        if state.info.attributes.token {
            let id = handle.to_string();
            self.commit(
                &mut manifest,
                vec![Write::Delete(
                    RecordKind::Key.into(),
                    id.clone(),
                    state.record_version,
                )],
                &[(RecordKind::Key, &id, None)],
                Some(audit),
            )?;
        }
        obj.destroyed.store(true, Ordering::Release);
        let mut map: ObjectMap = (**self.objects.load()).clone();
        map.remove(&handle);
        self.objects.store(Arc::new(map));
        Ok(())
    }
}
