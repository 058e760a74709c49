//! Key versions (Vault transit style): rotation, the version settings, trim, rewrap, signers
//! pinned to a version, who may manage versions, and versions across a reopen and a reader
//! node.

use crate::tests::{fixture, TestHsm};
use crate::*;

const GCM: EncryptMechanism = EncryptMechanism::AesGcm;

fn data_key(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Encrypt, true)
        .with(AttributeName::Decrypt, true)
        .with(AttributeName::Sign, false)
        .with(AttributeName::Verify, false)
}

fn signing_pair(h: &Hsm, me: &Session, label: &str) -> (KeyInfo, KeyInfo) {
    h.generate_key_pair(
        me,
        KeySpec::EcP256,
        &KeyTemplate::labelled(label)
            .with(AttributeName::Sign, true)
            .with(AttributeName::Verify, true),
        &KeyTemplate::labelled(label).with(AttributeName::Verify, true),
    )
    .unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    r.unwrap_err().code()
}

fn settings(min_dec: Option<u32>, min_enc: Option<u32>) -> VersionSettings {
    VersionSettings {
        min_decryption_version: min_dec,
        min_encryption_version: min_enc,
    }
}

fn msg(m: &[u8]) -> SignInput<'_> {
    SignInput::Message(m)
}

#[test]
fn encrypt_with_v1_rotate_encrypt_with_v2_both_decrypt_and_min_decryption_version_refuses_v1() {
    let h = TestHsm::new();
    let me = h.service();
    let k = h
        .generate_secret_key(&me, KeySpec::Aes256, &data_key("data"))
        .unwrap();
    assert_eq!(
        (
            k.latest_version,
            k.min_decryption_version,
            k.min_encryption_version
        ),
        (1, 1, 0)
    );
    let v1 = h
        .encrypt_at(&me, k.handle.into(), GCM, b"first", b"aad")
        .unwrap();
    assert_eq!(v1.key_version, 1);

    let rotated = h.rotate_key(&me, k.handle).unwrap();
    assert_eq!(rotated.handle, k.handle);
    assert_eq!(rotated.attributes.label, "data");
    assert_eq!(rotated.latest_version, 2);
    assert_ne!(rotated.attributes.check_value, k.attributes.check_value);
    assert_eq!(h.key_info(&me, k.handle).unwrap(), rotated);

    let v2 = h
        .encrypt_at(&me, k.handle.into(), GCM, b"second", b"aad")
        .unwrap();
    assert_eq!(v2.key_version, 2);
    // The unversioned calls use the latest version.
    let latest = h.encrypt(&me, k.handle, GCM, b"third", b"").unwrap();
    assert_eq!(
        &*h.decrypt(&me, k.handle, GCM, &latest, b"").unwrap(),
        b"third"
    );

    let open = |ct: &Versioned, v: u32| {
        h.decrypt_at(&me, KeyRef::version(k.handle, v), GCM, &ct.bytes, b"aad")
    };
    assert_eq!(&*open(&v1, 1).unwrap(), b"first");
    assert_eq!(&*open(&v2, 2).unwrap(), b"second");
    // A ciphertext opened with another version's key does not authenticate.
    assert_eq!(code(open(&v1, 2)), ErrorCode::InvalidInput);
    assert_eq!(code(open(&v2, 1)), ErrorCode::InvalidInput);
    // Versions the key never had.
    assert_eq!(code(open(&v1, 0)), ErrorCode::InvalidInput);
    assert_eq!(code(open(&v1, 3)), ErrorCode::InvalidInput);

    // Explicit older versions encrypt until a minimum says otherwise.
    let again = h
        .encrypt_at(&me, KeyRef::version(k.handle, 1), GCM, b"old", b"aad")
        .unwrap();
    assert_eq!(again.key_version, 1);

    let info = h
        .configure_key_versions(&me, k.handle, settings(Some(2), None))
        .unwrap();
    assert_eq!(info.min_decryption_version, 2);
    let err = open(&v1, 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyVersionRetired);
    assert_eq!(err.code().as_str(), "key_version_retired");
    let text = err.to_string();
    assert!(
        text.contains("version 1") && text.contains("decrypt"),
        "{text}"
    );
    assert_eq!(&*open(&v2, 2).unwrap(), b"second");
    assert_eq!(
        code(h.encrypt_at(&me, KeyRef::version(k.handle, 1), GCM, b"x", b"")),
        ErrorCode::KeyVersionRetired
    );

    // min_decryption_version goes back down while the versions are held.
    h.configure_key_versions(&me, k.handle, settings(Some(1), None))
        .unwrap();
    assert_eq!(&*open(&v1, 1).unwrap(), b"first");
    // Out of range: above the latest, 0; min_encryption_version below min_decryption_version.
    for bad in [
        settings(Some(3), None),
        settings(Some(0), None),
        settings(None, Some(3)),
    ] {
        assert_eq!(
            code(h.configure_key_versions(&me, k.handle, bad)),
            ErrorCode::InvalidInput,
            "{bad:?}"
        );
    }
    h.configure_key_versions(&me, k.handle, settings(Some(2), Some(2)))
        .unwrap();
    assert_eq!(
        code(h.configure_key_versions(&me, k.handle, settings(None, Some(1)))),
        ErrorCode::InvalidInput
    );
}

