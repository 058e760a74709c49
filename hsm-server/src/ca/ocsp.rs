//! The OCSP responder (RFC 6960): `POST /v1/ca/{name}/ocsp` with an `application/ocsp-request`
//! body. Each request is answered `good` (issued by this CA, not revoked), `revoked` (with
//! its time and reason) or `unknown` (another issuer, or a serial this CA never issued), in a
//! BasicOCSPResponse signed by the CA's own key in the HSM (RFC 6960 §4.2.2.2: the CA itself
//! is an authorized responder) with the CA's certificate in `certs`, responder id by key hash,
//! the request's nonce echoed (RFC 8954). A delegated responder key is not offered. Encoding: RustCrypto's `x509-ocsp` and `der`.

use aws_lc_rs::digest;
use der::asn1::{BitString, Null, OctetString};
use der::{Decode, Encode};
use keyward_hsm::{CaRecord, Error, Hsm, KeySpec, SignMechanism};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier};
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::Extension;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};
use x509_parser::prelude::FromDer;

/// Largest request body read, in bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long a response is good for (its `nextUpdate - thisUpdate`), in seconds.
pub const RESPONSE_VALIDITY_S: u64 = 3600;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// The signature mechanism and algorithm identifier (RFC 5758 §3.2, RFC 4055 §5, RFC 8410)
/// of a CA key.
fn algorithm(spec: KeySpec) -> Result<(SignMechanism, AlgorithmIdentifierOwned), Error> {
    let id = |oid: &str, null: bool| AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(oid),
        parameters: null.then(|| der::Any::from(Null)),
    };
    Ok(match spec {
        KeySpec::EcP256 => (SignMechanism::EcdsaSha256, id("1.2.840.10045.4.3.2", false)),
        KeySpec::EcP384 => (SignMechanism::EcdsaSha384, id("1.2.840.10045.4.3.3", false)),
        KeySpec::EcP521 => (SignMechanism::EcdsaSha512, id("1.2.840.10045.4.3.4", false)),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => (
            SignMechanism::RsaPkcs1Sha256,
            id("1.2.840.113549.1.1.11", true),
        ),
        KeySpec::Ed25519 => (SignMechanism::Ed25519, id("1.3.101.112", false)),
        other => {
            return Err(Error::InvalidInput {
                reason: format!("a {other} key cannot sign OCSP responses"),
            })
        }
    })
}

/// The CA certificate's name and key hashes under `hash` (RFC 6960 §4.1.1), if it is SHA-1 or
/// SHA-256.
fn issuer_hashes(ca: &CaRecord, hash: &ObjectIdentifier) -> Option<(Vec<u8>, Vec<u8>)> {
    let alg = if *hash == SHA1 {
        &digest::SHA1_FOR_LEGACY_USE_ONLY
    } else if *hash == SHA256 {
        &digest::SHA256
    } else {
        return None;
    };
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&ca.certificate).ok()?;
    let name = digest::digest(alg, cert.subject().as_raw());
    let key = digest::digest(alg, &cert.public_key().subject_public_key.data);
    Some((name.as_ref().to_vec(), key.as_ref().to_vec()))
}

fn gt(unix_s: u64) -> Result<OcspGeneralizedTime, Error> {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix_s))
        .map(OcspGeneralizedTime::from)
        .map_err(|_| Error::Internal("OCSP time out of range"))
}

fn crl_reason(code: u8) -> CrlReason {
    match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => CrlReason::Unspecified,
    }
}

/// The status of one request.
fn status(hsm: &Hsm, ca: &CaRecord, id: &CertId) -> Result<CertStatus, Error> {
    let Some((name_hash, key_hash)) = issuer_hashes(ca, &id.hash_algorithm.oid) else {
        return Ok(CertStatus::unknown());
    };
    if id.issuer_name_hash.as_bytes() != name_hash || id.issuer_key_hash.as_bytes() != key_hash {
        return Ok(CertStatus::unknown());
    }
    let serial = hex::encode(id.serial_number.as_bytes());
    match hsm.issued_certificate(&ca.name, &serial) {
        Ok(c) => Ok(match c.revocation {
            Some(r) => CertStatus::revoked(RevokedInfo {
                revocation_time: gt(r.revoked_unix_s)?,
                revocation_reason: Some(crl_reason(r.reason)),
            }),
            None => CertStatus::good(),
        }),
        Err(Error::CertificateNotFound { .. } | Error::InvalidInput { .. }) => {
            Ok(CertStatus::unknown())
        }
        Err(e) => Err(e),
    }
}

/// Answers an OCSP request (DER) for CA `ca_name`: a DER `OCSPResponse`. A request that does
/// not parse gets `malformedRequest`; a failure of the HSM `internalError` (both unsigned, as
/// RFC 6960 §2.3 has them).
pub fn respond(hsm: &Hsm, ca_name: &str, request: &[u8]) -> Vec<u8> {
    let Ok(req) = OcspRequest::from_der(request) else {
        return OcspResponse::malformed_request()
            .to_der()
            .unwrap_or_default();
    };
    // RFC 8954 §2.1: a nonce is 1 to 32 octets.
    if req.tbs_request.request_list.is_empty()
        || req
            .nonce()
            .is_some_and(|n| !(1..=32).contains(&n.0.as_bytes().len()))
    {
        return OcspResponse::malformed_request()
            .to_der()
            .unwrap_or_default();
    }
    match signed(hsm, ca_name, &req) {
        Ok(der) => der,
        Err(e) => {
            tracing::warn!(ca = ca_name, error = %e, "OCSP response failed");
            OcspResponse::internal_error().to_der().unwrap_or_default()
        }
    }
}

fn signed(hsm: &Hsm, ca_name: &str, req: &OcspRequest) -> Result<Vec<u8>, Error> {
    let ca = hsm.ca(ca_name)?;
    let session = hsm.ca_service_session(ca_name)?;
    let signer = hsm.signer(&session, ca.key)?;
    let (mechanism, signature_algorithm) = algorithm(signer.spec())?;
    let now = super::unix_s(super::now());
    let mut responses = Vec::with_capacity(req.tbs_request.request_list.len());
    for r in &req.tbs_request.request_list {
        responses.push(SingleResponse {
            cert_id: r.req_cert.clone(),
            cert_status: status(hsm, &ca, &r.req_cert)?,
            this_update: gt(now)?,
            next_update: Some(gt(now + RESPONSE_VALIDITY_S)?),
            single_extensions: None,
        });
    }
    let nonce: Option<Vec<Extension>> = req
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == NONCE))
        .map(|e| vec![e.clone()]);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&ca.certificate)
        .map_err(|_| Error::Internal("the CA certificate does not parse"))?;
    let key_hash = digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        &cert.public_key().subject_public_key.data,
    );
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(
            OctetString::new(key_hash.as_ref()).map_err(|_| Error::Internal("key hash"))?,
        ),
        produced_at: gt(now)?,
        responses,
        response_extensions: nonce,
    };
    let tbs_der = tbs
        .to_der()
        .map_err(|_| Error::Internal("encoding the OCSP response"))?;
    let signature = signer.sign(mechanism, &tbs_der)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm,
        signature: BitString::from_bytes(&signature)
            .map_err(|_| Error::Internal("encoding the OCSP signature"))?,
        // The signer's certificate, so a client finds the responder without being told.
        certs: Some(vec![x509_cert::Certificate::from_der(&ca.certificate)
            .map_err(|_| {
                Error::Internal("the CA certificate does not parse")
            })?]),
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(|_| Error::Internal("encoding the OCSP response"))
}
