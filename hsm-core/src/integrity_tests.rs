//! Opening a store that was tampered with or rolled back: refused, naming what is wrong,
//! unless the operator accepts it (audited).

use std::time::Duration;

use keyward_keystore::{Backend, Record, Write};

use crate::tests::{Fixture, TestHsm};
use crate::*;

const HOUR: Duration = Duration::from_secs(3600);

/// A store with an admin and a few audited changes; the HSM is closed.
fn store_with_history() -> Fixture {
    let t = TestHsm::new();
    let admin = t.admin();
    for name in ["alice", "bob", "erin", "frank"] {
        t.create_user(
            &admin,
            name,
            Role::CryptoUser,
            &Password::from("password-1"),
        )
        .unwrap();
    }
    t.into_parts().0
}

fn open(f: &Fixture) -> Result<Hsm> {
    f.open()
}

fn open_accepting(f: &Fixture, options: OpenOptions) -> Hsm {
    f.open_with(options).unwrap()
}

fn audit(f: &Fixture) -> Vec<Record> {
    f.backend().list("audit").unwrap()
}

fn replace(f: &Fixture, old: &[&Record], new: Vec<Record>) {
    let mut writes: Vec<Write> = old
        .iter()
        .map(|r| Write::Delete(r.kind.clone(), r.id.clone(), r.version))
        .collect();
    writes.extend(new.into_iter().map(Write::Insert));
    f.backend().write_batch(&writes).unwrap();
}

/// Audit events from entry `from` on (a damaged entry cannot be read back).
fn events_from(hsm: &Hsm, from: u64) -> Vec<(String, Option<String>)> {
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    hsm.audit_entries(&admin, from, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.target))
        .collect()
}

#[test]
fn a_flipped_byte_in_an_audit_record_stops_the_open_naming_the_entry() {
    let f = store_with_history();
    let recs = audit(&f);
    let mut third = recs[2].clone();
    third.blob[20] ^= 1;
    replace(&f, &[&recs[2]], vec![third]);
    let err = open(&f).unwrap_err();
    assert_eq!(err.code(), "audit_damaged");
    assert!(
        err.to_string().contains("entry 3 fails authentication"),
        "{err}"
    );
    // A reader node refuses too.
    let err = f.open_read_only().unwrap_err();
    assert_eq!(err.code(), "audit_damaged");
}

#[test]
fn two_swapped_audit_records_stop_the_open() {
    let f = store_with_history();
    let recs = audit(&f);
    let (mut a, mut b) = (recs[3].clone(), recs[4].clone());
    std::mem::swap(&mut a.blob, &mut b.blob);
    replace(&f, &[&recs[3], &recs[4]], vec![a, b]);
    let err = open(&f).unwrap_err();
    assert_eq!(err.code(), "audit_damaged");
    assert!(err.to_string().contains("entry 4"), "{err}");
}

#[test]
fn accepted_audit_damage_is_audited_stays_accepted_and_later_damage_is_still_found() {
    let f = store_with_history();
    let recs = audit(&f);
    let mut third = recs[2].clone();
    third.blob[20] ^= 1;
    replace(&f, &[&recs[2]], vec![third]);
    let hsm = open_accepting(
        &f,
        OpenOptions {
            accept_audit_damage: true,
            ..OpenOptions::default()
        },
    );
    let ev = events_from(&hsm, 4);
    let accepted = ev
        .iter()
        .find(|(e, _)| e == "audit.damage-accepted")
        .expect("audited");
    assert!(accepted.1.as_deref().unwrap().contains("entry 3"));
    // `audit verify` still tells the whole truth.
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    let report = hsm.verify_audit(&admin).unwrap();
    assert!(!report.intact && report.problem.unwrap().contains("entry 3"));
    drop(hsm);
    // The next start needs no override ...
    let hsm = open(&f).unwrap();
    drop(hsm);
    // ... but damage after the accepted point is found again.
    let recs = audit(&f);
    let last = recs.last().unwrap().clone();
    let mut edited = last.clone();
    edited.blob[10] ^= 1;
    replace(&f, &[&last], vec![edited]);
    let err = open(&f).unwrap_err();
    assert_eq!(err.code(), "audit_damaged");
    assert!(
        err.to_string()
            .contains(&format!("entry {} fails", recs.len())),
        "{err}"
    );
}

