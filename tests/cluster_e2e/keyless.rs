//! `keyward serve` in remote mode (`[hsm] mode = "remote"`, Cloudflare's Keyless SSL model):
//! proxies that hold no store and no key, signing each full handshake through two HSM nodes
//! of one PostgreSQL cluster. Curl and `openssl s_client` on two proxies, resumption across
//! them with ticket keys released by the cluster, `kill -9` of a node under a
//! `keyward-loadtest` run, every node down (fast TLS alert, resumption still served), and the
//! sign metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

const FLEET_PW: &str = "fleet-password";

/// Two HSM nodes; the crypto-user `fleet` owning the P-256 pair `web` (shared with the
/// nodes' own service user only so that `keyward cert self-signed` on a node's data
/// directory can sign its certificate); a remote-mode proxy configuration.
struct Fleet {
    cluster: Cluster,
    cert: PathBuf,
    config: PathBuf,
    _upstream: Running,
}

impl Fleet {
    fn start() -> Fleet {
        let cluster = Cluster::start(2);
        cluster.create_crypto_user(0, "fleet", FLEET_PW);
        let pair: serde_json::Value = serde_json::from_str(&remote_ok(
            &cluster.api(0),
            &cluster.ca,
            "fleet",
            FLEET_PW,
            &[
                "key",
                "generate-asymmetric-pair",
                "ec",
                "--curve",
                "p256",
                "--label",
                "web",
                "--private-attr",
                "sign=true",
                "--public-attr",
                "verify=true",
                "--json",
            ],
        ))
        .unwrap();
        let private = pair["private"]["handle"].as_u64().unwrap().to_string();
        remote_ok(
            &cluster.api(0),
            &cluster.ca,
            "fleet",
            FLEET_PW,
            &["key", "share", "--key", &private, "--with", "keyward-proxy"],
        );
        let dir = cluster.tmp.path().to_path_buf();
        let cert = dir.join("web.pem");
        cluster_self_signed(&cluster.dirs[0], &cluster.url, "web", &cert);
        let pw = dir.join("fleet.pw");
        std::fs::write(&pw, format!("{FLEET_PW}\n")).unwrap();
        let (ok, _, err) = run("chmod", &["600", &p(&pw)]);
        assert!(ok, "{err}");
        let (upstream, up) = start_upstream();
        let servers: Vec<String> = (0..2).map(|i| format!("\"{}\"", cluster.api(i))).collect();
        let config = dir.join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "[hsm]\nmode = \"remote\"\nservers = [{}]\nca_file = \"{}\"\nusername = \"fleet\"\n\
                 password_file = \"{}\"\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
                 [[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n\n\
                 [upstream]\nurl = \"http://{up}\"\n",
                servers.join(", "),
                p(&cluster.ca),
                p(&pw),
                p(&cert),
            ),
        )
        .unwrap();
        Fleet {
            cluster,
            cert,
            config,
            _upstream: upstream,
        }
    }

    fn proxy(&self) -> (Running, SocketAddr) {
        let (proxy, addrs) = start_serve(&self.config, 1);
        (proxy, addrs[0])
    }

    fn kill_node(&mut self, i: usize) {
        let node = &mut self.cluster.nodes[i].0;
        node.child.kill().unwrap();
        node.child.wait().unwrap();
    }
}

fn metrics(proxy: &Running) -> String {
    http_get(admin_addr(proxy), "/metrics")
}

