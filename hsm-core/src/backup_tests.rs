//! Backups: an archive of a store restores into an empty store with the same seal; every
//! key signs the same, users log in, the audit chain verifies and records the restore.

use std::time::Duration;

use crate::tests::TestHsm;
use crate::*;

const HOUR: Duration = Duration::from_secs(3600);

fn new_store(dir: &std::path::Path) -> Box<dyn keyward_keystore::Backend> {
    Box::new(keyward_keystore::SqliteBackend::create(&dir.join("keyward.sqlite3")).unwrap())
}

#[test]
fn an_archive_restores_every_key_user_and_audit_entry() {
    let t = TestHsm::new();
    let admin = t.admin();
    let alice = t.crypto_user(&admin, "alice");
    let template = |l: &str| {
        KeyTemplate::labelled(l)
            .with(AttributeName::Sign, true)
            .with(AttributeName::Extractable, false)
    };
    let mut signed = Vec::new();
    for i in 0..5 {
        let (private, _) = t
            .generate_key_pair(
                &alice,
                KeySpec::Ed25519,
                &template(&format!("k{i}")),
                &KeyTemplate::labelled(&format!("k{i}")).with(AttributeName::Verify, true),
            )
            .unwrap();
        let sig = t
            .sign(
                &alice,
                private.handle,
                SignMechanism::Ed25519,
                SignInput::Message(b"hello"),
                SignatureEncoding::Der,
            )
            .unwrap();
        signed.push((private.handle, sig));
    }
    // Only admins take backups; the taking is audited.
    assert!(matches!(
        t.backup(&alice, "n1"),
        Err(Error::PermissionDenied { .. })
    ));
    let (header, archive) = t.backup(&admin, "n1").unwrap();
    assert_eq!(header.keys, 10);
    assert!(header.users >= 3 && header.audit_entries > 5, "{header:?}");
    let (store, hsm) = t.into_parts();
    drop(hsm);

    // A master key of another seal is refused; nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let other = MasterKey::generate().unwrap();
    assert!(matches!(
        Hsm::restore(new_store(dir.path()), &archive, &other, "op", false),
        Err(Error::UnsealKeyRejected { .. })
    ));
    let b = keyward_keystore::SqliteBackend::open(&dir.path().join("keyward.sqlite3")).unwrap();
    assert!(keyward_keystore::Backend::kinds(&b).unwrap().is_empty());

    let (restored, h) = Hsm::restore(Box::new(b), &archive, &store.master, "op", false).unwrap();
    assert_eq!(h.id, header.id);
    let (alice, _) = restored
        .login("alice", &crate::test_util::password_of("alice"), HOUR)
        .unwrap();
    for (handle, sig) in &signed {
        let again = restored
            .sign(
                &alice,
                *handle,
                SignMechanism::Ed25519,
                SignInput::Message(b"hello"),
                SignatureEncoding::Der,
            )
            .unwrap();
        assert_eq!(&again, sig);
    }
    let (admin, _) = restored
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    let report = restored.verify_audit(&admin).unwrap();
    assert!(report.intact, "{report:?}");
    let events: Vec<String> = restored
        .audit_entries(&admin, 1, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"store.restore".to_owned()), "{events:?}");
    drop(restored);

    // It reopens (the anchor follows the restored state); a second restore into it is
    // refused unless told to replace.
    let b = || keyward_keystore::SqliteBackend::open(&dir.path().join("keyward.sqlite3")).unwrap();
    drop(Hsm::open(Box::new(b()), &store.master).unwrap());
    assert!(matches!(
        Hsm::restore(Box::new(b()), &archive, &store.master, "op", false),
        Err(Error::BackupInvalid { .. })
    ));
    let (again, _) = Hsm::restore(Box::new(b()), &archive, &store.master, "op", true).unwrap();
    drop(again);
    drop(Hsm::open(Box::new(b()), &store.master).unwrap());
}
