//! A key imported through the remote CLI serves TLS in `keyward serve`.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::support::*;

/// A self-signed `localhost` certificate over the PEM key `key` (openssl), into `out`.
fn self_signed_localhost(key: &Path, out: &Path) {
    let (ok, _, err) = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &p(key),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-days",
            "30",
            "-out",
            &p(out),
        ],
    );
    assert!(ok, "{err}");
}

/// Alice imports `key_pem` as `web-imported`, shares it with the proxy's identity and writes
/// a reference file for it, which holds no key material; returns the reference file.
fn import_for_the_proxy(lab: &Lab, key_pem: &Path) -> PathBuf {
    let node = &lab.node;
    let v = json(&kw_ok(
        node,
        "alice",
        ALICE,
        &[
            "key",
            "import",
            "pem",
            "--in",
            &p(key_pem),
            "--label",
            "web-imported",
            "--json",
        ],
    ));
    let handle = v["handle"].as_u64().unwrap().to_string();
    kw_ok(
        node,
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
    let reference = lab.dir().join("web.ref.pem");
    kw_ok(
        node,
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
    reference
}

/// A PEM private key made by `openssl genpkey`, imported through the API (wrapped on the
/// client, never in plaintext), shared with the proxy's identity, then serves TLS in
/// `keyward serve` from the same data directory.
#[test]
fn an_imported_openssl_key_serves_tls_in_the_proxy() {
    let lab = Lab::new();
    let dir = lab.dir();
    let alice_pw = dir.join("alice.pw");
    std::fs::write(&alice_pw, format!("{ALICE}\n")).unwrap();
    create_crypto_user(&lab.node, "alice", &alice_pw);
    let key_pem = dir.join("web.key.pem");
    let cert_pem = dir.join("web.cert.pem");
    openssl_ec_key("P-256", &key_pem);
    self_signed_localhost(&key_pem, &cert_pem);
    let reference = import_for_the_proxy(&lab, &key_pem);
    let Lab { node, tmp } = lab;
    let data = node.data.clone();
    drop(node);

    let (_up, up_addr) = start_upstream();
    let config = tmp.path().join("proxy.toml");
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
    let got = Curl::https(addrs[0], "/via-imported-key", &cert_pem).run();
    assert!(got.ok, "{}", got.stderr);
    assert!(
        got.body.contains("keyward-test-upstream") && got.body.contains("/via-imported-key"),
        "{}",
        got.body
    );
    // The handshake was signed by the imported key: openssl's public key is the served one.
    let out = s_client(addrs[0], "localhost", &["-tls1_3"]);
    assert!(out.contains("New, TLSv1.3"), "{out}");
    let port = addrs[0].port();
    let (ok, served_pub, _) = run("sh", &["-c", &format!("echo | openssl s_client -connect 127.0.0.1:{port} -servername localhost 2>/dev/null | openssl x509 -pubkey -noout")]);
    let (ok2, file_pub, _) = run("openssl", &["pkey", "-in", &p(&key_pem), "-pubout"]);
    assert!(ok && ok2 && served_pub.contains("BEGIN PUBLIC KEY"));
    assert_eq!(served_pub, file_pub);
}
