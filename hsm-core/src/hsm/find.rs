//! Finding keys: listing with filters and pages, key info, lookup by label, public keys and
//! usage counters. A key the session may not see is answered as missing.

use super::*;

impl Hsm {
    /// Every key the session may see that matches `filter`, ordered by handle, `limit` (1 to
    /// [`MAX_PAGE_SIZE`]) at a time, starting after handle `after`.
    ///
    /// # Errors
    /// [`Error::SessionInvalid`]; [`Error::InvalidInput`] for a bad limit.
    pub fn list_keys(
        &self,
        session: &Session,
        filter: &KeyFilter,
        after: Option<KeyHandle>,
        limit: usize,
    ) -> Result<KeyPage> {
        session.check()?;
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::invalid(format!(
                "a page holds 1 to {MAX_PAGE_SIZE} keys"
            )));
        }
        let mut all: Vec<KeyInfo> = self
            .objects
            .load()
            .values()
            .filter(|o| !o.destroyed.load(Ordering::Acquire) && o.in_scope(session))
            .map(|o| o.state.load().info.clone())
            .filter(|k| Self::visible(session, k))
            .map(|k| Self::as_seen_by(session, k))
            .filter(|k| {
                filter
                    .label
                    .as_ref()
                    .is_none_or(|l| &k.attributes.label == l)
            })
            .filter(|k| filter.class.is_none_or(|c| k.class == c))
            .filter(|k| filter.owner.as_ref().is_none_or(|o| &k.owner == o))
            .filter(|k| {
                filter
                    .key_type
                    .as_ref()
                    .is_none_or(|t| k.spec.key_type() == t)
            })
            .filter(|k| {
                filter
                    .attributes
                    .iter()
                    .all(|(n, v)| k.attributes.get_bool(*n) == Some(*v))
            })
            .filter(|k| after.is_none_or(|a| k.handle > a))
            .collect();
        all.sort_by_key(|k| k.handle);
        let next = if all.len() > limit {
            Some(all[limit - 1].handle)
        } else {
            None
        };
        all.truncate(limit);
        Ok(KeyPage { keys: all, next })
    }

    /// One key's description, if the session may see it.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] (also for keys the session may not see), [`Error::SessionInvalid`].
    pub fn key_info(&self, session: &Session, handle: KeyHandle) -> Result<KeyInfo> {
        session.check()?;
        let obj = self.object(handle)?;
        let info = obj.state.load().info.clone();
        if !obj.in_scope(session) || !Self::visible(session, &info) {
            return Err(Error::KeyNotFound { handle });
        }
        Ok(Self::as_seen_by(session, info))
    }

    /// The key of `class` labelled `label` that the session's user owns; if it owns none, the
    /// one such key shared with it. Labels are unique per owner, so a user's own key always
    /// wins over keys others share with it, and a key another user labels alike cannot take
    /// its place.
    ///
    /// # Errors
    /// [`Error::LabelNotFound`]; [`Error::LabelAmbiguous`] when the user owns none and several
    /// users share a key so labelled with it.
    pub fn find_by_label(
        &self,
        session: &Session,
        label: &str,
        class: KeyClass,
    ) -> Result<KeyInfo> {
        let mut page = self.list_keys(
            session,
            &KeyFilter {
                label: Some(label.into()),
                class: Some(class),
                ..KeyFilter::default()
            },
            None,
            MAX_PAGE_SIZE,
        )?;
        if let Some(own) = page.keys.iter().position(|k| k.owner == session.user()) {
            return Ok(page.keys.swap_remove(own));
        }
        match page.keys.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::LabelNotFound {
                label: label.into(),
            }),
            many => Err(Error::LabelAmbiguous {
                label: label.into(),
                count: many.len(),
            }),
        }
    }

    /// The public key of the latest version of a visible private or public key, as
    /// SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`]; [`Error::MechanismInvalid`] for a secret key.
    pub fn public_key_spki(&self, session: &Session, handle: KeyHandle) -> Result<Vec<u8>> {
        self.public_key_spki_at(session, handle.into())
    }

    /// The public key of version `key.version` (`None`: the latest), as
    /// [`public_key_spki`](Self::public_key_spki): any version the key still holds, retired
    /// ones included (public keys are not secret; old signatures may need checking elsewhere).
    ///
    /// # Errors
    /// As [`public_key_spki`](Self::public_key_spki); [`Error::InvalidInput`] for a version
    /// the key never had; [`Error::KeyVersionRetired`] for a trimmed one.
    pub fn public_key_spki_at(&self, session: &Session, key: KeyRef) -> Result<Vec<u8>> {
        self.key_info(session, key.handle)?;
        let obj = self.object(key.handle)?;
        let state = obj.state.load();
        let material = match key.version {
            None => state.latest(),
            Some(v) => state.version_held(v, "public key export")?,
        };
        material
            .spki()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Self::mechanism_invalid(&state, "public key export"))
    }

    /// Operation counts of a key the session may use.
    ///
    /// # Errors
    /// As [`key_info`](Self::key_info).
    pub fn key_usage(&self, session: &Session, handle: KeyHandle) -> Result<KeyUsage> {
        self.key_info(session, handle)?;
        let u = &self.object(handle)?.usage;
        Ok(KeyUsage {
            sign: u.sign.load(Ordering::Relaxed),
            verify: u.verify.load(Ordering::Relaxed),
            encrypt: u.encrypt.load(Ordering::Relaxed),
            decrypt: u.decrypt.load(Ordering::Relaxed),
        })
    }
}
