//! Regressions: bugs these properties found, fixed in hsm-core since (aac09f0).

use crate::common::*;

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
