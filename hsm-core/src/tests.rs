//! Unit tests of the HSM over a real SQLite store in a temporary directory.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use keyward_keystore::Backend;

pub(crate) use crate::test_util::TestHsm;
use crate::*;

/// The store of a [`fixture`]: its folder, file and master key, reopened as often as needed.
pub(crate) type Fixture = crate::test_util::TestStore;

/// A [`TestHsm`] taken apart, for tests that close the HSM and reopen its store.
pub(crate) fn fixture() -> (Fixture, Hsm) {
    TestHsm::new().into_parts()
}

fn signing(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Sign, true)
        .with(AttributeName::Extractable, false)
}

fn verifying(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label).with(AttributeName::Verify, true)
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
        _ => &signature::ED25519,
    }
}

fn msg(m: &[u8]) -> SignInput<'_> {
    SignInput::Message(m)
}

#[test]
fn tls_key_types_sign_with_every_fitting_mechanism_and_refuse_the_rest() {
    let hsm = TestHsm::new();
    let me = hsm.service();
    for spec in [
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::Rsa2048,
        KeySpec::Ed25519,
    ] {
        let (private, public) = hsm
            .generate_key_pair(
                &me,
                spec,
                &signing(spec.as_str()),
                &verifying(spec.as_str()),
            )
            .unwrap();
        assert_eq!(private.linked_handle, Some(public.handle));
        assert_eq!(public.linked_handle, Some(private.handle));
        assert!(!private.attributes.extractable && private.attributes.never_extractable);
        assert_eq!(private.owner, PROXY_USER);
        assert_eq!(private.attributes.check_value.len(), 6);
        let spki = hsm.public_key_spki(&me, public.handle).unwrap();
        assert_eq!(spki, hsm.public_key_spki(&me, private.handle).unwrap());
        let signer = hsm.signer(&me, private.handle).unwrap();
        let mut fitting = 0;
        for &m in SignMechanism::ALL {
            let res = hsm.sign(
                &me,
                private.handle,
                m,
                msg(b"to be signed"),
                SignatureEncoding::Der,
            );
            if signer.supports(m) {
                fitting += 1;
                let sig = res.unwrap();
                UnparsedPublicKey::new(verifier(m), &spki)
                    .verify(b"to be signed", &sig)
                    .unwrap_or_else(|_| panic!("{spec} {m} signature does not verify"));
                assert!(hsm
                    .verify(
                        &me,
                        public.handle,
                        m,
                        msg(b"to be signed"),
                        &sig,
                        SignatureEncoding::Der
                    )
                    .unwrap());
                assert!(!hsm
                    .verify(
                        &me,
                        public.handle,
                        m,
                        msg(b"to be signed!"),
                        &sig,
                        SignatureEncoding::Der
                    )
                    .unwrap());
            } else {
                assert_eq!(res.unwrap_err().code(), "mechanism_invalid", "{spec} {m}");
            }
        }
        assert!(fitting >= 1);
        assert_eq!(signer.sign_count() as usize, fitting);
        assert_eq!(
            hsm.signer(&me, public.handle).unwrap_err().code(),
            "mechanism_invalid"
        );
    }
}

