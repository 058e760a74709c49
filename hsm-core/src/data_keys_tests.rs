//! Data keys of envelope encryption: round trips under AES (KWP) and RSA (OAEP) KEKs, each
//! refusal of the policy (`wrap`, `unwrap`, ownership, mechanism, length, trusted KEKs,
//! key versions), the audit entries, and a redacted `Debug`.

use crate::tests::TestHsm;
use crate::*;

fn tpl(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
    r.unwrap_err().code().as_str()
}

fn latest(h: KeyHandle) -> KeyRef {
    KeyRef::latest(h)
}

fn aes_kek(hsm: &Hsm, s: &Session, label: &str, wrap: bool, unwrap: bool) -> KeyInfo {
    hsm.generate_secret_key(
        s,
        KeySpec::Aes256,
        &tpl(label)
            .with(AttributeName::Wrap, wrap)
            .with(AttributeName::Unwrap, unwrap)
            .with(AttributeName::Encrypt, false)
            .with(AttributeName::Decrypt, false),
    )
    .unwrap()
}

#[test]
fn an_aes_kek_makes_and_opens_data_keys_with_kwp() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let kek = aes_kek(&t, &alice, "kek", true, true);
    let dk = t
        .generate_data_key(&alice, latest(kek.handle), DataKeyMechanism::AesKwp, 32)
        .unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(
        dk.wrapped.len(),
        48,
        "RFC 5649: tag (5) + 32 bytes, padded to 40, + 8"
    );
    assert_eq!(dk.key_version, 1);
    let again = t
        .generate_data_key(&alice, latest(kek.handle), DataKeyMechanism::AesKwp, 32)
        .unwrap();
    assert_ne!(*again.plaintext, *dk.plaintext, "a fresh key each call");
    let opened = t
        .unwrap_data_key(
            &alice,
            KeyRef {
                handle: kek.handle,
                version: Some(1),
            },
            DataKeyMechanism::AesKwp,
            &dk.wrapped,
        )
        .unwrap();
    assert_eq!(*opened, *dk.plaintext);
    for len in [16, 24] {
        let d = t
            .generate_data_key(&alice, latest(kek.handle), DataKeyMechanism::AesKwp, len)
            .unwrap();
        assert_eq!(d.plaintext.len(), len);
    }
    let mut bad = dk.wrapped.clone();
    bad[5] ^= 1;
    let e = t
        .unwrap_data_key(&alice, latest(kek.handle), DataKeyMechanism::AesKwp, &bad)
        .unwrap_err();
    assert_eq!(e.code().as_str(), "invalid_input");
    assert!(e.to_string().contains("unwrap failed"), "{e}");
}

#[test]
fn a_wrapped_key_object_never_unwraps_as_a_data_key() {
    // The attack a review found: wrap a sensitive key object under the KEK, then ask for it as
    // a data key. The data key's tag keeps the two apart, both ways.
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let kek = aes_kek(&t, &alice, "kek", true, true);
    let victim = t
        .generate_secret_key(
            &alice,
            KeySpec::Aes256,
            &tpl("victim")
                .with(AttributeName::Extractable, true)
                .with(AttributeName::Encrypt, true),
        )
        .unwrap();
    let wrapped = t
        .wrap_key(&alice, kek.handle, WrapMechanism::AesKwp, victim.handle)
        .unwrap();
    let e = t
        .unwrap_data_key(
            &alice,
            latest(kek.handle),
            DataKeyMechanism::AesKwp,
            &wrapped,
        )
        .unwrap_err();
    assert!(e.to_string().contains("not a data key"), "{e}");
    // And a data key does not become a key object.
    let dk = t
        .generate_data_key(&alice, latest(kek.handle), DataKeyMechanism::AesKwp, 32)
        .unwrap();
    assert!(t
        .unwrap_key(
            &alice,
            kek.handle,
            WrapMechanism::AesKwp,
            &dk.wrapped,
            UnwrapTarget::Secret(KeySpec::Aes256),
            &tpl("from-dk"),
        )
        .is_err());
}

#[test]
fn an_rsa_kek_wraps_with_its_public_half_and_unwraps_with_the_private_half() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let (private, public) = t
        .generate_key_pair(
            &alice,
            KeySpec::Rsa2048,
            &tpl("rsa").with(AttributeName::Unwrap, true),
            &tpl("rsa").with(AttributeName::Wrap, true),
        )
        .unwrap();
    let m = DataKeyMechanism::RsaOaepSha256;
    let dk = t
        .generate_data_key(&alice, latest(public.handle), m, 32)
        .unwrap();
    assert_eq!(dk.wrapped.len(), 256, "the modulus length");
    let opened = t
        .unwrap_data_key(&alice, latest(private.handle), m, &dk.wrapped)
        .unwrap();
    assert_eq!(*opened, *dk.plaintext);
    // The public half cannot unwrap; the private half has no `wrap`.
    assert_eq!(
        code(t.unwrap_data_key(&alice, latest(public.handle), m, &dk.wrapped)),
        "attribute_violation"
    );
    assert_eq!(
        code(t.generate_data_key(&alice, latest(private.handle), m, 32)),
        "attribute_violation"
    );
    // aes-kwp needs an AES KEK.
    assert_eq!(
        code(t.generate_data_key(&alice, latest(public.handle), DataKeyMechanism::AesKwp, 32)),
        "mechanism_invalid"
    );
}

