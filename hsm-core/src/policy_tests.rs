//! Every refusal path of the policy: attributes, ownership, sharing, roles, attribute rules,
//! lockout, sessions; and the audit chain against edits, deletions, insertions, reordering.

use std::time::Duration;

use keyward_keystore::{Backend, SqliteBackend, Write};

use crate::test_util::password_of;
use crate::tests::TestHsm;
use crate::*;

const HOUR: Duration = Duration::from_secs(3600);

struct World {
    f: crate::tests::Fixture,
    hsm: Hsm,
    admin: Session,
    alice: Session,
    bob: Session,
    carol: Session,
}

fn world() -> World {
    let t = TestHsm::new();
    let admin = t.admin();
    for name in ["alice", "bob", "carol"] {
        t.create_user(&admin, name, Role::CryptoUser, &password_of(name))
            .unwrap();
    }
    let login = |n: &str| t.login_as(n, &password_of(n));
    let (alice, bob, carol) = (login("alice"), login("bob"), login("carol"));
    let (f, hsm) = t.into_parts();
    World {
        f,
        hsm,
        admin,
        alice,
        bob,
        carol,
    }
}

fn t(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
    r.unwrap_err().code().as_str()
}

fn m(b: &[u8]) -> SignInput<'_> {
    SignInput::Message(b)
}

const DER: SignatureEncoding = SignatureEncoding::Der;

#[test]
fn each_missing_attribute_refuses_its_operation() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let (ec, ec_pub) = h
        .generate_key_pair(a, KeySpec::EcP256, &t("ec"), &t("ec"))
        .unwrap();
    assert!(
        !ec.attributes.sign && !ec_pub.attributes.verify,
        "asymmetric sign/verify default to false"
    );
    assert_eq!(
        code(h.sign(a, ec.handle, SignMechanism::EcdsaSha256, m(b"x"), DER)),
        "attribute_violation"
    );
    assert_eq!(
        code(h.verify(
            a,
            ec_pub.handle,
            SignMechanism::EcdsaSha256,
            m(b"x"),
            b"sig",
            DER
        )),
        "attribute_violation"
    );
    assert_eq!(
        code(h.derive_key(
            a,
            ec.handle,
            &EcdhParams {
                peer_public: &h.public_key_spki(a, ec_pub.handle).unwrap(),
                salt: b"",
                info: b""
            },
            KeySpec::Aes128,
            &t("d")
        )),
        "attribute_violation"
    );
    let aes = h
        .generate_secret_key(a, KeySpec::Aes256, &t("aes"))
        .unwrap();
    assert_eq!(
        code(h.encrypt(a, aes.handle, EncryptMechanism::AesGcm, b"x", b"")),
        "attribute_violation"
    );
    assert_eq!(
        code(h.decrypt(a, aes.handle, EncryptMechanism::AesGcm, &[0; 28], b"")),
        "attribute_violation"
    );
    let target = h
        .generate_secret_key(
            a,
            KeySpec::Aes128,
            &t("target").with(AttributeName::Extractable, true),
        )
        .unwrap();
    assert_eq!(
        code(h.wrap_key(a, aes.handle, WrapMechanism::AesKwp, target.handle)),
        "attribute_violation"
    );
    assert_eq!(
        code(h.unwrap_key(
            a,
            aes.handle,
            WrapMechanism::AesKwp,
            &[0; 24],
            UnwrapTarget::Secret(KeySpec::Aes128),
            &t("u")
        )),
        "attribute_violation"
    );
    let fixed = h
        .generate_secret_key(
            a,
            KeySpec::Aes128,
            &t("fixed").with(AttributeName::Destroyable, false),
        )
        .unwrap();
    assert_eq!(code(h.destroy_key(a, fixed.handle)), "attribute_violation");
    // And with the attribute set, each works.
    let kek = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("kek")
                .with(AttributeName::Wrap, true)
                .with(AttributeName::Unwrap, true),
        )
        .unwrap();
    let wrapped = h
        .wrap_key(a, kek.handle, WrapMechanism::AesKwp, target.handle)
        .unwrap();
    h.unwrap_key(
        a,
        kek.handle,
        WrapMechanism::AesKwp,
        &wrapped,
        UnwrapTarget::Secret(KeySpec::Aes128),
        &t("u"),
    )
    .unwrap();
}

#[test]
fn non_extractable_and_wrap_with_trusted_keys_are_not_exported_without_rights() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let kek = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("kek").with(AttributeName::Wrap, true),
        )
        .unwrap();
    let sealed = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("sealed").with(AttributeName::Extractable, false),
        )
        .unwrap();
    assert_eq!(
        code(h.wrap_key(a, kek.handle, WrapMechanism::AesKw, sealed.handle)),
        "attribute_violation"
    );
    let guarded = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("guarded")
                .with(AttributeName::WrapWithTrusted, true)
                .with(AttributeName::Extractable, true),
        )
        .unwrap();
    assert_eq!(
        code(h.wrap_key(a, kek.handle, WrapMechanism::AesKw, guarded.handle)),
        "attribute_violation"
    );
    // Only an admin makes a key trusted.
    assert_eq!(
        code(h.set_attribute(
            a,
            kek.handle,
            AttributeName::Trusted,
            AttributeValue::Bool(true)
        )),
        "permission_denied"
    );
    h.set_attribute(
        &w.admin,
        kek.handle,
        AttributeName::Trusted,
        AttributeValue::Bool(true),
    )
    .unwrap();
    h.wrap_key(a, kek.handle, WrapMechanism::AesKw, guarded.handle)
        .unwrap();
    // wrap_with_trusted cannot be cleared.
    assert_eq!(
        code(h.set_attribute(
            a,
            guarded.handle,
            AttributeName::WrapWithTrusted,
            AttributeValue::Bool(false)
        )),
        "attribute_violation"
    );
}

