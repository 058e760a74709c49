//! The one place `keyward-hsm` types become wire types and back (feature `hsm`).
//!
//! A new attribute, key spec, role or error code of the HSM is added here and in the wire type;
//! the server, the SDK and the CLI take it from these conversions.

use keyward_hsm as hsm;

use crate::error::ErrorCode;
use crate::keys::{Attributes, Key, KeyPair, KeyTemplate};
use crate::names::{KeyClass, KeySpec, Role};
use crate::secret::Password;
use crate::{AuditEntry, AuditReport, User};

impl From<&hsm::Attributes> for Attributes {
    fn from(a: &hsm::Attributes) -> Self {
        Attributes {
            label: a.label.clone(),
            id: a.id.clone(),
            sign: a.sign,
            verify: a.verify,
            encrypt: a.encrypt,
            decrypt: a.decrypt,
            wrap: a.wrap,
            unwrap: a.unwrap,
            derive: a.derive,
            extractable: a.extractable,
            sensitive: a.sensitive,
            token: a.token,
            trusted: a.trusted,
            wrap_with_trusted: a.wrap_with_trusted,
            modifiable: a.modifiable,
            destroyable: a.destroyable,
            local: a.local,
            never_extractable: a.never_extractable,
            always_sensitive: a.always_sensitive,
            check_value: a.check_value.clone(),
        }
    }
}

impl From<hsm::KeyClass> for KeyClass {
    fn from(c: hsm::KeyClass) -> Self {
        match c {
            hsm::KeyClass::Secret => KeyClass::Secret,
            hsm::KeyClass::Private => KeyClass::Private,
            hsm::KeyClass::Public => KeyClass::Public,
        }
    }
}

impl From<hsm::KeySpec> for KeySpec {
    fn from(s: hsm::KeySpec) -> Self {
        match s {
            hsm::KeySpec::Aes128 => KeySpec::Aes128,
            hsm::KeySpec::Aes192 => KeySpec::Aes192,
            hsm::KeySpec::Aes256 => KeySpec::Aes256,
            hsm::KeySpec::GenericSecret { bytes } => KeySpec::GenericSecret { bytes },
            hsm::KeySpec::EcP256 => KeySpec::EcP256,
            hsm::KeySpec::EcP384 => KeySpec::EcP384,
            hsm::KeySpec::EcP521 => KeySpec::EcP521,
            hsm::KeySpec::Rsa2048 => KeySpec::Rsa2048,
            hsm::KeySpec::Rsa3072 => KeySpec::Rsa3072,
            hsm::KeySpec::Rsa4096 => KeySpec::Rsa4096,
            hsm::KeySpec::Ed25519 => KeySpec::Ed25519,
        }
    }
}

impl From<hsm::KeyInfo> for Key {
    fn from(k: hsm::KeyInfo) -> Self {
        Key {
            handle: k.handle.0,
            linked_handle: k.linked_handle.map(|h| h.0),
            class: k.class.into(),
            spec: k.spec.into(),
            owner: k.owner,
            shared_with: k.shared_with,
            attributes: (&k.attributes).into(),
            latest_version: k.latest_version,
            min_decryption_version: k.min_decryption_version,
            min_encryption_version: k.min_encryption_version,
            min_available_version: k.min_available_version,
        }
    }
}

impl From<(hsm::KeyInfo, hsm::KeyInfo)> for KeyPair {
    /// A `(private, public)` pair as the HSM returns it.
    fn from((private, public): (hsm::KeyInfo, hsm::KeyInfo)) -> Self {
        KeyPair {
            private: private.into(),
            public: public.into(),
        }
    }
}

impl KeyTemplate {
    /// The HSM's template: the label, the id, then each boolean attribute by name.
    ///
    /// # Errors
    /// [`hsm::Error::InvalidInput`] for an unknown attribute name.
    pub fn to_hsm(&self) -> hsm::Result<hsm::KeyTemplate> {
        let mut t = hsm::KeyTemplate::labelled(&self.label);
        if let Some(id) = &self.id {
            t.attributes.push((
                hsm::AttributeName::Id,
                hsm::AttributeValue::Text(id.clone()),
            ));
        }
        for (name, v) in &self.attributes {
            let n: hsm::AttributeName = name.parse()?;
            t = t.with(n, *v);
        }
        Ok(t)
    }
}

