//! Property tests: random inputs to every public operation of [`Hsm`].
//!
//! Each test builds one HSM holding a key of every [`KeySpec`] (RSA keys are generated once
//! per test binary and imported by `unwrap_key` under an ECDH-derived AES key whose value the
//! test computes itself), then runs a modest number of random cases against it. For every
//! call the tests check:
//!
//! - no panic;
//! - the outcome (`Ok`, or the error's [`Error::code`]) is the one the documented rules
//!   predict; an error has a non-empty code and message;
//! - a refused call changes no key: `list_keys` of the owner and of an admin are equal before
//!   and after (the audit trail grows by design and is not compared);
//! - successful results are right: signatures verify (also outside the HSM, with aws-lc-rs),
//!   ciphertexts decrypt to the plaintext, wrapped keys unwrap to the same key check value,
//!   derived keys equal the value computed outside;
//! - at the end, the store reopens to the same token keys.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement;
use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptingKey, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{self as lc_rsa, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use keyward_hsm::{
    AttributeName, AttributeValue, Attributes, EcdhParams, EncryptMechanism, Error, Hsm, KeyClass,
    KeyFilter, KeyHandle, KeyInfo, KeyPage, KeySpec, KeyTemplate, MasterKey, Password, Role,
    Session, SessionToken, SignInput, SignMechanism, SignatureEncoding, UnwrapTarget,
    WrapMechanism, GENERIC_SECRET_MAX_BYTES, MAX_DATA_BYTES, MAX_FAILED_LOGINS, MAX_PAGE_SIZE,
    MAX_RANDOM_BYTES, MAX_SESSION_TTL, PROXY_USER, RESERVED_LABEL_PREFIXES,
};
use keyward_keystore::SqliteBackend;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestCaseResult, TestRunner};

type R<T> = std::result::Result<T, Error>;
type EM = EncryptMechanism;
type SM = SignMechanism;
type WM = WrapMechanism;

const ADMIN_PW: &str = "admin-password-1";
const ALICE_PW: &str = "alice-password-1";
const SALT: &[u8] = b"keyward proptest salt";
const CASES: u32 = 64;

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy`; the fixture is built once, outside, by the
/// caller. No regression files are written.
fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: Debug,
{
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
    print_outcomes();
}

/// Outcomes seen per test and call, printed with `KEYWARD_PROPTEST_STATS=1 cargo test ...
/// -- --nocapture`, to see that the random inputs reach both the successes and the refusals.
static OUTCOMES: Mutex<BTreeMap<(String, String, &'static str), usize>> =
    Mutex::new(BTreeMap::new());

fn count_outcome(what: &str, outcome: &'static str) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let mut m = OUTCOMES.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry((test, what.to_owned(), outcome)).or_default() += 1;
}

fn print_outcomes() {
    if std::env::var_os("KEYWARD_PROPTEST_STATS").is_none() {
        return;
    }
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let m = OUTCOMES.lock().unwrap_or_else(|e| e.into_inner());
    let lines: Vec<String> = m
        .iter()
        .filter(|((t, _, _), _)| *t == test)
        .map(|((_, what, outcome), n)| format!("  {what}: {outcome} x{n}"))
        .collect();
    println!("{test}:\n{}", lines.join("\n"));
}

/// What the rules predict for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Ok,
    Err(&'static str),
    /// Either outcome is allowed (e.g. a tampered SPKI that may still parse).
    OkOr(&'static str),
    /// One of two errors (e.g. a tampered SPKI under a taken label: refused as bad input, or,
    /// if it still parses, for the label).
    ErrEither(&'static str, &'static str),
}

fn want(f: impl FnOnce() -> Result<Want, &'static str>) -> Want {
    f().unwrap_or_else(Want::Err)
}

fn check<T>(what: &str, got: &R<T>, want: Want) -> TestCaseResult {
    count_outcome(
        what.split(' ').next().unwrap_or(what),
        got.as_ref().map_or_else(|e| e.code().as_str(), |_| "ok"),
    );
    if let Err(e) = got {
        prop_assert!(
            !e.code().as_str().is_empty(),
            "{what}: empty error code for {e:?}"
        );
        prop_assert!(!e.to_string().is_empty(), "{what}: empty message for {e:?}");
    }
    match (got, want) {
        (Ok(_), Want::Ok | Want::OkOr(_)) => Ok(()),
        (Err(e), Want::Err(c) | Want::OkOr(c)) if e.code() == c => Ok(()),
        (Err(e), Want::ErrEither(a, b)) if e.code() == a || e.code() == b => Ok(()),
        (Ok(_), Want::Err(c) | Want::ErrEither(c, _)) => Err(TestCaseError::fail(format!(
            "{what}: expected error {c}, got Ok"
        ))),
        (Err(e), w) => Err(TestCaseError::fail(format!(
            "{what}: expected {w:?}, got error {} ({e})",
            e.code()
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Outside-the-HSM crypto (aws-lc-rs): the reference the HSM's results are checked against
// ---------------------------------------------------------------------------------------------

/// RSA PKCS#8 keys, generated once per test binary (RSA key generation is slow).
fn rsa_keys() -> &'static [(KeySpec, Vec<u8>)] {
    static KEYS: OnceLock<Vec<(KeySpec, Vec<u8>)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let sizes = [
            (KeySpec::Rsa2048, lc_rsa::KeySize::Rsa2048),
            (KeySpec::Rsa3072, lc_rsa::KeySize::Rsa3072),
            (KeySpec::Rsa4096, lc_rsa::KeySize::Rsa4096),
        ];
        std::thread::scope(|s| {
            let jobs: Vec<_> = sizes
                .iter()
                .map(|&(spec, size)| {
                    s.spawn(move || {
                        let pair = lc_rsa::KeyPair::generate(size).expect("rsa keygen");
                        (spec, pair.as_der().expect("pkcs8").as_ref().to_vec())
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.join().expect("keygen"))
                .collect()
        })
    })
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_sha256(secret: &[u8], salt: &[u8], info: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(secret)
        .expand(&[info], Len(len))
        .ok()?
        .fill(&mut out)
        .ok()?;
    Some(out)
}

fn ecdh(
    mine: &agreement::PrivateKey,
    alg: &'static agreement::Algorithm,
    peer: &[u8],
) -> Option<Vec<u8>> {
    agreement::agree(
        mine,
        agreement::UnparsedPublicKey::new(alg, peer),
        (),
        |s| Ok(s.to_vec()),
    )
    .ok()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Key check value as the HSM documents it.
fn kcv_secret(spec: KeySpec, value: &[u8]) -> String {
    if spec.key_type() == "aes" {
        let alg = match value.len() {
            16 => &cipher::AES_128,
            24 => &cipher::AES_192,
            _ => &cipher::AES_256,
        };
        let key = EncryptingKey::ecb(UnboundCipherKey::new(alg, value).unwrap()).unwrap();
        let mut block = [0u8; 16];
        key.encrypt(&mut block).unwrap();
        hex(&block[..3])
    } else if value.len() < 16 {
        // Short secrets get no check value (it would give the secret away).
        String::new()
    } else {
        hex(&digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, value).as_ref()[..3])
    }
}

fn kcv_spki(spki: &[u8]) -> String {
    hex(&digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, spki).as_ref()[..3])
}

fn kek(key: &[u8; 32]) -> AesKek {
    AesKek::new(&key_wrap::AES_256, key).unwrap()
}

/// AES-KW (`padded` false) or AES-KWP of `data` under `key`.
fn aes_kw(key: &[u8; 32], data: &[u8], padded: bool) -> Vec<u8> {
    let mut out = vec![0u8; data.len() + 16];
    let n = if padded {
        kek(key).wrap_with_padding(data, &mut out).unwrap().len()
    } else {
        kek(key).wrap(data, &mut out).unwrap().len()
    };
    out.truncate(n);
    out
}

fn gcm_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, key).unwrap())
}

/// IV (12) ‖ ciphertext ‖ tag (16), the HSM's aes-gcm layout.
fn gcm_seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut iv = [0u8; 12];
    aws_lc_rs::rand::fill(&mut iv).unwrap();
    let mut body = plaintext.to_vec();
    gcm_key(key)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut body)
        .unwrap();
    [iv.as_slice(), &body].concat()
}

fn gcm_open(key: &[u8; 32], input: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let iv: [u8; 12] = input.get(..12)?.try_into().ok()?;
    let mut body = input[12..].to_vec();
    let n = gcm_key(key)
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut body)
        .ok()?
        .len();
    body.truncate(n);
    Some(body)
}

/// IV (16) ‖ ciphertext, the HSM's aes-cbc-pad layout.
fn cbc_seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let k =
        PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&cipher::AES_256, key).unwrap())
            .unwrap();
    let mut body = plaintext.to_vec();
    let ctx = k.encrypt(&mut body).unwrap();
    let iv: &[u8] = (&ctx).try_into().unwrap();
    [iv, &body].concat()
}

fn cbc_open(key: &[u8; 32], input: &[u8]) -> Option<Vec<u8>> {
    let iv: [u8; 16] = input.get(..16)?.try_into().ok()?;
    let k = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&cipher::AES_256, key).ok()?)
        .ok()?;
    let mut body = input[16..].to_vec();
    let n = k
        .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
        .ok()?
        .len();
    body.truncate(n);
    Some(body)
}

fn oaep_alg(m: EM) -> &'static lc_rsa::OaepAlgorithm {
    match m {
        EM::RsaOaepSha384 => &lc_rsa::OAEP_SHA384_MGF1SHA384,
        EM::RsaOaepSha512 => &lc_rsa::OAEP_SHA512_MGF1SHA512,
        _ => &lc_rsa::OAEP_SHA256_MGF1SHA256,
    }
}

fn oaep_seal(spki: &[u8], m: EM, plaintext: &[u8]) -> Vec<u8> {
    let key = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(spki).unwrap()).unwrap();
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(oaep_alg(m), plaintext, &mut out, None)
        .unwrap()
        .len();
    out.truncate(n);
    out
}

fn rsa_bytes(spec: KeySpec) -> usize {
    match spec {
        KeySpec::Rsa2048 => 256,
        KeySpec::Rsa3072 => 384,
        _ => 512,
    }
}

/// Largest RSA-OAEP plaintext (RFC 8017 §7.1.1): k − 2·hLen − 2.
fn oaep_max(spec: KeySpec, m: EM) -> usize {
    let h = match m {
        EM::RsaOaepSha384 => 48,
        EM::RsaOaepSha512 => 64,
        _ => 32,
    };
    rsa_bytes(spec) - 2 * h - 2
}

/// The aws-lc-rs verification algorithm for a signature the HSM made.
fn ext_verify_alg(
    spec: KeySpec,
    m: SM,
    e: SignatureEncoding,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    use KeySpec as S;
    use SignatureEncoding as E;
    use SM as M;
    Some(match (spec, m, e) {
        (S::EcP256, M::EcdsaSha256, E::Der) => &signature::ECDSA_P256_SHA256_ASN1,
        (S::EcP256, M::EcdsaSha256, E::Raw) => &signature::ECDSA_P256_SHA256_FIXED,
        (S::EcP384, M::EcdsaSha384, E::Der) => &signature::ECDSA_P384_SHA384_ASN1,
        (S::EcP384, M::EcdsaSha384, E::Raw) => &signature::ECDSA_P384_SHA384_FIXED,
        (S::EcP521, M::EcdsaSha256, E::Der) => &signature::ECDSA_P521_SHA256_ASN1,
        (S::EcP521, M::EcdsaSha256, E::Raw) => &signature::ECDSA_P521_SHA256_FIXED,
        (S::EcP521, M::EcdsaSha384, E::Der) => &signature::ECDSA_P521_SHA384_ASN1,
        (S::EcP521, M::EcdsaSha384, E::Raw) => &signature::ECDSA_P521_SHA384_FIXED,
        (S::EcP521, M::EcdsaSha512, E::Der) => &signature::ECDSA_P521_SHA512_ASN1,
        (S::EcP521, M::EcdsaSha512, E::Raw) => &signature::ECDSA_P521_SHA512_FIXED,
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPkcs1Sha256, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPkcs1Sha384, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPkcs1Sha512, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPssSha256, _) => {
            &signature::RSA_PSS_2048_8192_SHA256
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPssSha384, _) => {
            &signature::RSA_PSS_2048_8192_SHA384
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPssSha512, _) => {
            &signature::RSA_PSS_2048_8192_SHA512
        }
        (S::Ed25519, M::Ed25519, _) => &signature::ED25519,
        _ => return None,
    })
}

/// Verifies an HSM signature with aws-lc-rs; `None` when there is no public algorithm.
fn ext_verify(
    spki: &[u8],
    spec: KeySpec,
    m: SM,
    e: SignatureEncoding,
    input: &Input,
    sig: &[u8],
) -> Option<bool> {
    let alg = ext_verify_alg(spec, m, e)?;
    let key = UnparsedPublicKey::new(alg, spki);
    Some(match input {
        Input::Message(msg) => key.verify(msg, sig).is_ok(),
        Input::Digest(d) => {
            let d = digest::Digest::import_less_safe(d, m.digest()?).ok()?;
            key.verify_digest(&d, sig).is_ok()
        }
    })
}

fn hmac_alg(m: SM) -> hmac::Algorithm {
    match m {
        SM::HmacSha384 => hmac::HMAC_SHA384,
        SM::HmacSha512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

// ---------------------------------------------------------------------------------------------
// The rules, as documented (the oracle)
// ---------------------------------------------------------------------------------------------

fn active_as(s: &Session, role: Role) -> Result<(), &'static str> {
    if !s.is_active() {
        Err("session_invalid")
    } else if s.role() != role {
        Err("permission_denied")
    } else {
        Ok(())
    }
}

fn may_use(s: &Session, i: &KeyInfo) -> bool {
    i.owner == s.user() || i.shared_with.iter().any(|u| u == s.user())
}

/// A key as the test knows it: its description, and for a session object (`token` false) the
/// session it belongs to (only that session sees it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct K {
    info: KeyInfo,
    scope: Option<u64>,
}

impl std::ops::Deref for K {
    type Target = KeyInfo;
    fn deref(&self) -> &KeyInfo {
        &self.info
    }
}

fn in_scope(s: &Session, k: &K) -> bool {
    k.scope.is_none_or(|id| id == s.id())
}

fn visible(s: &Session, k: &K) -> bool {
    in_scope(s, k) && (s.role() == Role::Admin || may_use(s, k))
}

/// A key the session may use (owner or shared with it; crypto-users only). Any other key is
/// "not found", exactly like a missing handle.
fn usable<'a>(s: &Session, info: Option<&'a K>) -> Result<&'a KeyInfo, &'static str> {
    active_as(s, Role::CryptoUser)?;
    info.filter(|k| in_scope(s, k) && may_use(s, k))
        .map(|k| &k.info)
        .ok_or("key_not_found")
}

/// A key the session owns (a shared user sees it but gets "permission denied").
fn owned<'a>(s: &Session, info: Option<&'a K>) -> Result<&'a KeyInfo, &'static str> {
    let i = usable(s, info)?;
    if i.owner != s.user() {
        return Err("permission_denied");
    }
    Ok(i)
}

fn need(attribute: bool) -> Result<(), &'static str> {
    if attribute {
        Ok(())
    } else {
        Err("attribute_violation")
    }
}

fn invalid_if(bad: bool) -> Result<(), &'static str> {
    if bad {
        Err("invalid_input")
    } else {
        Ok(())
    }
}

