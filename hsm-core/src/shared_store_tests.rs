//! The AES-GCM key handle ([`KeyCipher`]), and two `Hsm` instances over one SQLite file: a
//! writer and a read-only node that learns the writer's keys with
//! [`Hsm::sync_token_objects`].

use std::time::Duration;

use keyward_keystore::{Backend, Write};

use crate::tests::{fixture, Fixture, TestHsm};
use crate::*;

fn aes(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Encrypt, true)
        .with(AttributeName::Decrypt, true)
        .with(AttributeName::Sign, false)
        .with(AttributeName::Verify, false)
        .with(AttributeName::Extractable, false)
}

fn reader(f: &Fixture) -> Hsm {
    f.open_read_only().unwrap()
}

/// The manifest's and audit head's versions, read from the file by a third connection.
fn store_marks(f: &Fixture) -> (u64, u64) {
    let s = f.backend();
    (
        s.get("manifest", "records").unwrap().unwrap().version,
        s.get("audit-head", "head").unwrap().unwrap().version,
    )
}

#[test]
fn key_cipher_round_trips_and_refuses_other_keys_edits_and_other_aad() {
    let hsm = TestHsm::new();
    let me = hsm.service();
    let k = hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("ticket-a"))
        .unwrap();
    let other = hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("ticket-b"))
        .unwrap();
    let c = hsm.cipher(&me, k.handle).unwrap();
    let c2 = hsm.cipher(&me, other.handle).unwrap();
    let plain = b"session state: resumption secret and parameters";
    let sealed = c.encrypt(plain, b"key-name").unwrap();
    assert_eq!(sealed.len(), 12 + plain.len() + 16);
    assert_eq!(&*c.decrypt(&sealed, b"key-name").unwrap(), plain);
    // A fresh IV every time.
    assert_ne!(c.encrypt(plain, b"key-name").unwrap()[..12], sealed[..12]);
    // The layout is aes-gcm's: Hsm::decrypt opens it too.
    assert_eq!(
        &*hsm
            .decrypt(
                &me,
                k.handle,
                EncryptMechanism::AesGcm,
                &sealed,
                b"key-name"
            )
            .unwrap(),
        plain
    );
    let refused = |r: Result<zeroize::Zeroizing<Vec<u8>>>| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{e}");
    };
    refused(c2.decrypt(&sealed, b"key-name"));
    refused(c.decrypt(&sealed, b"other-name"));
    for at in [0, 12, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[at] ^= 1;
        refused(c.decrypt(&bad, b"key-name"));
    }
    refused(c.decrypt(&sealed[..27], b"key-name"));
    refused(c.decrypt(&[], b"key-name"));
    assert_eq!(c.info().attributes.label, "ticket-a");
    assert_eq!(c.handle(), k.handle);
    assert_eq!(hsm.key_usage(&me, k.handle).unwrap().encrypt, 2);
}

#[test]
fn key_cipher_checks_attributes_key_type_rights_and_destruction_at_every_call() {
    let hsm = TestHsm::new();
    let me = hsm.service();
    let enc_only = hsm
        .generate_secret_key(
            &me,
            KeySpec::Aes256,
            &aes("enc-only").with(AttributeName::Decrypt, false),
        )
        .unwrap();
    let c = hsm.cipher(&me, enc_only.handle).unwrap();
    let sealed = c.encrypt(b"x", b"").unwrap();
    let e = c.decrypt(&sealed, b"").unwrap_err();
    assert_eq!(e.code(), "attribute_violation", "{e}");

    let k = hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("both"))
        .unwrap();
    let c = hsm.cipher(&me, k.handle).unwrap();
    let sealed = c.encrypt(b"x", b"").unwrap();
    // Attributes are read at each call, not when the handle was made.
    hsm.set_attribute(
        &me,
        k.handle,
        AttributeName::Encrypt,
        AttributeValue::Bool(false),
    )
    .unwrap();
    assert_eq!(
        c.encrypt(b"x", b"").unwrap_err().code(),
        "attribute_violation"
    );
    assert_eq!(&*c.decrypt(&sealed, b"").unwrap(), b"x");
    hsm.destroy_key(&me, k.handle).unwrap();
    assert_eq!(c.decrypt(&sealed, b"").unwrap_err().code(), "key_not_found");

    // Only secret AES keys.
    let (private, public) = hsm
        .generate_key_pair(
            &me,
            KeySpec::EcP256,
            &KeyTemplate::labelled("ec").with(AttributeName::Sign, true),
            &KeyTemplate::labelled("ec"),
        )
        .unwrap();
    let hmac = hsm
        .generate_secret_key(
            &me,
            KeySpec::GenericSecret { bytes: 32 },
            &KeyTemplate::labelled("mac"),
        )
        .unwrap();
    for h in [private.handle, public.handle, hmac.handle] {
        assert_eq!(hsm.cipher(&me, h).unwrap_err().code(), "mechanism_invalid");
    }

    // Another crypto-user may not use the proxy's key; an ended session stops the handle.
    hsm.bootstrap_admin("admin", &Password::from("admin-password"))
        .unwrap();
    let hour = Duration::from_secs(3600);
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), hour)
        .unwrap();
    hsm.create_user(
        &admin,
        "bob",
        Role::CryptoUser,
        &Password::from("bob-password"),
    )
    .unwrap();
    let (bob, _) = hsm
        .login("bob", &Password::from("bob-password"), hour)
        .unwrap();
    let bobs = hsm
        .generate_secret_key(&bob, KeySpec::Aes256, &aes("bobs"))
        .unwrap();
    assert_eq!(
        hsm.cipher(&bob, enc_only.handle).unwrap_err().code(),
        "key_not_found"
    );
    assert_eq!(
        hsm.cipher(&admin, enc_only.handle).unwrap_err().code(),
        "permission_denied"
    );
    let bc = hsm.cipher(&bob, bobs.handle).unwrap();
    bc.encrypt(b"x", b"").unwrap();
    hsm.logout(&bob);
    assert_eq!(bc.encrypt(b"x", b"").unwrap_err().code(), "session_invalid");
}

