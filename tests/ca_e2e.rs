//! The issuing CA end to end against a real node (`keyward hsm serve`), every artefact checked
//! by OpenSSL: a root and an intermediate whose keys stay in the HSM, a TLS server certificate
//! issued from an OpenSSL CSR (`openssl verify`), the profile's refusals (a name outside the
//! policy, a 1024-bit RSA key, a bad CSR signature), a proxy key certified from its CSR and
//! served by `keyward serve` to curl, revocation into the CRL (`openssl crl`, `openssl verify
//! -crl_check`), the OCSP responder (`openssl ocsp`: `revoked`, `good`, signature OK), and a
//! proxy renewing its certificate from the CA in its own HSM while it serves.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::pkcs11::Node;
use support::{
    free_port, generate_key, init_hsm, keyward_bin, keyward_ok, run, s_client, start_serve,
    start_upstream, Curl, Site,
};

const CA_USER: &str = "ca-admin";
const CA_PASSWORD: &str = "ca-admin-password";

/// `keyward ARGS` on the node as the CA user: `(ok, stdout, stderr)`.
fn kw(node: &Node, args: &[&str]) -> (bool, String, String) {
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

fn kw_ok(node: &Node, args: &[&str]) -> String {
    let (ok, out, err) = kw(node, args);
    assert!(ok, "keyward {args:?}: {err}");
    out
}

fn openssl_ok(args: &[&str]) -> String {
    let (ok, out, err) = run("openssl", args);
    assert!(ok, "openssl {args:?}: {out}{err}");
    format!("{out}{err}")
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A node with the CA user, a root (`root`, P-384, path length 1, name constraint
/// `example.test`) and an intermediate (`issuing`, P-256, issuing names under example.test).
/// Returns the node and `root.pem`, `inter.pem`, `chain.pem` (inter + root).
fn node_with_cas() -> (Node, PathBuf, PathBuf, PathBuf) {
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
fn openssl_csr(dir: &Path, name: &str, newkey: &[&str], dns: &str) -> PathBuf {
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

#[test]
fn root_intermediate_and_leaf_verify_with_openssl_and_refusals_are_clear() {
    let (node, root, inter, chain) = node_with_cas();
    let dir = node.dir.path();

    // The CA keys are HSM keys that cannot be extracted.
    let keys = kw_ok(
        &node,
        &["key", "list", "--json", "--filter", "attr.label=ca-root"],
    );
    assert!(
        keys.contains("\"extractable\": false") || keys.contains("\"extractable\":false"),
        "{keys}"
    );
    // The intermediate verifies under the root, with its path length and name constraints.
    openssl_ok(&["verify", "-CAfile", &p(&root), &p(&inter)]);
    let text = openssl_ok(&["x509", "-in", &p(&inter), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(
        text.contains("Permitted:") && text.contains("DNS:example.test"),
        "{text}"
    );

    // A TLS server certificate from an OpenSSL CSR.
    let csr = openssl_csr(
        dir,
        "www",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "www.example.test",
    );
    let leaf = dir.join("www.pem");
    let out = kw_ok(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--out",
            &p(&leaf),
            "--json",
        ],
    );
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(issued["status"], "valid");
    let verify = openssl_ok(&[
        "verify",
        "-CAfile",
        &p(&root),
        "-untrusted",
        &p(&inter),
        &p(&leaf),
    ]);
    assert!(verify.contains(": OK"), "{verify}");
    let text = openssl_ok(&["x509", "-in", &p(&leaf), "-noout", "-text"]);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("DNS:www.example.test"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    // The CA chain file is the intermediate then the root.
    let chain_text = std::fs::read_to_string(&chain).unwrap();
    assert_eq!(chain_text.matches("BEGIN CERTIFICATE").count(), 2);

    // A name outside the CA's policy.
    let evil = openssl_csr(
        dir,
        "evil",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "www.evil.test",
    );
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&evil),
            "--out",
            &p(&dir.join("evil.pem")),
        ],
    );
    assert!(
        !ok && err.contains("www.evil.test is outside the names this CA may issue"),
        "{err}"
    );
    // A 1024-bit RSA key.
    let weak = openssl_csr(dir, "weak", &["rsa:1024"], "weak.example.test");
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&weak),
            "--out",
            &p(&dir.join("weak.pem")),
        ],
    );
    assert!(!ok && err.contains("1024-bit RSA key is refused"), "{err}");
    // A CSR whose signature does not verify: the last byte of its signature flipped.
    let der = openssl_ok(&[
        "req",
        "-in",
        &p(&csr),
        "-outform",
        "DER",
        "-out",
        &p(&dir.join("www.csr.der")),
    ]);
    drop(der);
    let mut bytes = std::fs::read(dir.join("www.csr.der")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad = dir.join("bad.csr");
    std::fs::write(
        &bad,
        pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bytes)),
    )
    .unwrap();
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&bad),
            "--out",
            &p(&dir.join("bad.pem")),
        ],
    );
    assert!(!ok && err.contains("signature does not verify"), "{err}");
    // A validity beyond the profile's limit.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--days",
            "800",
            "--out",
            &p(&dir.join("long.pem")),
        ],
    );
    assert!(!ok && err.contains("validity of 800 days"), "{err}");
    // Nothing refused reached the register.
    let register = kw_ok(&node, &["ca", "certificates", "issuing", "--json"]);
    let register: serde_json::Value = serde_json::from_str(&register).unwrap();
    assert_eq!(register.as_array().unwrap().len(), 1, "{register}");

    // The root has path length 1: an intermediate under the intermediate is refused.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "create",
            "deeper",
            "--parent",
            "issuing",
            "--common-name",
            "Deeper",
        ],
    );
    assert!(!ok && err.contains("path length 0"), "{err}");

    // Every issuance is audited.
    let audit = node.kw_ok(
        "admin",
        support::pkcs11::ADMIN_PASSWORD,
        &["audit", "list", "--json", "--limit", "1000"],
    );
    assert!(
        audit.contains("ca.create") && audit.contains("ca.issue"),
        "{audit}"
    );
}