fn is_rsa(spec: KeySpec) -> bool {
    spec.key_type() == "rsa"
}

fn is_rsa_sign(m: SM) -> bool {
    matches!(
        m,
        SM::RsaPkcs1Sha256
            | SM::RsaPkcs1Sha384
            | SM::RsaPkcs1Sha512
            | SM::RsaPssSha256
            | SM::RsaPssSha384
            | SM::RsaPssSha512
    )
}

/// Which sign mechanisms a private (or secret) key of `spec` offers.
fn sign_fits(spec: KeySpec, m: SM) -> bool {
    use KeySpec as S;
    match spec {
        S::EcP256 => m == SM::EcdsaSha256,
        S::EcP384 => m == SM::EcdsaSha384,
        S::EcP521 => matches!(m, SM::EcdsaSha256 | SM::EcdsaSha384 | SM::EcdsaSha512),
        S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => is_rsa_sign(m),
        S::Ed25519 => m == SM::Ed25519,
        _ => m.is_hmac(),
    }
}

/// Which (mechanism, encoding) pairs verify with a key of `spec` (mechanism.rs table).
fn verify_fits(spec: KeySpec, m: SM, e: SignatureEncoding) -> bool {
    use KeySpec as S;
    use SignatureEncoding as E;
    match spec {
        S::EcP256 => matches!((m, e), (SM::EcdsaSha256, _) | (SM::EcdsaSha384, E::Der)),
        S::EcP384 => matches!((m, e), (SM::EcdsaSha256, E::Der) | (SM::EcdsaSha384, _)),
        S::EcP521 => matches!(m, SM::EcdsaSha256 | SM::EcdsaSha384 | SM::EcdsaSha512),
        S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => is_rsa_sign(m),
        S::Ed25519 => m == SM::Ed25519,
        _ => m.is_hmac(),
    }
}

fn digest_ok(m: SM, input: &Input) -> Result<(), &'static str> {
    if let Input::Digest(d) = input {
        invalid_if(!m.accepts_digest() || m.digest().map(|a| a.output_len()) != Some(d.len()))?;
    }
    Ok(())
}

fn expect_sign(s: &Session, info: Option<&K>, m: SM, input: &Input) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.sign)?;
        if i.class == KeyClass::Public || !sign_fits(i.spec, m) {
            return Err("mechanism_invalid");
        }
        digest_ok(m, input)?;
        Ok(Want::Ok)
    })
}

fn expect_verify(
    s: &Session,
    info: Option<&K>,
    m: SM,
    e: SignatureEncoding,
    input: &Input,
) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.verify)?;
        if !verify_fits(i.spec, m, e) {
            return Err("mechanism_invalid");
        }
        digest_ok(m, input)?;
        Ok(Want::Ok)
    })
}

fn encrypt_fits(i: &KeyInfo, m: EM, decrypt: bool) -> bool {
    match m {
        EM::AesGcm | EM::AesCbcPad => i.spec.key_type() == "aes",
        _ => is_rsa(i.spec) && (!decrypt || i.class == KeyClass::Private),
    }
}

fn expect_encrypt(s: &Session, info: Option<&K>, m: EM, len: usize, aad: usize) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.encrypt)?;
        if !encrypt_fits(i, m, false) {
            return Err("mechanism_invalid");
        }
        invalid_if(m != EM::AesGcm && aad > 0)?;
        invalid_if(is_rsa(i.spec) && len > oaep_max(i.spec, m))?;
        Ok(Want::Ok)
    })
}

/// Decrypting bytes that were not made by encrypt: at best `invalid_input`. aes-cbc-pad has
/// no integrity, so random bytes with valid padding decrypt.
fn expect_decrypt_random(s: &Session, info: Option<&K>, m: EM, len: usize, aad: usize) -> Want {
    want(|| {
        let i = usable(s, info)?;
        need(i.attributes.decrypt)?;
        if !encrypt_fits(i, m, true) {
            return Err("mechanism_invalid");
        }
        invalid_if(m != EM::AesGcm && aad > 0)?;
        Ok(match m {
            EM::AesGcm => Want::Err("invalid_input"),
            EM::AesCbcPad if len >= 32 && (len - 16).is_multiple_of(16) => {
                Want::OkOr("invalid_input")
            }
            EM::AesCbcPad => Want::Err("invalid_input"),
            _ => Want::Err("invalid_input"),
        })
    })
}

fn wrap_fits(i: &KeyInfo, m: WM, unwrap: bool) -> bool {
    match m {
        WM::AesKw | WM::AesKwp => matches!(i.spec, KeySpec::Aes128 | KeySpec::Aes256),
        WM::AesGcm => i.spec.key_type() == "aes",
        WM::RsaOaep | WM::RsaAes => is_rsa(i.spec) && (!unwrap || i.class == KeyClass::Private),
        _ => false,
    }
}

fn expect_wrap(s: &Session, w: Option<&K>, m: WM, t: Option<&K>) -> Want {
    want(|| {
        let w = usable(s, w)?;
        let t = owned(s, t)?;
        need(w.attributes.wrap)?;
        need(t.attributes.extractable)?;
        if t.attributes.wrap_with_trusted {
            need(w.attributes.trusted)?;
        }
        if !wrap_fits(w, m, false) {
            return Err("mechanism_invalid");
        }
        invalid_if(t.class == KeyClass::Public)?;
        match (m, t.spec.secret_len()) {
            (WM::AesKw, Some(l)) => invalid_if(l < 16 || l % 8 != 0)?,
            (WM::RsaOaep, Some(l)) => invalid_if(l > oaep_max(w.spec, EM::RsaOaepSha256))?,
            // The PKCS#8 length of a private key is not known here.
            (WM::AesKw | WM::RsaOaep, None) => return Ok(Want::OkOr("invalid_input")),
            _ => {}
        }
        Ok(Want::Ok)
    })
}

/// Policy part of unwrap; what follows is the unwrap itself.
fn expect_unwrap_policy(s: &Session, u: Option<&K>, m: WM) -> Result<(), &'static str> {
    let u = usable(s, u)?;
    need(u.attributes.unwrap)?;
    if !wrap_fits(u, m, true) {
        return Err("mechanism_invalid");
    }
    Ok(())
}

/// A secret spec the HSM documents: AES, or a generic secret of 1 to 800 bytes.
fn secret_spec_valid(spec: KeySpec) -> bool {
    match spec {
        KeySpec::GenericSecret { bytes } => (1..=GENERIC_SECRET_MAX_BYTES).contains(&bytes),
        other => other.is_secret(),
    }
}

/// 1 to 127 bytes; no control, bidirectional or invisible format characters.
fn label_ok(l: &str) -> Result<(), &'static str> {
    let deceptive = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    invalid_if(l.is_empty() || l.len() > 127 || l.chars().any(deceptive))
}

/// Key-usage separation: a key (with its linked half) protects data or keys, not both.
fn separated(a: &Attributes, linked: Option<&Attributes>) -> Result<(), &'static str> {
    let data = |a: &Attributes| a.encrypt || a.decrypt;
    let keys = |a: &Attributes| a.wrap || a.unwrap;
    let d = data(a) || linked.is_some_and(data);
    let k = keys(a) || linked.is_some_and(keys);
    invalid_if(d && k)
}

fn id_ok(id: &str) -> Result<(), &'static str> {
    invalid_if(
        id.len() > 128
            || !id.len().is_multiple_of(2)
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    )
}

fn set_bool(a: &mut Attributes, n: AttributeName, v: bool) {
    use AttributeName as A;
    match n {
        A::Sign => a.sign = v,
        A::Verify => a.verify = v,
        A::Encrypt => a.encrypt = v,
        A::Decrypt => a.decrypt = v,
        A::Wrap => a.wrap = v,
        A::Unwrap => a.unwrap = v,
        A::Derive => a.derive = v,
        A::Extractable => a.extractable = v,
        A::Sensitive => a.sensitive = v,
        A::Token => a.token = v,
        A::Trusted => a.trusted = v,
        A::WrapWithTrusted => a.wrap_with_trusted = v,
        A::Modifiable => a.modifiable = v,
        A::Destroyable => a.destroyable = v,
        A::Local => a.local = v,
        A::NeverExtractable => a.never_extractable = v,
        A::AlwaysSensitive => a.always_sensitive = v,
        A::Label | A::Id | A::CheckValue => {}
    }
}

/// The attributes a template gives a new object of `class`, as documented.
fn build(t: &KeyTemplate, class: KeyClass) -> Result<Attributes, &'static str> {
    label_ok(&t.label)?;
    let mut a = Attributes::defaults(&t.label, class);
    for (n, v) in &t.attributes {
        // Read-only attributes, and `trusted` (an admin sets it on an existing key).
        invalid_if(n.is_read_only() || *n == AttributeName::Trusted)?;
        match (n, v) {
            (AttributeName::Label, AttributeValue::Text(x)) => {
                label_ok(x)?;
                a.label = x.clone();
            }
            (AttributeName::Id, AttributeValue::Text(x)) => {
                id_ok(x)?;
                a.id = x.clone();
            }
            (n, AttributeValue::Bool(b)) if a.get_bool(*n).is_some() => set_bool(&mut a, *n, *b),
            _ => return Err("invalid_input"),
        }
    }
    if class == KeyClass::Public {
        a.sensitive = false;
        a.extractable = true;
    }
    a.never_extractable = !a.extractable;
    a.always_sensitive = a.sensitive;
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

/// A key that protects data: signs, verifies, encrypts, decrypts, derives.
fn usage_data(label: &str) -> KeyTemplate {
    use AttributeName as A;
    // Extractable, as every key was by default before keys became non-extractable by default.
    [
        A::Sign,
        A::Verify,
        A::Encrypt,
        A::Decrypt,
        A::Derive,
        A::Extractable,
    ]
    .into_iter()
    .fold(KeyTemplate::labelled(label), |t, a| t.with(a, true))
}

/// A key that protects keys: signs, verifies, wraps, unwraps, derives.
fn usage_kek(label: &str) -> KeyTemplate {
    use AttributeName as A;
    [
        A::Sign,
        A::Verify,
        A::Wrap,
        A::Unwrap,
        A::Derive,
        A::Extractable,
    ]
    .into_iter()
    .fold(KeyTemplate::labelled(label), |t, a| t.with(a, true))
}

fn usage_public(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Verify, true)
        .with(AttributeName::Encrypt, true)
}

fn usage_public_kek(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Verify, true)
        .with(AttributeName::Wrap, true)
}

type Snap = (KeyPage, KeyPage, Option<KeyPage>);

struct Fx {
    _dir: tempfile::TempDir,
    path: PathBuf,
    master: MasterKey,
    hsm: Hsm,
    me: Session,
    alice: Session,
    admin: Session,
    /// Every key made at setup.
    keys: Vec<KeyHandle>,
    /// (spec, private, public) for every asymmetric spec: data keys.
    pairs: Vec<(KeySpec, KeyHandle, KeyHandle)>,
    /// (spec, private, public) RSA key-encryption pairs (the public half imported alone).
    kek_pairs: Vec<(KeySpec, KeyHandle, KeyHandle)>,
    /// Secret data keys, one per secret spec, and AES key-encryption keys.
    secrets: Vec<(KeySpec, KeyHandle)>,
    keks: Vec<(KeySpec, KeyHandle)>,
    /// AES-256 keys whose values the test knows (ECDH-derived): one for data, one for keys.
    known: KeyHandle,
    known_value: [u8; 32],
    known_kek: KeyHandle,
    known_kek_value: [u8; 32],
    next: AtomicU64,
}

/// Derives an AES-256 key by ECDH with the HSM's P-256 key `base`; returns it and its value,
/// computed here with aws-lc-rs.
fn derive_known(
    hsm: &Hsm,
    me: &Session,
    base: KeyHandle,
    info: &[u8],
    template: &KeyTemplate,
) -> (KeyInfo, [u8; 32]) {
    let hsm_spki = hsm.public_key_spki(me, base).unwrap();
    let eph = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
    let eph_pub = eph.compute_public_key().unwrap();
    let params = EcdhParams {
        peer_public: eph_pub.as_ref(),
        salt: SALT,
        info,
    };
    let key = hsm
        .derive_key(me, base, &params, KeySpec::Aes256, template)
        .unwrap();
    let z = ecdh(&eph, &agreement::ECDH_P256, &hsm_spki).unwrap();
    let value: [u8; 32] = hkdf_sha256(&z, SALT, info, 32).unwrap().try_into().unwrap();
    assert_eq!(
        key.attributes.check_value,
        kcv_secret(KeySpec::Aes256, &value),
        "derive_key: the HSM's ECDH+HKDF result differs from aws-lc-rs's"
    );
    (key, value)
}

impl Fx {
    fn new() -> Fx {
        use AttributeName as A;
        use KeySpec as S;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let master = MasterKey::generate().unwrap();
        let hsm = Hsm::create(Box::new(SqliteBackend::create(&path).unwrap()), &master).unwrap();
        let me = hsm.service_session(PROXY_USER).unwrap();
        let hour = Duration::from_secs(3600);
        hsm.bootstrap_admin("admin", &Password::from(ADMIN_PW))
            .unwrap();
        let (admin, _) = hsm.login("admin", &Password::from(ADMIN_PW), hour).unwrap();
        hsm.create_user(&admin, "alice", Role::CryptoUser, &Password::from(ALICE_PW))
            .unwrap();
        let (alice, _) = hsm.login("alice", &Password::from(ALICE_PW), hour).unwrap();

        let mut pairs = Vec::new();
        for spec in [S::EcP256, S::EcP384, S::EcP521, S::Ed25519] {
            let (p, u) = hsm
                .generate_key_pair(
                    &me,
                    spec,
                    &usage_data(spec.as_str()),
                    &usage_public(spec.as_str()),
                )
                .unwrap();
            pairs.push((spec, p.handle, u.handle));
        }
        let mut secrets = Vec::new();
        let mut keks = Vec::new();
        for spec in [
            S::Aes128,
            S::Aes192,
            S::Aes256,
            S::GenericSecret { bytes: 1 },
            S::GenericSecret { bytes: 32 },
            S::GenericSecret {
                bytes: GENERIC_SECRET_MAX_BYTES,
            },
        ] {
            let k = hsm
                .generate_secret_key(&me, spec, &usage_data(&spec.name()))
                .unwrap();
            secrets.push((spec, k.handle));
            if spec.key_type() == "aes" {
                let label = format!("{}-kek", spec.name());
                let k = hsm
                    .generate_secret_key(&me, spec, &usage_kek(&label))
                    .unwrap();
                keks.push((spec, k.handle));
            }
        }

        // Keys whose values the test knows: ECDH with the HSM's P-256 key, then HKDF-SHA256.
        let p256 = pairs[0].1;
        let (known, known_value) =
            derive_known(&hsm, &me, p256, b"known", &usage_data("known-aes"));
        let (known_kek, known_kek_value) =
            derive_known(&hsm, &me, p256, b"kek", &usage_kek("known-kek"));

        // RSA keys enter by unwrap under the known key-encryption key. Each RSA key serves
        // twice, as a data pair and as a key-encryption pair (labels differ), to keep the
        // RSA key generation to one per size.
        let mut kek_pairs = Vec::new();
        for (spec, pkcs8) in rsa_keys() {
            let wrapped = aes_kw(&known_kek_value, pkcs8, true);
            for kek in [false, true] {
                let label = if kek {
                    format!("{}-kek", spec.as_str())
                } else {
                    spec.as_str().to_owned()
                };
                let template = if kek {
                    usage_kek(&label)
                } else {
                    usage_data(&label)
                };
                let p = hsm
                    .unwrap_key(
                        &me,
                        known_kek.handle,
                        WM::AesKwp,
                        &wrapped,
                        UnwrapTarget::Private,
                        &template,
                    )
                    .unwrap();
                assert_eq!(p.spec, *spec);
                let spki = hsm.public_key_spki(&me, p.handle).unwrap();
                let public = if kek {
                    usage_public_kek(&label)
                } else {
                    usage_public(&label)
                };
                let u = hsm.import_public_key(&me, &spki, &public).unwrap();
                assert_eq!(u.spec, *spec);
                if kek {
                    kek_pairs.push((*spec, p.handle, u.handle));
                } else {
                    pairs.push((*spec, p.handle, u.handle));
                }
            }
        }

        // Keys that refuse things.
        hsm.generate_secret_key(
            &me,
            S::Aes256,
            &KeyTemplate::labelled("locked-aes")
                .with(A::Sign, false)
                .with(A::Verify, false)
                .with(A::Extractable, false)
                .with(A::Destroyable, false)
                .with(A::Modifiable, false),
        )
        .unwrap();
        hsm.generate_secret_key(
            &me,
            S::Aes128,
            &usage_kek("wwt-aes").with(A::WrapWithTrusted, true),
        )
        .unwrap();
        let trusted = hsm
            .generate_secret_key(&me, S::Aes256, &usage_kek("trusted-aes"))
            .unwrap();
        hsm.set_attribute(
            &admin,
            trusted.handle,
            A::Trusted,
            AttributeValue::Bool(true),
        )
        .unwrap();
        hsm.generate_key_pair(
            &me,
            S::EcP256,
            &KeyTemplate::labelled("locked-ec").with(A::Extractable, false),
            &KeyTemplate::labelled("locked-ec"),
        )
        .unwrap();
        hsm.generate_secret_key(
            &me,
            S::Aes256,
            &usage_data("session-aes").with(A::Token, false),
        )
        .unwrap();
        hsm.generate_key_pair(
            &alice,
            S::EcP256,
            &usage_data("alice-ec"),
            &usage_public("alice-ec"),
        )
        .unwrap();
        hsm.generate_secret_key(&alice, S::Aes256, &usage_data("alice-aes"))
            .unwrap();

        let mut fx = Fx {
            _dir: dir,
            path,
            master,
            hsm,
            me,
            alice,
            admin,
            keys: Vec::new(),
            pairs,
            kek_pairs,
            secrets,
            keks,
            known: known.handle,
            known_value,
            known_kek: known_kek.handle,
            known_kek_value,
            next: AtomicU64::new(0),
        };
        fx.keys = fx.all_keys().iter().map(|k| k.handle).collect();
        fx
    }