#[test]
fn min_encryption_version_refuses_explicit_old_versions_for_new_data_only() {
    let h = TestHsm::new();
    let me = h.service();
    let k = h
        .generate_secret_key(&me, KeySpec::Aes128, &data_key("d"))
        .unwrap();
    let v1 = h
        .encrypt_at(&me, k.handle.into(), GCM, b"one", b"")
        .unwrap();
    h.rotate_key(&me, k.handle).unwrap();
    h.rotate_key(&me, k.handle).unwrap();
    let info = h
        .configure_key_versions(&me, k.handle, settings(None, Some(2)))
        .unwrap();
    assert_eq!(
        (info.min_decryption_version, info.min_encryption_version),
        (1, 2)
    );
    // Old data still opens; new data cannot be made with version 1.
    assert_eq!(
        &*h.decrypt_at(&me, KeyRef::version(k.handle, 1), GCM, &v1.bytes, b"")
            .unwrap(),
        b"one"
    );
    assert_eq!(
        code(h.encrypt_at(&me, KeyRef::version(k.handle, 1), GCM, b"x", b"")),
        ErrorCode::KeyVersionRetired
    );
    let v2 = h
        .encrypt_at(&me, KeyRef::version(k.handle, 2), GCM, b"two", b"")
        .unwrap();
    assert_eq!(v2.key_version, 2);
    assert_eq!(
        h.encrypt_at(&me, k.handle.into(), GCM, b"x", b"")
            .unwrap()
            .key_version,
        3
    );
    // min_decryption_version may not pass a set min_encryption_version.
    assert_eq!(
        code(h.configure_key_versions(&me, k.handle, settings(Some(3), None))),
        ErrorCode::InvalidInput
    );
    h.configure_key_versions(&me, k.handle, settings(Some(3), Some(0)))
        .unwrap();
}

