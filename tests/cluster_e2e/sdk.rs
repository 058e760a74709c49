//! The SDK on a cluster: its two-node example, failover, and confirmed writes through kill -9.

use crate::common::*;
use crate::support::*;

/// The SDK's two-node example (keyward-client's crate documentation), against two nodes of
/// one store: the pair made on one node signs and verifies on either, through round-robin,
/// and keeps working with one node gone.
#[test]
fn the_sdk_two_node_example_works_on_a_cluster() {
    use keyward_client::{CallOptions, Client, ClientConfig, KeyTemplate, SignItem, VerifyItem};
    let mut cluster = Cluster::start(2);
    cluster.create_crypto_user(0, "alice", "alice-password");
    let (a, b) = (cluster.nodes[0].1, cluster.nodes[1].1);
    let ca = cluster.ca.clone();
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
        cluster.nodes[0].0.child.kill().unwrap();
        cluster.nodes[0].0.child.wait().unwrap();
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
    use keyward_client::{CallOptions, KeyTemplate};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 170; // about 1,000 in all
    let mut cluster = Cluster::start(3);
    cluster.create_crypto_user(0, "alice", "alice-password");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ca = cluster.ca.clone();
    let client_for = |addr: std::net::SocketAddr| {
        let ca = ca.clone();
        async move {
            Arc::new(
                sdk(
                    [format!("https://localhost:{}", addr.port())],
                    &ca,
                    "alice",
                    "alice-password",
                )
                .await,
            )
        }
    };
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let victim = round % cluster.nodes.len();
        let clients: Vec<_> = cluster
            .nodes
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
        let (ok, _, err) = run(
            "kill",
            &["-9", &cluster.nodes[victim].0.child.id().to_string()],
        );
        assert!(ok, "{err}");
        for t in tasks {
            rt.block_on(t).unwrap();
        }
        let _ = cluster.nodes[victim].0.child.wait();
        cluster.nodes[victim] = start_hsm_serve(&cluster.dirs[victim], &["--store", &cluster.url]);
    }
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(
        confirmed.len() > ROUNDS * PER_ROUND / 2,
        "{} confirmed",
        confirmed.len()
    );
    for (_, addr) in &cluster.nodes {
        let present = rt.block_on(async { key_handles(&*client_for(*addr).await).await });
        let lost: Vec<_> = confirmed.iter().filter(|h| !present.contains(h)).collect();
        assert!(
            lost.is_empty(),
            "node {addr}: {} confirmed keys lost: {lost:?}",
            lost.len()
        );
    }
}

/// The SDK over three nodes of one store: 2,000 mixed calls (generate with an idempotency
/// key, sign, encrypt, share) while one node is killed after 500 calls and another restarted
/// after 1,000: no call fails (the SDK retries what is safe elsewhere), and every key the SDK
/// got back exists on every node.
#[test]
fn the_sdk_rides_out_a_killed_and_a_restarted_node() {
    use keyward_client::{CallOptions, EncryptItem, KeyTemplate, SignItem};
    let mut cluster = Cluster::start(3);
    cluster.create_crypto_user(0, "alice", "alice-password");
    cluster.create_crypto_user(0, "bob", "bob-password-1");
    let ports: Vec<u16> = cluster.nodes.iter().map(|(_, a)| a.port()).collect();
    let urls: Vec<String> = (0..3).map(|i| cluster.api(i)).collect();
    let (ca, url, dirs) = (
        cluster.ca.clone(),
        cluster.url.clone(),
        cluster.dirs.clone(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(sdk(urls.clone(), &ca, "alice", "alice-password"));
    let (mut failed, mut signing, mut aes) = (Vec::new(), None, None);
    let mut made = Vec::new();
    for i in 0..2000usize {
        match i {
            500 => {
                cluster.nodes[0].0.child.kill().unwrap();
                let _ = cluster.nodes[0].0.child.wait();
            }
            1000 => {
                cluster.nodes[1].0.terminate();
                cluster.nodes[1].0 = start_hsm_serve_on(&dirs[1], ports[1], &url);
            }
            1500 => cluster.nodes[0].0 = start_hsm_serve_on(&dirs[0], ports[0], &url),
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
        let present = rt.block_on(async {
            key_handles(&sdk([url_.clone()], &ca, "alice", "alice-password").await).await
        });
        let lost: Vec<_> = made.iter().filter(|h| !present.contains(h)).collect();
        assert!(lost.is_empty(), "{url_}: {} keys missing", lost.len());
    }
}
