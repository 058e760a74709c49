//! The seal of a node (`/v1/sys/…`): status, unseal, seal, rekey. Each node of a cluster is
//! unsealed on its own: give these a client of one node (one URL).

use http::Method;
use keyward_api::{RekeyRequest, RekeyResponse, RotationStatus, SealStatus, UnsealRequest};

use crate::error::Result;
use crate::transport::{Call, Retry};
use crate::Client;

impl Client {
    /// `GET /v1/sys/seal-status` (no login): sealed or not, the seal's type, shares and
    /// threshold, and the unseal progress.
    pub async fn seal_status(&self) -> Result<SealStatus> {
        let mut c = Call::new(Method::GET, "/v1/sys/seal-status".into(), Retry::Safe);
        c.auth = false;
        self.run(c).await
    }

    /// `POST /v1/sys/unseal` (no login; the share or passphrase is the credential): one share,
    /// the passphrase, or a reset. Errors: `400 unseal_key_rejected` for a share that is not
    /// one of this seal's, a repeated share or a wrong passphrase (nothing counted).
    pub async fn unseal(&self, request: &UnsealRequest) -> Result<SealStatus> {
        let mut c =
            Call::new(Method::POST, "/v1/sys/unseal".into(), Retry::Unsafe).json(request)?;
        c.auth = false;
        self.run(c).await
    }

    /// `POST /v1/sys/seal` (admin): the node drops every key and answers `503 sealed`.
    pub async fn seal(&self) -> Result<SealStatus> {
        self.run(Call::new(
            Method::POST,
            "/v1/sys/seal".into(),
            Retry::Unsafe,
        ))
        .await
    }

    /// `POST /v1/sys/rekey` (admin, with the current shares or passphrase): a new master key
    /// and seal; the answer holds the new shares, once.
    pub async fn rekey(&self, request: &RekeyRequest) -> Result<RekeyResponse> {
        let c = Call::new(Method::POST, "/v1/sys/rekey".into(), Retry::Unsafe).json(request)?;
        self.run(c).await
    }

    /// `POST /v1/sys/backup` (admin): a backup archive of the whole store, as bytes (see
    /// `keyward_hsm::backup` for its format; it restores only with the same seal).
    pub async fn backup(&self) -> Result<Vec<u8>> {
        let c = Call::new(Method::POST, "/v1/sys/backup".into(), Retry::Unsafe);
        let (_, body) = self.inner_execute(&c).await?;
        Ok(body.to_vec())
    }

    /// `POST /v1/sys/rotate` (admin): starts a data-key rotation; the node rewrites the
    /// records in the background (see [`Client::rotation`]).
    pub async fn rotate(&self) -> Result<RotationStatus> {
        self.run(Call::new(
            Method::POST,
            "/v1/sys/rotate".into(),
            Retry::Unsafe,
        ))
        .await
    }

    /// `GET /v1/sys/rotation` (admin): where the data-key rotation stands.
    pub async fn rotation(&self) -> Result<RotationStatus> {
        self.run(Call::new(
            Method::GET,
            "/v1/sys/rotation".into(),
            Retry::Safe,
        ))
        .await
    }
}
