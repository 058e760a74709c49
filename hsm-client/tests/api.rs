//! The SDK against real in-process API servers over TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use keyward_client::{
    CallOptions, Client, ClientConfig, DecryptItem, EncryptItem, Error, Key, KeyConfigRequest,
    KeyFilter, KeyPair, KeyTemplate, Password, RewrapItem, SignItem, VerifyItem, Versioned,
};
use keyward_hsm::test_util::{TestHsm, TestStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// A self-signed certificate for 127.0.0.1 that is also the client's trust anchor.
struct Cert {
    pem: String,
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".into()])
        .unwrap();
    Cert {
        pem: ck.cert.pem(),
        der: ck.cert.der().clone(),
        key: ck.signing_key.serialize_der(),
    }
}

/// One API server; dropping it (or [`Server::kill`]) closes the listener and every connection.
struct Server {
    url: String,
    /// TLS connections accepted, and how many of them negotiated `h2`.
    conns: Arc<(AtomicUsize, AtomicUsize)>,
    task: JoinHandle<()>,
    _store: TestStore,
}

impl Server {
    async fn start(cert: &Cert) -> Server {
        let t = TestHsm::new();
        t.admin();
        let (store, hsm) = t.into_parts();
        let hsm = Arc::new(hsm);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let router = keyward_server::router(hsm);
        let conns = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let counters = conns.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the task drops them all.
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let acceptor = acceptor.clone();
                let router = router.clone();
                let counters = counters.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counters.0.fetch_add(1, Ordering::SeqCst);
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        counters.1.fetch_add(1, Ordering::SeqCst);
                    }
                    let svc = hyper::service::service_fn(move |req| router.clone().oneshot(req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Server {
            url: format!("https://{addr}"),
            conns,
            task,
            _store: store,
        }
    }

    /// Stops the server: listener and connections are gone when this returns.
    async fn kill(&self) {
        self.task.abort();
        while !self.task.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn client(cert: &Cert, urls: &[&str]) -> Client {
    Client::new(ClientConfig::new(urls.iter().copied()).ca_cert_pem(cert.pem.clone())).unwrap()
}

/// An admin client that created crypto-user `alice`, and a client logged in as alice.
async fn alice(cert: &Cert, server: &Server) -> (Client, Client) {
    let admin = client(cert, &[&server.url]);
    let s = admin.login("admin", "admin-password").await.unwrap();
    assert_eq!(s.role, "admin");
    let u = admin
        .create_user(
            "alice",
            "crypto-user",
            &Password::from("alice-password"),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(u.role, "crypto-user");
    let alice = client(cert, &[&server.url]);
    alice.login("alice", "alice-password").await.unwrap();
    (admin, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_users_health_and_audit() {
    let cert = cert();
    let server = Server::start(&cert).await;
    let anon = client(&cert, &[&server.url]);
    assert_eq!(anon.health().await.unwrap(), "ok");
    assert_eq!(anon.ready().await.unwrap(), "ready");
    assert!(matches!(anon.list_users().await, Err(Error::NotLoggedIn)));
    let bad = anon.login("admin", "wrong-password").await.unwrap_err();
    assert_eq!(bad.status(), Some(401), "{bad}");
    assert_eq!(bad.code(), Some("authentication_failed"));

    let (admin, alice) = alice(&cert, &server).await;
    let users = admin.list_users().await.unwrap();
    assert!(users.iter().any(|u| u.username == "alice" && !u.locked));
    let dup = admin
        .create_user(
            "alice",
            "crypto-user",
            &Password::from("other-password"),
            CallOptions::idempotency_key("k1"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, Error::Api { status: 409, code, .. } if code == "user_exists"),
        "{dup}"
    );

    admin
        .change_password("alice", &Password::from("new-alice-password"))
        .await
        .unwrap();
    let alice2 = client(&cert, &[&server.url]);
    alice2.login("alice", "new-alice-password").await.unwrap();

    // The old session ended with the password change; the stored password is stale now.
    let stale = alice.list_users().await.unwrap_err();
    assert_eq!(stale.code(), Some("authentication_failed"), "{stale}");
    let forbidden = alice2.audit_verify().await.unwrap_err();
    assert_eq!(forbidden.status(), Some(403), "{forbidden}");
    let entries = admin.audit_entries(1, 100).await.unwrap();
    assert!(
        entries.iter().any(|e| e.event.contains("login")),
        "{entries:?}"
    );
    let report = admin.audit_verify().await.unwrap();
    assert!(report.intact && report.entries > 0, "{report:?}");

    admin.delete_user("alice").await.unwrap();
    assert!(!admin
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.username == "alice"));

    admin.logout().await.unwrap();
    assert!(matches!(admin.list_users().await, Err(Error::NotLoggedIn)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_crypto() {
    let cert = cert();
    let server = Server::start(&cert).await;
    let (_admin, c) = alice(&cert, &server).await;
    let (pair, imported) = signing_and_public_keys(&c).await;
    let (aes, mac_key) = symmetric_keys(&c).await;
    listing_and_errors(&c, &pair, &aes, &mac_key).await;
    batches(&c, &pair, &aes).await;

    // Three clients (admin, alice, this one) each keep one pooled HTTP/2 connection.
    let (total, h2) = (
        server.conns.0.load(Ordering::SeqCst),
        server.conns.1.load(Ordering::SeqCst),
    );
    assert_eq!(total, h2, "every connection negotiated h2");
    assert!(total <= 3, "{total} connections for one client");

    c.destroy(imported.handle).await.unwrap();
    let gone = c.get_key(imported.handle).await.unwrap_err();
    assert_eq!(gone.code(), Some("key_not_found"));
}

/// An EC pair signs and verifies (a tampered message fails), its public key reads back as PEM
/// and JWK and imports as a new public key object. Returns the pair and the imported key.
async fn signing_and_public_keys(c: &Client) -> (KeyPair, Key) {
    let pair = c
        .generate_pair(
            "ec-p256",
            &KeyTemplate::new("sig").with("sign", true),
            &KeyTemplate::new("sig").with("verify", true),
            CallOptions::idempotency_key("gen-sig-1"),
        )
        .await
        .unwrap();
    assert_eq!(pair.private.class, "private");
    assert_eq!(pair.public.linked_handle, Some(pair.private.handle));
    let sig = c
        .sign(&SignItem::message(
            pair.private.handle,
            "ecdsa-sha256",
            b"hello".to_vec(),
        ))
        .await
        .unwrap();
    let ok = VerifyItem::message(
        pair.public.handle,
        "ecdsa-sha256",
        b"hello".to_vec(),
        sig.clone(),
    );
    assert!(c.verify(&ok).await.unwrap());
    let tampered = VerifyItem::message(pair.public.handle, "ecdsa-sha256", b"hellO".to_vec(), sig);
    assert!(!c.verify(&tampered).await.unwrap());

    let pk = c.public_key(pair.public.handle).await.unwrap();
    assert!(pk.pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(pk.jwk.as_ref().unwrap()["crv"], "P-256");
    let imported = c
        .import_public(
            &keyward_client::PublicKeyInput::Der(pk.der.clone()),
            &KeyTemplate::new("imported").with("verify", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(imported.class, "public");

    (pair, imported)
}

/// AES-GCM round trip (a wrong AAD fails), HMAC, random bytes. Returns the AES and MAC keys.
async fn symmetric_keys(c: &Client) -> (Key, Key) {
    let aes = c
        .generate_symmetric(
            "aes-256",
            &KeyTemplate::new("data")
                .with("encrypt", true)
                .with("decrypt", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(aes.spec, "aes-256");
    let mut e = EncryptItem::new(aes.handle, "aes-gcm", b"secret data".to_vec());
    e.aad = Some(b"ctx".to_vec());
    let ct = c.encrypt(&e).await.unwrap();
    assert_eq!(ct.len(), 12 + 11 + 16);
    let mut d = DecryptItem::new(aes.handle, "aes-gcm", ct.clone());
    d.aad = Some(b"ctx".to_vec());
    assert_eq!(c.decrypt(&d).await.unwrap(), b"secret data");
    d.aad = Some(b"other".to_vec());
    assert!(c.decrypt(&d).await.is_err());

    let mac_key = c
        .generate_symmetric(
            "generic-secret-32",
            &KeyTemplate::new("mac")
                .with("sign", true)
                .with("verify", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let mac = c
        .hmac(&SignItem::message(
            mac_key.handle,
            "hmac-sha256",
            b"m".to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(mac.len(), 32);
    let r = c.random(48).await.unwrap();
    assert_eq!(r.len(), 48);
    assert_ne!(r, c.random(48).await.unwrap());

    (aes, mac_key)
}

/// Listing with filters and pagination, reading and renaming a key, and the error mapping.
async fn listing_and_errors(c: &Client, pair: &KeyPair, aes: &Key, mac_key: &Key) {
    // Listing with filters and pagination.
    let secrets = c
        .list_keys(&KeyFilter {
            class: Some("secret".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(secrets.keys.len(), 2);
    let signers = c
        .list_keys(&KeyFilter {
            attributes: vec![("sign".into(), true)],
            ..Default::default()
        })
        .await
        .unwrap();
    let handles: Vec<u64> = signers.keys.iter().map(|k| k.handle).collect();
    assert!(
        signers.keys.iter().all(|k| k.attributes.sign),
        "{signers:?}"
    );
    assert!(handles.contains(&pair.private.handle) && handles.contains(&mac_key.handle));
    assert!(!handles.contains(&pair.public.handle));
    let mut seen = Vec::new();
    let mut filter = KeyFilter {
        limit: Some(2),
        ..Default::default()
    };
    loop {
        let page = c.list_keys(&filter).await.unwrap();
        seen.extend(page.keys.iter().map(|k| k.handle));
        match page.next {
            Some(n) => filter.after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");

    let got = c.get_key(aes.handle).await.unwrap();
    assert_eq!(got.attributes.label, "data");
    let renamed = c
        .set_attribute(aes.handle, "label", serde_json::json!("data2"))
        .await
        .unwrap();
    assert_eq!(renamed.attributes.label, "data2");

    // Error mapping.
    let missing = c
        .sign(&SignItem::message(1, "ecdsa-sha256", b"x".to_vec()))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, Error::Api { status: 404, code, .. } if code == "key_not_found"),
        "{missing:?}"
    );
}

/// Batches: 100 signatures, all verified; one bad item has its own error; an AES round trip.
async fn batches(c: &Client, pair: &KeyPair, aes: &Key) {
    let items: Vec<SignItem> = (0..100)
        .map(|i| {
            SignItem::message(
                pair.private.handle,
                "ecdsa-sha256",
                format!("m{i}").into_bytes(),
            )
        })
        .collect();
    let sigs = c.sign_batch(&items).await.unwrap();
    assert_eq!(sigs.len(), 100);
    let checks: Vec<VerifyItem> = sigs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            VerifyItem::message(
                pair.public.handle,
                "ecdsa-sha256",
                format!("m{i}").into_bytes(),
                s.unwrap(),
            )
        })
        .collect();
    let valid = c.verify_batch(&checks).await.unwrap();
    assert!(valid.iter().all(|v| v == &Ok(true)), "{valid:?}");
    let mixed = c
        .sign_batch(&[
            SignItem::message(pair.private.handle, "ecdsa-sha256", b"a".to_vec()),
            SignItem::message(1, "ecdsa-sha256", b"b".to_vec()),
        ])
        .await
        .unwrap();
    assert!(mixed[0].is_ok());
    assert_eq!(mixed[1].as_ref().unwrap_err().code, "key_not_found");
    let cts = c
        .encrypt_batch(&[
            EncryptItem::new(aes.handle, "aes-gcm", b"one".to_vec()),
            EncryptItem::new(aes.handle, "aes-gcm", b"two".to_vec()),
        ])
        .await
        .unwrap();
    let pts = c
        .decrypt_batch(
            &cts.into_iter()
                .map(|ct| DecryptItem::new(aes.handle, "aes-gcm", ct.unwrap()))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(pts, vec![Ok(b"one".to_vec()), Ok(b"two".to_vec())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_versions_rotate_rewrap_and_retire() {
    let cert = cert();
    let server = Server::start(&cert).await;
    let (_admin, c) = alice(&cert, &server).await;
    let aes = c
        .generate_symmetric(
            "aes-256",
            &KeyTemplate::new("versioned")
                .with("encrypt", true)
                .with("decrypt", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let v1 = c
        .encrypt_versioned(&EncryptItem::new(aes.handle, "aes-gcm", b"one".to_vec()))
        .await
        .unwrap();
    assert_eq!(v1.key_version, 1);
    let rotated = c
        .rotate_key(aes.handle, CallOptions::idempotency_key("rot-1"))
        .await
        .unwrap();
    assert_eq!(rotated.latest_version, 2);
    let v2 = c
        .encrypt_versioned(&EncryptItem::new(aes.handle, "aes-gcm", b"two".to_vec()))
        .await
        .unwrap();
    assert_eq!(v2.key_version, 2);
    for (ct, plain) in [(&v1, b"one"), (&v2, b"two")] {
        let item = DecryptItem::versioned(aes.handle, "aes-gcm", ct);
        assert_eq!(c.decrypt(&item).await.unwrap(), plain);
        // The text form round-trips.
        assert_eq!(&Versioned::from_text(&ct.to_text()).unwrap(), ct);
    }
    let re = c
        .rewrap(&RewrapItem::new(aes.handle, "aes-gcm", v1.clone()))
        .await
        .unwrap();
    assert_eq!(re.key_version, 2);
    let cfg = KeyConfigRequest {
        min_decryption_version: Some(2),
        ..Default::default()
    };
    assert_eq!(
        c.configure_key(aes.handle, &cfg)
            .await
            .unwrap()
            .min_decryption_version,
        2
    );
    let retired = c
        .decrypt(&DecryptItem::versioned(aes.handle, "aes-gcm", &v1))
        .await
        .unwrap_err();
    assert_eq!(
        (retired.status(), retired.code()),
        (Some(403), Some("key_version_retired")),
        "{retired}"
    );
    assert_eq!(
        c.decrypt(&DecryptItem::versioned(aes.handle, "aes-gcm", &re))
            .await
            .unwrap(),
        b"one"
    );
    assert_eq!(
        c.trim_key(aes.handle, 2)
            .await
            .unwrap()
            .min_available_version,
        2
    );

    // Signatures carry their version.
    let pair = c
        .generate_pair(
            "ec-p256",
            &KeyTemplate::new("vsig").with("sign", true),
            &KeyTemplate::new("vsig").with("verify", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let item = SignItem::message(pair.private.handle, "ecdsa-sha256", b"m".to_vec());
    let s1 = c.sign_versioned(&item).await.unwrap();
    c.rotate_key(pair.private.handle, CallOptions::default())
        .await
        .unwrap();
    let s2 = c.sign_versioned(&item).await.unwrap();
    assert_eq!((s1.key_version, s2.key_version), (1, 2));
    for s in [&s1, &s2] {
        let v = VerifyItem::versioned(pair.public.handle, "ecdsa-sha256", b"m".to_vec(), s);
        assert!(c.verify(&v).await.unwrap());
    }
    let old = c.public_key_at(pair.public.handle, Some(1)).await.unwrap();
    assert_ne!(old.der, c.public_key(pair.public.handle).await.unwrap().der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_surviving_node() {
    let cert = cert();
    let (a, b) = (Server::start(&cert).await, Server::start(&cert).await);
    // Each node has its own store: alice and a "shared" HMAC key exist on both, with
    // different handles and different key material.
    let mut handles = Vec::new();
    for s in [&a, &b] {
        let (_admin, alice) = alice(&cert, s).await;
        let k = alice
            .generate_symmetric(
                "generic-secret-32",
                &KeyTemplate::new("shared").with("sign", true),
                CallOptions::default(),
            )
            .await
            .unwrap();
        handles.push(k.handle);
    }
    let (ha, hb) = (handles[0], handles[1]);
    assert_ne!(ha, hb);
    let b_only = client(&cert, &[&b.url]);
    b_only.login("alice", "alice-password").await.unwrap();
    let sig_b = b_only
        .sign(&SignItem::message(hb, "hmac-sha256", b"msg".to_vec()))
        .await
        .unwrap();

    let both = client(&cert, &[&a.url, &b.url]);
    both.login("alice", "alice-password").await.unwrap();
    // Round-robin reaches both nodes; each answers with its own handle for the label, and
    // the second node is logged in lazily.
    let by_label = KeyFilter {
        label: Some("shared".into()),
        ..Default::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let page = both.list_keys(&by_label).await.unwrap();
        seen.insert(page.keys[0].handle);
    }
    assert_eq!(seen, [ha, hb].into_iter().collect());
    assert!(both.nodes().iter().all(|n| n.healthy && n.logged_in));

    // Kill A in the middle of a run of concurrent calls: every call must succeed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let runner = {
        let both = both.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..200 {
                if i == 50 {
                    tx.send(()).await.unwrap();
                }
                results.push(both.random(16).await.map(|r| r.len()));
            }
            results
        })
    };
    rx.recv().await.unwrap();
    a.kill().await;
    let results = runner.await.unwrap();
    assert!(results.iter().all(|r| matches!(r, Ok(16))), "{results:?}");

    // Every later call is served by B: A's handle is unknown there, B's gives B's MAC.
    for _ in 0..10 {
        let sig = both
            .sign(&SignItem::message(hb, "hmac-sha256", b"msg".to_vec()))
            .await
            .unwrap();
        assert_eq!(sig, sig_b);
        assert_eq!(both.list_keys(&by_label).await.unwrap().keys[0].handle, hb);
    }
    let status = both.nodes();
    assert!(!status[0].healthy, "{status:?}");
    assert!(status[1].healthy, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_nodes_and_untrusted_certificates() {
    let cert = cert();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = Client::new(
        ClientConfig::new([format!("https://{closed}")])
            .ca_cert_pem(cert.pem.clone())
            .backoff_base(std::time::Duration::from_millis(1)),
    )
    .unwrap();
    let e = c.health().await.unwrap_err();
    assert!(
        matches!(&e, Error::AllNodesFailed { last } if matches!(**last, Error::Connect(_))),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot connect"), "{e}");
    // A call that needs a session fails before any request without credentials.
    let e = c
        .generate_symmetric("aes-256", &KeyTemplate::new("x"), CallOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotLoggedIn), "{e:?}");

    // A server whose certificate is not the configured anchor is refused.
    let server = Server::start(&cert).await;
    let other = self::cert();
    let wrong = client(&other, &[&server.url]);
    let e = wrong.health().await.unwrap_err();
    let Error::AllNodesFailed { last } = &e else {
        panic!("{e:?}");
    };
    assert!(
        matches!(&**last, Error::UntrustedCertificate { node, .. } if *node == server.url),
        "{e:?}"
    );
    assert_eq!(
        last.to_string(),
        format!(
            "the TLS certificate of {} is not trusted by the configured CA certificate: it was signed by a different CA of the same name",
            server.url
        )
    );
    assert!(!e.to_string().contains("cannot connect"), "{e}");
    // From a file, the message names it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other-ca.pem");
    std::fs::write(&file, &other.pem).unwrap();
    let from_file = Client::new(
        ClientConfig::new([server.url.clone()])
            .ca_cert_pem_file(&file)
            .unwrap()
            .backoff_base(std::time::Duration::from_millis(1)),
    )
    .unwrap();
    let e = from_file.health().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("not trusted by the CA file {}", file.display())),
        "{e}"
    );

    // Configuration errors.
    assert!(matches!(
        Client::new(ClientConfig::new(["http://127.0.0.1:1"]).ca_cert_pem(cert.pem.clone())),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Client::new(ClientConfig::new([server.url.clone()]).ca_cert_pem("not a pem")),
        Err(Error::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted() {
    let p = Password::from("hunter2-password");
    assert!(!format!("{p:?}").contains("hunter2"));
    let cert = cert();
    let server = Server::start(&cert).await;
    let c = client(&cert, &[&server.url]);
    c.login("admin", "admin-password").await.unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("admin-password"), "{shown}");
    let e = c.login("admin", "wrong-password-x").await.unwrap_err();
    assert!(!format!("{e:?} {e}").contains("wrong-password-x"));
}

/// `encrypt_stream` into memory, then `decrypt_stream` of `sealed`; the error's text.
async fn open_err(c: &Client, sealed: &[u8]) -> String {
    let mut out = Vec::new();
    let e = c.decrypt_stream(sealed, &mut out, None).await.unwrap_err();
    assert!(matches!(e, Error::Envelope(_)), "{e:?}");
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_streams_round_trip_and_every_tampering_fails() {
    let cert = cert();
    let server = Server::start(&cert).await;
    let (_, c) = alice(&cert, &server).await;
    let kek = c
        .generate_symmetric(
            "aes-256",
            &KeyTemplate::new("files")
                .with("wrap", true)
                .with("unwrap", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let chunk = keyward_client::ENVELOPE_CHUNK_BYTES as usize;
    let sizes = [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 17];
    for size in sizes {
        let plain: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut sealed = Vec::new();
        let info = c
            .encrypt_stream(&plain[..], &mut sealed, kek.handle, "aes-kwp")
            .await
            .unwrap();
        assert_eq!(info.plaintext_bytes, size as u64);
        assert_eq!(info.chunks, (size.max(1)).div_ceil(chunk) as u64, "{size}");
        assert_eq!(info.kek_label, "files");
        let header = 34 + "files".len() + 48;
        assert_eq!(sealed.len(), header + size + 16 * info.chunks as usize);
        let mut back = Vec::new();
        let read = c
            .decrypt_stream(&sealed[..], &mut back, None)
            .await
            .unwrap();
        assert_eq!(back, plain, "{size}");
        assert_eq!(read, info);
    }
    let plain = vec![0x5Au8; 3 * chunk + 100];
    let mut sealed = Vec::new();
    c.encrypt_stream(&plain[..], &mut sealed, kek.handle, "aes-kwp")
        .await
        .unwrap();
    let header = 34 + 5 + 48;
    let sealed_chunk = chunk + 16;
    // A flipped byte in chunk 2.
    let mut flipped = sealed.clone();
    flipped[header + 2 * sealed_chunk + 9] ^= 1;
    let e = open_err(&c, &flipped).await;
    assert!(
        e.contains("chunk 2 (at byte") && e.contains("failed authentication"),
        "{e}"
    );
    // Cut after chunk 1: the last chunk is missing.
    let e = open_err(&c, &sealed[..header + 2 * sealed_chunk]).await;
    assert!(e.contains("truncated: the last chunk is missing"), "{e}");
    // Cut inside the last chunk's tag.
    let e = open_err(&c, &sealed[..header + 3 * sealed_chunk + 10]).await;
    assert!(
        e.contains("truncated") && e.contains("shorter than its tag"),
        "{e}"
    );
    // Chunks 0 and 1 swapped.
    let mut swapped = sealed.clone();
    let (a, b) = (header, header + sealed_chunk);
    let first = sealed[a..b].to_vec();
    swapped.copy_within(b..b + sealed_chunk, a);
    swapped[b..b + sealed_chunk].copy_from_slice(&first);
    let e = open_err(&c, &swapped).await;
    assert!(
        e.contains("chunk 0 ") && e.contains("failed authentication"),
        "{e}"
    );
    // A header edit (the label): chunk 0 fails.
    let mut relabelled = sealed.clone();
    relabelled[25] = b'F';
    let e = open_err(&c, &relabelled).await;
    assert!(
        e.contains("chunk 0 ") && e.contains("failed authentication"),
        "{e}"
    );
    // An edited wrapped key: the node does not unwrap it.
    let mut rewrapped = sealed.clone();
    rewrapped[25 + 5 + 2 + 3] ^= 1;
    let mut out = Vec::new();
    let e = c
        .decrypt_stream(&rewrapped[..], &mut out, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_input"), "{e}");
    assert!(out.is_empty());
    // Not an envelope; an unknown mechanism.
    assert!(open_err(&c, b"hello world")
        .await
        .contains("not a Keyward envelope"));
    let e = c
        .encrypt_stream(&b"x"[..], Vec::new(), kek.handle, "aes-kw")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("aes-kwp or rsa-oaep-sha256"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_envelope_is_opened_by_the_linked_private_key() {
    let cert = cert();
    let server = Server::start(&cert).await;
    let (_, c) = alice(&cert, &server).await;
    let pair = c
        .generate_pair(
            "rsa-2048",
            &KeyTemplate::new("rsa-kek").with("unwrap", true),
            &KeyTemplate::new("rsa-kek").with("wrap", true),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let plain = vec![7u8; 100_000];
    let mut sealed = Vec::new();
    let info = c
        .encrypt_stream(
            &plain[..],
            &mut sealed,
            pair.public.handle,
            "rsa-oaep-sha256",
        )
        .await
        .unwrap();
    assert_eq!(info.kek, pair.public.handle);
    let mut back = Vec::new();
    c.decrypt_stream(&sealed[..], &mut back, None)
        .await
        .unwrap();
    assert_eq!(back, plain);
    // The public key cannot unwrap when named.
    let e = c
        .decrypt_stream(&sealed[..], Vec::new(), Some(pair.public.handle))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("attribute_violation"), "{e}");
    let dk = c
        .generate_data_key(pair.public.handle, "rsa-oaep-sha256", 32)
        .await
        .unwrap();
    assert!(format!("{dk:?}").contains("<redacted>"));
}