#[test]
fn rewrap_turns_a_v1_ciphertext_into_v2_inside_the_hsm() {
    let h = TestHsm::new();
    let me = h.service();
    let k = h
        .generate_secret_key(&me, KeySpec::Aes256, &data_key("rewrap"))
        .unwrap();
    let v1 = h
        .encrypt_at(&me, k.handle.into(), GCM, b"payload", b"ctx")
        .unwrap();
    h.rotate_key(&me, k.handle).unwrap();
    let v2 = h
        .rewrap(&me, KeyRef::version(k.handle, 1), GCM, &v1.bytes, b"ctx")
        .unwrap();
    assert_eq!(v2.key_version, 2);
    assert_ne!(v2.bytes, v1.bytes);
    assert_eq!(
        &*h.decrypt_at(&me, KeyRef::version(k.handle, 2), GCM, &v2.bytes, b"ctx")
            .unwrap(),
        b"payload"
    );
    // The AAD is bound again: the rewrapped ciphertext needs the same one.
    assert_eq!(
        code(h.decrypt_at(&me, KeyRef::version(k.handle, 2), GCM, &v2.bytes, b"other")),
        ErrorCode::InvalidInput
    );
    // Rewrapping a v1 ciphertext named as v2 fails to authenticate, and reveals nothing.
    let e = h
        .rewrap(&me, KeyRef::version(k.handle, 2), GCM, &v1.bytes, b"ctx")
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid input: decryption failed");
    // Below min_decryption_version: refused, like decrypt.
    h.configure_key_versions(&me, k.handle, settings(Some(2), None))
        .unwrap();
    assert_eq!(
        code(h.rewrap(&me, KeyRef::version(k.handle, 1), GCM, &v1.bytes, b"ctx")),
        ErrorCode::KeyVersionRetired
    );
    // Rewrap needs both decrypt and encrypt.
    let dec_only = h
        .generate_secret_key(
            &me,
            KeySpec::Aes256,
            &KeyTemplate::labelled("dec-only").with(AttributeName::Decrypt, true),
        )
        .unwrap();
    assert_eq!(
        code(h.rewrap(&me, dec_only.handle.into(), GCM, &v1.bytes, b"")),
        ErrorCode::AttributeViolation
    );
    let usage = h.key_usage(&me, k.handle).unwrap();
    assert_eq!((usage.encrypt, usage.decrypt), (2, 2));
}

#[test]
fn signatures_and_macs_carry_their_version_and_verify_with_it() {
    let h = TestHsm::new();
    let me = h.service();
    let (private, public) = signing_pair(&h, &me, "signer");
    let m = SignMechanism::EcdsaSha256;
    let der = SignatureEncoding::Der;
    let s1 = h
        .sign_at(&me, private.handle.into(), m, msg(b"doc"), der)
        .unwrap();
    assert_eq!(s1.key_version, 1);
    let spki1 = h.public_key_spki(&me, public.handle).unwrap();

    let rotated = h.rotate_key(&me, private.handle).unwrap();
    assert_eq!(rotated.latest_version, 2);
    // The public half follows, with the new version's public key.
    let pub_info = h.key_info(&me, public.handle).unwrap();
    assert_eq!(pub_info.latest_version, 2);
    let spki2 = h.public_key_spki(&me, public.handle).unwrap();
    assert_ne!(spki1, spki2);
    assert_eq!(h.public_key_spki(&me, private.handle).unwrap(), spki2);
    assert_eq!(
        h.public_key_spki_at(&me, KeyRef::version(public.handle, 1))
            .unwrap(),
        spki1
    );

    let s2 = h
        .sign_at(&me, private.handle.into(), m, msg(b"doc"), der)
        .unwrap();
    assert_eq!(s2.key_version, 2);
    let verify = |key: KeyHandle, sig: &Versioned, v: u32| {
        h.verify_at(
            &me,
            KeyRef::version(key, v),
            m,
            msg(b"doc"),
            &sig.bytes,
            der,
        )
    };
    for key in [private.handle, public.handle] {
        assert!(verify(key, &s1, 1).unwrap());
        assert!(verify(key, &s2, 2).unwrap());
        assert!(!verify(key, &s1, 2).unwrap());
        assert!(!verify(key, &s2, 1).unwrap());
    }
    h.configure_key_versions(&me, private.handle, settings(Some(2), None))
        .unwrap();
    assert_eq!(
        h.key_info(&me, public.handle)
            .unwrap()
            .min_decryption_version,
        2
    );
    assert_eq!(
        code(verify(public.handle, &s1, 1)),
        ErrorCode::KeyVersionRetired
    );
    assert!(verify(public.handle, &s2, 2).unwrap());
    // Retired versions' public keys can still be read (they are not secret).
    assert_eq!(
        h.public_key_spki_at(&me, KeyRef::version(public.handle, 1))
            .unwrap(),
        spki1
    );

    // HMAC keys rotate too.
    let mac = h
        .generate_secret_key(
            &me,
            KeySpec::GenericSecret { bytes: 32 },
            &KeyTemplate::labelled("mac"),
        )
        .unwrap();
    let hm = SignMechanism::HmacSha256;
    let t1 = h
        .sign_at(&me, mac.handle.into(), hm, msg(b"m"), der)
        .unwrap();
    h.rotate_key(&me, mac.handle).unwrap();
    let t2 = h
        .sign_at(&me, mac.handle.into(), hm, msg(b"m"), der)
        .unwrap();
    assert_eq!((t1.key_version, t2.key_version), (1, 2));
    assert_ne!(t1.bytes, t2.bytes);
    for (t, v) in [(&t1, 1), (&t2, 2)] {
        assert!(h
            .verify_at(
                &me,
                KeyRef::version(mac.handle, v),
                hm,
                msg(b"m"),
                &t.bytes,
                der
            )
            .unwrap());
    }
}

