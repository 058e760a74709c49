//! The remote CLI (`keyward login|user|key|crypto|audit --server ...`) through the real binary
//! against a real `keyward hsm serve` node.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::*;

/// A node: `keyward init` + `keyward hsm serve` on an ephemeral port.
struct Node {
    server: Running,
    url: String,
    ca: PathBuf,
    data: PathBuf,
}

fn start_node(dir: &Path, name: &str) -> Node {
    let data = dir.join(name);
    init_hsm(&data, "admin-password");
    let (server, addr) = start_hsm_serve(&data, &[]);
    Node {
        server,
        url: format!("https://localhost:{}", addr.port()),
        ca: data.join("api-ca.pem"),
        data,
    }
}

/// Runs `keyward ARGS --server URL --ca-cert CA --user USER --password PW`.
fn kw(node: &Node, user: &str, password: &str, args: &[&str]) -> Output {
    Command::new(keyward_bin())
        .args(args)
        .args(["--server", &node.url, "--ca-cert"])
        .arg(&node.ca)
        .args(["--user", user, "--password", password])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .env_remove("KEYWARD_USER")
        .env_remove("KEYWARD_PASSWORD")
        .env_remove("KEYWARD_CA_CERT")
        .stdin(Stdio::null())
        .output()
        .expect("run keyward")
}

