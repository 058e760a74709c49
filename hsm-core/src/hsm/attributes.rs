//! Changing a key object after it exists: attributes (`set_attribute`, PKCS#11
//! `C_SetAttributeValue`) and sharing with other crypto-users (CloudHSM `shareKey`).

use super::*;

/// One key object's change for [`Hsm::store_states`]: the object, its state as read under the
/// writer lock, its new info and its new versions.
pub(super) type StateChange = (Arc<KeyObject>, Arc<KeyState>, KeyInfo, Arc<KeyVersions>);

impl Hsm {
    /// Writes a key's new attributes (or sharing). The caller holds the writer lock
    /// (`manifest`) and read `old` under it, so the read-check-write is atomic.
    pub(super) fn store_state(
        &self,
        manifest: &mut Manifest,
        obj: &Arc<KeyObject>,
        old: &KeyState,
        info: KeyInfo,
        audit: &Audit<'_>,
    ) -> Result<()> {
        let linked = info.linked_handle.and_then(|l| {
            self.objects
                .load()
                .get(&l)
                .map(|o| o.state.load().info.attributes.clone())
        });
        // A lone public key (imported; its private half is elsewhere) cannot open anything in
        // the HSM, so it may both encrypt and wrap for its outside owner.
        if info.class != KeyClass::Public || linked.is_some() {
            info.attributes.check_separation(linked.as_ref())?;
        }
        let versions = old.versions.clone();
        self.store_states(
            manifest,
            vec![(obj.clone(), Arc::new(old.clone()), info, versions)],
            audit,
        )
    }

    /// Writes the new states of one or more key objects (`(object, state read under the
    /// writer lock, new info, new versions)`) in one commit with `audit`'s entry, then
    /// publishes them. The caller holds the writer lock (`manifest`).
    ///
    /// # Errors
    /// A version conflict when an object changed since `old` was read; [`Error::Store`].
    pub(super) fn store_states(
        &self,
        manifest: &mut Manifest,
        changes: Vec<StateChange>,
        audit: &Audit<'_>,
    ) -> Result<()> {
        let mut writes = Vec::new();
        let mut ids = Vec::new();
        let mut next = Vec::new();
        for (obj, old, info, versions) in changes {
            if obj.state.load().record_version != old.record_version {
                return Err(Error::Store(keyward_keystore::Error::VersionConflict {
                    kind: RecordKind::Key.into(),
                    id: info.handle.to_string(),
                    expected: old.record_version,
                }));
            }
            let version = old.record_version + 1;
            if old.info.attributes.token {
                writes.push(Write::Update(self.key_record(&info, &versions, version)?));
                ids.push((info.handle.to_string(), version));
            }
            next.push((
                obj,
                KeyState {
                    info,
                    record_version: version,
                    versions,
                },
            ));
        }
        if !writes.is_empty() {
            let changes: Vec<(RecordKind, &str, Option<u64>)> = ids
                .iter()
                .map(|(id, v)| (RecordKind::Key, id.as_str(), Some(*v)))
                .collect();
            self.commit(manifest, writes, &changes, Some(audit))?;
        }
        for (obj, state) in next {
            obj.state.store(Arc::new(state));
        }
        Ok(())
    }

    /// A key object's store record at record version `version`: its info and every version's
    /// value, sealed under the data key.
    pub(super) fn key_record(
        &self,
        info: &KeyInfo,
        versions: &KeyVersions,
        version: u64,
    ) -> Result<Record> {
        let values = versions
            .iter()
            .map(|(_, m)| stored_value(m))
            .collect::<Result<Vec<_>>>()?;
        let id = info.handle.to_string();
        let plain = encode_key_record(info, &values)?;
        let blob = self
            .data_key
            .load()
            .seal(RecordKind::Key, &id, version, &plain)?;
        Ok(Record {
            kind: RecordKind::Key.into(),
            id,
            version,
            blob,
        })
    }

