//! Several nodes: failover, and the messages for an untrusted certificate, a dead server and
//! an unsupported key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::*;
use crate::support::*;

/// Runs a remote command against several nodes (each `--server` repeated).
fn kw_nodes(nodes: &[&Node], user: &str, password: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(keyward_bin());
    cmd.args(args);
    for n in nodes {
        cmd.args(["--server", &n.url]);
    }
    // The nodes' certificates are self-signed by each node: trust both (one PEM bundle).
    let bundle = nodes[0].data.parent().unwrap().join("bundle.pem");
    let mut pems = Vec::new();
    for n in nodes {
        pems.extend(std::fs::read(&n.ca).unwrap());
    }
    std::fs::write(&bundle, pems).unwrap();
    cmd.arg("--ca-cert")
        .arg(&bundle)
        .args(["--user", user, "--password", password])
        .env_remove("KEYWARD_SERVER")
        .env_remove("KEYWARD_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("run keyward")
}

/// The same user and the same imported openssl key on every node: the key's handle on each,
/// and its public key file.
fn same_user_and_key(dir: &Path, nodes: &[&Node]) -> (Vec<u64>, PathBuf) {
    let pw = dir.join("alice.pw");
    std::fs::write(&pw, ALICE).unwrap();
    let key_pem = dir.join("k.pem");
    let pub_pem = dir.join("k.pub.pem");
    openssl_ec_key("P-256", &key_pem);
    openssl_public_key(&key_pem, &pub_pem);
    let mut handles = Vec::new();
    for n in nodes {
        create_crypto_user(n, "alice", &pw);
        let v = json(&kw_ok(
            n,
            "alice",
            ALICE,
            &[
                "key",
                "import",
                "pem",
                "--in",
                &p(&key_pem),
                "--label",
                "shared",
                "--json",
            ],
        ));
        handles.push(v["handle"].as_u64().unwrap());
    }
    (handles, pub_pem)
}

#[test]
fn remote_cli_fails_over_when_a_node_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut a = start_node(dir, "a");
    let b = start_node(dir, "b");
    let (handles, pub_pem) = same_user_and_key(dir, &[&a, &b]);
    let msg = dir.join("msg");
    std::fs::write(&msg, b"failover").unwrap();
    let list = [
        "key",
        "list",
        "--filter",
        "attr.label=shared",
        "--filter",
        "class=private",
        "--json",
    ];
    for i in 0..8 {
        if i == 3 {
            a.server.terminate();
        }
        let out = kw_nodes(&[&a, &b], "alice", ALICE, &list);
        assert!(
            out.status.success(),
            "round {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&String::from_utf8_lossy(&out.stdout));
        let h = v[0]["handle"].as_u64().unwrap();
        assert!(handles.contains(&h), "round {i}");
        if i >= 3 {
            // Node A is gone: B answered, and B's copy of the key signs.
            assert_eq!(h, handles[1], "round {i}");
            let sig = dir.join(format!("sig{i}"));
            let (h, msg_s, sig_s) = (h.to_string(), p(&msg), p(&sig));
            let out = kw_nodes(
                &[&a, &b],
                "alice",
                ALICE,
                &sign_args(&h, "ecdsa-sha256", &msg_s, &sig_s),
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            openssl_verifies(&pub_pem, &sig, &msg);
        }
    }
}

/// `keyward ARGS --server SERVER --ca-cert CA` as the admin.
fn remote(server: &str, ca: &Path, args: &[&str]) -> Output {
    Command::new(keyward_bin())
        .args(args)
        .args(["--server", server, "--ca-cert"])
        .arg(ca)
        .args(["--user", "admin", "--password", "admin-password"])
        .env_remove("KEYWARD_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Messages that used to mislead: a wrong `--ca-cert` (not "cannot connect"), a server that is
/// down ("cannot connect").
#[test]
fn messages_name_an_untrusted_certificate_and_a_dead_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = start_node(dir, "node");
    // Another HSM's CA file: the node's certificate is not issued by it.
    let other = dir.join("other");
    init_hsm(&other, "other-password");
    let other_ca = other.join("api-ca.pem");
    let out = remote(&node.url, &other_ca, &["key", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the TLS certificate of {} is not trusted by the CA file {}",
            node.url,
            other_ca.display()
        )),
        "{err}"
    );
    assert!(!err.contains("cannot connect"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let down = format!("https://localhost:{}", closed_port().port());
    let out = remote(&down, &node.ca, &["key", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("not trusted"), "{err}");
}

/// A secp256k1 key is refused by name, with the supported types, before anything is made.
#[test]
fn messages_name_an_unsupported_key_and_nothing_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = start_node(dir, "node");
    let key_pem = dir.join("k1.pem");
    openssl_ec_key("secp256k1", &key_pem);
    let before = kw_ok(&node, "admin", "admin-password", &["key", "list", "--json"]);
    let out = remote(
        &node.url,
        &node.ca,
        &[
            "key",
            "import",
            "pem",
            "--in",
            &p(&key_pem),
            "--label",
            "k1",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unsupported key type: got EC secp256k1; the HSM takes RSA 2048, 3072 or 4096 bits, EC P-256, P-384 or P-521, and Ed25519"),
        "{err}"
    );
    assert_eq!(
        kw_ok(&node, "admin", "admin-password", &["key", "list", "--json"]),
        before,
        "nothing was created"
    );
}
