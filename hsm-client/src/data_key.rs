//! Data keys of envelope encryption: [`Client::generate_data_key`] (`POST
//! /v1/crypto/data-key`) and [`Client::unwrap_data_key`] (`POST /v1/crypto/data-key/unwrap`).
//! [`Client::encrypt_stream`](crate::Client::encrypt_stream) builds on them.

use http::Method;
use keyward_api::{DataKeyRequest, DataKeyUnwrapRequest, Plaintext};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::transport::{Call, Retry};

/// A data key from the HSM: its value (zeroized on drop, redacted in `Debug`), the value
/// wrapped under the KEK, and the KEK version that wrapped it.
pub struct DataKey {
    /// The data key. Encrypt with it and drop it; never store or log it.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The data key wrapped under the KEK: store it with the content.
    pub wrapped: Vec<u8>,
    /// The KEK version that wrapped it: store it too.
    pub key_version: u32,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("wrapped_bytes", &self.wrapped.len())
            .field("key_version", &self.key_version)
            .finish()
    }
}

fn decode_secret(field: &str, b: &keyward_api::SecretBase64) -> Result<Zeroizing<Vec<u8>>> {
    b.decode()
        .map_err(|e| Error::Decode(format!("{field} is not base64: {e}")))
}

impl Client {
    /// A fresh data key of `bytes` bytes (16, 24 or 32) made in the HSM and wrapped under the
    /// KEK `kek` (which needs `wrap`) with `mechanism`: `aes-kwp` (RFC 5649, an AES KEK) or
    /// `rsa-oaep-sha256` (RFC 8017 §7.1, an RSA public key).
    pub async fn generate_data_key(
        &self,
        kek: u64,
        mechanism: &str,
        bytes: u32,
    ) -> Result<DataKey> {
        let c = Call::new(Method::POST, "/v1/crypto/data-key".into(), Retry::Safe).json(
            &DataKeyRequest {
                key: kek,
                mechanism: mechanism.to_owned(),
                bytes,
                key_version: None,
            },
        )?;
        let r: keyward_api::DataKey = self.run(c).await?;
        Ok(DataKey {
            plaintext: decode_secret("plaintext", &r.plaintext)?,
            wrapped: r
                .wrapped
                .decode()
                .map_err(|e| Error::Decode(format!("wrapped is not base64: {e}")))?,
            key_version: r.key_version,
        })
    }

    /// The value of a data key wrapped by [`generate_data_key`](Self::generate_data_key),
    /// unwrapped by version `key_version` of the KEK `kek` (which needs `unwrap`; for
    /// `rsa-oaep-sha256` the private key).
    pub async fn unwrap_data_key(
        &self,
        kek: u64,
        mechanism: &str,
        wrapped: &[u8],
        key_version: u32,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let c = Call::new(
            Method::POST,
            "/v1/crypto/data-key/unwrap".into(),
            Retry::Safe,
        )
        .json(&DataKeyUnwrapRequest {
            key: kek,
            mechanism: mechanism.to_owned(),
            wrapped: keyward_api::Base64::encode(wrapped),
            key_version,
        })?;
        let r: Plaintext = self.run(c).await?;
        decode_secret("plaintext", &r.plaintext)
    }
}
