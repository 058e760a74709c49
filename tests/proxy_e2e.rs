//! The main job end to end: the real `keyward` binary in front of a real upstream process,
//! checked with the `curl` and `openssl` binaries.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use keyward_hsm::KeyClass;
use support::*;
use x509_parser::prelude::FromDer;

struct Site {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Site { _tmp: tmp, dir }
    }
    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    /// Generates a key in the HSM and a self-signed certificate for it.
    fn key_and_cert(&self, spec: &str, label: &str) -> String {
        let data = self.dir.join("data");
        generate_key(&data, spec, label);
        let cert = self.dir.join(format!("{label}.pem"));
        self_signed(&data, label, &cert);
        cert.display().to_string()
    }
    fn write_config(&self, body: &str) -> std::path::PathBuf {
        let p = self.dir.join("keyward.toml");
        std::fs::write(&p, format!("[hsm]\ndata_dir = \"data\"\n\n{body}")).unwrap();
        p
    }
}

fn listener(label: &str, cert: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n{extra}\n[[listeners.certificates]]\nkey_label = \"{label}\"\nchain_file = \"{cert}\"\n\n"
    )
}

fn upstream(addr: SocketAddr, extra: &str) -> String {
    format!("[upstream]\nurl = \"http://{addr}\"\n{extra}\n")
}

fn served_spki(s_client_out: &str) -> Vec<u8> {
    let start = s_client_out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&s_client_out.as_bytes()[start..]).unwrap();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&pem.contents).unwrap();
    cert.tbs_certificate.subject_pki.raw.to_vec()
}

#[test]
fn https_in_front_of_a_real_upstream_with_hsm_keys_of_every_tls_type() {
    let site = Site::new();
    let ec = site.key_and_cert("ec-p256", "web");
    let rsa = site.key_and_cert("rsa-2048", "web-rsa");
    let ed = site.key_and_cert("ed25519", "web-ed");
    let (_up, up_addr) = start_upstream();
    let config = site.write_config(&format!(
        "{}{}{}{}",
        // Behind another proxy: append to the X-Forwarded-For and Forwarded it sends.
        listener("web", &ec, "forwarded_headers = \"append\""),
        listener("web-rsa", &rsa, ""),
        listener("web-ed", &ed, ""),
        upstream(up_addr, "")
    ));
    let (server, addrs) = start_serve(&config, 3);
    let (ec_addr, rsa_addr, ed_addr) = (addrs[0], addrs[1], addrs[2]);

    forwards_over_http1_and_h2(ec_addr, &ec);
    let hsm = open_hsm(&site.dir.join("data"));
    serves_the_ec_key_over_tls13_and_tls12(ec_addr, &ec, &hsm, &server);
    serves_the_rsa_key_over_tls13_and_tls12(rsa_addr, &rsa, &hsm);
    serves_the_ed25519_key(ed_addr, &ed, &hsm);
}

/// The certificate in `s_client_out` carries the public key of the HSM's private key `label`.
fn assert_serves_hsm_key(s_client_out: &str, hsm: &keyward_hsm::Hsm, label: &str) {
    let key = hsm
        .find_by_label(&me(hsm), label, KeyClass::Private)
        .unwrap();
    assert_eq!(
        served_spki(s_client_out),
        hsm.public_key_spki(&me(hsm), key.handle).unwrap()
    );
}

fn forwards_over_http1_and_h2(ec_addr: SocketAddr, ec: &str) {
    // Body and forwarded headers arrive; hop-by-hop headers do not (HTTP/1.1: over h2 curl
    // itself drops the Connection header).
    let CurlOutput {
        ok,
        body,
        stderr: err,
        ..
    } = Curl::https(ec_addr, "/hello?x=1", Path::new(ec))
        .args(&[
            "--http1.1",
            "-H",
            "Connection: keep-alive, X-Hop",
            "-H",
            "X-Hop: secret",
            "-H",
            "X-Forwarded-For: 203.0.113.9",
        ])
        .run();
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["upstream"], "keyward-test-upstream");
    assert_eq!(v["path"], "/hello?x=1");
    let h = &v["headers"];
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(
        h["x-forwarded-host"],
        format!("localhost:{}", ec_addr.port())
    );
    assert_eq!(h["host"], format!("localhost:{}", ec_addr.port()));
    assert!(h.get("x-hop").is_none(), "hop-by-hop header leaked: {h}");

    // HTTP/2 through ALPN, with a request body.
    let got = Curl::https(ec_addr, "/h2", Path::new(ec))
        .args(&["--http2", "-d", "abc"])
        .run();
    assert!(got.ok, "{}", got.stderr);
    assert_eq!(got.http_version, "2");
    let v: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body_bytes"], 3);
    assert_eq!(
        v["headers"]["host"],
        format!("localhost:{}", ec_addr.port())
    );
}

