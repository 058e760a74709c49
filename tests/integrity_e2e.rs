//! A tampered audit trail or a rolled-back store stops the real `keyward hsm serve` at start,
//! naming what is wrong; the override flags start it and are audited.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const ADMIN_PASSWORD: &str = "admin-password-1";

fn store(data: &Path) -> PathBuf {
    data.join("keyward.sqlite3")
}

/// Logs in as the admin and creates crypto-user `name`: confirmed writes (user record, audit
/// entries).
fn create_user(data: &Path, addr: SocketAddr, name: &str) -> String {
    let ca = data.join("api-ca.pem");
    let body = serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let (s, v) = curl_json(&ca, addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let body =
        serde_json::json!({"username": name, "role": "crypto-user", "password": "password-1"})
            .to_string();
    let (s, v) = curl_json(&ca, addr, "POST", "/v1/users", Some(&token), Some(&body));
    assert_eq!(s, 201, "{v}");
    token
}

/// Audit entries `from` on, as the admin sees them through the API: (event, target).
fn audit_events(data: &Path, addr: SocketAddr, token: &str, from: u64) -> Vec<(String, String)> {
    let (s, v) = curl_json(
        &data.join("api-ca.pem"),
        addr,
        "GET",
        &format!("/v1/audit?from={from}&limit=1000"),
        Some(token),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// `keyward hsm serve` on `data` that must refuse to start: its one error line.
fn refused(data: &Path) -> String {
    let out = Command::new(keyward_bin())
        .args(["hsm", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "it started");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    err.lines()
        .find(|l| l.starts_with("keyward: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_owned()
}

/// A node with history, stopped: init, one user created through the API.
fn stopped_node_with_history(dir: &Path) -> PathBuf {
    let data = dir.join("hsm");
    init_hsm(&data, ADMIN_PASSWORD);
    let (mut node, addr) = start_hsm_serve(&data, &[]);
    create_user(&data, addr, "alice");
    let status = node.terminate();
    assert!(status.success(), "{status}: {:?}", node.stderr.all());
    data
}

fn audit_rows(data: &Path) -> Vec<(String, Vec<u8>)> {
    let db = rusqlite::Connection::open(store(data)).unwrap();
    let mut q = db
        .prepare("SELECT id, blob FROM records WHERE kind = 'audit' ORDER BY id")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn set_audit_blob(data: &Path, id: &str, blob: &[u8]) {
    let db = rusqlite::Connection::open(store(data)).unwrap();
    let n = db
        .execute(
            "UPDATE records SET blob = ?1 WHERE kind = 'audit' AND id = ?2",
            rusqlite::params![blob, id],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_flipped_byte_in_an_audit_record_stops_the_node_until_the_damage_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = stopped_node_with_history(tmp.path());
    let rows = audit_rows(&data);
    let (id, mut blob) = rows[2].clone();
    blob[30] ^= 0x01;
    set_audit_blob(&data, &id, &blob);
    let err = refused(&data);
    assert!(
        err.contains("audit trail is damaged") && err.contains("entry 3 fails authentication"),
        "{err}"
    );
    assert!(err.contains("--accept-audit-damage"), "the way out: {err}");
    // Accepted: the node starts, warns, and the acceptance is in the audit trail.
    let (mut node, addr) = start_hsm_serve(&data, &["--accept-audit-damage"]);
    let warning = node.stderr.wait_for("damaged audit trail accepted");
    assert!(
        warning.contains("WARN") && warning.contains("entry 3"),
        "{warning}"
    );
    let token = create_user(&data, addr, "bob");
    let events = audit_events(&data, addr, &token, 4);
    assert!(
        events
            .iter()
            .any(|(e, t)| e == "audit.damage-accepted" && t.contains("entry 3")),
        "{events:?}"
    );
    let status = node.terminate();
    assert!(status.success(), "{status}: {:?}", node.stderr.all());
    // The next start needs no flag.
    let (mut node, _) = start_hsm_serve(&data, &[]);
    let status = node.terminate();
    assert!(status.success(), "{status}: {:?}", node.stderr.all());
}

#[test]
fn two_swapped_audit_records_stop_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let data = stopped_node_with_history(tmp.path());
    let rows = audit_rows(&data);
    set_audit_blob(&data, &rows[3].0, &rows[4].1);
    set_audit_blob(&data, &rows[4].0, &rows[3].1);
    let err = refused(&data);
    assert!(
        err.contains("audit trail is damaged") && err.contains("entry 4"),
        "{err}"
    );
}

#[test]
fn a_deleted_wal_after_confirmed_writes_stops_the_node_and_says_how_much_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = stopped_node_with_history(tmp.path());
    let (mut node, addr) = start_hsm_serve(&data, &[]);
    create_user(&data, addr, "carol");
    // A crash: no checkpoint; the confirmed writes are only in the WAL.
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let wal = PathBuf::from(format!("{}-wal", store(&data).display()));
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the writes are in the WAL"
    );
    std::fs::remove_file(&wal).unwrap();
    let _ = std::fs::remove_file(format!("{}-shm", store(&data).display()));
    let err = refused(&data);
    assert!(
        err.contains("rolled back")
            && err.contains("audit entries and")
            && err.contains("are missing"),
        "{err}"
    );
    assert!(err.contains("--accept-rollback"), "the way out: {err}");
}

#[test]
fn an_older_copy_of_the_store_stops_the_node_until_the_rollback_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = stopped_node_with_history(tmp.path());
    let old = std::fs::read(store(&data)).unwrap();
    let (mut node, addr) = start_hsm_serve(&data, &[]);
    create_user(&data, addr, "dave");
    let status = node.terminate();
    assert!(status.success(), "{status}: {:?}", node.stderr.all());
    std::fs::write(store(&data), &old).unwrap();
    let err = refused(&data);
    assert!(err.contains("older than its rollback anchor"), "{err}");
    let (mut node, addr) = start_hsm_serve(&data, &["--accept-rollback"]);
    let token = create_user(&data, addr, "erin");
    let events = audit_events(&data, addr, &token, 1);
    assert!(
        events
            .iter()
            .any(|(e, t)| e == "store.rollback-accepted" && t.contains("are missing")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|(_, t)| t == "dave"),
        "dave's creation was rolled back"
    );
    let status = node.terminate();
    assert!(status.success(), "{status}: {:?}", node.stderr.all());
    let (mut node, _) = start_hsm_serve(&data, &[]);
    let status = node.terminate();
    assert!(status.success(), "{status}: {:?}", node.stderr.all());
}
