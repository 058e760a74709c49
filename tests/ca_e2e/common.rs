//! What the CA tests share: the CA user, `keyward` and `openssl` runners, a node with a root
//! and an intermediate, OpenSSL CSRs, serials.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::pkcs11::Node;
use crate::support::{keyward_bin, run};

pub(crate) const CA_USER: &str = "ca-admin";
pub(crate) const CA_PASSWORD: &str = "ca-admin-password";

/// `keyward ARGS` on the node as the CA user: `(ok, stdout, stderr)`.
pub(crate) fn kw(node: &Node, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(keyward_bin())
        .args(args)
        .args(["--server", &node.url, "--ca-cert"])
        .arg(&node.ca)
        .args(["--user", CA_USER, "--password", CA_PASSWORD])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn kw_ok(node: &Node, args: &[&str]) -> String {
    let (ok, out, err) = kw(node, args);
    assert!(ok, "keyward {args:?}: {err}");
    out
}

pub(crate) fn openssl_ok(args: &[&str]) -> String {
    let (ok, out, err) = run("openssl", args);
    assert!(ok, "openssl {args:?}: {out}{err}");
    format!("{out}{err}")
}

pub(crate) fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A node with the CA user, a root (`root`, P-384, path length 1, name constraint
/// `example.test`) and an intermediate (`issuing`, P-256, issuing names under example.test).
/// Returns the node and `root.pem`, `inter.pem`, `chain.pem` (inter + root).
pub(crate) fn node_with_cas() -> (Node, PathBuf, PathBuf, PathBuf) {
    let node = Node::start();
    node.crypto_user(&format!("{CA_USER}:{CA_PASSWORD}"));
    let dir = node.dir.path();
    let root = kw_ok(
        &node,
        &[
            "ca",
            "create",
            "root",
            "--common-name",
            "Keyward Test Root",
            "--key-type",
            "ec-p384",
            "--path-len",
            "1",
            "--permitted-dns",
            "example.test",
            "--json",
        ],
    );
    let root: serde_json::Value = serde_json::from_str(&root).unwrap();
    assert_eq!(root["subject"], "CN=Keyward Test Root");
    let inter = kw_ok(
        &node,
        &[
            "ca",
            "create",
            "issuing",
            "--parent",
            "root",
            "--common-name",
            "Keyward Test Issuing",
            "--key-type",
            "ec-p256",
            "--allow-dns",
            "example.test",
            "--allow-dns",
            ".example.test",
            "--json",
        ],
    );
    let inter: serde_json::Value = serde_json::from_str(&inter).unwrap();
    let root_pem = dir.join("root.pem");
    let inter_pem = dir.join("inter.pem");
    let chain_pem = dir.join("chain.pem");
    std::fs::write(&root_pem, root["certificate_pem"].as_str().unwrap()).unwrap();
    std::fs::write(&inter_pem, inter["certificate_pem"].as_str().unwrap()).unwrap();
    kw_ok(
        &node,
        &["ca", "certificate", "issuing", "--out", &p(&chain_pem)],
    );
    (node, root_pem, inter_pem, chain_pem)
}

/// An OpenSSL key and CSR (`-newkey`, e.g. `ec -pkeyopt ec_paramgen_curve:P-256`) for `dns`.
pub(crate) fn openssl_csr(dir: &Path, name: &str, newkey: &[&str], dns: &str) -> PathBuf {
    let csr = dir.join(format!("{name}.csr"));
    let key = dir.join(format!("{name}.key"));
    let mut args = vec!["req", "-new", "-nodes", "-newkey"];
    args.extend_from_slice(newkey);
    let subj = format!("/CN={dns}");
    let san = format!("subjectAltName=DNS:{dns}");
    let (key_s, csr_s) = (p(&key), p(&csr));
    args.extend([
        "-keyout", &key_s, "-subj", &subj, "-addext", &san, "-out", &csr_s,
    ]);
    openssl_ok(&args);
    csr
}

/// `keyward ARGS --server URL --ca-cert CA --user USER --password PW`, insisting on success.
pub(crate) fn kw_at(url: &str, ca: &Path, user: &str, password: &str, args: &[&str]) -> String {
    let out = Command::new(keyward_bin())
        .args(args)
        .args(["--server", url, "--ca-cert"])
        .arg(ca)
        .args(["--user", user, "--password", password])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keyward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The serial (uppercase hex, as `openssl x509 -serial` prints it) of the first certificate
/// in PEM text.
pub(crate) fn serial_of(pem_text: &str) -> String {
    let start = pem_text
        .find("-----BEGIN CERTIFICATE-----")
        .expect(pem_text);
    let end = pem_text[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &pem_text[start..end]).unwrap();
    let out = openssl_ok(&["x509", "-in", &p(tmp.path()), "-noout", "-serial"]);
    out.trim().trim_start_matches("serial=").to_owned()
}

/// An OpenSSL P-256 key and CSR for `dns` ([`openssl_csr`]).
pub(crate) fn p256_csr(dir: &Path, name: &str, dns: &str) -> PathBuf {
    openssl_csr(
        dir,
        name,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        dns,
    )
}

/// `keyward ca issue CA --csr CSR` must be refused with an error containing `needle` (and
/// write nothing).
pub(crate) fn issue_refused(node: &Node, ca: &str, csr: &Path, needle: &str) {
    let out = csr.with_extension("refused.pem");
    let (ok, _, err) = kw(
        node,
        &["ca", "issue", ca, "--csr", &p(csr), "--out", &p(&out)],
    );
    assert!(!ok && err.contains(needle), "{err}");
    assert!(!out.exists(), "a refused request wrote {}", out.display());
}

/// Issues a certificate from CA `ca` for an OpenSSL P-256 CSR for `NAME.example.test`: the
/// certificate's file (`NAME.pem` in the node's folder) and its serial (lowercase hex).
pub(crate) fn issue_leaf(node: &Node, ca: &str, name: &str) -> (PathBuf, String) {
    let dir = node.dir.path();
    let csr = p256_csr(dir, name, &format!("{name}.example.test"));
    let pem = dir.join(format!("{name}.pem"));
    let out = kw_ok(
        node,
        &[
            "ca",
            "issue",
            ca,
            "--csr",
            &p(&csr),
            "--out",
            &p(&pem),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (pem, v["serial"].as_str().unwrap().to_owned())
}

/// `keyward cert csr` for the proxy key `web` in `data`, for `www.example.test`, into `csr`.
pub(crate) fn web_csr(data: &Path, csr: &Path) {
    crate::support::keyward_ok(&[
        "cert",
        "csr",
        "--key",
        "web",
        "--dns",
        "www.example.test",
        "--out",
        &p(csr),
        "--data-dir",
        &p(data),
    ]);
}

/// curl gets `https://www.example.test:PORT/` from the proxy on loopback with a 200, trusting
/// only `root`.
pub(crate) fn curl_trusts(port: u16, root: &Path) {
    let got = crate::support::Curl::url(format!("https://www.example.test:{port}/"))
        .args(&[
            "--resolve",
            &format!("www.example.test:{port}:127.0.0.1"),
            "--cacert",
            &p(root),
        ])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
}
