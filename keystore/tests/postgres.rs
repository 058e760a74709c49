//! The PostgreSQL backend beyond the conformance suite: schema versions and migrations,
//! the writer lock, an unreachable database, and use from inside an async runtime. Each test
//! uses its own database on the test process's PostgreSQL server.

use keyward_keystore::test_util::TestPostgres;
use keyward_keystore::{Backend, Error, PostgresBackend, PostgresOptions, Record};

fn rec(id: &str) -> Record {
    Record {
        kind: "key".into(),
        id: id.into(),
        version: 1,
        blob: vec![7; 3],
    }
}

#[test]
fn open_needs_a_store_create_makes_one_and_refuses_a_second() {
    let pg = TestPostgres::shared();
    let options = pg.new_store_options();
    let before = pg.psql(
        &db_of(&options),
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert!(matches!(
        PostgresBackend::open(&options),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        pg.psql(
            &db_of(&options),
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        before,
        "a failed open creates nothing"
    );

    let store = PostgresBackend::create(&options).unwrap();
    store.insert(&rec("1")).unwrap();
    drop(store);
    assert_eq!(
        pg.psql(
            &db_of(&options),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM keyward_schema_migrations"
        ),
        "1,2,3,4"
    );
    let message = PostgresBackend::create(&options).unwrap_err().to_string();
    assert!(message.contains("already exists"), "{message}");

    let store = PostgresBackend::open(&options).unwrap();
    assert_eq!(store.get("key", "1").unwrap().unwrap().blob, vec![7; 3]);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let pg = TestPostgres::shared();
    let options = pg.new_store_options();
    drop(PostgresBackend::create(&options).unwrap());
    pg.psql(
        &db_of(&options),
        "INSERT INTO keyward_schema_migrations (version) VALUES (99)",
    );
    match PostgresBackend::open(&options) {
        Err(Error::Schema {
            found: 99,
            supported,
        }) => assert_eq!(supported, keyward_keystore::postgres::SCHEMA_VERSION),
        other => panic!("expected a schema refusal, got {other:?}"),
    }
    assert_eq!(
        pg.psql(
            &db_of(&options),
            "SELECT count(*) FROM keyward_schema_migrations"
        ),
        "5"
    );
}

#[test]
fn two_nodes_starting_at_once_migrate_once() {
    let pg = TestPostgres::shared();
    let options = pg.new_store_options();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let options = options.clone();
            std::thread::spawn(move || PostgresBackend::create(&options).map(drop))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(
        pg.psql(
            &db_of(&options),
            "SELECT count(*) FROM keyward_schema_migrations"
        ),
        keyward_keystore::postgres::SCHEMA_VERSION.to_string()
    );
}

#[test]
fn the_write_lock_lets_one_node_write_at_a_time() {
    let options = TestPostgres::shared().new_store_options();
    let a = PostgresBackend::create(&options).unwrap();
    let b = std::sync::Arc::new(PostgresBackend::open(&options).unwrap());
    let held = a
        .lock_writes()
        .unwrap()
        .expect("PostgreSQL has a write lock");
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiter = {
        let (b, released) = (b.clone(), released.clone());
        std::thread::spawn(move || {
            let lock = b.lock_writes().unwrap().unwrap();
            // Only after `a` let go.
            assert!(released.load(std::sync::atomic::Ordering::SeqCst));
            drop(lock);
        })
    };
    // Give the waiter time to be blocked on the lock (not a synchronisation: the assertion
    // in the waiter holds however long this is).
    std::thread::sleep(std::time::Duration::from_millis(200));
    released.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(held);
    waiter.join().unwrap();
    // Writes still work on both, and the lock can be taken again.
    b.insert(&rec("1")).unwrap();
    drop(a.lock_writes().unwrap());
}

#[test]
fn other_nodes_hear_of_every_committed_batch() {
    let options = TestPostgres::shared().new_store_options();
    let a = PostgresBackend::create(&options).unwrap();
    let b = PostgresBackend::open(&options).unwrap();
    let changes = b.subscribe().unwrap().expect("PostgreSQL notifies");
    let within = std::time::Duration::from_secs(10);
    // One signal once the listener is connected.
    changes.recv_timeout(within).unwrap();
    a.insert(&rec("1")).unwrap();
    changes
        .recv_timeout(within)
        .expect("a notification of the insert");
    // A failed batch is not committed, so not notified; the next good one is.
    assert!(a.insert(&rec("1")).is_err());
    a.insert(&rec("2")).unwrap();
    changes.recv_timeout(within).unwrap();
    assert!(
        changes.try_recv().is_err(),
        "one signal per committed batch"
    );
}

#[test]
fn an_unreachable_database_is_unavailable_with_no_password_in_the_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens on `port` once the listener above is dropped.
    let options = PostgresOptions::new(format!("postgres://kw:hunter2@127.0.0.1:{port}/keyward"));
    let e = PostgresBackend::open(&options).unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));
}