/// Alice's HMAC key "mac" (sign, verify) and AES key "kek" (wrap).
fn alices_mac_and_kek(w: &World) -> (KeyInfo, KeyInfo) {
    let (h, a) = (&w.hsm, &w.alice);
    let key = h
        .generate_secret_key(
            a,
            KeySpec::GenericSecret { bytes: 32 },
            &t("mac")
                .with(AttributeName::Sign, true)
                .with(AttributeName::Verify, true),
        )
        .unwrap();
    let kek = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("kek").with(AttributeName::Wrap, true),
        )
        .unwrap();
    (key, kek)
}

#[test]
fn keys_not_shared_are_invisible_and_look_missing() {
    let w = world();
    let (h, b) = (&w.hsm, &w.bob);
    let (key, kek) = alices_mac_and_kek(&w);
    // Not shared: Bob can neither see nor use it, and cannot tell it from a missing handle.
    let missing = KeyHandle(key.handle.0 ^ 1);
    for handle in [key.handle, missing] {
        assert_eq!(
            code(h.sign(b, handle, SignMechanism::HmacSha256, m(b"x"), DER)),
            "key_not_found"
        );
        assert_eq!(code(h.key_info(b, handle)), "key_not_found");
        assert_eq!(code(h.share_key(b, handle, "bob")), "key_not_found");
        assert_eq!(code(h.destroy_key(b, handle)), "key_not_found");
        assert_eq!(code(h.public_key_spki(b, handle)), "key_not_found");
        assert_eq!(
            code(h.wrap_key(b, kek.handle, WrapMechanism::AesKwp, handle)),
            "key_not_found"
        );
    }
    assert_eq!(
        h.sign(b, missing, SignMechanism::HmacSha256, m(b"x"), DER)
            .unwrap_err()
            .to_string()
            .replace(&missing.to_string(), "H"),
        h.sign(b, key.handle, SignMechanism::HmacSha256, m(b"x"), DER)
            .unwrap_err()
            .to_string()
            .replace(&key.handle.to_string(), "H"),
        "the same message for a hidden and a missing key"
    );
}

#[test]
fn owners_share_for_use_only_and_others_get_nothing() {
    let w = world();
    let (h, a, b, c) = (&w.hsm, &w.alice, &w.bob, &w.carol);
    let (key, kek) = alices_mac_and_kek(&w);
    h.share_key(a, key.handle, "bob").unwrap();
    h.share_key(a, kek.handle, "bob").unwrap();
    // Shared: Bob uses it ...
    let tag = h
        .sign(b, key.handle, SignMechanism::HmacSha256, m(b"x"), DER)
        .unwrap();
    assert!(h
        .verify(a, key.handle, SignMechanism::HmacSha256, m(b"x"), &tag, DER)
        .unwrap());
    assert_eq!(
        h.key_info(b, key.handle).unwrap().shared_with,
        vec!["bob".to_string()]
    );
    // ... but cannot export, delete, share or change it.
    assert_eq!(
        code(h.wrap_key(b, kek.handle, WrapMechanism::AesKwp, key.handle)),
        "permission_denied"
    );
    assert_eq!(code(h.destroy_key(b, key.handle)), "permission_denied");
    assert_eq!(
        code(h.share_key(b, key.handle, "carol")),
        "permission_denied"
    );
    assert_eq!(
        code(h.unshare_key(b, key.handle, "bob")),
        "permission_denied"
    );
    assert_eq!(
        code(h.set_attribute(
            b,
            key.handle,
            AttributeName::Sign,
            AttributeValue::Bool(false)
        )),
        "permission_denied"
    );
    // Carol still has nothing; admins are not crypto-users.
    assert_eq!(
        code(h.sign(c, key.handle, SignMechanism::HmacSha256, m(b"x"), DER)),
        "key_not_found"
    );
    assert_eq!(code(h.share_key(a, key.handle, "admin")), "invalid_input");
    // The same answer for an unknown user as for an admin: roles are not disclosed.
    let (to_admin, to_nobody) = (
        h.share_key(a, key.handle, "admin").unwrap_err(),
        h.share_key(a, key.handle, "nobody").unwrap_err(),
    );
    assert_eq!(to_nobody.code(), "invalid_input");
    assert_eq!(
        to_admin.to_string().replace("admin", "X"),
        to_nobody.to_string().replace("nobody", "X")
    );
    // A user a key is shared with sees itself in shared_with, not the others; the owner sees
    // everyone.
    h.share_key(a, key.handle, "bob").unwrap();
    h.share_key(a, key.handle, "carol").unwrap();
    assert_eq!(h.key_info(b, key.handle).unwrap().shared_with, ["bob"]);
    assert_eq!(
        h.key_info(a, key.handle).unwrap().shared_with,
        ["bob", "carol"]
    );
    let listed = h.list_keys(c, &KeyFilter::default(), None, 100).unwrap();
    assert!(listed.keys.iter().all(|k| k.shared_with == ["carol"]));
    h.unshare_key(a, key.handle, "carol").unwrap();
    // User names are unique whatever their case.
    assert_eq!(
        code(h.create_user(
            &w.admin,
            "BOB",
            Role::CryptoUser,
            &Password::from("bob-password-2")
        )),
        "user_exists"
    );
    // Unshare ends Bob's use at once.
    h.unshare_key(a, key.handle, "bob").unwrap();
    assert_eq!(
        code(h.sign(b, key.handle, SignMechanism::HmacSha256, m(b"x"), DER)),
        "key_not_found"
    );
    // Lists: Bob sees Alice's kek (still shared) but not the mac key.
    let page = h.list_keys(b, &KeyFilter::default(), None, 100).unwrap();
    let labels: Vec<_> = page
        .keys
        .iter()
        .map(|k| k.attributes.label.as_str())
        .collect();
    assert_eq!(labels, vec!["kek"]);
}

