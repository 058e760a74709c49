//! A change and its audit entry are written in ONE store batch (`Hsm::commit`): with a
//! recording backend under the HSM, each management operation is one `write_batch` that holds
//! the changed records, the manifest and the operation's audit entry; when that batch fails,
//! neither the change nor an `ok` entry for it reaches the store (the failure itself is
//! audited afterwards, in a batch of its own).

use keyward_hsm::{
    AttributeName, AuditEntry, Hsm, KeyClass, KeySpec, KeyTemplate, MasterKey, Password, Role,
    Session, PROXY_USER,
};
use keyward_keystore::test_util::{BatchLog, MemoryBackend, RecordingBackend};
use keyward_keystore::{Backend, Write};

/// An HSM over a recording in-memory store; the store's other handle reopens the same records.
struct Recorded {
    hsm: Hsm,
    store: MemoryBackend,
    log: BatchLog,
    master: MasterKey,
    admin: Session,
}

fn recorded() -> Recorded {
    let store = MemoryBackend::new();
    let (recording, log) = RecordingBackend::new(store.clone());
    let master = MasterKey::generate().unwrap();
    let hsm = Hsm::create(Box::new(recording), &master).unwrap();
    let password = Password::from("admin-password");
    hsm.bootstrap_admin("admin", &password).unwrap();
    let (admin, _) = hsm
        .login("admin", &password, std::time::Duration::from_secs(3600))
        .unwrap();
    log.clear();
    Recorded {
        hsm,
        store,
        log,
        master,
        admin,
    }
}

/// `insert key`, `update manifest`, ...: what one batch does, sorted.
fn shape(batch: &[Write]) -> Vec<String> {
    let mut ops: Vec<String> = batch
        .iter()
        .map(|w| match w {
            Write::Insert(r) => format!("insert {}", r.kind),
            Write::Update(r) => format!("update {}", r.kind),
            Write::Delete(kind, _, _) => format!("delete {kind}"),
            Write::Rewrite(r) => format!("rewrite {}", r.kind),
        })
        .collect();
    ops.sort();
    ops
}

fn last_entry(r: &Recorded) -> AuditEntry {
    r.hsm
        .audit_entries(&r.admin, 1, usize::MAX)
        .unwrap()
        .pop()
        .unwrap()
}

fn aes(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Encrypt, true)
        .with(AttributeName::Decrypt, true)
}

#[test]
fn generating_keys_writes_them_and_their_audit_entry_in_one_batch() {
    let r = recorded();
    let me = r.hsm.service_session(PROXY_USER).unwrap();
    let key = r
        .hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("one-batch"))
        .unwrap();
    let batches = r.log.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(r.log.single_writes(), 0);
    assert_eq!(
        shape(&batches[0]),
        [
            "insert audit",
            "insert key",
            "update audit-head",
            "update manifest"
        ]
    );
    let entry = last_entry(&r);
    assert_eq!(
        (entry.event.as_str(), entry.outcome.as_str()),
        ("key.generate", "ok")
    );
    assert_eq!(entry.target, Some(key.handle.to_string()));

    r.log.clear();
    let t = KeyTemplate::labelled("pair");
    r.hsm
        .generate_key_pair(&me, KeySpec::EcP256, &t, &t)
        .unwrap();
    let batches = r.log.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(
        shape(&batches[0]),
        [
            "insert audit",
            "insert key",
            "insert key",
            "update audit-head",
            "update manifest"
        ]
    );
}

#[test]
fn creating_a_user_writes_it_and_its_audit_entry_in_one_batch() {
    let r = recorded();
    r.hsm
        .create_user(
            &r.admin,
            "alice",
            Role::CryptoUser,
            &Password::from("alice-password"),
        )
        .unwrap();
    let batches = r.log.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(r.log.single_writes(), 0);
    assert_eq!(
        shape(&batches[0]),
        [
            "insert audit",
            "insert user",
            "update audit-head",
            "update manifest"
        ]
    );
    let entry = last_entry(&r);
    assert_eq!(
        (
            entry.event.as_str(),
            entry.target.as_deref(),
            entry.outcome.as_str()
        ),
        ("user.create", Some("alice"), "ok")
    );
}

