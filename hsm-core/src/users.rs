//! Users, roles, passwords (Argon2id) and sessions.
//!
//! Roles as in CloudHSM: an `admin` manages users and cannot use keys; a `crypto-user`
//! creates, owns and uses keys. A user is locked after [`MAX_FAILED_LOGINS`] consecutive
//! failed logins until an admin sets a new password. Service users (e.g. the proxy's own
//! identity, [`PROXY_USER`]) have no password and get sessions only in-process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Consecutive failed logins that lock a user (CloudHSM's number).
pub const MAX_FAILED_LOGINS: u32 = 5;

/// The crypto-user the TLS proxy and the local data-directory commands act as.
pub const PROXY_USER: &str = "keyward-proxy";

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Manages users; cannot use keys.
    Admin,
    /// Creates, owns and uses keys.
    CryptoUser,
}

impl Role {
    /// `admin` or `crypto-user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::CryptoUser => "crypto-user",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "crypto-user" => Ok(Role::CryptoUser),
            _ => Err(Error::invalid(format!(
                "unknown role {s:?}; expected admin or crypto-user"
            ))),
        }
    }
}

/// A password: not `Clone`, zeroized on drop, `Debug` prints `Password(..)`.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Takes ownership of a password string.
    pub fn new(p: String) -> Self {
        Password(Zeroizing::new(p))
    }

    /// The password's text, to hand to a KDF or a wire format.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s.to_owned())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A user as stored (encrypted) in the store.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserRecord {
    pub(crate) name: String,
    pub(crate) role: Role,
    /// Argon2id PHC string; `None` for service users, who cannot log in.
    pub(crate) password_hash: Option<String>,
    pub(crate) failed_logins: u32,
    pub(crate) locked: bool,
    /// When the user was locked (ms since the Unix epoch): admin lockouts end
    /// [`Hsm::set_admin_lockout`](crate::Hsm::set_admin_lockout) later. Absent in records
    /// written before lockouts expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) locked_at_unix_ms: Option<u64>,
}

/// What the HSM tells about a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Locked after too many failed logins.
    pub locked: bool,
    /// Consecutive failed logins so far.
    pub failed_logins: u32,
    /// For a locked admin: when the lockout ends by itself (ms since the Unix epoch); `None`
    /// for a user who is not locked or stays locked until an admin sets a new password.
    pub lockout_ends_unix_ms: Option<u64>,
    /// A service identity without a password (e.g. the proxy).
    pub service: bool,
}

impl UserRecord {
    pub(crate) fn info(&self, admin_lockout: Duration) -> UserInfo {
        UserInfo {
            name: self.name.clone(),
            role: self.role,
            locked: self.locked,
            failed_logins: self.failed_logins,
            lockout_ends_unix_ms: self.lockout_ends_unix_ms(admin_lockout),
            service: self.password_hash.is_none(),
        }
    }

    /// When this user's lockout ends by itself: only admins' lockouts do, `admin_lockout`
    /// after they began (a zero duration: never). A locked admin record from before lockouts
    /// expired has no start time and ends at once.
    pub(crate) fn lockout_ends_unix_ms(&self, admin_lockout: Duration) -> Option<u64> {
        if !self.locked || self.role != Role::Admin || admin_lockout.is_zero() {
            return None;
        }
        let ms = u64::try_from(admin_lockout.as_millis()).unwrap_or(u64::MAX);
        Some(self.locked_at_unix_ms.unwrap_or(0).saturating_add(ms))
    }
}

pub(crate) fn check_user_name(name: &str) -> Result<()> {
    let ok = name
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric)
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "a user name is 1 to 64 characters of A-Z a-z 0-9 - _ ., starting with a letter or digit",
        ))
    }
}

pub(crate) fn check_password(p: &Password) -> Result<()> {
    let n = p.expose().chars().count();
    if !(8..=256).contains(&n) {
        return Err(Error::invalid("a password is 8 to 256 characters"));
    }
    Ok(())
}

/// A logged-in user. Cloning is cheap and clones share the session's state (logout ends all).
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionState>,
}

pub(crate) struct SessionState {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) closed: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("user", &self.inner.user)
            .field("role", &self.inner.role)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(id: u64, user: &str, role: Role, ttl: Option<Duration>) -> Session {
        Session {
            inner: Arc::new(SessionState {
                id,
                user: user.to_owned(),
                role,
                expires_at: ttl.map(|t| Instant::now() + t),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The user's name.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The session's number (unique while the HSM runs).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether the session can still be used (not logged out, not expired).
    pub fn is_active(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
            && self.inner.expires_at.is_none_or(|t| Instant::now() < t)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.is_active() {
            Ok(())
        } else {
            Err(Error::SessionInvalid)
        }
    }

    pub(crate) fn require(&self, role: Role) -> Result<()> {
        self.check()?;
        if self.inner.role != role {
            return Err(Error::PermissionDenied {
                reason: match role {
                    Role::Admin => "only an admin may do this",
                    Role::CryptoUser => "only a crypto-user may use or manage keys",
                },
            });
        }
        Ok(())
    }
}

/// A bearer token naming a session, for network APIs: 32 random bytes as 64 hex characters.
/// Not `Clone`; zeroized on drop; `Debug` prints `SessionToken(..)`.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    pub(crate) fn generate() -> Result<(SessionToken, [u8; 32])> {
        let mut raw = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| Error::Crypto {
            operation: "random",
        })?;
        let mut text = Zeroizing::new([0u8; 64]);
        hex::encode_to_slice(&raw[..], &mut text[..])
            .map_err(|_| Error::Internal("session token encoding"))?;
        let text = std::str::from_utf8(&text[..])
            .map_err(|_| Error::Internal("session token encoding"))?;
        let token = SessionToken(Zeroizing::new(text.to_owned()));
        let digest = token.digest();
        Ok((token, digest))
    }

    /// Parses a token received from a client.
    pub fn from_string(s: String) -> SessionToken {
        SessionToken(Zeroizing::new(s))
    }

    /// The token's text, to send to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token: what the HSM keeps, so a memory dump of the session table does
    /// not yield usable tokens.
    pub(crate) fn digest(&self) -> [u8; 32] {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            format!("{:?}", Password::from("hunter22hunter22")),
            "Password(..)"
        );
        let (t, _) = SessionToken::generate().unwrap();
        assert_eq!(format!("{t:?}"), "SessionToken(..)");
        assert_eq!(t.expose().len(), 64);
    }
}