#[test]
fn admins_manage_users_but_cannot_use_keys_and_crypto_users_cannot_manage_users() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let key = h
        .generate_secret_key(
            a,
            KeySpec::Aes128,
            &t("k").with(AttributeName::Encrypt, true),
        )
        .unwrap();
    assert_eq!(
        code(h.encrypt(&w.admin, key.handle, EncryptMechanism::AesGcm, b"x", b"")),
        "permission_denied"
    );
    assert_eq!(
        code(h.generate_secret_key(&w.admin, KeySpec::Aes128, &t("adm"))),
        "permission_denied"
    );
    assert_eq!(code(h.signer(&w.admin, key.handle)), "permission_denied");
    // Admins see every key's description, not its value.
    assert_eq!(h.key_info(&w.admin, key.handle).unwrap().handle, key.handle);
    assert_eq!(
        code(h.create_user(
            a,
            "mallory",
            Role::Admin,
            &Password::from("mallory-password")
        )),
        "permission_denied"
    );
    assert_eq!(code(h.delete_user(a, "bob")), "permission_denied");
    assert_eq!(
        code(h.change_password(a, "bob", &Password::from("bob-new-password"))),
        "permission_denied"
    );
    assert_eq!(code(h.audit_entries(a, 1, 10)), "permission_denied");
    assert_eq!(
        code(h.bootstrap_admin("second", &Password::from("second-password"))),
        "permission_denied"
    );
    // A user who owns keys cannot be deleted; one who owns none can.
    assert_eq!(code(h.delete_user(&w.admin, "alice")), "invalid_input");
    h.delete_user(&w.admin, "carol").unwrap();
    assert!(!w.carol.is_active(), "deleting a user ends its sessions");
    assert_eq!(code(h.delete_user(&w.admin, PROXY_USER)), "invalid_input");
}

#[test]
fn attribute_rules_hold() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let k = h.generate_secret_key(a, KeySpec::Aes128, &t("k")).unwrap();
    let set = |n: AttributeName, v: bool| h.set_attribute(a, k.handle, n, AttributeValue::Bool(v));
    assert_eq!(
        code(set(AttributeName::Extractable, false)),
        "attribute_violation"
    );
    assert_eq!(
        code(set(AttributeName::Local, false)),
        "attribute_violation"
    );
    assert_eq!(
        code(set(AttributeName::NeverExtractable, true)),
        "attribute_violation"
    );
    assert_eq!(
        code(set(AttributeName::Sensitive, false)),
        "attribute_violation"
    );
    assert_eq!(
        code(h.set_attribute(
            a,
            k.handle,
            AttributeName::CheckValue,
            AttributeValue::Text("000000".into())
        )),
        "attribute_violation"
    );
    assert_eq!(
        code(h.set_attribute(
            a,
            k.handle,
            AttributeName::Label,
            AttributeValue::Bool(true)
        )),
        "invalid_input"
    );
    set(AttributeName::Encrypt, true).unwrap();
    h.set_attribute(
        a,
        k.handle,
        AttributeName::Label,
        AttributeValue::Text("renamed".into()),
    )
    .unwrap();
    set(AttributeName::Modifiable, false).unwrap();
    assert_eq!(
        code(set(AttributeName::Modifiable, true)),
        "attribute_violation"
    );
    assert_eq!(
        code(set(AttributeName::Decrypt, true)),
        "attribute_violation"
    );
    let info = h.key_info(a, k.handle).unwrap();
    assert!(info.attributes.encrypt && !info.attributes.modifiable && !info.attributes.decrypt);
    assert_eq!(info.attributes.label, "renamed");
    // Changes persist across reopen.
    let World { f, hsm, .. } = w;
    drop(hsm);
    let hsm = f.open().unwrap();
    let (alice, _) = hsm
        .login("alice", &Password::from("alice-password"), HOUR)
        .unwrap();
    let again = hsm.key_info(&alice, k.handle).unwrap();
    assert_eq!(again, info);
}