#[test]
fn two_remote_proxies_serve_curl_and_openssl_and_resume_each_others_sessions() {
    let fleet = Fleet::start();
    let (proxy_a, a) = fleet.proxy();
    let (_proxy_b, b) = fleet.proxy();
    let log = proxy_a.stderr.all().join("\n");
    assert!(log.contains("remote signing"), "{log}");

    for addr in [a, b] {
        let out = Curl::https(addr, "/", &fleet.cert).run();
        assert_eq!(out.status, 200, "{addr}: {out:?}");
        let out = s_client(addr, "localhost", &["-CAfile", &p(&fleet.cert)]);
        assert!(out.contains("Verify return code: 0 (ok)"), "{addr}: {out}");
        assert!(out.contains("Peer signature type: ECDSA"), "{addr}: {out}");
    }

    // Both proxies seal tickets with the keys the cluster released to `fleet`: either one
    // resumes the other's sessions, TLS 1.3 and TLS 1.2.
    for (version, extra) in [("TLSv1.3", &[][..]), ("TLSv1.2", &["-tls1_2"][..])] {
        for (from, to) in [(a, b), (b, a)] {
            let file = fleet
                .cluster
                .tmp
                .path()
                .join(format!("{version}-{}.pem", from.port()));
            new_session(from, &file, version, extra);
            let line = resume(to, &file, extra);
            assert!(
                line.starts_with(&format!("Reused, {version}")),
                "a {version} session from {from} on {to}: {line}"
            );
        }
    }

    // The network sign is measured; nothing failed.
    let m = metrics(&proxy_a);
    let signs = metric_value(&m, "keyward_hsm_sign_duration_seconds_count", &[]).unwrap();
    assert!(signs >= 4.0, "{m}");
    assert_eq!(
        metric_value(&m, "keyward_remote_signs_in_flight", &[]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "keyward_hsm_errors_total", &[]),
        Some(0.0),
        "{m}"
    );
}

/// One slice of the load: when it started and what `keyward-loadtest handshake` reported.
struct Slice {
    start: Instant,
    handshakes: u64,
    errors: u64,
    first_error: Option<String>,
}

/// `keyward-loadtest handshake ADDR --ca CERT --connections N --duration D --timeout T`, in
/// process.
fn loadtest(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    cert: &Path,
    [connections, duration, timeout]: [&str; 3],
) -> keyward_loadtest::report::Report {
    use clap::Parser;
    let cli = keyward_loadtest::cli::Cli::try_parse_from([
        "keyward-loadtest",
        "handshake",
        &addr.to_string(),
        "--ca",
        &p(cert),
        "--connections",
        connections,
        "--duration",
        duration,
        "--timeout",
        timeout,
    ])
    .unwrap();
    let keyward_loadtest::cli::Mode::Handshake(args) = cli.mode else {
        unreachable!()
    };
    rt.block_on(keyward_loadtest::run::handshake(args)).unwrap()
}

/// 250 ms of full handshakes, 4 at a time.
fn load_slice(rt: &tokio::runtime::Runtime, addr: SocketAddr, cert: &Path) -> Slice {
    let start = Instant::now();
    let report = loadtest(rt, addr, cert, ["4", "250ms", "5s"]);
    Slice {
        start,
        handshakes: report.handshakes,
        errors: report.error_total,
        first_error: report.first_tls_error,
    }
}

