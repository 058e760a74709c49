//! Seals: a store sealed by a passphrase or shares opens only with them; the seal
//! configuration is bound to the data key; a rekey replaces the master key and nothing else.

use keyward_keystore::{Backend, Record, Write};

use crate::store::RecordKind;

use crate::tests::TestHsm;
use crate::*;

fn shamir_store(shares: u8, threshold: u8) -> (crate::test_util::TestStore, Vec<UnsealShare>) {
    let master = MasterKey::generate().unwrap();
    let (printed, config) = shamir::split(&master, shares, threshold).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.sqlite3");
    let store = keyward_keystore::SqliteBackend::create(&path).unwrap();
    drop(Hsm::create_sealed(Box::new(store), &master, &config).unwrap());
    (
        crate::test_util::TestStore::from_parts(dir, path, master),
        printed,
    )
}

fn unseal(store: &crate::test_util::TestStore, shares: &[&UnsealShare]) -> Result<Hsm> {
    let mut u = Unsealer::new(read_seal_config(&store.backend())?);
    for s in shares {
        if let UnsealStep::Complete(master) = u.add(s.expose())? {
            return Hsm::open(Box::new(store.backend()), &master);
        }
    }
    Err(Error::Sealed {
        reason: "not enough shares",
    })
}

#[test]
fn a_shamir_store_opens_with_any_three_shares_of_five() {
    let (store, shares) = shamir_store(5, 3);
    let config = read_seal_config(&store.backend()).unwrap();
    assert_eq!(config.seal_type, SealType::Shamir);
    assert_eq!(config.shamir.as_ref().unwrap().threshold, 3);
    assert!(unseal(&store, &[&shares[0], &shares[1]]).is_err());
    unseal(&store, &[&shares[4], &shares[0], &shares[2]]).unwrap();
}

#[test]
fn an_edited_seal_config_refuses_to_open() {
    let (store, shares) = shamir_store(3, 2);
    let b = store.backend();
    let rec = b.get("seal-config", "config").unwrap().unwrap();
    let mut config: SealConfig = serde_json::from_slice(&rec.blob).unwrap();
    // An attacker lowers the threshold: the data key record is bound to the original.
    config.shamir.as_mut().unwrap().threshold = 1;
    b.write_batch(&[Write::Update(Record {
        version: rec.version + 1,
        blob: serde_json::to_vec(&config).unwrap(),
        ..rec
    })])
    .unwrap();
    let e = Hsm::open(Box::new(store.backend()), &store.master).unwrap_err();
    assert!(
        matches!(e, Error::Sealed { reason } if reason.contains("seal configuration")),
        "{e}"
    );
    drop(shares);
}

#[test]
fn a_passphrase_store_opens_with_its_passphrase_only() {
    let (master, config) = seal::passphrase::new_seal("a long passphrase here").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.sqlite3");
    let store = keyward_keystore::SqliteBackend::create(&path).unwrap();
    drop(Hsm::create_sealed(Box::new(store), &master, &config).unwrap());
    let store = crate::test_util::TestStore::from_parts(dir, path, master);
    let stored = read_seal_config(&store.backend()).unwrap();
    let wrong = passphrase::master_key(&stored, "a long passphrase herf").unwrap();
    assert!(matches!(
        Hsm::open(Box::new(store.backend()), &wrong),
        Err(Error::Sealed { .. })
    ));
    let right = passphrase::master_key(&stored, "a long passphrase here").unwrap();
    Hsm::open(Box::new(store.backend()), &right).unwrap();
}

