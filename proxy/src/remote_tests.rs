//! The remote signer's bounds with a stand-in for the nodes (the real nodes are exercised by
//! `tests/cluster_e2e/keyless.rs`): at most `max_in_flight` signs at once, the timeout, and
//! refusal before the ServerHello while no node is reachable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_hsm::KeySpec;
use rustls::sign::SigningKey;
use rustls::SignatureScheme;

use super::*;

/// Nodes that take `delay` per sign and answer `answer`; they count signs in progress.
#[derive(Debug)]
struct Nodes {
    delay: Duration,
    answer: Mutex<Result<Vec<u8>, SignFailure>>,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Nodes {
    fn new(delay: Duration, answer: Result<Vec<u8>, SignFailure>) -> Arc<Self> {
        Arc::new(Nodes {
            delay,
            answer: Mutex::new(answer),
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        })
    }
}

impl RemoteHsm for Nodes {
    fn private_key<'a>(&'a self, _label: &'a str) -> BoxFuture<'a, Result<RemoteKey, String>> {
        Box::pin(async { Err("not used".to_owned()) })
    }

    fn sign<'a>(
        &'a self,
        _handle: u64,
        _version: u32,
        _mechanism: &'static str,
        _message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignFailure>> {
        Box::pin(async move {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.answer.lock().unwrap().clone()
        })
    }

    fn ticket_keys<'a>(
        &'a self,
        _rotation_s: u64,
        _recipient_spki: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<WrappedTicketKey>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn key(remote: &Arc<Remote>) -> RemoteSigningKey {
    RemoteSigningKey::new(remote.clone(), 7, 1, KeySpec::EcP256, vec![0x30])
}

#[test]
fn no_more_than_max_in_flight_signs_reach_the_nodes_and_the_rest_wait() {
    let rt = runtime();
    let nodes = Nodes::new(Duration::from_millis(30), Ok(vec![1, 2, 3]));
    let remote = rt.block_on(async { Remote::new(nodes.clone(), 2, Duration::from_secs(5)) });
    // Eight handshakes at once, each signing from a runtime worker as rustls does.
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let remote = remote.clone();
                tokio::spawn(async move {
                    // As a listener does before each handshake.
                    let _slot = remote.slots().acquire_owned().await.unwrap();
                    remote.sign(7, 1, "ecdsa-sha256", b"transcript")
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(results
        .iter()
        .all(|r| r.as_deref().ok() == Some(&[1, 2, 3][..])));
    assert_eq!(nodes.most.load(Ordering::SeqCst), 2);
    assert!(!remote.is_down());
}

#[test]
fn a_sign_past_the_timeout_fails_without_refusing_the_next_handshakes() {
    let rt = runtime();
    let nodes = Nodes::new(Duration::from_secs(5), Ok(vec![1]));
    let remote = rt.block_on(async { Remote::new(nodes, 1, Duration::from_millis(50)) });
    let started = std::time::Instant::now();
    let r = rt.block_on(async {
        let remote = remote.clone();
        tokio::spawn(async move { remote.sign(7, 1, "ecdsa-sha256", b"t") })
            .await
            .unwrap()
    });
    assert!(matches!(r, Err(RemoteSignError::Timeout(50))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // One slow node (or a burst waiting for slots) is no reason to refuse the next ones.
    assert!(!remote.is_down());
    assert!(key(&remote)
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .is_some());
}

#[test]
fn only_unreachable_nodes_mark_the_remote_down() {
    let rt = runtime();
    for (unreachable, down) in [(false, false), (true, true)] {
        let nodes = Nodes::new(
            Duration::ZERO,
            Err(SignFailure {
                unreachable,
                message: "refused".into(),
            }),
        );
        let remote = rt.block_on(async { Remote::new(nodes, 4, Duration::from_secs(5)) });
        let r = rt.block_on(async {
            let remote = remote.clone();
            tokio::spawn(async move { remote.sign(7, 1, "ecdsa-sha256", b"t") })
                .await
                .unwrap()
        });
        assert!(matches!(r, Err(RemoteSignError::Refused(_))), "{r:?}");
        assert_eq!(remote.is_down(), down, "unreachable: {unreachable}");
        // While down, rustls finds no scheme: it answers with a handshake_failure alert
        // before its ServerHello.
        assert_eq!(
            key(&remote)
                .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
                .is_some(),
            !down
        );
    }
}
