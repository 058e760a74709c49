//! The HSM on a PostgreSQL store (`--store postgres://…`, `[hsm] store`), through the real
//! binary against a real PostgreSQL server that the test process starts
//! (`keyward_keystore::test_util::TestPostgres`), one database per test.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use keyward_keystore::test_util::TestPostgres;
use support::*;

/// A new database on the test server; returns its name and URL.
fn new_store() -> (String, String) {
    let pg = TestPostgres::shared();
    let db = pg.new_database();
    let url = pg.url(&db);
    (db, url)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// `keyward init --data-dir DIR --store URL` with the admin password `admin-password`.
fn init(dir: &Path, url: &str) -> std::process::Output {
    let pw = dir.with_extension("admin.pw");
    std::fs::write(&pw, "admin-password\n").unwrap();
    keyward(&[
        "init",
        "--data-dir",
        &p(dir),
        "--store",
        url,
        "--admin-password-file",
        &p(&pw),
    ])
}

/// [`init`], which must succeed.
fn init_ok(dir: &Path, url: &str) {
    let out = init(dir, url);
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr_of(args: &[&str]) -> String {
    let out = keyward(args);
    assert!(!out.status.success(), "keyward {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn init_keys_and_restarts_keep_everything_in_the_database_not_the_data_dir() {
    let pg = TestPostgres::shared();
    let (db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node1");
    init_ok(&data, &url);
    assert!(data.join("master.key").is_file());
    assert!(
        !data.join("keyward.sqlite3").exists(),
        "no SQLite store beside a PostgreSQL one"
    );
    let records: u64 = pg
        .psql(&db, "SELECT count(*) FROM keyward_records")
        .parse()
        .unwrap();
    assert!(records > 0, "init wrote its records to PostgreSQL");

    let out = keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "web",
        "--json",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let handle = serde_json::from_str::<serde_json::Value>(&out).unwrap()["private"]["handle"]
        .as_u64()
        .unwrap();

    // The node serves from the database. Every node is a writer: a key generated from the
    // command line while it runs is written beside it and reaches it.
    let (mut node, _addr) = start_hsm_serve(&data, &["--store", &url]);
    keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "other",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    node.terminate();

    // After a restart the key is still there, read from the database.
    let (mut node, _addr) = start_hsm_serve(&data, &["--store", &url]);
    node.terminate();
    let list = keyward_ok(&[
        "key",
        "list",
        "--json",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let keys: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["handle"].as_u64() == Some(handle) && k["attributes"]["label"] == "web"),
        "{list}"
    );
}

#[test]
fn a_second_init_or_a_node_without_the_master_key_is_told_what_to_do() {
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let second = tmp.path().join("second");
    init_ok(&first, &url);
    let out = init(&second, &url);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("already holds a Keyward store")
            && err.contains("master.key"),
        "{err}"
    );
    assert!(
        !second.join("master.key").exists(),
        "a refused init writes no master key"
    );

    let err = stderr_of(&["key", "list", "--data-dir", &p(&second), "--store", &url]);
    assert!(
        err.contains("no master key") && err.contains("copy of that master.key"),
        "{err}"
    );

    // With a copy of the master key the second node opens the same store.
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(first.join("master.key"), second.join("master.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&second, std::fs::Permissions::from_mode(0o700)).unwrap();
    keyward_ok(&["key", "list", "--data-dir", &p(&second), "--store", &url]);

    // A different master key cannot open it.
    let third = tmp.path().join("third");
    let (_other_db, other_url) = new_store();
    init_ok(&third, &other_url);
    let err = stderr_of(&["key", "list", "--data-dir", &p(&third), "--store", &url]);
    assert!(err.contains("cannot unseal"), "{err}");
}

#[test]
fn an_unreachable_database_fails_fast_with_no_password_shown() {
    let port = closed_port().port();
    let tmp = tempfile::tempdir().unwrap();
    let pw_file = tmp.path().join("store.pw");
    std::fs::write(&pw_file, "db-secret\n").unwrap();
    let url = format!("postgres://keyward:url-secret@127.0.0.1:{port}/keyward");
    let started = std::time::Instant::now();
    let err = stderr_of(&[
        "init",
        "--data-dir",
        &p(&tmp.path().join("d")),
        "--store",
        &url,
        "--store-password-file",
        &p(&pw_file),
    ]);
    assert!(err.contains("store database unavailable"), "{err}");
    assert!(
        !err.contains("url-secret") && !err.contains("db-secret"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "a refused connection is reported at once"
    );
    assert!(!tmp.path().join("d/master.key").exists());
}

/// `keyward ARGS --server URL --ca-cert CA --user USER --password PW`.
fn remote(url: &str, ca: &Path, user: &str, password: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(keyward_bin())
        .args(args)
        .args(["--server", url, "--ca-cert"])
        .arg(ca)
        .args(["--user", user, "--password", password])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .output()
        .expect("run keyward")
}

fn remote_ok(url: &str, ca: &Path, user: &str, password: &str, args: &[&str]) -> String {
    let out = remote(url, ca, user, password, args);
    assert!(
        out.status.success(),
        "keyward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn with_the_database_down_signing_goes_on_writes_get_503_and_the_node_recovers_alone() {
    let pg = TestPostgres::own();
    let url = pg.url(&pg.new_database());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node");
    init_ok(&data, &url);
    let (_node, addr) = start_hsm_serve(&data, &["--store", &url]);
    let api = format!("https://localhost:{}", addr.port());
    let ca = data.join("api-ca.pem");
    let alice_pw = tmp.path().join("alice.pw");
    std::fs::write(&alice_pw, "alice-password\n").unwrap();
    remote_ok(
        &api,
        &ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let generate = |label: &str| {
        remote(
            &api,
            &ca,
            "alice",
            "alice-password",
            &[
                "key",
                "generate-asymmetric-pair",
                "ec",
                "--curve",
                "p256",
                "--label",
                label,
                "--private-attr",
                "sign=true",
                "--public-attr",
                "verify=true",
                "--json",
            ],
        )
    };
    let out = generate("before");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pair: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = pair["private"]["handle"].as_u64().unwrap().to_string();
    let msg = tmp.path().join("msg");
    std::fs::write(&msg, b"signed while the database is down\n").unwrap();
    let sig = tmp.path().join("sig");
    // A session made before the outage (`login --save`): logging in writes the store.
    let token = tmp.path().join("session.json");
    remote_ok(
        &api,
        &ca,
        "alice",
        "alice-password",
        &["login", "--save", "--token-file", &p(&token)],
    );
    let sign = || {
        let out = std::process::Command::new(keyward_bin())
            .args([
                "crypto",
                "sign",
                "--key",
                &key,
                "--mechanism",
                "ecdsa-sha256",
                "--in",
                &p(&msg),
                "--out",
                &p(&sig),
                "--server",
                &api,
                "--ca-cert",
                &p(&ca),
                "--token-file",
                &p(&token),
            ])
            .env_remove("KEYWARD_USER")
            .env_remove("KEYWARD_PASSWORD")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sign();

    let ready = || curl_json(&ca, addr, "GET", "/v1/ready", None, None);
    assert_eq!(ready().0, 200);

    // A signing load (the SDK, logged in before the outage) runs through the whole outage.
    let key_handle: u64 = key.parse().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (logged_in_tx, logged_in) = std::sync::mpsc::channel();
    let load = {
        let (stop, ca, api) = (stop.clone(), ca.clone(), api.clone());
        std::thread::spawn(move || {
            use keyward_client::{Client, ClientConfig, SignItem};
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c =
                    Client::new(ClientConfig::new([api]).ca_cert_pem_file(&ca).unwrap()).unwrap();
                c.login("alice", "alice-password").await.unwrap();
                let item = SignItem::message(key_handle, "ecdsa-sha256", b"load".to_vec());
                c.sign(&item).await.unwrap();
                logged_in_tx.send(()).unwrap();
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match c.sign(&item).await {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (ok, failed)
            })
        })
    };

    logged_in
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the load logged in");
    pg.stop();
    let down_since = std::time::Instant::now();
    let (status, body) = ready();
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("store unavailable")),
        "not ready while the database is down"
    );
    std::fs::remove_file(&sig).unwrap();
    sign();
    assert!(sig.is_file(), "signed from memory with the database down");
    let out = generate("during");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("store_unavailable"),
        "a write with the database down: {err}"
    );

    // The outage lasts 10 s (the scenario's length, not a wait for something).
    while down_since.elapsed() < std::time::Duration::from_secs(10) {
        assert_eq!(ready().0, 503);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    pg.start();
    assert_eq!(ready().0, 200, "ready again, without a restart");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (signed, failed) = load.join().unwrap();
    assert!(
        failed.is_empty(),
        "signatures failed during the outage: {failed:?}"
    );
    assert!(signed > 100, "only {signed} signatures in 10 s");
    let out = generate("after");
    assert!(
        out.status.success(),
        "the node writes again without a restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = remote_ok(
        &api,
        &ca,
        "alice",
        "alice-password",
        &["key", "list", "--json"],
    );
    assert!(
        list.contains("\"after\"") && !list.contains("\"during\""),
        "{list}"
    );
}

#[test]
fn two_proxies_serve_tls_with_a_key_from_the_postgres_store() {
    let (_db, url) = new_store();
    let site = Site::new();
    let data = site.data();
    keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "web",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let cert = site.dir.join("web.pem");
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        "web",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        &p(&cert),
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    assert!(!data.join("keyward.sqlite3").exists());
    let (_up, up) = start_upstream();
    let config = site.dir.join("keyward.toml");
    std::fs::write(
        &config,
        format!(
            "[hsm]\ndata_dir = \"data\"\nstore = \"{url}\"\n\n{}[upstream]\nurl = \"http://{up}\"\n",
            listener(&cert, "web", "")
        ),
    )
    .unwrap();
    let (a, a_addrs) = start_serve(&config, 1);
    let (b, b_addrs) = start_serve(&config, 1);
    assert!(
        b.stderr.all().iter().all(|l| !l.contains("reader node")),
        "on a cluster store every proxy is a full node: {:?}",
        b.stderr.all()
    );
    for addr in [a_addrs[0], b_addrs[0]] {
        let out = Curl::https(addr, "/", &cert).run();
        assert_eq!(out.status, 200, "{addr}: {out:?}");
    }
    drop((a, b));
}

/// Copies a node's data directory (master key, API TLS files) for another node of its cluster.
fn copy_data_dir(from: &Path, to: &Path) {
    let (ok, _, err) = run("cp", &["-a", &p(from), &p(to)]);
    assert!(ok, "{err}");
}

#[test]
fn three_nodes_share_keys_users_and_lockouts() {
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("node1");
    init_ok(&first, &url);
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let data = tmp.path().join(format!("node{i}"));
        if i > 1 {
            copy_data_dir(&first, &data);
        }
        let (server, addr) = start_hsm_serve(&data, &["--store", &url]);
        nodes.push((server, format!("https://localhost:{}", addr.port()), addr));
    }
    let ca = first.join("api-ca.pem");
    let api = |i: usize| nodes[i].1.clone();
    let within = std::time::Duration::from_secs(10);

    // A user created on node 2 logs in on node 3.
    let alice_pw = tmp.path().join("alice.pw");
    std::fs::write(&alice_pw, "alice-password\n").unwrap();
    remote_ok(
        &api(1),
        &ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let login = |i: usize, password: &str| remote(&api(i), &ca, "alice", password, &["login"]);
    eventually(within, "alice logs in on node 3", || {
        login(2, "alice-password").status.success()
    });

    // A key generated on node 1 signs on nodes 2 and 3.
    let out = remote_ok(
        &api(0),
        &ca,
        "alice",
        "alice-password",
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--curve",
            "p256",
            "--label",
            "shared",
            "--private-attr",
            "sign=true",
            "--public-attr",
            "verify=true",
            "--json",
        ],
    );
    let key = serde_json::from_str::<serde_json::Value>(&out).unwrap()["private"]["handle"]
        .as_u64()
        .unwrap()
        .to_string();
    let msg = tmp.path().join("msg");
    std::fs::write(&msg, b"one key, three nodes\n").unwrap();
    for i in [1, 2] {
        let sig = tmp.path().join(format!("sig{i}"));
        eventually(within, "the key signs on another node", || {
            remote(
                &api(i),
                &ca,
                "alice",
                "alice-password",
                &[
                    "crypto",
                    "sign",
                    "--key",
                    &key,
                    "--mechanism",
                    "ecdsa-sha256",
                    "--in",
                    &p(&msg),
                    "--out",
                    &p(&sig),
                ],
            )
            .status
            .success()
        });
    }

    // A session made on node 1 works on node 3, and its logout on node 1 ends it there too.
    let (status, body) = curl_json(
        &ca,
        nodes[0].2,
        "POST",
        "/v1/auth/login",
        None,
        Some(r#"{"username":"alice","password":"alice-password"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let keys_on = |i: usize| curl_json(&ca, nodes[i].2, "GET", "/v1/keys", Some(&token), None).0;
    eventually(within, "node 1's session works on node 3", || {
        keys_on(2) == 200
    });
    let (status, _) = curl_json(
        &ca,
        nodes[0].2,
        "POST",
        "/v1/auth/logout",
        Some(&token),
        None,
    );
    assert!((200..300).contains(&status), "logout: {status}");
    eventually(within, "the logout reaches node 3", || keys_on(2) == 401);
    assert_eq!(keys_on(1), 401, "and node 2");

    // Five failed logins spread over the three nodes lock the account everywhere.
    for i in [0, 1, 2, 0, 1] {
        let out = login(i, "wrong-password");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
    }
    // Locked: the right password gets a wrong password's answer on every node, and every
    // node's admin sees the lock.
    for i in 0..3 {
        let out = login(i, "alice-password");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("authentication_failed"),
            "node {}: {err}",
            i + 1
        );
        let users = remote_ok(
            &api(i),
            &ca,
            "admin",
            "admin-password",
            &["user", "list", "--json"],
        );
        let users: serde_json::Value = serde_json::from_str(&users).unwrap();
        assert!(
            users
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["username"] == "alice" && u["locked"] == true),
            "node {}: {users}",
            i + 1
        );
    }
    // Every node's writes went into one audit chain, which verifies on every node.
    for i in 0..3 {
        let out = remote_ok(
            &api(i),
            &ca,
            "admin",
            "admin-password",
            &["audit", "verify"],
        );
        assert!(out.contains("intact"), "node {}: {out}", i + 1);
    }

    // `keyward cluster status`: three nodes up, each caught up with the store's sequence.
    let status = || -> serde_json::Value {
        let out = keyward_ok(&[
            "cluster",
            "status",
            "--json",
            "--data-dir",
            &p(&first),
            "--store",
            &url,
        ]);
        serde_json::from_str(&out).unwrap()
    };
    eventually(
        std::time::Duration::from_secs(15),
        "three nodes up with no lag",
        || {
            let s = status();
            s["nodes_up"] == 3
                && s["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["lag"] == 0 && n["state"] == "up")
        },
    );
    let text = keyward_ok(&[
        "cluster",
        "status",
        "--data-dir",
        &p(&first),
        "--store",
        &url,
    ]);
    assert!(
        text.starts_with("store sequence ") && text.contains("3 of 3 nodes up"),
        "{text}"
    );
    let names = keyward_ok(&[
        "cluster",
        "nodes",
        "--data-dir",
        &p(&first),
        "--store",
        &url,
    ]);
    for (_, _, addr) in &nodes {
        assert!(names.contains(&format!(":{}\n", addr.port())), "{names}");
    }
    // A node that stops cleanly leaves the list.
    let (mut third, _, third_addr) = nodes.pop().unwrap();
    third.terminate();
    let names = keyward_ok(&[
        "cluster",
        "nodes",
        "--data-dir",
        &p(&first),
        "--store",
        &url,
    ]);
    assert_eq!(names.lines().count(), 2, "{names}");
    assert!(
        !names.contains(&format!(":{}\n", third_addr.port())),
        "{names}"
    );
}

/// The first certificate `openssl s_client -showcerts` printed.
fn served_certificate(out: &str) -> String {
    let start = out.find("-----BEGIN CERTIFICATE-----").expect(out);
    let end = out[start..].find("-----END CERTIFICATE-----").expect(out) + start;
    out[start..end].to_owned()
}

#[test]
fn proxies_on_the_cluster_resume_each_others_sessions_and_load_a_key_made_through_the_api() {
    let (_db, url) = new_store();
    let site = Site::new();
    let data = site.data();
    init_ok(&data, &url);
    keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "web",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let cert = site.dir.join("web.pem");
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        "web",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        &p(&cert),
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let (_up, up) = start_upstream();
    let config = site.dir.join("keyward.toml");
    let write_config = |label: &str, chain: &Path| {
        std::fs::write(
            &config,
            format!(
                "[hsm]\ndata_dir = \"data\"\nstore = \"{url}\"\n\n[admin]\nenabled = false\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
                 [[listeners.certificates]]\nkey_label = \"{label}\"\nchain_file = \"{}\"\n\n\
                 [upstream]\nurl = \"http://{up}\"\n",
                chain.display()
            ),
        )
        .unwrap();
    };
    write_config("web", &cert);
    let (proxy_a, a) = start_serve(&config, 1);
    let (proxy_b, b) = start_serve(&config, 1);
    let (a, b) = (a[0], b[0]);

    // Session tickets are sealed with keys in the shared store: either proxy resumes the
    // other's sessions, TLS 1.3 and TLS 1.2.
    for (version, extra) in [("TLSv1.3", &[][..]), ("TLSv1.2", &["-tls1_2"][..])] {
        for (from, to) in [(a, b), (b, a)] {
            let file = site.dir.join(format!("{version}-{}.pem", from.port()));
            new_session(from, &file, version, extra);
            let line = resume(to, &file, extra);
            assert!(
                line.starts_with(&format!("Reused, {version}")),
                "a {version} session from {from} on {to}: {line}"
            );
        }
    }

    // A key generated through an HSM node's API (by a crypto-user, shared with the proxy's
    // service user), then a certificate for it: both proxies serve it after SIGHUP.
    let (_node, node_addr) = start_hsm_serve(&data, &["--store", &url]);
    let api = format!("https://localhost:{}", node_addr.port());
    let ca = data.join("api-ca.pem");
    let alice_pw = site.dir.join("alice.pw");
    std::fs::write(&alice_pw, "alice-password\n").unwrap();
    remote_ok(
        &api,
        &ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let out = remote_ok(
        &api,
        &ca,
        "alice",
        "alice-password",
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--curve",
            "p256",
            "--label",
            "api-web",
            "--private-attr",
            "sign=true",
            "--public-attr",
            "verify=true",
            "--json",
        ],
    );
    let private = serde_json::from_str::<serde_json::Value>(&out).unwrap()["private"]["handle"]
        .as_u64()
        .unwrap()
        .to_string();
    remote_ok(
        &api,
        &ca,
        "alice",
        "alice-password",
        &["key", "share", "--key", &private, "--with", "keyward-proxy"],
    );
    let api_cert = site.dir.join("api-web.pem");
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        "api-web",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        &p(&api_cert),
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    write_config("api-web", &api_cert);
    let expected = served_certificate(&std::fs::read_to_string(&api_cert).unwrap());
    for (proxy, addr) in [(&proxy_a, a), (&proxy_b, b)] {
        let (ok, _, err) = run("kill", &["-HUP", &proxy.child.id().to_string()]);
        assert!(ok, "{err}");
        eventually(
            std::time::Duration::from_secs(10),
            "the reloaded certificate is served",
            || served_certificate(&s_client(addr, "localhost", &[])) == expected,
        );
    }
}

/// The SDK's two-node example (keyward-client's crate documentation), against two nodes of
/// one store: the pair made on one node signs and verifies on either, through round-robin,
/// and keeps working with one node gone.
#[test]
fn the_sdk_two_node_example_works_on_a_cluster() {
    use keyward_client::{CallOptions, Client, ClientConfig, KeyTemplate, SignItem, VerifyItem};
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("a");
    init_ok(&first, &url);
    copy_data_dir(&first, &tmp.path().join("b"));
    let (mut node_a, a) = start_hsm_serve(&first, &["--store", &url]);
    let (_node_b, b) = start_hsm_serve(&tmp.path().join("b"), &["--store", &url]);
    let ca = first.join("api-ca.pem");
    let alice_pw = tmp.path().join("alice.pw");
    std::fs::write(&alice_pw, "alice-password\n").unwrap();
    remote_ok(
        &format!("https://localhost:{}", a.port()),
        &ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = ClientConfig::new([
            format!("https://localhost:{}", a.port()),
            format!("https://localhost:{}", b.port()),
        ])
        .ca_cert_pem_file(&ca)
        .unwrap();
        let client = Client::new(config).unwrap();
        client.login("alice", "alice-password").await.unwrap();
        let mut pairs = Vec::new();
        for i in 0..10 {
            // The crate documentation's example, as written there.
            let pair = client
                .generate_pair(
                    "ec-p256",
                    &KeyTemplate::new(format!("signing-{i}")).with("sign", true),
                    &KeyTemplate::new(format!("signing-{i}")).with("verify", true),
                    CallOptions::default(),
                )
                .await
                .unwrap();
            let sig = client
                .sign(&SignItem::message(
                    pair.private.handle,
                    "ecdsa-sha256",
                    b"hello".to_vec(),
                ))
                .await
                .unwrap();
            let ok = client
                .verify(&VerifyItem::message(
                    pair.public.handle,
                    "ecdsa-sha256",
                    b"hello".to_vec(),
                    sig,
                ))
                .await
                .unwrap();
            assert!(ok);
            pairs.push(pair);
        }
        // One node killed: the calls that are safe to repeat move to the other.
        node_a.child.kill().unwrap();
        node_a.child.wait().unwrap();
        for pair in &pairs {
            let sig = client
                .sign(&SignItem::message(
                    pair.private.handle,
                    "ecdsa-sha256",
                    b"still".to_vec(),
                ))
                .await
                .unwrap();
            assert!(client
                .verify(&VerifyItem::message(
                    pair.public.handle,
                    "ecdsa-sha256",
                    b"still".to_vec(),
                    sig
                ))
                .await
                .unwrap());
        }
    });
}

/// Confirmed writes survive `kill -9`: key creations spread over three nodes of one store
/// while, round after round, one node is killed mid-stream and restarted; every key whose
/// creation was answered 2xx exists afterwards, on every node.
#[test]
fn every_confirmed_key_creation_survives_kill_9_of_the_nodes() {
    use keyward_client::{CallOptions, Client, ClientConfig, KeyFilter, KeyTemplate};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 170; // about 1,000 in all
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["a", "b", "c"].iter().map(|n| tmp.path().join(n)).collect();
    init_ok(&dirs[0], &url);
    for d in &dirs[1..] {
        copy_data_dir(&dirs[0], d);
    }
    let start = |d: &Path| start_hsm_serve(d, &["--store", &url]);
    let mut nodes: Vec<_> = dirs.iter().map(|d| start(d)).collect();
    let ca = dirs[0].join("api-ca.pem");
    let alice_pw = tmp.path().join("alice.pw");
    std::fs::write(&alice_pw, "alice-password\n").unwrap();
    remote_ok(
        &format!("https://localhost:{}", nodes[0].1.port()),
        &ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_for = |addr: std::net::SocketAddr| {
        let ca = ca.clone();
        async move {
            let c = Client::new(
                ClientConfig::new([format!("https://localhost:{}", addr.port())])
                    .ca_cert_pem_file(&ca)
                    .unwrap(),
            )
            .unwrap();
            c.login("alice", "alice-password").await.unwrap();
            Arc::new(c)
        }
    };
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let victim = round % nodes.len();
        let clients: Vec<_> = nodes
            .iter()
            .map(|(_, a)| rt.block_on(client_for(*a)))
            .collect();
        let started = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|c| {
                let (confirmed, started) = (confirmed.clone(), started.clone());
                rt.spawn(async move {
                    loop {
                        let n = started.fetch_add(1, Ordering::SeqCst);
                        if n >= PER_ROUND {
                            break;
                        }
                        let label = format!("kill9-{round}-{n}");
                        // An error (the node was killed) leaves the creation unconfirmed.
                        if let Ok(k) = c
                            .generate_symmetric(
                                "aes-256",
                                &KeyTemplate::new(label),
                                CallOptions::default(),
                            )
                            .await
                        {
                            confirmed.lock().unwrap().push(k.handle);
                        }
                    }
                })
            })
            .collect();
        // Kill the victim half way through the round, with creations in flight.
        eventually(
            std::time::Duration::from_secs(60),
            "half a round started",
            || started.load(Ordering::SeqCst) >= PER_ROUND / 2,
        );
        let (ok, _, err) = run("kill", &["-9", &nodes[victim].0.child.id().to_string()]);
        assert!(ok, "{err}");
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        let _ = nodes[victim].0.child.wait();
        nodes[victim] = start(&dirs[victim]);
    }
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(
        confirmed.len() > ROUNDS * PER_ROUND / 2,
        "{} confirmed",
        confirmed.len()
    );
    for (_, addr) in &nodes {
        let present: std::collections::HashSet<u64> = rt.block_on(async {
            let c = client_for(*addr).await;
            let mut all = std::collections::HashSet::new();
            let mut after = None;
            loop {
                let page = c
                    .list_keys(&KeyFilter {
                        after,
                        limit: Some(1000),
                        ..KeyFilter::default()
                    })
                    .await
                    .unwrap();
                all.extend(page.keys.iter().map(|k| k.handle));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break all,
                }
            }
        });
        let lost: Vec<_> = confirmed.iter().filter(|h| !present.contains(h)).collect();
        assert!(
            lost.is_empty(),
            "node {addr}: {} confirmed keys lost: {lost:?}",
            lost.len()
        );
    }
}

/// Starts `keyward hsm serve` for `data` on a given port (a node restarted where the clients
/// expect it).
fn start_hsm_serve_on(data: &Path, port: u16, url: &str) -> Running {
    let mut cmd = std::process::Command::new(keyward_bin());
    cmd.args([
        "hsm",
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .args(["--store", url])
    .env("KEYWARD_LOG", "info");
    let node = Running::spawn(cmd);
    node.stderr.wait_for("serving the HSM API");
    node
}

/// The SDK over three nodes of one store: 2,000 mixed calls (generate with an idempotency
/// key, sign, encrypt, share) while one node is killed after 500 calls and another restarted
/// after 1,000: no call fails (the SDK retries what is safe elsewhere), and every key the SDK
/// got back exists on every node.
#[test]
fn the_sdk_rides_out_a_killed_and_a_restarted_node() {
    use keyward_client::{
        CallOptions, Client, ClientConfig, EncryptItem, KeyFilter, KeyTemplate, SignItem,
    };
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["a", "b", "c"].iter().map(|n| tmp.path().join(n)).collect();
    init_ok(&dirs[0], &url);
    for d in &dirs[1..] {
        copy_data_dir(&dirs[0], d);
    }
    let mut nodes: Vec<_> = dirs
        .iter()
        .map(|d| start_hsm_serve(d, &["--store", &url]))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|(_, a)| a.port()).collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("https://localhost:{p}"))
        .collect();
    let ca = dirs[0].join("api-ca.pem");
    for (name, pw) in [("alice", "alice-password"), ("bob", "bob-password-1")] {
        let file = tmp.path().join(format!("{name}.pw"));
        std::fs::write(&file, format!("{pw}\n")).unwrap();
        remote_ok(
            &urls[0],
            &ca,
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
                &p(&file),
            ],
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let c = Client::new(
            ClientConfig::new(urls.clone())
                .ca_cert_pem_file(&ca)
                .unwrap(),
        )
        .unwrap();
        c.login("alice", "alice-password").await.unwrap();
        c
    });
    let (mut failed, mut signing, mut aes) = (Vec::new(), None, None);
    let mut made = Vec::new();
    for i in 0..2000usize {
        match i {
            500 => {
                nodes[0].0.child.kill().unwrap();
                let _ = nodes[0].0.child.wait();
            }
            1000 => {
                nodes[1].0.terminate();
                nodes[1].0 = start_hsm_serve_on(&dirs[1], ports[1], &url);
            }
            1500 => nodes[0].0 = start_hsm_serve_on(&dirs[0], ports[0], &url),
            _ => {}
        }
        let r: Result<(), keyward_client::Error> = rt.block_on(async {
            match i % 4 {
                0 => {
                    let opts = CallOptions::idempotency_key(format!("create-{i}"));
                    if i % 8 == 0 {
                        let pair = client
                            .generate_pair(
                                "ec-p256",
                                &KeyTemplate::new(format!("p{i}")).with("sign", true),
                                &KeyTemplate::new(format!("p{i}")).with("verify", true),
                                opts,
                            )
                            .await?;
                        made.push(pair.private.handle);
                        signing = Some(pair.private.handle);
                    } else {
                        let k = client
                            .generate_symmetric(
                                "aes-256",
                                &KeyTemplate::new(format!("s{i}")).with("encrypt", true),
                                opts,
                            )
                            .await?;
                        made.push(k.handle);
                        aes = Some(k.handle);
                    }
                }
                1 => {
                    if let Some(k) = signing {
                        client
                            .sign(&SignItem::message(k, "ecdsa-sha256", b"m".to_vec()))
                            .await?;
                    }
                }
                2 => {
                    if let Some(k) = aes {
                        client
                            .encrypt(&EncryptItem::new(k, "aes-gcm", b"m".to_vec()))
                            .await?;
                    }
                }
                _ => {
                    if let Some(k) = aes {
                        client
                            .share(k, "bob", CallOptions::idempotency_key(format!("share-{i}")))
                            .await?;
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            failed.push(format!("call {i}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    for url_ in &urls {
        let present: std::collections::HashSet<u64> = rt.block_on(async {
            let c = Client::new(
                ClientConfig::new([url_.clone()])
                    .ca_cert_pem_file(&ca)
                    .unwrap(),
            )
            .unwrap();
            c.login("alice", "alice-password").await.unwrap();
            let mut all = std::collections::HashSet::new();
            let mut after = None;
            loop {
                let page = c
                    .list_keys(&KeyFilter {
                        after,
                        limit: Some(1000),
                        ..KeyFilter::default()
                    })
                    .await
                    .unwrap();
                all.extend(page.keys.iter().map(|k| k.handle));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break all,
                }
            }
        });
        let lost: Vec<_> = made.iter().filter(|h| !present.contains(h)).collect();
        assert!(lost.is_empty(), "{url_}: {} keys missing", lost.len());
    }
}

/// Two nodes changing the same key's attributes at the same moment: the store's write lock
/// puts the changes one after the other (the second node catches up first), so every change
/// lands, none overwrites another unseen, both nodes end with the last one, and the audit
/// chain verifies on both.
#[test]
fn concurrent_changes_of_one_key_on_two_nodes_are_serialized() {
    use keyward_client::{CallOptions, Client, ClientConfig, KeyTemplate};
    let (_db, url) = new_store();
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    init_ok(&a_dir, &url);
    copy_data_dir(&a_dir, &b_dir);
    let (_a, a) = start_hsm_serve(&a_dir, &["--store", &url]);
    let (_b, b) = start_hsm_serve(&b_dir, &["--store", &url]);
    let ca = a_dir.join("api-ca.pem");
    let urls = [a, b].map(|x| format!("https://localhost:{}", x.port()));
    let alice_pw = tmp.path().join("alice.pw");
    std::fs::write(&alice_pw, "alice-password\n").unwrap();
    remote_ok(
        &urls[0],
        &ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&alice_pw),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for u in &urls {
            let c = Client::new(
                ClientConfig::new([u.clone()])
                    .ca_cert_pem_file(&ca)
                    .unwrap(),
            )
            .unwrap();
            c.login("alice", "alice-password").await.unwrap();
            clients.push(std::sync::Arc::new(c));
        }
        let key = clients[0]
            .generate_symmetric(
                "aes-256",
                &KeyTemplate::new("contended"),
                CallOptions::default(),
            )
            .await
            .unwrap()
            .handle;
        // 50 label changes from each node at once.
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(n, c)| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        c.set_attribute(key, "label", serde_json::json!(format!("node{n}-{i}")))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let mut labels = Vec::new();
        for c in &clients {
            // Each node answers with the store's last change (the other may still be
            // catching up: a read does not wait, so ask until both agree).
            labels.push(c.get_key(key).await.unwrap().attributes.label);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while labels[0] != labels[1] {
            assert!(std::time::Instant::now() < deadline, "{labels:?}");
            labels.clear();
            for c in &clients {
                labels.push(c.get_key(key).await.unwrap().attributes.label);
            }
        }
        assert!(
            labels[0].ends_with("-49"),
            "the last change of one node wins: {labels:?}"
        );
    });
    // 100 changes plus the creation, each with its audit entry, in one chain.
    for u in &urls {
        let out = remote_ok(u, &ca, "admin", "admin-password", &["audit", "verify"]);
        assert!(out.contains("intact"), "{u}: {out}");
    }
    let list = remote_ok(
        &urls[1],
        &ca,
        "admin",
        "admin-password",
        &["audit", "list", "--limit", "1000", "--json"],
    );
    let changes = serde_json::from_str::<serde_json::Value>(&list)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|ev| ev.contains("attribute"))
                && e["outcome"] == "ok"
        })
        .count();
    assert_eq!(changes, 100, "every change recorded once");
}
