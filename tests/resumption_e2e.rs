//! Session resumption across nodes: two real `keyward serve` processes over one data
//! directory (the second runs as a reader node), checked with `openssl s_client -sess_out` /
//! `-sess_in` for TLS 1.3 and TLS 1.2 session tickets whose keys live in the HSM.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use support::*;

/// The rotation period configured below, in seconds.
const ROTATION_S: u64 = 21_600;

impl Site {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A configuration file named `name` for one node: its own listener port (0), no admin
    /// listener, the shared data directory.
    fn node_config(&self, name: &str, cert: &Path, upstream: SocketAddr, extra: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(
            &p,
            format!(
                "[hsm]\ndata_dir = \"data\"\n\n\
                 [admin]\nenabled = false\n\n\
                 [session_resumption]\nticket_key_rotation_s = {ROTATION_S}\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
                 [[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n\n\
                 [upstream]\nurl = \"http://{upstream}\"\n\n{extra}",
                cert.display()
            ),
        )
        .unwrap();
        p
    }
}

/// Copies the session file `from` to `to` with one byte of the ticket's ciphertext flipped.
/// The ticket starts with the key name, whose first 8 bytes are the period (big-endian).
fn mangle_ticket(from: &Path, to: &Path) {
    let block = pem::parse(std::fs::read(from).unwrap()).unwrap();
    let mut der = block.contents().to_vec();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / ROTATION_S;
    let at = [now, now - 1]
        .iter()
        .find_map(|p| der.windows(8).position(|w| w == p.to_be_bytes()))
        .expect("the ticket's key name in the session file");
    // Key name (16) and IV (12), then ciphertext.
    der[at + 16 + 12 + 4] ^= 0x55;
    std::fs::write(to, pem::encode(&pem::Pem::new(block.tag(), der))).unwrap();
}

#[test]
fn a_ticket_from_one_node_resumes_on_another_sharing_the_store() {
    let site = Site::new();
    let data = site.path("data");
    generate_key(&data, "ec-p256", "web");
    let cert = site.path("web.pem");
    self_signed(&data, "web", &cert);
    let (_up, up_addr) = start_upstream();
    let config_a = site.node_config("a.toml", &cert, up_addr, "");
    let config_b = site.node_config("b.toml", &cert, up_addr, "");

    let (node_a, addrs_a) = start_serve(&config_a, 1);
    let (node_b, addrs_b) = start_serve(&config_b, 1);
    let (a, b) = (addrs_a[0], addrs_b[0]);
    assert_ne!(a, b);
    // The second node found the data directory locked and runs as a reader.
    node_b.stderr.wait_for("runs as a reader node");
    assert!(
        !node_a
            .stderr
            .all()
            .iter()
            .any(|l| l.contains("reader node")),
        "{:?}",
        node_a.stderr.all()
    );

    for (version, extra) in [("TLSv1.3", &[][..]), ("TLSv1.2", &["-tls1_2"][..])] {
        // A → B.
        let from_a = site.path(&format!("a-{version}.pem"));
        new_session(a, &from_a, version, extra);
        let line = resume(b, &from_a, extra);
        assert!(
            line.starts_with(&format!("Reused, {version}")),
            "a {version} ticket from node A on node B: {line}"
        );
        // B → A, and B's own ticket on B.
        let from_b = site.path(&format!("b-{version}.pem"));
        new_session(b, &from_b, version, extra);
        assert!(
            resume(a, &from_b, extra).starts_with(&format!("Reused, {version}")),
            "a {version} ticket from node B on node A"
        );
        assert!(resume(b, &from_b, extra).starts_with(&format!("Reused, {version}")));

        // A ticket whose ciphertext was changed gives a full handshake, on both nodes.
        let mangled = site.path(&format!("mangled-{version}.pem"));
        mangle_ticket(&from_a, &mangled);
        for node in [a, b] {
            assert!(
                resume(node, &mangled, extra).starts_with(&format!("New, {version}")),
                "a mangled {version} ticket must not resume"
            );
        }
    }

    // A reader node cannot serve the HSM API, which writes: refused with a clear error.
    let config_api = site.node_config(
        "api.toml",
        &cert,
        up_addr,
        &format!("[api]\naddress = \"{}\"\n", closed_port()),
    );
    let out = keyward(&["serve", "--config", config_api.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reader node") && err.contains("[api]"),
        "{err}"
    );
    drop(node_b);
    drop(node_a);
}

/// A crypto-user cannot take the proxy's ticket-key labels (the next periods' included) and a
/// key it labels like the proxy's certificate key is its own: across several 2 s rotations,
/// tickets keep resuming and the proxy reports no ticket-key failure.
#[test]
fn a_crypto_user_cannot_squat_ticket_key_labels_and_rotation_keeps_resuming() {
    const PERIOD_S: u64 = 2;
    let site = Site::new();
    let data = site.data();
    init_hsm(&data, "admin-password-1");
    let cert = site.localhost_cert("web");
    let (_up, up) = start_upstream();
    let api_port = free_port();
    let config = site.config(&format!(
        "[admin]\nenabled = false\n\n\
         [api]\naddress = \"127.0.0.1:{api_port}\"\n\n\
         [session_resumption]\nticket_key_rotation_s = {PERIOD_S}\n\n{}\
         [upstream]\nurl = \"http://{up}\"\n",
        listener(&cert, "web", "")
    ));
    let (node, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let ca = data.join("api-ca.pem");
    let login = |user: &str, pw: &str| {
        let body = serde_json::json!({"username": user, "password": pw}).to_string();
        let (s, v) = curl_json(&ca, api, "POST", "/v1/auth/login", None, Some(&body));
        assert_eq!(s, 200, "{v}");
        v["token"].as_str().unwrap().to_owned()
    };
    let admin = login("admin", "admin-password-1");
    let body = serde_json::json!({"username": "mallory", "role": "crypto-user", "password": "mallory-password"});
    let (s, v) = curl_json(
        &ca,
        api,
        "POST",
        "/v1/users",
        Some(&admin),
        Some(&body.to_string()),
    );
    assert_eq!(s, 201, "{v}");
    let mallory = login("mallory", "mallory-password");
    let aes = |label: &str| {
        let body = serde_json::json!({"spec": "aes-256", "template": {"label": label, "attributes": {"encrypt": true, "decrypt": true}}});
        curl_json(
            &ca,
            api,
            "POST",
            "/v1/keys/symmetric",
            Some(&mallory),
            Some(&body.to_string()),
        )
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / PERIOD_S;
    for period in now..now + 5 {
        let (s, v) = aes(&format!("tls-ticket-key-{period}"));
        assert_eq!(
            (s, v["code"].as_str()),
            (403, Some("permission_denied")),
            "{v}"
        );
    }
    // Another user's label is free for mallory: labels are unique per owner.
    let (s, v) = aes("web");
    assert_eq!(s, 201, "{v}");

    // Across three rotations, every new ticket resumes.
    let end = now + 4;
    let mut checked = 0;
    while SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / PERIOD_S
        < end
    {
        let file = site.dir.join(format!("s-{checked}.pem"));
        new_session(addr, &file, "TLSv1.3", &[]);
        let line = resume(addr, &file, &[]);
        assert!(
            line.starts_with("Reused, TLSv1.3"),
            "round {checked}: {line}"
        );
        checked += 1;
    }
    assert!(checked >= 3, "{checked} rounds");
    let log = node.stderr.all();
    assert!(
        !log.iter()
            .any(|l| l.contains("ticket") && (l.contains("WARN") || l.contains("ERROR"))),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("created a session ticket key")),
        "rotation ran: {log:?}"
    );
}

/// Issue 13: `[session_resumption] tls13_tickets` is the number of TLS 1.3 NewSessionTicket
/// messages after a handshake: 1 by default (as browsers use), 2 when configured (as
/// OpenSSL's default), counted in what `openssl s_client -msg` receives.
#[test]
fn tls13_tickets_sets_the_number_of_session_tickets_per_handshake() {
    for (setting, expected) in [("", 1), ("[session_resumption]\ntls13_tickets = 2\n", 2)] {
        let site = Site::new();
        let (_up, up) = start_upstream();
        let cert = site.localhost_cert("web");
        let config = site.config(&format!(
            "{setting}\n{}[upstream]\nurl = \"http://{up}\"\n",
            listener(&cert, "web", "")
        ));
        let (mut p, addrs) = start_serve(&config, 1);
        let out = s_client_request(addrs[0], &["-tls1_3", "-msg"]);
        assert!(out.contains("HTTP/1.1 200"), "{out}");
        let tickets = out
            .lines()
            .filter(|l| l.starts_with("<<<") && l.contains("NewSessionTicket"))
            .count();
        assert_eq!(tickets, expected, "{setting:?}: {out}");
        assert!(p.terminate().success());
    }
}