#[test]
fn five_failed_logins_lock_until_an_admin_sets_a_password() {
    let w = world();
    let h = &w.hsm;
    for i in 1..=4 {
        assert_eq!(
            code(h.login("bob", &Password::from("wrong-password"), HOUR)),
            "authentication_failed",
            "try {i}"
        );
    }
    // Locked, and to an unauthenticated caller indistinguishable from a wrong password or
    // an unknown user (same error, same message).
    let locking = h
        .login("bob", &Password::from("wrong-password"), HOUR)
        .unwrap_err();
    let locked = h
        .login("bob", &Password::from("bob-password"), HOUR)
        .unwrap_err();
    let unknown = h
        .login("nobody", &Password::from("bob-password"), HOUR)
        .unwrap_err();
    for e in [&locking, &locked] {
        assert_eq!(e.code(), unknown.code());
        assert_eq!(e.to_string(), unknown.to_string());
    }
    let info = h
        .list_users(&w.admin)
        .unwrap()
        .into_iter()
        .find(|u| u.name == "bob")
        .unwrap();
    assert!(info.locked && info.failed_logins == 5);
    // A crypto-user's lockout does not end by itself.
    assert_eq!(info.lockout_ends_unix_ms, None);
    let outcomes: Vec<String> = h
        .audit_entries(&w.admin, 1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "login" && e.target.as_deref() == Some("bob"))
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes[4..], ["failed; user locked", "locked"]);
    // Bob cannot unlock himself; the admin's reset does.
    assert_eq!(
        code(h.change_password(&w.alice, "bob", &Password::from("new-bob-password"))),
        "permission_denied"
    );
    h.change_password(&w.admin, "bob", &Password::from("new-bob-password"))
        .unwrap();
    h.login("bob", &Password::from("new-bob-password"), HOUR)
        .unwrap();
    // A success resets the count: 4 failures, a success, 4 failures do not lock.
    for _ in 0..4 {
        let _ = h.login("carol", &Password::from("nope-nope"), HOUR);
    }
    h.login("carol", &Password::from("carol-password"), HOUR)
        .unwrap();
    for _ in 0..4 {
        let _ = h.login("carol", &Password::from("nope-nope"), HOUR);
    }
    h.login("carol", &Password::from("carol-password"), HOUR)
        .unwrap();
    // Unknown users and wrong passwords look the same.
    assert_eq!(
        code(h.login("nobody", &Password::from("whatever-pw"), HOUR)),
        "authentication_failed"
    );
    assert_eq!(
        code(h.login(PROXY_USER, &Password::from("whatever-pw"), HOUR)),
        "authentication_failed"
    );
}

#[test]
fn sessions_end_at_logout_and_expiry_and_take_session_keys_with_them() {
    let w = world();
    let h = &w.hsm;
    let (s, token) = h
        .login("alice", &Password::from("alice-password"), HOUR)
        .unwrap();
    assert_eq!(h.session(&token).unwrap().user(), "alice");
    let temp = h
        .generate_secret_key(
            &s,
            KeySpec::Aes128,
            &t("temp")
                .with(AttributeName::Token, false)
                .with(AttributeName::Encrypt, true),
        )
        .unwrap();
    h.encrypt(&s, temp.handle, EncryptMechanism::AesGcm, b"x", b"")
        .unwrap();
    h.logout(&s);
    assert_eq!(code(h.session(&token)), "session_invalid");
    assert_eq!(
        code(h.encrypt(&s, temp.handle, EncryptMechanism::AesGcm, b"x", b"")),
        "session_invalid"
    );
    assert_eq!(
        code(h.key_info(&w.alice, temp.handle)),
        "key_not_found",
        "session keys die with their session"
    );
    let (short, _) = h
        .login("alice", &Password::from("alice-password"), Duration::ZERO)
        .unwrap();
    assert_eq!(code(h.random(&short, 16)), "session_invalid");
    assert_eq!(
        code(h.session(&SessionToken::from_string("00".repeat(32)))),
        "session_invalid"
    );
}

fn audit_records(f: &crate::tests::Fixture) -> (SqliteBackend, Vec<keyward_keystore::Record>) {
    let store = f.backend();
    let recs = store.list("audit").unwrap();
    (store, recs)
}

