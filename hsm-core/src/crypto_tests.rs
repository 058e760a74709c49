//! Round trips of every mechanism through the HSM's API, digest signing, raw ECDSA encoding,
//! key derivation, and concurrent use.

use aws_lc_rs::digest;

use crate::tests::TestHsm;
use crate::*;

fn t(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
}

fn with_all(label: &str, attrs: &[AttributeName]) -> KeyTemplate {
    attrs.iter().fold(t(label), |tpl, a| tpl.with(*a, true))
}

/// Everything a data key may do (key-usage separation keeps wrap/unwrap off).
fn all_uses(label: &str) -> KeyTemplate {
    use AttributeName as A;
    with_all(
        label,
        &[
            A::Sign,
            A::Verify,
            A::Encrypt,
            A::Decrypt,
            A::Derive,
            A::Extractable,
        ],
    )
}

/// Everything a key-wrapping key may do.
fn key_uses(label: &str) -> KeyTemplate {
    use AttributeName as A;
    with_all(label, &[A::Sign, A::Verify, A::Wrap, A::Unwrap])
}

#[test]
fn digest_signing_and_raw_ecdsa_encoding() {
    let h = TestHsm::new();
    let me = h.service();
    for (spec, mech, alg, field) in [
        (
            KeySpec::EcP256,
            SignMechanism::EcdsaSha256,
            &digest::SHA256,
            32,
        ),
        (
            KeySpec::EcP384,
            SignMechanism::EcdsaSha384,
            &digest::SHA384,
            48,
        ),
        (
            KeySpec::EcP521,
            SignMechanism::EcdsaSha512,
            &digest::SHA512,
            66,
        ),
        (
            KeySpec::Rsa2048,
            SignMechanism::RsaPssSha384,
            &digest::SHA384,
            0,
        ),
    ] {
        let (k, p) = h
            .generate_key_pair(
                &me,
                spec,
                &all_uses(spec.as_str()),
                &all_uses(spec.as_str()),
            )
            .unwrap();
        let d = digest::digest(alg, b"message");
        let sig = h
            .sign(
                &me,
                k.handle,
                mech,
                SignInput::Digest(d.as_ref()),
                SignatureEncoding::Der,
            )
            .unwrap();
        assert!(h
            .verify(
                &me,
                p.handle,
                mech,
                SignInput::Message(b"message"),
                &sig,
                SignatureEncoding::Der
            )
            .unwrap());
        assert_eq!(
            h.sign(
                &me,
                k.handle,
                mech,
                SignInput::Digest(&d.as_ref()[1..]),
                SignatureEncoding::Der
            )
            .unwrap_err()
            .code(),
            "invalid_input"
        );
        if field > 0 {
            let raw = h
                .sign(
                    &me,
                    k.handle,
                    mech,
                    SignInput::Message(b"m"),
                    SignatureEncoding::Raw,
                )
                .unwrap();
            assert_eq!(raw.len(), 2 * field, "{spec} raw r||s");
            assert!(h
                .verify(
                    &me,
                    p.handle,
                    mech,
                    SignInput::Message(b"m"),
                    &raw,
                    SignatureEncoding::Raw
                )
                .unwrap());
            assert!(!h
                .verify(
                    &me,
                    p.handle,
                    mech,
                    SignInput::Message(b"m"),
                    &raw,
                    SignatureEncoding::Der
                )
                .unwrap());
        }
    }
    // Ed25519 and HMAC sign messages only.
    let (ed, _) = h
        .generate_key_pair(&me, KeySpec::Ed25519, &all_uses("ed"), &all_uses("ed"))
        .unwrap();
    assert_eq!(
        h.sign(
            &me,
            ed.handle,
            SignMechanism::Ed25519,
            SignInput::Digest(&[0; 32]),
            SignatureEncoding::Der
        )
        .unwrap_err()
        .code(),
        "invalid_input"
    );
}

