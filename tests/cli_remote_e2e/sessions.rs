//! `keyward login --save`: a session kept in a token file until logout.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;
use crate::support::*;

/// Runs `keyward ARGS --server URL --ca-cert CA` with no password (a saved session), with
/// KEYWARD_TOKEN_FILE set to `token_file`.
fn kw_saved(node: &Node, token_file: &Path, args: &[&str]) -> Output {
    Command::new(keyward_bin())
        .args(args)
        .args(["--server", &node.url, "--ca-cert"])
        .arg(&node.ca)
        .env("KEYWARD_TOKEN_FILE", token_file)
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .env_remove("KEYWARD_USER")
        .env_remove("KEYWARD_PASSWORD")
        .env_remove("KEYWARD_CA_CERT")
        .stdin(Stdio::null())
        .output()
        .expect("run keyward")
}

/// login --save writes a 0600 file in a 0700 folder that names the server and the user, and
/// holds neither the password nor prints the token. Returns the saved file's JSON and the
/// token.
fn login_save(n: &Node, token_file: &Path) -> (serde_json::Value, String) {
    let out = Command::new(keyward_bin())
        .args(["login", "--save", "--server", &n.url, "--user", "alice"])
        .arg("--ca-cert")
        .arg(&n.ca)
        .env("KEYWARD_TOKEN_FILE", token_file)
        .env("KEYWARD_PASSWORD", ALICE)
        .env_remove("KEYWARD_SERVER")
        .env_remove("KEYWARD_USER")
        .env_remove("KEYWARD_CA_CERT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("role crypto-user"), "{stdout}");
    let meta = std::fs::metadata(token_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let folder = std::fs::metadata(token_file.parent().unwrap()).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let text = std::fs::read_to_string(token_file).unwrap();
    assert!(!text.contains(ALICE), "the token file holds the password");
    let saved = json(&text);
    let entry = &saved["sessions"][n.url.as_str()];
    assert_eq!(entry["user"], "alice", "{text}");
    let token = entry["token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty() && !stdout.contains(&token));
    assert!(entry["expires_at"].as_u64().unwrap() > 0);
    (saved, token)
}

/// Runs a command on the saved session: it succeeds; returns its output.
fn saved_ok(n: &Node, token_file: &Path, args: &[&str]) -> String {
    let out = kw_saved(n, token_file, args);
    assert!(
        out.status.success(),
        "keyward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command on a saved session that is dead: one "run keyward login" error line that
/// does not show `token`.
fn saved_dead(n: &Node, token_file: &Path, token: &str, args: &[&str]) {
    let out = kw_saved(n, token_file, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "keyward {args:?}: {err}");
    assert!(
        err.starts_with("keyward: error: ")
            && err.contains("keyward login")
            && err.lines().count() == 1,
        "keyward {args:?}: {err}"
    );
    assert!(!err.contains(token));
}

#[test]
fn login_save_keeps_a_session_in_a_token_file_until_logout() {
    let lab = Lab::new().with_alice_and_bob();
    let (n, dir) = (&lab.node, lab.dir());
    let (key, _) = pair(n, "ec", &[], "saved");
    let key = key.to_string();
    let token_file = dir.join("sessions").join("session.json");
    let (saved, token) = login_save(n, &token_file);

    // Commands without a password run on the saved session, several times (no logout).
    let ok = |args: &[&str]| saved_ok(n, &token_file, args);
    let dead = |args: &[&str]| saved_dead(n, &token_file, &token, args);
    let (msg, sig) = (dir.join("msg"), dir.join("sig"));
    std::fs::write(&msg, b"hello").unwrap();
    let (msg, sig_s) = (p(&msg), p(&sig));
    for _ in 0..2 {
        assert!(ok(&["key", "list"]).contains("saved"));
        ok(&sign_args(&key, "ecdsa-sha256", &msg, &sig_s));
        assert!(!std::fs::read(&sig).unwrap().is_empty());
    }

    // A forged token, then an expired one, fail with the "run keyward login" message.
    let url = n.url.as_str();
    let mut forged = saved.clone();
    forged["sessions"][url]["token"] = "forged-token".into();
    std::fs::write(&token_file, forged.to_string()).unwrap();
    dead(&["key", "list"]);
    let mut expired = saved.clone();
    expired["sessions"][url]["expires_at"] = 1.into();
    std::fs::write(&token_file, expired.to_string()).unwrap();
    dead(&["key", "list"]);

    // logout ends the session on the server and deletes the file; the old token is dead.
    std::fs::write(&token_file, saved.to_string()).unwrap();
    let out = ok(&["logout"]);
    assert!(!out.contains(&token), "{out}");
    assert!(!token_file.exists());
    std::fs::write(&token_file, saved.to_string()).unwrap();
    dead(&["key", "list"]);
    dead(&sign_args(&key, "ecdsa-sha256", &msg, &sig_s)[..8]);
    std::fs::remove_file(&token_file).unwrap();
    // With no token file at all it is the plain "no password" error.
    let out = kw_saved(n, &token_file, &["key", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password"));
}