#[test]
fn an_older_copy_of_the_store_is_refused_with_the_number_of_missing_changes() {
    let f = store_with_history();
    let old = std::fs::read(&f.path).unwrap();
    let sides: Vec<_> = ["-wal", "-shm"]
        .iter()
        .map(|s| {
            let p = std::path::PathBuf::from(format!("{}{s}", f.path.display()));
            (p.clone(), std::fs::read(&p).ok())
        })
        .collect();
    // More confirmed changes, then the older copy is put back.
    let hsm = open(&f).unwrap();
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    hsm.create_user(
        &admin,
        "carol",
        Role::CryptoUser,
        &Password::from("password-1"),
    )
    .unwrap();
    drop(hsm);
    std::fs::write(&f.path, &old).unwrap();
    for (p, content) in &sides {
        match content {
            Some(c) => std::fs::write(p, c).unwrap(),
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let err = open(&f).unwrap_err();
    assert_eq!(err.code(), "store_rolled_back");
    let msg = err.to_string();
    assert!(
        msg.contains("2 audit entries and 1 record changes are missing"),
        "{msg}"
    );
    // Accepted, it opens from the store as it is, audits it, and the next start is clean.
    let hsm = open_accepting(
        &f,
        OpenOptions {
            accept_rollback: true,
            ..OpenOptions::default()
        },
    );
    let ev = events_from(&hsm, 1);
    assert!(ev.iter().any(|(e, t)| e == "store.rollback-accepted"
        && t.as_deref().is_some_and(|t| t.contains("are missing"))));
    assert!(!ev.iter().any(|(_, t)| t.as_deref() == Some("carol")));
    drop(hsm);
    open(&f).unwrap();
}

#[test]
fn a_missing_or_foreign_anchor_is_refused() {
    let f = store_with_history();
    let anchor = std::path::PathBuf::from(format!("{}.anchor", f.path.display()));
    let saved = std::fs::read(&anchor).unwrap();
    std::fs::remove_file(&anchor).unwrap();
    let err = open(&f).unwrap_err();
    assert_eq!(err.code(), "store_rolled_back");
    assert!(err.to_string().contains("anchor is missing"), "{err}");
    // Another HSM's anchor does not open under this store's data key.
    let other = store_with_history();
    let theirs = std::path::PathBuf::from(format!("{}.anchor", other.path.display()));
    std::fs::copy(&theirs, &anchor).unwrap();
    let err = open(&f).unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    std::fs::write(&anchor, saved).unwrap();
    open(&f).unwrap();
}

#[test]
fn every_commit_moves_the_anchor_and_a_newer_store_than_the_anchor_opens() {
    let f = store_with_history();
    let anchor = std::path::PathBuf::from(format!("{}.anchor", f.path.display()));
    let before = std::fs::read(&anchor).unwrap();
    let hsm = open(&f).unwrap();
    let (admin, _) = hsm
        .login("admin", &Password::from("admin-password"), HOUR)
        .unwrap();
    assert_ne!(
        std::fs::read(&anchor).unwrap(),
        before,
        "the login moved it"
    );
    // A crash between a commit and its anchor write leaves the anchor behind: still opens.
    let behind = std::fs::read(&anchor).unwrap();
    hsm.create_user(
        &admin,
        "dave",
        Role::CryptoUser,
        &Password::from("password-1"),
    )
    .unwrap();
    drop(hsm);
    std::fs::write(&anchor, behind).unwrap();
    open(&f).unwrap();
}

#[test]
fn an_accepted_stretch_is_pinned_changes_in_it_or_before_it_are_found() {
    let accept = OpenOptions {
        accept_audit_damage: true,
        ..OpenOptions::default()
    };
    let f = store_with_history();
    let recs = audit(&f);
    assert!(recs.len() >= 6, "{}", recs.len());
    let flip = |r: &Record| {
        let mut r = r.clone();
        r.blob[20] ^= 1;
        r
    };
    // Damage at entry 3, accepted.
    replace(&f, &[&recs[2]], vec![flip(&recs[2])]);
    drop(open_accepting(&f, accept));
    open(&f).unwrap();
    let recs = audit(&f);
    // An edit inside the accepted stretch (entry 5) is found, naming the stretch.
    replace(&f, &[&recs[4]], vec![flip(&recs[4])]);
    let err = open(&f).unwrap_err();
    assert_eq!(err.code(), "audit_damaged");
    assert!(
        err.to_string()
            .contains("changed after their damage was accepted"),
        "{err}"
    );
    replace(&f, &[&audit(&f)[4]], vec![recs[4].clone()]);
    open(&f).unwrap();
    // So is a deletion in it, and an edit before it (entry 1).
    replace(&f, &[&recs[3]], vec![]);
    assert!(open(&f).unwrap_err().to_string().contains("changed after"));
    replace(&f, &[], vec![recs[3].clone()]);
    open(&f).unwrap();
    replace(&f, &[&recs[0]], vec![flip(&recs[0])]);
    let err = open(&f).unwrap_err();
    assert!(
        err.to_string().contains("entry 1 fails authentication"),
        "{err}"
    );
    // A second acceptance adds a stretch; both stay pinned.
    drop(open_accepting(&f, accept));
    open(&f).unwrap();
    let now = audit(&f);
    replace(&f, &[&now[4]], vec![flip(&now[4])]);
    assert!(open(&f).unwrap_err().to_string().contains("changed after"));
}