#[test]
fn hmac_with_generic_secrets_of_any_length() {
    let h = TestHsm::new();
    let me = h.service();
    for (bytes, mech, len) in [
        (1u16, SignMechanism::HmacSha256, 32),
        (64, SignMechanism::HmacSha384, 48),
        (800, SignMechanism::HmacSha512, 64),
    ] {
        let k = h
            .generate_secret_key(
                &me,
                KeySpec::GenericSecret { bytes },
                &all_uses(&format!("g{bytes}")),
            )
            .unwrap();
        let tag = h
            .sign(
                &me,
                k.handle,
                mech,
                SignInput::Message(b"data"),
                SignatureEncoding::Der,
            )
            .unwrap();
        assert_eq!(tag.len(), len);
        assert!(h
            .verify(
                &me,
                k.handle,
                mech,
                SignInput::Message(b"data"),
                &tag,
                SignatureEncoding::Der
            )
            .unwrap());
        assert!(!h
            .verify(
                &me,
                k.handle,
                mech,
                SignInput::Message(b"date"),
                &tag,
                SignatureEncoding::Der
            )
            .unwrap());
    }
    assert!("generic-secret-0".parse::<KeySpec>().is_err());
    assert!("generic-secret-801".parse::<KeySpec>().is_err());
}

#[test]
fn encryption_round_trips_and_tampering_fails() {
    let h = TestHsm::new();
    let me = h.service();
    for spec in [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256] {
        let k = h
            .generate_secret_key(&me, spec, &all_uses(spec.as_str()))
            .unwrap();
        let ct = h
            .encrypt(&me, k.handle, EncryptMechanism::AesGcm, b"plain", b"aad")
            .unwrap();
        assert_eq!(ct.len(), 12 + 5 + 16);
        assert_eq!(
            &h.decrypt(&me, k.handle, EncryptMechanism::AesGcm, &ct, b"aad")
                .unwrap()[..],
            b"plain"
        );
        assert!(h
            .decrypt(&me, k.handle, EncryptMechanism::AesGcm, &ct, b"bad")
            .is_err());
        let mut bad = ct.clone();
        bad[13] ^= 1;
        assert!(h
            .decrypt(&me, k.handle, EncryptMechanism::AesGcm, &bad, b"aad")
            .is_err());
        let ct2 = h
            .encrypt(&me, k.handle, EncryptMechanism::AesGcm, b"plain", b"aad")
            .unwrap();
        assert_ne!(ct[..12], ct2[..12], "fresh IV each time");
        let cbc = h
            .encrypt(
                &me,
                k.handle,
                EncryptMechanism::AesCbcPad,
                b"0123456789abcdef",
                b"",
            )
            .unwrap();
        assert_eq!(cbc.len(), 16 + 32);
        assert_eq!(
            &h.decrypt(&me, k.handle, EncryptMechanism::AesCbcPad, &cbc, b"")
                .unwrap()[..],
            b"0123456789abcdef"
        );
        assert_eq!(
            h.encrypt(&me, k.handle, EncryptMechanism::AesCbcPad, b"x", b"aad")
                .unwrap_err()
                .code(),
            "invalid_input"
        );
    }
    let (rsa, rsa_pub) = h
        .generate_key_pair(&me, KeySpec::Rsa2048, &all_uses("rsa"), &all_uses("rsa"))
        .unwrap();
    for mech in [
        EncryptMechanism::RsaOaepSha256,
        EncryptMechanism::RsaOaepSha384,
        EncryptMechanism::RsaOaepSha512,
    ] {
        let ct = h
            .encrypt(&me, rsa_pub.handle, mech, b"session key", b"")
            .unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(
            &h.decrypt(&me, rsa.handle, mech, &ct, b"").unwrap()[..],
            b"session key"
        );
        assert!(
            h.decrypt(&me, rsa_pub.handle, mech, &ct, b"").is_err(),
            "public keys do not decrypt"
        );
    }
    assert_eq!(
        h.encrypt(
            &me,
            rsa_pub.handle,
            EncryptMechanism::RsaOaepSha512,
            &[0; 200],
            b""
        )
        .unwrap_err()
        .code(),
        "invalid_input"
    );
}

