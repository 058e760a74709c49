//! The load loops: closed-loop and open-loop handshakes, keep-alive requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::HandshakeKind;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::cli::{CommonArgs, HandshakeArgs, HttpVersion, IdleArgs, RequestArgs};
use crate::report::{ErrorKind, Idle, Negotiated, Outcome, Report, Signatures, Stats};
use crate::tls::{client_config, Observed, TlsOptions};

/// An open-loop start this far behind its scheduled time counts as late. Tokio's timer
/// has millisecond resolution, so anything below about 1 ms is timer noise.
pub const LATE_START: Duration = Duration::from_millis(2);

/// Duration of a run when neither `--duration` nor `--count` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Where and how every connection of a run goes.
struct Target {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    /// `host[:port]` for the `Host` header and the h2 `:authority`.
    authority: String,
    path: String,
    connector: TlsConnector,
    timeout: Duration,
    negotiated: OnceLock<Negotiated>,
    observed: Arc<Observed>,
    /// The message of the first failed TLS handshake.
    first_tls_error: OnceLock<String>,
}

impl Target {
    /// What was negotiated, with the signature scheme the verifier saw.
    fn negotiated(&self) -> Option<Negotiated> {
        let mut n = self.negotiated.get().cloned()?;
        n.signature_scheme = self
            .observed
            .signature_scheme
            .get()
            .map(|s| format!("{s:?}"));
        Some(n)
    }

    /// The report of a run against this target.
    fn report(
        &self,
        mode: &'static str,
        common: &CommonArgs,
        settings: BTreeMap<&'static str, serde_json::Value>,
        stats: &Stats,
        elapsed: Duration,
        cpu: Duration,
    ) -> Report {
        let mut report = Report::new(
            mode,
            common.target.clone(),
            settings,
            stats,
            elapsed,
            cpu,
            self.negotiated(),
        );
        report.server_signatures = self.signatures();
        report.first_tls_error = self.first_tls_error.get().cloned();
        report
    }

    fn signatures(&self) -> Signatures {
        Signatures {
            verified: self.observed.verified.load(Ordering::Relaxed),
            unchecked: self.observed.unchecked.load(Ordering::Relaxed),
        }
    }
}

/// When to stop starting operations.
struct Stop {
    deadline: Option<Instant>,
    count: Option<u64>,
    started: AtomicU64,
}

impl Stop {
    fn new(common: &CommonArgs, start: Instant) -> Stop {
        let duration = match (common.duration, common.count) {
            (Some(d), _) => Some(d),
            (None, None) => Some(DEFAULT_DURATION),
            (None, Some(_)) => None,
        };
        Stop {
            deadline: duration.map(|d| start + d),
            count: common.count,
            started: AtomicU64::new(0),
        }
    }

    /// Claims one operation; false once the deadline has passed or the count is used up.
    fn take(&self, now: Instant) -> bool {
        if self.deadline.is_some_and(|d| now >= d) {
            return false;
        }
        match self.count {
            Some(count) => self.started.fetch_add(1, Ordering::Relaxed) < count,
            None => true,
        }
    }
}

type Tx = mpsc::UnboundedSender<Outcome>;

/// Runs `handshake` mode and returns its report.
///
/// # Errors
/// Bad TLS settings or files, or an unresolvable target; failures of individual
/// connections are counted in the report instead.
pub async fn handshake(args: HandshakeArgs) -> anyhow::Result<Report> {
    let common = &args.common;
    let target = Arc::new(target(common, args.resume, vec![b"http/1.1".to_vec()]).await?);
    let mut settings = settings(common);
    settings.insert("resume", json!(args.resume));
    settings.insert("request", json!(args.request));
    let (tx, collector) = collector();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let stop = Arc::new(Stop::new(common, start));
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
        settings.insert("rate", json!(rate));
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut i: u32 = 0;
        loop {
            let scheduled = start + period * i;
            i = i.checked_add(1).context("too many scheduled starts")?;
            if !stop.take(scheduled) {
                break;
            }
            tokio::time::sleep_until(scheduled).await;
            if scheduled.elapsed() > LATE_START {
                let _ = tx.send(Outcome::LateStart);
            }
            let (target, tx) = (target.clone(), tx.clone());
            tokio::spawn(async move { handshake_op(&target, args.request, scheduled, &tx).await });
        }
    } else {
        let connections = args.connections.unwrap_or(1).max(1);
        settings.insert("connections", json!(connections));
        for _ in 0..connections {
            let (target, stop, tx) = (target.clone(), stop.clone(), tx.clone());
            tokio::spawn(async move {
                loop {
                    let t0 = Instant::now();
                    if !stop.take(t0) {
                        break;
                    }
                    handshake_op(&target, args.request, t0, &tx).await;
                }
            });
        }
    }
    drop(tx);
    let stats = collector.await.context("collector task")?;
    let (elapsed, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu0));
    Ok(target.report("handshake", common, settings, &stats, elapsed, cpu))
}

