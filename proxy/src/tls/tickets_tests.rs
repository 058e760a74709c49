//! Session tickets under HSM keys and under keys released by remote nodes: rotation, the
//! window of keys accepted, readers following a writer, the ticket format.

use std::sync::atomic::AtomicU64;

use keyward_hsm::test_util::{TestHsm, TestStore};
use keyward_hsm::PROXY_USER;

use super::*;

const ROTATION_S: u64 = 100;

fn store() -> (TestStore, Arc<Hsm>) {
    let (store, hsm) = TestHsm::new().into_parts();
    (store, Arc::new(hsm))
}

fn read_only(s: &TestStore) -> Arc<Hsm> {
    Arc::new(s.open_read_only().unwrap())
}

fn ticketer(hsm: &Arc<Hsm>, role: NodeRole, clock: &Arc<AtomicU64>) -> HsmTicketer {
    let c = clock.clone();
    let t = HsmTicketer::new(
        Source::Local {
            hsm: hsm.clone(),
            session: hsm.service_session(PROXY_USER).unwrap(),
            role,
        },
        ROTATION_S,
        Box::new(move || c.load(Ordering::Relaxed)),
    )
    .unwrap();
    t.inner.maintain().unwrap();
    t
}

fn ticket_labels(hsm: &Hsm) -> Vec<String> {
    let me = hsm.service_session(PROXY_USER).unwrap();
    let mut v: Vec<String> = hsm
        .list_keys(&me, &KeyFilter::default(), None, MAX_PAGE_SIZE)
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.attributes.label)
        .filter(|l| l.starts_with(LABEL_PREFIX))
        .collect();
    v.sort();
    v
}

#[test]
fn tickets_round_trip_and_edited_or_foreign_tickets_are_refused() {
    let (_s, hsm) = store();
    let clock = Arc::new(AtomicU64::new(1_000 * ROTATION_S + 5));
    let t = ticketer(&hsm, NodeRole::Writer, &clock);
    assert!(t.enabled());
    assert_eq!(t.lifetime(), 100);
    let plain = b"resumption state".to_vec();
    let ticket = t.encrypt(&plain).unwrap();
    assert_eq!(ticket.len(), 16 + 12 + plain.len() + 16);
    assert_eq!(&ticket[..8], &1_000u64.to_be_bytes());
    assert_eq!(t.decrypt(&ticket).unwrap(), plain);
    for at in [0, 8, 16, 30, ticket.len() - 1] {
        let mut bad = ticket.clone();
        bad[at] ^= 1;
        assert_eq!(t.decrypt(&bad), None, "byte {at} flipped");
    }
    assert_eq!(t.decrypt(&ticket[..43]), None);
    assert_eq!(t.decrypt(b""), None);
    // Another store's ticketer, same period: another key, refused.
    let (_s2, other) = store();
    let t2 = ticketer(&other, NodeRole::Writer, &clock);
    assert_eq!(t2.decrypt(&ticket), None);
    // The keys are what the module says.
    let me = hsm.service_session(PROXY_USER).unwrap();
    let key = hsm
        .find_by_label(&me, "tls-ticket-key-1000", KeyClass::Secret)
        .unwrap();
    let a = &key.attributes;
    assert!(a.encrypt && a.decrypt && !a.sign && !a.extractable && a.never_extractable);
    assert_eq!(key.spec, KeySpec::Aes256);
    assert_eq!(key.owner, PROXY_USER);
    assert_eq!(&ticket[8..16], &key.handle.0.to_be_bytes());
    let debug = format!("{t:?}");
    assert!(
        debug.contains("1000") && debug.contains("Writer"),
        "{debug}"
    );
}

#[test]
fn rotation_keeps_the_previous_key_and_drops_older_ones() {
    let (_s, hsm) = store();
    let clock = Arc::new(AtomicU64::new(1_000 * ROTATION_S));
    let t = ticketer(&hsm, NodeRole::Writer, &clock);
    assert_eq!(
        ticket_labels(&hsm),
        ["tls-ticket-key-1000", "tls-ticket-key-1001"]
    );
    let first = t.encrypt(b"one").unwrap();

    clock.store(1_001 * ROTATION_S + 1, Ordering::Relaxed);
    t.inner.maintain().unwrap();
    assert_eq!(
        ticket_labels(&hsm),
        [
            "tls-ticket-key-1000",
            "tls-ticket-key-1001",
            "tls-ticket-key-1002"
        ]
    );
    let second = t.encrypt(b"two").unwrap();
    assert_eq!(&second[..8], &1_001u64.to_be_bytes());
    assert_eq!(t.decrypt(&first).unwrap(), b"one", "previous key accepted");
    assert_eq!(t.decrypt(&second).unwrap(), b"two");

    clock.store(1_002 * ROTATION_S + 1, Ordering::Relaxed);
    // Even before maintenance runs, the hot path refuses the expired key.
    assert_eq!(t.decrypt(&first), None, "two periods old");
    assert_eq!(t.decrypt(&second).unwrap(), b"two");
    t.inner.maintain().unwrap();
    assert_eq!(
        ticket_labels(&hsm),
        [
            "tls-ticket-key-1001",
            "tls-ticket-key-1002",
            "tls-ticket-key-1003"
        ],
        "the key older than the previous period is destroyed"
    );
    assert_eq!(t.decrypt(&first), None);
    assert_eq!(t.decrypt(&second).unwrap(), b"two");

    // A rotation setting that changed: keys far in the future are destroyed too.
    clock.store(3_000 * ROTATION_S, Ordering::Relaxed);
    t.inner.maintain().unwrap();
    clock.store(1_003 * ROTATION_S, Ordering::Relaxed);
    t.inner.maintain().unwrap();
    assert_eq!(
        ticket_labels(&hsm),
        ["tls-ticket-key-1003", "tls-ticket-key-1004"]
    );
}