#[test]
fn a_node_killed_under_load_costs_almost_no_handshake_and_with_every_node_down_tls_fails_fast_and_resumption_goes_on(
) {
    let mut fleet = Fleet::start();
    let (proxy, addr) = fleet.proxy();
    // Sessions saved while the nodes are up, resumed when none is.
    let session13 = fleet.cluster.tmp.path().join("s13.pem");
    let session12 = fleet.cluster.tmp.path().join("s12.pem");
    new_session(addr, &session13, "TLSv1.3", &[]);
    new_session(addr, &session12, "TLSv1.2", &["-tls1_2"]);

    // Full handshakes, 4 at a time, in 250 ms slices; node 0 (the first in `servers`, so the
    // one signing) is killed with SIGKILL while slice 4 runs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (started_tx, started) = std::sync::mpsc::channel();
    let load = {
        let cert = fleet.cert.clone();
        std::thread::spawn(move || {
            let mut slices = Vec::new();
            for i in 0..20 {
                if i == 3 {
                    started_tx.send(()).unwrap();
                }
                slices.push(load_slice(&rt, addr, &cert));
            }
            slices
        })
    };
    started.recv().unwrap();
    let killed = Instant::now();
    fleet.kill_node(0);
    let slices = load.join().unwrap();
    let total: u64 = slices.iter().map(|s| s.handshakes).sum();
    let failed: u64 = slices.iter().map(|s| s.errors).sum();
    let report: Vec<String> = slices
        .iter()
        .map(|s| {
            let at = s.start.saturating_duration_since(killed).as_millis() as i128
                - killed.saturating_duration_since(s.start).as_millis() as i128;
            format!(
                "{at:+} ms: {} ok, {} failed {:?}",
                s.handshakes, s.errors, s.first_error
            )
        })
        .collect();
    eprintln!("load around the kill: {report:#?}");
    assert!(total >= 100, "too few handshakes to judge: {report:#?}");
    assert!(
        failed * 1000 < total + failed,
        "{failed} of {} handshakes failed (0.1% allowed): {report:#?}",
        total + failed
    );
    for s in slices
        .iter()
        .filter(|s| s.start >= killed + Duration::from_secs(1))
    {
        assert_eq!(
            s.errors, 0,
            "failures more than 1 s after the kill: {report:#?}"
        );
    }
    assert!(
        slices
            .iter()
            .filter(|s| s.start > killed)
            .map(|s| s.handshakes)
            .sum::<u64>()
            > 0,
        "the surviving node signed nothing: {report:#?}"
    );

    // Every node down: the first full handshake finds no node (refused at once) and fails;
    // the following ones are refused before the ServerHello with a handshake_failure alert
    // (remote::DOWN_FOR), all fast.
    fleet.kill_node(1);
    let t0 = Instant::now();
    let first = s_client(addr, "localhost", &["-CAfile", &p(&fleet.cert)]);
    assert!(!first.contains("Peer signature type"), "{first}");
    let refused = s_client(addr, "localhost", &["-CAfile", &p(&fleet.cert)]);
    let took = t0.elapsed();
    assert!(refused.contains("alert handshake failure"), "{refused}");
    assert!(
        took < Duration::from_millis(1500),
        "two refusals took {took:?} (sign_timeout_ms is 3000)"
    );
    // ... the proxy stays up and resumes the sessions it issued.
    for (file, version, extra) in [
        (&session13, "TLSv1.3", &[][..]),
        (&session12, "TLSv1.2", &["-tls1_2"][..]),
    ] {
        let line = resume(addr, file, extra);
        assert!(line.starts_with(&format!("Reused, {version}")), "{line}");
    }
    let health = http_get(admin_addr(&proxy), "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let m = metrics(&proxy);
    for reason in ["error", "down"] {
        let failures = metric_value(
            &m,
            "keyward_remote_sign_failures_total",
            &[("reason", reason)],
        );
        assert!(failures >= Some(1.0), "{reason}: {m}");
    }
    assert!(metric_value(&m, "keyward_hsm_sign_duration_seconds_count", &[]).unwrap() >= 100.0);
}

#[test]
fn a_hung_node_delays_the_handshakes_it_was_asked_to_sign_and_fails_none() {
    let fleet = Fleet::start();
    let (proxy, addr) = fleet.proxy();
    // Node 0 stops answering (SIGSTOP: its connections stay open, nothing comes back).
    let pid = fleet.cluster.nodes[0].0.child.id().to_string();
    let (ok, _, err) = run("kill", &["-STOP", &pid]);
    assert!(ok, "{err}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let slices: Vec<Slice> = (0..12)
        .map(|_| load_slice(&rt, addr, &fleet.cert))
        .collect();
    let (ok, _, err) = run("kill", &["-CONT", &pid]);
    assert!(ok, "{err}");
    let report: Vec<String> = slices
        .iter()
        .map(|s| {
            format!(
                "{} ok, {} failed {:?}",
                s.handshakes, s.errors, s.first_error
            )
        })
        .collect();
    eprintln!("load with node 0 hung: {report:#?}");
    let total: u64 = slices.iter().map(|s| s.handshakes).sum();
    let failed: u64 = slices.iter().map(|s| s.errors).sum();
    assert!(total >= 100, "{report:#?}");
    // Each try on a node gets a third of sign_timeout_ms (3000): a sign sent to the hung node
    // goes to the other one after 1 s, within the handshake's budget.
    assert_eq!(failed, 0, "{report:#?}");
    let m = metrics(&proxy);
    for reason in ["timeout", "error", "down"] {
        let n = metric_value(
            &m,
            "keyward_remote_sign_failures_total",
            &[("reason", reason)],
        );
        assert!(n.unwrap_or(0.0) == 0.0, "{reason}: {m}");
    }
}

#[test]
fn bad_credentials_files_and_keys_are_named_and_a_refused_password_is_not_retried() {
    let fleet = Fleet::start();
    let good = std::fs::read_to_string(&fleet.config).unwrap();
    let dir = fleet.cluster.tmp.path();
    let variant = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let pw = dir.join("fleet.pw");
    let set_mode = |path: &Path, mode: &str| {
        let (ok, _, err) = run("chmod", &[mode, &p(path)]);
        assert!(ok, "{err}");
    };

    // Offline: --check-config names the file and the fix.
    let loose = dir.join("loose.pw");
    std::fs::write(&loose, format!("{FLEET_PW}\n")).unwrap();
    set_mode(&loose, "644");
    let empty = dir.join("empty.pw");
    std::fs::write(&empty, "\n").unwrap();
    set_mode(&empty, "600");
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for (name, text, expected) in [
        ("loose.toml", good.replace(&p(&pw), &p(&loose)), "chmod 600"),
        ("empty.toml", good.replace(&p(&pw), &p(&empty)), "is empty"),
        (
            "ca.toml",
            good.replace(&p(&fleet.cluster.ca), &p(&not_pem)),
            "hsm.ca_file",
        ),
    ] {
        let config = variant(name, &text);
        let out = keyward(&["serve", "--config", &p(&config), "--check-config"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{name}: {err}"
        );
        assert!(!err.contains(FLEET_PW), "{err}");
    }
    let out = keyward(&["serve", "--config", &p(&fleet.config), "--check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A password the nodes refuse: exit status 78, so that a supervisor does not retry it
    // into a locked user.
    let wrong = dir.join("wrong.pw");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    set_mode(&wrong, "600");
    let config = variant("wrong.toml", &good.replace(&p(&pw), &p(&wrong)));
    let out = keyward(&["serve", "--config", &p(&config)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("refused the proxy's credentials"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    // A key that may not sign is named at start, not found out by failing handshakes.
    remote_ok(
        &fleet.cluster.api(0),
        &fleet.cluster.ca,
        "fleet",
        FLEET_PW,
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--curve",
            "p256",
            "--label",
            "nosign",
        ],
    );
    let config = variant(
        "nosign.toml",
        &good.replace("key_label = \"web\"", "key_label = \"nosign\""),
    );
    let out = keyward(&["serve", "--config", &p(&config)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("may not sign"),
        "{err}"
    );

    // [hsm] changes need a restart: a reload that makes one is refused, the proxy goes on.
    let (proxy, addr) = fleet.proxy();
    std::fs::write(
        &fleet.config,
        good.replace("username = \"fleet\"", "username = \"nobody\""),
    )
    .unwrap();
    let (ok, _, err) = run("kill", &["-HUP", &proxy.child.id().to_string()]);
    assert!(ok, "{err}");
    let line = proxy.stderr.wait_for("reload failed");
    assert!(line.contains("[hsm]"), "{line}");
    assert_eq!(Curl::https(addr, "/", &fleet.cert).run().status, 200);
}

/// Threads of process `pid` now.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

#[test]
fn an_overload_with_a_hung_node_and_silent_sockets_queues_handshakes_without_parking_threads_and_drains(
) {
    let fleet = Fleet::start();
    let good = std::fs::read_to_string(&fleet.config).unwrap();
    std::fs::write(
        &fleet.config,
        good.replace(
            "username = \"fleet\"",
            "username = \"fleet\"\nmax_in_flight_signs = 4",
        ),
    )
    .unwrap();
    let (mut proxy, addr) = fleet.proxy();
    // Connections that never send a ClientHello hold no slot.
    let silent: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let pid = fleet.cluster.nodes[0].0.child.id().to_string();
    let (ok, _, err) = run("kill", &["-STOP", &pid]);
    assert!(ok, "{err}");
    // 64 handshakes at a time against 4 slots, a third of them waiting 1 s on the hung node.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let report = loadtest(&rt, addr, &fleet.cert, ["64", "1500ms", "9s"]);
    // Idle blocking threads linger 10 s: what is there now is what the load needed.
    let peak = threads(proxy.child.id());
    drop(silent);
    let (ok, _, err) = run("kill", &["-CONT", &pid]);
    assert!(ok, "{err}");
    assert!(report.handshakes > 0, "{report:?}");
    assert_eq!(report.error_total, 0, "{report:?}");
    assert!(
        peak < 48,
        "{peak} threads: waiting handshakes parked threads instead of queueing for a slot"
    );
    assert_eq!(Curl::https(addr, "/", &fleet.cert).run().status, 200);
    // It still drains and exits on SIGTERM.
    proxy.send_sigterm();
    let status = proxy.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}