/// Runs `request` mode and returns its report.
///
/// # Errors
/// As [`handshake`].
pub async fn request(args: RequestArgs) -> anyhow::Result<Report> {
    let common = &args.common;
    let alpn = match args.http {
        HttpVersion::Http1 => b"http/1.1".to_vec(),
        HttpVersion::Http2 => b"h2".to_vec(),
    };
    let target = Arc::new(target(common, false, vec![alpn]).await?);
    let connections = args.connections.max(1);
    let mut settings = settings(common);
    settings.insert("connections", json!(connections));
    settings.insert(
        "http",
        json!(if args.http == HttpVersion::Http1 {
            "1.1"
        } else {
            "2"
        }),
    );
    let (tx, collector) = collector();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let stop = Arc::new(Stop::new(common, start));
    for _ in 0..connections {
        let (target, stop, tx) = (target.clone(), stop.clone(), tx.clone());
        let http = args.http;
        tokio::spawn(async move { keep_alive_connection(&target, &stop, http, &tx).await });
    }
    drop(tx);
    let stats = collector.await.context("collector task")?;
    let (elapsed, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu0));
    Ok(target.report("request", common, settings, &stats, elapsed, cpu))
}

/// Runs `idle` mode: opens `--connections` keep-alive HTTP/1.1 connections (handshake and
/// one request each, at most `--concurrency` being opened at once), prints one JSON line
/// `{"event":"held","held":N,"failed":M,"open_s":S,"client_cpu_ms":C}` (time and CPU spent
/// opening) to standard output, holds them for `--hold` or
/// until standard input ends, then sends one more request on each and returns the report.
///
/// # Errors
/// As [`handshake`], and `--duration`/`--count`, which do not apply.
pub async fn idle(args: IdleArgs) -> anyhow::Result<Report> {
    let common = &args.common;
    anyhow::ensure!(
        common.duration.is_none() && common.count.is_none(),
        "idle mode takes --connections and --hold, not --duration or --count"
    );
    let target = Arc::new(target(common, false, vec![b"http/1.1".to_vec()]).await?);
    let mut settings = settings(common);
    settings.insert("connections", json!(args.connections));
    settings.insert("concurrency", json!(args.concurrency));
    let (tx, collector) = collector();
    let cpu0 = cpu_time();
    let start = Instant::now();

    // Open: each task opens one connection while holding a permit, then keeps it.
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (target, permits, tx) = (target.clone(), permits.clone(), tx.clone());
        opening.spawn(async move {
            let _permit = permits.acquire_owned().await.ok()?;
            keep_alive_open(&target, &tx).await
        });
    }
    let mut held = Vec::with_capacity(args.connections);
    while let Some(result) = opening.join_next().await {
        if let Ok(Some(sender)) = result {
            held.push(sender);
        }
    }
    let event = json!({
        "event": "held",
        "held": held.len(),
        "failed": args.connections - held.len(),
        "open_s": start.elapsed().as_secs_f64(),
        "client_cpu_ms": cpu_time().saturating_sub(cpu0).as_secs_f64() * 1000.0,
    });
    println!("{event}");

    let hold_start = Instant::now();
    match args.hold {
        Some(hold) => tokio::time::sleep(hold).await,
        None => {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    }
    let hold_s = hold_start.elapsed().as_secs_f64();

    // Afterwards: one more request on every held connection.
    let mut checking = tokio::task::JoinSet::new();
    for mut sender in held.drain(..) {
        let (target, permits) = (target.clone(), permits.clone());
        checking.spawn(async move {
            let _permit = permits.acquire_owned().await.ok()?;
            let ok = matches!(
                timeout(target.timeout, send(&target, &mut sender)).await,
                Ok(Ok(()))
            );
            Some(ok)
        });
    }
    let held_count = checking.len();
    let mut alive = 0;
    while let Some(result) = checking.join_next().await {
        alive += usize::from(matches!(result, Ok(Some(true))));
    }
    drop(tx);
    let stats = collector.await.context("collector task")?;
    let (elapsed, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu0));
    let mut report = target.report("idle", common, settings, &stats, elapsed, cpu);
    report.idle = Some(Idle {
        requested: args.connections,
        held: held_count,
        alive_after_hold: alive,
        hold_s,
    });
    Ok(report)
}

