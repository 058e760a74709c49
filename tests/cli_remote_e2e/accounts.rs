//! Logins, users, lockout.

use std::process::Command;

use crate::common::*;
use crate::support::*;

/// Login prints the role; a wrong password is authentication_failed; no password is a clear
/// error; a bad flag is a usage error.
#[test]
fn login_prints_the_role_and_refuses_wrong_or_missing_passwords_and_bad_flags() {
    let lab = Lab::new();
    let n = &lab.node;
    let out = kw_ok(n, "admin", "admin-password", &["login"]);
    assert!(out.contains("role admin"), "{out}");
    kw_err(
        n,
        "admin",
        "wrong-password",
        &["login"],
        "authentication_failed",
    );
    let out = Command::new(keyward_bin())
        .args(["login", "--server", &n.url, "--user", "admin", "--ca-cert"])
        .arg(&n.ca)
        .env_remove("KEYWARD_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password"));
    assert_eq!(
        kw(n, "admin", "x", &["key", "share", "--key", "notanumber"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn admins_create_and_list_users_that_crypto_users_may_not_delete() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let users = json(&kw_ok(
        n,
        "admin",
        "admin-password",
        &["user", "list", "--json"],
    ));
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "alice" && u["role"] == "crypto-user"));
    assert!(kw_ok(n, "alice", ALICE, &["login"]).contains("role crypto-user"));
    kw_err(
        n,
        "alice",
        ALICE,
        &["user", "delete", "--name", "bob"],
        "permission_denied",
    );
}

/// Five bad passwords lock bob (the CLI waits out the node's short throttling delays);
/// locked, he gets the answer of a wrong password; an admin's unlock sets a new password.
#[test]
fn five_bad_passwords_lock_a_user_until_an_admin_unlocks_it() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    for _ in 1..=5 {
        kw_err(
            n,
            "bob",
            "wrong-password",
            &["login"],
            "authentication_failed",
        );
    }
    kw_err(n, "bob", BOB, &["login"], "authentication_failed");
    let users = kw_ok(n, "admin", "admin-password", &["user", "list", "--json"]);
    assert!(
        json(&users)
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "bob" && u["locked"] == true),
        "{users}"
    );
    let new_pw = lab.dir().join("bob-new.pw");
    std::fs::write(&new_pw, "bob-new-password\n").unwrap();
    kw_ok(
        n,
        "admin",
        "admin-password",
        &[
            "user",
            "unlock",
            "--name",
            "bob",
            "--password-file",
            &p(&new_pw),
        ],
    );
    assert!(kw_ok(n, "bob", "bob-new-password", &["login"]).contains("crypto-user"));
    kw_ok(
        n,
        "admin",
        "admin-password",
        &["user", "delete", "--name", "bob"],
    );
    kw_err(
        n,
        "bob",
        "bob-new-password",
        &["login"],
        "authentication_failed",
    );
}
