//! Sharing a key, and the audit trail of what the CLI did.

use crate::common::*;

/// Bob may use alice's key but not delete it; unshare takes it away.
#[test]
fn a_shared_key_signs_for_bob_but_is_not_his_to_delete_until_unshared() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let msg = lab.message();
    let (ec_priv, _) = pair(n, "ec", &["--curve", "p256"], "ec1");
    let ec_s = ec_priv.to_string();
    kw_ok(
        n,
        "alice",
        ALICE,
        &["key", "share", "--key", &ec_s, "--with", "bob"],
    );
    let bob_sig = p(&lab.dir().join("bob.sig"));
    let msg = p(&msg);
    let sign_as_bob = || {
        kw(
            n,
            "bob",
            BOB,
            &sign_args(&ec_s, "ecdsa-sha256", &msg, &bob_sig),
        )
    };
    assert!(sign_as_bob().status.success());
    let out = kw(n, "bob", BOB, &["key", "delete", "--key", &ec_s]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission_denied"), "{err}");
    kw_ok(
        n,
        "alice",
        ALICE,
        &["key", "unshare", "--key", &ec_s, "--with", "bob"],
    );
    assert!(!sign_as_bob().status.success());
    kw_ok(n, "alice", ALICE, &["key", "delete", "--key", &ec_s]);
}

/// A label names a key shared with you only when no key of yours has that label: alice's own
/// secret `lbl` keeps bob's shared private `lbl` from being taken for it.
#[test]
fn a_label_of_yours_is_never_taken_for_someone_elses_shared_key() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let v = json(&kw_ok(
        n,
        "bob",
        BOB,
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--label",
            "lbl",
            "--private-attr",
            "sign=true",
            "--public-attr",
            "verify=true",
            "--json",
        ],
    ));
    let bobs = v["private"]["handle"].as_u64().unwrap().to_string();
    kw_ok(
        n,
        "bob",
        BOB,
        &["key", "share", "--key", &bobs, "--with", "alice"],
    );
    let file = p(&lab.dir().join("lbl.pem"));
    let generate_file = ["key", "generate-file", "--key", "lbl", "--out", &file];
    // Alice owns no `lbl`: the one shared with her is it.
    kw_ok(n, "alice", ALICE, &generate_file);
    sym(n, &["aes", "--bits", "256", "--label", "lbl"]);
    kw_err(n, "alice", ALICE, &generate_file, "use a handle");
}

/// The audit chain is intact, and its entries can be read back, as a table and as JSON.
#[test]
fn the_audit_chain_is_intact_and_reads_back_as_a_table_and_as_json() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let out = kw_ok(n, "admin", "admin-password", &["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");
    let table = kw_ok(
        n,
        "admin",
        "admin-password",
        &["audit", "list", "--limit", "1000"],
    );
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["SEQ", "TIME", "ACTOR", "EVENT", "TARGET", "OUTCOME"]
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("user.create") && l.contains("alice")),
        "{table}"
    );
    let entries = json(&kw_ok(
        n,
        "admin",
        "admin-password",
        &["audit", "list", "--from", "2", "--limit", "3", "--json"],
    ));
    let seqs: Vec<u64> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    kw_err(n, "alice", ALICE, &["audit", "list"], "permission_denied");
}