fn kw_ok(node: &Node, user: &str, password: &str, args: &[&str]) -> String {
    let out = kw(node, user, password, args);
    assert!(
        out.status.success(),
        "keyward {args:?} as {user} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Expects exit 1 and one `keyward: error:` line containing `code`.
fn kw_err(node: &Node, user: &str, password: &str, args: &[&str], code: &str) {
    let out = kw(node, user, password, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "keyward {args:?}: {err}");
    assert!(
        err.starts_with("keyward: error: ") && err.contains(code) && err.lines().count() == 1,
        "keyward {args:?}: expected {code}, got {err}"
    );
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

const ALICE: &str = "alice-password";
const BOB: &str = "bob-password";

#[test]
fn remote_cli_users_keys_crypto_import_share_and_lockout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = start_node(dir, "hsm");
    let n = &node;

    // Login prints the role; a wrong password is authentication_failed; no password is a clear
    // error; a bad flag is a usage error.
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
        .args([
            "login",
            "--server",
            &node.url,
            "--user",
            "admin",
            "--ca-cert",
        ])
        .arg(&node.ca)
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

    // Users.
    let alice_pw = dir.join("alice.pw");
    std::fs::write(&alice_pw, format!("{ALICE}\n")).unwrap();
    let bob_pw = dir.join("bob.pw");
    std::fs::write(&bob_pw, BOB).unwrap();
    for (name, f) in [("alice", &alice_pw), ("bob", &bob_pw)] {
        let out = kw_ok(
            n,
            "admin",
            "admin-password",
            &[
                "user",
                "create",
                "--name",
                name,
                "--role",
                "crypto-user",
                "--password-file",
                &p(f),
            ],
        );
        assert!(out.contains(name), "{out}");
    }
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

    // Key generation, every type.
    let pair = |kind: &str, extra: &[&str], label: &str| -> (u64, u64) {
        let mut args = vec!["key", "generate-asymmetric-pair", kind];
        args.extend_from_slice(extra);
        args.extend([
            "--label",
            label,
            "--private-attr",
            "sign=true",
            "--public-attr",
            "verify=true",
            "--json",
        ]);
        let v = json(&kw_ok(n, "alice", ALICE, &args));
        (
            v["private"]["handle"].as_u64().unwrap(),
            v["public"]["handle"].as_u64().unwrap(),
        )
    };
    let (ec_priv, ec_pub) = pair("ec", &["--curve", "p256"], "ec1");
    let (rsa_priv, rsa_pub) = pair("rsa", &["--bits", "2048"], "rsa1");
    let (ed_priv, ed_pub) = pair("ed25519", &[], "ed1");
    let sym = |args: &[&str]| -> (u64, serde_json::Value) {
        let mut a = vec!["key", "generate-symmetric"];
        a.extend_from_slice(args);
        a.push("--json");
        let v = json(&kw_ok(n, "alice", ALICE, &a));
        (v["handle"].as_u64().unwrap(), v)
    };
    let (aes, v) = sym(&[
        "aes",
        "--bits",
        "256",
        "--label",
        "aes1",
        "--attr",
        "encrypt=true",
        "--attr",
        "decrypt=true",
    ]);
    assert_eq!(v["spec"], "aes-256");
    let (kek, _) = sym(&[
        "aes",
        "--bits",
        "256",
        "--label",
        "kek1",
        "--attr",
        "wrap=true",
        "--attr",
        "unwrap=true",
    ]);
    let kek_s = kek.to_string();
    let (target, target_v) = sym(&[
        "aes",
        "--bits",
        "128",
        "--label",
        "exportable",
        "--attr",
        "extractable=true",
    ]);
    let (mac, v) = sym(&[
        "generic-secret",
        "--bytes",
        "32",
        "--label",
        "mac1",
        "--attr",
        "sign=true",
        "--attr",
        "verify=true",
    ]);
    assert_eq!(v["spec"], "generic-secret-32");

    // List with filters, as a table and as JSON.
    let table = kw_ok(n, "alice", ALICE, &["key", "list"]);
    assert!(table.starts_with("HANDLE") && table.contains("ec1") && table.contains("mac1"));
    let listed = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "list",
            "--filter",
            "attr.label=ec1",
            "--filter",
            "class=private",
            "--json",
        ],
    ));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["handle"].as_u64(), Some(ec_priv));

    // Sign and verify a file with each pair; openssl checks the EC signature.
    let msg = dir.join("msg.txt");
    std::fs::write(&msg, b"the message to sign\n").unwrap();
    for (priv_h, pub_h, mech) in [
        (ec_priv, ec_pub, "ecdsa-sha256"),
        (rsa_priv, rsa_pub, "rsa-pss-sha256"),
        (ed_priv, ed_pub, "ed25519"),
    ] {
        let sig = dir.join(format!("{mech}.sig"));
        kw_ok(
            n,
            "alice",
            ALICE,
            &[
                "crypto",
                "sign",
                "--key",
                &priv_h.to_string(),
                "--mechanism",
                mech,
                "--in",
                &p(&msg),
                "--out",
                &p(&sig),
            ],
        );
        let verify = |file: &Path| {
            kw(
                n,
                "alice",
                ALICE,
                &[
                    "crypto",
                    "verify",
                    "--key",
                    &pub_h.to_string(),
                    "--mechanism",
                    mech,
                    "--in",
                    &p(file),
                    "--signature",
                    &p(&sig),
                ],
            )
        };
        let ok = verify(&msg);
        assert_eq!(ok.status.code(), Some(0), "{mech}");
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "valid");
        let other = dir.join("other.txt");
        std::fs::write(&other, b"another message\n").unwrap();
        let bad = verify(&other);
        assert_eq!(bad.status.code(), Some(1), "{mech}");
        assert_eq!(String::from_utf8_lossy(&bad.stdout).trim(), "invalid");
    }
    let ec_pem = dir.join("ec1.pub.pem");
    std::fs::write(
        &ec_pem,
        kw_ok(
            n,
            "alice",
            ALICE,
            &["key", "public", "--key", &ec_pub.to_string()],
        ),
    )
    .unwrap();
    let (ok, _, err) = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            &p(&ec_pem),
            "-signature",
            &p(&dir.join("ecdsa-sha256.sig")),
            &p(&msg),
        ],
    );
    assert!(ok, "{err}");
    let jwk = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "public",
            "--key",
            &ed_pub.to_string(),
            "--format",
            "jwk",
        ],
    ));
    assert_eq!(jwk["kty"], "OKP");

    // Encrypt / decrypt with AAD; HMAC.
    let ct = dir.join("msg.enc");
    let pt = dir.join("msg.dec");
    let aad = dir.join("aad");
    std::fs::write(&aad, b"context").unwrap();
    let aes_s = aes.to_string();
    kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "encrypt",
            "--key",
            &aes_s,
            "--mechanism",
            "aes-gcm",
            "--in",
            &p(&msg),
            "--out",
            &p(&ct),
            "--aad-file",
            &p(&aad),
        ],
    );
    assert_eq!(
        std::fs::read(&ct).unwrap().len(),
        12 + std::fs::read(&msg).unwrap().len() + 16
    );
    kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "decrypt",
            "--key",
            &aes_s,
            "--mechanism",
            "aes-gcm",
            "--in",
            &p(&ct),
            "--out",
            &p(&pt),
            "--aad-file",
            &p(&aad),
        ],
    );
    assert_eq!(std::fs::read(&pt).unwrap(), std::fs::read(&msg).unwrap());
    kw_err(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "decrypt",
            "--key",
            &aes_s,
            "--mechanism",
            "aes-gcm",
            "--in",
            &p(&ct),
            "--out",
            &p(&pt),
        ],
        "invalid_input",
    );
    let out = kw(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "hmac",
            "--key",
            &mac.to_string(),
            "--mechanism",
            "hmac-sha256",
            "--in",
            &p(&msg),
        ],
    );
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 32, "raw HMAC on stdout");

    // Wrap and unwrap: the unwrapped key has the same check value.
    let wrapped = dir.join("target.wrapped");
    kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "wrap",
            "--key",
            &kek_s,
            "--target",
            &target.to_string(),
            "--mechanism",
            "aes-kwp",
            "--out",
            &p(&wrapped),
        ],
    );
    let v = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "unwrap",
            "--key",
            &kek_s,
            "--mechanism",
            "aes-kwp",
            "--in",
            &p(&wrapped),
            "--label",
            "unwrapped",
            "--secret-spec",
            "aes-128",
            "--attr",
            "encrypt=true",
            "--json",
        ],
    ));
    assert_eq!(v["spec"], "aes-128");
    assert_eq!(
        v["attributes"]["check_value"],
        target_v["attributes"]["check_value"]
    );

    // Import an openssl P-256 private key (through a transport key) and a public key.
    let key_pem = dir.join("imported.key.pem");
    let (ok, _, err) = run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &p(&key_pem),
        ],
    );
    assert!(ok, "{err}");
    let pub_pem = dir.join("imported.pub.pem");
    let (ok, _, err) = run(
        "openssl",
        &["pkey", "-in", &p(&key_pem), "-pubout", "-out", &p(&pub_pem)],
    );
    assert!(ok, "{err}");
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
            "imported",
            "--json",
        ],
    ));
    assert_eq!(
        (v["class"].as_str(), v["spec"].as_str()),
        (Some("private"), Some("ec-p256"))
    );
    assert_eq!(v["attributes"]["sign"], true);
    assert_eq!(v["attributes"]["local"], false);
    let imported = v["handle"].as_u64().unwrap();
    let v = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "import",
            "pem",
            "--in",
            &p(&pub_pem),
            "--label",
            "imported",
            "--attr",
            "verify=true",
            "--json",
        ],
    ));
    assert_eq!(v["class"], "public");
    let all = kw_ok(n, "alice", ALICE, &["key", "list"]);
    assert!(
        !all.contains("import-transport-"),
        "the transport pair is destroyed: {all}"
    );
    let isig = dir.join("imported.sig");
    kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "sign",
            "--key",
            &imported.to_string(),
            "--mechanism",
            "ecdsa-sha256",
            "--in",
            &p(&msg),
            "--out",
            &p(&isig),
        ],
    );
    let (ok, out, err) = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            &p(&pub_pem),
            "-signature",
            &p(&isig),
            &p(&msg),
        ],
    );
    assert!(ok, "{out}{err}");

    // Set an attribute; errors carry the API's code.
    let v = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "set-attribute",
            "--key",
            &imported.to_string(),
            "--name",
            "label",
            "--value",
            "imported-2",
            "--json",
        ],
    ));
    assert_eq!(v["attributes"]["label"], "imported-2");
    kw_err(
        n,
        "alice",
        ALICE,
        &["key", "delete", "--key", "999999"],
        "key_not_found",
    );

    // Sharing: bob may use alice's key but not delete it; unshare takes it away.
    let ec_s = ec_priv.to_string();
    kw_ok(
        n,
        "alice",
        ALICE,
        &["key", "share", "--key", &ec_s, "--with", "bob"],
    );
    let bob_sig = dir.join("bob.sig");
    let sign_as_bob = || {
        kw(
            n,
            "bob",
            BOB,
            &[
                "crypto",
                "sign",
                "--key",
                &ec_s,
                "--mechanism",
                "ecdsa-sha256",
                "--in",
                &p(&msg),
                "--out",
                &p(&bob_sig),
            ],
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

    // The audit chain is intact, and its entries can be read back, as a table and as JSON.
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

    // Five bad passwords lock bob (the CLI waits out the node's short throttling delays);
    // locked, he gets the answer of a wrong password; an admin's unlock sets a new password.
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
    let new_pw = dir.join("bob-new.pw");
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

    // Without --server, `key list` still reads the local data directory.
    let local = keyward_ok(&["key", "list", "--data-dir", &p(&node.data)]);
    assert!(local.contains("api-tls"), "{local}");
}

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

#[test]
fn remote_cli_fails_over_when_a_node_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut a = start_node(dir, "a");
    let b = start_node(dir, "b");
    let pw = dir.join("alice.pw");
    std::fs::write(&pw, ALICE).unwrap();
    let key_pem = dir.join("k.pem");
    let pub_pem = dir.join("k.pub.pem");
    assert!(
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &p(&key_pem),
            ],
        )
        .0
    );
    assert!(
        run(
            "openssl",
            &["pkey", "-in", &p(&key_pem), "-pubout", "-out", &p(&pub_pem)]
        )
        .0
    );
    // The same user and the same imported key on both nodes.
    let mut handles = Vec::new();
    for n in [&a, &b] {
        kw_ok(
            n,
            "admin",
            "admin-password",
            &[
                "user",
                "create",
                "--name",
                "alice",
                "--role",
                "crypto-user",
                "--password-file",
                &p(&pw),
            ],
        );
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
            let out = kw_nodes(
                &[&a, &b],
                "alice",
                ALICE,
                &[
                    "crypto",
                    "sign",
                    "--key",
                    &h.to_string(),
                    "--mechanism",
                    "ecdsa-sha256",
                    "--in",
                    &p(&msg),
                    "--out",
                    &p(&sig),
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (ok, o, e) = run(
                "openssl",
                &[
                    "dgst",
                    "-sha256",
                    "-verify",
                    &p(&pub_pem),
                    "-signature",
                    &p(&sig),
                    &p(&msg),
                ],
            );
            assert!(ok, "round {i}: {o}{e}");
        }
    }
}