#[test]
fn a_proxy_serves_a_certificate_from_the_ca_and_curl_trusts_the_root() {
    let (node, root, _inter, _chain) = node_with_cas();
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    // The proxy's key in its own HSM; its CSR goes to the CA, the full chain comes back.
    generate_key(&site.data(), "ec-p256", "web");
    let csr = site.dir.join("web.csr");
    keyward_ok(&[
        "cert",
        "csr",
        "--key",
        "web",
        "--dns",
        "www.example.test",
        "--out",
        &p(&csr),
        "--data-dir",
        &p(&site.data()),
    ]);
    let chain = site.dir.join("web.pem");
    kw_ok(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--fullchain",
            "--out",
            &p(&chain),
        ],
    );
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n\n[upstream]\nurl = \"http://{up_addr}\"\n",
        chain.display()
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let port = addrs[0].port();
    let got = Curl::url(format!("https://www.example.test:{port}/"))
        .args(&[
            "--resolve",
            &format!("www.example.test:{port}:127.0.0.1"),
            "--cacert",
            &p(&root),
        ])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");

    // `keyward cert issue` certifies a key on the node in one step.
    let dir = node.dir.path();
    node.ec_pair(&format!("{CA_USER}:{CA_PASSWORD}"), "app");
    let app = dir.join("app.pem");
    kw_ok(
        &node,
        &[
            "cert",
            "issue",
            "--ca",
            "issuing",
            "--key",
            "app",
            "--dns",
            "app.example.test",
            "--out",
            &p(&app),
        ],
    );
    let app_text = std::fs::read_to_string(&app).unwrap();
    assert_eq!(
        app_text.matches("BEGIN CERTIFICATE").count(),
        3,
        "leaf, intermediate, root"
    );
    let leaf_only = dir.join("app-leaf.pem");
    openssl_ok(&["x509", "-in", &p(&app), "-out", &p(&leaf_only)]);
    openssl_ok(&[
        "verify",
        "-CAfile",
        &p(&root),
        "-untrusted",
        &p(&app),
        &p(&leaf_only),
    ]);
}