fn serves_the_ec_key_over_tls13_and_tls12(
    ec_addr: SocketAddr,
    ec: &str,
    hsm: &keyward_hsm::Hsm,
    server: &Running,
) {
    // TLS 1.3 with the P-256 key; the served certificate's key is the HSM key.
    let out = s_client(ec_addr, "localhost", &["-tls1_3"]);
    assert!(out.contains("New, TLSv1.3"), "{out}");
    assert!(out.contains("Peer signature type: ECDSA"), "{out}");
    assert_serves_hsm_key(&out, hsm, "web");

    // A client that sends an IP address as SNI (not allowed, RFC 6066 §3) is served from the
    // default certificate, and causes no log line: nothing any client does may log per handshake.
    let out = s_client(ec_addr, "127.0.0.1", &["-tls1_3"]);
    assert!(out.contains("New, TLSv1.3"), "{out}");
    let noisy: Vec<String> = server
        .stderr
        .all()
        .into_iter()
        .filter(|l| {
            !l.contains("listening for HTTP")
                && !l.contains("runtime started")
                && !l.contains("serving admin endpoints")
                && !l.contains("keyward::access")
        })
        .collect();
    assert!(noisy.is_empty(), "per-connection log lines: {noisy:?}");

    // A client limited to TLS 1.2 with ECDHE-ECDSA.
    let out = s_client(
        ec_addr,
        "localhost",
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(
        out.contains("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{out}"
    );
    let CurlOutput {
        ok, stderr: err, ..
    } = Curl::https(ec_addr, "/", Path::new(ec))
        .args(&[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ])
        .run();
    assert!(ok, "{err}");
}

fn serves_the_rsa_key_over_tls13_and_tls12(
    rsa_addr: SocketAddr,
    rsa: &str,
    hsm: &keyward_hsm::Hsm,
) {
    // RSA-2048: TLS 1.3 signs with RSA-PSS; TLS 1.2 works too.
    let out = s_client(rsa_addr, "localhost", &["-tls1_3"]);
    assert!(
        out.contains("New, TLSv1.3") && out.contains("Peer signature type: RSA-PSS"),
        "{out}"
    );
    assert_serves_hsm_key(&out, hsm, "web-rsa");
    let out = s_client(
        rsa_addr,
        "localhost",
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
    );
    assert!(
        out.contains("New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256"),
        "{out}"
    );
    let CurlOutput {
        ok,
        body,
        stderr: err,
        ..
    } = Curl::https(rsa_addr, "/rsa", Path::new(rsa)).run();
    assert!(ok && body.contains("keyward-test-upstream"), "{err}");
}

fn serves_the_ed25519_key(ed_addr: SocketAddr, ed: &str, hsm: &keyward_hsm::Hsm) {
    // Ed25519.
    let out = s_client(ed_addr, "localhost", &["-tls1_3"]);
    assert!(
        out.contains("New, TLSv1.3") && out.contains("Peer signature type: ed25519"),
        "{out}"
    );
    assert_serves_hsm_key(&out, hsm, "web-ed");
    let CurlOutput {
        ok,
        body,
        stderr: err,
        ..
    } = Curl::https(ed_addr, "/ed", Path::new(ed)).run();
    assert!(ok && body.contains("keyward-test-upstream"), "{err}");
}

#[test]
fn upstream_down_gives_502_and_slow_upstream_gives_504() {
    let site = Site::new();
    let cert = site.key_and_cert("ec-p256", "web");
    let (_up, up_addr) = start_upstream();
    let config = site.write_config(&format!(
        "{}{}",
        listener("web", &cert, ""),
        upstream(closed_port(), "")
    ));
    let (_server, addrs) = start_serve(&config, 1);
    let got = Curl::https(addrs[0], "/", Path::new(&cert)).run();
    assert!(got.ok, "{}", got.stderr);
    assert!(
        got.status == 502 && got.body.starts_with("502 Bad Gateway"),
        "{got:?}"
    );
    drop(_server);

    let config = site.write_config(&format!(
        "{}{}",
        listener("web", &cert, ""),
        upstream(up_addr, "response_timeout_ms = 300")
    ));
    let (_server, addrs) = start_serve(&config, 1);
    let got = Curl::https(addrs[0], "/slow?ms=3000", Path::new(&cert)).run();
    assert!(got.ok, "{}", got.stderr);
    assert!(
        got.status == 504 && got.body.starts_with("504 Gateway Timeout"),
        "{got:?}"
    );
    // A fast request on the same server still succeeds.
    let got = Curl::https(addrs[0], "/slow?ms=10", Path::new(&cert)).run();
    assert!(got.ok && got.status == 200, "{got:?}");
}

#[test]
fn csr_is_signed_by_the_hsm_key() {
    let site = Site::new();
    let data = site.data();
    generate_key(&site.dir.join("data"), "ec-p384", "csr");
    let csr = site.path("req.pem");
    keyward_ok(&[
        "cert",
        "csr",
        "--key",
        "csr",
        "--dns",
        "www.example.com",
        "--out",
        &csr,
        "--data-dir",
        &data,
    ]);
    let (ok, out, err) = run(
        "openssl",
        &["req", "-in", &csr, "-noout", "-verify", "-text"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("DNS:www.example.com") && out.contains("NIST CURVE: P-384"),
        "{out}"
    );
    assert!(
        err.contains("verify OK") || out.contains("verify OK"),
        "{out}{err}"
    );
}

#[test]
fn hostile_requests_are_refused_before_reaching_the_upstream() {
    let site = Site::new();
    let cert = site.key_and_cert("ec-p256", "web");
    let (up, up_addr) = start_upstream();
    let prefixed = SocketAddr::from(([127, 0, 0, 1], up_addr.port()));
    let config = site.write_config(&format!(
        "{}[upstream]\nurl = \"http://{prefixed}/public\"\n",
        listener("web", &cert, "client_header_timeout_ms = 700\n")
    ));
    let (_server, addrs) = start_serve(&config, 1);
    let addr = addrs[0];

    // Dot segments could climb out of the upstream prefix.
    for path in ["/../secret", "/%2e%2e/secret", "/a/./b", "/x/%2E%2e"] {
        let got = Curl::https(addr, path, Path::new(&cert))
            .args(&["--path-as-is"])
            .run();
        assert!(got.ok, "{}", got.stderr);
        assert_eq!(got.status, 400, "{path}: {got:?}");
    }
    // The prefix is kept for a normal path, and the client cannot set X-Forwarded-Host.
    let CurlOutput {
        ok,
        body,
        stderr: err,
        ..
    } = Curl::https(addr, "/ok", Path::new(&cert))
        .args(&["-H", "X-Forwarded-Host: evil.example"])
        .run();
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/public/ok");
    assert_eq!(
        v["headers"]["x-forwarded-host"],
        format!("localhost:{}", addr.port())
    );

    // HTTP/1.1 without Host, or with an invalid one, is a 400.
    for head in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    ] {
        let out = raw_tls_exchange(addr, head);
        assert!(out.starts_with("HTTP/1.1 400"), "{head:?}: {out}");
    }
    // Nothing above except /ok reached the upstream.
    drop(up);

    // An idle connection that never sends a request is closed after client_header_timeout_ms.
    let started = std::time::Instant::now();
    let mut idle = std::process::Command::new("openssl");
    idle.args([
        "s_client",
        "-quiet",
        "-ign_eof",
        "-connect",
        &addr.to_string(),
        "-servername",
        "localhost",
    ]);
    let mut idle = Running::spawn(idle);
    let end = started + DEADLINE;
    while idle.child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < end,
            "idle connection was never closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(600),
        "closed too early"
    );
}

/// Sends `head` over TLS with `openssl s_client` and returns what came back.
fn raw_tls_exchange(addr: SocketAddr, head: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(head.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_self_signed_certificate_gets_a_fresh_random_serial() {
    let site = Site::new();
    generate_key(&site.dir.join("data"), "ec-p256", "web");
    let serial = |name: &str| {
        let out = site.dir.join(name);
        self_signed(&site.dir.join("data"), "web", &out);
        let pem = std::fs::read(&out).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&pem.contents).unwrap();
        cert.tbs_certificate.raw_serial().to_vec()
    };
    let (a, b) = (serial("a.pem"), serial("b.pem"));
    assert_ne!(a, b, "RFC 5280 §4.1.2.2: serials are unique per issuer");
    assert!(a.len() >= 9, "at least 64 random bits: {a:?}");
}
