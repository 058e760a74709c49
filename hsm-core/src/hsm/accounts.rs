//! Users, passwords, lockout and sessions of the [`Hsm`]: creating and deleting users, logins
//! (Argon2id, lockout after [`MAX_FAILED_LOGINS`] failures), certificate logins, bearer-token
//! sessions and their end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

impl Hsm {
    // ----- users and sessions -----

    pub(super) fn insert_user(
        &self,
        user: UserRecord,
        only_if_no_admin: bool,
        audit: Option<&Audit<'_>>,
    ) -> Result<()> {
        let mut manifest = self.begin_write()?;
        {
            let users = lock(&self.users);
            // Names differing only in case would read alike in the audit trail: one of them.
            if users.keys().any(|n| n.eq_ignore_ascii_case(&user.name)) {
                return Err(Error::UserExists {
                    user: user.name.clone(),
                });
            }
            if only_if_no_admin && users.values().any(|(u, _)| u.role == Role::Admin) {
                return Err(Error::PermissionDenied {
                    reason: "an admin exists already; admins create further users",
                });
            }
        }
        let rec = seal_json(
            &self.data_key.load(),
            RecordKind::User,
            &user.name,
            1,
            &user,
        )?;
        self.commit(
            &mut manifest,
            vec![Write::Insert(rec)],
            &[(RecordKind::User, &user.name, Some(1))],
            audit,
        )?;
        lock(&self.users).insert(user.name.clone(), (user, 1));
        Ok(())
    }

