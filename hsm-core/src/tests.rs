//! Unit tests of the HSM over a real SQLite store in a temporary directory.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use keyward_keystore::{Backend, SqliteBackend};

use crate::*;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    master: MasterKey,
}

fn fixture() -> (Fixture, Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.sqlite3");
    let master = MasterKey::generate().unwrap();
    let hsm = Hsm::create(Box::new(SqliteBackend::create(&path).unwrap()), &master).unwrap();
    (
        Fixture {
            _dir: dir,
            path,
            master,
        },
        hsm,
    )
}

fn opts(label: &str) -> KeyPairOptions {
    KeyPairOptions {
        label: label.into(),
        extractable: false,
    }
}

fn verifier(m: SignMechanism) -> &'static dyn VerificationAlgorithm {
    use SignMechanism as M;
    match m {
        M::EcdsaSha256 => &signature::ECDSA_P256_SHA256_ASN1,
        M::EcdsaSha384 => &signature::ECDSA_P384_SHA384_ASN1,
        M::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        M::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        M::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        M::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        M::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
        M::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        M::Ed25519 => &signature::ED25519,
    }
}

#[test]
fn every_spec_signs_with_every_fitting_mechanism_and_refuses_the_rest() {
    let (_f, hsm) = fixture();
    for spec in [
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::Rsa2048,
        KeySpec::Ed25519,
    ] {
        let (private, public) = hsm.generate_key_pair(spec, &opts(spec.as_str())).unwrap();
        assert_eq!(private.linked_handle, Some(public.handle));
        assert!(!private.attributes.extractable && private.attributes.never_extractable);
        let spki = hsm.public_key_spki(public.handle).unwrap();
        assert_eq!(spki, hsm.public_key_spki(private.handle).unwrap());
        let signer = hsm.signer(private.handle).unwrap();
        let mut fitting = 0;
        for m in SignMechanism::ALL {
            let res = hsm.sign(private.handle, m, b"to be signed");
            if signer.supports(m) {
                fitting += 1;
                let sig = res.unwrap();
                UnparsedPublicKey::new(verifier(m), &spki)
                    .verify(b"to be signed", &sig)
                    .unwrap_or_else(|_| panic!("{spec} {m} signature does not verify"));
                assert!(UnparsedPublicKey::new(verifier(m), &spki)
                    .verify(b"to be signed!", &sig)
                    .is_err());
            } else {
                assert_eq!(res.unwrap_err().code(), "mechanism_invalid", "{spec} {m}");
            }
        }
        assert!(fitting >= 1);
        assert_eq!(signer.sign_count() as usize, fitting);
        // The public half cannot sign.
        assert_eq!(
            hsm.signer(public.handle).unwrap_err().code(),
            "mechanism_invalid"
        );
    }
}

#[test]
fn keys_survive_reopen_and_wrong_master_key_is_refused() {
    let (f, hsm) = fixture();
    let (private, _) = hsm
        .generate_key_pair(KeySpec::EcP256, &opts("web"))
        .unwrap();
    let spki = hsm.public_key_spki(private.handle).unwrap();
    drop(hsm);
    let hsm = Hsm::open(Box::new(SqliteBackend::open(&f.path).unwrap()), &f.master).unwrap();
    assert_eq!(
        hsm.find_by_label("web", KeyClass::Private).unwrap(),
        private
    );
    assert_eq!(hsm.public_key_spki(private.handle).unwrap(), spki);
    hsm.sign(private.handle, SignMechanism::EcdsaSha256, b"x")
        .unwrap();
    drop(hsm);
    let wrong = MasterKey::generate().unwrap();
    let err = Hsm::open(Box::new(SqliteBackend::open(&f.path).unwrap()), &wrong).unwrap_err();
    assert_eq!(err.code(), "sealed");
}

#[test]
fn a_flipped_byte_in_any_key_record_is_refused_by_name() {
    let (f, hsm) = fixture();
    let (private, _) = hsm.generate_key_pair(KeySpec::Ed25519, &opts("t")).unwrap();
    drop(hsm);
    let store = SqliteBackend::open(&f.path).unwrap();
    let mut rec = store
        .get("key", &private.handle.to_string())
        .unwrap()
        .unwrap();
    let mid = rec.blob.len() / 2;
    rec.blob[mid] ^= 0x80;
    rec.version += 1;
    store.update(&rec).unwrap();
    let err = Hsm::open(Box::new(store), &f.master).unwrap_err();
    assert_eq!(err.code(), "record_tampered");
    assert!(
        err.to_string().contains(&format!("key/{}", private.handle)),
        "{err}"
    );
}

#[test]
fn a_record_moved_to_another_id_is_refused() {
    let (f, hsm) = fixture();
    let (a, _) = hsm.generate_key_pair(KeySpec::EcP256, &opts("a")).unwrap();
    drop(hsm);
    let store = SqliteBackend::open(&f.path).unwrap();
    let mut rec = store.get("key", &a.handle.to_string()).unwrap().unwrap();
    rec.id = "12345".into();
    store.insert(&rec).unwrap();
    let err = Hsm::open(Box::new(store), &f.master).unwrap_err();
    assert!(err.to_string().contains("key/12345"), "{err}");
}

#[test]
fn labels_are_checked_and_lookups_explain_misses() {
    let (_f, hsm) = fixture();
    assert_eq!(
        hsm.generate_key_pair(KeySpec::EcP256, &opts(""))
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(
        hsm.generate_key_pair(KeySpec::EcP256, &opts("a\nb"))
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(
        hsm.find_by_label("none", KeyClass::Private)
            .unwrap_err()
            .code(),
        "key_not_found"
    );
    hsm.generate_key_pair(KeySpec::EcP256, &opts("dup"))
        .unwrap();
    assert_eq!(
        hsm.generate_key_pair(KeySpec::Ed25519, &opts("dup"))
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(hsm.list_keys().len(), 2, "the refused pair left nothing behind");
    assert_eq!(
        hsm.sign(KeyHandle(1), SignMechanism::Ed25519, b"")
            .unwrap_err()
            .code(),
        "key_not_found"
    );
}

#[test]
fn debug_output_never_contains_key_bytes() {
    let (_f, hsm) = fixture();
    let (private, _) = hsm
        .generate_key_pair(KeySpec::Ed25519, &opts("dbg"))
        .unwrap();
    let pkcs8 = hsm.test_secret_pkcs8(private.handle).unwrap();
    // RFC 8410: the private key is an OCTET STRING (04 20) holding the 32-byte seed.
    let at = pkcs8.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
    let seed = &pkcs8[at..at + 32];
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let signer = hsm.signer(private.handle).unwrap();
    for text in [
        format!("{hsm:?}"),
        format!("{signer:?}"),
        format!("{private:?}"),
    ] {
        assert!(!text.to_lowercase().contains(&seed_hex), "{text}");
        assert!(!text.contains(&format!("{seed:?}")), "{text}");
    }
}
