//! Creating, opening and restarting nodes on a PostgreSQL store, and what an operator is told when something is missing or wrong.

use keyward_keystore::test_util::TestPostgres;

use crate::common::*;
use crate::support::*;

#[test]
fn init_keys_and_restarts_keep_everything_in_the_database_not_the_data_dir() {
    let pg = TestPostgres::shared();
    let (db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node1");
    init_ok(&data, &url);
    assert!(data.join("master.key").is_file());
    assert!(
        !data.join("keyward.sqlite3").exists(),
        "no SQLite store beside a PostgreSQL one"
    );
    let records: u64 = pg
        .psql(&db, "SELECT count(*) FROM keyward_records")
        .parse()
        .unwrap();
    assert!(records > 0, "init wrote its records to PostgreSQL");

    let out = keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "web",
        "--json",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let handle = serde_json::from_str::<serde_json::Value>(&out).unwrap()["private"]["handle"]
        .as_u64()
        .unwrap();

    // The node serves from the database. Every node is a writer: a key generated from the
    // command line while it runs is written beside it and reaches it.
    let (mut node, _addr) = start_hsm_serve(&data, &["--store", &url]);
    keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "other",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    node.terminate();

    // After a restart the key is still there, read from the database.
    let (mut node, _addr) = start_hsm_serve(&data, &["--store", &url]);
    node.terminate();
    let list = keyward_ok(&[
        "key",
        "list",
        "--json",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let keys: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["handle"].as_u64() == Some(handle) && k["attributes"]["label"] == "web"),
        "{list}"
    );
}

#[test]
fn a_second_init_or_a_node_without_the_master_key_is_told_what_to_do() {
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let second = tmp.path().join("second");
    init_ok(&first, &url);
    let out = init(&second, &url);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("already holds a Keyward store")
            && err.contains("master.key"),
        "{err}"
    );
    assert!(
        !second.join("master.key").exists(),
        "a refused init writes no master key"
    );

    let err = stderr_of(&["key", "list", "--data-dir", &p(&second), "--store", &url]);
    assert!(
        err.contains("no master key") && err.contains("copy of that master.key"),
        "{err}"
    );

    // With a copy of the master key the second node opens the same store.
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(first.join("master.key"), second.join("master.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&second, std::fs::Permissions::from_mode(0o700)).unwrap();
    keyward_ok(&["key", "list", "--data-dir", &p(&second), "--store", &url]);

    // A different master key cannot open it.
    let third = tmp.path().join("third");
    let (_other_db, other_url) = new_store();
    init_ok(&third, &other_url);
    let err = stderr_of(&["key", "list", "--data-dir", &p(&third), "--store", &url]);
    assert!(err.contains("cannot unseal"), "{err}");
}

#[test]
fn an_unreachable_database_fails_fast_with_no_password_shown() {
    let port = closed_port().port();
    let tmp = tempfile::tempdir().unwrap();
    let pw_file = tmp.path().join("store.pw");
    std::fs::write(&pw_file, "db-secret\n").unwrap();
    let url = format!("postgres://keyward:url-secret@127.0.0.1:{port}/keyward");
    let started = std::time::Instant::now();
    let err = stderr_of(&[
        "init",
        "--data-dir",
        &p(&tmp.path().join("d")),
        "--store",
        &url,
        "--store-password-file",
        &p(&pw_file),
    ]);
    assert!(err.contains("store database unavailable"), "{err}");
    assert!(
        !err.contains("url-secret") && !err.contains("db-secret"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "a refused connection is reported at once"
    );
    assert!(!tmp.path().join("d/master.key").exists());
}