#[test]
fn a_bad_url_or_ca_file_is_a_clear_error() {
    let e = PostgresBackend::open(&PostgresOptions::new("postgres://kw:pw@[::1/db")).unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    assert!(!e.to_string().contains(":pw@"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let mut options = TestPostgres::shared().new_store_options();
    options.ca_file = Some(ca.clone());
    let e = PostgresBackend::open(&options).unwrap_err();
    assert!(
        e.to_string().contains("database CA file") && e.to_string().contains("ca.pem"),
        "{e}"
    );
}

#[test]
fn a_ca_file_requires_tls_which_a_server_without_it_refuses() {
    // The test server has no TLS: with a CA file (and no sslmode in the URL) the backend
    // requires TLS, so it does not fall back to plain text.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cert = rcgen_free_self_signed();
    std::fs::write(&ca, cert).unwrap();
    let mut options = TestPostgres::shared().new_store_options();
    options.ca_file = Some(ca);
    let e = PostgresBackend::create(&options).unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
}

/// A syntactically valid self-signed certificate (no crate needed: a fixed PEM).
fn rcgen_free_self_signed() -> &'static str {
    include_str!("data/self-signed.pem")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_inside_an_async_runtime_and_drops_there() {
    let options = TestPostgres::shared().new_store_options();
    let store = PostgresBackend::create(&options).unwrap();
    store.insert(&rec("a")).unwrap();
    assert_eq!(store.list("key").unwrap().len(), 1);
    drop(store);
}

/// The database name at the end of a test URL.
fn db_of(options: &PostgresOptions) -> String {
    options
        .url
        .rsplit('/')
        .next()
        .expect("a database in the URL")
        .to_owned()
}

#[test]
fn a_database_outage_is_unavailable_and_the_same_backend_recovers_when_it_returns() {
    let pg = TestPostgres::own();
    let mut options = PostgresOptions::new(pg.url(&pg.new_database()));
    options.pool_size = 2;
    let store = PostgresBackend::create(&options).unwrap();
    store.insert(&rec("before")).unwrap();
    pg.stop();
    for attempt in [
        store.insert(&rec("during")).map(|_| ()),
        store.get("key", "before").map(|_| ()),
        store.write_anchor(b"a").map(|_| ()),
    ] {
        assert!(
            matches!(attempt, Err(Error::Unavailable { .. })),
            "{attempt:?}"
        );
    }
    pg.start();
    // No reopen: the pool replaces the connections the restart closed.
    store.insert(&rec("after")).unwrap();
    let ids: Vec<String> = store
        .list("key")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        ["after", "before"],
        "nothing written during the outage"
    );
}

#[test]
fn heartbeats_are_kept_per_node_and_forgotten_on_request() {
    let options = TestPostgres::shared().new_store_options();
    let store = PostgresBackend::create(&options).unwrap();
    assert!(store.nodes().unwrap().is_empty());
    let beat = |node: &str, seq| {
        keyward_keystore::NodeBeat::new(
            node.into(),
            "keyward test".into(),
            seq,
            seq + 1,
            1_700_000_000_000,
        )
    };
    store.heartbeat(&beat("b:1", 3)).unwrap();
    store.heartbeat(&beat("a:1", 2)).unwrap();
    store.heartbeat(&beat("a:1", 5)).unwrap();
    let nodes = store.nodes().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(names, ["a:1", "b:1"]);
    assert_eq!(
        nodes[0].applied_seq, 5,
        "the newest heartbeat replaces the older"
    );
    assert_eq!(nodes[0].started_unix_ms, 1_700_000_000_000);
    assert!(nodes[0].seen_ms_ago < 60_000, "{:?}", nodes[0]);
    store.forget_node("a:1").unwrap();
    assert_eq!(store.nodes().unwrap().len(), 1);
}

/// `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.crt`, `server.key`), and an unrelated CA (`other-ca.pem`), made with OpenSSL.
fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=keyward test {ca}"),
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    dir
}

#[test]
fn tls_with_a_ca_file_and_a_password_from_the_caller() {
    let certs = certificates();
    let pg = TestPostgres::own_with(Some("s3cret-superuser"), Some(certs.path()));
    let db = pg.new_database();
    let url = pg.url(&db);
    let with = |password: Option<&str>, ca: Option<&str>| {
        let mut o = PostgresOptions::new(url.clone());
        o.password = password.map(|p| zeroize::Zeroizing::new(p.to_owned()));
        o.ca_file = ca.map(|c| certs.path().join(c));
        o
    };
    // The right CA and password: TLS is used (the server reports the connection as SSL).
    let store = PostgresBackend::create(&with(Some("s3cret-superuser"), Some("ca.pem"))).unwrap();
    store.insert(&rec("1")).unwrap();
    let all = pg.psql(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keyward'",
    );
    let tls = pg.psql(
        &db,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE s.ssl AND a.application_name = 'keyward'",
    );
    assert_ne!(all, "0");
    assert_eq!(tls, all, "every keyward connection is TLS");
    drop(store);
    // A server certificate from another CA is refused; so is a wrong password, and the
    // messages show neither password.
    let e =
        PostgresBackend::open(&with(Some("s3cret-superuser"), Some("other-ca.pem"))).unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    let e = PostgresBackend::open(&with(Some("wrong-password"), Some("ca.pem"))).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("password"), "{shown}");
    assert!(
        !shown.contains("wrong-password") && !shown.contains("s3cret"),
        "{shown}"
    );
    let e = PostgresBackend::open(&with(None, Some("ca.pem"))).unwrap_err();
    assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
}