#[test]
fn revocation_reaches_the_crl_and_ocsp() {
    let (node, root, inter, chain) = node_with_cas();
    let dir = node.dir.path();
    let issue = |name: &str| -> (PathBuf, String) {
        let csr = openssl_csr(
            dir,
            name,
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &format!("{name}.example.test"),
        );
        let pem = dir.join(format!("{name}.pem"));
        let out = kw_ok(
            &node,
            &[
                "ca",
                "issue",
                "issuing",
                "--csr",
                &p(&csr),
                "--out",
                &p(&pem),
                "--json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (pem, v["serial"].as_str().unwrap().to_owned())
    };
    let (bad, bad_serial) = issue("bad");
    let (good, _) = issue("good");

    let out = kw_ok(
        &node,
        &[
            "ca",
            "revoke",
            "issuing",
            "--serial",
            &bad_serial,
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(out.contains("revoked serial"), "{out}");
    let (ok, _, err) = kw(&node, &["ca", "revoke", "issuing", "--serial", &bad_serial]);
    assert!(!ok && err.contains("already revoked"), "{err}");

    // The CRL: signed by the intermediate, lists the serial with its reason.
    let crl = dir.join("crl.pem");
    kw_ok(&node, &["ca", "crl", "issuing", "--out", &p(&crl)]);
    let checked = openssl_ok(&["crl", "-in", &p(&crl), "-CAfile", &p(&chain), "-noout"]);
    assert!(checked.contains("verify OK"), "{checked}");
    let text = openssl_ok(&["crl", "-in", &p(&crl), "-noout", "-text"]);
    assert!(text.to_ascii_lowercase().contains(&bad_serial), "{text}");
    assert!(
        text.contains("Key Compromise") && text.contains("Next Update"),
        "{text}"
    );
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    // With the CRL, the revoked leaf fails and the other verifies.
    let with_crl = |leaf: &Path| {
        run(
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                &p(&root),
                "-untrusted",
                &p(&inter),
                "-CRLfile",
                &p(&crl),
                &p(leaf),
            ],
        )
    };
    let (ok, out, err) = with_crl(&bad);
    assert!(
        !ok && format!("{out}{err}").contains("certificate revoked"),
        "{out}{err}"
    );
    let (ok, out, err) = with_crl(&good);
    assert!(ok, "{out}{err}");

    // OCSP: a request made by openssl, posted to the responder, the response checked by openssl.
    let ocsp = |leaf: &Path, name: &str| -> String {
        let req = dir.join(format!("{name}.ocsp-req"));
        let resp = dir.join(format!("{name}.ocsp-resp"));
        openssl_ok(&[
            "ocsp",
            "-issuer",
            &p(&inter),
            "-cert",
            &p(leaf),
            "-reqout",
            &p(&req),
        ]);
        let got = Curl::url(format!("{}/v1/ca/issuing/ocsp", node.url))
            .args(&[
                "--cacert",
                &p(&node.ca),
                "-H",
                "content-type: application/ocsp-request",
                "--data-binary",
                &format!("@{}", p(&req)),
                "-o",
                &p(&resp),
            ])
            .run();
        assert!(got.ok && got.status == 200, "{got:?}");
        // -reqin (and no -cert, which would make a new request): openssl also checks that the
        // response echoes the request's nonce.
        openssl_ok(&[
            "ocsp",
            "-reqin",
            &p(&req),
            "-respin",
            &p(&resp),
            "-CAfile",
            &p(&chain),
            "-resp_text",
        ])
    };
    let out = ocsp(&bad, "bad");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(
        out.contains("Cert Status: revoked") && out.contains("keyCompromise"),
        "{out}"
    );
    assert!(
        out.contains("Responder Id:") && out.contains("Nonce"),
        "{out}"
    );
    let out = ocsp(&good, "good");
    assert!(
        out.contains("Response verify OK") && out.contains("Cert Status: good"),
        "{out}"
    );
    // A serial the CA never issued.
    let req = dir.join("foreign.ocsp-req");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &p(&inter),
        "-serial",
        "0x7a11ce",
        "-reqout",
        &p(&req),
    ]);
    let resp = dir.join("foreign.ocsp-resp");
    let got = Curl::url(format!("{}/v1/ca/issuing/ocsp", node.url))
        .args(&[
            "--cacert",
            &p(&node.ca),
            "--data-binary",
            &format!("@{}", p(&req)),
            "-o",
            &p(&resp),
        ])
        .run();
    assert!(got.ok, "{got:?}");
    let out = openssl_ok(&[
        "ocsp",
        "-reqin",
        &p(&req),
        "-respin",
        &p(&resp),
        "-CAfile",
        &p(&chain),
        "-resp_text",
    ]);
    assert!(out.contains("Cert Status: unknown"), "{out}");
    // A body that is not an OCSP request.
    let junk = Curl::url(format!("{}/v1/ca/issuing/ocsp", node.url))
        .args(&["--cacert", &p(&node.ca), "--data-binary", "not der"])
        .run();
    assert!(junk.ok && junk.status == 200, "{junk:?}");

    let audit = node.kw_ok(
        "admin",
        support::pkcs11::ADMIN_PASSWORD,
        &["audit", "list", "--json", "--limit", "1000"],
    );
    assert!(
        audit.contains("ca.revoke") && audit.contains("ca.crl"),
        "{audit}"
    );
}

/// `keyward ARGS --server URL --ca-cert CA --user USER --password PW`, insisting on success.
fn kw_at(url: &str, ca: &Path, user: &str, password: &str, args: &[&str]) -> String {
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
fn serial_of(pem_text: &str) -> String {
    let start = pem_text
        .find("-----BEGIN CERTIFICATE-----")
        .expect(pem_text);
    let end = pem_text[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &pem_text[start..end]).unwrap();
    let out = openssl_ok(&["x509", "-in", &p(tmp.path()), "-noout", "-serial"]);
    out.trim().trim_start_matches("serial=").to_owned()
}

#[test]
fn the_proxy_renews_its_certificate_from_its_own_ca_without_a_restart() {
    let site = Site::new();
    let data = site.data();
    init_hsm(&data, "admin-password-1");
    generate_key(&data, "ec-p256", "web");
    let chain = site.dir.join("web.pem");
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        "web",
        "--dns",
        "www.example.test",
        "--out",
        &p(&chain),
        "--data-dir",
        &p(&data),
    ]);
    let csr = site.dir.join("web.csr");
    keyward_ok(&[
        "cert",
        "csr",
        "--key",
        "web",
        "--dns",
        "www.example.test",
        "--out",
        &p(&csr),
        "--data-dir",
        &p(&data),
    ]);
    let (_up, up) = start_upstream();
    let api_port = free_port();
    let url = format!("https://localhost:{api_port}");
    let api_ca = data.join("api-ca.pem");
    let head = format!("[admin]\nenabled = false\n\n[api]\naddress = \"127.0.0.1:{api_port}\"\n\n");
    let tail = format!("[upstream]\nurl = \"http://{up}\"\n");
    let cert = |renew: &str| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n{renew}\n",
            chain.display()
        )
    };

    // A node serving its API and the proxy (a self-signed certificate at first).
    let config = site.config(&format!("{head}{}{tail}", cert("")));
    let (node, addrs) = start_serve(&config, 1);
    let pw = site.dir.join("ca.pw");
    std::fs::write(&pw, "ca-admin-password\n").unwrap();
    kw_at(
        &url,
        &api_ca,
        "admin",
        "admin-password-1",
        &[
            "user",
            "create",
            "--name",
            "ca-admin",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&pw),
        ],
    );
    let as_ca = |args: &[&str]| kw_at(&url, &api_ca, "ca-admin", "ca-admin-password", args);
    as_ca(&[
        "ca",
        "create",
        "edge",
        "--common-name",
        "Edge CA",
        "--key-type",
        "ec-p256",
        "--allow-dns",
        ".example.test",
    ]);
    let root = site.dir.join("edge.pem");
    as_ca(&["ca", "certificate", "edge", "--out", &p(&root)]);
    // The CA certifies the proxy's key for one day.
    as_ca(&[
        "ca",
        "issue",
        "edge",
        "--csr",
        &p(&csr),
        "--days",
        "1",
        "--fullchain",
        "--force",
        "--out",
        &p(&chain),
    ]);
    let first = serial_of(&std::fs::read_to_string(&chain).unwrap());

    // `renew_ca` added and SIGHUP: one day left is inside the two-day window, so the same
    // process renews the certificate and serves the new one.
    site.config(&format!(
        "{head}{}{tail}",
        cert("renew_ca = \"edge\"\nrenew_before_days = 2\n")
    ));
    let (ok, _, err) = run("kill", &["-HUP", &node.child.id().to_string()]);
    assert!(ok, "{err}");
    let line = node.stderr.wait_for("certificate renewed");
    assert!(line.contains("serial="), "{line}");
    support::wait_for_count(&node.stderr, "configuration reloaded", 2);
    let renewed = std::fs::read_to_string(&chain).unwrap();
    let second = serial_of(&renewed);
    assert_ne!(first, second);
    let served = s_client(addrs[0], "www.example.test", &[]);
    assert_eq!(serial_of(&served), second, "{served}");
    // The new certificate verifies under the CA, for the same name, for longer than a day.
    let leaf = site.dir.join("leaf.pem");
    openssl_ok(&["x509", "-in", &p(&chain), "-out", &p(&leaf)]);
    openssl_ok(&["verify", "-CAfile", &p(&root), &p(&leaf)]);
    let text = openssl_ok(&[
        "x509",
        "-in",
        &p(&leaf),
        "-noout",
        "-text",
        "-checkend",
        "864000",
    ]);
    assert!(text.contains("DNS:www.example.test"), "{text}");
    let port = addrs[0].port();
    let got = Curl::url(format!("https://www.example.test:{port}/"))
        .args(&[
            "--resolve",
            &format!("www.example.test:{port}:127.0.0.1"),
            "--cacert",
            &p(&root),
        ])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
    // Both are in the CA's register; nothing renews again (the new one has 397 days).
    let register = as_ca(&["ca", "certificates", "edge", "--json"]);
    let register: serde_json::Value = serde_json::from_str(&register).unwrap();
    assert_eq!(register.as_array().unwrap().len(), 2, "{register}");
}

