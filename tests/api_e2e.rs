//! The HSM API through the real binary: `keyward init`, `keyward hsm serve`, and curl.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::*;

#[test]
fn init_then_serve_the_api_over_tls_with_an_hsm_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hsm");
    let out = init_hsm(&data, "admin-password");
    let pw_file = admin_password_file(&data);
    assert!(
        out.contains("api-ca.pem") && !out.contains("admin-password"),
        "{out}"
    );
    // A second init refuses.
    assert!(!keyward(&[
        "init",
        "--data-dir",
        &data.display().to_string(),
        "--admin-password-file",
        &pw_file.display().to_string()
    ])
    .status
    .success());

    let (_server, addr) = start_hsm_serve(&data, &[]);
    let ca = data.join("api-ca.pem");

    let (s, v) = curl_json(&ca, addr, "GET", "/v1/health", None, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = login_waiting(&ca, addr, "admin", "admin-password");
    assert_eq!(s, 200, "{v}");
    let admin = v["token"].as_str().unwrap().to_owned();
    let (s, _) = curl_json(
        &ca,
        addr,
        "POST",
        "/v1/users",
        Some(&admin),
        Some(r#"{"username":"alice","role":"crypto-user","password":"alice-password"}"#),
    );
    assert_eq!(s, 201);
    let (_, v) = login_waiting(&ca, addr, "alice", "alice-password");
    let alice = v["token"].as_str().unwrap().to_owned();
    let (s, v) = curl_json(
        &ca,
        addr,
        "POST",
        "/v1/keys/asymmetric-pair",
        Some(&alice),
        Some(
            r#"{"spec":"ed25519","private":{"label":"k","attributes":{"sign":true}},"public":{"label":"k","attributes":{"verify":true}}}"#,
        ),
    );
    assert_eq!(s, 201, "{v}");
    let k = v["private"]["handle"].as_u64().unwrap();
    let (s, v) = curl_json(
        &ca,
        addr,
        "POST",
        "/v1/crypto/sign",
        Some(&alice),
        Some(&format!(
            r#"{{"key":{k},"mechanism":"ed25519","message":"aGVsbG8="}}"#
        )),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["signature"].as_str().unwrap().len(),
        88,
        "64 bytes in base64"
    );
    // The admin cannot use keys; alice cannot manage users; a forged token is refused.
    let (s, v) = curl_json(
        &ca,
        addr,
        "POST",
        "/v1/crypto/sign",
        Some(&admin),
        Some(&format!(
            r#"{{"key":{k},"mechanism":"ed25519","message":"aGVsbG8="}}"#
        )),
    );
    assert_eq!((s, v["code"].as_str()), (403, Some("permission_denied")));
    let (s, _) = curl_json(&ca, addr, "GET", "/v1/audit", Some(&alice), None);
    assert_eq!(s, 403);
    let (s, _) = curl_json(&ca, addr, "GET", "/v1/keys", Some("forged"), None);
    assert_eq!(s, 401);
    // The API's TLS key is an HSM key, not extractable.
    let (_, v) = curl_json(
        &ca,
        addr,
        "GET",
        "/v1/keys?label=api-tls&class=private",
        Some(&admin),
        None,
    );
    assert_eq!(v["keys"][0]["attributes"]["extractable"], false);
    // Five bad passwords lock alice; locked, she answers as any wrong password does.
    fail_logins(&ca, addr, "alice", 5);
    let (s, v) = login_waiting(&ca, addr, "alice", "alice-password");
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("authentication_failed"))
    );
    let (s, users) = curl_json(&ca, addr, "GET", "/v1/users", Some(&admin), None);
    assert_eq!(s, 200);
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "alice" && u["locked"] == true));
}