#[test]
fn audit_verify_detects_edits_deletions_insertions_and_reordering() {
    let w = world();
    let report = w.hsm.verify_audit(&w.admin).unwrap();
    assert!(report.intact && report.entries >= 8, "{report:?}");
    let entries = w.hsm.audit_entries(&w.admin, 1, 100).unwrap();
    assert!(entries
        .iter()
        .any(|e| e.event == "user.create" && e.target.as_deref() == Some("alice")));
    assert!(entries
        .iter()
        .any(|e| e.event == "login" && e.actor == "bob" && e.outcome == "ok"));
    let World { f, hsm, admin, .. } = w;
    let check = |hsm: &Hsm| hsm.verify_audit(&admin).unwrap();
    let (store, recs) = audit_records(&f);
    let third = recs[2].clone();
    let fourth = recs[3].clone();

    // Edit: flip a byte of entry 3.
    let mut edited = third.clone();
    edited.blob[20] ^= 1;
    edited.version += 1;
    store.update(&edited).unwrap();
    let r = check(&hsm);
    assert!(
        !r.intact && r.problem.as_deref().unwrap().contains("entry 3"),
        "{r:?}"
    );
    store
        .write_batch(&[
            Write::Delete("audit".into(), third.id.clone(), edited.version),
            Write::Insert(third.clone()),
        ])
        .unwrap();
    assert!(check(&hsm).intact);

    // Delete entry 3.
    store.delete("audit", &third.id, third.version).unwrap();
    let r = check(&hsm);
    assert!(
        !r.intact && r.problem.as_deref().unwrap().contains("entry 3 is missing"),
        "{r:?}"
    );
    store.insert(&third).unwrap();
    assert!(check(&hsm).intact);

    // Reorder: swap the blobs of entries 3 and 4.
    let mut a = third.clone();
    a.blob = fourth.blob.clone();
    let mut b = fourth.clone();
    b.blob = third.blob.clone();
    store
        .write_batch(&[
            Write::Delete("audit".into(), third.id.clone(), third.version),
            Write::Delete("audit".into(), fourth.id.clone(), fourth.version),
            Write::Insert(a),
            Write::Insert(b),
        ])
        .unwrap();
    let r = check(&hsm);
    assert!(
        !r.intact && r.problem.as_deref().unwrap().contains("entry 3"),
        "{r:?}"
    );
    store
        .write_batch(&[
            Write::Delete("audit".into(), third.id.clone(), third.version),
            Write::Delete("audit".into(), fourth.id.clone(), fourth.version),
            Write::Insert(third.clone()),
            Write::Insert(fourth.clone()),
        ])
        .unwrap();
    assert!(check(&hsm).intact);

    // Insert: a copy of entry 3 as an extra entry at the end.
    let last = recs.last().unwrap();
    let next_id = format!("{:020}", last.id.parse::<u64>().unwrap() + 1);
    let mut extra = third.clone();
    extra.id = next_id.clone();
    store.insert(&extra).unwrap();
    let r = check(&hsm);
    assert!(!r.intact, "{r:?}");
    store.delete("audit", &next_id, extra.version).unwrap();
    assert!(check(&hsm).intact);

    // Truncate: delete the last entry.
    store.delete("audit", &last.id, last.version).unwrap();
    let r = check(&hsm);
    assert!(
        !r.intact && r.problem.as_deref().unwrap().contains("head"),
        "{r:?}"
    );
}

#[test]
fn per_key_usage_is_counted_without_audit_entries() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let k = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("k")
                .with(AttributeName::Encrypt, true)
                .with(AttributeName::Decrypt, true),
        )
        .unwrap();
    let before = h.verify_audit(&w.admin).unwrap().entries;
    for _ in 0..10 {
        let ct = h
            .encrypt(a, k.handle, EncryptMechanism::AesGcm, b"x", b"")
            .unwrap();
        h.decrypt(a, k.handle, EncryptMechanism::AesGcm, &ct, b"")
            .unwrap();
    }
    let u = h.key_usage(a, k.handle).unwrap();
    assert_eq!((u.encrypt, u.decrypt, u.sign), (10, 10, 0));
    assert_eq!(h.verify_audit(&w.admin).unwrap().entries, before);
}

// ----- review findings: each was a way around the policy -----

#[test]
fn trusted_cannot_be_chosen_in_a_template() {
    let w = world();
    for tpl in [
        t("x").with(AttributeName::Trusted, true),
        t("x").with(AttributeName::Trusted, false),
    ] {
        assert_eq!(
            code(w.hsm.generate_secret_key(&w.alice, KeySpec::Aes256, &tpl)),
            "invalid_input"
        );
    }
}

#[test]
fn a_wrap_with_trusted_key_keeps_the_restriction_through_a_trusted_round_trip() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let kek = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("kek")
                .with(AttributeName::Wrap, true)
                .with(AttributeName::Unwrap, true),
        )
        .unwrap();
    let info = h
        .set_attribute(
            &w.admin,
            kek.handle,
            AttributeName::Trusted,
            AttributeValue::Bool(true),
        )
        .unwrap();
    assert!(
        info.attributes.wrap_with_trusted,
        "a trusted key is itself wrap_with_trusted"
    );
    let precious = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("precious")
                .with(AttributeName::WrapWithTrusted, true)
                .with(AttributeName::Extractable, true),
        )
        .unwrap();
    let blob = h
        .wrap_key(a, kek.handle, WrapMechanism::AesKwp, precious.handle)
        .unwrap();
    let copy = h
        .unwrap_key(
            a,
            kek.handle,
            WrapMechanism::AesKwp,
            &blob,
            UnwrapTarget::Secret(KeySpec::Aes256),
            &t("copy"),
        )
        .unwrap();
    assert!(copy.attributes.wrap_with_trusted);
    assert!(
        !copy.attributes.never_extractable,
        "an unwrapped key was extractable once"
    );
    let other = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("mine").with(AttributeName::Wrap, true),
        )
        .unwrap();
    assert_eq!(
        code(h.wrap_key(a, other.handle, WrapMechanism::AesKwp, copy.handle)),
        "attribute_violation"
    );
}

