//! Directed tests: lockout, sessions, oversized inputs.

use crate::common::*;

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