#[test]
fn key_cipher_debug_shows_no_key_bytes() {
    let hsm = TestHsm::new();
    let me = hsm.service();
    let k = hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("dbg"))
        .unwrap();
    let value = hsm.test_secret_value(k.handle).unwrap();
    let hex = hex::encode(&*value);
    let c = hsm.cipher(&me, k.handle).unwrap();
    let text = format!("{c:?}");
    assert!(text.contains("dbg"), "{text}");
    assert!(!text.to_lowercase().contains(&hex), "{text}");
    assert!(!text.contains(&format!("{:?}", &value[..])), "{text}");
}

#[test]
fn a_read_only_hsm_uses_keys_but_refuses_every_write() {
    let (f, hsm) = fixture();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let k = hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("shared"))
        .unwrap();
    let sealed = hsm
        .cipher(&me, k.handle)
        .unwrap()
        .encrypt(b"hi", b"")
        .unwrap();
    hsm.bootstrap_admin("admin", &Password::from("admin-password"))
        .unwrap();
    let before = store_marks(&f);

    let ro = reader(&f);
    assert!(ro.is_read_only() && !hsm.is_read_only());
    let ro_me = ro.service_session(PROXY_USER).unwrap();
    let c = ro.cipher(&ro_me, k.handle).unwrap();
    assert_eq!(&*c.decrypt(&sealed, b"").unwrap(), b"hi");
    c.encrypt(b"more", b"").unwrap();

    let read_only = |e: Error| {
        assert_eq!(e.code(), "read_only", "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
    };
    read_only(
        ro.generate_secret_key(&ro_me, KeySpec::Aes256, &aes("new"))
            .unwrap_err(),
    );
    read_only(
        ro.generate_secret_key(
            &ro_me,
            KeySpec::Aes256,
            &aes("session").with(AttributeName::Token, false),
        )
        .unwrap_err(),
    );
    read_only(ro.destroy_key(&ro_me, k.handle).unwrap_err());
    read_only(
        ro.set_attribute(
            &ro_me,
            k.handle,
            AttributeName::Label,
            AttributeValue::Text("renamed".into()),
        )
        .unwrap_err(),
    );
    read_only(ro.record_unseal("reader").unwrap_err());
    read_only(ro.record_seal("reader").unwrap_err());
    read_only(
        ro.login(
            "admin",
            &Password::from("admin-password"),
            Duration::from_secs(60),
        )
        .unwrap_err(),
    );
    read_only(
        ro.login(
            "admin",
            &Password::from("wrong-password"),
            Duration::from_secs(60),
        )
        .unwrap_err(),
    );
    assert_eq!(
        store_marks(&f),
        before,
        "the read-only HSM wrote to the store"
    );
    // The writer goes on working beside it.
    hsm.record_unseal("writer").unwrap();
}

