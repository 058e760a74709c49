//! The `/v1/ca` routes. Creating, issuing, listing the register, revoking and publishing
//! CRLs need a session allowed to sign with the CA's key; a CA's certificate, its CRL and its
//! OCSP responder are public, as relying parties fetch them without an account (RFC 5280
//! §4.2.1.13, RFC 6960 §A.1).

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyward_api::{Ca, CreateCaRequest, CrlInfo, IssueRequest, IssuedCertificate, RevokeRequest};
use keyward_hsm::{CaRecord, CaSettings, CertRecord, KeyHandle, KeySpec, Role};

use super::{crl, ocsp, pem_chain, Profile, Request, Subject};
use crate::api::{ApiJson, ApiPath, AppState, Caller};
use crate::error::{ApiError, ApiResult};

/// RFC 3339 text of a Unix time in seconds.
fn rfc3339(unix_s: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix_s).unwrap_or(0))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn now_s() -> u64 {
    super::unix_s(super::now())
}

/// The wire view of a CA.
pub fn ca_view(ca: &CaRecord) -> Ca {
    Ca {
        name: ca.name.clone(),
        key: ca.key.0,
        owner: ca.owner.clone(),
        parent: ca.parent.clone(),
        subject: super::subject(&ca.certificate),
        not_after: super::not_after(&ca.certificate)
            .map(|t| rfc3339(super::unix_s(t)))
            .unwrap_or_default(),
        certificate_pem: pem_chain([&ca.certificate]),
        chain_pem: pem_chain(&ca.chain),
        allowed_dns: ca.settings.allowed_dns.clone(),
        allow_ip: ca.settings.allow_ip,
        max_validity_days: ca.settings.max_validity_days,
        crl_period_s: ca.settings.crl_period_s,
        crl_urls: ca.settings.crl_urls.clone(),
        ocsp_urls: ca.settings.ocsp_urls.clone(),
        crl_number: ca.crl_number,
        revoked: ca.revoked.len(),
    }
}

/// The wire view of a certificate in the register; `ca` gives the chain.
pub fn certificate_view(c: &CertRecord, ca: &CaRecord) -> IssuedCertificate {
    let status = match (&c.revocation, c.not_after_unix_s < now_s()) {
        (Some(_), _) => "revoked",
        (None, true) => "expired",
        (None, false) => "valid",
    };
    IssuedCertificate {
        ca: c.ca.clone(),
        serial: c.serial.clone(),
        profile: c.profile.clone(),
        subject: c.subject.clone(),
        dns: c.dns.clone(),
        ips: c.ips.clone(),
        not_before: rfc3339(c.not_before_unix_s),
        not_after: rfc3339(c.not_after_unix_s),
        status: status.into(),
        revoked_at: c.revocation.as_ref().map(|r| rfc3339(r.revoked_unix_s)),
        revocation_reason: c
            .revocation
            .as_ref()
            .map(|r| super::reason_name(r.reason).to_owned()),
        issued_by: c.issued_by.clone(),
        certificate_pem: pem_chain([&c.certificate]),
        chain_pem: pem_chain(std::iter::once(&ca.certificate).chain(&ca.chain)),
    }
}

/// Runs blocking HSM work (store writes, HSM signatures) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, keyward_hsm::Error> + Send + 'static,
) -> ApiResult<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| keyward_hsm::Error::Internal("CA task failed"))??)
}