    fn session(&self, i: usize) -> &Session {
        match i {
            0 => &self.me,
            1 => &self.alice,
            _ => &self.admin,
        }
    }

    fn handle(&self, p: &Pick) -> KeyHandle {
        match p {
            Pick::Key(i) => self.keys[*i % self.keys.len()],
            Pick::Raw(h) => KeyHandle(*h),
        }
    }

    /// The truth about a key: an admin sees every token key; a session object is seen by
    /// its own session only.
    fn info(&self, h: KeyHandle) -> Option<K> {
        if let Ok(info) = self.hsm.key_info(&self.admin, h) {
            return Some(K { info, scope: None });
        }
        [&self.me, &self.alice].into_iter().find_map(|s| {
            let info = self.hsm.key_info(s, h).ok()?;
            (!info.attributes.token).then(|| K {
                info,
                scope: Some(s.id()),
            })
        })
    }

    /// Every key: the token keys (as an admin sees them) and the session objects of the
    /// fixture's sessions.
    fn all_keys(&self) -> Vec<K> {
        let all = KeyFilter::default();
        let mut keys: Vec<K> = self
            .hsm
            .list_keys(&self.admin, &all, None, MAX_PAGE_SIZE)
            .unwrap()
            .keys
            .into_iter()
            .map(|info| K { info, scope: None })
            .collect();
        for s in [&self.me, &self.alice] {
            if let Ok(page) = self.hsm.list_keys(s, &all, None, MAX_PAGE_SIZE) {
                keys.extend(
                    page.keys
                        .into_iter()
                        .filter(|k| !k.attributes.token)
                        .map(|info| K {
                            info,
                            scope: Some(s.id()),
                        }),
                );
            }
        }
        keys.sort_by_key(|k| k.handle);
        keys
    }

    fn snapshot(&self) -> Snap {
        let all = KeyFilter::default();
        (
            self.hsm.list_keys(&self.me, &all, None, 1000).unwrap(),
            self.hsm
                .list_keys(&self.admin, &all, None, MAX_PAGE_SIZE)
                .unwrap(),
            self.hsm.list_keys(&self.alice, &all, None, 1000).ok(),
        )
    }

    fn unchanged(&self, what: &str, before: &Snap) -> TestCaseResult {
        let after = self.snapshot();
        if after != *before {
            let changed: Vec<String> = after
                .1
                .keys
                .iter()
                .filter(|k| !before.1.keys.contains(k))
                .map(|k| format!("{} {:?}", k.handle, k.attributes.label))
                .chain(
                    before
                        .1
                        .keys
                        .iter()
                        .filter(|k| !after.1.keys.contains(k))
                        .map(|k| format!("-{} {:?}", k.handle, k.attributes.label)),
                )
                .collect();
            return Err(TestCaseError::fail(format!(
                "{what} changed keys: {changed:?}"
            )));
        }
        Ok(())
    }

    /// Checks the result, and that a refused call changed nothing.
    fn outcome<T>(&self, what: &str, before: &Snap, got: &R<T>, w: Want) -> TestCaseResult {
        check(what, got, w)?;
        if got.is_err() {
            self.unchanged(what, before)?;
        }
        Ok(())
    }

    fn label(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn label_for(&self, choice: &LabelChoice, class: KeyClass) -> String {
        match choice {
            LabelChoice::Fresh => self.label("new"),
            LabelChoice::Taken => match class {
                KeyClass::Secret => "aes-256".into(),
                _ => "ec-p256".into(),
            },
            LabelChoice::Text(t) => t.clone(),
        }
    }

    /// Whether `s` may give a new key of `class` this label: reserved prefixes are for the
    /// service user only; labels are unique per owner and class.
    fn label_free(&self, s: &Session, label: &str, class: KeyClass) -> Result<(), &'static str> {
        let folded = label.trim_start().to_ascii_lowercase();
        if RESERVED_LABEL_PREFIXES
            .iter()
            .any(|p| folded.starts_with(p))
            && s.user() != PROXY_USER
        {
            return Err("permission_denied");
        }
        if self
            .all_keys()
            .iter()
            .any(|k| k.class == class && k.owner == s.user() && k.attributes.label == label)
        {
            return Err("label_exists");
        }
        Ok(())
    }

    fn pair(&self, spec: KeySpec) -> Option<(KeyHandle, KeyHandle)> {
        self.pairs
            .iter()
            .find(|(s, _, _)| *s == spec)
            .map(|&(_, p, u)| (p, u))
    }

    fn pick_of(&self, h: KeyHandle) -> Pick {
        Pick::Key(self.keys.iter().position(|k| *k == h).unwrap())
    }

    /// The fixture's keys that the proxy user owns (and may use).
    fn mine(&self) -> Vec<K> {
        self.all_keys()
            .into_iter()
            .filter(|k| k.owner == PROXY_USER && self.keys.contains(&k.handle))
            .collect()
    }

    fn kek_pair(&self, spec: KeySpec) -> Option<(KeyHandle, KeyHandle)> {
        self.kek_pairs
            .iter()
            .find(|(s, _, _)| *s == spec)
            .map(|&(_, p, u)| (p, u))
    }

    /// The store reopens (with the master key) to the same token keys.
    fn check_reopen(&self) {
        let store = SqliteBackend::open(&self.path).unwrap();
        let hsm = Hsm::open(Box::new(store), &self.master)
            .unwrap_or_else(|e| panic!("the store does not reopen: {} ({e})", e.code()));
        let (admin, _) = hsm
            .login("admin", &Password::from(ADMIN_PW), Duration::from_secs(60))
            .unwrap();
        let tokens = KeyFilter {
            attributes: vec![(AttributeName::Token, true)],
            ..KeyFilter::default()
        };
        let reopened = hsm.list_keys(&admin, &tokens, None, MAX_PAGE_SIZE).unwrap();
        let live = self
            .hsm
            .list_keys(&self.admin, &tokens, None, MAX_PAGE_SIZE)
            .unwrap();
        assert_eq!(reopened, live, "the reopened store holds different keys");
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Pick {
    Key(usize),
    Raw(u64),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        8 => any::<usize>().prop_map(Pick::Key),
        1 => any::<u64>().prop_map(Pick::Raw),
        1 => select(vec![0u64, 1, u64::MAX, 1 << 53]).prop_map(Pick::Raw),
    ]
}

/// Half the cases from `random`, half from `fitting` (calls by the proxy user that should
/// get past policy), so that refusals and successes are both exercised.
fn biased<T: Clone + Debug + 'static>(
    random: impl Strategy<Value = T> + 'static,
    fitting: Vec<T>,
) -> BoxedStrategy<T> {
    if fitting.is_empty() {
        random.boxed()
    } else {
        prop_oneof![random, select(fitting)].boxed()
    }
}

/// 0 = the proxy service user (owns most keys), 1 = alice (crypto-user), 2 = admin.
fn session() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)]
}

fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Byte strings: empty, short, medium and long (up to 70 KiB).
fn bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => vec(any::<u8>(), 0..80),
        2 => vec(any::<u8>(), 0..1500),
        1 => (0usize..70_000, any::<u64>()).prop_map(|(n, s)| filler(n, s)),
    ]
    .boxed()
}

fn small_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![Just(Vec::new()), vec(any::<u8>(), 0..300)].boxed()
}

/// Lengths near the ones mechanisms care about (digests, signatures, IVs, moduli).
fn sized_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => bytes(),
        3 => (select(vec![
            0usize, 1, 12, 16, 20, 24, 27, 28, 29, 31, 32, 33, 40, 47, 48, 49, 63, 64, 65, 71,
            72, 96, 104, 132, 139, 255, 256, 257, 296, 383, 384, 512, 520, 552,
        ]), any::<u64>())
            .prop_map(|(n, s)| filler(n, s)),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum Input {
    Message(Vec<u8>),
    Digest(Vec<u8>),
}

impl Input {
    fn as_input(&self) -> SignInput<'_> {
        match self {
            Input::Message(m) => SignInput::Message(m),
            Input::Digest(d) => SignInput::Digest(d),
        }
    }
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => bytes().prop_map(Input::Message),
        2 => sized_bytes().prop_map(Input::Digest),
    ]
}

fn encoding() -> impl Strategy<Value = SignatureEncoding> {
    select(vec![SignatureEncoding::Der, SignatureEncoding::Raw])
}

fn aad() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![3 => Just(Vec::new()), 1 => vec(any::<u8>(), 1..100)].boxed()
}

/// Every spec, including generic secrets of any length (valid are 1 to 800).
fn any_spec() -> BoxedStrategy<KeySpec> {
    prop_oneof![
        4 => select(
            KeySpec::SYMMETRIC
                .into_iter()
                .chain(KeySpec::ASYMMETRIC)
                .collect::<Vec<_>>()
        ),
        1 => (1u16..=GENERIC_SECRET_MAX_BYTES).prop_map(|bytes| KeySpec::GenericSecret { bytes }),
        1 => any::<u16>().prop_map(|bytes| KeySpec::GenericSecret { bytes }),
    ]
    .boxed()
}

/// Documented secret specs only.
fn valid_secret_spec() -> BoxedStrategy<KeySpec> {
    prop_oneof![
        2 => select(KeySpec::SYMMETRIC.to_vec()),
        1 => (1u16..=GENERIC_SECRET_MAX_BYTES).prop_map(|bytes| KeySpec::GenericSecret { bytes }),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9-]{1,20}",
        2 => "\\PC{0,140}",
        1 => "[\\x00-\\x1f]{1,3}[a-z]{0,3}",
        2 => "[0-9a-f]{0,130}",
        1 => "[0-9A-F]{2,10}",
        1 => select(vec![
            "ec-p256".to_string(),
            "aes-256".into(),
            "known-aes".into(),
            "alice-ec".into(),
            "x".repeat(127),
            "x".repeat(128),
            String::new(),
        ]),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum LabelChoice {
    Fresh,
    Taken,
    Text(String),
}

fn label_choice() -> impl Strategy<Value = LabelChoice> {
    prop_oneof![
        6 => Just(LabelChoice::Fresh),
        1 => Just(LabelChoice::Taken),
        1 => text().prop_map(LabelChoice::Text),
    ]
}

fn attr_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        3 => any::<bool>().prop_map(AttributeValue::Bool),
        1 => text().prop_map(AttributeValue::Text),
    ]
}

/// Ways to damage a ciphertext or wrapped key.
#[derive(Clone, Debug)]
enum Tamper {
    Truncate(usize),
    Flip(usize, u8),
    Append(Vec<u8>),
    Replace(Vec<u8>),
    Swap(usize, usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        2 => any::<usize>().prop_map(Tamper::Truncate),
        4 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Tamper::Flip(p, b)),
        1 => vec(any::<u8>(), 1..40).prop_map(Tamper::Append),
        1 => sized_bytes().prop_map(Tamper::Replace),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap(a, b)),
    ]
}

impl Tamper {
    /// The damaged bytes, or `None` if this tamper leaves them as they were.
    fn apply(&self, good: &[u8]) -> Option<Vec<u8>> {
        let mut v = good.to_vec();
        match self {
            Tamper::Truncate(n) => v.truncate(n % good.len().max(1)),
            Tamper::Flip(p, bit) => {
                if v.is_empty() {
                    v.push(1);
                } else {
                    let p = p % v.len();
                    v[p] ^= 1 << bit;
                }
            }
            Tamper::Append(extra) => v.extend_from_slice(extra),
            Tamper::Replace(r) => v = r.clone(),
            Tamper::Swap(a, b) => {
                if !v.is_empty() {
                    let n = v.len();
                    v.swap(a % n, b % n);
                }
            }
        }
        (v != good).then_some(v)
    }
}

// ---------------------------------------------------------------------------------------------
// sign, verify, signer
// ---------------------------------------------------------------------------------------------

