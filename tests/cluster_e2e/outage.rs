//! The database down and back, under a signing load.

use keyward_keystore::test_util::TestPostgres;

use crate::common::*;
use crate::support::*;

#[test]
fn with_the_database_down_signing_goes_on_writes_get_503_and_the_node_recovers_alone() {
    let pg = TestPostgres::own();
    let url = pg.url(&pg.new_database());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node");
    init_ok(&data, &url);
    let (node, addr) = start_hsm_serve(&data, &["--store", &url]);
    let api = format!("https://localhost:{}", addr.port());
    let ca = data.join("api-ca.pem");
    create_crypto_user(&api, &ca, tmp.path(), "alice", "alice-password");
    let generate = |label: &str| alice_generates_pair(&api, &ca, label);
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
    node.stderr.wait_for("the cluster store is reachable again");
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
