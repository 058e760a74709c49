//! Several `hsm serve` nodes of one store: shared keys, users, sessions, lockouts, one audit chain, serialized changes, `keyward cluster`.

use crate::common::*;
use crate::support::*;

#[test]
fn three_nodes_share_keys_users_and_lockouts() {
    let mut cluster = Cluster::start(3);
    let (url, first, ca) = (
        cluster.url.clone(),
        cluster.dirs[0].clone(),
        cluster.ca.clone(),
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.api(i)).collect();
    let addrs: Vec<_> = cluster.nodes.iter().map(|(_, a)| *a).collect();
    let api = |i: usize| urls[i].clone();
    let within = std::time::Duration::from_secs(10);

    // A user created on node 2 logs in on node 3.
    cluster.create_crypto_user(1, "alice", "alice-password");
    let login = |i: usize, password: &str| remote(&api(i), &ca, "alice", password, &["login"]);
    // At once: a node that does not know a user name at login catches up first.
    let out = login(2, "alice-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A key generated on node 1 signs on nodes 2 and 3.
    let key = alice_pair(&api(0), &ca, "shared").to_string();
    let msg = cluster.tmp.path().join("msg");
    std::fs::write(&msg, b"one key, three nodes\n").unwrap();
    for i in [1, 2] {
        let sig = cluster.tmp.path().join(format!("sig{i}"));
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
        addrs[0],
        "POST",
        "/v1/auth/login",
        None,
        Some(r#"{"username":"alice","password":"alice-password"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let keys_on = |i: usize| curl_json(&ca, addrs[i], "GET", "/v1/keys", Some(&token), None).0;
    // At once: a node that does not know a token catches up first (ten fresh sessions).
    assert_eq!(keys_on(2), 200, "node 1's session on node 3");
    for _ in 0..10 {
        let (_, body) = curl_json(
            &ca,
            addrs[0],
            "POST",
            "/v1/auth/login",
            None,
            Some(r#"{"username":"alice","password":"alice-password"}"#),
        );
        let fresh = body["token"].as_str().unwrap().to_owned();
        let (status, _) = curl_json(&ca, addrs[2], "GET", "/v1/keys", Some(&fresh), None);
        assert_eq!(status, 200, "a session from node 1 used on node 3 at once");
    }
    let (status, _) = curl_json(&ca, addrs[0], "POST", "/v1/auth/logout", Some(&token), None);
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
    for addr in &addrs {
        assert!(names.contains(&format!(":{}\n", addr.port())), "{names}");
    }
    // A node that stops cleanly leaves the list.
    let (mut third, third_addr) = cluster.nodes.pop().unwrap();
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

/// Two nodes changing the same key's attributes at the same moment: the store's write lock
/// puts the changes one after the other (the second node catches up first), so every change
/// lands, none overwrites another unseen, both nodes end with the last one, and the audit
/// chain verifies on both.
#[test]
fn concurrent_changes_of_one_key_on_two_nodes_are_serialized() {
    use keyward_client::{CallOptions, KeyTemplate};
    let cluster = Cluster::start(2);
    cluster.create_crypto_user(0, "alice", "alice-password");
    let ca = cluster.ca.clone();
    let urls = [cluster.api(0), cluster.api(1)];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for u in &urls {
            let c = sdk([u.clone()], &ca, "alice", "alice-password").await;
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

/// A node that starts while another writes reads one consistent state of the store (it
/// holds the write lock while it loads), so it starts every time.
#[test]
fn a_node_starts_while_another_writes() {
    use keyward_client::{CallOptions, KeyTemplate};
    let cluster = Cluster::start(1);
    cluster.create_crypto_user(0, "alice", "alice-password");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, api, ca) = (stop.clone(), cluster.api(0), cluster.ca.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = sdk([api], &ca, "alice", "alice-password").await;
                let mut made = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    c.generate_symmetric(
                        "aes-256",
                        &KeyTemplate::new(format!("busy-{made}")),
                        CallOptions::default(),
                    )
                    .await
                    .unwrap();
                    made += 1;
                }
                made
            })
        })
    };
    let second = cluster.tmp.path().join("second");
    copy_data_dir(&cluster.dirs[0], &second);
    for _ in 0..3 {
        let (mut node, _) = start_hsm_serve(&second, &["--store", &cluster.url]);
        node.terminate();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let made = writer.join().unwrap();
    assert!(made > 0, "the writer wrote while the node started");
}

/// A creation retried with the same `Idempotency-Key` on another node of the store gets the
/// first answer (the same key, no second one); the same key with another body is refused.
#[test]
fn an_idempotency_key_holds_across_nodes() {
    let cluster = Cluster::start(2);
    cluster.create_crypto_user(0, "alice", "alice-password");
    let (a, b) = (cluster.nodes[0].1, cluster.nodes[1].1);
    let (_, body) = curl_json(
        &cluster.ca,
        a,
        "POST",
        "/v1/auth/login",
        None,
        Some(r#"{"username":"alice","password":"alice-password"}"#),
    );
    let token = body["token"].as_str().unwrap().to_owned();
    let create = |node, label: &str| {
        let out = Curl::https(node, "/v1/keys/symmetric", &cluster.ca)
            .args(&[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-H",
                "idempotency-key: create-once",
                "-d",
                &format!(r#"{{"spec":"aes-256","template":{{"label":"{label}"}}}}"#),
            ])
            .bearer(Some(&token))
            .run();
        (
            out.status,
            serde_json::from_str::<serde_json::Value>(&out.body).unwrap_or_default(),
        )
    };
    let (status, first) = create(a, "once");
    assert_eq!(status, 201, "{first}");
    let (status, again) = create(b, "once");
    assert!(
        (200..300).contains(&status) && again["handle"] == first["handle"],
        "the retry on the other node got the first answer: {status} {again}"
    );
    let (status, reused) = create(b, "other");
    assert_eq!(status, 422, "{reused}");
    let (_, keys) = curl_json(
        &cluster.ca,
        b,
        "GET",
        "/v1/keys?label=once",
        Some(&token),
        None,
    );
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "one key made: {keys}"
    );
}