#[test]
fn every_wrap_mechanism_round_trips_secret_and_private_keys() {
    let h = TestHsm::new();
    let me = h.service();
    let kek = h
        .generate_secret_key(&me, KeySpec::Aes256, &key_uses("kek"))
        .unwrap();
    let (rsa, rsa_pub) = h
        .generate_key_pair(&me, KeySpec::Rsa3072, &key_uses("rsa"), &key_uses("rsa"))
        .unwrap();
    let secret = h
        .generate_secret_key(&me, KeySpec::Aes256, &all_uses("secret"))
        .unwrap();
    let (ec, _) = h
        .generate_key_pair(&me, KeySpec::EcP384, &all_uses("ec"), &all_uses("ec"))
        .unwrap();
    let ct = h
        .encrypt(&me, secret.handle, EncryptMechanism::AesGcm, b"hello", b"")
        .unwrap();
    let mut n = 0;
    for (wrapping, unwrapping, mech) in [
        (kek.handle, kek.handle, WrapMechanism::AesKw),
        (kek.handle, kek.handle, WrapMechanism::AesKwp),
        (kek.handle, kek.handle, WrapMechanism::AesGcm),
        (rsa_pub.handle, rsa.handle, WrapMechanism::RsaOaep),
        (rsa_pub.handle, rsa.handle, WrapMechanism::RsaAes),
    ] {
        n += 1;
        let wrapped = h.wrap_key(&me, wrapping, mech, secret.handle).unwrap();
        let copy = h
            .unwrap_key(
                &me,
                unwrapping,
                mech,
                &wrapped,
                UnwrapTarget::Secret(KeySpec::Aes256),
                &all_uses(&format!("copy{n}")),
            )
            .unwrap();
        assert!(!copy.attributes.local);
        assert_eq!(copy.attributes.check_value, secret.attributes.check_value);
        assert_eq!(
            &h.decrypt(&me, copy.handle, EncryptMechanism::AesGcm, &ct, b"")
                .unwrap()[..],
            b"hello"
        );
        let mut bad = wrapped.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            h.unwrap_key(
                &me,
                unwrapping,
                mech,
                &bad,
                UnwrapTarget::Secret(KeySpec::Aes256),
                &t("never")
            )
            .unwrap_err()
            .code(),
            "invalid_input"
        );
        // Private keys travel as PKCS#8 (too large for plain RSA-OAEP).
        if mech != WrapMechanism::RsaOaep && mech != WrapMechanism::AesKw {
            let wrapped = h.wrap_key(&me, wrapping, mech, ec.handle).unwrap();
            let copy = h
                .unwrap_key(
                    &me,
                    unwrapping,
                    mech,
                    &wrapped,
                    UnwrapTarget::Private,
                    &all_uses(&format!("ec{n}")),
                )
                .unwrap();
            assert_eq!(copy.spec, KeySpec::EcP384);
            assert_eq!(
                h.public_key_spki(&me, copy.handle).unwrap(),
                h.public_key_spki(&me, ec.handle).unwrap()
            );
        }
    }
}

#[test]
fn ecdh_derives_the_same_key_on_both_sides() {
    let h = TestHsm::new();
    let me = h.service();
    for spec in [KeySpec::EcP256, KeySpec::EcP384] {
        let (a, ap) = h
            .generate_key_pair(
                &me,
                spec,
                &all_uses(&format!("a{spec}")),
                &all_uses(&format!("a{spec}")),
            )
            .unwrap();
        let (b, bp) = h
            .generate_key_pair(
                &me,
                spec,
                &all_uses(&format!("b{spec}")),
                &all_uses(&format!("b{spec}")),
            )
            .unwrap();
        let a_pub = h.public_key_spki(&me, ap.handle).unwrap();
        let b_pub = h.public_key_spki(&me, bp.handle).unwrap();
        let ka = h
            .derive_key(
                &me,
                a.handle,
                &EcdhParams {
                    peer_public: &b_pub,
                    salt: b"s",
                    info: b"i",
                },
                KeySpec::Aes256,
                &all_uses(&format!("ka{spec}")),
            )
            .unwrap();
        let kb = h
            .derive_key(
                &me,
                b.handle,
                &EcdhParams {
                    peer_public: &a_pub,
                    salt: b"s",
                    info: b"i",
                },
                KeySpec::Aes256,
                &all_uses(&format!("kb{spec}")),
            )
            .unwrap();
        assert_eq!(ka.attributes.check_value, kb.attributes.check_value);
        let ct = h
            .encrypt(&me, ka.handle, EncryptMechanism::AesGcm, b"agreed", b"")
            .unwrap();
        assert_eq!(
            &h.decrypt(&me, kb.handle, EncryptMechanism::AesGcm, &ct, b"")
                .unwrap()[..],
            b"agreed"
        );
        assert_eq!(
            h.derive_key(
                &me,
                a.handle,
                &EcdhParams {
                    peer_public: &[4; 65],
                    salt: b"",
                    info: b""
                },
                KeySpec::Aes128,
                &t("bad")
            )
            .unwrap_err()
            .code(),
            "invalid_input"
        );
    }
}