/// A remote-mode proxy (no HSM of its own) renews its certificate from the CA on its HSM
/// node: its crypto-user owns the CA and the key, and asks the node to issue.
#[test]
fn a_remote_mode_proxy_renews_its_certificate_from_the_nodes_ca() {
    let node = Node::start();
    node.crypto_user(&format!("{CA_USER}:{CA_PASSWORD}"));
    let dir = node.dir.path();
    kw_ok(
        &node,
        &[
            "ca",
            "create",
            "edge",
            "--common-name",
            "Edge CA",
            "--key-type",
            "ec-p256",
            "--allow-dns",
            ".example.test",
        ],
    );
    let root = dir.join("edge.pem");
    kw_ok(&node, &["ca", "certificate", "edge", "--out", &p(&root)]);
    node.ec_pair(&format!("{CA_USER}:{CA_PASSWORD}"), "web");
    let chain = dir.join("web.pem");
    kw_ok(
        &node,
        &[
            "cert",
            "issue",
            "--ca",
            "edge",
            "--key",
            "web",
            "--dns",
            "www.example.test",
            "--days",
            "1",
            "--out",
            &p(&chain),
        ],
    );
    let first = serial_of(&std::fs::read_to_string(&chain).unwrap());
    let pw = dir.join("fleet.pw");
    std::fs::write(&pw, format!("{CA_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (_up, up) = start_upstream();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[hsm]\nmode = \"remote\"\nservers = [\"{}\"]\nca_file = \"{}\"\nusername = \"{CA_USER}\"\npassword_file = \"{}\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\nrenew_ca = \"edge\"\nrenew_before_days = 2\n\n\
             [upstream]\nurl = \"http://{up}\"\n",
            node.url,
            p(&node.ca),
            p(&pw),
            p(&chain),
        ),
    )
    .unwrap();
    let (proxy, addrs) = start_serve(&config, 1);
    let line = proxy.stderr.wait_for("certificate renewed");
    assert!(line.contains("serial="), "{line}");
    proxy.stderr.wait_for("configuration reloaded");
    let second = serial_of(&std::fs::read_to_string(&chain).unwrap());
    assert_ne!(first, second);
    let served = s_client(addrs[0], "www.example.test", &[]);
    assert_eq!(serial_of(&served), second, "{served}");
    let port = addrs[0].port();
    let got = Curl::url(format!("https://www.example.test:{port}/"))
        .args(&[
            "--resolve",
            &format!("www.example.test:{port}:127.0.0.1"),
            "--cacert",
            &p(&root),
        ])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
}

