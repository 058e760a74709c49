//! Key generation of every type, listing, wrap and unwrap, import, attributes.

use crate::common::*;
use crate::support::*;

/// `aes --bits BITS --label LABEL` with `attrs` set to true.
fn aes_args<'a>(bits: &'a str, label: &'a str, attrs: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["aes", "--bits", bits, "--label", label];
    for a in attrs {
        args.extend(["--attr", a]);
    }
    args
}

#[test]
fn keys_of_every_type_generate_and_list_with_filters_remotely_and_locally() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let (ec_priv, _) = pair(n, "ec", &["--curve", "p256"], "ec1");
    pair(n, "rsa", &["--bits", "2048"], "rsa1");
    pair(n, "ed25519", &[], "ed1");
    let (_, v) = sym(
        n,
        &aes_args("256", "aes1", &["encrypt=true", "decrypt=true"]),
    );
    assert_eq!(v["spec"], "aes-256");
    let (_, v) = sym(
        n,
        &[
            "generic-secret",
            "--bytes",
            "32",
            "--label",
            "mac1",
            "--attr",
            "sign=true",
            "--attr",
            "verify=true",
        ],
    );
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

    // Without --server, `key list` still reads the local data directory.
    let local = keyward_ok(&["key", "list", "--data-dir", &p(&n.data)]);
    assert!(local.contains("api-tls"), "{local}");
}

/// `key list` has one output: on a node whose only keys are the proxy's (its API TLS key), the
/// local listing of the data directory and the admin's listing through the API print the same
/// table and the same JSON, byte for byte.
#[test]
fn local_and_remote_key_lists_print_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let node = start_node(tmp.path(), "node");
    let data = p(&node.data);
    for json in [false, true] {
        let mut args = vec!["key", "list"];
        if json {
            args.push("--json");
        }
        let remote = kw_ok(&node, "admin", "admin-password", &args);
        args.extend(["--data-dir", &data]);
        let local = keyward_ok(&args);
        assert_eq!(local, remote, "json: {json}");
        assert!(local.contains("api-tls"), "{local}");
    }
    let table = keyward_ok(&["key", "list", "--data-dir", &data]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "HANDLE",
            "CLASS",
            "TYPE",
            "LINKED",
            "OWNER",
            "ATTRIBUTES",
            "LABEL"
        ]
    );
}

/// Wrap and unwrap: the unwrapped key has the same check value. Keys are named by label
/// (wrap, unwrap, delete) as well as by handle.
#[test]
fn wrap_then_unwrap_keeps_the_check_value() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    sym(n, &aes_args("256", "kek1", &["wrap=true", "unwrap=true"]));
    let kek_s = "kek1".to_owned();
    let (_, target_v) = sym(n, &aes_args("128", "exportable", &["extractable=true"]));
    let wrapped = lab.dir().join("target.wrapped");
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
            "exportable",
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
    let out = kw_ok(n, "alice", ALICE, &["key", "delete", "--key", "unwrapped"]);
    assert!(
        out.contains(&format!("deleted key {}", v["handle"])),
        "{out}"
    );
}

/// Alice imports `pem` (a private or a public key) under label `imported`; returns its JSON.
fn import(n: &Node, pem: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let file = p(pem);
    let mut args = vec!["key", "import", "pem", "--in", &file, "--label", "imported"];
    args.extend_from_slice(extra);
    args.push("--json");
    json(&kw_ok(n, "alice", ALICE, &args))
}

/// Import an openssl P-256 private key (through a transport key) and a public key; the
/// imported key signs what openssl verifies; set an attribute; errors carry the API's code.
#[test]
fn an_openssl_key_and_public_key_import_sign_and_take_attributes() {
    let lab = Lab::new().with_alice_and_bob();
    let (n, dir) = (&lab.node, lab.dir());
    let msg = lab.message();
    let key_pem = dir.join("imported.key.pem");
    openssl_ec_key("P-256", &key_pem);
    let pub_pem = dir.join("imported.pub.pem");
    openssl_public_key(&key_pem, &pub_pem);
    let v = import(n, &key_pem, &[]);
    assert_eq!(
        (v["class"].as_str(), v["spec"].as_str()),
        (Some("private"), Some("ec-p256"))
    );
    assert_eq!(v["attributes"]["sign"], true);
    assert_eq!(v["attributes"]["local"], false);
    let imported = v["handle"].as_u64().unwrap().to_string();
    let v = import(n, &pub_pem, &["--attr", "verify=true"]);
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
        &sign_args(&imported, "ecdsa-sha256", &p(&msg), &p(&isig)),
    );
    openssl_verifies(&pub_pem, &isig, &msg);

    let v = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "set-attribute",
            "--key",
            &imported,
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
}
