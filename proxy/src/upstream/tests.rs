//! Pool tests against real local upstreams: hyper servers (plain and TLS) and raw TCP
//! servers on 127.0.0.1, configured through `keyward_config` like the binary does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU16;
use std::sync::Mutex;

use http::StatusCode;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::task::JoinHandle;

use super::pool::is_idempotent;
use super::*;
use crate::error::Error;
use crate::metrics::metrics;

/// Loads `pools_toml` through `keyward_config::Config::load`, with the listener and route a
/// valid file needs (the route goes to an extra pool, `unused`).
fn config(pools_toml: &str) -> keyward_config::Config {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyward.toml");
    std::fs::write(
        &file,
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:8443\"\n\
             [[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"web.pem\"\n\
             [[routes]]\nupstream = \"unused\"\n\
             [upstreams.unused]\nservers = [\"http://127.0.0.1:1\"]\n\
             {pools_toml}"
        ),
    )
    .unwrap();
    keyward_config::Config::load(&file, Vec::new()).unwrap()
}

/// Builds the pools of `pools_toml`.
fn pools(pools_toml: &str) -> Pools {
    Pools::build(&config(pools_toml).upstreams).unwrap()
}

fn gauge(pool: &str, server: &str) -> i64 {
    metrics()
        .upstream_healthy
        .with_label_values(&[pool, server])
        .get()
}

/// Polls `cond` every 10 ms until it holds; fails the test after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An address where nothing listens: connecting to it is refused.
async fn closed_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

fn request(method: Method, path: &str, body: &'static [u8]) -> UpstreamRequest {
    let (parts, ()) = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "client.test")
        .body(())
        .unwrap()
        .into_parts();
    UpstreamRequest {
        parts,
        body: Bytes::from_static(body),
        trailers: None,
    }
}

fn get(path: &str) -> UpstreamRequest {
    request(Method::GET, path, b"")
}

/// What a test upstream saw and how it answers.
struct State {
    /// Requests other than health checks.
    hits: AtomicUsize,
    /// `(path and query, Host)` of those requests.
    seen: Mutex<Vec<(String, String)>>,
    /// Status answered on `/health` (0 = 200).
    health_status: AtomicU16,
    health_passes: AtomicUsize,
    health_failures: AtomicUsize,
    /// `/hold` waits for a permit.
    release: Semaphore,
}

/// A hyper HTTP/1.1 upstream: `/health` answers `health_status`, `/hold` waits for a permit
/// of `release`, `/ws` upgrades to an echo protocol, anything else answers 200 `ok`.
struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    async fn start() -> Upstream {
        Upstream::serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), None)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn serve(listener: TcpListener, tls: Option<TlsAcceptor>) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            health_status: AtomicU16::new(0),
            health_passes: AtomicUsize::new(0),
            health_failures: AtomicUsize::new(0),
            release: Semaphore::new(0),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = Arc::clone(&st);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(Arc::clone(&st), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http
                                .serve_connection(TokioIo::new(stream), svc)
                                .with_upgrades()
                                .await;
                        }
                        None => {
                            let _ = http
                                .serve_connection(TokioIo::new(stream), svc)
                                .with_upgrades()
                                .await;
                        }
                    }
                });
            }
        });
        Upstream { addr, state, task }
    }
}