    /// Reads, changes and writes one user under the writer lock, so that concurrent changes
    /// (e.g. failed logins) are all counted, with `audit`'s entry in the same transaction.
    /// Returns the user as written.
    pub(super) fn modify_user(
        &self,
        name: &str,
        change: impl FnOnce(&mut UserRecord) -> Result<()>,
        audit: Option<&Audit<'_>>,
    ) -> Result<UserRecord> {
        let mut manifest = self.begin_write()?;
        let (mut user, version) = lock(&self.users)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UserNotFound { user: name.into() })?;
        change(&mut user)?;
        let v = version + 1;
        let rec = seal_json(
            &self.data_key.load(),
            RecordKind::User,
            &user.name,
            v,
            &user,
        )?;
        self.commit(
            &mut manifest,
            vec![Write::Update(rec)],
            &[(RecordKind::User, &user.name, Some(v))],
            audit,
        )?;
        lock(&self.users).insert(user.name.clone(), (user.clone(), v));
        Ok(user)
    }

    /// Creates a user (admin only). Passwords are 8 to 256 characters and stored as Argon2id.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::UserExists`], [`Error::InvalidInput`].
    pub fn create_user(
        &self,
        admin: &Session,
        name: &str,
        role: Role,
        password: &Password,
    ) -> Result<UserInfo> {
        self.audited(
            admin.user(),
            AuditEvent::UserCreate,
            Some(name.to_owned()),
            |audit| {
                admin.require(Role::Admin)?;
                users::check_user_name(name)?;
                users::check_password(password)?;
                if lock(&self.users)
                    .keys()
                    .any(|n| n.eq_ignore_ascii_case(name))
                {
                    return Err(Error::UserExists { user: name.into() });
                }
                let user = UserRecord {
                    name: name.into(),
                    role,
                    password_hash: Some(kdf::hash_password(password)?),
                    failed_logins: 0,
                    locked: false,
                    locked_at_unix_ms: None,
                };
                let info = user.info(self.admin_lockout());
                self.insert_user(user, false, Some(audit))?;
                Ok(info)
            },
        )
    }

    /// Creates the first admin of a new HSM. Refused once any admin exists.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] if an admin exists; [`Error::InvalidInput`].
    pub fn bootstrap_admin(&self, name: &str, password: &Password) -> Result<UserInfo> {
        users::check_user_name(name)?;
        users::check_password(password)?;
        let user = UserRecord {
            name: name.into(),
            role: Role::Admin,
            password_hash: Some(kdf::hash_password(password)?),
            failed_logins: 0,
            locked: false,
            locked_at_unix_ms: None,
        };
        let info = user.info(self.admin_lockout());
        // The "no admin yet" check and the insert happen under one lock.
        let audit = Audit::new("-", AuditEvent::UserBootstrapAdmin, Some(name.to_owned()));
        self.insert_user(user, true, Some(&audit))?;
        Ok(info)
    }

    /// Deletes a user (admin only). A user who owns keys cannot be deleted; service users
    /// cannot be deleted.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::UserNotFound`], [`Error::InvalidInput`].
    pub fn delete_user(&self, admin: &Session, name: &str) -> Result<()> {
        self.audited(
            admin.user(),
            AuditEvent::UserDelete,
            Some(name.to_owned()),
            |audit| {
                admin.require(Role::Admin)?;
                if name == admin.user() {
                    return Err(Error::invalid("an admin cannot delete itself"));
                }
                let mut manifest = self.begin_write()?;
                let version = {
                    let users = lock(&self.users);
                    let (u, v) = users
                        .get(name)
                        .ok_or_else(|| Error::UserNotFound { user: name.into() })?;
                    if u.password_hash.is_none() {
                        return Err(Error::invalid("service users cannot be deleted"));
                    }
                    *v
                };
                let objects = self.objects.load();
                if objects.values().any(|o| o.state.load().info.owner == name) {
                    return Err(Error::invalid("the user owns keys; destroy them first"));
                }
                // Withdraw every share with the user in the same transaction, so that a later user
                // of the same name inherits nothing.
                let mut writes = vec![Write::Delete(RecordKind::User.into(), name.into(), version)];
                let mut ids = vec![(RecordKind::User, name.to_owned(), None)];
                let mut new_states = Vec::new();
                for o in objects.values() {
                    let st = o.state.load_full();
                    if st.info.shared_with.iter().any(|u| u == name) {
                        let mut info = st.info.clone();
                        info.shared_with.retain(|u| u != name);
                        let v = st.record_version + 1;
                        if info.attributes.token {
                            let record = self.key_record(&info, &st.versions, v)?;
                            ids.push((RecordKind::Key, record.id.clone(), Some(v)));
                            writes.push(Write::Update(record));
                        }
                        new_states.push((
                            o.clone(),
                            KeyState {
                                info,
                                record_version: v,
                                versions: st.versions.clone(),
                            },
                        ));
                    }
                }
                let changes: Vec<(RecordKind, &str, Option<u64>)> =
                    ids.iter().map(|(k, i, v)| (*k, i.as_str(), *v)).collect();
                self.commit(&mut manifest, writes, &changes, Some(audit))?;
                for (o, st) in new_states {
                    o.state.store(Arc::new(st));
                }
                lock(&self.users).remove(name);
                drop(manifest);
                self.end_sessions_of(name);
                Ok(())
            },
        )
    }

    /// Whether any admin exists (for bootstrapping).
    pub fn has_admin(&self) -> bool {
        lock(&self.users)
            .values()
            .any(|(u, _)| u.role == Role::Admin)
    }

    /// Sets a user's password and unlocks it, without a session: for the holder of the data
    /// directory and master key only (the `keyward user reset-password --data-dir` recovery
    /// path when every admin is locked out). Never reachable over the network.
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::InvalidInput`].
    pub fn offline_reset_password(&self, name: &str, new_password: &Password) -> Result<()> {
        users::check_password(new_password)?;
        let hash = kdf::hash_password(new_password)?;
        let audit = Audit::new(
            "local",
            AuditEvent::UserOfflineResetPassword,
            Some(name.into()),
        );
        self.modify_user(
            name,
            |user| {
                if user.password_hash.is_none() {
                    return Err(Error::invalid("service users have no password"));
                }
                user.password_hash = Some(hash);
                user.failed_logins = 0;
                user.locked = false;
                user.locked_at_unix_ms = None;
                Ok(())
            },
            Some(&audit),
        )?;
        self.end_sessions_of(name);
        Ok(())
    }

    /// Every user (admins only).
    ///
    /// # Errors
    /// [`Error::SessionInvalid`].
    pub fn list_users(&self, session: &Session) -> Result<Vec<UserInfo>> {
        session.require(Role::Admin)?;
        let mut v: Vec<UserInfo> = lock(&self.users)
            .values()
            .map(|(u, _)| u.info(self.admin_lockout()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Sets a user's password: an admin for anyone (this also unlocks a locked user), a user
    /// for itself. Ends the user's other sessions.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::UserNotFound`], [`Error::InvalidInput`].
    pub fn change_password(
        &self,
        session: &Session,
        name: &str,
        new_password: &Password,
    ) -> Result<()> {
        self.audited(
            session.user(),
            AuditEvent::UserChangePassword,
            Some(name.to_owned()),
            |audit| {
                session.check()?;
                let by_admin = session.role() == Role::Admin;
                if !by_admin && session.user() != name {
                    return Err(Error::PermissionDenied {
                        reason: "only an admin may change another user's password",
                    });
                }
                users::check_password(new_password)?;
                let hash = kdf::hash_password(new_password)?;
                self.modify_user(
                    name,
                    |user| {
                        if user.password_hash.is_none() {
                            return Err(Error::invalid("service users have no password"));
                        }
                        if !by_admin && user.locked {
                            return Err(Error::UserLocked { user: name.into() });
                        }
                        user.password_hash = Some(hash);
                        if by_admin {
                            // Only an admin's reset unlocks.
                            user.failed_logins = 0;
                            user.locked = false;
                            user.locked_at_unix_ms = None;
                        }
                        Ok(())
                    },
                    Some(audit),
                )?;
                self.end_sessions_of_except(name, session.id());
                Ok(())
            },
        )
    }

    /// How long an admin stays locked after [`MAX_FAILED_LOGINS`] consecutive failed logins
    /// (default [`DEFAULT_ADMIN_LOCKOUT`], 15 minutes, as Vault's user lockout). Crypto-users
    /// stay locked until an admin sets a new password (as in CloudHSM), so that a remote
    /// attacker can lock an admin out for at most this long at a time, never for good, while
    /// guessing stays at five tries per period. `Duration::ZERO`: admins too stay locked until
    /// another admin or `keyward recover reset-password` sets a new password.
    pub fn set_admin_lockout(&self, duration: Duration) {
        self.admin_lockout_ms.store(
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// See [`set_admin_lockout`](Self::set_admin_lockout).
    pub fn admin_lockout(&self) -> Duration {
        Duration::from_millis(self.admin_lockout_ms.load(Ordering::Relaxed))
    }

    /// Logs a user in for `ttl`. [`MAX_FAILED_LOGINS`] consecutive failures lock the user:
    /// a crypto-user until an admin sets a new password, an admin for
    /// [`admin_lockout`](Self::admin_lockout) (the first login attempt after that unlocks it,
    /// audited as `user.lockout-expired`).
    ///
    /// To a caller who is not yet authenticated, every refusal looks the same and costs the
    /// same: an unknown user, a service user, a wrong password and a locked user all answer
    /// [`Error::AuthenticationFailed`] after one Argon2id computation. Only the audit trail
    /// tells them apart.
    ///
    /// # Errors
    /// [`Error::AuthenticationFailed`]; [`Error::InvalidInput`] for a TTL above
    /// [`MAX_SESSION_TTL`].
    pub fn login(
        &self,
        name: &str,
        password: &Password,
        ttl: Duration,
    ) -> Result<(Session, SessionToken)> {
        if ttl > MAX_SESSION_TTL {
            return Err(Error::invalid(format!(
                "a session lasts at most {} s",
                MAX_SESSION_TTL.as_secs()
            )));
        }
        lock(&self.sessions).retain(|_, s| s.is_active());
        // A user another node made a moment ago: catch up first if the store moved.
        if !lock(&self.users).contains_key(name) {
            self.catch_up_if_moved();
        }
        let found = lock(&self.users).get(name).map(|(u, _)| u.clone());
        let Some((user, phc)) = found.and_then(|u| u.password_hash.clone().map(|p| (u, p))) else {
            // Spend the same time as a real check, so user names cannot be probed by timing.
            let _ = kdf::verify_password(password, DUMMY_PHC);
            let known = lock(&self.users).contains_key(name);
            self.audit_append(
                "-",
                AuditEvent::Login,
                Some(&printable(name)),
                if known {
                    Outcome::Denied
                } else {
                    Outcome::Failed
                },
            )?;
            return Err(Error::AuthenticationFailed);
        };
        // Checked before the lock, so a locked user costs what any other login costs.
        let password_ok = kdf::verify_password(password, &phc);
        let user = if user.locked {
            match self.end_expired_lockout(name)? {
                Some(unlocked) => unlocked,
                None => {
                    self.audit_append("-", AuditEvent::Login, Some(name), Outcome::Locked)?;
                    return Err(Error::AuthenticationFailed);
                }
            }
        } else {
            user
        };
        if !password_ok {
            // Counted under the writer lock (concurrent failures are all counted) and audited in
            // the same transaction: one commit, as an unknown or locked user's failure costs.
            let audit = Audit::new("-", AuditEvent::Login, Some(name.to_owned()));
            let after = self.modify_user(
                name,
                |u| {
                    u.failed_logins = u.failed_logins.saturating_add(1);
                    if !u.locked && u.failed_logins >= MAX_FAILED_LOGINS {
                        u.locked = true;
                        u.locked_at_unix_ms = Some(crate::audit::now_unix_ms());
                    }
                    audit.set_outcome(if u.locked {
                        Outcome::FailedAndLocked
                    } else {
                        Outcome::Failed
                    });
                    Ok(())
                },
                Some(&audit),
            )?;
            if after.locked {
                self.end_sessions_of(name);
            }
            return Err(Error::AuthenticationFailed);
        }
        let user = if user.failed_logins != 0 {
            self.modify_user(
                name,
                |u| {
                    if u.locked {
                        // Locked by concurrent failures while this password was checked.
                        return Err(Error::AuthenticationFailed);
                    }
                    u.failed_logins = 0;
                    Ok(())
                },
                None,
            )?
        } else {
            user
        };
        let session = Session::new(
            self.next_session.fetch_add(1, Ordering::Relaxed),
            name,
            user.role,
            Some(ttl),
        );
        let (token, digest) = SessionToken::generate()?;
        self.add_session(digest, session.clone(), ttl)?;
        Ok((session, token))
    }

    /// Unlocks a locked user whose lockout has run out (admins only, see
    /// [`set_admin_lockout`](Self::set_admin_lockout)) and audits it; `None` while the user
    /// stays locked.
    fn end_expired_lockout(&self, name: &str) -> Result<Option<UserRecord>> {
        let admin_lockout = self.admin_lockout();
        let expired = |u: &UserRecord| {
            u.lockout_ends_unix_ms(admin_lockout)
                .is_some_and(|end| crate::audit::now_unix_ms() >= end)
        };
        let current = lock(&self.users).get(name).map(|(u, _)| u.clone());
        match current {
            Some(u) if !u.locked => return Ok(Some(u)),
            Some(u) if !expired(&u) => return Ok(None),
            _ => {}
        }
        let mut ended = false;
        let user = self.modify_user(
            name,
            |u| {
                if u.locked && expired(u) {
                    u.locked = false;
                    u.failed_logins = 0;
                    u.locked_at_unix_ms = None;
                    ended = true;
                }
                Ok(())
            },
            None,
        )?;
        if user.locked {
            return Ok(None);
        }
        if ended {
            self.audit_append("-", AuditEvent::UserLockoutExpired, Some(name), Outcome::Ok)?;
        }
        Ok(Some(user))
    }

    /// A session for a user authenticated by a TLS client certificate that the caller (the
    /// API's TLS layer) verified against its client CA; the certificate's subject common name
    /// is the user name. Service users and locked users are refused; the login is audited.
    ///
    /// # Errors
    /// [`Error::AuthenticationFailed`] (unknown or service user), [`Error::UserLocked`],
    /// [`Error::InvalidInput`] for a TTL above [`MAX_SESSION_TTL`].
    pub fn certificate_session(&self, name: &str, ttl: Duration) -> Result<Session> {
        if ttl > MAX_SESSION_TTL {
            return Err(Error::invalid("session too long"));
        }
        let found = lock(&self.users).get(name).map(|(u, _)| u.clone());
        let user = match found {
            Some(u) if u.password_hash.is_some() => u,
            _ => {
                self.audit_append(
                    "-",
                    AuditEvent::LoginCertificate,
                    Some(&printable(name)),
                    Outcome::Failed,
                )?;
                return Err(Error::AuthenticationFailed);
            }
        };
        if user.locked && self.end_expired_lockout(name)?.is_none() {
            self.audit_append(
                "-",
                AuditEvent::LoginCertificate,
                Some(name),
                Outcome::Locked,
            )?;
            return Err(Error::UserLocked { user: name.into() });
        }
        let session = Session::new(
            self.next_session.fetch_add(1, Ordering::Relaxed),
            name,
            user.role,
            Some(ttl),
        );
        // Registered like token sessions (under a random, never-issued token digest), so that
        // deleting, locking or resetting the user ends it too.
        let (_unused_token, digest) = SessionToken::generate()?;
        lock(&self.sessions).insert(digest, session.clone());
        self.audit_append(name, AuditEvent::LoginCertificate, None, Outcome::Ok)?;
        Ok(session)
    }

    /// The session a bearer token names.
    ///
    /// # Errors
    /// [`Error::SessionInvalid`] for an unknown, logged-out or expired token.
    pub fn session(&self, token: &SessionToken) -> Result<Session> {
        let digest = token.digest();
        // A token another node issued a moment ago: catch up first if the store moved (one
        // small read when it did not, so unknown tokens cost no lock).
        if !lock(&self.sessions).contains_key(&digest) {
            self.catch_up_if_moved();
        }
        let mut sessions = lock(&self.sessions);
        match sessions.get(&digest) {
            Some(s) if s.is_active() => Ok(s.clone()),
            Some(_) => {
                sessions.remove(&digest);
                Err(Error::SessionInvalid)
            }
            None => Err(Error::SessionInvalid),
        }
    }

    /// Ends a session; its session objects (`token = false` keys) are destroyed.
    pub fn logout(&self, session: &Session) {
        session.inner.closed.store(true, Ordering::Release);
        let mut digests = Vec::new();
        lock(&self.sessions).retain(|d, s| {
            let end = s.id() == session.id();
            if end {
                digests.push(*d);
            }
            !end
        });
        self.drop_session_objects(session.id());
        // On a shared store the record goes with the audit entry: the session ends on every
        // node. A failure (the database is down) leaves it to expire there.
        let _ = self.forget_sessions(&digests, Some((session.user(), AuditEvent::Logout)));
    }

    pub(super) fn end_sessions_of(&self, name: &str) {
        self.end_sessions_of_except(name, u64::MAX);
    }

    fn end_sessions_of_except(&self, name: &str, keep: u64) {
        let mut ended = Vec::new();
        let mut digests = Vec::new();
        lock(&self.sessions).retain(|d, s| {
            let end = s.user() == name && s.id() != keep;
            if end {
                s.inner.closed.store(true, Ordering::Release);
                ended.push(s.id());
                digests.push(*d);
            }
            !end
        });
        for id in ended {
            self.drop_session_objects(id);
        }
        // On a shared store: on every node (best effort: with the database down, the other
        // nodes' copies last until they expire).
        let _ = self.forget_sessions(&digests, None);
    }

    pub(super) fn drop_session_objects(&self, session_id: u64) {
        let _w = lock(&self.writer);
        self.remove_session_objects(session_id);
    }

    /// [`drop_session_objects`](Self::drop_session_objects) for a caller holding the writer
    /// mutex.
    pub(super) fn remove_session_objects(&self, session_id: u64) {
        let current = self.objects.load();
        let of_session = |o: &KeyObject| o.session.as_ref().is_some_and(|s| s.id() == session_id);
        if !current.values().any(|o| of_session(o)) {
            return;
        }
        let mut next: ObjectMap = (**current).clone();
        next.retain(|_, o| {
            let keep = !of_session(o);
            if !keep {
                o.destroyed.store(true, Ordering::Release);
            }
            keep
        });
        self.objects.store(Arc::new(next));
    }

    /// An in-process session for a service user such as [`PROXY_USER`]; such users have no
    /// password and cannot log in over a network.
    ///
    /// # Errors
    /// [`Error::UserNotFound`] if `name` is not a service user.
    pub fn service_session(&self, name: &str) -> Result<Session> {
        let users = lock(&self.users);
        match users.get(name) {
            Some((u, _)) if u.password_hash.is_none() => Ok(Session::new(
                self.next_session.fetch_add(1, Ordering::Relaxed),
                name,
                u.role,
                None,
            )),
            _ => Err(Error::UserNotFound { user: name.into() }),
        }
    }
}

/// A valid Argon2id hash of a random password, for timing-equal failed logins of unknown users.
pub(super) const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$rI3QVyZf9nNHxCRbc8DPa3zVy8L5PcvP0sMGmKRZAjQ";