#[test]
fn public_keys_import_from_spki_and_verify() {
    let h = TestHsm::new();
    let me = h.service();
    let (k, p) = h
        .generate_key_pair(&me, KeySpec::Ed25519, &all_uses("k"), &all_uses("k"))
        .unwrap();
    let spki = h.public_key_spki(&me, p.handle).unwrap();
    let imported = h
        .import_public_key(&me, &spki, &t("imported").with(AttributeName::Verify, true))
        .unwrap();
    assert_eq!(imported.spec, KeySpec::Ed25519);
    assert!(!imported.attributes.local);
    let sig = h
        .sign(
            &me,
            k.handle,
            SignMechanism::Ed25519,
            SignInput::Message(b"m"),
            SignatureEncoding::Der,
        )
        .unwrap();
    assert!(h
        .verify(
            &me,
            imported.handle,
            SignMechanism::Ed25519,
            SignInput::Message(b"m"),
            &sig,
            SignatureEncoding::Der
        )
        .unwrap());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        pem::encode(&pem::Pem::new("X", spki.clone()))
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let from_pem = h
        .import_public_key(&me, pem.as_bytes(), &t("from-pem"))
        .unwrap();
    assert_eq!(h.public_key_spki(&me, from_pem.handle).unwrap(), spki);
    let wrong_tag = pem.replace("PUBLIC KEY", "PRIVATE KEY");
    assert_eq!(
        h.import_public_key(&me, wrong_tag.as_bytes(), &t("w"))
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    for junk in [&b""[..], b"\x30\x00", &spki[..spki.len() - 1], &[4u8; 65]] {
        assert_eq!(
            h.import_public_key(&me, junk, &t("junk"))
                .unwrap_err()
                .code(),
            "invalid_input"
        );
    }
}

#[test]
fn many_threads_sign_at_once_without_errors() {
    let h = TestHsm::new();
    let me = h.service();
    let (k, p) = h
        .generate_key_pair(&me, KeySpec::EcP256, &all_uses("k"), &all_uses("k"))
        .unwrap();
    std::thread::scope(|s| {
        for i in 0..4 {
            let (h, me) = (&h, &me);
            s.spawn(move || {
                for j in 0..200 {
                    let msg = format!("{i}-{j}");
                    let sig = h
                        .sign(
                            me,
                            k.handle,
                            SignMechanism::EcdsaSha256,
                            SignInput::Message(msg.as_bytes()),
                            SignatureEncoding::Der,
                        )
                        .unwrap();
                    assert!(h
                        .verify(
                            me,
                            p.handle,
                            SignMechanism::EcdsaSha256,
                            SignInput::Message(msg.as_bytes()),
                            &sig,
                            SignatureEncoding::Der
                        )
                        .unwrap());
                }
            });
        }
    });
    assert_eq!(h.key_usage(&me, k.handle).unwrap().sign, 800);
}

#[test]
fn random_bytes_have_the_asked_length_and_differ() {
    let h = TestHsm::new();
    let me = h.service();
    let a = h.random(&me, 32).unwrap();
    let b = h.random(&me, 32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert_eq!(
        h.random(&me, MAX_RANDOM_BYTES).unwrap().len(),
        MAX_RANDOM_BYTES
    );
    assert_eq!(h.random(&me, 0).unwrap_err().code(), "invalid_input");
    assert_eq!(
        h.random(&me, MAX_RANDOM_BYTES + 1).unwrap_err().code(),
        "invalid_input"
    );
}

#[test]
fn unsupported_key_types_are_named_with_the_supported_ones_and_nothing_is_created() {
    let h = TestHsm::new();
    let me = h.service();
    let (rsa, rsa_pub) = h
        .generate_key_pair(&me, KeySpec::Rsa2048, &key_uses("rsa"), &key_uses("rsa"))
        .unwrap();
    let transport =
        crate::material::Material::from_spki(&h.public_key_spki(&me, rsa_pub.handle).unwrap())
            .unwrap();
    let count = || {
        h.list_keys(&me, &KeyFilter::default(), None, MAX_PAGE_SIZE)
            .unwrap()
            .keys
            .len()
    };
    let before = count();
    let supported =
        "the HSM takes RSA 2048, 3072 or 4096 bits, EC P-256, P-384 or P-521, and Ed25519";
    for (pkcs8, spki, got) in [
        (
            &include_bytes!("../testdata/unsupported-rsa1024.pk8.der")[..],
            Some(&include_bytes!("../testdata/unsupported-rsa1024.spki.der")[..]),
            "got RSA 1024 bits",
        ),
        (
            include_bytes!("../testdata/unsupported-secp256k1.pk8.der"),
            Some(include_bytes!("../testdata/unsupported-secp256k1.spki.der")),
            "got EC secp256k1",
        ),
        (
            include_bytes!("../testdata/unsupported-x25519.pk8.der"),
            Some(include_bytes!("../testdata/unsupported-x25519.spki.der")),
            "got X25519",
        ),
        (
            include_bytes!("../testdata/unsupported-ed448.pk8.der"),
            None,
            "got Ed448",
        ),
    ] {
        let wrapped = transport.wrap(WrapMechanism::RsaAes, pkcs8).unwrap();
        let e = h
            .unwrap_key(
                &me,
                rsa.handle,
                WrapMechanism::RsaAes,
                &wrapped,
                UnwrapTarget::Private,
                &all_uses("imported"),
            )
            .unwrap_err();
        let message = e.to_string();
        assert_eq!(e.code(), "invalid_input");
        assert!(message.contains(got), "{message}");
        assert!(message.contains(supported), "{message}");
        if let Some(spki) = spki {
            let message = h
                .import_public_key(&me, spki, &t("imported-public"))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(got) && message.contains(supported),
                "{message}"
            );
        }
    }
    assert_eq!(count(), before, "a refused import created a key");
    // A supported type whose bytes are damaged keeps the generic message.
    let mut broken = include_bytes!("../testdata/selftest-rsa2048.pk8.der").to_vec();
    let last = broken.len() - 1;
    broken[last] ^= 0xff;
    let wrapped = transport.wrap(WrapMechanism::RsaAes, &broken).unwrap();
    let message = h
        .unwrap_key(
            &me,
            rsa.handle,
            WrapMechanism::RsaAes,
            &wrapped,
            UnwrapTarget::Private,
            &all_uses("broken"),
        )
        .unwrap_err()
        .to_string();
    assert!(message.contains("not a key of the asked type"), "{message}");
}

#[test]
fn a_callers_iv_is_used_as_given_and_checked() {
    let h = TestHsm::new();
    let me = h.service();
    let k = h
        .generate_secret_key(&me, KeySpec::Aes256, &all_uses("iv"))
        .unwrap();
    for (m, iv) in [
        (EncryptMechanism::AesGcm, vec![7u8; 12]),
        (EncryptMechanism::AesCbcPad, vec![9u8; 16]),
    ] {
        let aad: &[u8] = if m == EncryptMechanism::AesGcm {
            b"aad"
        } else {
            b""
        };
        let enc = |iv: Option<&[u8]>| {
            h.encrypt_at_with_iv(&me, k.handle.into(), m, b"plain text", aad, iv)
                .map(|v| v.bytes)
        };
        let a = enc(Some(&iv)).unwrap();
        // The IV leads the ciphertext; the same IV and plaintext give the same bytes (the IV
        // is not replaced), and the ciphertext decrypts.
        assert_eq!(&a[..iv.len()], &iv[..], "{m}");
        assert_eq!(a, enc(Some(&iv)).unwrap(), "{m}");
        assert_eq!(
            &h.decrypt(&me, k.handle, m, &a, aad).unwrap()[..],
            b"plain text"
        );
        // Without one, a fresh random IV each time.
        assert_ne!(
            enc(None).unwrap()[..iv.len()],
            enc(None).unwrap()[..iv.len()]
        );
        let short = enc(Some(&iv[1..])).unwrap_err();
        assert_eq!(short.code(), "invalid_input", "{m}: {short}");
    }
    let rsa = h
        .generate_key_pair(&me, KeySpec::Rsa2048, &all_uses("r"), &all_uses("r"))
        .unwrap();
    let e = h
        .encrypt_at_with_iv(
            &me,
            rsa.1.handle.into(),
            EncryptMechanism::RsaOaepSha256,
            b"x",
            b"",
            Some(&[0; 12]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("takes no IV"), "{e}");
}