#[test]
fn data_keys_and_key_wrapping_keys_are_separate() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let both = t("both")
        .with(AttributeName::Encrypt, true)
        .with(AttributeName::Unwrap, true);
    assert_eq!(
        code(h.generate_secret_key(a, KeySpec::Aes256, &both)),
        "invalid_input"
    );
    let pair = h.generate_key_pair(
        a,
        KeySpec::Rsa2048,
        &t("rsa").with(AttributeName::Decrypt, true),
        &t("rsa").with(AttributeName::Wrap, true),
    );
    assert_eq!(
        code(pair),
        "invalid_input",
        "wrap with the public half, decrypt with the private"
    );
    let k = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("data").with(AttributeName::Encrypt, true),
        )
        .unwrap();
    assert_eq!(
        code(h.set_attribute(
            a,
            k.handle,
            AttributeName::Unwrap,
            AttributeValue::Bool(true)
        )),
        "invalid_input"
    );
    // Unwrap failures say nothing about the bytes inside.
    let kek = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("kek")
                .with(AttributeName::Wrap, true)
                .with(AttributeName::Unwrap, true),
        )
        .unwrap();
    let target = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("target").with(AttributeName::Extractable, true),
        )
        .unwrap();
    let blob = h
        .wrap_key(a, kek.handle, WrapMechanism::AesKwp, target.handle)
        .unwrap();
    let err = h
        .unwrap_key(
            a,
            kek.handle,
            WrapMechanism::AesKwp,
            &blob,
            UnwrapTarget::Secret(KeySpec::Aes128),
            &t("u"),
        )
        .unwrap_err();
    assert!(
        !err.to_string().contains("32") && !err.to_string().contains("16"),
        "{err}"
    );
}

#[test]
fn out_of_range_generic_secrets_are_refused_and_the_store_still_opens() {
    let w = world();
    for bytes in [0u16, 801, 4096] {
        let spec = KeySpec::GenericSecret { bytes };
        assert_eq!(
            code(w.hsm.generate_secret_key(&w.alice, spec, &t("g"))),
            "invalid_input"
        );
    }
    let short = w
        .hsm
        .generate_secret_key(&w.alice, KeySpec::GenericSecret { bytes: 3 }, &t("short"))
        .unwrap();
    assert_eq!(
        short.attributes.check_value, "",
        "no check value that gives a short secret away"
    );
    let World { f, hsm, .. } = w;
    drop(hsm);
    f.open().unwrap();
}

#[test]
fn concurrent_failed_logins_are_all_counted_and_audited() {
    let w = world();
    let h = &w.hsm;
    let before = h.verify_audit(&w.admin).unwrap().entries;
    let results: Vec<&'static str> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| s.spawn(|| code(h.login("bob", &Password::from("wrong-password"), HOUR))))
            .collect();
        handles.into_iter().map(|j| j.join().unwrap()).collect()
    });
    assert!(
        results
            .iter()
            .all(|c| *c == "authentication_failed" || *c == "user_locked"),
        "{results:?}"
    );
    let bob = h
        .list_users(&w.admin)
        .unwrap()
        .into_iter()
        .find(|u| u.name == "bob")
        .unwrap();
    assert!(bob.locked);
    // Every attempt that got past the lock check was counted (those that found the user
    // already locked were refused before the password check).
    let checked = results
        .iter()
        .filter(|c| **c == "authentication_failed")
        .count() as u32;
    assert!(
        bob.failed_logins >= 5 && bob.failed_logins >= checked,
        "{bob:?} {results:?}"
    );
    assert_eq!(
        h.verify_audit(&w.admin).unwrap().entries,
        before + 12,
        "every attempt is audited"
    );
    assert!(!w.bob.is_active(), "locking a user ends its sessions");
    assert_eq!(
        code(h.change_password(&w.bob, "bob", &Password::from("self-unlock-pw"))),
        "session_invalid"
    );
}

#[test]
fn revocation_takes_effect_everywhere() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let (k, _) = h
        .generate_key_pair(
            a,
            KeySpec::EcP256,
            &t("k").with(AttributeName::Sign, true),
            &t("k"),
        )
        .unwrap();
    h.share_key(a, k.handle, "bob").unwrap();
    let signer = h.signer(&w.bob, k.handle).unwrap();
    signer.sign(SignMechanism::EcdsaSha256, b"m").unwrap();
    h.unshare_key(a, k.handle, "bob").unwrap();
    assert_eq!(
        code(signer.sign(SignMechanism::EcdsaSha256, b"m")),
        "permission_denied"
    );
    // Deleting a user withdraws its shares, so a new user of the same name inherits nothing.
    h.share_key(a, k.handle, "carol").unwrap();
    h.delete_user(&w.admin, "carol").unwrap();
    assert!(h.key_info(a, k.handle).unwrap().shared_with.is_empty());
    h.create_user(
        &w.admin,
        "carol",
        Role::CryptoUser,
        &Password::from("new-carol-pw"),
    )
    .unwrap();
    let (carol2, _) = h
        .login("carol", &Password::from("new-carol-pw"), HOUR)
        .unwrap();
    assert_eq!(
        code(h.sign(&carol2, k.handle, SignMechanism::EcdsaSha256, m(b"x"), DER)),
        "key_not_found"
    );
    // Session keys are visible only in their own session.
    let (s2, _) = h
        .login("alice", &Password::from("alice-password"), HOUR)
        .unwrap();
    let temp = h
        .generate_secret_key(
            &s2,
            KeySpec::Aes128,
            &t("temp").with(AttributeName::Token, false),
        )
        .unwrap();
    assert_eq!(code(h.key_info(a, temp.handle)), "key_not_found");
    assert_eq!(h.key_info(&s2, temp.handle).unwrap().handle, temp.handle);
}