#[utoipa::path(post, path = "/v1/ca", tag = "ca", security(("bearer" = [])), request_body = CreateCaRequest,
    responses((status = 200, body = Ca), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
/// Creates a root CA (no `parent`) or an intermediate CA: its key pair is generated in the
/// HSM (`ca-NAME`, signs, not extractable, owned by the caller) and its certificate made
/// (X.509 v3, RFC 5280: basicConstraints CA with the path length, keyCertSign and cRLSign,
/// name constraints when `permitted_dns` is set). Audited `ca.create`.
pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<CreateCaRequest>,
) -> ApiResult<Json<Ca>> {
    let spec: KeySpec = r
        .key_type
        .as_deref()
        .unwrap_or("ec-p384")
        .parse()
        .map_err(|e: keyward_hsm::Error| ApiError::BadRequest(e.to_string()))?;
    let new = super::NewCa {
        name: r.name,
        common_name: r.common_name,
        spec,
        validity_days: r
            .validity_days
            .unwrap_or(if r.parent.is_some() { 1825 } else { 3650 }),
        parent: r.parent,
        settings: CaSettings {
            allowed_dns: r
                .allowed_dns
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            allow_ip: r.allow_ip,
            max_validity_days: r.max_validity_days.unwrap_or(397),
            crl_period_s: r.crl_period_s.unwrap_or(86_400),
            path_len: r.path_len,
            permitted_dns: r
                .permitted_dns
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            crl_urls: r.crl_urls,
            ocsp_urls: r.ocsp_urls,
        },
    };
    super::pointers::check(&new.settings)?;
    if new.settings.crl_period_s < 60 || new.settings.crl_period_s > 366 * 86_400 {
        return Err(ApiError::BadRequest(
            "crl_period_s must be 60 to 31622400 seconds".into(),
        ));
    }
    let hsm = s.hsm.clone();
    let ca = blocking(move || super::create(&hsm, &c, &new)).await?;
    Ok(Json(ca_view(&ca)))
}

#[utoipa::path(get, path = "/v1/ca", tag = "ca", security(("bearer" = [])),
    responses((status = 200, body = Vec<Ca>), (status = 401, body = crate::error::ErrorBody)))]
/// The CAs the caller may use (sign with their keys); every CA for an admin.
pub async fn list(State(s): State<AppState>, Caller(c): Caller) -> ApiResult<Json<Vec<Ca>>> {
    let hsm = s.hsm.clone();
    let cas = blocking(move || {
        let all = hsm.cas()?;
        Ok(all
            .into_iter()
            .filter(|ca| c.role() == Role::Admin || hsm.may_use_ca(&c, ca).is_ok())
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(cas.iter().map(ca_view).collect()))
}

#[utoipa::path(get, path = "/v1/ca/{name}", tag = "ca", security(("bearer" = [])), params(("name" = String, Path, description = "CA name")),
    responses((status = 200, body = Ca), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// One CA the caller may use (an admin: any).
pub async fn get(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Ca>> {
    let hsm = s.hsm.clone();
    let ca = blocking(move || {
        let ca = hsm.ca(&name)?;
        if c.role() != Role::Admin {
            hsm.may_use_ca(&c, &ca)?;
        }
        Ok(ca)
    })
    .await?;
    Ok(Json(ca_view(&ca)))
}

fn pem_response(content_type: &'static str, body: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, content_type)], body).into_response()
}

#[utoipa::path(get, path = "/v1/ca/{name}/certificate", tag = "ca", params(("name" = String, Path, description = "CA name")),
    responses((status = 200, description = "The CA's certificate and those above it, PEM (`application/pem-certificate-chain`, RFC 8555 §9.1)", content_type = "application/pem-certificate-chain", body = String), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// The CA's certificate followed by those above it, PEM. Public (no session).
pub async fn certificate(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let hsm = s.hsm.clone();
    let ca = blocking(move || hsm.ca(&name)).await?;
    let pem = pem_chain(std::iter::once(&ca.certificate).chain(&ca.chain));
    Ok(pem_response(
        "application/pem-certificate-chain",
        pem.into_bytes(),
    ))
}

/// The request's IP addresses, parsed.
fn ips(texts: &[String]) -> ApiResult<Vec<IpAddr>> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|_| ApiError::BadRequest(format!("{t:?} is not an IP address")))
        })
        .collect()
}

#[utoipa::path(post, path = "/v1/ca/{name}/issue", tag = "ca", security(("bearer" = [])), params(("name" = String, Path, description = "CA name")), request_body = IssueRequest,
    responses((status = 200, body = IssuedCertificate), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
/// Issues a certificate under a profile, from a PKCS#10 request (its signature checked) or
/// for a private key in the HSM. Refused with `422 certificate_request_refused` when a name
/// is outside the CA's policy or name constraints, the key is weak (RSA under 2048 bits, an
/// EC curve other than P-256/384/521), the CSR's signature does not verify, or the validity
/// is beyond the profile's or the CA's limit. Audited `ca.issue`.
pub async fn issue(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(r): ApiJson<IssueRequest>,
) -> ApiResult<Json<IssuedCertificate>> {
    let profile = Profile::parse(r.profile.as_deref().unwrap_or("tls-server"))?;
    let subject = match (&r.csr_pem, r.key) {
        (Some(pem_text), None) => {
            let block = pem::parse(pem_text.as_bytes())
                .map_err(|_| ApiError::BadRequest("csr_pem is not PEM".into()))?;
            if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
                return Err(ApiError::BadRequest(format!(
                    "csr_pem holds a {:?} block, not a CERTIFICATE REQUEST",
                    block.tag()
                )));
            }
            Subject::Csr(block.into_contents())
        }
        (None, Some(k)) => Subject::Key(KeyHandle(k)),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of csr_pem and key".into(),
            ))
        }
    };
    let req = Request {
        profile,
        subject,
        dns: r.dns,
        ips: ips(&r.ips)?,
        common_name: r.common_name,
        validity_days: r.validity_days,
    };
    let hsm = s.hsm.clone();
    let (cert, ca) = blocking(move || {
        let cert = super::issue(&hsm, &c, &name, &req)?;
        Ok((cert, hsm.ca(&name)?))
    })
    .await?;
    Ok(Json(certificate_view(&cert, &ca)))
}