async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/health" {
        let status = match st.health_status.load(Ordering::SeqCst) {
            0 => 200,
            s => s,
        };
        if status == 200 {
            st.health_passes.fetch_add(1, Ordering::SeqCst);
        } else {
            st.health_failures.fetch_add(1, Ordering::SeqCst);
        }
        let mut resp = Response::new(Full::new(Bytes::from_static(b"health")));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        return Ok(resp);
    }
    if path == "/ws" {
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 64];
                if let Ok(n) = io.read(&mut buf).await {
                    let _ = io.write_all(&buf[..n]).await;
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::default())
            .unwrap();
        return Ok(resp);
    }
    let pq = req
        .uri()
        .path_and_query()
        .map_or("", |p| p.as_str())
        .to_owned();
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    st.seen.lock().unwrap().push((pq, host));
    st.hits.fetch_add(1, Ordering::SeqCst);
    if path == "/hold" {
        st.release.acquire().await.unwrap().forget();
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn body_of(resp: Response<Incoming>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn round_robin_spreads_and_prefixes_paths() {
    let (a, b, c) = (
        Upstream::start().await,
        Upstream::start().await,
        Upstream::start().await,
    );
    let pools = pools(&format!(
        "[upstreams.rr]\nservers = [\"{}\", \"{}\", \"{}/base/\"]\n",
        a.url(),
        b.url(),
        c.url()
    ));
    let pool = pools.get("rr").unwrap();
    assert_eq!(pool.name(), "rr");
    for server in [a.url(), b.url(), format!("{}/base", c.url())] {
        assert_eq!(gauge("rr", &server), 1, "{server} starts healthy");
    }
    let before = pool.request_duration.get_sample_count();
    for _ in 0..30 {
        let resp = pool.send(get("/x?y=1")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body_of(resp).await, "ok");
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 10));
    assert_eq!(pool.request_duration.get_sample_count() - before, 30);
    let seen = a.state.seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .all(|(pq, host)| pq == "/x?y=1" && host == "client.test"));
    let seen = c.state.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(pq, _)| pq == "/base/x?y=1"),
        "prefix prepended: {seen:?}"
    );
}