#[test]
fn sign_any_key_mechanism_and_input() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in SM::ALL {
            if k.class != KeyClass::Public && k.attributes.sign && sign_fits(k.spec, m) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(SM::ALL.to_vec())), fitting);
    run(
        CASES,
        (call, input(), encoding()),
        |((s, k, m), input, e)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let info = fx.info(h);
            let before = fx.snapshot();
            let got = fx.hsm.sign(s, h, m, input.as_input(), e);
            check("sign", &got, expect_sign(s, info.as_ref(), m, &input))?;
            fx.unchanged("sign", &before)?;
            if let (Ok(sig), Some(info)) = (&got, &info) {
                if let Ok(spki) = fx.hsm.public_key_spki(&fx.admin, h) {
                    let ok = ext_verify(&spki, info.spec, m, e, &input, sig);
                    prop_assert_eq!(ok, Some(true), "signature does not verify in aws-lc-rs");
                } else if h == fx.known {
                    let Input::Message(msg) = &input else {
                        unreachable!()
                    };
                    let mac = hmac::sign(&hmac::Key::new(hmac_alg(m), &fx.known_value), msg);
                    prop_assert_eq!(sig.as_slice(), mac.as_ref());
                }
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

#[test]
fn verify_of_random_signatures_is_false_or_refused() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in SM::ALL {
            for e in [SignatureEncoding::Der, SignatureEncoding::Raw] {
                if k.attributes.verify && verify_fits(k.spec, m, e) {
                    fitting.push((0, fx.pick_of(k.handle), m, e));
                }
            }
        }
    }
    let call = biased(
        (session(), pick(), select(SM::ALL.to_vec()), encoding()),
        fitting,
    );
    run(
        CASES,
        (call, input(), sized_bytes()),
        |((s, k, m, e), input, sig)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let before = fx.snapshot();
            let got = fx.hsm.verify(s, h, m, input.as_input(), &sig, e);
            check(
                "verify",
                &got,
                expect_verify(s, fx.info(h).as_ref(), m, e, &input),
            )?;
            prop_assert!(!matches!(got, Ok(true)), "a random signature verified");
            fx.unchanged("verify", &before)
        },
    );
    fx.check_reopen();
}

#[test]
fn sign_then_verify_is_true_and_a_changed_message_or_signature_is_false() {
    let fx = Fx::new();
    // (signing key, verifying key, spec, mechanism) for every fitting combination.
    let mut combos = Vec::new();
    for &(spec, p, u) in &fx.pairs {
        for &m in SM::ALL {
            if sign_fits(spec, m) {
                combos.push((p, u, spec, m));
            }
        }
    }
    let secrets = fx.secrets.iter().chain(&fx.keks);
    for &(spec, k) in secrets.chain([&(KeySpec::Aes256, fx.known)]) {
        for &m in SM::ALL.iter().filter(|m| m.is_hmac()) {
            combos.push((k, k, spec, m));
        }
    }
    run(
        CASES,
        (
            select(combos),
            bytes(),
            encoding(),
            any::<bool>(),
            any::<usize>(),
            0u8..8,
        ),
        |((p, u, spec, m), msg, e, as_digest, pos, bit)| {
            let me = &fx.me;
            let input = match m.digest() {
                Some(alg) if as_digest && m.accepts_digest() => {
                    Input::Digest(digest::digest(alg, &msg).as_ref().to_vec())
                }
                _ => Input::Message(msg.clone()),
            };
            let sig = fx.hsm.sign(me, p, m, input.as_input(), e);
            prop_assert!(sig.is_ok(), "sign {m} with {spec}: {:?}", sig.err());
            let sig = sig.unwrap();
            for verifier in [u, p] {
                let v = fx.hsm.verify(me, verifier, m, input.as_input(), &sig, e);
                prop_assert!(matches!(v, Ok(true)), "verify {m} {spec}: {v:?}");
                // A digest-signed signature verifies against the message too.
                let v = fx
                    .hsm
                    .verify(me, verifier, m, SignInput::Message(&msg), &sig, e);
                prop_assert!(matches!(v, Ok(true)), "verify message {m} {spec}: {v:?}");
            }
            // Outside the HSM.
            if spec.is_secret() {
                if p == fx.known {
                    let mac = hmac::sign(&hmac::Key::new(hmac_alg(m), &fx.known_value), &msg);
                    prop_assert_eq!(sig.as_slice(), mac.as_ref());
                }
            } else {
                let spki = fx.hsm.public_key_spki(me, u).unwrap();
                prop_assert_eq!(ext_verify(&spki, spec, m, e, &input, &sig), Some(true));
            }
            // A changed message does not verify.
            let mut changed = msg.clone();
            if changed.is_empty() {
                changed.push(0);
            } else {
                let i = pos % changed.len();
                changed[i] ^= 1 << bit;
            }
            let v = fx
                .hsm
                .verify(me, u, m, SignInput::Message(&changed), &sig, e);
            prop_assert!(matches!(v, Ok(false)), "changed message: {v:?}");
            // A changed signature does not verify.
            let mut bad = sig.clone();
            let i = pos % bad.len();
            bad[i] ^= 1 << bit;
            let v = fx.hsm.verify(me, u, m, SignInput::Message(&msg), &bad, e);
            prop_assert!(matches!(v, Ok(false)), "changed signature: {v:?}");
            // A truncated signature does not verify.
            let v = fx
                .hsm
                .verify(me, u, m, SignInput::Message(&msg), &sig[..sig.len() - 1], e);
            prop_assert!(matches!(v, Ok(false)), "truncated signature: {v:?}");
            Ok(())
        },
    );
    fx.check_reopen();
}

#[test]
fn signer_of_any_key_signs_only_what_the_key_allows() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in SM::ALL {
            if k.class == KeyClass::Private && sign_fits(k.spec, m) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(SM::ALL.to_vec())), fitting);
    run(CASES, (call, bytes()), |((s, k, m), msg)| {
        let s = fx.session(s);
        let h = fx.handle(&k);
        let info = fx.info(h);
        let before = fx.snapshot();
        let w = want(|| {
            let i = usable(s, info.as_ref())?;
            if i.class != KeyClass::Private {
                return Err("mechanism_invalid");
            }
            Ok(Want::Ok)
        });
        let got = fx.hsm.signer(s, h);
        check("signer", &got, w)?;
        fx.unchanged("signer", &before)?;
        let (Ok(signer), Some(info)) = (got, info) else {
            return Ok(());
        };
        prop_assert_eq!(signer.info(), info.info.clone());
        prop_assert_eq!(signer.spec(), info.spec);
        let spki = fx.hsm.public_key_spki(&fx.admin, h).unwrap();
        prop_assert_eq!(signer.spki_der(), spki.as_slice());
        prop_assert_eq!(signer.supports(m), sign_fits(info.spec, m));
        let count = signer.sign_count();
        let w = want(|| {
            need(info.attributes.sign)?;
            if !sign_fits(info.spec, m) {
                return Err("mechanism_invalid");
            }
            Ok(Want::Ok)
        });
        let got = signer.sign(m, &msg);
        check("KeySigner::sign", &got, w)?;
        if let Ok(sig) = got {
            prop_assert_eq!(signer.sign_count(), count + 1);
            let ok = ext_verify(
                signer.spki_der(),
                info.spec,
                m,
                SignatureEncoding::Der,
                &Input::Message(msg),
                &sig,
            );
            prop_assert_eq!(ok, Some(true));
        } else {
            prop_assert_eq!(signer.sign_count(), count);
        }
        fx.unchanged("KeySigner::sign", &before)
    });
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// encrypt, decrypt
// ---------------------------------------------------------------------------------------------

#[test]
fn encrypt_any_key_mechanism_and_input() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in EM::ALL {
            if k.attributes.encrypt && encrypt_fits(&k, m, false) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(EM::ALL.to_vec())), fitting);
    run(CASES, (call, bytes(), aad()), |((s, k, m), pt, aad)| {
        let s = fx.session(s);
        let h = fx.handle(&k);
        let info = fx.info(h);
        let before = fx.snapshot();
        let got = fx.hsm.encrypt(s, h, m, &pt, &aad);
        check(
            "encrypt",
            &got,
            expect_encrypt(s, info.as_ref(), m, pt.len(), aad.len()),
        )?;
        fx.unchanged("encrypt", &before)?;
        let (Ok(ct), Some(info)) = (got, info) else {
            return Ok(());
        };
        // Layout, and decrypt gives the plaintext back.
        let (session, dk) = if is_rsa(info.spec) {
            prop_assert_eq!(ct.len(), rsa_bytes(info.spec));
            (&fx.me, fx.pair(info.spec).unwrap().0)
        } else {
            let expected = match m {
                EM::AesGcm => 12 + pt.len() + 16,
                _ => 16 + (pt.len() / 16 + 1) * 16,
            };
            prop_assert_eq!(ct.len(), expected);
            (s, h)
        };
        if fx.info(dk).is_some_and(|d| d.attributes.decrypt) {
            let back = fx.hsm.decrypt(session, dk, m, &ct, &aad);
            prop_assert!(back.is_ok(), "decrypt: {:?}", back.err());
            let back = back.unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
        }
        Ok(())
    });
    fx.check_reopen();
}

#[test]
fn decrypt_of_random_bytes_is_refused() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in EM::ALL {
            if k.attributes.decrypt && encrypt_fits(&k, m, true) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(EM::ALL.to_vec())), fitting);
    run(
        CASES,
        (call, sized_bytes(), aad()),
        |((s, k, m), ct, aad)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let before = fx.snapshot();
            let got = fx.hsm.decrypt(s, h, m, &ct, &aad);
            let w = expect_decrypt_random(s, fx.info(h).as_ref(), m, ct.len(), aad.len());
            check("decrypt", &got, w)?;
            fx.unchanged("decrypt", &before)
        },
    );
    fx.check_reopen();
}

/// (encrypting key, decrypting key, spec, mechanism) for every fitting combination.
fn encrypt_combos(fx: &Fx, mechanisms: &[EM]) -> Vec<(KeyHandle, KeyHandle, KeySpec, EM)> {
    let mut v = Vec::new();
    for &m in mechanisms {
        if matches!(m, EM::AesGcm | EM::AesCbcPad) {
            for &(spec, k) in fx.secrets.iter().chain([&(KeySpec::Aes256, fx.known)]) {
                if spec.key_type() == "aes" {
                    v.push((k, k, spec, m));
                }
            }
        } else {
            for &(spec, p, u) in &fx.pairs {
                if is_rsa(spec) {
                    v.push((u, p, spec, m));
                    v.push((p, p, spec, m));
                }
            }
        }
    }
    v
}