/// Opens one keep-alive HTTP/1.1 connection and completes one request on it; `None` (and
/// the failure counted) when any step fails.
async fn keep_alive_open(target: &Target, tx: &Tx) -> Option<Sender> {
    let t0 = Instant::now();
    let opened = timeout(target.timeout, async {
        let mut sender = open(target, HttpVersion::Http1, tx).await?;
        send(target, &mut sender).await?;
        Ok::<_, ErrorKind>(sender)
    })
    .await;
    let (outcome, sender) = match opened {
        Err(_) => (Outcome::Failed(ErrorKind::Timeout), None),
        Ok(Err(kind)) => (Outcome::Failed(kind), None),
        Ok(Ok(sender)) => (
            Outcome::Done {
                request: true,
                latency: t0.elapsed(),
            },
            Some(sender),
        ),
    };
    let _ = tx.send(outcome);
    sender
}

/// One handshake-mode operation: connect, handshake, optionally one request, close.
async fn handshake_op(target: &Target, with_request: bool, start: Instant, tx: &Tx) {
    let outcome = match timeout(target.timeout, connect(target, tx)).await {
        Err(_) => Outcome::Failed(ErrorKind::Timeout),
        Ok(Err(kind)) => Outcome::Failed(kind),
        Ok(Ok(tls)) if with_request => {
            let remaining = target.timeout.saturating_sub(start.elapsed());
            match timeout(remaining, request_close(target, tls)).await {
                Err(_) => Outcome::Failed(ErrorKind::Timeout),
                Ok(Err(kind)) => Outcome::Failed(kind),
                Ok(Ok(())) => Outcome::Done {
                    request: true,
                    latency: start.elapsed(),
                },
            }
        }
        Ok(Ok(mut tls)) => {
            let latency = start.elapsed();
            // close_notify, then read to EOF: this also takes in TLS 1.3 session tickets,
            // which arrive after the handshake, so the next connection can resume.
            let _ = timeout(target.timeout, async {
                tls.shutdown().await?;
                let mut buf = [0u8; 2048];
                while tls.read(&mut buf).await? > 0 {}
                std::io::Result::Ok(())
            })
            .await;
            Outcome::Done {
                request: false,
                latency,
            }
        }
    };
    let _ = tx.send(outcome);
}

/// TCP connect and TLS handshake; reports the handshake to the collector.
async fn connect(target: &Target, tx: &Tx) -> Result<TlsStream<TcpStream>, ErrorKind> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = tcp.set_nodelay(true);
    let tls = target
        .connector
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|e| {
            let _ = target.first_tls_error.set(e.to_string());
            ErrorKind::Tls
        })?;
    let conn = tls.get_ref().1;
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let _ = tx.send(Outcome::Handshake { resumed });
    if target.negotiated.get().is_none() {
        let _ = target.negotiated.set(Negotiated {
            version: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            group: conn
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            signature_scheme: None,
        });
    }
    Ok(tls)
}

/// One HTTP/1.1 `GET` with `Connection: close`, reading the whole response.
async fn request_close(target: &Target, tls: TlsStream<TcpStream>) -> Result<(), ErrorKind> {
    let (mut sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|_| ErrorKind::Http)?;
    tokio::spawn(conn);
    let req = Request::get(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ErrorKind::Http)?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|_| ErrorKind::Http)?;
    check_response(response).await
}

/// Reads the whole body; non-2xx/3xx statuses are errors.
async fn check_response(response: http::Response<hyper::body::Incoming>) -> Result<(), ErrorKind> {
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(|_| ErrorKind::Http)?;
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(ErrorKind::Status(status.as_u16()))
    }
}

/// Either kind of hyper request sender.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// One keep-alive connection of `request` mode: requests one after another until the
/// stop condition; reconnects after a connection error (each attempt uses one operation
/// of `--count`, so a dead server cannot make the run spin forever).
async fn keep_alive_connection(target: &Target, stop: &Stop, http: HttpVersion, tx: &Tx) {
    'connect: loop {
        if !stop.take(Instant::now()) {
            return;
        }
        let t0 = Instant::now();
        let mut sender = match timeout(target.timeout, open(target, http, tx)).await {
            Err(_) => {
                let _ = tx.send(Outcome::Failed(ErrorKind::Timeout));
                continue;
            }
            Ok(Err(kind)) => {
                let _ = tx.send(Outcome::Failed(kind));
                continue;
            }
            Ok(Ok(sender)) => sender,
        };
        let mut claimed = Some(t0);
        loop {
            let t0 = match claimed.take() {
                Some(t0) => t0,
                None => {
                    let now = Instant::now();
                    if !stop.take(now) {
                        return;
                    }
                    now
                }
            };
            let outcome = match timeout(target.timeout, send(target, &mut sender)).await {
                Err(_) => Outcome::Failed(ErrorKind::Timeout),
                Ok(Err(kind)) => Outcome::Failed(kind),
                Ok(Ok(())) => Outcome::Done {
                    request: true,
                    latency: t0.elapsed(),
                },
            };
            let broken = matches!(
                outcome,
                Outcome::Failed(ErrorKind::Http | ErrorKind::Timeout)
            );
            let _ = tx.send(outcome);
            if broken {
                continue 'connect;
            }
        }
    }
}