#[test]
fn sync_token_objects_learns_what_another_instance_created_changed_and_destroyed() {
    let (f, w) = fixture();
    let wme = w.service_session(PROXY_USER).unwrap();
    let r = reader(&f);
    let rme = r.service_session(PROXY_USER).unwrap();
    assert!(r.sync_token_objects().unwrap().is_empty());

    let k = w
        .generate_secret_key(&wme, KeySpec::Aes256, &aes("tls-ticket-key-1"))
        .unwrap();
    let sealed = w
        .cipher(&wme, k.handle)
        .unwrap()
        .encrypt(b"t", b"n")
        .unwrap();
    assert_eq!(
        r.cipher(&rme, k.handle).unwrap_err().code(),
        "key_not_found"
    );
    let changes = r.sync_token_objects().unwrap();
    assert_eq!(changes.added, vec![k.handle]);
    assert!(changes.updated.is_empty() && changes.removed.is_empty());
    let rc = r.cipher(&rme, k.handle).unwrap();
    assert_eq!(&*rc.decrypt(&sealed, b"n").unwrap(), b"t");
    assert_eq!(r.key_info(&rme, k.handle).unwrap(), k);
    assert!(r.sync_token_objects().unwrap().is_empty());

    w.set_attribute(
        &wme,
        k.handle,
        AttributeName::Label,
        AttributeValue::Text("renamed".into()),
    )
    .unwrap();
    let changes = r.sync_token_objects().unwrap();
    assert_eq!(changes.updated, vec![k.handle]);
    assert_eq!(rc.info().attributes.label, "renamed");

    w.destroy_key(&wme, k.handle).unwrap();
    let changes = r.sync_token_objects().unwrap();
    assert_eq!(changes.removed, vec![k.handle]);
    assert_eq!(
        rc.decrypt(&sealed, b"n").unwrap_err().code(),
        "key_not_found"
    );
    assert_eq!(
        r.cipher(&rme, k.handle).unwrap_err().code(),
        "key_not_found"
    );

    // On the writer itself a sync finds nothing.
    assert!(w.sync_token_objects().unwrap().is_empty());
}

#[test]
fn sync_refuses_an_edited_record_loudly_and_applies_nothing() {
    let (f, w) = fixture();
    let wme = w.service_session(PROXY_USER).unwrap();
    let r = reader(&f);
    let rme = r.service_session(PROXY_USER).unwrap();
    let a = w
        .generate_secret_key(&wme, KeySpec::Aes256, &aes("a"))
        .unwrap();
    let b = w
        .generate_secret_key(&wme, KeySpec::Aes256, &aes("b"))
        .unwrap();
    // Flip a byte in the middle of b's ciphertext, as someone with the file would.
    let raw = f.backend();
    let mut rec = raw.get("key", &b.handle.to_string()).unwrap().unwrap();
    let mid = rec.blob.len() / 2;
    rec.blob[mid] ^= 1;
    raw.write_batch(&[
        Write::Delete(rec.kind.clone(), rec.id.clone(), rec.version),
        Write::Insert(rec),
    ])
    .unwrap();
    let e = r.sync_token_objects().unwrap_err();
    assert_eq!(e.code(), "record_tampered", "{e}");
    assert!(e.to_string().contains(&format!("key/{}", b.handle)), "{e}");
    // Nothing was applied, not even the intact new key.
    assert_eq!(
        r.cipher(&rme, a.handle).unwrap_err().code(),
        "key_not_found"
    );
}

#[test]
fn sync_refuses_a_record_the_manifest_does_not_list_or_a_rolled_back_manifest() {
    let (f, w) = fixture();
    let wme = w.service_session(PROXY_USER).unwrap();
    let r = reader(&f);
    let rme = r.service_session(PROXY_USER).unwrap();
    let k = w
        .generate_secret_key(&wme, KeySpec::Aes256, &aes("old"))
        .unwrap();
    assert_eq!(r.sync_token_objects().unwrap().added, vec![k.handle]);
    let raw = f.backend();
    let saved = raw.get("key", &k.handle.to_string()).unwrap().unwrap();
    let saved_manifest = raw.get("manifest", "records").unwrap().unwrap();
    w.destroy_key(&wme, k.handle).unwrap();
    // The destroyed key's record put back: authentic, but no longer listed.
    raw.insert(&saved).unwrap();
    let e = r.sync_token_objects().unwrap_err();
    assert_eq!(e.code(), "record_tampered", "{e}");
    assert!(
        e.to_string()
            .contains(&format!("key/{} is not in the manifest", k.handle)),
        "{e}"
    );
    // The reader still has the key: nothing was applied.
    r.cipher(&rme, k.handle).unwrap();

    // Take the record out again; the reader learns of the destruction.
    raw.delete("key", &k.handle.to_string(), saved.version)
        .unwrap();
    assert_eq!(r.sync_token_objects().unwrap().removed, vec![k.handle]);

    // Now the key record and the old manifest both put back (a rolled-back store): consistent
    // with each other, but older than the manifest the reader saw.
    let current = raw.get("manifest", "records").unwrap().unwrap();
    raw.write_batch(&[
        Write::Delete("manifest".into(), "records".into(), current.version),
        Write::Insert(saved_manifest),
        Write::Insert(saved),
    ])
    .unwrap();
    let e = r.sync_token_objects().unwrap_err();
    assert_eq!(e.code(), "record_tampered", "{e}");
    assert!(e.to_string().contains("went back"), "{e}");
    assert_eq!(
        r.cipher(&rme, k.handle).unwrap_err().code(),
        "key_not_found"
    );
}
