//! The OCSP responder (RFC 6960): `POST /v1/ca/{name}/ocsp` with an `application/ocsp-request`
//! body. Each request is answered `good` (issued by this CA, not revoked), `revoked` (with
//! its time and reason) or `unknown` (another issuer, or a serial this CA never issued), in a
//! BasicOCSPResponse signed by the CA's own key in the HSM (RFC 6960 §4.2.2.2: the CA itself
//! is an authorized responder) with the CA's certificate in `certs`, responder id by key hash,
//! the request's nonce echoed (RFC 8954). A delegated responder key is not offered. Encoding:
//! RustCrypto's `x509-ocsp` and `der`.
//!
//! The responder is public, so its cost per request is bounded: a request asks about at most
//! [`MAX_CERTS_PER_REQUEST`] certificates, and a request without a nonce (RFC 5019 §2.1.1: the
//! lightweight profile clients and CDNs use) is answered from a [`Cache`] of signed responses
//! for [`REUSE_S`] seconds, keyed by the CA, the certificates asked about and their current
//! status, so a revocation is answered `revoked` at once. A request with a nonce is signed
//! afresh each time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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
/// Most certificates one request may ask about (RFC 5019 §2.1.1 allows one; `openssl ocsp`
/// sends one per `-cert`); more is a `malformedRequest`.
pub const MAX_CERTS_PER_REQUEST: usize = 8;
/// How long a signed response to a request without a nonce is served again, in seconds (it
/// stays valid for [`RESPONSE_VALIDITY_S`] from its `thisUpdate`).
pub const REUSE_S: u64 = 300;
/// Most responses the [`Cache`] holds; when full, stale ones are dropped, then all.
pub const CACHE_ENTRIES: usize = 4096;
/// Most bytes of responses the [`Cache`] holds (each carries the CA's certificate).
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// An `OCSPResponse` to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The DER `OCSPResponse`.
    pub der: Vec<u8>,
    /// How long an HTTP cache may keep it, in seconds (RFC 5019 §6.2): what is left of its
    /// [`REUSE_S`] for a signed answer to a request without a nonce; `None` for one signed for
    /// a nonce and for unsigned errors.
    pub max_age_s: Option<u64>,
}

/// A signed response: its `producedAt` (seconds since the Unix epoch) and its DER.
type Signed = (u64, Vec<u8>);

/// Signed responses to requests without a nonce, by a SHA-256 of the CA's certificate and each
/// certificate asked about with its status.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<[u8; 32], Signed>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.len())
            .finish()
    }
}

impl Cache {
    fn get(&self, key: &[u8; 32], now: u64) -> Option<Signed> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(at, _)| now.saturating_sub(*at) < REUSE_S)
            .cloned()
    }

    fn put(&self, key: [u8; 32], now: u64, der: Vec<u8>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let full = |e: &HashMap<[u8; 32], Signed>| {
            e.len() >= CACHE_ENTRIES
                || e.values().map(|(_, d)| d.len()).sum::<usize>() + der.len() > CACHE_BYTES
        };
        if full(&entries) {
            entries.retain(|_, (at, _)| now.saturating_sub(*at) < REUSE_S);
            if full(&entries) {
                entries.clear();
            }
        }
        if der.len() <= CACHE_BYTES {
            entries.insert(key, (now, der));
        }
    }

    /// How many responses it holds.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a response depends on: the CA (its certificate, so another HSM's CA of the same name
/// differs), each certificate asked about and its status now.
fn cache_key(ca: &CaRecord, asked: &[(CertId, CertStatus)]) -> Result<[u8; 32], Error> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&ca.certificate);
    for (id, status) in asked {
        let id = id
            .to_der()
            .map_err(|_| Error::Internal("encoding a CertID"))?;
        let status = status
            .to_der()
            .map_err(|_| Error::Internal("encoding a status"))?;
        ctx.update(&id);
        ctx.update(&status);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    Ok(key)
}

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
/// not parse, asks about no certificate or more than [`MAX_CERTS_PER_REQUEST`], or carries a
/// nonce that is not 1 to 32 bytes gets `malformedRequest`; a failure of the HSM
/// `internalError` (both unsigned, as RFC 6960 §2.3 has them).
///
/// # Errors
/// [`Error::CaNotFound`] when there is no such CA (the API answers 404).
pub fn respond(cache: &Cache, hsm: &Hsm, ca_name: &str, request: &[u8]) -> Result<Answer, Error> {
    let ca = hsm.ca(ca_name)?;
    let malformed = || Answer {
        der: OcspResponse::malformed_request()
            .to_der()
            .unwrap_or_default(),
        max_age_s: None,
    };
    let Ok(req) = OcspRequest::from_der(request) else {
        return Ok(malformed());
    };
    let asked = &req.tbs_request.request_list;
    // RFC 8954 §2.1: a nonce is 1 to 32 octets.
    if asked.is_empty()
        || asked.len() > MAX_CERTS_PER_REQUEST
        || req
            .nonce()
            .is_some_and(|n| !(1..=32).contains(&n.0.as_bytes().len()))
    {
        return Ok(malformed());
    }
    match answer(cache, hsm, &ca, &req) {
        Ok(answer) => Ok(answer),
        Err(e) => {
            tracing::warn!(ca = ca_name, error = %e, "OCSP response failed");
            Ok(Answer {
                der: OcspResponse::internal_error().to_der().unwrap_or_default(),
                max_age_s: None,
            })
        }
    }
}

/// The response to a well-formed request: from the cache when it has no nonce and the same
/// answer was signed less than [`REUSE_S`] seconds ago, else signed now.
fn answer(cache: &Cache, hsm: &Hsm, ca: &CaRecord, req: &OcspRequest) -> Result<Answer, Error> {
    let asked = req
        .tbs_request
        .request_list
        .iter()
        .map(|r| Ok((r.req_cert.clone(), status(hsm, ca, &r.req_cert)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let nonce: Option<Vec<Extension>> = req
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == NONCE))
        .map(|e| vec![e.clone()]);
    let now = super::unix_s(super::now());
    if nonce.is_some() {
        return Ok(Answer {
            der: signed(hsm, ca, asked, nonce, now)?,
            max_age_s: None,
        });
    }
    let key = cache_key(ca, &asked)?;
    if let Some((at, der)) = cache.get(&key, now) {
        return Ok(Answer {
            der,
            max_age_s: Some(REUSE_S.saturating_sub(now.saturating_sub(at))),
        });
    }
    let der = signed(hsm, ca, asked, None, now)?;
    cache.put(key, now, der.clone());
    Ok(Answer {
        der,
        max_age_s: Some(REUSE_S),
    })
}

fn signed(
    hsm: &Hsm,
    ca: &CaRecord,
    asked: Vec<(CertId, CertStatus)>,
    nonce: Option<Vec<Extension>>,
    now: u64,
) -> Result<Vec<u8>, Error> {
    let session = hsm.ca_service_session(&ca.name)?;
    let signer = hsm.signer(&session, ca.key)?;
    let (mechanism, signature_algorithm) = algorithm(signer.spec())?;
    let responses = asked
        .into_iter()
        .map(|(cert_id, cert_status)| {
            Ok(SingleResponse {
                cert_id,
                cert_status,
                this_update: gt(now)?,
                next_update: Some(gt(now + RESPONSE_VALIDITY_S)?),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
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