#[test]
fn rekey_replaces_the_master_key_and_keeps_every_key() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let key = t
        .generate_secret_key(
            &alice,
            KeySpec::Aes256,
            &KeyTemplate::labelled("k").with(AttributeName::Encrypt, true),
        )
        .unwrap();
    let (store, hsm) = t.into_parts();
    let before = read_seal_config(&store.backend()).unwrap();
    assert_eq!(before.seal_type, SealType::KeyFile);
    let new_master = MasterKey::generate().unwrap();
    let (shares, config) = shamir::split(&new_master, 5, 3).unwrap();
    // Only admins rekey.
    assert!(matches!(
        hsm.rekey(&alice, &new_master, config.clone()),
        Err(Error::PermissionDenied { .. })
    ));
    let after = hsm.rekey(&admin, &new_master, config).unwrap();
    assert_eq!(after.generation, before.generation + 1);
    assert_eq!(hsm.seal_config().unwrap(), after);
    let events: Vec<String> = hsm
        .audit_entries(&admin, 1, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"seal.rekey".to_owned()), "{events:?}");
    drop(hsm);
    // The old master key no longer opens it; three of the new shares do, with every record.
    assert!(matches!(store.open(), Err(Error::Sealed { .. })));
    let reopened = unseal(&store, &[&shares[1], &shares[3], &shares[0]]).unwrap();
    let alice = reopened
        .login(
            "alice",
            &crate::test_util::password_of("alice"),
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0;
    let ct = reopened
        .encrypt(&alice, key.handle, EncryptMechanism::AesGcm, b"hello", b"")
        .unwrap();
    assert!(!ct.is_empty());
}

#[test]
fn a_data_key_rotation_rewrites_every_record_resumes_after_a_stop_and_destroys_the_old_key() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(
            t.generate_secret_key(
                &alice,
                KeySpec::Aes256,
                &KeyTemplate::labelled(&format!("k{i}")).with(AttributeName::Encrypt, true),
            )
            .unwrap()
            .handle,
        );
    }
    assert!(matches!(
        t.rotate_data_key(&alice),
        Err(Error::PermissionDenied { .. })
    ));
    let before = t
        .store
        .backend()
        .get("key", &keys[0].to_string())
        .unwrap()
        .unwrap();
    let started = t.rotate_data_key(&admin).unwrap();
    assert_eq!((started.current_version, started.versions.len()), (2, 2));
    assert!(started.pending_records > 40, "{started:?}");
    // Not twice at once.
    assert!(t.rotate_data_key(&admin).is_err());
    // New records go under v2 while old ones wait; one small batch, then a "crash".
    t.generate_secret_key(&alice, KeySpec::Aes256, &KeyTemplate::labelled("new"))
        .unwrap();
    let after_one = t.rotation_step(5).unwrap();
    assert!(after_one.pending_records < started.pending_records);
    assert!(!after_one.done());
    let (store, hsm) = t.into_parts();
    drop(hsm);
    // Reopened halfway: both versions open; the rotation continues where the store is.
    let hsm = store.open().unwrap();
    let status = hsm.rotation_status().unwrap();
    assert_eq!(status.versions.len(), 2);
    assert_eq!(status.pending_records, after_one.pending_records);
    let mut last = status;
    while !last.done() {
        last = hsm.rotation_step(7).unwrap();
    }
    assert_eq!(
        (
            last.current_version,
            last.versions.clone(),
            last.pending_records
        ),
        (2, vec![2], 0)
    );
    let alice = hsm
        .login(
            "alice",
            &crate::test_util::password_of("alice"),
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0;
    for k in &keys {
        hsm.encrypt(&alice, *k, EncryptMechanism::AesGcm, b"x", b"")
            .unwrap();
    }
    let (admin, _) = hsm
        .login(
            "admin",
            &Password::from("admin-password"),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    assert!(hsm.verify_audit(&admin).unwrap().intact);
    let events: Vec<String> = hsm
        .audit_entries(&admin, 1, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"seal.rotate-data-key".to_owned()));
    assert!(events.contains(&"seal.data-key-destroyed".to_owned()));
    drop(hsm);
    // Every record is under v2 and v1 is gone: it still opens, with everything.
    let hsm = store.open().unwrap();
    assert!(hsm.rotation_status().unwrap().done());
    // Every record is under v2 now, and v1 is gone: a blob still under v1 (a record put back
    // as it was before the rewrite) no longer opens.
    let b = store.backend();
    let rec = b.get("key", &keys[0].to_string()).unwrap().unwrap();
    assert_eq!(
        crate::store::format::RecordCipher::version_of(&rec.blob),
        Some(2)
    );
    assert_eq!(
        crate::store::format::RecordCipher::version_of(&before.blob),
        Some(1)
    );
    drop(hsm);
    b.write_batch(&[Write::Rewrite(before)]).unwrap();
    assert!(matches!(store.open(), Err(Error::RecordTampered { .. })));
}