#[test]
fn a_signer_keeps_its_version_after_rotation_until_that_version_is_retired() {
    let h = TestHsm::new();
    let me = h.service();
    let (private, public) = signing_pair(&h, &me, "tls");
    let m = SignMechanism::EcdsaSha256;
    let der = SignatureEncoding::Der;
    let signer = h.signer(&me, private.handle).unwrap();
    assert_eq!(signer.version(), 1);
    let spki1 = signer.spki_der().to_vec();
    h.rotate_key(&me, private.handle).unwrap();

    // The old signer still signs with version 1 (the certificate's public key).
    let sig = signer.sign(m, b"transcript").unwrap();
    assert!(h
        .verify_at(
            &me,
            KeyRef::version(public.handle, 1),
            m,
            msg(b"transcript"),
            &sig,
            der
        )
        .unwrap());
    assert_eq!(signer.spki_der(), spki1);
    assert!(format!("{signer:?}").contains("version: 1"));

    // New signers use the latest version, or the one asked for.
    let fresh = h.signer(&me, private.handle).unwrap();
    assert_eq!(fresh.version(), 2);
    assert_ne!(fresh.spki_der(), spki1);
    let pinned = h
        .signer_at(&me, KeyRef::version(private.handle, 1))
        .unwrap();
    assert_eq!(pinned.spki_der(), spki1);
    assert_eq!(
        code(h.signer_at(&me, KeyRef::version(private.handle, 3))),
        ErrorCode::InvalidInput
    );

    // Retiring version 1 stops the old signer at its next signature.
    h.configure_key_versions(&me, private.handle, settings(Some(2), None))
        .unwrap();
    assert_eq!(
        code(signer.sign(m, b"transcript")),
        ErrorCode::KeyVersionRetired
    );
    fresh.sign(m, b"transcript").unwrap();
    assert_eq!(
        code(h.signer_at(&me, KeyRef::version(private.handle, 1))),
        ErrorCode::KeyVersionRetired
    );
}

#[test]
fn a_key_cipher_keeps_the_version_it_was_made_with() {
    let h = TestHsm::new();
    let me = h.service();
    let k = h
        .generate_secret_key(&me, KeySpec::Aes256, &data_key("ticket"))
        .unwrap();
    let c1 = h.cipher(&me, k.handle).unwrap();
    let sealed = c1.encrypt(b"state", b"").unwrap();
    h.rotate_key(&me, k.handle).unwrap();
    assert_eq!(&*c1.decrypt(&sealed, b"").unwrap(), b"state");
    let c2 = h.cipher(&me, k.handle).unwrap();
    assert_eq!(code(c2.decrypt(&sealed, b"")), ErrorCode::InvalidInput);
    h.configure_key_versions(&me, k.handle, settings(Some(2), None))
        .unwrap();
    assert_eq!(code(c1.decrypt(&sealed, b"")), ErrorCode::KeyVersionRetired);
    assert_eq!(code(c1.encrypt(b"x", b"")), ErrorCode::KeyVersionRetired);
    c2.encrypt(b"x", b"").unwrap();
}