#[test]
fn every_refusal_of_the_policy() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let bob = t.crypto_user(&admin, "bob");
    let kwp = DataKeyMechanism::AesKwp;
    let wrap_only = aes_kek(&t, &alice, "wrap-only", true, false);
    let unwrap_only = aes_kek(&t, &alice, "unwrap-only", false, true);
    let dk = t
        .generate_data_key(&alice, latest(wrap_only.handle), kwp, 32)
        .unwrap();
    assert_eq!(
        code(t.generate_data_key(&alice, latest(unwrap_only.handle), kwp, 32)),
        "attribute_violation"
    );
    assert_eq!(
        code(t.unwrap_data_key(&alice, latest(wrap_only.handle), kwp, &dk.wrapped)),
        "attribute_violation"
    );
    // Another user's KEK does not exist for bob; admins use no keys.
    assert_eq!(
        code(t.generate_data_key(&bob, latest(wrap_only.handle), kwp, 32)),
        "key_not_found"
    );
    assert!(t
        .generate_data_key(&admin, latest(wrap_only.handle), kwp, 32)
        .is_err());
    for len in [0, 8, 31, 33, 64] {
        assert_eq!(
            code(t.generate_data_key(&alice, latest(wrap_only.handle), kwp, len)),
            "invalid_input",
            "{len}"
        );
    }
    // A key wrapped under a KEK that is not a data key's length is not unwrapped.
    let both = aes_kek(&t, &alice, "both", true, true);
    let big = t
        .generate_secret_key(
            &alice,
            KeySpec::GenericSecret { bytes: 48 },
            &tpl("big").with(AttributeName::Extractable, true),
        )
        .unwrap();
    let wrapped_big = t
        .wrap_key(&alice, both.handle, WrapMechanism::AesKwp, big.handle)
        .unwrap();
    assert_eq!(
        code(t.unwrap_data_key(&alice, latest(both.handle), kwp, &wrapped_big)),
        "invalid_input"
    );
    // A trusted KEK opens no data key.
    t.set_attribute(
        &admin,
        both.handle,
        AttributeName::Trusted,
        AttributeValue::Bool(true),
    )
    .unwrap();
    let dk2 = t
        .generate_data_key(&alice, latest(both.handle), kwp, 32)
        .unwrap();
    assert_eq!(
        code(t.unwrap_data_key(&alice, latest(both.handle), kwp, &dk2.wrapped)),
        "permission_denied"
    );
}

#[test]
fn the_key_version_is_recorded_and_checked() {
    // Keys that wrap do not rotate (wrapped keys carry no version): every data key is made by
    // version 1, and unwrapping names it.
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let kek = aes_kek(&t, &alice, "kek", true, true);
    let kwp = DataKeyMechanism::AesKwp;
    let dk = t
        .generate_data_key(&alice, latest(kek.handle), kwp, 32)
        .unwrap();
    assert_eq!(dk.key_version, 1);
    assert_eq!(
        code(t.rotate_key(&alice, kek.handle)),
        "invalid_input",
        "a KEK does not rotate"
    );
    let at = |v| KeyRef {
        handle: kek.handle,
        version: Some(v),
    };
    assert_eq!(
        *t.unwrap_data_key(&alice, at(1), kwp, &dk.wrapped).unwrap(),
        *dk.plaintext
    );
    let e = t
        .unwrap_data_key(&alice, at(2), kwp, &dk.wrapped)
        .unwrap_err();
    assert!(e.to_string().contains("has no version 2"), "{e}");
    assert_eq!(
        code(t.generate_data_key(&alice, at(3), kwp, 32)),
        "invalid_input"
    );
}

#[test]
fn both_operations_are_audited_with_their_outcome() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let kek = aes_kek(&t, &alice, "kek", true, false);
    let kwp = DataKeyMechanism::AesKwp;
    let dk = t
        .generate_data_key(&alice, latest(kek.handle), kwp, 32)
        .unwrap();
    let _ = t.unwrap_data_key(&alice, latest(kek.handle), kwp, &dk.wrapped);
    let entries = t.audit_entries(&admin, 1, 1000).unwrap();
    let of = |event: &str| {
        entries
            .iter()
            .filter(|e| e.event == event)
            .map(|e| (e.actor.clone(), e.target.clone(), e.outcome.clone()))
            .collect::<Vec<_>>()
    };
    let target = Some(kek.handle.to_string());
    assert_eq!(
        of("crypto.data-key"),
        [("alice".to_owned(), target.clone(), "ok".to_owned())]
    );
    assert_eq!(
        of("crypto.data-key-unwrap"),
        [("alice".to_owned(), target, "denied".to_owned())]
    );
}

#[test]
fn debug_of_a_data_key_shows_no_key_bytes() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let kek = aes_kek(&t, &alice, "kek", true, true);
    let dk = t
        .generate_data_key(&alice, latest(kek.handle), DataKeyMechanism::AesKwp, 32)
        .unwrap();
    let shown = format!("{dk:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", &dk.plaintext[..4])),
        "{shown}"
    );
    assert!(!shown.contains(&hex_of(&dk.plaintext)), "{shown}");
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
