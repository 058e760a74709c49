//! The issuing CAs (`/v1/ca/…`): create root and intermediate CAs whose keys stay in the HSM,
//! issue certificates from CSRs or for HSM keys, list the register, revoke, publish CRLs.

use http::Method;
use keyward_api::{Ca, CreateCaRequest, CrlInfo, IssueRequest, IssuedCertificate, RevokeRequest};

use crate::error::Result;
use crate::transport::{Call, Retry};
use crate::Client;

impl Client {
    /// `POST /v1/ca`: a new root (no `parent`) or intermediate CA, its key generated in the
    /// HSM and owned by the caller. Errors: `409 ca_exists`, `422
    /// certificate_request_refused` (outside the parent's constraints), `404 ca_not_found`
    /// (parent).
    pub async fn create_ca(&self, request: &CreateCaRequest) -> Result<Ca> {
        let c = Call::new(Method::POST, "/v1/ca".into(), Retry::Unsafe).json(request)?;
        self.run(c).await
    }

    /// `GET /v1/ca`: every CA.
    pub async fn cas(&self) -> Result<Vec<Ca>> {
        self.run(Call::new(Method::GET, "/v1/ca".into(), Retry::Safe))
            .await
    }

    /// `GET /v1/ca/{name}`: one CA.
    pub async fn ca(&self, name: &str) -> Result<Ca> {
        self.run(Call::new(
            Method::GET,
            format!("/v1/ca/{name}"),
            Retry::Safe,
        ))
        .await
    }

    /// `POST /v1/ca/{name}/issue`: a certificate from a CSR or for an HSM key under a
    /// profile. Errors: `422 certificate_request_refused` naming what the profile or the CA
    /// refused.
    pub async fn issue_certificate(
        &self,
        ca: &str,
        request: &IssueRequest,
    ) -> Result<IssuedCertificate> {
        let c =
            Call::new(Method::POST, format!("/v1/ca/{ca}/issue"), Retry::Unsafe).json(request)?;
        self.run(c).await
    }

    /// `GET /v1/ca/{name}/certificates`: the CA's register, oldest first.
    pub async fn issued_certificates(&self, ca: &str) -> Result<Vec<IssuedCertificate>> {
        self.run(Call::new(
            Method::GET,
            format!("/v1/ca/{ca}/certificates"),
            Retry::Safe,
        ))
        .await
    }

    /// `POST /v1/ca/{name}/certificates/{serial}/revoke`: revokes (RFC 5280 reason name,
    /// default `unspecified`) and publishes a new CRL.
    pub async fn revoke_certificate(
        &self,
        ca: &str,
        serial: &str,
        reason: Option<&str>,
    ) -> Result<IssuedCertificate> {
        let c = Call::new(
            Method::POST,
            format!("/v1/ca/{ca}/certificates/{serial}/revoke"),
            Retry::Unsafe,
        )
        .json(&RevokeRequest {
            reason: reason.map(str::to_owned),
        })?;
        self.run(c).await
    }

    /// `POST /v1/ca/{name}/crl`: signs and publishes a new CRL now.
    pub async fn publish_crl(&self, ca: &str) -> Result<CrlInfo> {
        self.run(Call::new(
            Method::POST,
            format!("/v1/ca/{ca}/crl"),
            Retry::Unsafe,
        ))
        .await
    }

    /// `GET /v1/ca/{name}/crl` (no login): the newest CRL, DER.
    pub async fn crl(&self, ca: &str) -> Result<Vec<u8>> {
        let mut c = Call::new(Method::GET, format!("/v1/ca/{ca}/crl"), Retry::Safe);
        c.auth = false;
        let (_, body) = self.inner_execute(&c).await?;
        Ok(body.to_vec())
    }

    /// `GET /v1/ca/{name}/certificate` (no login): the CA's certificate and those above it,
    /// PEM.
    pub async fn ca_certificate_chain(&self, ca: &str) -> Result<String> {
        let mut c = Call::new(Method::GET, format!("/v1/ca/{ca}/certificate"), Retry::Safe);
        c.auth = false;
        let (_, body) = self.inner_execute(&c).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}
