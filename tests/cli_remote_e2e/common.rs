//! Nodes, the CLI run against them, and the users and keys the tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

pub(crate) const ALICE: &str = "alice-password";
pub(crate) const BOB: &str = "bob-password";

/// A node: `keyward init` + `keyward hsm serve` on an ephemeral port.
pub(crate) struct Node {
    pub(crate) server: Running,
    pub(crate) url: String,
    pub(crate) ca: PathBuf,
    pub(crate) data: PathBuf,
}

pub(crate) fn start_node(dir: &Path, name: &str) -> Node {
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

/// One node in its own temporary folder (which also holds the test's files).
pub(crate) struct Lab {
    pub(crate) node: Node,
    pub(crate) tmp: tempfile::TempDir,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let node = start_node(tmp.path(), "hsm");
        Lab { node, tmp }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Crypto-users alice (password file with a newline) and bob (without) made by the admin.
    pub(crate) fn with_alice_and_bob(self) -> Lab {
        let alice_pw = self.dir().join("alice.pw");
        std::fs::write(&alice_pw, format!("{ALICE}\n")).unwrap();
        let bob_pw = self.dir().join("bob.pw");
        std::fs::write(&bob_pw, BOB).unwrap();
        for (name, f) in [("alice", &alice_pw), ("bob", &bob_pw)] {
            let out = create_crypto_user(&self.node, name, f);
            assert!(out.contains(name), "{out}");
        }
        self
    }

    /// `the message to sign\n` in `msg.txt`.
    pub(crate) fn message(&self) -> PathBuf {
        let msg = self.dir().join("msg.txt");
        std::fs::write(&msg, b"the message to sign\n").unwrap();
        msg
    }
}

/// `keyward user create --name NAME --role crypto-user --password-file FILE` as the admin.
pub(crate) fn create_crypto_user(n: &Node, name: &str, password_file: &Path) -> String {
    kw_ok(
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
            &p(password_file),
        ],
    )
}

/// Runs `keyward ARGS --server URL --ca-cert CA --user USER --password PW`.
pub(crate) fn kw(node: &Node, user: &str, password: &str, args: &[&str]) -> Output {
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

pub(crate) fn kw_ok(node: &Node, user: &str, password: &str, args: &[&str]) -> String {
    let out = kw(node, user, password, args);
    assert!(
        out.status.success(),
        "keyward {args:?} as {user} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Expects exit 1 and one `keyward: error:` line containing `code`.
pub(crate) fn kw_err(node: &Node, user: &str, password: &str, args: &[&str], code: &str) {
    let out = kw(node, user, password, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "keyward {args:?}: {err}");
    assert!(
        err.starts_with("keyward: error: ") && err.contains(code) && err.lines().count() == 1,
        "keyward {args:?}: expected {code}, got {err}"
    );
}

pub(crate) fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

pub(crate) fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Alice generates an asymmetric pair (`sign` private half, `verify` public half); returns
/// (private, public) handles.
pub(crate) fn pair(n: &Node, kind: &str, extra: &[&str], label: &str) -> (u64, u64) {
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
}

/// Alice generates a symmetric key with `args`; returns its handle and its JSON.
pub(crate) fn sym(n: &Node, args: &[&str]) -> (u64, serde_json::Value) {
    let mut a = vec!["key", "generate-symmetric"];
    a.extend_from_slice(args);
    a.push("--json");
    let v = json(&kw_ok(n, "alice", ALICE, &a));
    (v["handle"].as_u64().unwrap(), v)
}

/// `openssl genpkey` of an EC key on `curve` (an OpenSSL curve name) into `out`.
pub(crate) fn openssl_ec_key(curve: &str, out: &Path) {
    let (ok, _, err) = run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            &p(out),
        ],
    );
    assert!(ok, "{err}");
}

/// `openssl pkey -pubout`: the public key of the PEM private key `key` into `out`.
pub(crate) fn openssl_public_key(key: &Path, out: &Path) {
    let (ok, _, err) = run(
        "openssl",
        &["pkey", "-in", &p(key), "-pubout", "-out", &p(out)],
    );
    assert!(ok, "{err}");
}

/// `openssl dgst -sha256 -verify PUB -signature SIG MSG` succeeds.
pub(crate) fn openssl_verifies(public_pem: &Path, sig: &Path, msg: &Path) {
    let (ok, out, err) = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            &p(public_pem),
            "-signature",
            &p(sig),
            &p(msg),
        ],
    );
    assert!(ok, "{out}{err}");
}

/// The `crypto sign --key KEY --mechanism MECH --in MSG --out SIG` arguments.
pub(crate) fn sign_args<'a>(
    key: &'a str,
    mech: &'a str,
    msg: &'a str,
    sig: &'a str,
) -> [&'a str; 10] {
    [
        "crypto",
        "sign",
        "--key",
        key,
        "--mechanism",
        mech,
        "--in",
        msg,
        "--out",
        sig,
    ]
}
