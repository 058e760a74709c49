//! The backend conformance suite: one public function per contract of [`Backend`], each given
//! a fresh, empty store. Run them all for a backend with
//! [`backend_conformance_tests!`](crate::backend_conformance_tests):
//!
//! ```text
//! // in another crate's tests/, with keyward-keystore's `test-util` feature
//! mod sqlite {
//!     keyward_keystore::backend_conformance_tests!(|dir: &std::path::Path| {
//!         keyward_keystore::SqliteBackend::create(&dir.join("s.sqlite3")).unwrap()
//!     });
//! }
//! ```
//!
//! The constructor gets a fresh temporary folder that lives as long as the check (a backend
//! that needs no folder ignores it) and must return an empty store with no rollback anchor.
//!
//! What the suite holds a backend to, beyond the trait's own words: a version conflict is
//! also what `update` of a missing record and `delete` of a missing record (or at another
//! version) return; `list` and `kinds` order by byte order of the id and kind; writes later
//! in a batch see the earlier ones; records and the anchor are independent.

use std::path::Path;

use crate::{Backend, Error, Record, Write};

/// A fresh temporary folder for one check (used by [`backend_conformance_tests!`](crate::backend_conformance_tests)).
///
/// # Panics
/// If the folder cannot be created.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder for the backend under test")
}

/// Builds a store with `new` in a fresh folder and runs `check` on it.
pub fn with_store<B: Backend>(new: impl FnOnce(&Path) -> B, check: fn(&dyn Backend)) {
    let dir = tempdir();
    let store = new(dir.path());
    check(&store);
}

/// Generates one `#[test]` per conformance check for the backend that `$new` builds
/// (`$new`: a closure `|dir: &Path| -> impl Backend`, called once per test with a fresh folder).
#[macro_export]
macro_rules! backend_conformance_tests {
    ($new:expr) => {
        $crate::backend_conformance_tests!(@each $new;
            get_of_a_missing_record_is_none,
            insert_then_get_returns_the_record_byte_for_byte,
            insert_of_an_existing_record_is_a_duplicate_and_changes_nothing,
            update_replaces_only_the_stored_version_plus_one,
            delete_needs_the_stored_version,
            list_holds_one_kind_ordered_by_id,
            kinds_are_distinct_sorted_and_follow_deletes,
            kinds_and_ids_are_separate_namespaces,
            a_batch_applies_every_write_in_order,
            a_rewrite_replaces_the_blob_at_the_same_version,
            a_failing_batch_writes_nothing_and_returns_the_first_error,
            an_empty_batch_changes_nothing,
            the_anchor_starts_empty_and_is_replaced_whole,
            concurrent_updates_of_one_version_let_exactly_one_win,
            concurrent_inserts_all_land,
        );
    };
    (@each $new:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::test_util::conformance::with_store(
                    $new,
                    $crate::test_util::conformance::$check,
                );
            }
        )*
    };
}

fn rec(kind: &str, id: &str, version: u64, blob: &[u8]) -> Record {
    Record {
        kind: kind.into(),
        id: id.into(),
        version,
        blob: blob.to_vec(),
    }
}

fn blob_of(store: &dyn Backend, kind: &str, id: &str) -> Option<(u64, Vec<u8>)> {
    store
        .get(kind, id)
        .expect("get")
        .map(|r| (r.version, r.blob))
}