#[test]
fn only_the_owner_manages_versions_of_modifiable_keys_that_neither_wrap_nor_derive() {
    let h = TestHsm::new();
    let admin = h.admin();
    let alice = h.crypto_user(&admin, "alice");
    let bob = h.crypto_user(&admin, "bob");
    let k = h
        .generate_secret_key(&alice, KeySpec::Aes256, &data_key("shared"))
        .unwrap();
    h.share_key(&alice, k.handle, "bob").unwrap();
    let v1 = h
        .encrypt_at(&bob, k.handle.into(), GCM, b"bob's", b"")
        .unwrap();
    // A shared user uses every version but manages none.
    assert_eq!(
        code(h.rotate_key(&bob, k.handle)),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(h.configure_key_versions(&bob, k.handle, settings(Some(1), None))),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(h.trim_key_versions(&bob, k.handle, 1)),
        ErrorCode::PermissionDenied
    );
    // Admins do not use or manage keys; other users do not see them.
    assert!(h.rotate_key(&admin, k.handle).is_err());
    let carol = h.crypto_user(&admin, "carol");
    assert_eq!(code(h.rotate_key(&carol, k.handle)), ErrorCode::KeyNotFound);

    h.rotate_key(&alice, k.handle).unwrap();
    let v2 = h
        .rewrap(&bob, KeyRef::version(k.handle, 1), GCM, &v1.bytes, b"")
        .unwrap();
    assert_eq!(v2.key_version, 2);

    // The public half of a pair is managed through its private key.
    let (private, public) = signing_pair(&h, &alice, "pair");
    let e = h.rotate_key(&alice, public.handle).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.to_string().contains(&private.handle.to_string()), "{e}");

    // Not modifiable: nothing changes.
    let fixed = h
        .generate_secret_key(
            &alice,
            KeySpec::Aes256,
            &data_key("fixed").with(AttributeName::Modifiable, false),
        )
        .unwrap();
    assert_eq!(
        code(h.rotate_key(&alice, fixed.handle)),
        ErrorCode::AttributeViolation
    );
    assert_eq!(
        code(h.configure_key_versions(&alice, fixed.handle, settings(Some(1), None))),
        ErrorCode::AttributeViolation
    );

    // Wrapping and deriving keys do not rotate: their outputs carry no version.
    let wrapping = h
        .generate_secret_key(
            &alice,
            KeySpec::Aes256,
            &KeyTemplate::labelled("kek")
                .with(AttributeName::Wrap, true)
                .with(AttributeName::Unwrap, true),
        )
        .unwrap();
    assert_eq!(
        code(h.rotate_key(&alice, wrapping.handle)),
        ErrorCode::InvalidInput
    );
    let (ecdh, _) = h
        .generate_key_pair(
            &alice,
            KeySpec::EcP256,
            &KeyTemplate::labelled("ecdh").with(AttributeName::Derive, true),
            &KeyTemplate::labelled("ecdh"),
        )
        .unwrap();
    assert_eq!(
        code(h.rotate_key(&alice, ecdh.handle)),
        ErrorCode::InvalidInput
    );

    // Every refusal and success is audited.
    let events: Vec<(String, String)> = h
        .audit_entries(&admin, 1, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.starts_with("key.rotate") || e.event.starts_with("key.config"))
        .map(|e| (e.event, e.outcome))
        .collect();
    assert!(
        events.contains(&("key.rotate".into(), "ok".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("key.rotate".into(), "denied".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("key.config-versions".into(), "denied".into())),
        "{events:?}"
    );
}

#[test]
fn versions_survive_a_reopen_and_trim_destroys_old_ones_for_good() {
    let (f, hsm) = fixture();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let k = hsm
        .generate_secret_key(&me, KeySpec::Aes256, &data_key("kept"))
        .unwrap();
    let (private, public) = signing_pair(&hsm, &me, "kept-pair");
    let mut cts = vec![hsm
        .encrypt_at(&me, k.handle.into(), GCM, b"v1", b"")
        .unwrap()];
    for _ in 0..2 {
        hsm.rotate_key(&me, k.handle).unwrap();
        let v = cts.len() + 1;
        cts.push(
            hsm.encrypt_at(&me, k.handle.into(), GCM, format!("v{v}").as_bytes(), b"")
                .unwrap(),
        );
    }
    hsm.rotate_key(&me, private.handle).unwrap();
    let sig = hsm
        .sign_at(
            &me,
            KeyRef::version(private.handle, 1),
            SignMechanism::EcdsaSha256,
            SignInput::Message(b"m"),
            SignatureEncoding::Der,
        )
        .unwrap();
    hsm.configure_key_versions(&me, k.handle, settings(Some(2), None))
        .unwrap();
    let before = hsm.key_info(&me, k.handle).unwrap();
    drop(hsm);

    let hsm = f.open().unwrap();
    let me = hsm.service_session(PROXY_USER).unwrap();
    assert_eq!(hsm.key_info(&me, k.handle).unwrap(), before);
    assert_eq!(
        (before.latest_version, before.min_decryption_version),
        (3, 2)
    );
    let open = |hsm: &Hsm, ct: &Versioned| {
        hsm.decrypt_at(
            &me,
            KeyRef::version(k.handle, ct.key_version),
            GCM,
            &ct.bytes,
            b"",
        )
    };
    assert_eq!(code(open(&hsm, &cts[0])), ErrorCode::KeyVersionRetired);
    assert_eq!(&*open(&hsm, &cts[1]).unwrap(), b"v2");
    assert_eq!(&*open(&hsm, &cts[2]).unwrap(), b"v3");
    assert!(hsm
        .verify_at(
            &me,
            KeyRef::version(public.handle, 1),
            SignMechanism::EcdsaSha256,
            SignInput::Message(b"m"),
            &sig.bytes,
            SignatureEncoding::Der,
        )
        .unwrap());
    assert_eq!(hsm.key_info(&me, public.handle).unwrap().latest_version, 2);

    // Trim: not above min_decryption_version; then version 1 is gone, even if the minimum
    // comes down again.
    assert_eq!(
        code(hsm.trim_key_versions(&me, k.handle, 3)),
        ErrorCode::InvalidInput
    );
    let trimmed = hsm.trim_key_versions(&me, k.handle, 2).unwrap();
    assert_eq!(trimmed.min_available_version, 2);
    assert_eq!(
        code(hsm.configure_key_versions(&me, k.handle, settings(Some(1), None))),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        code(hsm.trim_key_versions(&me, k.handle, 1)),
        ErrorCode::InvalidInput
    );
    drop(hsm);

    let hsm = f.open().unwrap();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let info = hsm.key_info(&me, k.handle).unwrap();
    assert_eq!(
        (
            info.min_available_version,
            info.min_decryption_version,
            info.latest_version
        ),
        (2, 2, 3)
    );
    assert_eq!(code(open(&hsm, &cts[0])), ErrorCode::KeyVersionRetired);
    assert_eq!(&*open(&hsm, &cts[1]).unwrap(), b"v2");
    assert_eq!(
        hsm.encrypt_at(&me, k.handle.into(), GCM, b"x", b"")
            .unwrap()
            .key_version,
        3
    );
    let admin = {
        use crate::test_util::{ADMIN, ADMIN_PASSWORD};
        hsm.bootstrap_admin(ADMIN, &Password::from(ADMIN_PASSWORD))
            .unwrap();
        hsm.login(
            ADMIN,
            &Password::from(ADMIN_PASSWORD),
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0
    };
    let audit: Vec<String> = hsm
        .audit_entries(&admin, 1, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(audit.iter().any(|e| e == "key.trim-versions"), "{audit:?}");
}

#[test]
fn a_reader_node_learns_rotations_and_refuses_a_record_whose_old_version_changed() {
    let (f, writer) = fixture();
    let me = writer.service_session(PROXY_USER).unwrap();
    let k = writer
        .generate_secret_key(&me, KeySpec::Aes256, &data_key("synced"))
        .unwrap();
    let reader = f.open_read_only().unwrap();
    let rme = reader.service_session(PROXY_USER).unwrap();
    let v1 = reader
        .encrypt_at(&rme, k.handle.into(), GCM, b"one", b"")
        .unwrap();
    writer.rotate_key(&me, k.handle).unwrap();
    let v2 = writer
        .encrypt_at(&me, k.handle.into(), GCM, b"two", b"")
        .unwrap();
    let changes = reader.sync_token_objects().unwrap();
    assert_eq!(changes.updated, vec![k.handle]);
    assert_eq!(reader.key_info(&rme, k.handle).unwrap().latest_version, 2);
    for (ct, plain) in [(&v1, b"one"), (&v2, b"two")] {
        assert_eq!(
            &*reader
                .decrypt_at(
                    &rme,
                    KeyRef::version(k.handle, ct.key_version),
                    GCM,
                    &ct.bytes,
                    b""
                )
                .unwrap(),
            plain
        );
    }
}

#[test]
fn records_of_keys_never_rotated_keep_the_layout_before_versions() {
    use crate::store::record::{decode_key_record, encode_key_record};
    let h = TestHsm::new();
    let me = h.service();
    let mut info = h
        .generate_secret_key(&me, KeySpec::Aes128, &data_key("layout"))
        .unwrap();
    let plain = encode_key_record(&info, &[b"0123456789abcdef"]).unwrap();
    let text = String::from_utf8_lossy(&plain);
    assert!(
        !text.contains("version") && !text.contains("value_lens"),
        "{text}"
    );
    let (back, values) = decode_key_record(&plain).unwrap();
    assert_eq!(
        (back, values),
        (info.clone(), vec![&b"0123456789abcdef"[..]])
    );

    info.latest_version = 3;
    info.min_available_version = 2;
    info.min_decryption_version = 2;
    let two: [&[u8]; 2] = [b"aaaaaaaaaaaaaaaa", b"bbbbbbbbbbbbbbbb"];
    let plain = encode_key_record(&info, &two).unwrap();
    let (back, values) = decode_key_record(&plain).unwrap();
    assert_eq!(back, info);
    assert_eq!(values, two.to_vec());
    // One value too few, or a truncated tail, does not decode.
    assert!(encode_key_record(&info, &two[..1]).is_err());
    assert!(decode_key_record(&plain[..plain.len() - 1]).is_none());
}

#[test]
fn debug_and_errors_of_a_rotated_key_show_no_key_bytes() {
    let h = TestHsm::new();
    let me = h.service();
    let k = h
        .generate_secret_key(&me, KeySpec::Aes256, &data_key("dbg"))
        .unwrap();
    let v1 = h.test_secret_value(k.handle).unwrap();
    let ct = h.encrypt_at(&me, k.handle.into(), GCM, b"x", b"").unwrap();
    let rotated = h.rotate_key(&me, k.handle).unwrap();
    let v2 = h.test_secret_value(k.handle).unwrap();
    assert_ne!(v1, v2, "a rotation makes new key material");
    let cipher = h.cipher(&me, k.handle).unwrap();
    h.configure_key_versions(&me, k.handle, settings(Some(2), None))
        .unwrap();
    let err = h
        .decrypt_at(&me, KeyRef::version(k.handle, 1), GCM, &ct.bytes, b"")
        .unwrap_err();
    for text in [
        format!("{:?}", *h),
        format!("{cipher:?}"),
        format!("{rotated:?}"),
        format!("{ct:?}"),
        format!("{err}"),
        format!("{err:?}"),
    ] {
        for secret in [&v1, &v2] {
            assert!(
                !text.to_lowercase().contains(&hex::encode(&***secret)),
                "{text}"
            );
            assert!(!text.contains(&format!("{:?}", &***secret)), "{text}");
        }
    }
}
