//! The OCSP responder without sockets: whatever bytes arrive, it answers with a DER
//! `OCSPResponse` and never panics; nonce-less answers are reused and nonce'd ones are not;
//! the number of certificates per request is bounded.

use der::asn1::OctetString;
use der::{Decode, Encode};
use keyward_hsm::test_util::TestHsm;
use keyward_hsm::{CaSettings, KeySpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{OcspRequest, OcspResponse, OcspResponseStatus, Request, TbsRequest, Version};
use x509_parser::prelude::FromDer;

use super::ocsp::{respond, Cache, MAX_CERTS_PER_REQUEST};
use super::NewCa;

const CA: &str = "issuing";

fn hsm_with_ca() -> TestHsm {
    let t = TestHsm::new();
    let admin = t.admin();
    let user = t.crypto_user(&admin, "ca-owner");
    super::create(
        &t,
        &user,
        &NewCa {
            name: CA.into(),
            common_name: "Test CA".into(),
            spec: KeySpec::EcP256,
            validity_days: 30,
            parent: None,
            settings: CaSettings {
                allowed_dns: Vec::new(),
                allow_ip: false,
                max_validity_days: 30,
                crl_period_s: 86_400,
                path_len: Some(0),
                permitted_dns: Vec::new(),
                crl_urls: Vec::new(),
                ocsp_urls: Vec::new(),
            },
        },
    )
    .unwrap();
    t
}

/// A request about `serials` under the CA's SHA-256 CertID, with a nonce if given.
fn request(t: &TestHsm, serials: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
    let ca = t.ca(CA).unwrap();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&ca.certificate)
        .unwrap_or_else(|_| {
            panic!("the CA certificate parses");
        });
    let sha256 = |b: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let name_hash = sha256(cert.subject().as_raw());
    let key_hash = sha256(&cert.public_key().subject_public_key.data);
    let request_list = serials
        .iter()
        .map(|s| Request {
            req_cert: x509_ocsp::CertId {
                hash_algorithm: spki::AlgorithmIdentifierOwned {
                    oid: spki::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
                    parameters: None,
                },
                issuer_name_hash: OctetString::new(name_hash.as_ref()).unwrap(),
                issuer_key_hash: OctetString::new(key_hash.as_ref()).unwrap(),
                serial_number: SerialNumber::new(&[*s]).unwrap(),
            },
            single_request_extensions: None,
        })
        .collect();
    let request_extensions = nonce.map(|n| {
        vec![Extension {
            extn_id: spki::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list,
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn status(der: &[u8]) -> OcspResponseStatus {
    OcspResponse::from_der(der)
        .expect("an OCSPResponse")
        .response_status
}

#[test]
fn nonce_less_answers_are_reused_and_nonced_ones_are_signed_each_time() {
    let t = hsm_with_ca();
    let cache = Cache::default();
    let plain = request(&t, &[1], None);
    let fresh = respond(&cache, &t, CA, &plain).unwrap();
    let first = fresh.der.clone();
    assert_eq!(status(&first), OcspResponseStatus::Successful);
    assert_eq!(fresh.max_age_s, Some(super::ocsp::REUSE_S));
    let reused = respond(&cache, &t, CA, &plain).unwrap();
    assert_eq!(reused.der, first);
    assert!(reused.max_age_s.is_some_and(|s| s <= super::ocsp::REUSE_S));
    assert_eq!(cache.len(), 1);
    // Another serial is another answer.
    let other = respond(&cache, &t, CA, &request(&t, &[2], None))
        .unwrap()
        .der;
    assert_ne!(other, first);
    assert_eq!(cache.len(), 2);
    // A nonce: signed for the request (ECDSA signatures differ), never cached.
    let nonced = request(&t, &[1], Some(b"0123456789abcdef"));
    assert_eq!(respond(&cache, &t, CA, &nonced).unwrap().max_age_s, None);
    let a = respond(&cache, &t, CA, &nonced).unwrap().der;
    let b = respond(&cache, &t, CA, &nonced).unwrap().der;
    assert_eq!(status(&a), OcspResponseStatus::Successful);
    assert_ne!(a, b);
    assert_eq!(cache.len(), 2);
}

#[test]
fn at_most_eight_certificates_per_request_and_an_unknown_ca_is_an_error() {
    let t = hsm_with_ca();
    let cache = Cache::default();
    let serials: Vec<u8> = (1..=u8::try_from(MAX_CERTS_PER_REQUEST + 1).unwrap()).collect();
    let ok = respond(
        &cache,
        &t,
        CA,
        &request(&t, &serials[..MAX_CERTS_PER_REQUEST], None),
    );
    assert_eq!(status(&ok.unwrap().der), OcspResponseStatus::Successful);
    let too_many = respond(&cache, &t, CA, &request(&t, &serials, None))
        .unwrap()
        .der;
    assert_eq!(status(&too_many), OcspResponseStatus::MalformedRequest);
    let empty = respond(&cache, &t, CA, &request(&t, &[], None))
        .unwrap()
        .der;
    assert_eq!(status(&empty), OcspResponseStatus::MalformedRequest);
    let long_nonce = request(&t, &[1], Some(&[7; 33]));
    assert_eq!(
        status(&respond(&cache, &t, CA, &long_nonce).unwrap().der),
        OcspResponseStatus::MalformedRequest
    );
    assert!(matches!(
        respond(&cache, &t, "nope", &request(&t, &[1], None)),
        Err(keyward_hsm::Error::CaNotFound { .. })
    ));
}

/// Any bytes, and any change to a valid request (a byte replaced, the end cut off), get a
/// well-formed OCSPResponse: never a panic, never an error.
#[test]
fn any_request_gets_an_ocsp_response() {
    let t = hsm_with_ca();
    let cache = Cache::default();
    let answer = |req: &[u8]| {
        let der = respond(&cache, &t, CA, req).expect("an answer").der;
        OcspResponse::from_der(&der).expect("a DER OCSPResponse");
    };
    let nonced = request(&t, &[1, 2], Some(b"nonce"));
    let plain = request(&t, &[3], None);
    let inputs = (
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<prop::sample::Index>(),
    );
    TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    })
    .run(&inputs, |(junk, at, byte, cut)| {
        answer(&junk);
        let mut changed = nonced.clone();
        changed[at.index(nonced.len())] = byte;
        answer(&changed);
        answer(&plain[..cut.index(plain.len())]);
        Ok(())
    })
    .unwrap();
}