    /// Changes one attribute of a key the session owns (`trusted`: admins only, on any key).
    /// Rules: read-only attributes never change; `extractable` is fixed at creation;
    /// `modifiable` goes true → false only and, once false, nothing changes; `wrap_with_trusted`
    /// goes false → true only; `token` goes false → true only (a session key becomes
    /// persistent); `sensitive` goes false → true only.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::AttributeViolation`], [`Error::InvalidInput`].
    pub fn set_attribute(
        &self,
        session: &Session,
        handle: KeyHandle,
        name: AttributeName,
        value: AttributeValue,
    ) -> Result<KeyInfo> {
        self.audited(
            session.user(),
            AuditEvent::KeySetAttribute(name),
            Some(handle.to_string()),
            |audit| {
                let mut manifest = self.begin_write()?;
                let (obj, state) = if name == AttributeName::Trusted {
                    session.require(Role::Admin)?;
                    let obj = self.object(handle)?;
                    if !obj.in_scope(session) {
                        return Err(Error::KeyNotFound { handle });
                    }
                    let state = obj.state.load();
                    (obj, state)
                } else {
                    self.owned(session, handle)?
                };
                let violation = |attribute: &'static str| Error::AttributeViolation {
                    handle,
                    operation: "set-attribute",
                    attribute,
                };
                let a = &state.info.attributes;
                if name.is_read_only() {
                    return Err(violation("read-only"));
                }
                if !a.modifiable {
                    return Err(violation("modifiable is false"));
                }
                let mut info = state.info.clone();
                match (name, &value) {
                    (AttributeName::Label, AttributeValue::Text(t)) => {
                        Attributes::check_label(t)?;
                        if t != &a.label {
                            self.check_new_label(session, t, info.class)?;
                        }
                        info.attributes.label = t.clone();
                    }
                    (AttributeName::Id, AttributeValue::Text(t)) => {
                        Attributes::check_id(t)?;
                        info.attributes.id = t.clone();
                    }
                    (n, AttributeValue::Bool(v)) if a.get_bool(n).is_some() => {
                        let current = a.get_bool(n).unwrap_or(false);
                        let one_way: Option<bool> = match n {
                            AttributeName::Extractable => {
                                return Err(violation("extractable is set only at creation"))
                            }
                            AttributeName::Modifiable => Some(false),
                            AttributeName::WrapWithTrusted
                            | AttributeName::Token
                            | AttributeName::Sensitive => Some(true),
                            _ => None,
                        };
                        if let Some(allowed) = one_way {
                            if *v != current && *v != allowed {
                                return Err(violation(match n {
                                    AttributeName::Modifiable => {
                                        "modifiable goes from true to false only"
                                    }
                                    AttributeName::WrapWithTrusted => {
                                        "wrap_with_trusted cannot be cleared"
                                    }
                                    AttributeName::Token => "token goes from false to true only",
                                    _ => "sensitive cannot be cleared",
                                }));
                            }
                        }
                        if n == AttributeName::Token && *v && !current {
                            return Err(violation(
                                "making a session key persistent is not supported yet",
                            ));
                        }
                        info.attributes.set_bool(n, *v);
                        if n == AttributeName::Trusted && *v {
                            // A trusted key may itself be wrapped only by trusted keys, so no
                            // untrusted copy of it can unwrap what it protects.
                            info.attributes.wrap_with_trusted = true;
                        }
                        if n == AttributeName::Sensitive {
                            info.attributes.always_sensitive =
                                info.attributes.always_sensitive && *v;
                        }
                    }
                    (n, _) => {
                        return Err(Error::invalid(format!(
                            "wrong value type for attribute {n}"
                        )))
                    }
                }
                self.store_state(&mut manifest, &obj, &state, info.clone(), audit)?;
                Ok(info)
            },
        )
    }

    /// Shares a key the session owns with another crypto-user, for use only.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::UserNotFound`], [`Error::InvalidInput`].
    pub fn share_key(&self, session: &Session, handle: KeyHandle, user: &str) -> Result<KeyInfo> {
        self.audited(
            session.user(),
            AuditEvent::KeyShare,
            Some(format!("{handle} {user}")),
            |audit| {
                let mut manifest = self.begin_write()?;
                let (obj, state) = self.owned(session, handle)?;
                match lock(&self.users).get(user) {
                    Some((u, _)) if u.role == Role::CryptoUser => {}
                    // One answer whether the name is unknown or not a crypto-user: a crypto-user
                    // does not learn other users' roles this way.
                    _ => {
                        return Err(Error::invalid(format!(
                        "cannot share with {:?}: keys are shared with existing crypto-users only",
                        printable(user)
                    )))
                    }
                }
                if user == session.user() {
                    return Err(Error::invalid("the owner already uses the key"));
                }
                let mut info = state.info.clone();
                if !info.shared_with.iter().any(|u| u == user) {
                    info.shared_with.push(user.into());
                    info.shared_with.sort();
                }
                self.store_state(&mut manifest, &obj, &state, info.clone(), audit)?;
                Ok(info)
            },
        )
    }

    /// Stops sharing a key the session owns.
    ///
    /// # Errors
    /// As [`share_key`](Self::share_key).
    pub fn unshare_key(&self, session: &Session, handle: KeyHandle, user: &str) -> Result<KeyInfo> {
        self.audited(
            session.user(),
            AuditEvent::KeyUnshare,
            Some(format!("{handle} {user}")),
            |audit| {
                let mut manifest = self.begin_write()?;
                let (obj, state) = self.owned(session, handle)?;
                let mut info = state.info.clone();
                let before = info.shared_with.len();
                info.shared_with.retain(|u| u != user);
                if info.shared_with.len() == before {
                    return Err(Error::invalid(format!(
                        "the key is not shared with {user:?}"
                    )));
                }
                self.store_state(&mut manifest, &obj, &state, info.clone(), audit)?;
                Ok(info)
            },
        )
    }
}