#[utoipa::path(get, path = "/v1/ca/{name}/certificates", tag = "ca", security(("bearer" = [])), params(("name" = String, Path, description = "CA name")),
    responses((status = 200, body = Vec<IssuedCertificate>), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// The CA's register: every certificate it issued, oldest first, with its status.
pub async fn certificates(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Vec<IssuedCertificate>>> {
    let hsm = s.hsm.clone();
    let (certs, ca) =
        blocking(move || Ok((hsm.issued_certificates(&c, &name)?, hsm.ca(&name)?))).await?;
    Ok(Json(
        certs.iter().map(|x| certificate_view(x, &ca)).collect(),
    ))
}

#[utoipa::path(post, path = "/v1/ca/{name}/certificates/{serial}/revoke", tag = "ca", security(("bearer" = [])), params(("name" = String, Path, description = "CA name"), ("serial" = String, Path, description = "Serial number, lowercase hex")), request_body = RevokeRequest,
    responses((status = 200, body = IssuedCertificate), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Revokes a certificate with an RFC 5280 §5.3.1 reason, then publishes a new CRL that lists
/// it (and OCSP answers `revoked` at once). Audited `ca.revoke` and `ca.crl`.
pub async fn revoke(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((name, serial)): ApiPath<(String, String)>,
    ApiJson(r): ApiJson<RevokeRequest>,
) -> ApiResult<Json<IssuedCertificate>> {
    let reason = super::reason_code(r.reason.as_deref().unwrap_or("unspecified"))?;
    let serial = serial.to_ascii_lowercase();
    let hsm = s.hsm.clone();
    let (cert, ca) = blocking(move || {
        hsm.revoke_certificate(&c, &name, &serial, reason)?;
        let ca = crl::publish(&hsm, &c, &name)?;
        Ok((hsm.issued_certificate(&name, &serial)?, ca))
    })
    .await?;
    Ok(Json(certificate_view(&cert, &ca)))
}

#[utoipa::path(get, path = "/v1/ca/{name}/crl", tag = "ca", params(("name" = String, Path, description = "CA name")),
    responses((status = 200, description = "The newest CRL, DER (`application/pkix-crl`, RFC 5280 §5, RFC 2585 §4.2)", content_type = "application/pkix-crl", body = Vec<u8>), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// The CA's newest CRL, DER; a new one is signed first when half of its period has passed.
/// Public (no session).
pub async fn crl_der(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let hsm = s.hsm.clone();
    let der = blocking(move || crl::current(&hsm, &name)).await?;
    Ok(pem_response("application/pkix-crl", der))
}

#[utoipa::path(post, path = "/v1/ca/{name}/crl", tag = "ca", security(("bearer" = [])), params(("name" = String, Path, description = "CA name")),
    responses((status = 200, body = CrlInfo), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Signs and publishes a new CRL now. Audited `ca.crl`.
pub async fn publish_crl(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<CrlInfo>> {
    let hsm = s.hsm.clone();
    let ca = blocking(move || crl::publish(&hsm, &c, &name)).await?;
    let der = ca.crl.clone().unwrap_or_default();
    Ok(Json(CrlInfo {
        crl_number: ca.crl_number,
        next_update: rfc3339(ca.crl_next_update_unix_s),
        revoked: ca
            .revoked
            .iter()
            .filter(|r| r.not_after_unix_s >= now_s())
            .count(),
        crl_pem: pem::encode(&pem::Pem::new("X509 CRL", der)),
    }))
}

#[utoipa::path(post, path = "/v1/ca/{name}/ocsp", tag = "ca", params(("name" = String, Path, description = "CA name")),
    request_body(content = Vec<u8>, content_type = "application/ocsp-request", description = "OCSPRequest, DER (RFC 6960 §4.1), at most 16384 bytes"),
    responses((status = 200, description = "OCSPResponse, DER (RFC 6960 §4.2), signed by the CA's key", content_type = "application/ocsp-response", body = Vec<u8>), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)))]
/// The CA's OCSP responder (RFC 6960, POST binding of §A.1). Public (no session). At most 8
/// certificates per request; a request without a nonce may get a response signed up to 300 s
/// before (with the current status: a revocation is answered at once).
pub async fn ocsp_post(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    // The route's body limit (and crate::body_limit) make an over-long body a rejection.
    let body = body.map_err(|_| ApiError::PayloadTooLarge)?;
    let (hsm, cache) = (s.hsm.clone(), s.ocsp.clone());
    let answer = blocking(move || ocsp::respond(&cache, &hsm, &name, &body)).await?;
    Ok(pem_response("application/ocsp-response", answer.der))
}

/// Base64 as RFC 6960 §A.1's GET binding carries it: the standard alphabet, padded or not.
const GET_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

#[utoipa::path(get, path = "/v1/ca/{name}/ocsp/{request}", tag = "ca", params(("name" = String, Path, description = "CA name"), ("request" = String, Path, description = "The DER OCSPRequest, base64 (standard alphabet), URL-encoded (RFC 6960 §A.1)")),
    responses((status = 200, description = "OCSPResponse, DER (RFC 6960 §4.2); `Cache-Control: max-age=N, public, no-transform, must-revalidate` (RFC 5019 §6.2) when it answers a request without a nonce, else `no-cache`", content_type = "application/ocsp-response", body = Vec<u8>), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)))]
/// The CA's OCSP responder, GET binding (RFC 6960 §A.1, which RFC 5019 §5 requires of
/// responders: Windows and other clients use it for small requests). Public (no session). As
/// the POST binding; a path that is not base64 gets `malformedRequest`. Answers to requests
/// without a nonce may be kept by HTTP caches for what is left of their 300 s.
pub async fn ocsp_get(
    State(s): State<AppState>,
    ApiPath((name, request)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    use base64::Engine as _;
    if request.len() > ocsp::MAX_REQUEST_BYTES.div_ceil(3) * 4 {
        return Err(ApiError::PayloadTooLarge);
    }
    let der = GET_BASE64.decode(request.as_bytes()).unwrap_or_default();
    let (hsm, cache) = (s.hsm.clone(), s.ocsp.clone());
    let answer = blocking(move || ocsp::respond(&cache, &hsm, &name, &der)).await?;
    let cache_control = match answer.max_age_s {
        Some(s) => format!("max-age={s}, public, no-transform, must-revalidate"),
        None => "no-cache".to_owned(),
    };
    Ok((
        [
            (CONTENT_TYPE, "application/ocsp-response".to_owned()),
            (CACHE_CONTROL, cache_control),
        ],
        answer.der,
    )
        .into_response())
}
