//! Session-ticket keys released to a remote proxy fleet: who may ask, the window of periods
//! kept, the encryption to the recipient, and the audit entry.

use crate::tests::TestHsm;
use crate::*;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256,
};

const ROTATION: u64 = 3600;

/// A recipient key pair as a proxy makes it: the private half and its public SPKI (DER).
fn recipient(size: KeySize) -> (OaepPrivateDecryptingKey, Vec<u8>) {
    let key = PrivateDecryptingKey::generate(size).unwrap();
    let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
    (OaepPrivateDecryptingKey::new(key).unwrap(), spki)
}

fn open(me: &OaepPrivateDecryptingKey, k: &ReleasedTicketKey) -> Vec<u8> {
    let mut out = vec![0u8; me.min_output_size()];
    let value = me
        .decrypt(&OAEP_SHA256_MGF1SHA256, &k.wrapped, &mut out, Some(&k.name))
        .unwrap();
    value.to_vec()
}

fn ticket_labels(t: &TestHsm, me: &Session) -> Vec<String> {
    let mut labels: Vec<String> = t
        .list_keys(me, &KeyFilter::default(), None, 100)
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.attributes.label)
        .filter(|l| l.starts_with(TICKET_KEY_LABEL_PREFIX))
        .collect();
    labels.sort();
    labels
}

#[test]
fn a_fleet_user_gets_the_same_current_and_next_keys_each_call_and_old_ones_go() {
    let t = TestHsm::new();
    let admin = t.admin();
    let fleet = t.crypto_user(&admin, "fleet");
    let (me, spki) = recipient(KeySize::Rsa3072);
    let now = 1_000 * ROTATION + 5;

    let first = t.release_ticket_keys(&fleet, ROTATION, now, &spki).unwrap();
    assert_eq!(
        first.iter().map(|k| k.period).collect::<Vec<_>>(),
        [1_000, 1_001]
    );
    assert_eq!(
        ticket_labels(&t, &fleet),
        ["tls-ticket-key-1000", "tls-ticket-key-1001"]
    );
    for k in &first {
        assert_eq!(open(&me, k).len(), 32, "AES-256");
        assert_eq!(k.name[..8], k.period.to_be_bytes());
        assert_eq!(k.name[8..], k.handle.0.to_be_bytes());
        let info = t.key_info(&fleet, k.handle).unwrap();
        assert!(!info.attributes.extractable, "never wrapped or exported");
    }
    // Another proxy of the fleet (its own recipient key) gets the same values.
    let (other, other_spki) = recipient(KeySize::Rsa3072);
    let again = t
        .release_ticket_keys(&fleet, ROTATION, now + 10, &other_spki)
        .unwrap();
    assert_eq!(again.len(), 2);
    for (a, b) in first.iter().zip(&again) {
        assert_eq!((a.handle, a.name), (b.handle, b.name));
        assert_eq!(open(&me, a), open(&other, b));
    }

    // Two periods later: 1000 is outside [1001, 1003] and destroyed; 1001 stays for the
    // tickets it issued, 1002 and 1003 are made.
    let later = t
        .release_ticket_keys(&fleet, ROTATION, 1_002 * ROTATION, &spki)
        .unwrap();
    assert_eq!(
        later.iter().map(|k| k.period).collect::<Vec<_>>(),
        [1_001, 1_002, 1_003]
    );
    assert_eq!(later[0].handle, first[1].handle);
    assert_eq!(
        ticket_labels(&t, &fleet),
        [
            "tls-ticket-key-1001",
            "tls-ticket-key-1002",
            "tls-ticket-key-1003"
        ]
    );
    assert_eq!(
        t.key_info(&fleet, first[0].handle).unwrap_err().code(),
        ErrorCode::KeyNotFound
    );

    // Another fleet user has keys of its own.
    let other_fleet = t.crypto_user(&admin, "fleet-b");
    let theirs = t
        .release_ticket_keys(&other_fleet, ROTATION, 1_002 * ROTATION, &spki)
        .unwrap();
    assert_eq!(theirs.len(), 2);
    assert!(theirs
        .iter()
        .all(|k| later.iter().all(|l| l.handle != k.handle)));
    assert_ne!(open(&me, &theirs[0]), open(&me, &later[1]));

    // Each release is one audit entry naming the handles.
    let audit = t.audit_entries(&admin, 1, 1_000).unwrap();
    let releases: Vec<_> = audit
        .iter()
        .filter(|e| e.event == "tls.ticket-keys-release")
        .collect();
    assert_eq!(releases.len(), 4);
    assert_eq!(releases[0].actor, "fleet");
    assert_eq!(releases[0].outcome, "ok");
    let target = releases[0].target.as_deref().unwrap();
    assert!(target.contains(&first[0].handle.to_string()), "{target}");
    // The Debug form names no value.
    let debug = format!("{:?}", first[0]);
    assert!(!debug.contains("wrapped"), "{debug}");
}

#[test]
fn admins_short_or_bad_recipients_and_bad_rotations_are_refused_and_make_nothing() {
    let t = TestHsm::new();
    let admin = t.admin();
    let fleet = t.crypto_user(&admin, "fleet");
    let (_, spki) = recipient(KeySize::Rsa3072);
    let now = 7 * ROTATION;
    assert_eq!(
        t.release_ticket_keys(&admin, ROTATION, now, &spki)
            .unwrap_err()
            .code(),
        ErrorCode::PermissionDenied
    );
    let (_, short) = recipient(KeySize::Rsa2048);
    let err = t
        .release_ticket_keys(&fleet, ROTATION, now, &short)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.to_string().contains("3072"), "{err}");
    for (rotation, key) in [
        (ROTATION, &b"not a key"[..]),
        (0, &spki[..]),
        (8 * 24 * 3600, &spki[..]),
    ] {
        assert_eq!(
            t.release_ticket_keys(&fleet, rotation, now, key)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidInput
        );
    }
    assert!(ticket_labels(&t, &fleet).is_empty());
}

#[test]
fn users_cannot_make_keys_with_the_reserved_ticket_prefix() {
    let t = TestHsm::new();
    let admin = t.admin();
    let fleet = t.crypto_user(&admin, "fleet");
    for label in ["tls-ticket-key-5", "TLS-Ticket-Key-5", " tls-ticket-key-9"] {
        let err = t
            .generate_secret_key(&fleet, KeySpec::Aes256, &KeyTemplate::labelled(label))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{label}: {err}");
    }
    assert!(ticket_labels(&t, &fleet).is_empty());
}
