//! Seals: a store sealed by a passphrase or shares opens only with them; the seal
//! configuration is bound to the data key; a rekey replaces the master key and nothing else.

use keyward_keystore::{Backend, Record, Write};

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
        .generate_secret_key(&alice, KeySpec::Aes256, &KeyTemplate::labelled("k").with(AttributeName::Encrypt, true))
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
        .login("alice", &crate::test_util::password_of("alice"), std::time::Duration::from_secs(60))
        .unwrap()
        .0;
    let ct = reopened
        .encrypt(&alice, key.handle, EncryptMechanism::AesGcm, b"hello", b"")
        .unwrap();
    assert!(!ct.is_empty());
}