/// `POST /v1/auth/login`, waiting out `429` answers (the per-name throttle).
fn login_waiting(
    ca: &Path,
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        let (s, v) = curl_json(ca, addr, "POST", "/v1/auth/login", None, Some(&body));
        if s != 429 {
            return (s, v);
        }
        assert!(std::time::Instant::now() < end, "throttled for too long");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `n` failed logins of `user`, each answered 401.
fn fail_logins(ca: &Path, addr: SocketAddr, user: &str, n: usize) {
    for i in 1..=n {
        let (s, _) = login_waiting(ca, addr, user, "wrong-password");
        assert_eq!(s, 401, "attempt {i}");
    }
}

fn openssl(args: &[&str]) {
    let (ok, _, err) = run("openssl", args);
    assert!(ok, "openssl {args:?}: {err}");
}

/// Makes a client certificate for `cn` signed by the CA in `dir` (`ca.pem`, `ca.key`).
fn client_cert(dir: &Path, cn: &str) -> (String, String) {
    let key = dir.join(format!("{cn}.key")).display().to_string();
    let csr = dir.join(format!("{cn}.csr")).display().to_string();
    let pem = dir.join(format!("{cn}.pem")).display().to_string();
    let subj = format!("/CN={cn}");
    openssl(&[
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
        &subj,
    ]);
    let ext = dir.join("client.ext");
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
    let (ca, ca_key) = (
        dir.join("ca.pem").display().to_string(),
        dir.join("ca.key").display().to_string(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
        "-extfile",
        &ext.display().to_string(),
    ]);
    (pem, key)
}

#[test]
fn a_client_certificate_from_the_configured_ca_logs_its_user_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("hsm");
    init_hsm(&data, "admin-password");
    let ca_dir = dir.join("ca");
    std::fs::create_dir(&ca_dir).unwrap();
    let (ca, ca_key) = (
        ca_dir.join("ca.pem").display().to_string(),
        ca_dir.join("ca.key").display().to_string(),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-subj",
        "/CN=client-ca",
        "-days",
        "2",
    ]);
    let (alice_pem, alice_key) = client_cert(&ca_dir, "alice");
    let (nobody_pem, nobody_key) = client_cert(&ca_dir, "nobody");
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &other.join("ca.key").display().to_string(),
        "-out",
        &other.join("ca.pem").display().to_string(),
        "-subj",
        "/CN=other-ca",
        "-days",
        "2",
    ]);
    let (forged_pem, forged_key) = client_cert(&other, "alice");

    let (_server, addr) = start_hsm_serve(&data, &["--client-ca", &ca]);
    let api_ca = data.join("api-ca.pem");
    let (_, v) = curl_json(
        &api_ca,
        addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(r#"{"username":"admin","password":"admin-password"}"#),
    );
    let admin = v["token"].as_str().unwrap().to_owned();
    let (s, _) = curl_json(
        &api_ca,
        addr,
        "POST",
        "/v1/users",
        Some(&admin),
        Some(r#"{"username":"alice","role":"crypto-user","password":"alice-password"}"#),
    );
    assert_eq!(s, 201);

    let with_cert = |pem: &str, key: &str, path: &str| {
        Curl::https(addr, path, &api_ca)
            .args(&["--cert", pem, "--key", key])
            .run()
    };
    // alice's certificate is alice, without a password.
    let got = with_cert(&alice_pem, &alice_key, "/v1/keys");
    assert!(got.ok && got.status == 200, "{got:?}");
    // ... a crypto-user: the admin-only user list is refused.
    let got = with_cert(&alice_pem, &alice_key, "/v1/users");
    assert!(
        got.ok && got.status == 403 && got.body.contains("permission_denied"),
        "{got:?}"
    );
    // A certificate of a user that does not exist logs nobody in.
    let got = with_cert(&nobody_pem, &nobody_key, "/v1/keys");
    assert!(got.ok && got.status == 401, "{got:?}");
    // A certificate from another CA does not even complete the handshake.
    assert!(!with_cert(&forged_pem, &forged_key, "/v1/keys").ok);
    // No certificate and no token: 401; passwords still work.
    let (s, _) = curl_json(&api_ca, addr, "GET", "/v1/keys", None, None);
    assert_eq!(s, 401);
}

#[test]
fn a_second_writer_is_refused_and_a_locked_out_admin_is_recovered_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hsm");
    let d = data.display().to_string();
    init_hsm(&data, "admin-password");
    let (mut server, addr) = start_hsm_serve(&data, &[]);
    let ca = data.join("api-ca.pem");
    // Another writer on the same data directory is refused; the node keeps working.
    let out = keyward(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "local",
        "--data-dir",
        &d,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another keyward process"));
    // Five bad passwords lock the admin (for 15 minutes by default).
    fail_logins(&ca, addr, "admin", 5);
    let (s, _) = login_waiting(&ca, addr, "admin", "admin-password");
    assert_eq!(s, 401);
    // Recovery needs the node stopped (it writes), then works offline.
    let new_pw = tmp.path().join("new.pw");
    std::fs::write(&new_pw, "new-admin-password\n").unwrap();
    let args = [
        "recover",
        "reset-password",
        "--data-dir",
        &d,
        "--name",
        "admin",
        "--password-file",
        &new_pw.display().to_string(),
    ];
    assert!(
        !keyward(&args).status.success(),
        "refused while the node runs"
    );
    assert!(server.terminate().success());
    keyward_ok(&args);
    let (_server, addr) = start_hsm_serve(&data, &[]);
    let (s, v) = curl_json(
        &ca,
        addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(r#"{"username":"admin","password":"new-admin-password"}"#),
    );
    assert_eq!(s, 200, "{v}");
    let admin = v["token"].as_str().unwrap().to_owned();
    let (_, report) = curl_json(&ca, addr, "POST", "/v1/audit/verify", Some(&admin), None);
    assert_eq!(report["intact"], true);
}