#[tokio::test]
async fn least_requests_prefers_the_idle_server() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let pools = pools(&format!(
        "[upstreams.lr]\nbalance = \"least_requests\"\nservers = [\"{}\", \"{}\"]\n",
        a.url(),
        b.url()
    ));
    let pool = pools.get("lr").unwrap();
    let held = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move { pool.send(get("/hold")).await.map(|r| r.status()) }
    });
    eventually("the held request to arrive", || a.hits() + b.hits() == 1).await;
    let (busy, idle) = if a.hits() == 1 { (&a, &b) } else { (&b, &a) };
    for _ in 0..20 {
        pool.send(get("/x")).await.unwrap();
    }
    assert_eq!(busy.hits(), 1, "the busy server got no other request");
    assert_eq!(idle.hits(), 20);
    busy.state.release.add_permits(1);
    assert_eq!(held.await.unwrap(), Ok(StatusCode::OK));
    // With nothing in flight, both servers are chosen again.
    for _ in 0..40 {
        pool.send(get("/x")).await.unwrap();
    }
    assert!(busy.hits() > 1, "the formerly busy server is used again");
    // A guard kept past the response headers keeps its server busy.
    let (_resp, guard) = pool.send_counted(get("/x")).await.unwrap();
    let kept = Arc::clone(&guard.0);
    let kept_hits = if kept.url == a.url() { &a } else { &b };
    let before = kept_hits.hits();
    for _ in 0..10 {
        pool.send(get("/x")).await.unwrap();
    }
    assert_eq!(
        kept_hits.hits(),
        before,
        "the server with a kept guard is busy"
    );
    drop(guard);
    assert_eq!(kept.in_flight.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn connect_failure_is_retried_for_get_not_post() {
    let good = Upstream::start().await;
    let closed = closed_addr().await;
    let pools = pools(&format!(
        "[upstreams.retry]\nmax_fails = 0\nretries = 1\nservers = [\"http://{closed}\", \"{}\"]\n\
         [upstreams.alone]\nmax_fails = 0\nservers = [\"http://{closed}\"]\n",
        good.url()
    ));
    let pool = pools.get("retry").unwrap();
    for method in [Method::GET, Method::GET, Method::PUT, Method::DELETE] {
        let resp = pool.send(request(method, "/x", b"data")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(good.hits(), 4);
    // Two POSTs in a row: round robin sends one of them to the refusing server.
    let mut results = Vec::new();
    for _ in 0..2 {
        results.push(
            pool.send(request(Method::POST, "/x", b"data"))
                .await
                .map(|r| r.status()),
        );
    }
    results.sort_by_key(|r| r.is_ok());
    assert_eq!(
        results,
        vec![Err(UpstreamError::Connect), Ok(StatusCode::OK)]
    );
    assert_eq!(good.hits(), 5);
    let alone = pools.get("alone").unwrap();
    assert_eq!(
        alone.send(get("/")).await.map(|r| r.status()),
        Err(UpstreamError::Connect)
    );
}

#[tokio::test]
async fn passive_ejection_and_return() {
    let good = Upstream::start().await;
    let closed = closed_addr().await;
    let closed_url = format!("http://{closed}");
    let pools = pools(&format!(
        "[upstreams.passive]\nmax_fails = 2\nfail_timeout_ms = 1500\nretries = 1\n\
         servers = [\"{closed_url}\", \"{}\"]\n",
        good.url()
    ));
    let pool = pools.get("passive").unwrap();
    let mut sent = 0;
    while gauge("passive", &closed_url) == 1 {
        assert!(sent < 10, "the refusing server was never ejected");
        let resp = pool.send(get("/x")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "retried on the good server");
        sent += 1;
    }
    // Two failures at one request in two: ejected on the second failure.
    assert!((3..=4).contains(&sent), "ejected after {sent} requests");
    // Bring the server up on the same address: while ejected it still gets nothing.
    let revived = Upstream::serve(TcpListener::bind(closed).await.unwrap(), None);
    for _ in 0..6 {
        pool.send(get("/x")).await.unwrap();
    }
    assert_eq!(gauge("passive", &closed_url), 0, "still inside the window");
    assert_eq!(revived.hits(), 0, "an ejected server gets no request");
    eventually("the ejection window to pass", || {
        gauge("passive", &closed_url) == 1
    })
    .await;
    for _ in 0..6 {
        pool.send(get("/x")).await.unwrap();
    }
    assert_eq!(revived.hits(), 3, "back in the rotation");
}

#[tokio::test]
async fn active_health_checks_fall_and_rise() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let pools = pools(&format!(
        "[upstreams.active]\nservers = [\"{}\", \"{}\"]\n\
         [upstreams.active.health_check]\npath = \"/health\"\ninterval_ms = 50\n\
         timeout_ms = 1000\nfall = 2\nrise = 3\n",
        a.url(),
        b.url()
    ));
    let pool = pools.get("active").unwrap();
    assert_eq!(pool.healthy_count(), 2);
    let baseline = Arc::strong_count(&pool);
    let checks = pools.start_health_checks();
    eventually("checks of both servers", || {
        a.state.health_passes.load(Ordering::SeqCst) > 0
            && b.state.health_passes.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(gauge("active", &a.url()), 1);

    a.state.health_status.store(500, Ordering::SeqCst);
    eventually("a to be marked unhealthy", || {
        gauge("active", &a.url()) == 0
    })
    .await;
    assert!(
        a.state.health_failures.load(Ordering::SeqCst) >= 2,
        "fall = 2"
    );
    let passes = a.state.health_passes.load(Ordering::SeqCst);
    let a_hits = a.hits();
    for _ in 0..10 {
        assert_eq!(pool.send(get("/x")).await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(a.hits(), a_hits, "an unhealthy server gets no request");
    assert_eq!(gauge("active", &b.url()), 1);

    a.state.health_status.store(0, Ordering::SeqCst);
    eventually("a to be healthy again", || gauge("active", &a.url()) == 1).await;
    assert!(
        a.state.health_passes.load(Ordering::SeqCst) - passes >= 3,
        "rise = 3"
    );
    for _ in 0..10 {
        pool.send(get("/x")).await.unwrap();
    }
    assert_eq!(a.hits() - a_hits, 5, "back in the rotation");

    drop(checks);
    eventually("the check tasks to end", || {
        Arc::strong_count(&pool) == baseline
    })
    .await;
}

#[tokio::test]
async fn all_unhealthy_is_no_server() {
    let a = Upstream::start().await;
    a.state.health_status.store(503, Ordering::SeqCst);
    let pools = pools(&format!(
        "[upstreams.down]\nservers = [\"{}\"]\n\
         [upstreams.down.health_check]\npath = \"/health\"\ninterval_ms = 20\nfall = 1\n",
        a.url()
    ));
    let _checks = pools.start_health_checks();
    eventually("a to be marked unhealthy", || gauge("down", &a.url()) == 0).await;
    let pool = pools.get("down").unwrap();
    assert_eq!(pool.healthy_count(), 0);
    assert_eq!(
        pool.send(get("/x")).await.map(|r| r.status()),
        Err(UpstreamError::NoServer)
    );
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn response_timeout_counts_as_a_failure() {
    let slow = Upstream::start().await;
    let pools = pools(&format!(
        "[upstreams.slow]\nresponse_timeout_ms = 200\nmax_fails = 1\nservers = [\"{}\"]\n",
        slow.url()
    ));
    let pool = pools.get("slow").unwrap();
    let started = Instant::now();
    assert_eq!(
        pool.send(get("/hold")).await.map(|r| r.status()),
        Err(UpstreamError::Timeout)
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(gauge("slow", &slow.url()), 0, "max_fails = 1 ejects");
    slow.state.release.add_permits(1);
}

/// A CA and a leaf for `upstream.test` and `localhost`; returns (CA PEM, TLS acceptor).
fn tls_upstream_identity() -> (String, TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "keyward test upstream CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["upstream.test".into(), "localhost".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn https_upstream_with_ca_file_and_server_name() {
    let (ca_pem, acceptor) = tls_upstream_identity();
    let (other_ca_pem, _) = tls_upstream_identity();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &ca_pem);
    let other_ca = write(dir.path(), "other.pem", &other_ca_pem);
    let up = Upstream::serve(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(acceptor),
    );
    let port = up.addr.port();
    let pools = pools(&format!(
        "[upstreams.tls_named]\ntls_ca_file = \"{ca}\"\ntls_server_name = \"upstream.test\"\n\
         servers = [\"https://127.0.0.1:{port}\"]\n\
         [upstreams.tls_host]\ntls_ca_file = \"{ca}\"\nservers = [\"https://localhost:{port}\"]\n\
         [upstreams.tls_wrong_ca]\ntls_ca_file = \"{other_ca}\"\ntls_server_name = \"upstream.test\"\n\
         servers = [\"https://127.0.0.1:{port}\"]\n\
         [upstreams.tls_wrong_name]\ntls_ca_file = \"{ca}\"\ntls_server_name = \"other.test\"\n\
         servers = [\"https://127.0.0.1:{port}\"]\n\
         [upstreams.tls_public_roots]\nservers = [\"https://127.0.0.1:{port}\"]\n"
    ));
    for name in ["tls_named", "tls_host"] {
        let resp = pools.get(name).unwrap().send(get("/secure")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert_eq!(body_of(resp).await, "ok");
    }
    assert_eq!(up.hits(), 2);
    for name in ["tls_wrong_ca", "tls_wrong_name", "tls_public_roots"] {
        assert_eq!(
            pools
                .get(name)
                .unwrap()
                .send(get("/secure"))
                .await
                .map(|r| r.status()),
            Err(UpstreamError::Connect),
            "{name}"
        );
    }
    assert_eq!(up.hits(), 2, "nothing sent over an unverified connection");
}

#[test]
fn unusable_ca_file_names_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "bad.pem", "not a certificate\n");
    for (file, want) in [
        (
            dir.path().join("missing.pem").display().to_string(),
            "not found",
        ),
        (not_pem, "no CERTIFICATE"),
    ] {
        let config = config(&format!(
            "[upstreams.badca]\ntls_ca_file = \"{file}\"\nservers = [\"https://127.0.0.1:1\"]\n"
        ));
        let err = Pools::build(&config.upstreams).err().unwrap();
        let text = err.to_string();
        assert!(
            matches!(&err, Error::Upstream { pool, .. } if pool == "badca"),
            "{text}"
        );
        assert!(text.contains(want), "{text}");
    }
}

/// A raw HTTP/1.1 upstream that answers `204` and closes, and sends each request's bytes.
async fn raw_capture() -> (SocketAddr, mpsc::UnboundedReceiver<String>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if request_complete(&buf) {
                    break;
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (addr, rx, task)
}

/// Whether `buf` holds a whole request (Content-Length or chunked with trailers).
fn request_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf).to_ascii_lowercase();
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let (head, body) = (&text[..end], &text[end + 4..]);
    if head.contains("transfer-encoding: chunked") {
        return body.contains("0\r\n") && body.ends_with("\r\n\r\n");
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    body.len() >= length
}

#[tokio::test]
async fn body_framing_and_trailers_reach_the_upstream() {
    let (addr, mut seen, task) = raw_capture().await;
    let pools = pools(&format!("[upstreams.raw]\nservers = [\"http://{addr}\"]\n"));
    let pool = pools.get("raw").unwrap();

    let mut with_trailers = request(Method::POST, "/grpc", b"hello");
    with_trailers
        .parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    with_trailers.trailers = Some(trailers);
    let resp = pool.send(with_trailers).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let req = seen.recv().await.unwrap();
    assert!(req.starts_with("POST /grpc HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("transfer-encoding: chunked\r\n"), "{req}");
    assert!(req.contains("trailer: x-checksum\r\n"), "{req}");
    assert!(!req.contains("content-length"), "{req}");
    assert!(req.contains("host: client.test\r\n"), "{req}");
    assert!(
        req.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n"),
        "{req}"
    );

    let mut plain = request(Method::POST, "/plain", b"hello");
    plain
        .parts
        .headers
        .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    pool.send(plain).await.unwrap();
    let req = seen.recv().await.unwrap();
    assert!(req.contains("content-length: 5\r\n"), "{req}");
    assert!(!req.contains("transfer-encoding"), "{req}");
    assert!(req.ends_with("\r\n\r\nhello"), "{req}");

    pool.send(request(Method::POST, "/empty", b""))
        .await
        .unwrap();
    let req = seen.recv().await.unwrap();
    assert!(req.contains("content-length: 0\r\n"), "{req}");

    pool.send(get("/get")).await.unwrap();
    let req = seen.recv().await.unwrap();
    assert!(req.starts_with("GET /get HTTP/1.1\r\n"), "{req}");
    assert!(!req.contains("content-length"), "{req}");
    assert!(!req.contains("transfer-encoding"), "{req}");
    task.abort();
}

#[tokio::test]
async fn upgrade_is_passed_through() {
    let up = Upstream::start().await;
    let pools = pools(&format!("[upstreams.ws]\nservers = [\"{}\"]\n", up.url()));
    let mut req = get("/ws");
    req.parts
        .headers
        .insert("connection", HeaderValue::from_static("upgrade"));
    req.parts
        .headers
        .insert("upgrade", HeaderValue::from_static("echo"));
    let resp = pools.get("ws").unwrap().send(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

/// A TCP server that writes `hello` to every connection.
async fn greeter() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"hello").await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn connect_tcp_tries_the_next_server() {
    let (addr, task) = greeter().await;
    let closed = closed_addr().await;
    let pools = pools(&format!(
        "[upstreams.l4]\nmax_fails = 0\nservers = [\"tcp://{closed}\", \"tcp://{addr}\"]\n\
         [upstreams.l4_alone]\nmax_fails = 1\nservers = [\"tcp://{closed}\"]\n"
    ));
    let pool = pools.get("l4").unwrap();
    for _ in 0..3 {
        let (mut stream, in_flight) = pool.connect_tcp().await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
        assert_eq!(in_flight.0.in_flight.load(Ordering::SeqCst), 1);
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        let server = Arc::clone(&in_flight.0);
        drop(in_flight);
        assert_eq!(server.in_flight.load(Ordering::SeqCst), 0);
    }
    let alone = pools.get("l4_alone").unwrap();
    assert_eq!(
        alone.connect_tcp().await.err(),
        Some(UpstreamError::Connect)
    );
    assert_eq!(
        alone.connect_tcp().await.err(),
        Some(UpstreamError::NoServer),
        "ejected after max_fails = 1"
    );
    task.abort();
}

#[test]
fn idempotent_methods_follow_rfc_9110() {
    for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
        assert!(
            is_idempotent(&Method::from_bytes(m.as_bytes()).unwrap()),
            "{m}"
        );
    }
    for m in ["POST", "PATCH", "CONNECT", "LOCK"] {
        assert!(
            !is_idempotent(&Method::from_bytes(m.as_bytes()).unwrap()),
            "{m}"
        );
    }
}

/// A raw HTTP/1.1 upstream that answers the first request of each connection (`200`, with a
/// length, keep-alive) and then reads the next request and closes without a byte of answer:
/// what a server does when its keep-alive timer fires as a request arrives. `reset`: close
/// with RST (SO_LINGER 0) instead of FIN. Counts answered and dropped requests.
struct Forgetful {
    addr: SocketAddr,
    answered: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Forgetful {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Forgetful {
    async fn start(reset: bool) -> Forgetful {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (a, d) = (answered.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (a, d) = (a.clone(), d.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    let mut served = 0;
                    loop {
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if !request_complete(&buf) {
                            continue;
                        }
                        buf.clear();
                        if served == 0 {
                            served += 1;
                            a.fetch_add(1, Ordering::SeqCst);
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await;
                            continue;
                        }
                        d.fetch_add(1, Ordering::SeqCst);
                        if reset {
                            #[allow(
                                deprecated,
                                reason = "a zero linger resets at once; nothing blocks on drop"
                            )]
                            let _ = stream.set_linger(Some(Duration::ZERO));
                        }
                        return; // Closed without an answer.
                    }
                });
            }
        });
        Forgetful {
            addr,
            answered,
            dropped,
            task,
        }
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn retried(pool: &str, reason: &str) -> u64 {
    metrics()
        .upstream_retries
        .with_label_values(&[pool, reason])
        .get()
}

#[tokio::test]
async fn a_reused_connection_closed_before_any_response_byte_is_retried_on_a_new_one() {
    for (name, reset) in [("stale_fin", false), ("stale_rst", true)] {
        let up = Forgetful::start(reset).await;
        let pools = pools(&format!(
            "[upstreams.{name}]\nmax_fails = 1\nretries = 0\nservers = [\"http://{}\"]\n",
            up.addr
        ));
        let pool = pools.get(name).unwrap();
        for method in [Method::GET, Method::PUT, Method::GET, Method::DELETE] {
            for _ in 0..3 {
                let resp = pool.send(request(method.clone(), "/x", b"data")).await;
                let resp = resp.unwrap_or_else(|e| panic!("{name} {method}: {e:?}"));
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(body_of(resp).await, "ok");
            }
        }
        // Every request that met a closed reused connection was sent once more, and nothing
        // else was: the retries are exactly the dropped requests.
        assert!(up.dropped() >= 1, "{name}: no connection was reused");
        assert_eq!(retried(name, "closed_idle"), up.dropped() as u64, "{name}");
        assert_eq!(up.answered.load(Ordering::SeqCst), 12, "{name}");
        // A stale connection is not a failure of the server (max_fails = 1).
        assert_eq!(pool.healthy_count(), 1, "{name}");
        assert_eq!(retried(name, "connect"), 0);
    }
}

#[tokio::test]
async fn a_post_written_on_a_stale_connection_is_not_sent_again() {
    let up = Forgetful::start(false).await;
    let pools = pools(&format!(
        "[upstreams.stale_post]\nmax_fails = 0\nservers = [\"http://{}\"]\n",
        up.addr
    ));
    let pool = pools.get("stale_post").unwrap();
    // The first POST of a connection is answered; a POST on a reused connection reaches the
    // server, which closes without answering: 502, never a second copy.
    let mut failed = None;
    for attempt in 0..20 {
        let dropped = up.dropped();
        match pool.send(request(Method::POST, "/x", b"data")).await {
            Ok(resp) => {
                let _ = body_of(resp).await;
            }
            Err(e) => {
                assert_eq!(e, UpstreamError::Failed);
                assert_eq!(
                    up.dropped(),
                    dropped + 1,
                    "the POST reached the server once"
                );
                failed = Some(attempt);
                break;
            }
        }
    }
    assert!(failed.is_some(), "no POST met a reused connection");
    assert_eq!(retried("stale_post", "closed_idle"), 0);
}

/// A raw keep-alive upstream that answers every request `200` and reports, per connection,
/// how long after its last answer the proxy closed it; also counts connections.
async fn idle_meter() -> (
    SocketAddr,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<Duration>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                let mut answered = Instant::now();
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        let _ = tx.send(answered.elapsed());
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if request_complete(&buf) {
                        buf.clear();
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        answered = Instant::now();
                    }
                }
            });
        }
    });
    (addr, connections, rx)
}

/// What hyper-util's pool does with `pool_idle_timeout_ms` (the basis of its default): a
/// connection idle for less is reused; one idle for longer is never handed out again (checked
/// at checkout), and its idle sweep, which runs once per timeout, closes it between one and
/// two timeouts after its last use.
#[tokio::test]
async fn idle_connections_are_reused_within_the_idle_timeout_and_closed_within_two() {
    let (addr, connections, mut closed) = idle_meter().await;
    let pools = pools(&format!(
        "[upstreams.idle]\npool_idle_timeout_ms = 400\nservers = [\"http://{addr}\"]\n"
    ));
    let pool = pools.get("idle").unwrap();
    let timeout = Duration::from_millis(400);
    let _ = body_of(pool.send(get("/1")).await.unwrap()).await;
    // Idle for a quarter of the timeout (the idle time is what is tested): reused.
    tokio::time::sleep(timeout / 4).await;
    let _ = body_of(pool.send(get("/2")).await.unwrap()).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "reused within the timeout"
    );
    let idle_for = tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("the proxy closes an idle connection")
        .unwrap();
    assert!(
        idle_for >= timeout && idle_for < timeout * 2 + Duration::from_millis(200),
        "closed after {idle_for:?} idle"
    );
    // After the timeout: a new connection.
    let _ = body_of(pool.send(get("/3")).await.unwrap()).await;
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idempotent_request_on_a_first_exchange_closed_without_an_answer_is_sent_once_more() {
    // The first connection is closed at its first request without an answer (as a pooled,
    // never-used connection the server timed out is); later connections answer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let first = s.fetch_add(1, Ordering::SeqCst) == 0;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if request_complete(&buf) {
                        break;
                    }
                }
                if !first {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    let pools = pools(&format!(
        "[upstreams.first_close]\nmax_fails = 1\nretries = 0\nservers = [\"http://{addr}\"]\n"
    ));
    let pool = pools.get("first_close").unwrap();
    let resp = pool.send(request(Method::GET, "/x", b"")).await.unwrap();
    assert_eq!(body_of(resp).await, "ok");
    assert_eq!(retried("first_close", "closed_idle"), 1);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(pool.healthy_count(), 1);
    task.abort();
}