#[test]
fn derived_keys_are_no_more_exportable_than_their_base() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let (base, base_pub) = h
        .generate_key_pair(
            a,
            KeySpec::EcP256,
            &t("base")
                .with(AttributeName::Derive, true)
                .with(AttributeName::Extractable, false),
            &t("base"),
        )
        .unwrap();
    let peer = h.public_key_spki(a, base_pub.handle).unwrap();
    let d = h
        .derive_key(
            a,
            base.handle,
            &EcdhParams {
                peer_public: &peer,
                salt: b"",
                info: b"",
            },
            KeySpec::Aes256,
            &t("d"),
        )
        .unwrap();
    assert!(!d.attributes.extractable && d.attributes.never_extractable);
}

#[test]
fn concurrent_creations_cannot_share_a_label_and_ttls_are_bounded() {
    let w = world();
    let ok = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    w.hsm
                        .generate_secret_key(&w.alice, KeySpec::Aes256, &t("same"))
                        .is_ok()
                })
            })
            .collect();
        hs.into_iter()
            .map(|j| j.join().unwrap())
            .filter(|b| *b)
            .count()
    });
    assert_eq!(ok, 1);
    assert_eq!(
        code(
            w.hsm
                .login("alice", &Password::from("alice-password"), Duration::MAX)
        ),
        "invalid_input"
    );
    assert_eq!(
        code(w.hsm.create_user(
            &w.admin,
            "-",
            Role::CryptoUser,
            &Password::from("dash-password")
        )),
        "invalid_input"
    );
    assert_eq!(
        code(
            w.hsm
                .generate_secret_key(&w.alice, KeySpec::Aes128, &t("evil\u{202E}txt"))
        ),
        "invalid_input"
    );
}

#[test]
fn a_rolled_back_audit_head_is_refused_at_open() {
    let w = world();
    let World { f, hsm, admin, .. } = w;
    let store = f.backend();
    let old_head = store.get("audit-head", "head").unwrap().unwrap();
    hsm.audit_entries(&admin, 1, 1).unwrap();
    hsm.create_user(
        &admin,
        "dave",
        Role::CryptoUser,
        &Password::from("dave-password"),
    )
    .unwrap();
    drop(hsm);
    let current = store.get("audit-head", "head").unwrap().unwrap();
    store
        .write_batch(&[
            Write::Delete("audit-head".into(), "head".into(), current.version),
            Write::Insert(old_head),
        ])
        .unwrap();
    drop(store);
    let err = f.open().unwrap_err();
    assert_eq!(err.code(), "audit_damaged");
    assert!(err.to_string().contains("the head names entry"), "{err}");
}

#[test]
fn labels_are_unique_per_owner_and_reserved_prefixes_belong_to_service_users() {
    let w = world();
    let (h, a, b) = (&w.hsm, &w.alice, &w.bob);
    let aes = |s: &Session, label: &str| {
        h.generate_secret_key(
            s,
            KeySpec::Aes256,
            &t(label).with(AttributeName::Encrypt, true),
        )
    };
    // Two users each own a key labelled `data`; neither learns of the other's.
    let alices = aes(a, "data").unwrap();
    let bobs = aes(b, "data").unwrap();
    assert_ne!(alices.handle, bobs.handle);
    // The same owner cannot take a label twice: 409-class error naming only its own key.
    let e = aes(a, "data").unwrap_err();
    assert_eq!(e.code(), "label_exists");
    assert!(e.to_string().contains("you already own"), "{e}");
    // Relabelling into a taken label is refused the same way; into bob's label is fine.
    let other = aes(a, "other").unwrap();
    assert_eq!(
        code(h.set_attribute(
            a,
            other.handle,
            AttributeName::Label,
            AttributeValue::Text("data".into())
        )),
        "label_exists"
    );
    // Lookup by label finds the caller's own key first, even when another user shares a key
    // labelled alike with it.
    h.share_key(b, bobs.handle, "alice").unwrap();
    assert_eq!(
        h.find_by_label(a, "data", KeyClass::Secret).unwrap().handle,
        alices.handle
    );
    assert_eq!(
        h.find_by_label(&w.carol, "data", KeyClass::Secret)
            .unwrap_err()
            .code(),
        "key_not_found"
    );
    // Reserved prefixes: crypto-users get a refusal, the proxy's service user does not.
    for label in [
        "tls-ticket-key-99",
        "keyward-anything",
        "KEYWARD-x",
        " TLS-Ticket-Key-1",
    ] {
        assert_eq!(code(aes(a, label)), "permission_denied", "{label}");
        assert_eq!(
            code(h.set_attribute(
                a,
                other.handle,
                AttributeName::Label,
                AttributeValue::Text(label.into())
            )),
            "permission_denied"
        );
    }
    let proxy = h.service_session(PROXY_USER).unwrap();
    aes(&proxy, "tls-ticket-key-99").unwrap();
}

