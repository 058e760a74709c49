//! Secrets of the wire that redact themselves and are wiped from memory when dropped.
//!
//! They serialize as their plain text (the API needs it); keep them out of anything that is
//! logged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A password: not `Clone`, redacted in `Debug`, zeroized on drop.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Self {
        Password(Zeroizing::new(password))
    }

    /// The password text, to send it or check it. Never log or print it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The password text, moved out (no copy is left behind in this value).
    pub fn into_secret_string(mut self) -> String {
        std::mem::take(&mut *self.0)
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

impl Serialize for Password {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Password::new)
    }
}

/// A bearer token of one node: not `Clone`, redacted in `Debug`, zeroized on drop.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// Wraps a bearer token, e.g. one saved by an earlier process.
    pub fn new(token: String) -> Self {
        SessionToken(Zeroizing::new(token))
    }

    /// The token text, to send it or store it somewhere private (a 0600 file). Never log or
    /// print it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl Serialize for SessionToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SessionToken::new)
    }
}