/// The outcomes of the entries about `target` of `event`, read by a fresh HSM over the same
/// store (what a restart finds; it writes a login entry, so call it last).
fn outcomes_in_store(r: &Recorded, event: &str, target: &str) -> Vec<String> {
    let reopened = Hsm::open(Box::new(r.store.clone()), &r.master).unwrap();
    let (admin, _) = reopened
        .login(
            "admin",
            &Password::from("admin-password"),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let report = reopened.verify_audit(&admin).unwrap();
    assert!(report.intact, "{report:?}");
    reopened
        .audit_entries(&admin, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == event && e.target.as_deref() == Some(target))
        .map(|e| e.outcome)
        .collect()
}

/// The outcomes of the entries about `target` of `event`, as the running HSM reads them.
fn outcomes(r: &Recorded, event: &str, target: &str) -> Vec<String> {
    r.hsm
        .audit_entries(&r.admin, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == event && e.target.as_deref() == Some(target))
        .map(|e| e.outcome)
        .collect()
}

#[test]
fn when_the_batch_fails_neither_the_user_nor_an_ok_entry_is_stored() {
    let r = recorded();
    let count = |kind: &str| r.store.list(kind).unwrap().len();
    let (users_before, audit_before) = (count("user"), count("audit"));
    r.log.fail_next_batches(1);
    let pw = Password::from("bob-password-1");
    let err = r
        .hsm
        .create_user(&r.admin, "bob", Role::CryptoUser, &pw)
        .unwrap_err();
    assert_eq!(err.code(), "store_error", "{err}");
    // The failed batch held the user and its entry together; the failure was then audited
    // in a batch of its own.
    let batches = r.log.batches();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(
        shape(&batches[0]),
        [
            "insert audit",
            "insert user",
            "update audit-head",
            "update manifest"
        ]
    );
    assert_eq!(shape(&batches[1]), ["insert audit", "update audit-head"]);
    assert_eq!(count("user"), users_before);
    assert_eq!(count("audit"), audit_before + 1);
    let names: Vec<String> = r
        .hsm
        .list_users(&r.admin)
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert!(!names.contains(&"bob".to_owned()), "{names:?}");
    assert_eq!(outcomes(&r, "user.create", "bob"), ["failed"]);

    // The HSM's view stayed consistent with its store: the same change succeeds next, and a
    // restart finds both entries in an intact chain.
    r.hsm
        .create_user(&r.admin, "bob", Role::CryptoUser, &pw)
        .unwrap();
    assert_eq!(count("user"), users_before + 1);
    assert_eq!(
        outcomes_in_store(&r, "user.create", "bob"),
        ["failed", "ok"]
    );
}

#[test]
fn when_the_batch_fails_neither_the_key_nor_an_ok_entry_is_stored() {
    let r = recorded();
    let me = r.hsm.service_session(PROXY_USER).unwrap();
    r.log.fail_next_batches(1);
    let err = r
        .hsm
        .generate_secret_key(&me, KeySpec::Aes256, &aes("lost"))
        .unwrap_err();
    assert_eq!(err.code(), "store_error", "{err}");
    assert_eq!(
        shape(&r.log.batches()[0]),
        [
            "insert audit",
            "insert key",
            "update audit-head",
            "update manifest"
        ]
    );
    assert!(r.hsm.find_by_label(&me, "lost", KeyClass::Secret).is_err());
    let reopened = Hsm::open(Box::new(r.store.clone()), &r.master).unwrap();
    let me2 = reopened.service_session(PROXY_USER).unwrap();
    assert!(reopened
        .find_by_label(&me2, "lost", KeyClass::Secret)
        .is_err());
    let generated: Vec<AuditEntry> = reopened
        .audit_entries(
            &reopened
                .login(
                    "admin",
                    &Password::from("admin-password"),
                    std::time::Duration::from_secs(60),
                )
                .unwrap()
                .0,
            1,
            usize::MAX,
        )
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "key.generate")
        .collect();
    assert!(generated.iter().all(|e| e.outcome != "ok"), "{generated:?}");
}