/// A PEM private key made by `openssl genpkey`, imported through the API (wrapped on the
/// client, never in plaintext), shared with the proxy's identity, then serves TLS in
/// `keyward serve` from the same data directory.
#[test]
fn an_imported_openssl_key_serves_tls_in_the_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = start_node(dir, "hsm");
    let alice_pw = dir.join("alice.pw");
    std::fs::write(&alice_pw, format!("{ALICE}\n")).unwrap();
    kw_ok(
        &node,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let key_pem = dir.join("web.key.pem");
    let cert_pem = dir.join("web.cert.pem");
    let (ok, _, err) = run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &p(&key_pem),
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &p(&key_pem),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-days",
            "30",
            "-out",
            &p(&cert_pem),
        ],
    );
    assert!(ok, "{err}");
    let v = json(&kw_ok(
        &node,
        "alice",
        ALICE,
        &[
            "key",
            "import",
            "pem",
            "--in",
            &p(&key_pem),
            "--label",
            "web-imported",
            "--json",
        ],
    ));
    let handle = v["handle"].as_u64().unwrap().to_string();
    kw_ok(
        &node,
        "alice",
        ALICE,
        &[
            "key",
            "share",
            "--key",
            &handle,
            "--with",
            keyward_hsm::PROXY_USER,
        ],
    );
    // A reference file names the key for the proxy; it holds no key material.
    let reference = dir.join("web.ref.pem");
    kw_ok(
        &node,
        "alice",
        ALICE,
        &[
            "key",
            "generate-file",
            "--encoding",
            "reference-pem",
            "--key",
            &handle,
            "--out",
            &p(&reference),
        ],
    );
    let text = std::fs::read_to_string(&reference).unwrap();
    assert!(
        text.starts_with("-----BEGIN KEYWARD KEY REFERENCE-----") && !text.contains("PRIVATE"),
        "{text}"
    );
    let data = node.data.clone();
    drop(node);

    let (_up, up_addr) = start_upstream();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[hsm]\ndata_dir = \"{}\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[listeners.certificates]]\nkey_file = \"{}\"\nchain_file = \"{}\"\n\n[upstream]\nurl = \"http://{up_addr}\"\n",
            data.display(),
            reference.display(),
            cert_pem.display()
        ),
    )
    .unwrap();
    let (_server, addrs) = start_serve(&config, 1);
    let port = addrs[0].port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/via-imported-key");
    let (ok, body, err) = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            &p(&cert_pem),
            "--resolve",
            &resolve,
            &url,
        ],
    );
    assert!(ok, "{err}");
    assert!(
        body.contains("keyward-test-upstream") && body.contains("/via-imported-key"),
        "{body}"
    );
    // The handshake was signed by the imported key: openssl's public key is the served one.
    let out = s_client(addrs[0], "localhost", &["-tls1_3"]);
    assert!(out.contains("New, TLSv1.3"), "{out}");
    let (ok, served_pub, _) = run("sh", &["-c", &format!("echo | openssl s_client -connect 127.0.0.1:{port} -servername localhost 2>/dev/null | openssl x509 -pubkey -noout")]);
    let (ok2, file_pub, _) = run("openssl", &["pkey", "-in", &p(&key_pem), "-pubout"]);
    assert!(ok && ok2 && served_pub.contains("BEGIN PUBLIC KEY"));
    assert_eq!(served_pub, file_pub);
}

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

