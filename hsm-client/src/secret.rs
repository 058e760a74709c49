//! Secrets that redact themselves and are wiped from memory when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A password: not `Clone`, redacted in `Debug`, zeroized on drop.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Self {
        Password(Zeroizing::new(password))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s.to_owned())
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A bearer token of one node: not `Clone`, redacted in `Debug`, zeroized on drop.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// Wraps a bearer token, e.g. one saved by an earlier process (see
    /// [`crate::Client::set_session_token`]).
    pub fn new(token: String) -> Self {
        SessionToken(Zeroizing::new(token))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The token text, to store it somewhere private (a 0600 file). Never log or print it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// Stored login credentials, used to log in lazily on each node.
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: Password,
    pub(crate) ttl_seconds: Option<u64>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}