fn ids(store: &dyn Backend, kind: &str) -> Vec<String> {
    store
        .list(kind)
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn is_conflict(r: crate::Result<()>, expected_version: u64) -> bool {
    matches!(r, Err(Error::VersionConflict { expected, .. }) if expected == expected_version)
}

/// `get` of a record that was never written is `Ok(None)`, in an empty store and beside others.
pub fn get_of_a_missing_record_is_none(store: &dyn Backend) {
    assert!(store.get("key", "1").unwrap().is_none());
    store.insert(&rec("key", "1", 1, b"x")).unwrap();
    assert!(store.get("key", "2").unwrap().is_none());
    assert!(store.get("user", "1").unwrap().is_none());
}

/// What `insert` stored, `get` returns unchanged: kind, id, version and every blob byte
/// (empty, all byte values, 1 MiB).
pub fn insert_then_get_returns_the_record_byte_for_byte(store: &dyn Backend) {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let records = [
        rec("key", "empty", 1, b""),
        rec("key", "bytes", 7, &all_bytes),
        rec("key", "large", 1, &large),
        rec("data-key", "id with spaces/é", u64::from(u32::MAX), b"\0\0"),
    ];
    for r in &records {
        store.insert(r).unwrap();
    }
    for r in &records {
        assert_eq!(store.get(&r.kind, &r.id).unwrap().as_ref(), Some(r));
    }
}

/// A second `insert` of one `(kind, id)` is [`Error::Duplicate`] and leaves the first record.
pub fn insert_of_an_existing_record_is_a_duplicate_and_changes_nothing(store: &dyn Backend) {
    store.insert(&rec("key", "a", 1, b"first")).unwrap();
    let err = store.insert(&rec("key", "a", 1, b"second")).unwrap_err();
    assert!(
        matches!(&err, Error::Duplicate { kind, id } if kind == "key" && id == "a"),
        "{err:?}"
    );
    let err = store.insert(&rec("key", "a", 5, b"third")).unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
    assert_eq!(blob_of(store, "key", "a"), Some((1, b"first".to_vec())));
}

/// `update` replaces the record stored at `version - 1`; a stale version, a skipped version
/// or a missing record is [`Error::VersionConflict`] naming the expected version, and changes
/// nothing.
pub fn update_replaces_only_the_stored_version_plus_one(store: &dyn Backend) {
    store.insert(&rec("key", "a", 1, b"one")).unwrap();
    store.update(&rec("key", "a", 2, b"two")).unwrap();
    assert_eq!(blob_of(store, "key", "a"), Some((2, b"two".to_vec())));
    assert!(is_conflict(store.update(&rec("key", "a", 2, b"stale")), 1));
    assert!(is_conflict(store.update(&rec("key", "a", 4, b"skip")), 3));
    assert!(is_conflict(store.update(&rec("key", "b", 2, b"none")), 1));
    assert_eq!(blob_of(store, "key", "a"), Some((2, b"two".to_vec())));
    assert!(store.get("key", "b").unwrap().is_none());
}

/// `delete` removes the record at its stored version; another version or a missing record is
/// [`Error::VersionConflict`] and changes nothing. A deleted id can be inserted again.
pub fn delete_needs_the_stored_version(store: &dyn Backend) {
    store.insert(&rec("key", "a", 1, b"one")).unwrap();
    store.update(&rec("key", "a", 2, b"two")).unwrap();
    assert!(is_conflict(store.delete("key", "a", 1), 1));
    assert_eq!(blob_of(store, "key", "a"), Some((2, b"two".to_vec())));
    store.delete("key", "a", 2).unwrap();
    assert!(store.get("key", "a").unwrap().is_none());
    assert!(is_conflict(store.delete("key", "a", 2), 2));
    assert!(is_conflict(store.delete("key", "never", 1), 1));
    store.insert(&rec("key", "a", 1, b"again")).unwrap();
    assert_eq!(blob_of(store, "key", "a"), Some((1, b"again".to_vec())));
}

/// `list` returns every record of one kind and no other, ordered by id (byte order, so `10`
/// sorts before `2` and `B` before `a`); an absent kind lists nothing.
pub fn list_holds_one_kind_ordered_by_id(store: &dyn Backend) {
    for id in ["b", "2", "a", "10", "B", "1"] {
        store.insert(&rec("key", id, 1, id.as_bytes())).unwrap();
    }
    store.insert(&rec("user", "0", 1, b"u")).unwrap();
    assert_eq!(ids(store, "key"), ["1", "10", "2", "B", "a", "b"]);
    let listed = store.list("key").unwrap();
    assert!(listed
        .iter()
        .all(|r| r.kind == "key" && r.blob == r.id.as_bytes()));
    assert_eq!(ids(store, "user"), ["0"]);
    assert!(store.list("audit").unwrap().is_empty());
}

/// `kinds` names each kind that holds a record once, sorted; a kind whose last record is
/// deleted is gone.
pub fn kinds_are_distinct_sorted_and_follow_deletes(store: &dyn Backend) {
    assert!(store.kinds().unwrap().is_empty());
    for (kind, id) in [("user", "1"), ("key", "1"), ("key", "2"), ("audit", "1")] {
        store.insert(&rec(kind, id, 1, b"x")).unwrap();
    }
    assert_eq!(store.kinds().unwrap(), ["audit", "key", "user"]);
    store.delete("user", "1", 1).unwrap();
    store.delete("key", "1", 1).unwrap();
    assert_eq!(store.kinds().unwrap(), ["audit", "key"]);
}

/// The same id under two kinds is two records: each is read, updated and deleted alone.
pub fn kinds_and_ids_are_separate_namespaces(store: &dyn Backend) {
    store.insert(&rec("key", "7", 1, b"key")).unwrap();
    store.insert(&rec("user", "7", 1, b"user")).unwrap();
    store.update(&rec("user", "7", 2, b"user2")).unwrap();
    assert_eq!(blob_of(store, "key", "7"), Some((1, b"key".to_vec())));
    store.delete("key", "7", 1).unwrap();
    assert_eq!(blob_of(store, "user", "7"), Some((2, b"user2".to_vec())));
}

/// `write_batch` applies inserts, updates and deletes together, and a write sees the ones
/// before it in the same batch (insert then update one record).
pub fn a_batch_applies_every_write_in_order(store: &dyn Backend) {
    store.insert(&rec("key", "old", 1, b"old")).unwrap();
    store.insert(&rec("key", "kept", 1, b"kept")).unwrap();
    store
        .write_batch(&[
            Write::Insert(rec("key", "new", 1, b"new")),
            Write::Update(rec("key", "new", 2, b"new2")),
            Write::Update(rec("key", "kept", 2, b"kept2")),
            Write::Delete("key".into(), "old".into(), 1),
            Write::Insert(rec("audit", "1", 1, b"entry")),
        ])
        .unwrap();
    assert_eq!(blob_of(store, "key", "new"), Some((2, b"new2".to_vec())));
    assert_eq!(blob_of(store, "key", "kept"), Some((2, b"kept2".to_vec())));
    assert!(store.get("key", "old").unwrap().is_none());
    assert_eq!(blob_of(store, "audit", "1"), Some((1, b"entry".to_vec())));
}

/// `Write::Rewrite` replaces a record's blob and keeps its version; at another version it is
/// a conflict and changes nothing.
pub fn a_rewrite_replaces_the_blob_at_the_same_version(store: &dyn Backend) {
    store.insert(&rec("key", "r", 1, b"one")).unwrap();
    store.update(&rec("key", "r", 2, b"two")).unwrap();
    store
        .write_batch(&[Write::Rewrite(rec("key", "r", 2, b"TWO"))])
        .unwrap();
    assert_eq!(blob_of(store, "key", "r"), Some((2, b"TWO".to_vec())));
    assert!(is_conflict(
        store.write_batch(&[Write::Rewrite(rec("key", "r", 1, b"old"))]),
        1
    ));
    assert!(store
        .write_batch(&[Write::Rewrite(rec("key", "missing", 1, b"x"))])
        .is_err());
    assert_eq!(blob_of(store, "key", "r"), Some((2, b"TWO".to_vec())));
}

/// A batch with one failing write changes nothing (not even the writes before it) and
/// returns the first error; the same writes without the bad one then succeed.
pub fn a_failing_batch_writes_nothing_and_returns_the_first_error(store: &dyn Backend) {
    store.insert(&rec("key", "a", 1, b"one")).unwrap();
    store.insert(&rec("key", "b", 1, b"bee")).unwrap();
    let good = [
        Write::Insert(rec("key", "c", 1, b"c")),
        Write::Update(rec("key", "a", 2, b"two")),
        Write::Delete("key".into(), "b".into(), 1),
    ];
    let mut bad = good.to_vec();
    bad.push(Write::Update(rec("key", "a", 9, b"stale")));
    assert!(is_conflict(store.write_batch(&bad), 8));
    let mut dup_first = vec![Write::Insert(rec("key", "a", 1, b"dup"))];
    dup_first.extend(bad);
    let err = store.write_batch(&dup_first).unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
    assert_eq!(ids(store, "key"), ["a", "b"]);
    assert_eq!(blob_of(store, "key", "a"), Some((1, b"one".to_vec())));
    store.write_batch(&good).unwrap();
    assert_eq!(ids(store, "key"), ["a", "c"]);
    assert_eq!(blob_of(store, "key", "a"), Some((2, b"two".to_vec())));
}

/// An empty batch succeeds and changes nothing.
pub fn an_empty_batch_changes_nothing(store: &dyn Backend) {
    store.insert(&rec("key", "a", 1, b"one")).unwrap();
    store.write_batch(&[]).unwrap();
    assert_eq!(ids(store, "key"), ["a"]);
    assert_eq!(store.kinds().unwrap(), ["key"]);
}

/// A new store has no anchor; each `write_anchor` replaces the whole blob (a shorter one
/// leaves nothing of the longer); the anchor is no record and records do not touch it.
pub fn the_anchor_starts_empty_and_is_replaced_whole(store: &dyn Backend) {
    assert_eq!(store.read_anchor().unwrap(), None);
    store.write_anchor(b"a longer first anchor").unwrap();
    assert_eq!(
        store.read_anchor().unwrap().as_deref(),
        Some(&b"a longer first anchor"[..])
    );
    store.write_anchor(b"second").unwrap();
    assert_eq!(
        store.read_anchor().unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert!(store.kinds().unwrap().is_empty());
    store
        .write_batch(&[Write::Insert(rec("key", "a", 1, b"x"))])
        .unwrap();
    assert_eq!(
        store.read_anchor().unwrap().as_deref(),
        Some(&b"second"[..])
    );
    store.write_anchor(b"").unwrap();
    assert_eq!(store.read_anchor().unwrap().as_deref(), Some(&b""[..]));
}

/// Eight threads update one record from version 1 at once: each call is atomic, so exactly
/// one wins, the others get a version conflict, and the stored blob is the winner's.
pub fn concurrent_updates_of_one_version_let_exactly_one_win(store: &dyn Backend) {
    store.insert(&rec("key", "a", 1, b"one")).unwrap();
    let results: Vec<(u8, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u8)
            .map(|t| {
                s.spawn(move || {
                    let r = if t % 2 == 0 {
                        store.update(&rec("key", "a", 2, &[t]))
                    } else {
                        store.write_batch(&[Write::Update(rec("key", "a", 2, &[t]))])
                    };
                    let won = r.is_ok();
                    assert!(won || is_conflict(r, 1));
                    (t, won)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<u8> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(blob_of(store, "key", "a"), Some((2, vec![winners[0]])));
}

/// Eight threads insert twenty records each, alone and in batches: every record lands once.
pub fn concurrent_inserts_all_land(store: &dyn Backend) {
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in 0..10 {
                    store
                        .insert(&rec("key", &format!("{t}-{i:02}"), 1, b"x"))
                        .unwrap();
                }
                let batch: Vec<Write> = (10..20)
                    .map(|i| Write::Insert(rec("key", &format!("{t}-{i:02}"), 1, b"x")))
                    .collect();
                store.write_batch(&batch).unwrap();
            });
        }
    });
    let listed = ids(store, "key");
    assert_eq!(listed.len(), 160);
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, listed);
}
