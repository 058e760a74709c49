//! Seals, end to end with the real binary: `init --seal shamir|passphrase`, a node that starts
//! sealed (API `503 sealed`, not ready, the proxy not listening), `operator unseal` one share
//! at a time, wrong shares refused without effect, `operator seal` dropping the keys, and
//! `operator rekey` retiring the old shares.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// `keyward ARGS` with `env`, against the node at `addr` (CA `ca`).
fn kw(addr: SocketAddr, ca: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(keyward_bin())
        .args(args)
        .env(
            "KEYWARD_SERVER",
            format!("https://localhost:{}", addr.port()),
        )
        .env("KEYWARD_CA_CERT", ca)
        .env_remove("KEYWARD_USER")
        .env_remove("KEYWARD_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The unseal keys `init` or `rekey` printed.
fn unseal_keys(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("unseal key "))
        .map(|l| l.split_once(": ").unwrap().1.to_owned())
        .collect()
}

fn seal_status(ca: &Path, addr: SocketAddr) -> serde_json::Value {
    let (s, v) = curl_json(ca, addr, "GET", "/v1/sys/seal-status", None, None);
    assert_eq!(s, 200, "{v}");
    v
}

fn login(ca: &Path, addr: SocketAddr, user: &str, password: &str) -> String {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let (s, v) = curl_json(ca, addr, "POST", "/v1/auth/login", None, Some(&body));
    assert_eq!(s, 200, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

fn sign(ca: &Path, addr: SocketAddr, token: &str, key: u64) -> (u16, serde_json::Value) {
    curl_json(
        ca,
        addr,
        "POST",
        "/v1/crypto/sign",
        Some(token),
        Some(&format!(
            r#"{{"key":{key},"mechanism":"ed25519","message":"aGVsbG8="}}"#
        )),
    )
}

fn init(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let pw = data.with_extension("admin.pw");
    std::fs::write(&pw, "admin-password\n").unwrap();
    let out = Command::new(keyward_bin())
        .args(["init", "--data-dir"])
        .arg(data)
        .arg("--admin-password-file")
        .arg(&pw)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_shamir_sealed_node_unseals_with_three_of_five_keys_seals_and_rekeys() {
    let site = Site::new();
    let data = site.data();
    let out = init(
        &data,
        &["--seal", "shamir", "--shares", "5", "--threshold", "3"],
        &[],
    );
    let keys = unseal_keys(&out);
    assert_eq!(keys.len(), 5, "{out}");
    assert!(
        !data.join("master.key").exists(),
        "a shamir seal writes no key file"
    );
    let ca = data.join("api-ca.pem");
    let (mut node, addr) = start_hsm_serve(&data, &[]);

    // Sealed: health answers, readiness and every other route 503.
    let (s, v) = curl_json(&ca, addr, "GET", "/v1/health", None, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("sealed")));
    let (s, v) = curl_json(&ca, addr, "GET", "/v1/ready", None, None);
    assert_eq!((s, v["status"].as_str()), (503, Some("sealed")));
    let body = r#"{"username":"admin","password":"admin-password"}"#;
    let (s, v) = curl_json(&ca, addr, "POST", "/v1/auth/login", None, Some(body));
    assert_eq!((s, v["code"].as_str()), (503, Some("sealed")));
    let v = seal_status(&ca, addr);
    assert_eq!(
        (
            v["sealed"].as_bool(),
            v["type"].as_str(),
            v["threshold"].as_u64(),
            v["shares"].as_u64()
        ),
        (Some(true), Some("shamir"), Some(3), Some(5))
    );

    // One key counts; a wrong key and a repeated key are refused and count nothing.
    let o = kw(addr, &ca, &[], &["operator", "unseal", &keys[0]]);
    assert!(stdout(&o).contains("unseal progress 1/3"), "{}", stderr(&o));
    let mut wrong = keys[1].clone().into_bytes();
    wrong[10] = if wrong[10] == b'A' { b'B' } else { b'A' };
    for bad in [
        String::from_utf8(wrong).unwrap(),
        keys[0].clone(),
        "not-a-key".into(),
    ] {
        let o = kw(addr, &ca, &[], &["operator", "unseal", &bad]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("unseal_key_rejected"), "{}", stderr(&o));
    }
    assert_eq!(seal_status(&ca, addr)["progress"], 1);
    // Two keys leave it sealed; --reset forgets them; then three unseal.
    kw(addr, &ca, &[], &["operator", "unseal", &keys[3]]);
    assert_eq!(seal_status(&ca, addr)["sealed"], true);
    let o = kw(addr, &ca, &[], &["operator", "unseal", "--reset"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(seal_status(&ca, addr)["progress"], 0);
    for k in [&keys[4], &keys[2]] {
        kw(addr, &ca, &[], &["operator", "unseal", k]);
    }
    let o = kw(addr, &ca, &[], &["operator", "unseal", &keys[1]]);
    assert!(stdout(&o).contains("unsealed"), "{}", stderr(&o));
    let (s, v) = curl_json(&ca, addr, "GET", "/v1/ready", None, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")));

    // A crypto-user's key signs.
    let admin = login(&ca, addr, "admin", "admin-password");
    let (s, _) = curl_json(
        &ca,
        addr,
        "POST",
        "/v1/users",
        Some(&admin),
        Some(r#"{"username":"alice","role":"crypto-user","password":"alice-password"}"#),
    );
    assert_eq!(s, 201);
    let alice = login(&ca, addr, "alice", "alice-password");
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
    let key = v["private"]["handle"].as_u64().unwrap();
    let (s, first) = sign(&ca, addr, &alice, key);
    assert_eq!(s, 200, "{first}");

    // Only an admin seals; after it, signing answers 503 sealed.
    let as_alice = [
        ("KEYWARD_USER", "alice"),
        ("KEYWARD_PASSWORD", "alice-password"),
    ];
    let o = kw(addr, &ca, &as_alice, &["operator", "seal"]);
    assert!(stderr(&o).contains("permission_denied"), "{}", stderr(&o));
    let as_admin = [
        ("KEYWARD_USER", "admin"),
        ("KEYWARD_PASSWORD", "admin-password"),
    ];
    let o = kw(addr, &ca, &as_admin, &["operator", "seal", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (s, v) = sign(&ca, addr, &alice, key);
    assert_eq!((s, v["code"].as_str()), (503, Some("sealed")));

    // Unseal again; rekey to 3 keys of which 2 unseal, proving the current seal with 3 keys.
    for k in &keys[..3] {
        kw(addr, &ca, &[], &["operator", "unseal", k]);
    }
    let current = site.dir.join("current-keys");
    std::fs::write(&current, keys[2..].join("\n")).unwrap();
    let o = kw(
        addr,
        &ca,
        &as_admin,
        &[
            "operator",
            "rekey",
            "--seal",
            "shamir",
            "--shares",
            "3",
            "--threshold",
            "2",
            "--current-keys-file",
            current.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let new_keys = unseal_keys(&stdout(&o));
    assert_eq!(new_keys.len(), 3);
    assert_eq!(seal_status(&ca, addr)["generation"], 2);
    kw(addr, &ca, &as_admin, &["operator", "seal"]);
    // The old keys no longer count; two new ones unseal; the key signs as before.
    let o = kw(addr, &ca, &[], &["operator", "unseal", &keys[0]]);
    assert!(stderr(&o).contains("unseal_key_rejected"), "{}", stderr(&o));
    kw(addr, &ca, &[], &["operator", "unseal", &new_keys[2]]);
    kw(addr, &ca, &[], &["operator", "unseal", &new_keys[0]]);
    assert_eq!(seal_status(&ca, addr)["sealed"], false);
    let alice = login(&ca, addr, "alice", "alice-password");
    let (s, v) = sign(&ca, addr, &alice, key);
    // Ed25519 is deterministic: the same key gives the same signature.
    assert_eq!((s, &v["signature"]), (200, &first["signature"]));

    // The audit trail verifies and shows the unseals, the seals and the rekey.
    let admin = login(&ca, addr, "admin", "admin-password");
    let (s, v) = curl_json(&ca, addr, "POST", "/v1/audit/verify", Some(&admin), None);
    assert_eq!(s, 200, "{v}");
    let (_, entries) = curl_json(&ca, addr, "GET", "/v1/audit?limit=1000", Some(&admin), None);
    let events: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for e in ["unseal", "seal", "seal.rekey"] {
        assert!(events.contains(&e), "{e} missing from {events:?}");
    }
    node.terminate();
}

#[test]
fn serve_with_a_passphrase_seal_listens_for_tls_only_while_unsealed() {
    let site = Site::new();
    let data = site.data();
    let pass = site.dir.join("passphrase");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    init(
        &data,
        &[
            "--seal",
            "passphrase",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        &[],
    );
    assert!(data.join("api-tls.key").exists());
    // Local commands open a passphrase-sealed store with KEYWARD_SEAL_PASSPHRASE.
    let local = |args: &[&str], passphrase: &str| {
        Command::new(keyward_bin())
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("KEYWARD_SEAL_PASSPHRASE", passphrase)
            .output()
            .unwrap()
    };
    let o = local(
        &["key", "generate", "--type", "ec-p256", "--label", "web"],
        "wrong passphrase!",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sealed"), "{}", stderr(&o));
    let o = local(
        &["key", "generate", "--type", "ec-p256", "--label", "web"],
        "correct horse battery staple",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cert = site.dir.join("web.pem");
    let o = local(
        &[
            "cert",
            "self-signed",
            "--key",
            "web",
            "--dns",
            "localhost",
            "--out",
            cert.to_str().unwrap(),
        ],
        "correct horse battery staple",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (_upstream, up) = start_upstream();
    let proxy_port = free_port();
    let api_port = free_port();
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:{proxy_port}\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n\n[upstream]\nurl = \"http://{up}\"\n\n[api]\naddress = \"127.0.0.1:{api_port}\"\n",
        cert.display()
    ));
    let mut cmd = Command::new(keyward_bin());
    cmd.args(["serve", "--config"])
        .arg(&config)
        .env("KEYWARD_LOG", "info")
        .env("KEYWARD_ADMIN__ADDRESS", "127.0.0.1:0");
    let mut node = Running::spawn(cmd);
    node.stderr.wait_for("serving the HSM API");
    let admin = admin_addr(&node);
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{proxy_port}").parse().unwrap();
    let ca = data.join("api-ca.pem");

    // Sealed: the proxy does not listen, /readyz is not ready, the API answers 503.
    assert!(
        std::net::TcpStream::connect(proxy).is_err(),
        "the proxy listens while sealed"
    );
    assert!(http_get(admin, "/readyz").starts_with("HTTP/1.1 503"));
    let (s, v) = curl_json(&ca, api, "GET", "/v1/keys", None, None);
    assert_eq!((s, v["code"].as_str()), (503, Some("sealed")));

    // A wrong passphrase is refused and changes nothing; the right one unseals.
    let wrong = site.dir.join("wrong");
    std::fs::write(&wrong, "incorrect horse battery\n").unwrap();
    let o = kw(
        api,
        &ca,
        &[],
        &[
            "operator",
            "unseal",
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    assert_eq!(seal_status(&ca, api)["sealed"], true);
    let o = kw(
        api,
        &ca,
        &[],
        &[
            "operator",
            "unseal",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert!(stdout(&o).contains("unsealed"), "{}", stderr(&o));
    wait_for_port(proxy);
    let got = Curl::https(proxy, "/", &cert).run();
    assert_eq!(got.status, 200, "{}", got.stderr);
    eventually(DEADLINE, "/readyz ready", || {
        http_get(admin, "/readyz").starts_with("HTTP/1.1 200")
    });

    // Sealed again (admin): the proxy stops listening and is not ready.
    let o = kw(
        api,
        &ca,
        &[
            ("KEYWARD_USER", "admin"),
            ("KEYWARD_PASSWORD", "admin-password"),
        ],
        &["operator", "seal"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    eventually(DEADLINE, "the proxy closes its listener", || {
        std::net::TcpStream::connect(proxy).is_err()
    });
    assert!(http_get(admin, "/readyz").starts_with("HTTP/1.1 503"));
    // And unsealed again, it serves again.
    kw(
        api,
        &ca,
        &[],
        &[
            "operator",
            "unseal",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    wait_for_port(proxy);
    assert_eq!(Curl::https(proxy, "/", &cert).run().status, 200);
    let status = node.terminate();
    assert!(status.success(), "{:?}", node.stderr.all());
}

#[test]
fn a_key_file_seal_can_live_outside_the_data_directory() {
    let site = Site::new();
    let data = site.data();
    let secrets = site.dir.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let key_file: PathBuf = secrets.join("master.key");
    // A key made outside (as a Kubernetes Secret would be), mode 0600.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .unwrap();
        std::io::Write::write_all(&mut f, &[7u8; 32]).unwrap();
    }
    let env = [("KEYWARD_SEAL__KEY_FILE", key_file.to_str().unwrap())];
    init(&data, &[], &env);
    assert!(!data.join("master.key").exists());
    let list = |env: &[(&str, &str)]| {
        Command::new(keyward_bin())
            .args(["key", "list", "--data-dir"])
            .arg(&data)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let o = list(&env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("api-tls"));
    // Without it (the default path has no key) the store does not open.
    assert!(!list(&[]).status.success());
    // A key file others may read is refused by name.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = list(&env);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(key_file.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_data_key_rotation_under_signing_load_fails_no_sign_and_resumes_after_kill_9() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let site = Site::new();
    let data = site.data();
    init_hsm(&data, "admin-password");
    // 300 key pairs of alice, made in-process (fast).
    let handle = {
        let hsm = open_hsm(&data);
        let hour = std::time::Duration::from_secs(3600);
        let (admin, _) = hsm
            .login(
                "admin",
                &keyward_hsm::Password::from("admin-password"),
                hour,
            )
            .unwrap();
        hsm.create_user(
            &admin,
            "alice",
            keyward_hsm::Role::CryptoUser,
            &keyward_hsm::Password::from("alice-password"),
        )
        .unwrap();
        let (alice, _) = hsm
            .login(
                "alice",
                &keyward_hsm::Password::from("alice-password"),
                hour,
            )
            .unwrap();
        let mut first = 0;
        for i in 0..300 {
            let (private, _) = hsm
                .generate_key_pair(
                    &alice,
                    keyward_hsm::KeySpec::Ed25519,
                    &keyward_hsm::KeyTemplate::labelled(&format!("k{i}"))
                        .with(keyward_hsm::AttributeName::Sign, true),
                    &keyward_hsm::KeyTemplate::labelled(&format!("k{i}"))
                        .with(keyward_hsm::AttributeName::Verify, true),
                )
                .unwrap();
            if i == 0 {
                first = private.handle.0;
            }
        }
        first
    };
    let ca = data.join("api-ca.pem");
    let as_admin = [
        ("KEYWARD_USER", "admin"),
        ("KEYWARD_PASSWORD", "admin-password"),
    ];
    let start = |batch: &str, pause_ms: &str| {
        let mut cmd = Command::new(keyward_bin());
        cmd.args(["hsm", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("KEYWARD_LOG", "info")
            .env("KEYWARD_ROTATION_BATCH", batch)
            .env("KEYWARD_ROTATION_PAUSE_MS", pause_ms);
        let node = Running::spawn(cmd);
        let line = node.stderr.wait_for("serving the HSM API");
        let addr: SocketAddr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap()
            .parse()
            .unwrap();
        (node, addr)
    };

    // A rotation under signing load: no sign fails.
    let (mut node, addr) = start("20", "0");
    let alice = login(&ca, addr, "alice", "alice-password");
    let stop = Arc::new(AtomicBool::new(false));
    let (signed, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, signed, failed, ca) = (stop.clone(), signed.clone(), failed.clone(), ca.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (s, _) = sign(&ca, addr, &alice, handle);
                if s == 200 { &signed } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let o = kw(
        addr,
        &ca,
        &as_admin,
        &["operator", "rotate", "--wait", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let done: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (
            done["done"].as_bool(),
            done["current_version"].as_u64(),
            done["pending_records"].as_u64()
        ),
        (Some(true), Some(2), Some(0)),
        "{done}"
    );
    assert_eq!(done["versions"], serde_json::json!([2]));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert!(signed.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "signs failed during the rotation"
    );

    node.terminate();

    // A second rotation, throttled (10 records per batch, 50 ms apart: about 5 s), killed
    // (SIGKILL) halfway: the next start finishes it.
    let (mut node, addr) = start("10", "50");
    let o = kw(addr, &ca, &as_admin, &["operator", "rotate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for_count(&node.stderr, "records rewritten", 3);
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    {
        let hsm = open_hsm(&data);
        let halfway = hsm.rotation_status().unwrap();
        assert_eq!(halfway.versions.len(), 2, "{halfway:?}");
        assert!(halfway.pending_records > 0, "{halfway:?}");
    }
    let (mut node, _addr) = start("50", "0");
    node.stderr.wait_for("data-key rotation finished");
    node.terminate();
    let hsm = open_hsm(&data);
    let end = hsm.rotation_status().unwrap();
    assert_eq!(
        (
            end.current_version,
            end.versions.clone(),
            end.pending_records
        ),
        (3, vec![3], 0)
    );
}

#[test]
fn each_node_of_a_cluster_unseals_on_its_own_with_the_same_keys_and_follows_a_rekey_and_a_rotation()
{
    let pg = keyward_keystore::test_util::TestPostgres::shared();
    let url = pg.url(&pg.new_database());
    let site = Site::new();
    let (a, b) = (site.dir.join("a"), site.dir.join("b"));
    let out = init(
        &a,
        &[
            "--store",
            &url,
            "--seal",
            "shamir",
            "--shares",
            "3",
            "--threshold",
            "2",
        ],
        &[],
    );
    let keys = unseal_keys(&out);
    // The second node: the API's key and certificate (no master key file: there is none).
    std::fs::create_dir(&b).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o700)).unwrap();
    for f in ["api-tls.key", "api-ca.pem"] {
        std::fs::copy(a.join(f), b.join(f)).unwrap();
    }
    let ca = a.join("api-ca.pem");
    let (_na, addr_a) = start_hsm_serve(&a, &["--store", &url]);
    let (_nb, addr_b) = start_hsm_serve(&b, &["--store", &url]);
    for k in &keys[..2] {
        kw(addr_a, &ca, &[], &["operator", "unseal", k]);
    }
    assert_eq!(seal_status(&ca, addr_a)["sealed"], false);
    assert_eq!(
        seal_status(&ca, addr_b)["sealed"],
        true,
        "unsealing one node unseals only it"
    );
    for k in [&keys[2], &keys[0]] {
        kw(addr_b, &ca, &[], &["operator", "unseal", k]);
    }
    assert_eq!(seal_status(&ca, addr_b)["sealed"], false);

    // A rotation through A: B reads records A rewrote (its keys reload when the data-key
    // record moves) and writes under the new version.
    let as_admin = [
        ("KEYWARD_USER", "admin"),
        ("KEYWARD_PASSWORD", "admin-password"),
    ];
    let o = kw(
        addr_a,
        &ca,
        &as_admin,
        &["operator", "rotate", "--wait", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let admin_b = login(&ca, addr_b, "admin", "admin-password");
    let (s, _) = curl_json(
        &ca,
        addr_b,
        "POST",
        "/v1/users",
        Some(&admin_b),
        Some(r#"{"username":"bob","role":"crypto-user","password":"bob-password"}"#),
    );
    assert_eq!(s, 201);
    login(&ca, addr_a, "bob", "bob-password");
    let (s, v) = curl_json(
        &ca,
        addr_a,
        "GET",
        "/v1/sys/rotation",
        Some(&login(&ca, addr_a, "admin", "admin-password")),
        None,
    );
    assert_eq!(
        (s, v["done"].as_bool(), v["pending_records"].as_u64()),
        (200, Some(true), Some(0)),
        "{v}"
    );

    // A rekey through A; B, sealed afterwards, takes the new keys only.
    let current = site.dir.join("current");
    std::fs::write(&current, keys[..2].join("\n")).unwrap();
    let o = kw(
        addr_a,
        &ca,
        &as_admin,
        &[
            "operator",
            "rekey",
            "--seal",
            "shamir",
            "--shares",
            "3",
            "--threshold",
            "2",
            "--current-keys-file",
            current.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let new_keys = unseal_keys(&stdout(&o));
    assert_eq!(seal_status(&ca, addr_b)["generation"], 2);
    let o = kw(addr_b, &ca, &as_admin, &["operator", "seal"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kw(addr_b, &ca, &[], &["operator", "unseal", &keys[0]]);
    assert!(
        stderr(&o).contains("unseal_key_rejected"),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
    for k in &new_keys[1..] {
        kw(addr_b, &ca, &[], &["operator", "unseal", k]);
    }
    assert_eq!(seal_status(&ca, addr_b)["sealed"], false);
    login(&ca, addr_b, "bob", "bob-password");
}

#[test]
fn a_refused_init_leaves_nothing_behind() {
    let site = Site::new();
    let data = site.data();
    let short = site.dir.join("short");
    std::fs::write(&short, "short\n").unwrap();
    let out = Command::new(keyward_bin())
        .args(["init", "--seal", "passphrase", "--data-dir"])
        .arg(&data)
        .arg("--passphrase-file")
        .arg(&short)
        .env("KEYWARD_ADMIN_PASSWORD", "admin-password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 12 characters"),
        "{}",
        stderr(&out)
    );
    assert!(!data.join("keyward.sqlite3").exists());
    // A seal key file whose folder does not exist: refused before anything is made.
    let out = Command::new(keyward_bin())
        .args(["init", "--data-dir"])
        .arg(&data)
        .arg("--seal-key-file")
        .arg(site.dir.join("missing/master.key"))
        .env("KEYWARD_ADMIN_PASSWORD", "admin-password")
        .output()
        .unwrap();
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!data.join("keyward.sqlite3").exists());
    let good = site.dir.join("good");
    std::fs::write(&good, "a long enough passphrase\n").unwrap();
    init(
        &data,
        &[
            "--seal",
            "passphrase",
            "--passphrase-file",
            good.to_str().unwrap(),
        ],
        &[],
    );
}

#[test]
fn repeated_wrong_unseal_keys_from_one_address_are_throttled() {
    let site = Site::new();
    let data = site.data();
    let keys = unseal_keys(&init(
        &data,
        &["--seal", "shamir", "--shares", "3", "--threshold", "2"],
        &[],
    ));
    let ca = data.join("api-ca.pem");
    let (_node, addr) = start_hsm_serve(&data, &[]);
    let wrong = r#"{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
    for i in 1..=10 {
        let (s, v) = curl_json(&ca, addr, "POST", "/v1/sys/unseal", None, Some(wrong));
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("unseal_key_rejected")),
            "attempt {i}"
        );
    }
    let got = Curl::https(addr, "/v1/sys/unseal", &ca)
        .args(&[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            wrong,
            "-D",
            "-",
        ])
        .run();
    assert_eq!(got.status, 429, "{}", got.body);
    assert!(
        got.body.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        got.body
    );
    // Nothing was counted meanwhile; after the wait, the right keys unseal.
    assert_eq!(seal_status(&ca, addr)["progress"], 0);
    eventually(DEADLINE, "the throttle lets a key through", || {
        let body = format!(r#"{{"key":"{}"}}"#, keys[0]);
        curl_json(&ca, addr, "POST", "/v1/sys/unseal", None, Some(&body)).0 == 200
    });
    let o = kw(addr, &ca, &[], &["operator", "unseal", &keys[1]]);
    assert!(stdout(&o).contains("unsealed"), "{}", stderr(&o));
}
