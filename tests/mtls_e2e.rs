//! Issue 5's client-certificate authentication (mutual TLS) end to end: a CA and client
//! certificates made with the `openssl` CLI, the real binary, curl as the client and the Python
//! upstream showing which subject header it received.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::*;

impl Site {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    /// `openssl ARGS` in the site folder; must succeed.
    fn openssl(&self, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// A self-signed CA: `NAME.key`, `NAME.pem`.
    fn ca(&self, name: &str) {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/O=Keyward Tests/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    /// A client certificate `NAME.pem` (key `NAME.key`) for `CN=NAME`, issued by `ca`.
    fn client(&self, name: &str, ca: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/O=Example/CN={name}"),
        ]);
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
    }
}

/// What curl got from `/who`: `Ok(body)` for a 200, `Err(reason)` when the exchange failed.
fn curl(addr: SocketAddr, server_ca: &Path, extra: &[&str]) -> Result<serde_json::Value, String> {
    let got = Curl::https(addr, "/who", server_ca).args(extra).run();
    if !got.ok {
        return Err(got.stderr);
    }
    if got.status != 200 {
        return Err(format!("status {}: {}", got.status, got.body));
    }
    Ok(serde_json::from_str(&got.body).unwrap_or_else(|e| panic!("{e}: {}", got.body)))
}

#[test]
fn a_required_client_certificate_is_verified_and_its_subject_forwarded() {
    let site = Site::new();
    site.ca("clients-ca");
    site.ca("other-ca");
    site.client("alice", "clients-ca");
    site.client("mallory", "other-ca");
    let (up, up_addr) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(
            &cert,
            "web",
            &format!(
                "[listeners.client_auth]\nca_file = \"{}\"\nsubject_header = \"X-Client-Subject\"",
                site.path("clients-ca.pem")
            )
        )
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let (alice_cert, alice_key) = (site.path("alice.pem"), site.path("alice.key"));
    let alice = ["--cert", &alice_cert, "--key", &alice_key];

    let j = curl(addrs[0], &cert, &alice).expect("alice is let in");
    let subject = j["headers"]["x-client-subject"]
        .as_str()
        .unwrap_or_else(|| panic!("no subject header: {j}"));
    assert!(subject.contains("CN=alice"), "{subject}");
    assert!(subject.contains("O=Example"), "{subject}");

    // A subject header of the client's own is replaced by the verified one.
    let mut forged = alice.to_vec();
    forged.extend_from_slice(&["-H", "X-Client-Subject: CN=admin"]);
    let j = curl(addrs[0], &cert, &forged).expect("alice is let in");
    let subject = j["headers"]["x-client-subject"].as_str().unwrap();
    assert!(subject.contains("CN=alice"), "{subject}");
    assert!(!subject.contains("admin"), "{subject}");

    // Both TLS versions demand the certificate.
    for version in ["--tlsv1.2", "--tlsv1.3"] {
        let max = if version == "--tlsv1.2" { "1.2" } else { "1.3" };
        let err = curl(addrs[0], &cert, &[version, "--tls-max", max])
            .expect_err("no client certificate, no request");
        assert!(!err.is_empty());
    }
    // A certificate from a CA the listener does not trust is refused too.
    let (m_cert, m_key) = (site.path("mallory.pem"), site.path("mallory.key"));
    curl(addrs[0], &cert, &["--cert", &m_cert, "--key", &m_key])
        .expect_err("an untrusted issuer is refused");
    // None of the refused clients reached the upstream.
    assert_eq!(
        up.stdout
            .all()
            .iter()
            .filter(|l| l.starts_with("REQUEST "))
            .count(),
        2
    );
}

#[test]
fn an_optional_client_certificate_listener_strips_a_forged_subject_header() {
    let site = Site::new();
    site.ca("clients-ca");
    site.client("bob", "clients-ca");
    let (_up, up_addr) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(
            &cert,
            "web",
            &format!(
                "[listeners.client_auth]\nca_file = \"{}\"\nrequired = false\nsubject_header = \"X-Client-Subject\"",
                site.path("clients-ca.pem")
            )
        )
    ));
    let (_p, addrs) = start_serve(&config, 1);

    // No certificate: served, and the client's own subject header never reaches the upstream.
    let j = curl(
        addrs[0],
        &cert,
        &["-H", "X-Client-Subject: CN=admin,O=Example"],
    )
    .expect("an optional listener serves clients without a certificate");
    assert!(
        j["headers"].get("x-client-subject").is_none(),
        "forged header forwarded: {j}"
    );
    // Over HTTP/2 too (the header in lower case, as h2 sends it).
    let j = curl(
        addrs[0],
        &cert,
        &["--http2", "-H", "x-client-subject: CN=admin"],
    )
    .expect("h2 without a certificate");
    assert!(j["headers"].get("x-client-subject").is_none(), "{j}");

    // With a certificate: the verified subject.
    let (b_cert, b_key) = (site.path("bob.pem"), site.path("bob.key"));
    let j = curl(
        addrs[0],
        &cert,
        &[
            "--cert",
            &b_cert,
            "--key",
            &b_key,
            "-H",
            "X-Client-Subject: CN=admin",
        ],
    )
    .expect("bob is let in");
    let subject = j["headers"]["x-client-subject"].as_str().unwrap();
    assert!(subject.contains("CN=bob"), "{subject}");
    assert!(!subject.contains("admin"), "{subject}");
}

#[test]
fn a_session_ticket_from_a_listener_without_client_auth_cannot_skip_the_certificate_check() {
    let site = Site::new();
    site.ca("clients-ca");
    let (up, up_addr) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", ""),
        listener(
            &cert,
            "web",
            &format!(
                "[listeners.client_auth]\nca_file = \"{}\"",
                site.path("clients-ca.pem")
            )
        )
    ));
    let (_p, addrs) = start_serve(&config, 2);
    for version in ["-tls1_3", "-tls1_2"] {
        let sess = site.path(&format!("open{version}.sess"));
        // A ticket from the listener that asks for no certificate (and it resumes there).
        let out = s_client_request(
            addrs[0],
            &[version, "-alpn", "http/1.1", "-sess_out", &sess],
        );
        assert!(out.contains("HTTP/1.1 200"), "{version}: {out}");
        let out = s_client_request(addrs[0], &[version, "-alpn", "http/1.1", "-sess_in", &sess]);
        assert!(out.contains("Reused"), "{version}: {out}");
        // The mTLS listener does not resume it: a full handshake, which needs a certificate.
        let out = s_client_request(addrs[1], &[version, "-alpn", "http/1.1", "-sess_in", &sess]);
        assert!(!out.contains("Reused"), "{version}: {out}");
        assert!(!out.contains("HTTP/1.1 200"), "{version}: {out}");
    }
    let requests = up
        .stdout
        .all()
        .iter()
        .filter(|l| l.starts_with("REQUEST "))
        .count();
    assert_eq!(
        requests, 4,
        "only the open listener's requests reach the upstream"
    );
}