#[test]
fn login_save_keeps_a_session_in_a_token_file_until_logout() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = start_node(dir, "hsm");
    let n = &node;
    let pw = dir.join("alice.pw");
    std::fs::write(&pw, format!("{ALICE}\n")).unwrap();
    kw_ok(
        n,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&pw),
        ],
    );
    let v = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--label",
            "saved",
            "--private-attr",
            "sign=true",
            "--public-attr",
            "verify=true",
            "--json",
        ],
    ));
    let key = v["private"]["handle"].as_u64().unwrap().to_string();

    // login --save writes a 0600 file in a 0700 folder that names the server and the user,
    // and holds neither the password nor prints the token.
    let token_file = dir.join("sessions").join("session.json");
    let out = Command::new(keyward_bin())
        .args(["login", "--save", "--server", &n.url, "--user", "alice"])
        .arg("--ca-cert")
        .arg(&n.ca)
        .env("KEYWARD_TOKEN_FILE", &token_file)
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
    let meta = std::fs::metadata(&token_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let folder = std::fs::metadata(token_file.parent().unwrap()).unwrap();
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let text = std::fs::read_to_string(&token_file).unwrap();
    assert!(!text.contains(ALICE), "the token file holds the password");
    let saved = json(&text);
    let entry = &saved["sessions"][n.url.as_str()];
    assert_eq!(entry["user"], "alice", "{text}");
    let token = entry["token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty() && !stdout.contains(&token));
    assert!(entry["expires_at"].as_u64().unwrap() > 0);

    // Commands without a password run on the saved session, several times (no logout).
    let ok = |args: &[&str]| -> String {
        let out = kw_saved(n, &token_file, args);
        assert!(
            out.status.success(),
            "keyward {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dead = |args: &[&str]| {
        let out = kw_saved(n, &token_file, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "keyward {args:?}: {err}");
        assert!(
            err.starts_with("keyward: error: ")
                && err.contains("keyward login")
                && err.lines().count() == 1,
            "keyward {args:?}: {err}"
        );
        assert!(!err.contains(&token));
    };
    let msg = dir.join("msg");
    std::fs::write(&msg, b"hello").unwrap();
    let sig = dir.join("sig");
    for _ in 0..2 {
        assert!(ok(&["key", "list"]).contains("saved"));
        ok(&[
            "crypto",
            "sign",
            "--key",
            &key,
            "--mechanism",
            "ecdsa-sha256",
            "--in",
            &p(&msg),
            "--out",
            &p(&sig),
        ]);
        assert!(!std::fs::read(&sig).unwrap().is_empty());
    }

    // A forged token, then an expired one, fail with the "run keyward login" message.
    let mut forged = saved.clone();
    forged["sessions"][n.url.as_str()]["token"] = "forged-token".into();
    std::fs::write(&token_file, forged.to_string()).unwrap();
    dead(&["key", "list"]);
    let mut expired = saved.clone();
    expired["sessions"][n.url.as_str()]["expires_at"] = 1.into();
    std::fs::write(&token_file, expired.to_string()).unwrap();
    dead(&["key", "list"]);

    // logout ends the session on the server and deletes the file; the old token is dead.
    std::fs::write(&token_file, saved.to_string()).unwrap();
    let out = ok(&["logout"]);
    assert!(!out.contains(&token), "{out}");
    assert!(!token_file.exists());
    std::fs::write(&token_file, saved.to_string()).unwrap();
    dead(&["key", "list"]);
    dead(&[
        "crypto",
        "sign",
        "--key",
        &key,
        "--mechanism",
        "ecdsa-sha256",
        "--in",
        &p(&msg),
    ]);
    std::fs::remove_file(&token_file).unwrap();
    // With no token file at all it is the plain "no password" error.
    let out = kw_saved(n, &token_file, &["key", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password"));
}

/// Messages that used to mislead: a wrong `--ca-cert` (not "cannot connect"), a server that is
/// down ("cannot connect"), and an unsupported private key type on import.
#[test]
fn messages_name_an_untrusted_certificate_a_dead_server_and_an_unsupported_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = start_node(dir, "node");
    // Another HSM's CA file: the node's certificate is not issued by it.
    let other = dir.join("other");
    init_hsm(&other, "other-password");
    let other_ca = other.join("api-ca.pem");
    let remote = |server: &str, ca: &Path, args: &[&str]| {
        Command::new(keyward_bin())
            .args(args)
            .args(["--server", server, "--ca-cert"])
            .arg(ca)
            .args(["--user", "admin", "--password", "admin-password"])
            .env_remove("KEYWARD_TOKEN_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
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

    // A secp256k1 key is refused by name, with the supported types, before anything is made.
    let key_pem = dir.join("k1.pem");
    let (ok, _, e) = run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-out",
            &p(&key_pem),
        ],
    );
    assert!(ok, "{e}");
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