#[test]
fn encrypt_then_decrypt_returns_the_plaintext() {
    let fx = Fx::new();
    let combos = encrypt_combos(&fx, EM::ALL);
    run(
        CASES,
        (select(combos), bytes(), aad()),
        |((ek, dk, spec, m), mut pt, aad)| {
            let me = &fx.me;
            let aad = if m == EM::AesGcm { aad } else { Vec::new() };
            if is_rsa(spec) {
                pt.truncate(oaep_max(spec, m));
            }
            let ct = fx.hsm.encrypt(me, ek, m, &pt, &aad);
            prop_assert!(ct.is_ok(), "encrypt {m} {spec}: {:?}", ct.err());
            let ct = ct.unwrap();
            let back = fx.hsm.decrypt(me, dk, m, &ct, &aad);
            prop_assert!(back.is_ok(), "decrypt {m} {spec}: {:?}", back.err());
            let back = back.unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
            // Encryption is randomized.
            let ct2 = fx.hsm.encrypt(me, ek, m, &pt, &aad).unwrap();
            prop_assert_ne!(&ct, &ct2);
            if m == EM::AesGcm {
                let mut other = aad.clone();
                other.push(0);
                let r = fx.hsm.decrypt(me, dk, m, &ct, &other);
                prop_assert!(r.is_err(), "aes-gcm opened with another AAD");
                prop_assert_eq!(r.unwrap_err().code(), "invalid_input");
            }
            // Against aws-lc-rs, both ways.
            if ek == fx.known {
                let kv = &fx.known_value;
                let (theirs, ours) = match m {
                    EM::AesGcm => (gcm_open(kv, &ct, &aad), gcm_seal(kv, &pt, &aad)),
                    _ => (cbc_open(kv, &ct), cbc_seal(kv, &pt)),
                };
                prop_assert_eq!(theirs.as_deref(), Some(pt.as_slice()));
                let back = fx.hsm.decrypt(me, dk, m, &ours, &aad).unwrap();
                prop_assert_eq!(back.as_slice(), pt.as_slice());
            }
            if is_rsa(spec) {
                let spki = fx.hsm.public_key_spki(me, ek).unwrap();
                let ours = oaep_seal(&spki, m, &pt);
                let back = fx.hsm.decrypt(me, dk, m, &ours, &[]).unwrap();
                prop_assert_eq!(back.as_slice(), pt.as_slice());
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

#[test]
fn tampered_ciphertext_never_decrypts() {
    let fx = Fx::new();
    let combos = encrypt_combos(
        &fx,
        &[
            EM::AesGcm,
            EM::RsaOaepSha256,
            EM::RsaOaepSha384,
            EM::RsaOaepSha512,
        ],
    );
    run(
        CASES,
        (
            select(combos),
            small_bytes(),
            aad(),
            tamper(),
            any::<bool>(),
        ),
        |((ek, dk, spec, m), mut pt, aad, t, change_aad)| {
            let me = &fx.me;
            let aad = if m == EM::AesGcm { aad } else { Vec::new() };
            if is_rsa(spec) {
                pt.truncate(oaep_max(spec, m));
            }
            let ct = fx.hsm.encrypt(me, ek, m, &pt, &aad).unwrap();
            let before = fx.snapshot();
            let (bad, bad_aad) = match t.apply(&ct) {
                Some(bad) => (bad, aad.clone()),
                None if m == EM::AesGcm || change_aad => {
                    (ct.clone(), [aad.as_slice(), b"!"].concat())
                }
                None => return Ok(()),
            };
            let got = fx.hsm.decrypt(me, dk, m, &bad, &bad_aad);
            prop_assert!(got.is_err(), "tampered {m} ciphertext decrypted ({t:?})");
            fx.outcome("decrypt", &before, &got, Want::Err("invalid_input"))
        },
    );
    fx.check_reopen();
}

/// aes-cbc-pad carries no integrity check (NIST SP 800-38A): a flipped IV bit decrypts to a
/// plaintext with that bit flipped. What does hold: the original plaintext never comes back.
#[test]
fn tampered_cbc_ciphertext_never_gives_the_plaintext_back() {
    let fx = Fx::new();
    let combos = encrypt_combos(&fx, &[EM::AesCbcPad]);
    run(
        CASES,
        (select(combos), small_bytes(), tamper()),
        |((ek, dk, _, m), pt, t)| {
            let me = &fx.me;
            let ct = fx.hsm.encrypt(me, ek, m, &pt, &[]).unwrap();
            let Some(bad) = t.apply(&ct) else {
                return Ok(());
            };
            let before = fx.snapshot();
            let got = fx.hsm.decrypt(me, dk, m, &bad, &[]);
            if let Ok(out) = &got {
                prop_assert_ne!(out.as_slice(), pt.as_slice());
            }
            check("decrypt", &got, Want::OkOr("invalid_input"))?;
            fx.unchanged("decrypt", &before)
        },
    );
}

/// The strict property for aes-cbc-pad. It cannot hold for an unauthenticated mode: kept
/// (ignored) to show it. Not an hsm-core bug; the mechanism is what it is.
#[test]
#[ignore = "by design, not an hsm-core bug: aes-cbc-pad is unauthenticated, a tampered IV decrypts"]
fn tampered_cbc_ciphertext_never_decrypts() {
    let fx = Fx::new();
    let combos = encrypt_combos(&fx, &[EM::AesCbcPad]);
    run(
        CASES,
        (select(combos), small_bytes(), tamper()),
        |((ek, dk, _, m), pt, t)| {
            let ct = fx.hsm.encrypt(&fx.me, ek, m, &pt, &[]).unwrap();
            let Some(bad) = t.apply(&ct) else {
                return Ok(());
            };
            prop_assert!(fx.hsm.decrypt(&fx.me, dk, m, &bad, &[]).is_err());
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// wrap, unwrap
// ---------------------------------------------------------------------------------------------

/// The key and session that unwrap what `w` wrapped.
fn unwrapper(fx: &Fx, w: &KeyInfo) -> KeyHandle {
    if is_rsa(w.spec) {
        fx.kek_pair(w.spec).unwrap().0
    } else {
        w.handle
    }
}

fn unwrap_target(t: &KeyInfo) -> UnwrapTarget {
    if t.class == KeyClass::Secret {
        UnwrapTarget::Secret(t.spec)
    } else {
        UnwrapTarget::Private
    }
}

#[test]
fn wrap_any_key_under_any_key_and_unwrap_it_back() {
    let fx = Fx::new();
    let mine = fx.mine();
    let mut fitting = Vec::new();
    for w in &mine {
        for &m in WM::ALL {
            for t in &mine {
                if !matches!(expect_wrap(&fx.me, Some(w), m, Some(t)), Want::Err(_)) {
                    fitting.push((0, fx.pick_of(w.handle), m, fx.pick_of(t.handle)));
                }
            }
        }
    }
    let call = biased(
        (session(), pick(), select(WM::ALL.to_vec()), pick()),
        fitting,
    );
    run(CASES, call, |(s, wk, m, tk)| {
        let s = fx.session(s);
        let (wh, th) = (fx.handle(&wk), fx.handle(&tk));
        let (winfo, tinfo) = (fx.info(wh), fx.info(th));
        let before = fx.snapshot();
        let got = fx.hsm.wrap_key(s, wh, m, th);
        check(
            "wrap_key",
            &got,
            expect_wrap(s, winfo.as_ref(), m, tinfo.as_ref()),
        )?;
        fx.unchanged("wrap_key", &before)?;
        let (Ok(blob), Some(w), Some(t)) = (got, winfo, tinfo) else {
            return Ok(());
        };
        let uh = unwrapper(&fx, &w);
        let session = if is_rsa(w.spec) { &fx.me } else { s };
        if !fx.info(uh).is_some_and(|u| u.attributes.unwrap) {
            return Ok(());
        }
        let new = fx.hsm.unwrap_key(
            session,
            uh,
            m,
            &blob,
            unwrap_target(&t),
            &KeyTemplate::labelled(&fx.label("unwrapped")),
        );
        prop_assert!(new.is_ok(), "unwrap {m}: {:?}", new.err());
        let new = new.unwrap();
        prop_assert_eq!(new.spec, t.spec);
        prop_assert_eq!(new.class, t.class);
        prop_assert_eq!(&new.attributes.check_value, &t.attributes.check_value);
        prop_assert!(!new.attributes.local);
        prop_assert_eq!(new.owner.as_str(), session.user());
        fx.hsm.destroy_key(session, new.handle).unwrap();
        fx.unchanged("wrap, unwrap and destroy", &before)
    });
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum Target {
    Private,
    Secret(KeySpec),
}

impl Target {
    fn get(&self) -> UnwrapTarget {
        match self {
            Target::Private => UnwrapTarget::Private,
            Target::Secret(s) => UnwrapTarget::Secret(*s),
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => Just(Target::Private),
        3 => any_spec().prop_map(Target::Secret),
    ]
}

#[test]
fn unwrap_of_random_bytes_is_refused() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in WM::ALL {
            if expect_unwrap_policy(&fx.me, Some(&k), m).is_ok() {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(WM::ALL.to_vec())), fitting);
    run(
        CASES,
        (call, sized_bytes(), target(), label_choice()),
        |((s, k, m), blob, t, l)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let before = fx.snapshot();
            let label = fx.label_for(&l, KeyClass::Secret);
            let got = fx
                .hsm
                .unwrap_key(s, h, m, &blob, t.get(), &KeyTemplate::labelled(&label));
            let w = want(|| {
                expect_unwrap_policy(s, fx.info(h).as_ref(), m)?;
                Err("invalid_input")
            });
            fx.outcome("unwrap_key", &before, &got, w)
        },
    );
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum WrapDamage {
    Bytes(Tamper),
    WrongTarget,
}

#[test]
fn tampered_wrapped_key_never_unwraps() {
    let fx = Fx::new();
    // (wrapping key, unwrapping key, mechanism, target) that wrap successfully.
    let mut combos = Vec::new();
    let wrapping: Vec<(KeyHandle, KeyHandle, KeySpec)> = fx
        .keks
        .iter()
        .map(|&(s, k)| (k, k, s))
        .chain([(fx.known_kek, fx.known_kek, KeySpec::Aes256)])
        .chain(fx.kek_pairs.iter().map(|&(s, p, u)| (u, p, s)))
        .collect();
    let targets: Vec<K> = fx
        .all_keys()
        .into_iter()
        .filter(|k| {
            k.owner == PROXY_USER
                && k.class != KeyClass::Public
                && k.attributes.extractable
                && !k.attributes.wrap_with_trusted
        })
        .collect();
    for &(wh, uh, ws) in &wrapping {
        let winfo = fx.info(wh).unwrap();
        for &m in WM::ALL {
            for t in &targets {
                if expect_wrap(&fx.me, Some(&winfo), m, Some(t)) == Want::Ok {
                    combos.push((wh, uh, ws, m, t.info.clone()));
                }
            }
        }
    }
    let damage =
        prop_oneof![4 => tamper().prop_map(WrapDamage::Bytes), 1 => Just(WrapDamage::WrongTarget)];
    run(
        CASES,
        (select(combos), damage),
        |((wh, uh, _, m, t), damage)| {
            let me = &fx.me;
            let blob = fx.hsm.wrap_key(me, wh, m, t.handle).unwrap();
            let (bad, target) = match &damage {
                WrapDamage::Bytes(tm) => match tm.apply(&blob) {
                    Some(bad) => (bad, unwrap_target(&t)),
                    None => return Ok(()),
                },
                WrapDamage::WrongTarget => (
                    blob.clone(),
                    match t.spec.secret_len() {
                        Some(32) => UnwrapTarget::Secret(KeySpec::Aes128),
                        Some(_) => UnwrapTarget::Secret(KeySpec::Aes256),
                        None => UnwrapTarget::Secret(KeySpec::GenericSecret { bytes: 32 }),
                    },
                ),
            };
            let before = fx.snapshot();
            let got = fx.hsm.unwrap_key(
                me,
                uh,
                m,
                &bad,
                target,
                &KeyTemplate::labelled(&fx.label("tampered")),
            );
            prop_assert!(got.is_err(), "damaged {m} blob unwrapped ({damage:?})");
            fx.outcome("unwrap_key", &before, &got, Want::Err("invalid_input"))
        },
    );
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum Crafted {
    /// A secret value of the spec's length (or, with `Some`, of another length).
    Secret(KeySpec, Option<usize>, u64),
    /// A PKCS#8 key made by aws-lc-rs: 0..3 EC P-256/384/521, 3 Ed25519 v1, 4 Ed25519 v2.
    Pkcs8(usize, Option<Tamper>),
    Random(Vec<u8>),
}

fn crafted(specs: BoxedStrategy<KeySpec>) -> impl Strategy<Value = Crafted> {
    prop_oneof![
        4 => (specs, prop::option::weighted(0.2, 0usize..900), any::<u64>())
            .prop_map(|(s, l, seed)| Crafted::Secret(s, l, seed)),
        2 => (0usize..5, prop::option::weighted(0.3, tamper()))
            .prop_map(|(k, t)| Crafted::Pkcs8(k, t)),
        1 => small_bytes().prop_map(Crafted::Random),
    ]
}

/// Unwraps values wrapped outside the HSM under the known key: secrets become keys exactly
/// when their length fits the spec, PKCS#8 keys with their type detected; the check value is
/// the one computed outside.
fn unwrap_crafted(fx: &Fx, m: WM, c: &Crafted, strict_sizes: bool) -> TestCaseResult {
    let me = &fx.me;
    let (value, target, mut w, kcv) = match c {
        Crafted::Secret(spec, len, seed) => {
            let len = len.unwrap_or(spec.secret_len().unwrap_or(32));
            let value = filler(len, *seed);
            let fits = spec.secret_len() == Some(len)
                && (!strict_sizes || secret_spec_valid(*spec) || !spec.is_secret());
            let w = if fits && spec.is_secret() {
                Want::Ok
            } else {
                Want::Err("invalid_input")
            };
            let kcv = (w == Want::Ok).then(|| kcv_secret(*spec, &value));
            (value, UnwrapTarget::Secret(*spec), w, kcv)
        }
        Crafted::Pkcs8(kind, t) => {
            let rng = SystemRandom::new();
            let (der, spki) = match kind {
                0..=2 => {
                    let alg = [
                        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                        &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
                    ][*kind];
                    let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
                    let pair = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref()).unwrap();
                    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
                    (doc.as_ref().to_vec(), spki)
                }
                _ => {
                    let pair = Ed25519KeyPair::generate().unwrap();
                    let doc = if *kind == 3 {
                        pair.to_pkcs8v1().unwrap()
                    } else {
                        pair.to_pkcs8().unwrap()
                    };
                    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
                    (doc.as_ref().to_vec(), spki)
                }
            };
            match t.as_ref().and_then(|t| t.apply(&der)) {
                Some(bad) => (
                    bad,
                    UnwrapTarget::Private,
                    Want::OkOr("invalid_input"),
                    None,
                ),
                None => (der, UnwrapTarget::Private, Want::Ok, Some(kcv_spki(&spki))),
            }
        }
        Crafted::Random(b) => (
            b.clone(),
            UnwrapTarget::Private,
            Want::Err("invalid_input"),
            None,
        ),
    };
    // aes-kw takes multiples of 8 bytes, at least 16; aes-kwp at least 1 byte.
    let m = match m {
        WM::AesKw if value.len() < 16 || value.len() % 8 != 0 => WM::AesKwp,
        other => other,
    };
    let m = if value.is_empty() { WM::AesGcm } else { m };
    let blob = match m {
        WM::AesKw => aes_kw(&fx.known_kek_value, &value, false),
        WM::AesKwp => aes_kw(&fx.known_kek_value, &value, true),
        _ => gcm_seal(&fx.known_kek_value, &value, b""),
    };
    if let UnwrapTarget::Secret(spec) = target {
        if !spec.is_secret() {
            w = Want::Err("invalid_input");
        }
    }
    let before = fx.snapshot();
    let got = fx.hsm.unwrap_key(
        me,
        fx.known_kek,
        m,
        &blob,
        target,
        &KeyTemplate::labelled(&fx.label("crafted")),
    );
    fx.outcome(&format!("unwrap_key {m} {target:?}"), &before, &got, w)?;
    if let Ok(new) = got {
        if let (Some(kcv), Some(_)) = (kcv, c.secret_or_untampered()) {
            prop_assert_eq!(&new.attributes.check_value, &kcv);
        }
        if let UnwrapTarget::Secret(spec) = target {
            prop_assert_eq!(new.spec, spec);
        }
        prop_assert!(!new.attributes.local);
        fx.hsm.destroy_key(me, new.handle).unwrap();
        fx.unchanged("unwrap and destroy", &before)?;
    }
    Ok(())
}

impl Crafted {
    fn secret_or_untampered(&self) -> Option<()> {
        match self {
            Crafted::Secret(..) => Some(()),
            Crafted::Pkcs8(_, None) => Some(()),
            _ => None,
        }
    }
}

#[test]
fn unwrap_of_values_wrapped_outside_the_hsm() {
    let fx = Fx::new();
    run(
        CASES,
        (
            select(vec![WM::AesKw, WM::AesKwp, WM::AesGcm]),
            crafted(
                prop_oneof![4 => valid_secret_spec(), 1 => select(KeySpec::ASYMMETRIC.to_vec())]
                    .boxed(),
            ),
        ),
        |(m, c)| unwrap_crafted(&fx, m, &c, true),
    );
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// derive
// ---------------------------------------------------------------------------------------------

const CURVES: [&agreement::Algorithm; 4] = [
    &agreement::ECDH_P256,
    &agreement::ECDH_P384,
    &agreement::ECDH_P521,
    &agreement::X25519,
];

fn curve_of(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::EcP256 => Some(0),
        KeySpec::EcP384 => Some(1),
        KeySpec::EcP521 => Some(2),
        _ => None,
    }
}

#[derive(Clone, Debug)]
enum Peer {
    /// A fresh aws-lc-rs key on curve `curve` (see `CURVES`), as SPKI or raw point, maybe
    /// damaged.
    Fresh {
        curve: usize,
        spki: bool,
        damage: Option<Tamper>,
    },
    /// The SPKI of one of the fixture's public keys.
    Fixture(usize),
    Random(Vec<u8>),
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        5 => (0usize..4, any::<bool>(), prop::option::weighted(0.3, tamper()))
            .prop_map(|(curve, spki, damage)| Peer::Fresh { curve, spki, damage }),
        2 => any::<usize>().prop_map(Peer::Fixture),
        1 => sized_bytes().prop_map(Peer::Random),
    ]
}

#[test]
fn derive_any_key_with_any_peer() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        if let (Some(curve), true, KeyClass::Private) =
            (curve_of(k.spec), k.attributes.derive, k.class)
        {
            for spki in [false, true] {
                let peer = Peer::Fresh {
                    curve,
                    spki,
                    damage: None,
                };
                fitting.push((0, fx.pick_of(k.handle), peer));
            }
        }
    }
    let call = biased((session(), pick(), peer()), fitting);
    run(
        CASES,
        (
            call,
            small_bytes(),
            small_bytes(),
            prop_oneof![
                4 => valid_secret_spec(),
                1 => select(KeySpec::ASYMMETRIC.to_vec()),
                1 => any::<u16>().prop_map(|bytes| KeySpec::GenericSecret { bytes }),
            ],
            template(),
        ),
        |((s, k, peer), salt, info, spec, (l, attrs))| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let base = fx.info(h);
            let base_curve = base.as_ref().and_then(|b| curve_of(b.spec));
            // The peer's bytes, whether they are a valid key on the base key's curve, and the
            // private half when the test made it.
            let mut mine = None;
            let (peer_bytes, peer_w) = match &peer {
                Peer::Fresh {
                    curve,
                    spki,
                    damage,
                } => {
                    let p = agreement::PrivateKey::generate(CURVES[*curve]).unwrap();
                    let public = p.compute_public_key().unwrap();
                    let bytes = if *spki {
                        public.as_der().unwrap().as_ref().to_vec()
                    } else {
                        public.as_ref().to_vec()
                    };
                    let same = base_curve == Some(*curve);
                    match damage.as_ref().and_then(|t| t.apply(&bytes)) {
                        Some(bad) => (bad, Want::OkOr("invalid_input")),
                        None => {
                            mine = Some(p);
                            (
                                bytes,
                                if same {
                                    Want::Ok
                                } else {
                                    Want::Err("invalid_input")
                                },
                            )
                        }
                    }
                }
                Peer::Fixture(i) => {
                    let (spec, _, u) = fx.pairs[i % fx.pairs.len()];
                    let same = curve_of(spec).is_some() && curve_of(spec) == base_curve;
                    (
                        fx.hsm.public_key_spki(&fx.admin, u).unwrap(),
                        if same {
                            Want::Ok
                        } else {
                            Want::Err("invalid_input")
                        },
                    )
                }
                Peer::Random(b) => (b.clone(), Want::Err("invalid_input")),
            };
            let t = make_template(&fx, &l, &attrs, KeyClass::Secret);
            // The new key's attributes: the template's, no more exportable than the base key.
            let built = build(&t, KeyClass::Secret).map(|mut a| {
                if let Some(b) = &base {
                    let b = &b.attributes;
                    a.local = false;
                    a.extractable &= b.extractable;
                    a.never_extractable = b.never_extractable && !a.extractable;
                    a.always_sensitive = b.always_sensitive && a.sensitive;
                    a.wrap_with_trusted |= b.wrap_with_trusted;
                }
                a
            });
            let before = fx.snapshot();
            let w = want(|| {
                let b = usable(s, base.as_ref())?;
                need(b.attributes.derive)?;
                if b.spec.key_type() != "ec" || b.class != KeyClass::Private {
                    return Err("mechanism_invalid");
                }
                invalid_if(!secret_spec_valid(spec))?;
                let a = built.clone()?;
                separated(&a, None)?;
                fx.label_free(s, &a.label, KeyClass::Secret)?;
                Ok(peer_w)
            });
            let got = fx.hsm.derive_key(
                s,
                h,
                &EcdhParams {
                    peer_public: &peer_bytes,
                    salt: &salt,
                    info: &info,
                },
                spec,
                &t,
            );
            fx.outcome("derive_key", &before, &got, w)?;
            let Ok(new) = got else {
                return Ok(());
            };
            prop_assert_eq!(new.spec, spec);
            prop_assert_eq!(new.class, KeyClass::Secret);
            let mut expected = built.unwrap();
            expected.check_value = new.attributes.check_value.clone();
            prop_assert_eq!(&new.attributes, &expected);
            if let (Some(p), Some(curve)) = (&mine, base_curve) {
                let spki = fx.hsm.public_key_spki(&fx.admin, h).unwrap();
                let z = ecdh(p, CURVES[curve], &spki).unwrap();
                let len = spec.secret_len().unwrap();
                let value = hkdf_sha256(&z, &salt, &info, len).unwrap();
                prop_assert_eq!(&new.attributes.check_value, &kcv_secret(spec, &value));
            }
            if new.attributes.destroyable {
                fx.hsm.destroy_key(s, new.handle).unwrap();
                fx.unchanged("derive and destroy", &before)?;
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// import_public_key, generate
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum SpkiInput {
    Valid(usize),
    Damaged(usize, Tamper),
    RawPoint(usize),
    Random(Vec<u8>),
    Sequence(Vec<u8>),
}

#[test]
fn import_public_key_of_any_bytes() {
    let fx = Fx::new();
    let spkis: Vec<(KeySpec, Vec<u8>)> = fx
        .pairs
        .iter()
        .map(|&(s, _, u)| (s, fx.hsm.public_key_spki(&fx.me, u).unwrap()))
        .collect();
    let n = spkis.len();
    let input = prop_oneof![
        3 => (0..n).prop_map(SpkiInput::Valid),
        3 => (0..n, tamper()).prop_map(|(i, t)| SpkiInput::Damaged(i, t)),
        1 => (0usize..3).prop_map(SpkiInput::RawPoint),
        1 => sized_bytes().prop_map(SpkiInput::Random),
        1 => small_bytes().prop_map(SpkiInput::Sequence),
    ];
    run(
        CASES,
        (session(), input, label_choice()),
        |(s, input, l)| {
            let s = fx.session(s);
            let (bytes, spec, der_w) = match &input {
                SpkiInput::Valid(i) => (spkis[*i].1.clone(), Some(spkis[*i].0), Want::Ok),
                SpkiInput::Damaged(i, t) => match t.apply(&spkis[*i].1) {
                    Some(bad) => (bad, None, Want::OkOr("invalid_input")),
                    None => return Ok(()),
                },
                SpkiInput::RawPoint(c) => {
                    let p = agreement::PrivateKey::generate(CURVES[*c]).unwrap();
                    let point = p.compute_public_key().unwrap().as_ref().to_vec();
                    (point, None, Want::Err("invalid_input"))
                }
                SpkiInput::Random(b) => (b.clone(), None, Want::Err("invalid_input")),
                SpkiInput::Sequence(b) => (
                    [&[0x30u8][..], b].concat(),
                    None,
                    Want::Err("invalid_input"),
                ),
            };
            let label = fx.label_for(&l, KeyClass::Public);
            let before = fx.snapshot();
            let w = want(|| {
                active_as(s, Role::CryptoUser)?;
                label_ok(&label)?;
                match (der_w, fx.label_free(s, &label, KeyClass::Public)) {
                    (Want::Ok, Err(label_code)) => Err(label_code),
                    (Want::OkOr(bad), Err(label_code)) => Ok(Want::ErrEither(bad, label_code)),
                    (w, _) => Ok(w),
                }
            });
            let got = fx.hsm.import_public_key(s, &bytes, &usage_public(&label));
            fx.outcome("import_public_key", &before, &got, w)?;
            let Ok(new) = got else {
                return Ok(());
            };
            if let Some(spec) = spec {
                prop_assert_eq!(new.spec, spec);
                prop_assert_eq!(fx.hsm.public_key_spki(s, new.handle).unwrap(), bytes);
            }
            prop_assert_eq!(new.class, KeyClass::Public);
            prop_assert!(!new.attributes.local && !new.attributes.sensitive);
            prop_assert_eq!(new.linked_handle, None);
            fx.hsm.destroy_key(s, new.handle).unwrap();
            fx.unchanged("import and destroy", &before)
        },
    );
    fx.check_reopen();
}

/// A random template: mostly settable boolean attributes, sometimes any name (read-only and
/// `trusted` included) with any value.
fn template() -> impl Strategy<Value = (LabelChoice, Vec<(AttributeName, AttributeValue)>)> {
    let settable: Vec<AttributeName> = AttributeName::ALL
        .into_iter()
        .filter(|n| {
            !n.is_read_only()
                && !matches!(
                    n,
                    AttributeName::Label | AttributeName::Id | AttributeName::Trusted
                )
        })
        .collect();
    let entry = prop_oneof![
        6 => (select(settable), any::<bool>().prop_map(AttributeValue::Bool)),
        1 => (select(AttributeName::ALL.to_vec()), attr_value()),
    ];
    (label_choice(), vec(entry, 0..4))
}

fn make_template(
    fx: &Fx,
    l: &LabelChoice,
    attrs: &[(AttributeName, AttributeValue)],
    class: KeyClass,
) -> KeyTemplate {
    KeyTemplate {
        label: fx.label_for(l, class),
        attributes: attrs.to_vec(),
    }
}

/// Generation with random specs and templates. RSA is left out: generating RSA keys per case
/// would take most of the run (RSA keys are generated once, for the fixture).
#[test]
fn generate_with_any_spec_and_template() {
    let fx = Fx::new();
    let spec = prop_oneof![
        3 => select(vec![
            KeySpec::Aes128,
            KeySpec::Aes192,
            KeySpec::Aes256,
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::EcP521,
            KeySpec::Ed25519,
        ]),
        1 => (1u16..=GENERIC_SECRET_MAX_BYTES).prop_map(|bytes| KeySpec::GenericSecret { bytes }),
        1 => any::<u16>().prop_map(|bytes| KeySpec::GenericSecret { bytes }),
    ];
    run(
        CASES,
        (session(), spec, any::<bool>(), template(), template()),
        |(s, spec, as_secret, (l1, a1), (l2, a2))| {
            let s = fx.session(s);
            let before = fx.snapshot();
            if as_secret {
                let t = make_template(&fx, &l1, &a1, KeyClass::Secret);
                let built = build(&t, KeyClass::Secret);
                let w = want(|| {
                    active_as(s, Role::CryptoUser)?;
                    invalid_if(!spec.is_secret())?;
                    invalid_if(!secret_spec_valid(spec))?;
                    let a = built.clone()?;
                    separated(&a, None)?;
                    fx.label_free(s, &a.label, KeyClass::Secret)?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.generate_secret_key(s, spec, &t);
                fx.outcome("generate_secret_key", &before, &got, w)?;
                if let (Ok(k), Ok(mut a)) = (got, built) {
                    a.check_value = k.attributes.check_value.clone();
                    prop_assert_eq!(&k.attributes, &a);
                    prop_assert_eq!(k.spec, spec);
                    prop_assert_eq!(k.owner.as_str(), s.user());
                    if a.destroyable {
                        fx.hsm.destroy_key(s, k.handle).unwrap();
                    }
                }
            } else {
                let tp = make_template(&fx, &l1, &a1, KeyClass::Private);
                let tu = make_template(&fx, &l2, &a2, KeyClass::Public);
                let (bp, bu) = (build(&tp, KeyClass::Private), build(&tu, KeyClass::Public));
                let w = want(|| {
                    active_as(s, Role::CryptoUser)?;
                    invalid_if(spec.is_secret())?;
                    let (p, u) = (bp.clone()?, bu.clone()?);
                    separated(&p, Some(&u))?;
                    fx.label_free(s, &p.label, KeyClass::Private)?;
                    fx.label_free(s, &u.label, KeyClass::Public)?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.generate_key_pair(s, spec, &tp, &tu);
                fx.outcome("generate_key_pair", &before, &got, w)?;
                if let (Ok((p, u)), Ok(mut ap), Ok(mut au)) = (got, bp, bu) {
                    ap.check_value = p.attributes.check_value.clone();
                    au.check_value = u.attributes.check_value.clone();
                    prop_assert_eq!(&p.attributes, &ap);
                    prop_assert_eq!(&u.attributes, &au);
                    prop_assert_eq!(
                        p.attributes.check_value.clone(),
                        u.attributes.check_value.clone()
                    );
                    prop_assert_eq!(p.linked_handle, Some(u.handle));
                    prop_assert_eq!(u.linked_handle, Some(p.handle));
                    for (k, a) in [(p, ap), (u, au)] {
                        if a.destroyable {
                            fx.hsm.destroy_key(s, k.handle).unwrap();
                        }
                    }
                }
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// random
// ---------------------------------------------------------------------------------------------

#[test]
fn random_of_any_length() {
    let fx = Fx::new();
    let len = prop_oneof![
        4 => 0usize..=MAX_RANDOM_BYTES + 10,
        1 => select(vec![0usize, 1, MAX_RANDOM_BYTES, MAX_RANDOM_BYTES + 1, usize::MAX]),
        1 => any::<usize>(),
    ];
    run(CASES, (session(), len), |(s, len)| {
        let s = fx.session(s);
        let before = fx.snapshot();
        let w = want(|| {
            invalid_if(!(1..=MAX_RANDOM_BYTES).contains(&len))?;
            Ok(Want::Ok)
        });
        let got = fx.hsm.random(s, len);
        fx.outcome("random", &before, &got, w)?;
        if let Ok(v) = got {
            prop_assert_eq!(v.len(), len);
            if len >= 16 {
                prop_assert_ne!(v, fx.hsm.random(s, len).unwrap());
            }
        }
        fx.unchanged("random", &before)
    });
}

// ---------------------------------------------------------------------------------------------
// set_attribute, share, unshare, destroy
// ---------------------------------------------------------------------------------------------

#[test]
fn set_attribute_any_name_and_value() {
    let fx = Fx::new();
    let fitting = fx
        .mine()
        .iter()
        .map(|k| (0, fx.pick_of(k.handle)))
        .collect();
    run(
        CASES,
        (
            biased((session(), pick()), fitting),
            select(AttributeName::ALL.to_vec()),
            attr_value(),
        ),
        |((s, k), name, value)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let info = fx.info(h);
            let before = fx.snapshot();
            // The key as it should be afterwards, or the error.
            let expected: Result<KeyInfo, &str> = (|| {
                let i = if name == AttributeName::Trusted {
                    // Admins only, on any key they can see: not on another session's
                    // session objects (see `admins_set_trusted_only_on_keys_they_see`).
                    active_as(s, Role::Admin)?;
                    let k = info.as_ref().ok_or("key_not_found")?;
                    if k.scope.is_some_and(|id| id != s.id()) {
                        return Err("key_not_found");
                    }
                    k
                } else {
                    owned(s, info.as_ref())?
                };
                let a = &i.attributes;
                if name.is_read_only() || !a.modifiable {
                    return Err("attribute_violation");
                }
                let mut new = i.clone();
                match (name, &value) {
                    (AttributeName::Label, AttributeValue::Text(t)) => {
                        label_ok(t)?;
                        if t != &a.label {
                            fx.label_free(s, t, i.class)?;
                        }
                        new.attributes.label = t.clone();
                    }
                    (AttributeName::Id, AttributeValue::Text(t)) => {
                        id_ok(t)?;
                        new.attributes.id = t.clone();
                    }
                    (n, AttributeValue::Bool(v)) if a.get_bool(n).is_some() => {
                        let current = a.get_bool(n).unwrap();
                        let violation = match n {
                            AttributeName::Extractable => true,
                            AttributeName::Modifiable => *v && !current,
                            AttributeName::WrapWithTrusted | AttributeName::Sensitive => {
                                !*v && current
                            }
                            // Making a session key persistent is not supported (documented).
                            AttributeName::Token => *v != current,
                            _ => false,
                        };
                        need(!violation)?;
                        set_bool(&mut new.attributes, n, *v);
                        if n == AttributeName::Sensitive {
                            new.attributes.always_sensitive &= *v;
                        }
                        // A trusted key may itself be wrapped only by trusted keys.
                        if n == AttributeName::Trusted && *v {
                            new.attributes.wrap_with_trusted = true;
                        }
                    }
                    _ => return Err("invalid_input"),
                }
                // Key-usage separation, over the pair; a lone public key is exempt.
                let linked = i.linked_handle.and_then(|l| fx.info(l));
                if i.class != KeyClass::Public || linked.is_some() {
                    separated(&new.attributes, linked.as_ref().map(|l| &l.attributes))?;
                }
                Ok(new)
            })();
            let w = match &expected {
                Ok(_) => Want::Ok,
                Err(c) => Want::Err(c),
            };
            let got = fx.hsm.set_attribute(s, h, name, value.clone());
            fx.outcome("set_attribute", &before, &got, w)?;
            let (Ok(returned), Ok(expected)) = (got, expected) else {
                return Ok(());
            };
            prop_assert_eq!(&returned, &expected);
            prop_assert_eq!(fx.info(h).map(|k| k.info), Some(expected));
            // Nothing else changed.
            let after = fx.snapshot();
            let others = |p: &KeyPage| -> Vec<KeyInfo> {
                p.keys.iter().filter(|k| k.handle != h).cloned().collect()
            };
            prop_assert_eq!(others(&after.1), others(&before.1));
            Ok(())
        },
    );
    fx.check_reopen();
}

fn user_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec![
            "alice".to_string(),
            PROXY_USER.into(),
            "admin".into(),
            "nobody".into(),
            String::new(),
        ]),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

#[test]
fn share_and_unshare_any_key_with_anyone() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        if k.class != KeyClass::Public {
            for share in [true, true, false] {
                fitting.push((0, fx.pick_of(k.handle), share, "alice".to_string()));
            }
        }
    }
    let call = biased((session(), pick(), any::<bool>(), user_name()), fitting);
    run(CASES, call, |(s, k, share, user)| {
        let s = fx.session(s);
        let h = fx.handle(&k);
        let info = fx.info(h);
        let before = fx.snapshot();
        let w = want(|| {
            let i = owned(s, info.as_ref())?;
            if share {
                match user.as_str() {
                    "alice" | PROXY_USER => {}
                    // Not a crypto-user, or no user at all: the same answer.
                    _ => return Err("invalid_input"),
                }
                invalid_if(user == s.user())?;
            } else {
                invalid_if(!i.shared_with.contains(&user))?;
            }
            Ok(Want::Ok)
        });
        let got = if share {
            fx.hsm.share_key(s, h, &user)
        } else {
            fx.hsm.unshare_key(s, h, &user)
        };
        fx.outcome(
            if share { "share_key" } else { "unshare_key" },
            &before,
            &got,
            w,
        )?;
        let (Ok(returned), Some(old)) = (got, info) else {
            return Ok(());
        };
        let mut expected = old.info.clone();
        expected.shared_with.retain(|u| u != &user);
        if share {
            expected.shared_with.push(user.clone());
            expected.shared_with.sort();
        }
        prop_assert_eq!(&returned, &expected);
        prop_assert_eq!(fx.info(h).map(|k| k.info), Some(expected.clone()));
        // The user sees (and may use) the key exactly while it is shared (session objects
        // stay with their session).
        let grantee = match user.as_str() {
            "alice" => &fx.alice,
            _ => &fx.me,
        };
        if old.class != KeyClass::Public && grantee.user() != old.owner && old.scope.is_none() {
            prop_assert_eq!(fx.hsm.key_info(grantee, h).is_ok(), share);
        }
        Ok(())
    });
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum DestroyTarget {
    Pick(Pick),
    /// A new key of the proxy user: (pair?, destroyable, with a signer held).
    Fresh(bool, bool),
}

#[test]
fn destroy_any_key() {
    let fx = Fx::new();
    let target = prop_oneof![
        1 => pick().prop_map(DestroyTarget::Pick),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(p, d)| DestroyTarget::Fresh(p, d)),
    ];
    run(CASES, (session(), target), |(s, t)| {
        let s = fx.session(s);
        let (h, signer) = match &t {
            DestroyTarget::Pick(p) => (fx.handle(p), None),
            DestroyTarget::Fresh(pair, destroyable) => {
                let label = fx.label("doomed");
                let tmpl = usage_data(&label).with(AttributeName::Destroyable, *destroyable);
                if *pair {
                    let (p, _) = fx
                        .hsm
                        .generate_key_pair(&fx.me, KeySpec::EcP256, &tmpl, &usage_public(&label))
                        .unwrap();
                    (p.handle, Some(fx.hsm.signer(&fx.me, p.handle).unwrap()))
                } else {
                    let k = fx
                        .hsm
                        .generate_secret_key(&fx.me, KeySpec::Aes128, &tmpl)
                        .unwrap();
                    (k.handle, None)
                }
            }
        };
        let info = fx.info(h);
        let before = fx.snapshot();
        let w = want(|| {
            let i = owned(s, info.as_ref())?;
            need(i.attributes.destroyable)?;
            Ok(Want::Ok)
        });
        let got = fx.hsm.destroy_key(s, h);
        fx.outcome("destroy_key", &before, &got, w)?;
        if got.is_ok() {
            prop_assert!(fx.info(h).is_none());
            prop_assert!(!fx.all_keys().iter().any(|k| k.handle == h));
            let again = fx.hsm.destroy_key(s, h);
            check("destroy again", &again, Want::Err("key_not_found"))?;
            let sig = fx.hsm.sign(
                s,
                h,
                SM::EcdsaSha256,
                SignInput::Message(b"m"),
                SignatureEncoding::Der,
            );
            check("sign destroyed", &sig, Want::Err("key_not_found"))?;
            if let Some(signer) = signer {
                let r = signer.sign(SM::EcdsaSha256, b"m");
                check("KeySigner::sign destroyed", &r, Want::Err("key_not_found"))?;
            }
        }
        Ok(())
    });
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// key_info, public_key_spki, key_usage, list_keys, find_by_label
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Filter {
    label: Option<String>,
    class: Option<usize>,
    key_type: Option<String>,
    attributes: Vec<(AttributeName, bool)>,
}

fn filter() -> impl Strategy<Value = Filter> {
    (
        prop::option::weighted(0.3, text()),
        prop::option::weighted(0.4, 0usize..3),
        prop::option::weighted(
            0.3,
            select(vec![
                "aes".to_string(),
                "generic-secret".into(),
                "ec".into(),
                "rsa".into(),
                "ed25519".into(),
                "EC".into(),
                String::new(),
            ]),
        ),
        vec((select(AttributeName::ALL.to_vec()), any::<bool>()), 0..3),
    )
        .prop_map(|(label, class, key_type, attributes)| Filter {
            label,
            class,
            key_type,
            attributes,
        })
}

const CLASSES: [KeyClass; 3] = [KeyClass::Secret, KeyClass::Private, KeyClass::Public];

#[test]
fn lookups_with_any_handle_filter_and_page() {
    let fx = Fx::new();
    let limit = prop_oneof![
        4 => 1usize..40,
        1 => select(vec![0usize, 1, MAX_PAGE_SIZE, MAX_PAGE_SIZE + 1, usize::MAX]),
        1 => any::<usize>(),
    ];
    run(
        CASES,
        (
            session(),
            pick(),
            filter(),
            prop::option::of(pick()),
            limit,
            text(),
            0usize..3,
        ),
        |(s, k, f, after, limit, label, class)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let info = fx.info(h);
            let all = fx.all_keys();
            let before = fx.snapshot();

            // key_info
            let w_info = want(|| {
                let i = info.as_ref().ok_or("key_not_found")?;
                if !visible(s, i) {
                    return Err("key_not_found");
                }
                Ok(Want::Ok)
            });
            let got = fx.hsm.key_info(s, h);
            check("key_info", &got, w_info)?;
            if let Ok(i) = &got {
                prop_assert_eq!(Some(i), info.as_ref().map(|k| &k.info));
            }
            // public_key_spki
            let got = fx.hsm.public_key_spki(s, h);
            let w = match (w_info, &info) {
                (Want::Ok, Some(i)) if i.class == KeyClass::Secret => {
                    Want::Err("mechanism_invalid")
                }
                (w, _) => w,
            };
            check("public_key_spki", &got, w)?;
            if let (Ok(spki), Some(i)) = (&got, &info) {
                prop_assert_eq!(spki.first(), Some(&0x30));
                prop_assert_eq!(&i.attributes.check_value, &kcv_spki(spki));
                if let Some(linked) = i.linked_handle {
                    let other = fx.hsm.public_key_spki(&fx.admin, linked).ok();
                    prop_assert_eq!(Some(spki), other.as_ref());
                }
            }
            // key_usage
            check("key_usage", &fx.hsm.key_usage(s, h), w_info)?;

            // list_keys, against the full list filtered here
            let kf = KeyFilter {
                label: f.label.clone(),
                class: f.class.map(|c| CLASSES[c]),
                key_type: f.key_type.clone(),
                attributes: f.attributes.clone(),
                owner: None,
            };
            let after = after.map(|p| fx.handle(&p));
            let w = want(|| {
                invalid_if(!(1..=MAX_PAGE_SIZE).contains(&limit))?;
                Ok(Want::Ok)
            });
            let got = fx.hsm.list_keys(s, &kf, after, limit);
            check("list_keys", &got, w)?;
            if let Ok(page) = got {
                let mut matching: Vec<KeyInfo> = all
                    .iter()
                    .filter(|k| visible(s, k))
                    .map(|k| &k.info)
                    .filter(|k| kf.label.as_ref().is_none_or(|l| &k.attributes.label == l))
                    .filter(|k| kf.class.is_none_or(|c| k.class == c))
                    .filter(|k| kf.key_type.as_ref().is_none_or(|t| k.spec.key_type() == t))
                    .filter(|k| {
                        kf.attributes
                            .iter()
                            .all(|(n, v)| k.attributes.get_bool(*n) == Some(*v))
                    })
                    .filter(|k| after.is_none_or(|a| k.handle > a))
                    .cloned()
                    .collect();
                matching.sort_by_key(|k| k.handle);
                let more = matching.len() > limit;
                matching.truncate(limit);
                let next = if more {
                    matching.last().map(|k| k.handle)
                } else {
                    None
                };
                prop_assert_eq!(&page.keys, &matching);
                prop_assert_eq!(page.next, next);
            }

            // find_by_label, with a random or an existing label
            let label = if class == 0 && !all.is_empty() {
                all[k_index(&k) % all.len()].attributes.label.clone()
            } else {
                label
            };
            let cls = CLASSES[class];
            let got = fx.hsm.find_by_label(s, &label, cls);
            let found: Vec<&KeyInfo> = all
                .iter()
                .filter(|k| visible(s, k) && k.class == cls && k.attributes.label == label)
                .map(|k| &k.info)
                .collect();
            let w = match found.len() {
                0 => Want::Err("key_not_found"),
                1 => Want::Ok,
                _ => Want::Err("label_ambiguous"),
            };
            check("find_by_label", &got, w)?;
            if let Ok(one) = got {
                prop_assert_eq!(&one, found[0]);
            }
            fx.unchanged("lookups", &before)
        },
    );
}

fn k_index(p: &Pick) -> usize {
    match p {
        Pick::Key(i) => *i,
        Pick::Raw(h) => *h as usize,
    }
}

// ---------------------------------------------------------------------------------------------
// users: login, create_user, change_password, delete_user
// ---------------------------------------------------------------------------------------------

#[test]
fn login_with_any_name_and_password_fails_and_changes_no_key() {
    let fx = Fx::new();
    let name = prop_oneof![
        3 => "[A-Za-z0-9._-]{0,70}",
        1 => "\\PC{0,20}",
        1 => select(vec![PROXY_USER.to_string(), "nobody".into(), "Alice".into()]),
    ]
    .prop_filter("not a real user", |n| n != "alice" && n != "admin");
    let ttl = prop_oneof![
        4 => (0u64..3600).prop_map(Duration::from_secs),
        1 => Just(MAX_SESSION_TTL),
        1 => (MAX_SESSION_TTL.as_secs() + 1..=u64::MAX).prop_map(Duration::from_secs),
    ];
    run(24, (name, "\\PC{0,300}", ttl), |(name, password, ttl)| {
        let users = fx.hsm.list_users(&fx.admin).unwrap();
        let before = fx.snapshot();
        let got = fx.hsm.login(&name, &Password::new(password), ttl);
        let w = if ttl > MAX_SESSION_TTL {
            Want::Err("invalid_input")
        } else {
            Want::Err("authentication_failed")
        };
        check("login", &got.map(|_| ()), w)?;
        fx.unchanged("login", &before)?;
        prop_assert_eq!(fx.hsm.list_users(&fx.admin).unwrap(), users);
        Ok(())
    });
    // Tokens: a random one names no session.
    run(16, "\\PC{0,80}", |t| {
        let got = fx.hsm.session(&SessionToken::from_string(t));
        check("session", &got, Want::Err("session_invalid"))
    });
}

#[derive(Clone, Debug)]
enum UserOp {
    Create(String, bool, String),
    ChangePassword(String, String),
    Delete(String),
}

#[test]
fn user_management_with_any_input() {
    let fx = Fx::new();
    fx.hsm
        .create_user(
            &fx.admin,
            "carol",
            Role::CryptoUser,
            &Password::from("carol-password"),
        )
        .unwrap();
    let name = prop_oneof![
        3 => "[a-z]{1,8}",
        2 => "[A-Za-z0-9._-]{0,70}",
        1 => "\\PC{0,10}",
        2 => select(vec!["alice".to_string(), PROXY_USER.into(), "carol".into(), "admin".into()]),
    ];
    let password = prop_oneof![
        2 => "\\PC{0,12}",
        2 => "[a-z]{8,20}",
        1 => "\\PC{250,260}",
    ];
    // Valid requests (for the admin) half the time: new users, carol's password, deletions
    // of users made here.
    let valid_name = "[a-z][a-z0-9]{2,8}";
    let valid_password = "[a-z]{8,20}";
    let op = prop_oneof![
        2 => (name.clone(), any::<bool>(), password.clone())
            .prop_map(|(n, admin, p)| UserOp::Create(n, admin, p)),
        2 => (name.clone().prop_filter("keep the admin's password", |n| n != "admin"), password)
            .prop_map(|(n, p)| UserOp::ChangePassword(n, p)),
        1 => name.prop_map(UserOp::Delete),
        2 => (valid_name, any::<bool>(), valid_password)
            .prop_map(|(n, admin, p)| UserOp::Create(n, admin, p)),
        1 => valid_password.prop_map(|p| UserOp::ChangePassword("carol".into(), p)),
        1 => valid_name.prop_map(UserOp::Delete),
    ];
    let sessions = prop_oneof![1 => Just(0usize), 1 => Just(1usize), 4 => Just(2usize)];
    run(32, (sessions, op), |(s, op)| {
        let s = fx.session(s);
        let users: Vec<String> = fx
            .hsm
            .list_users(&fx.admin)
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        let exists = |n: &str| users.iter().any(|u| u == n);
        let name_ok = |n: &str| {
            invalid_if(
                !n.starts_with(|c: char| c.is_ascii_alphanumeric())
                    || n.len() > 64
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            )
        };
        let pw_ok = |p: &str| invalid_if(!(8..=256).contains(&p.chars().count()));
        let before = fx.snapshot();
        match op {
            UserOp::Create(n, admin, p) => {
                let role = if admin { Role::Admin } else { Role::CryptoUser };
                let w = want(|| {
                    active_as(s, Role::Admin)?;
                    name_ok(&n)?;
                    pw_ok(&p)?;
                    // Names are unique whatever their case.
                    if users.iter().any(|u| u.eq_ignore_ascii_case(&n)) {
                        return Err("user_exists");
                    }
                    Ok(Want::Ok)
                });
                let got = fx.hsm.create_user(s, &n, role, &Password::new(p.clone()));
                check("create_user", &got, w)?;
                if let Ok(u) = got {
                    prop_assert_eq!(&u.name, &n);
                    prop_assert_eq!(u.role, role);
                    prop_assert!(!u.locked && !u.service);
                    prop_assert!(fx.hsm.list_users(&fx.admin).unwrap().contains(&u));
                }
            }
            UserOp::ChangePassword(n, p) => {
                let w = want(|| {
                    invalid_if(false)?;
                    if !s.is_active() {
                        return Err("session_invalid");
                    }
                    if s.role() != Role::Admin && s.user() != n {
                        return Err("permission_denied");
                    }
                    pw_ok(&p)?;
                    if !exists(&n) {
                        return Err("user_not_found");
                    }
                    invalid_if(n == PROXY_USER)?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.change_password(s, &n, &Password::new(p.clone()));
                check("change_password", &got, w)?;
                if got.is_ok() {
                    let r = fx.hsm.login(&n, &Password::new(p), Duration::from_secs(5));
                    prop_assert!(r.is_ok(), "login with the new password: {:?}", r.err());
                }
            }
            UserOp::Delete(n) => {
                let w = want(|| {
                    active_as(s, Role::Admin)?;
                    invalid_if(n == s.user())?;
                    if !exists(&n) {
                        return Err("user_not_found");
                    }
                    invalid_if(n == PROXY_USER)?;
                    invalid_if(fx.all_keys().iter().any(|k| k.owner == n))?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.delete_user(s, &n);
                check("delete_user", &got, w)?;
                if got.is_ok() {
                    prop_assert!(!fx
                        .hsm
                        .list_users(&fx.admin)
                        .unwrap()
                        .iter()
                        .any(|u| u.name == n));
                }
            }
        }
        // User management never changes a key. (A password change ends the user's other
        // sessions by design, so alice's view may be gone; when it is there it is unchanged.)
        let after = fx.snapshot();
        prop_assert_eq!(
            &after.0,
            &before.0,
            "user management changed the proxy's keys"
        );
        prop_assert_eq!(&after.1, &before.1, "user management changed keys");
        if after.2.is_some() {
            prop_assert_eq!(&after.2, &before.2, "user management changed alice's keys");
        }
        Ok(())
    });
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// Directed tests
// ---------------------------------------------------------------------------------------------

#[test]
fn lockout_sessions_and_logout() {
    let fx = Fx::new();
    let pw = Password::from("bob-password-1");
    fx.hsm
        .create_user(&fx.admin, "bob", Role::CryptoUser, &pw)
        .unwrap();
    let ttl = Duration::from_secs(60);
    // Every failure, the locking one included, answers as a wrong password does.
    for _ in 1..=MAX_FAILED_LOGINS {
        let r = fx.hsm.login("bob", &Password::from("wrong-password"), ttl);
        assert_eq!(
            r.err().map(|e| e.code().as_str()),
            Some("authentication_failed")
        );
    }
    let r = fx.hsm.login("bob", &pw, ttl);
    assert_eq!(
        r.err().map(|e| e.code().as_str()),
        Some("authentication_failed")
    );
    assert!(fx
        .hsm
        .list_users(&fx.admin)
        .unwrap()
        .iter()
        .any(|u| u.name == "bob" && u.locked));
    fx.hsm.change_password(&fx.admin, "bob", &pw).unwrap();
    let (bob, token) = fx.hsm.login("bob", &pw, ttl).unwrap();
    assert_eq!(fx.hsm.session(&token).unwrap().id(), bob.id());
    let k = fx
        .hsm
        .generate_secret_key(&bob, KeySpec::Aes256, &usage_data("bob-aes"))
        .unwrap();
    fx.hsm.logout(&bob);
    assert!(!bob.is_active());
    assert_eq!(
        fx.hsm.session(&token).err().map(|e| e.code().as_str()),
        Some("session_invalid")
    );
    // Every call with the ended session is refused as such.
    let h = k.handle;
    let codes = [
        fx.hsm
            .sign(
                &bob,
                h,
                SM::HmacSha256,
                SignInput::Message(b"m"),
                SignatureEncoding::Der,
            )
            .err(),
        fx.hsm.encrypt(&bob, h, EM::AesGcm, b"m", b"").err(),
        fx.hsm.decrypt(&bob, h, EM::AesGcm, &[0; 40], b"").err(),
        fx.hsm.key_info(&bob, h).err(),
        fx.hsm.random(&bob, 16).err(),
        fx.hsm
            .list_keys(&bob, &KeyFilter::default(), None, 10)
            .err(),
        fx.hsm.destroy_key(&bob, h).err(),
        fx.hsm
            .set_attribute(&bob, h, AttributeName::Sign, AttributeValue::Bool(false))
            .err(),
        fx.hsm.signer(&bob, h).err(),
        fx.hsm.change_password(&bob, "bob", &pw).err(),
    ];
    for c in codes {
        assert_eq!(c.map(|e| e.code().as_str()), Some("session_invalid"));
    }
    // bootstrap_admin once only.
    let r = fx
        .hsm
        .bootstrap_admin("admin2", &Password::from("admin2-password"));
    assert_eq!(
        r.err().map(|e| e.code().as_str()),
        Some("permission_denied")
    );
    fx.check_reopen();
}

#[test]
fn oversized_inputs_are_refused() {
    let fx = Fx::new();
    let big = vec![0u8; MAX_DATA_BYTES + 1];
    let me = &fx.me;
    let (p256, p256_pub) = fx.pair(KeySpec::EcP256).unwrap();
    let (rsa, _) = fx.pair(KeySpec::Rsa2048).unwrap();
    let hmac_key = fx.secrets[2].1;
    let der = SignatureEncoding::Der;
    let before = fx.snapshot();
    let codes = [
        fx.hsm
            .sign(me, p256, SM::EcdsaSha256, SignInput::Message(&big), der)
            .err(),
        fx.hsm
            .sign(me, rsa, SM::RsaPssSha256, SignInput::Message(&big), der)
            .err(),
        fx.hsm
            .sign(me, hmac_key, SM::HmacSha256, SignInput::Message(&big), der)
            .err(),
        fx.hsm
            .verify(
                me,
                p256_pub,
                SM::EcdsaSha256,
                SignInput::Message(&big),
                &[0; 70],
                der,
            )
            .err(),
        fx.hsm.encrypt(me, fx.known, EM::AesGcm, &big, b"").err(),
        fx.hsm.decrypt(me, fx.known, EM::AesGcm, &big, b"").err(),
        fx.hsm
            .unwrap_key(
                me,
                fx.known_kek,
                WM::AesGcm,
                &big,
                UnwrapTarget::Private,
                &KeyTemplate::labelled("big"),
            )
            .err(),
        fx.hsm
            .derive_key(
                me,
                p256,
                &EcdhParams {
                    peer_public: &big,
                    salt: b"",
                    info: b"",
                },
                KeySpec::Aes128,
                &KeyTemplate::labelled("big"),
            )
            .err(),
        fx.hsm
            .signer(me, p256)
            .unwrap()
            .sign(SM::EcdsaSha256, &big)
            .err(),
    ];
    for (i, c) in codes.into_iter().enumerate() {
        assert_eq!(
            c.map(|e| e.code().as_str()),
            Some("invalid_input"),
            "call {i}"
        );
    }
    assert_eq!(fx.snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs these properties found, fixed in hsm-core since (aac09f0)
// ---------------------------------------------------------------------------------------------

/// Generic secrets are 1 to 800 bytes (`KeySpec::GenericSecret`, `KeySpec::from_str`); other
/// lengths must be refused, not stored (a stored `generic-secret-0` does not load back).
#[test]
fn generic_secrets_outside_1_to_800_bytes_are_refused() {
    let fx = Fx::new();
    let bytes = prop_oneof![Just(0u16), 801u16..=8160, 8161u16..=u16::MAX];
    run(16, (bytes, 0usize..3), |(bytes, how)| {
        let me = &fx.me;
        let spec = KeySpec::GenericSecret { bytes };
        let t = usage_data(&fx.label("generic"));
        let before = fx.snapshot();
        let got = match how {
            0 => fx.hsm.generate_secret_key(me, spec, &t),
            1 => {
                let blob = gcm_seal(&fx.known_kek_value, &filler(usize::from(bytes), 1), b"");
                fx.hsm.unwrap_key(
                    me,
                    fx.known_kek,
                    WM::AesGcm,
                    &blob,
                    UnwrapTarget::Secret(spec),
                    &t,
                )
            }
            _ => {
                let (p, u) = fx.pair(KeySpec::EcP256).unwrap();
                let peer = fx.hsm.public_key_spki(me, u).unwrap();
                let params = EcdhParams {
                    peer_public: &peer,
                    salt: b"",
                    info: b"",
                };
                fx.hsm.derive_key(me, p, &params, spec, &t)
            }
        };
        fx.outcome(
            &format!("{spec} ({how})"),
            &before,
            &got,
            Want::Err("invalid_input"),
        )
    });
    fx.check_reopen();
}

/// `trusted` is "set only by an admin" (Attributes docs), so a crypto-user cannot vouch for
/// its own wrapping key and then export `wrap_with_trusted` keys under it.
#[test]
fn only_an_admin_makes_a_key_trusted() {
    let fx = Fx::new();
    let wwt = fx
        .hsm
        .find_by_label(&fx.me, "wwt-aes", KeyClass::Secret)
        .unwrap();
    run(16, 0usize..4, |how| {
        let me = &fx.me;
        let t = usage_data(&fx.label("self-trusted")).with(AttributeName::Trusted, true);
        let got = match how {
            0 => fx.hsm.generate_secret_key(me, KeySpec::Aes256, &t),
            1 => fx
                .hsm
                .generate_key_pair(me, KeySpec::EcP256, &t, &usage_public(&t.label))
                .map(|(p, _)| p),
            2 => {
                let blob = gcm_seal(&fx.known_kek_value, &[7; 32], b"");
                let target = UnwrapTarget::Secret(KeySpec::Aes256);
                fx.hsm
                    .unwrap_key(me, fx.known_kek, WM::AesGcm, &blob, target, &t)
            }
            _ => {
                let (p, u) = fx.pair(KeySpec::EcP256).unwrap();
                let peer = fx.hsm.public_key_spki(me, u).unwrap();
                let params = EcdhParams {
                    peer_public: &peer,
                    salt: b"",
                    info: b"",
                };
                fx.hsm.derive_key(me, p, &params, KeySpec::Aes256, &t)
            }
        };
        if let Ok(k) = &got {
            if k.attributes.trusted && k.class == KeyClass::Secret {
                // The consequence: a wrap_with_trusted key leaves under the user's own key.
                let out = fx.hsm.wrap_key(me, k.handle, WM::AesKwp, wwt.handle);
                prop_assert!(
                    out.is_err(),
                    "wrap_with_trusted key exported under a self-made trusted key"
                );
            }
            prop_assert!(
                !k.attributes.trusted,
                "a crypto-user made a trusted key ({how})"
            );
        }
        Ok(())
    });
}

/// A key made by unwrap came from outside the HSM: it has been extractable, so it is not
/// `never_extractable` (as it is not `always_sensitive`, which unwrap_key already clears).
#[test]
fn unwrapped_keys_are_not_never_extractable() {
    let fx = Fx::new();
    run(
        16,
        (any::<bool>(), valid_secret_spec(), any::<u64>()),
        |(extractable, spec, seed)| {
            let value = filler(spec.secret_len().unwrap(), seed);
            let blob = gcm_seal(&fx.known_kek_value, &value, b"");
            let t = KeyTemplate::labelled(&fx.label("imported"))
                .with(AttributeName::Extractable, extractable);
            let k = fx
                .hsm
                .unwrap_key(
                    &fx.me,
                    fx.known_kek,
                    WM::AesGcm,
                    &blob,
                    UnwrapTarget::Secret(spec),
                    &t,
                )
                .unwrap();
            prop_assert!(!k.attributes.local && !k.attributes.always_sensitive);
            prop_assert!(
                !k.attributes.never_extractable,
                "unwrapped key claims never_extractable"
            );
            Ok(())
        },
    );
}

/// Deleting a user ends its access: a later user of the same name must not inherit the keys
/// that were shared with the deleted one.
#[test]
fn deleted_users_keep_no_shares() {
    let fx = Fx::new();
    let shareable: Vec<KeyHandle> = fx
        .all_keys()
        .into_iter()
        .filter(|k| k.owner == PROXY_USER && k.class != KeyClass::Public)
        .map(|k| k.handle)
        .collect();
    run(6, (select(shareable), "[a-z]{4,10}"), |(h, name)| {
        let name = format!("u-{name}");
        let (admin, me) = (&fx.admin, &fx.me);
        let first = Password::from("first-password");
        fx.hsm
            .create_user(admin, &name, Role::CryptoUser, &first)
            .unwrap();
        fx.hsm.share_key(me, h, &name).unwrap();
        fx.hsm.delete_user(admin, &name).unwrap();
        let info = fx.info(h).unwrap();
        let second = Password::from("second-password");
        fx.hsm
            .create_user(admin, &name, Role::CryptoUser, &second)
            .unwrap();
        let (newcomer, _) = fx
            .hsm
            .login(&name, &second, Duration::from_secs(60))
            .unwrap();
        let seen = fx.hsm.key_info(&newcomer, h).is_ok();
        fx.hsm.delete_user(admin, &name).unwrap();
        prop_assert!(
            !info.shared_with.contains(&name),
            "deleted user still in shared_with"
        );
        prop_assert!(!seen, "a re-created user inherited a share");
        Ok(())
    });
}

/// Labels are unique per owner and class, also when two sessions create keys at the same time.
#[test]
fn concurrent_creation_keeps_labels_unique() {
    let fx = Fx::new();
    for i in 0..10 {
        let label = format!("race-{i}");
        let barrier = std::sync::Barrier::new(2);
        let made = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let t = KeyTemplate::labelled(&label);
                        fx.hsm
                            .generate_key_pair(&fx.me, KeySpec::EcP384, &t, &t)
                            .is_ok()
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert!(made <= 1, "{made} key pairs labelled {label:?}");
        let found = fx.hsm.find_by_label(&fx.me, &label, KeyClass::Private);
        assert!(
            found.is_ok(),
            "find_by_label {label:?}: {:?}",
            found.err().map(|e| e.code().as_str())
        );
    }
}

/// A signer checks its user's rights at every signature: unshare, re-share, destroy and
/// logout take effect at once.
#[test]
fn signers_follow_the_rights_of_their_user() {
    let fx = Fx::new();
    let me = &fx.me;
    let pw = Password::from("dave-password");
    fx.hsm
        .create_user(&fx.admin, "dave", Role::CryptoUser, &pw)
        .unwrap();
    let (dave, _) = fx.hsm.login("dave", &pw, Duration::from_secs(60)).unwrap();
    let (p, _) = fx
        .hsm
        .generate_key_pair(
            me,
            KeySpec::EcP256,
            &usage_data("shared-ec"),
            &usage_public("shared-ec"),
        )
        .unwrap();
    let h = p.handle;
    let m = SM::EcdsaSha256;
    let code = |r: R<Vec<u8>>| r.err().map(|e| e.code().as_str());
    assert_eq!(
        fx.hsm.signer(&dave, h).err().map(|e| e.code().as_str()),
        Some("key_not_found")
    );
    fx.hsm.share_key(me, h, "dave").unwrap();
    let signer = fx.hsm.signer(&dave, h).unwrap();
    assert_eq!(code(signer.sign(m, b"m")), None);
    fx.hsm.unshare_key(me, h, "dave").unwrap();
    assert_eq!(code(signer.sign(m, b"m")), Some("permission_denied"));
    fx.hsm.share_key(me, h, "dave").unwrap();
    assert_eq!(code(signer.sign(m, b"m")), None);
    fx.hsm
        .set_attribute(me, h, AttributeName::Sign, AttributeValue::Bool(false))
        .unwrap();
    assert_eq!(code(signer.sign(m, b"m")), Some("attribute_violation"));
    fx.hsm
        .set_attribute(me, h, AttributeName::Sign, AttributeValue::Bool(true))
        .unwrap();
    fx.hsm.logout(&dave);
    assert_eq!(code(signer.sign(m, b"m")), Some("session_invalid"));
    let own = fx.hsm.signer(me, h).unwrap();
    fx.hsm.destroy_key(me, h).unwrap();
    assert_eq!(code(own.sign(m, b"m")), Some("key_not_found"));
    fx.check_reopen();
}

/// Session objects are seen by their own session only; an admin, who cannot see them, should
/// not be able to change them either (nor learn that they exist from the answer).
#[test]
fn admins_set_trusted_only_on_keys_they_see() {
    let fx = Fx::new();
    run(8, any::<bool>(), |v| {
        let t = usage_kek(&fx.label("session-kek")).with(AttributeName::Token, false);
        let k = fx
            .hsm
            .generate_secret_key(&fx.me, KeySpec::Aes256, &t)
            .unwrap();
        let seen = fx.hsm.key_info(&fx.admin, k.handle);
        prop_assert_eq!(seen.err().map(|e| e.code().as_str()), Some("key_not_found"));
        let got = fx.hsm.set_attribute(
            &fx.admin,
            k.handle,
            AttributeName::Trusted,
            AttributeValue::Bool(v),
        );
        prop_assert_eq!(got.err().map(|e| e.code().as_str()), Some("key_not_found"));
        Ok(())
    });
}