#[test]
fn a_reader_over_the_same_store_resumes_the_writers_tickets_and_learns_new_keys() {
    let (s, hsm) = store();
    let clock = Arc::new(AtomicU64::new(1_000 * ROTATION_S));
    let writer = ticketer(&hsm, NodeRole::Writer, &clock);
    let reader_hsm = read_only(&s);
    let reader = ticketer(&reader_hsm, NodeRole::Reader, &clock);
    let from_writer = writer.encrypt(b"w").unwrap();
    let from_reader = reader.encrypt(b"r").unwrap();
    assert_eq!(reader.decrypt(&from_writer).unwrap(), b"w");
    assert_eq!(writer.decrypt(&from_reader).unwrap(), b"r");
    assert_eq!(&from_writer[..16], &from_reader[..16], "the same key");

    // Next period: the reader already knows its key (made a period ahead).
    clock.store(1_001 * ROTATION_S, Ordering::Relaxed);
    let r2 = reader.encrypt(b"r2").unwrap();
    assert_eq!(&r2[..8], &1_001u64.to_be_bytes());
    assert_eq!(writer.decrypt(&r2).unwrap(), b"r2");
    // The writer makes the key after next; the reader learns it on its next run.
    writer.inner.maintain().unwrap();
    clock.store(1_002 * ROTATION_S, Ordering::Relaxed);
    writer.inner.maintain().unwrap();
    let w3 = writer.encrypt(b"w3").unwrap();
    assert_eq!(reader.decrypt(&w3), None, "not learned yet");
    reader.inner.maintain().unwrap();
    assert_eq!(reader.decrypt(&w3).unwrap(), b"w3");
    assert_eq!(
        reader.decrypt(&from_writer),
        None,
        "expired on the reader too"
    );
    // The reader never wrote: the writer's view of the store is still consistent.
    drop(reader);
    drop(reader_hsm);
    s.open().unwrap();
}

#[test]
fn a_reader_without_keys_issues_no_tickets_and_counts_an_hsm_error() {
    let (s, hsm) = store();
    drop(hsm);
    let clock = Arc::new(AtomicU64::new(1_000 * ROTATION_S));
    let reader_hsm = read_only(&s);
    let reader = ticketer(&reader_hsm, NodeRole::Reader, &clock);
    let before = metrics().hsm_errors.get();
    assert_eq!(reader.encrypt(b"x"), None);
    assert!(metrics().hsm_errors.get() > before);
}

#[tokio::test]
async fn a_reader_re_reads_the_store_soon_after_it_sees_an_unknown_key_name() {
    let (s, hsm) = store();
    let reader_hsm = read_only(&s);
    let reader_me = reader_hsm.service_session(PROXY_USER).unwrap();
    // The reader starts first: no keys yet.
    let reader =
        super::ticketer(&reader_hsm, &reader_me, &resumption(""), NodeRole::Reader).unwrap();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let writer = super::ticketer(&hsm, &me, &resumption(""), NodeRole::Writer).unwrap();
    let ticket = writer.encrypt(b"state").unwrap();
    // The first refusal wakes the reader's background task, which loads the new keys long
    // before its next scheduled run (a minute away).
    assert_eq!(reader.decrypt(&ticket), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(plain) = reader.decrypt(&ticket) {
            assert_eq!(plain, b"state");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reader did not learn the writer's key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reader.encrypt(b"now").is_some());
}

fn resumption(extra: &str) -> ResumptionConfig {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyward.toml");
    std::fs::write(
        &file,
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"web.pem\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n[session_resumption]\n{extra}\n"
        ),
    )
    .unwrap();
    keyward_config::Config::load(&file, std::iter::empty())
        .unwrap()
        .session_resumption
}

#[tokio::test]
async fn the_configured_ticketer_is_disabled_or_hsm_backed_with_a_clamped_lifetime() {
    let (_s, hsm) = store();
    let me = hsm.service_session(PROXY_USER).unwrap();
    let off = super::ticketer(&hsm, &me, &resumption("tickets = false"), NodeRole::Writer).unwrap();
    assert!(!off.enabled());
    assert_eq!(off.encrypt(b"x"), None);
    assert!(ticket_labels(&hsm).is_empty(), "no keys made when disabled");

    let on = super::ticketer(
        &hsm,
        &me,
        &resumption("ticket_key_rotation_s = 2592000"),
        NodeRole::Writer,
    )
    .unwrap();
    assert!(on.enabled());
    assert_eq!(on.lifetime(), 604_800, "RFC 8446 §4.6.1: at most 7 days");
    let ticket = on.encrypt(b"state").unwrap();
    assert_eq!(on.decrypt(&ticket).unwrap(), b"state");
    assert_eq!(ticket_labels(&hsm).len(), 2);
    let default = resumption("");
    assert_eq!(default.ticket_key_rotation_s, 21_600);
}
