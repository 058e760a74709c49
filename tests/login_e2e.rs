//! Logins against a real `keyward hsm serve` under attack: a flood of concurrent bad logins
//! keeps the node's memory bounded, is answered `429` beyond what the node checks at once, and
//! does not keep an operator from logging in; failures from one address are throttled.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::*;

const ADMIN_PASSWORD: &str = "admin-password-1";

/// `keyward init` into `dir/hsm`, then `keyward hsm serve` on a free loopback port.
fn start_node(dir: &Path) -> (Running, SocketAddr, std::path::PathBuf) {
    let data = dir.join("hsm");
    init_hsm(&data, ADMIN_PASSWORD);
    let (node, addr) = start_hsm_serve(&data, &[]);
    (node, addr, data.join("api-ca.pem"))
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// An HTTP/1.1 connection to the API over TLS, from `source`.
struct ApiConnection(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl ApiConnection {
    async fn open(addr: SocketAddr, source: IpAddr, tls: Arc<rustls::ClientConfig>) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .unwrap();
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        ApiConnection(send)
    }

    /// `POST /v1/auth/login`; the status and the `Retry-After` header.
    async fn login(&mut self, user: &str, password: &str) -> (u16, Option<u64>) {
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        let req = http::Request::post("/v1/auth/login")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.0.ready().await.unwrap();
        let res = self.0.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        res.into_body().collect().await.unwrap();
        (status, retry)
    }
}

fn tls_for(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut c = (*client_config(&[ca])).clone();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

#[test]
fn a_login_flood_keeps_memory_bounded_gets_429_and_an_operator_still_logs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, addr, ca) = start_node(tmp.path());
    let pid = node.child.id();
    let tls = tls_for(&ca);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = rss_bytes(pid);
    const LIMIT: u64 = 300 * 1024 * 1024;

    let stop = Arc::new(AtomicBool::new(false));
    let (unauthorized, throttled, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    // 300 concurrent connections from 10 source addresses (an attacker with a few hosts), each
    // sending bad logins for unknown users until stopped; a 429 pauses a worker for 10 ms
    // (this machine's two cores are shared with the node).
    let workers: Vec<_> = (0..300)
        .map(|i| {
            let (tls, stop) = (tls.clone(), stop.clone());
            let counts = (unauthorized.clone(), throttled.clone(), other.clone());
            rt.spawn(async move {
                let source = IpAddr::from([127, 0, 1, (i % 10 + 1) as u8]);
                let mut c = ApiConnection::open(addr, source, tls).await;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match c.login(&format!("flood-{i}-{n}"), "wrong-password").await.0 {
                        401 => counts.0.fetch_add(1, Ordering::Relaxed),
                        429 => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            counts.1.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => counts.2.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // Wait until the flood is on: the node refuses logins with 429, and has checked (and
    // recorded as failed) a first round of the flood's passwords.
    let started = Instant::now();
    while throttled.load(Ordering::Relaxed) < 300 || unauthorized.load(Ordering::Relaxed) < 20 {
        assert!(started.elapsed() < DEADLINE, "the flood never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut peak = rss_bytes(pid);

    // During the flood an operator, from an address that has not failed, logs in within 2 s
    // (retrying when told to).
    let begin = Instant::now();
    let status = rt.block_on(async {
        let mut c = ApiConnection::open(addr, [127, 0, 0, 2].into(), tls.clone()).await;
        loop {
            let (status, retry) = c.login("admin", ADMIN_PASSWORD).await;
            if status != 429 || begin.elapsed() > Duration::from_secs(2) {
                return status;
            }
            assert_eq!(retry, Some(1), "a busy node says when to retry");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let took = begin.elapsed();
    assert_eq!(status, 200, "the operator's login during the flood");
    assert!(
        took < Duration::from_secs(2),
        "the operator waited {took:?}"
    );

    // Keep the flood on for a few more seconds, sampling memory.
    let flood_end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < flood_end {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for w in workers {
            w.await.unwrap();
        }
    });
    let (u, t, o) = (
        unauthorized.load(Ordering::Relaxed),
        throttled.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    eprintln!(
        "flood: {u} answered 401, {t} answered 429, {o} other; RSS before {} MiB, peak {} MiB",
        before >> 20,
        peak >> 20
    );
    assert_eq!(o, 0, "every flood request got 401 or 429");
    assert!(
        u > 0 && t > u,
        "excess logins are refused with 429 ({u} vs {t})"
    );
    assert!(peak < LIMIT, "RSS peaked at {} MiB", peak >> 20);

    // And 60 s after, memory is still bounded (and the node still answers).
    let after_end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < after_end {
        let rss = rss_bytes(pid);
        assert!(rss < LIMIT, "RSS {} MiB after the flood", rss >> 20);
        std::thread::sleep(Duration::from_secs(1));
    }
    let status = rt.block_on(async {
        let mut c = ApiConnection::open(addr, [127, 0, 0, 3].into(), tls.clone()).await;
        c.login("admin", ADMIN_PASSWORD).await.0
    });
    assert_eq!(status, 200);
}

#[test]
fn repeated_failures_from_one_address_are_refused_with_429_until_the_delay_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_node, addr, ca) = start_node(tmp.path());
    let tls = tls_for(&ca);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let source: IpAddr = [127, 0, 2, 1].into();
        let mut c = ApiConnection::open(addr, source, tls.clone()).await;
        // Ten free failures (different names, so the per-name throttle stays out of it).
        for i in 0..10 {
            assert_eq!(
                c.login(&format!("guess-{i}"), "wrong-password").await.0,
                401
            );
        }
        // Then the address waits, whatever the name and even with a right password.
        let (status, retry) = c.login("admin", ADMIN_PASSWORD).await;
        assert_eq!((status, retry), (429, Some(1)));
        // Another address is not affected.
        let mut other = ApiConnection::open(addr, [127, 0, 2, 2].into(), tls.clone()).await;
        assert_eq!(other.login("admin", ADMIN_PASSWORD).await.0, 200);
        // After the delay, the address may try again; each further failure doubles it.
        let begin = Instant::now();
        let status = loop {
            let (status, _) = c.login("admin", ADMIN_PASSWORD).await;
            if status != 429 {
                break status;
            }
            assert!(begin.elapsed() < DEADLINE);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status, 200);
        assert!(begin.elapsed() >= Duration::from_millis(500));
    });
}

/// Sends a request head announcing a `body_len` body and its first 64 KiB, then reads the
/// status line: a node that buffered the body before answering would wait for the rest (and
/// this read would time out).
fn status_of_big_body(addr: SocketAddr, ca: &Path, path: &str, body_len: usize) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let mut tls = tls_connect(addr, ca);
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&vec![b'a'; 64 * 1024]).unwrap();
    tls.flush().unwrap();
    let mut line = String::new();
    BufReader::new(tls).read_line(&mut line).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn unauthenticated_callers_cannot_make_the_node_buffer_large_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, addr, ca) = start_node(tmp.path());
    let pid = node.child.id();
    const BODY: usize = 20_000_000;
    // 20 at once, each announcing a 20 MB body: a login body is refused past its 4 KiB limit,
    // any other route for want of a session, before the body is read.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let jobs: Vec<_> = (0..20)
            .map(|i| {
                let ca = &ca;
                s.spawn(move || {
                    let path = if i % 2 == 0 {
                        "/v1/auth/login"
                    } else {
                        "/v1/crypto/sign"
                    };
                    status_of_big_body(addr, ca, path, BODY)
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(*s, if i % 2 == 0 { 413 } else { 401 }, "request {i}");
    }
    let rss = rss_bytes(pid);
    assert!(rss < 150 * 1024 * 1024, "RSS {} MiB", rss >> 20);
}

/// A request that announces a body over its route's limit and sends none: the status, read
/// within 10 s (the body timeout is 60 s, so only a refusal before the body answers in time).
fn status_of_announced_body(addr: SocketAddr, ca: &Path, path: &str, body_len: usize) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let mut tls = tls_connect(addr, ca);
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    tls.get_ref()
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(tls)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{path}: no answer before the body came: {e}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_body_announced_over_the_limit_is_refused_before_it_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let (_node, addr, ca) = start_node(tmp.path());
    for (path, len) in [
        ("/v1/auth/login", 4097),
        ("/v1/sys/unseal", 8193),
        ("/v1/ca/any/ocsp", 16385),
        ("/v1/crypto/sign", 24 * 1024 * 1024 + 1),
    ] {
        assert_eq!(
            status_of_announced_body(addr, &ca, path, len),
            413,
            "{path}"
        );
    }
}