#[test]
fn a_store_from_before_root_keys_opens_and_a_rekey_gives_it_one() {
    use crate::seal::config::{decode_root, DataKeys, ROOT_BOUND};
    use crate::store::format::RecordCipher;
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let key = t
        .generate_secret_key(
            &alice,
            KeySpec::Aes256,
            &KeyTemplate::labelled("k").with(AttributeName::Encrypt, true),
        )
        .unwrap()
        .handle;
    let (store, hsm) = t.into_parts();
    drop(hsm);
    // Rewrite the seal records in the layout of the first versions: no root-key record, no
    // seal configuration, the data key (format 1: its 32 bytes) under the master key.
    let b = store.backend();
    let root_rec = b.get("seal", "root-key").unwrap().unwrap();
    let plain = store
        .master
        .cipher()
        .unwrap()
        .open(
            RecordKind::Seal,
            "root-key",
            root_rec.version,
            &root_rec.blob,
        )
        .unwrap();
    let root = decode_root(&plain, None).unwrap();
    let dk_rec = b.get("seal", "data-key").unwrap().unwrap();
    let dk_plain = RecordCipher::new(&root[..], 0)
        .unwrap()
        .open(RecordKind::Seal, "data-key", dk_rec.version, &dk_rec.blob)
        .unwrap();
    let keys = DataKeys::decode(&dk_plain, Some(ROOT_BOUND)).unwrap();
    let legacy = store
        .master
        .cipher()
        .unwrap()
        .seal(
            RecordKind::Seal,
            "data-key",
            dk_rec.version + 1,
            &keys.key(1).unwrap()[..],
        )
        .unwrap();
    let cfg = b.get("seal-config", "config").unwrap().unwrap();
    b.write_batch(&[
        Write::Delete("seal".into(), "root-key".into(), root_rec.version),
        Write::Delete("seal-config".into(), "config".into(), cfg.version),
        Write::Update(Record {
            version: dk_rec.version + 1,
            blob: legacy,
            ..dk_rec
        }),
    ])
    .unwrap();
    // It opens with its master key; a rekey gives it a root-key record (the old master key
    // becomes its root key), after which the new shares open it and the key works.
    let hsm = store.open().unwrap();
    let admin = hsm
        .login(
            "admin",
            &Password::from("admin-password"),
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0;
    let new_master = MasterKey::generate().unwrap();
    let (shares, config) = shamir::split(&new_master, 3, 2).unwrap();
    hsm.rekey(&admin, &new_master, config).unwrap();
    // Still unsealed after the rekey: writes work.
    hsm.generate_secret_key(
        &hsm.login(
            "alice",
            &crate::test_util::password_of("alice"),
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0,
        KeySpec::Aes256,
        &KeyTemplate::labelled("after"),
    )
    .unwrap();
    drop(hsm);
    assert!(store.open().is_err());
    let hsm = unseal(&store, &[&shares[2], &shares[0]]).unwrap();
    let alice = hsm
        .login(
            "alice",
            &crate::test_util::password_of("alice"),
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0;
    hsm.encrypt(&alice, key, EncryptMechanism::AesGcm, b"x", b"")
        .unwrap();
}
