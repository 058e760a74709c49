//! Bytes on the wire: standard padded base64 text (RFC 4648 §4), decoded where it is used.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Bytes as they travel: standard padded base64 text. The text is kept as received and decoded
/// with [`Base64::decode`] where it is used, so a bad field is refused as that field (or that
/// batch item), never as the whole request body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Base64(String);

impl Base64 {
    /// `bytes` as standard padded base64.
    pub fn encode(bytes: &[u8]) -> Self {
        Base64(STANDARD.encode(bytes))
    }

    /// The bytes.
    ///
    /// # Errors
    /// [`InvalidBase64`] when the text is not standard padded base64.
    pub fn decode(&self) -> Result<Vec<u8>, InvalidBase64> {
        STANDARD.decode(&self.0).map_err(InvalidBase64)
    }

    /// The base64 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({:?})", self.0)
    }
}

/// Text that is not standard padded base64; `Display` says where it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidBase64(base64::DecodeError);

impl fmt::Display for InvalidBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InvalidBase64 {}

/// Secret bytes (a plaintext, random bytes) as standard padded base64 text: not `Clone`,
/// zeroized on drop (the text and what [`SecretBase64::decode`] returns), `Debug` redacted.
pub struct SecretBase64(Zeroizing<String>);

impl SecretBase64 {
    /// `bytes` as standard padded base64, written into a buffer allocated once.
    pub fn encode(bytes: &[u8]) -> Self {
        let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
        let mut text = Zeroizing::new(String::with_capacity(len));
        STANDARD.encode_string(bytes, &mut text);
        SecretBase64(text)
    }

    /// The bytes, in a buffer allocated once and zeroized on drop.
    ///
    /// # Errors
    /// [`InvalidBase64`] when the text is not standard padded base64.
    pub fn decode(&self) -> Result<Zeroizing<Vec<u8>>, InvalidBase64> {
        let mut out = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
            self.0.len(),
        )));
        STANDARD
            .decode_vec(self.0.as_bytes(), &mut out)
            .map_err(InvalidBase64)?;
        Ok(out)
    }

    /// The base64 text. Never log or print it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBase64(<redacted>)")
    }
}

impl Serialize for SecretBase64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretBase64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretBase64(Zeroizing::new(s)))
    }
}