#[test]
fn other_users_public_keys_are_hidden_like_missing_ones() {
    let w = world();
    let (h, a, b) = (&w.hsm, &w.alice, &w.bob);
    let (_, public) = h
        .generate_key_pair(
            a,
            KeySpec::EcP256,
            &t("signing").with(AttributeName::Sign, true),
            &t("signing"),
        )
        .unwrap();
    assert_eq!(code(h.key_info(b, public.handle)), "key_not_found");
    assert_eq!(code(h.public_key_spki(b, public.handle)), "key_not_found");
    assert!(h
        .list_keys(b, &KeyFilter::default(), None, 100)
        .unwrap()
        .keys
        .is_empty());
    // Shared, it is visible and usable (verify) by bob.
    h.share_key(a, public.handle, "bob").unwrap();
    assert_eq!(h.key_info(b, public.handle).unwrap().owner, "alice");
    // Admins see every key, for management.
    assert_eq!(
        h.list_keys(&w.admin, &KeyFilter::default(), None, 100)
            .unwrap()
            .keys
            .len(),
        2
    );
}

#[test]
fn an_admin_destroys_any_token_key_only_through_the_audited_admin_call() {
    let w = world();
    let (h, a) = (&w.hsm, &w.alice);
    let key = h
        .generate_secret_key(
            a,
            KeySpec::Aes256,
            &t("stuck")
                .with(AttributeName::Encrypt, true)
                .with(AttributeName::Destroyable, false),
        )
        .unwrap();
    // The owner cannot (not destroyable); the admin cannot through the owner's call, nor can
    // a crypto-user through the admin's.
    assert_eq!(code(h.destroy_key(a, key.handle)), "attribute_violation");
    assert_eq!(
        code(h.destroy_key(&w.admin, key.handle)),
        "permission_denied"
    );
    assert_eq!(
        code(h.destroy_key_as_admin(&w.bob, key.handle)),
        "permission_denied"
    );
    h.destroy_key_as_admin(&w.admin, key.handle).unwrap();
    assert_eq!(code(h.key_info(a, key.handle)), "key_not_found");
    assert_eq!(
        code(h.destroy_key_as_admin(&w.admin, key.handle)),
        "key_not_found"
    );
    let entries = h.audit_entries(&w.admin, 1, 1000).unwrap();
    let e = entries
        .iter()
        .find(|e| e.event == "key.destroy-by-admin" && e.outcome == "ok")
        .expect("audited");
    assert_eq!(e.actor, "admin");
    let target = e.target.as_deref().unwrap();
    assert!(
        target.contains("owner=alice") && target.contains("\"stuck\""),
        "{target}"
    );
    // The node's own keys (service users') are out of its reach.
    let proxy = h.service_session(PROXY_USER).unwrap();
    let service_key = h
        .generate_secret_key(
            &proxy,
            KeySpec::Aes256,
            &t("tls-ticket-key-1").with(AttributeName::Encrypt, true),
        )
        .unwrap();
    assert_eq!(
        code(h.destroy_key_as_admin(&w.admin, service_key.handle)),
        "permission_denied"
    );
    assert!(h.key_info(&proxy, service_key.handle).is_ok());
}

#[test]
fn an_admin_lockout_ends_by_itself_after_the_configured_time_and_is_audited() {
    let w = world();
    let h = &w.hsm;
    h.create_user(
        &w.admin,
        "admin2",
        Role::Admin,
        &Password::from("admin2-password"),
    )
    .unwrap();
    h.set_admin_lockout(Duration::from_millis(300));
    for _ in 0..MAX_FAILED_LOGINS {
        let _ = h.login("admin2", &Password::from("wrong-password"), HOUR);
    }
    let info = |name: &str| {
        h.list_users(&w.admin)
            .unwrap()
            .into_iter()
            .find(|u| u.name == name)
            .unwrap()
    };
    let locked = info("admin2");
    assert!(locked.locked);
    let ends = locked.lockout_ends_unix_ms.expect("an admin lockout ends");
    // Still locked before the end, even with the right password.
    assert_eq!(
        code(h.login("admin2", &Password::from("admin2-password"), HOUR)),
        "authentication_failed"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (s, _) = loop {
        match h.login("admin2", &Password::from("admin2-password"), HOUR) {
            Ok(ok) => break ok,
            Err(e) => {
                assert_eq!(e.code(), "authentication_failed");
                assert!(std::time::Instant::now() < deadline, "never unlocked");
                std::thread::yield_now();
            }
        }
    };
    assert!(crate::audit::now_unix_ms() >= ends);
    assert_eq!(s.role(), Role::Admin);
    let after = info("admin2");
    assert!(!after.locked && after.failed_logins == 0);
    let expired: Vec<_> = h
        .audit_entries(&w.admin, 1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "user.lockout-expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].target.as_deref(), Some("admin2"));
    // With a zero duration, admins stay locked until a reset, like crypto-users.
    h.set_admin_lockout(Duration::ZERO);
    for _ in 0..MAX_FAILED_LOGINS {
        let _ = h.login("admin2", &Password::from("wrong-password"), HOUR);
    }
    assert_eq!(info("admin2").lockout_ends_unix_ms, None);
    assert!(info("admin2").locked);
}