/// What a first review found: intermediates are in their parent's register and revocable (and
/// a revoked one issues nothing more), a sub-CA inherits its parent's name policy (in the HSM
/// by its settings, with its key elsewhere by name constraints), `removeFromCRL` is refused,
/// a huge validity is refused without leaving a key behind, another user's CA answers
/// `permission_denied` without naming its key, and refusals are audited.
#[test]
fn sub_cas_are_held_to_their_parent_and_revocable_and_refusals_are_audited() {
    let (node, root, inter, _chain) = node_with_cas();
    let dir = node.dir.path();
    // The intermediate is in the root's register.
    let register = kw_ok(&node, &["ca", "certificates", "root", "--json"]);
    let register: serde_json::Value = serde_json::from_str(&register).unwrap();
    assert_eq!(register[0]["profile"], "intermediate", "{register}");
    let inter_serial = register[0]["serial"].as_str().unwrap().to_owned();

    // A sub-CA under the intermediate inherits `allow-dns .example.test`.
    // (The root has path length 1, so the intermediate has 0: make another tree.)
    kw_ok(
        &node,
        &[
            "ca",
            "create",
            "top",
            "--common-name",
            "Top",
            "--path-len",
            "2",
            "--allow-dns",
            "www.example.test",
        ],
    );
    kw_ok(
        &node,
        &[
            "ca",
            "create",
            "sub",
            "--parent",
            "top",
            "--common-name",
            "Sub",
        ],
    );
    let other = openssl_csr(
        dir,
        "other",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "www.google.com",
    );
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "sub",
            "--csr",
            &p(&other),
            "--out",
            &p(&dir.join("g.pem")),
        ],
    );
    assert!(
        !ok && err.contains("outside the names this CA may issue (www.example.test)"),
        "{err}"
    );
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "create",
            "wide",
            "--parent",
            "top",
            "--common-name",
            "Wide",
            "--allow-dns",
            ".google.com",
        ],
    );
    assert!(!ok && err.contains("outside the parent CA's"), "{err}");
    // An external sub-CA (key outside the HSM) gets name constraints from the policy.
    let ext = openssl_csr(
        dir,
        "ext",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "ext.example.test",
    );
    let ext_pem = dir.join("ext.pem");
    kw_ok(
        &node,
        &[
            "ca",
            "issue",
            "top",
            "--profile",
            "intermediate",
            "--csr",
            &p(&ext),
            "--common-name",
            "External Sub",
            "--out",
            &p(&ext_pem),
        ],
    );
    let text = openssl_ok(&["x509", "-in", &p(&ext_pem), "-noout", "-text"]);
    assert!(
        text.contains("Permitted:") && text.contains("DNS:www.example.test"),
        "{text}"
    );
    assert!(
        text.contains("Excluded:") && text.contains("IP:0.0.0.0/0.0.0.0"),
        "{text}"
    );

    // removeFromCRL is for delta CRLs: refused.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "revoke",
            "root",
            "--serial",
            &inter_serial,
            "--reason",
            "removeFromCRL",
        ],
    );
    assert!(!ok && err.contains("unknown revocation reason"), "{err}");
    // The root revokes the intermediate: its CRL lists it, and the intermediate issues no more.
    kw_ok(
        &node,
        &[
            "ca",
            "revoke",
            "root",
            "--serial",
            &inter_serial,
            "--reason",
            "cACompromise",
        ],
    );
    let crl = dir.join("root.crl");
    kw_ok(&node, &["ca", "crl", "root", "--out", &p(&crl)]);
    let (ok, out, err) = run(
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            &p(&root),
            "-CRLfile",
            &p(&crl),
            &p(&inter),
        ],
    );
    assert!(
        !ok && format!("{out}{err}").contains("certificate revoked"),
        "{out}{err}"
    );
    let csr = openssl_csr(
        dir,
        "late",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "late.example.test",
    );
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--out",
            &p(&dir.join("late.pem")),
        ],
    );
    assert!(
        !ok && err.contains("certificate was revoked by CA root"),
        "{err}"
    );

    // A huge validity is refused before a key is made: the name stays usable.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "create",
            "big",
            "--common-name",
            "Big",
            "--days",
            "3000000",
        ],
    );
    assert!(
        !ok && err.contains("validity_days must be 1 to 36500"),
        "{err}"
    );
    kw_ok(&node, &["ca", "create", "big", "--common-name", "Big"]);

    // Another crypto-user: permission denied, no key handle in the message; CAs not listed.
    node.crypto_user("bob:bob-password-1");
    let bob = |args: &[&str]| {
        let out = Command::new(keyward_bin())
            .args(args)
            .args(["--server", &node.url, "--ca-cert"])
            .arg(&node.ca)
            .args(["--user", "bob", "--password", "bob-password-1"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = bob(&[
        "ca",
        "issue",
        "big",
        "--csr",
        &p(&csr),
        "--out",
        &p(&dir.join("bob.pem")),
    ]);
    assert!(
        !ok && err.contains("permission_denied") && !err.contains("handle"),
        "{err}"
    );
    let (ok, out, err) = bob(&["ca", "list", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]");

    // Refused requests are audited.
    let audit = node.kw_ok(
        "admin",
        support::pkcs11::ADMIN_PASSWORD,
        &["audit", "list", "--json", "--limit", "1000"],
    );
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "ca.issue" && e["outcome"] == "denied")
        .count();
    assert!(refused >= 3, "{audit}");
}