#[test]
fn keys_users_and_audit_survive_reopen_and_wrong_master_key_is_refused() {
    let (f, hsm) = fixture();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let (private, _) = hsm
        .generate_key_pair(&me, KeySpec::EcP256, &signing("web"), &verifying("web"))
        .unwrap();
    let aes = hsm
        .generate_secret_key(
            &me,
            KeySpec::Aes256,
            &KeyTemplate::labelled("aes")
                .with(AttributeName::Encrypt, true)
                .with(AttributeName::Decrypt, true),
        )
        .unwrap();
    let ct = hsm
        .encrypt(&me, aes.handle, EncryptMechanism::AesGcm, b"secret", b"aad")
        .unwrap();
    hsm.bootstrap_admin("admin", &Password::from("admin-password-1"))
        .unwrap();
    let spki = hsm.public_key_spki(&me, private.handle).unwrap();
    drop(hsm);
    let hsm = f.open().unwrap();
    let me = hsm.service_session(PROXY_USER).unwrap();
    assert_eq!(
        hsm.find_by_label(&me, "web", KeyClass::Private).unwrap(),
        private
    );
    assert_eq!(hsm.public_key_spki(&me, private.handle).unwrap(), spki);
    assert_eq!(
        &hsm.decrypt(&me, aes.handle, EncryptMechanism::AesGcm, &ct, b"aad")
            .unwrap()[..],
        b"secret"
    );
    let (admin, _) = hsm
        .login(
            "admin",
            &Password::from("admin-password-1"),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let report = hsm.verify_audit(&admin).unwrap();
    assert!(report.intact, "{report:?}");
    assert!(report.entries >= 4);
    drop(hsm);
    let wrong = MasterKey::generate().unwrap();
    let err = Hsm::open(Box::new(f.backend()), &wrong).unwrap_err();
    assert_eq!(err.code(), "sealed");
}

#[test]
fn a_flipped_byte_in_any_key_record_is_refused_by_name() {
    let (f, hsm) = fixture();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let (private, _) = hsm
        .generate_key_pair(&me, KeySpec::Ed25519, &signing("t"), &verifying("t"))
        .unwrap();
    drop(hsm);
    let store = f.backend();
    let mut rec = store
        .get("key", &private.handle.to_string())
        .unwrap()
        .unwrap();
    let mid = rec.blob.len() / 2;
    rec.blob[mid] ^= 0x80;
    store
        .write_batch(&[
            keyward_keystore::Write::Delete(rec.kind.clone(), rec.id.clone(), rec.version),
            keyward_keystore::Write::Insert(rec.clone()),
        ])
        .unwrap();
    let err = Hsm::open(Box::new(store), &f.master).unwrap_err();
    assert_eq!(err.code(), "record_tampered");
    assert!(
        err.to_string().contains(&format!("key/{}", private.handle)),
        "{err}"
    );
}

#[test]
fn deleted_added_renamed_or_rolled_back_records_are_refused() {
    let (f, hsm) = fixture();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let (a, pa) = hsm
        .generate_key_pair(&me, KeySpec::EcP256, &signing("a"), &verifying("a"))
        .unwrap();
    drop(hsm);
    let open = || f.open();
    let conn = rusqlite_free_update(&f.path);
    // Delete the public half.
    conn(&format!(
        "DELETE FROM records WHERE kind = 'key' AND id = '{}'",
        pa.handle
    ));
    let err = open().unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("key/{} is missing", pa.handle)),
        "{err}"
    );
    // (Restore by recreating the fixture for the next cases.)
    let (f, hsm) = fixture();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let (a2, _) = hsm
        .generate_key_pair(&me, KeySpec::EcP256, &signing("a"), &verifying("a"))
        .unwrap();
    drop(hsm);
    let conn = rusqlite_free_update(&f.path);
    conn(&format!(
        "UPDATE records SET kind = 'kex' WHERE kind = 'key' AND id = '{}'",
        a2.handle
    ));
    let err = f.open().unwrap_err();
    assert_eq!(err.code(), "record_tampered", "{err}");
    let _ = a;
}

/// Runs raw SQL against a store file, as an attacker with file access would.
fn rusqlite_free_update(path: &std::path::Path) -> impl Fn(&str) + '_ {
    move |sql: &str| {
        let status = std::process::Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
            .arg(path)
            .arg(sql)
            .status()
            .unwrap();
        assert!(status.success(), "{sql}");
    }
}

#[test]
fn debug_output_never_contains_key_bytes() {
    let hsm = TestHsm::new();
    let me = hsm.service();
    let (private, _) = hsm
        .generate_key_pair(&me, KeySpec::Ed25519, &signing("dbg"), &verifying("dbg"))
        .unwrap();
    let pkcs8 = hsm.test_secret_value(private.handle).unwrap();
    // RFC 8410: the private key is an OCTET STRING (04 20) holding the 32-byte seed.
    let at = pkcs8.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
    let seed = &pkcs8[at..at + 32];
    let seed_hex = hex::encode(seed);
    let signer = hsm.signer(&me, private.handle).unwrap();
    for text in [
        format!("{hsm:?}"),
        format!("{signer:?}"),
        format!("{private:?}"),
        format!("{me:?}"),
    ] {
        assert!(!text.to_lowercase().contains(&seed_hex), "{text}");
        assert!(!text.contains(&format!("{seed:?}")), "{text}");
    }
}