impl From<hsm::Role> for Role {
    fn from(r: hsm::Role) -> Self {
        match r {
            hsm::Role::Admin => Role::Admin,
            hsm::Role::CryptoUser => Role::CryptoUser,
        }
    }
}

impl From<hsm::UserInfo> for User {
    fn from(u: hsm::UserInfo) -> Self {
        User {
            username: u.name,
            role: u.role.into(),
            locked: u.locked,
            failed_logins: u.failed_logins,
            lockout_ends_unix_ms: u.lockout_ends_unix_ms,
            service: u.service,
        }
    }
}

impl From<hsm::AuditEntry> for AuditEntry {
    fn from(e: hsm::AuditEntry) -> Self {
        AuditEntry {
            seq: e.seq,
            time_unix_ms: e.time_unix_ms,
            actor: e.actor,
            event: e.event,
            target: e.target,
            outcome: e.outcome,
            prev_hash: e.prev_hash,
        }
    }
}

impl From<hsm::AuditReport> for AuditReport {
    fn from(r: hsm::AuditReport) -> Self {
        AuditReport {
            entries: r.entries,
            intact: r.intact,
            problem: r.problem,
        }
    }
}

impl From<hsm::ErrorCode> for ErrorCode {
    fn from(c: hsm::ErrorCode) -> Self {
        use hsm::ErrorCode as C;
        match c {
            C::KeyNotFound => ErrorCode::KeyNotFound,
            C::LabelAmbiguous => ErrorCode::LabelAmbiguous,
            C::LabelExists => ErrorCode::LabelExists,
            C::AttributeViolation => ErrorCode::AttributeViolation,
            C::KeyVersionRetired => ErrorCode::KeyVersionRetired,
            C::MechanismInvalid => ErrorCode::MechanismInvalid,
            C::InvalidInput => ErrorCode::InvalidInput,
            C::Sealed => ErrorCode::Sealed,
            C::UnsealKeyRejected => ErrorCode::UnsealKeyRejected,
            C::BackupInvalid => ErrorCode::BackupInvalid,
            C::RecordTampered => ErrorCode::RecordTampered,
            C::SelfTestFailed => ErrorCode::SelfTestFailed,
            C::StoreError => ErrorCode::StoreError,
            C::StoreUnavailable => ErrorCode::StoreUnavailable,
            C::CryptoError => ErrorCode::CryptoError,
            C::PermissionDenied => ErrorCode::PermissionDenied,
            C::AuthenticationFailed => ErrorCode::AuthenticationFailed,
            C::UserLocked => ErrorCode::UserLocked,
            C::UserNotFound => ErrorCode::UserNotFound,
            C::UserExists => ErrorCode::UserExists,
            C::SessionInvalid => ErrorCode::SessionInvalid,
            C::ReadOnly => ErrorCode::ReadOnly,
            C::AuditDamaged => ErrorCode::AuditDamaged,
            C::StoreRolledBack => ErrorCode::StoreRolledBack,
            C::CaNotFound => ErrorCode::CaNotFound,
            C::CaExists => ErrorCode::CaExists,
            C::CertificateNotFound => ErrorCode::CertificateNotFound,
            C::CertificateRequestRefused => ErrorCode::CertificateRequestRefused,
            C::InternalError => ErrorCode::InternalError,
        }
    }
}

impl From<Password> for hsm::Password {
    /// Moves the text into the HSM's password type without copying it.
    fn from(p: Password) -> Self {
        hsm::Password::new(p.into_secret_string())
    }
}

impl From<hsm::DataKey> for crate::DataKey {
    fn from(k: hsm::DataKey) -> Self {
        crate::DataKey {
            plaintext: crate::SecretBase64::encode(&k.plaintext),
            wrapped: crate::Base64::encode(&k.wrapped),
            key_version: k.key_version,
        }
    }
}