/// Connects and starts an HTTP/1.1 or HTTP/2 client connection (driven by its own task).
async fn open(target: &Target, http: HttpVersion, tx: &Tx) -> Result<Sender, ErrorKind> {
    let io = TokioIo::new(connect(target, tx).await?);
    Ok(match http {
        HttpVersion::Http1 => {
            let (sender, conn) = http1::handshake(io).await.map_err(|_| ErrorKind::Http)?;
            tokio::spawn(conn);
            Sender::H1(sender)
        }
        HttpVersion::Http2 => {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|_| ErrorKind::Http)?;
            tokio::spawn(conn);
            Sender::H2(sender)
        }
    })
}

/// One keep-alive request on an open connection.
async fn send(target: &Target, sender: &mut Sender) -> Result<(), ErrorKind> {
    let response = match sender {
        Sender::H1(s) => {
            s.ready().await.map_err(|_| ErrorKind::Http)?;
            let req = Request::get(target.path.as_str())
                .header(header::HOST, target.authority.as_str())
                .body(Empty::new())
                .map_err(|_| ErrorKind::Http)?;
            s.send_request(req).await
        }
        Sender::H2(s) => {
            s.ready().await.map_err(|_| ErrorKind::Http)?;
            let uri = format!("https://{}{}", target.authority, target.path);
            let req = Request::get(uri)
                .body(Empty::new())
                .map_err(|_| ErrorKind::Http)?;
            s.send_request(req).await
        }
    };
    check_response(response.map_err(|_| ErrorKind::Http)?).await
}

/// Resolves the target and builds the TLS connector.
async fn target(common: &CommonArgs, resume: bool, alpn: Vec<Vec<u8>>) -> anyhow::Result<Target> {
    let addr = tokio::net::lookup_host(common.target.as_str())
        .await
        .with_context(|| format!("resolving {}", common.target))?
        .next()
        .with_context(|| format!("{} resolves to no address", common.target))?;
    let server_name = ServerName::try_from(common.server_name.clone())
        .with_context(|| format!("invalid --server-name {}", common.server_name))?;
    let (config, observed) = client_config(&TlsOptions {
        version: common.tls,
        groups: &common.group,
        sigalgs: common.sigalgs,
        cipher: common.cipher,
        pin_cert: common.pin_cert.as_deref(),
        ca: common.ca.as_deref(),
        resume,
        alpn,
        verify_every: common.verify_every,
    })?;
    anyhow::ensure!(common.path.starts_with('/'), "--path must start with /");
    Ok(Target {
        addr,
        authority: format!("{}:{}", common.server_name, addr.port()),
        server_name,
        path: common.path.clone(),
        connector: TlsConnector::from(config),
        timeout: common.timeout,
        negotiated: OnceLock::new(),
        observed,
        first_tls_error: OnceLock::new(),
    })
}

/// The run settings recorded in the report.
fn settings(common: &CommonArgs) -> BTreeMap<&'static str, serde_json::Value> {
    let mut s = BTreeMap::new();
    s.insert("tls", json!(format!("{:?}", common.tls)));
    s.insert("group", json!(format!("{:?}", common.group)));
    s.insert("sigalgs", json!(format!("{:?}", common.sigalgs)));
    s.insert("cipher", json!(format!("{:?}", common.cipher)));
    s.insert("count", json!(common.count));
    s.insert(
        "duration_s",
        json!(common.duration.map(|d| d.as_secs_f64())),
    );
    s.insert("timeout_s", json!(common.timeout.as_secs_f64()));
    s.insert("verify_every", json!(common.verify_every));
    s
}

/// A channel and the task that folds outcomes into [`Stats`] until every sender is gone.
fn collector() -> (Tx, tokio::task::JoinHandle<Stats>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = tokio::spawn(async move {
        let mut stats = Stats::default();
        while let Some(outcome) = rx.recv().await {
            stats.record(outcome);
        }
        stats
    });
    (tx, handle)
}

/// CPU time of this process, all threads, user + system (`CLOCK_PROCESS_CPUTIME_ID`).
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}
