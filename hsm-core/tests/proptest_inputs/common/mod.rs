//! What every property test shares: the imports, the runner and the outcome check, the
//! reference crypto, the documented rules (the oracle), the fixture and the strategies.

pub(crate) use std::collections::BTreeMap;
pub(crate) use std::fmt::Debug;
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
pub(crate) use std::sync::{Mutex, OnceLock};
pub(crate) use std::time::Duration;

pub(crate) use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
pub(crate) use aws_lc_rs::agreement;
pub(crate) use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptingKey, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
pub(crate) use aws_lc_rs::digest;
pub(crate) use aws_lc_rs::encoding::AsDer;
pub(crate) use aws_lc_rs::hkdf;
pub(crate) use aws_lc_rs::hmac;
pub(crate) use aws_lc_rs::iv::FixedLength;
pub(crate) use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
pub(crate) use aws_lc_rs::rand::SystemRandom;
pub(crate) use aws_lc_rs::rsa::{self as lc_rsa, OaepPublicEncryptingKey, PublicEncryptingKey};
pub(crate) use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};
pub(crate) use keyward_hsm::test_util::TestHsm;
pub(crate) use keyward_hsm::{
    AttributeName, AttributeValue, Attributes, EcdhParams, EncryptMechanism, Error, Hsm, KeyClass,
    KeyFilter, KeyHandle, KeyInfo, KeyPage, KeySpec, KeyTemplate, Password, Role, Session,
    SessionToken, SignInput, SignMechanism, SignatureEncoding, UnwrapTarget, WrapMechanism,
    GENERIC_SECRET_MAX_BYTES, MAX_DATA_BYTES, MAX_FAILED_LOGINS, MAX_PAGE_SIZE, MAX_RANDOM_BYTES,
    MAX_SESSION_TTL, PROXY_USER, RESERVED_LABEL_PREFIXES,
};
pub(crate) use proptest::collection::vec;
pub(crate) use proptest::prelude::*;
pub(crate) use proptest::sample::select;
pub(crate) use proptest::test_runner::{TestCaseError, TestCaseResult, TestRunner};

pub(crate) type R<T> = std::result::Result<T, Error>;
pub(crate) type EM = EncryptMechanism;
pub(crate) type SM = SignMechanism;
pub(crate) type WM = WrapMechanism;

pub(crate) const ADMIN_PW: &str = "admin-password-1";
pub(crate) const ALICE_PW: &str = "alice-password-1";
pub(crate) const SALT: &[u8] = b"keyward proptest salt";
pub(crate) const CASES: u32 = 64;

mod fixture;
mod reference;
mod rules;
mod strategies;

pub(crate) use fixture::*;
pub(crate) use reference::*;
pub(crate) use rules::*;
pub(crate) use strategies::*;

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy`; the fixture is built once, outside, by the
/// caller. No regression files are written.
pub(crate) fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
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
pub(crate) static OUTCOMES: Mutex<BTreeMap<(String, String, &'static str), usize>> =
    Mutex::new(BTreeMap::new());

pub(crate) fn count_outcome(what: &str, outcome: &'static str) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let mut m = OUTCOMES.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry((test, what.to_owned(), outcome)).or_default() += 1;
}

pub(crate) fn print_outcomes() {
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
pub(crate) enum Want {
    Ok,
    Err(&'static str),
    /// Either outcome is allowed (e.g. a tampered SPKI that may still parse).
    OkOr(&'static str),
    /// One of two errors (e.g. a tampered SPKI under a taken label: refused as bad input, or,
    /// if it still parses, for the label).
    ErrEither(&'static str, &'static str),
}

pub(crate) fn want(f: impl FnOnce() -> Result<Want, &'static str>) -> Want {
    f().unwrap_or_else(Want::Err)
}

pub(crate) fn check<T>(what: &str, got: &R<T>, want: Want) -> TestCaseResult {
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
        (Err(e), Want::Err(c) | Want::OkOr(c)) if e.code().as_str() == c => Ok(()),
        (Err(e), Want::ErrEither(a, b)) if e.code().as_str() == a || e.code().as_str() == b => {
            Ok(())
        }
        (Ok(_), Want::Err(c) | Want::ErrEither(c, _)) => Err(TestCaseError::fail(format!(
            "{what}: expected error {c}, got Ok"
        ))),
        (Err(e), w) => Err(TestCaseError::fail(format!(
            "{what}: expected {w:?}, got error {} ({e})",
            e.code()
        ))),
    }
}
