//! Issue 5's lifecycle end to end, with the real binary: SIGHUP reloads a certificate and a
//! route while wrk keeps a listener busy (no failed request), a broken reload keeps the running
//! configuration, and SIGTERM drains in-flight requests up to `[lifecycle] drain_timeout_ms`
//! before exiting 0.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// `GET path` over TLS (trusting only `ca`) with `Connection: close`; the raw response, or
/// what was read before the connection ended.
fn get(addr: SocketAddr, ca: &Path, path: &str) -> String {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = rustls::ClientConnection::new(
        client_config(&[ca]),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes())
        .and_then(|_| s.flush())
        .is_err()
    {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first certificate `openssl s_client` is served, as PEM text without the END line.
fn served_cert(addr: SocketAddr) -> String {
    let out = s_client(addr, "localhost", &[]);
    let start = out.find("-----BEGIN CERTIFICATE-----").expect(&out);
    let end = out[start..].find("-----END CERTIFICATE-----").unwrap() + start;
    out[start..end].to_owned()
}

/// The first certificate of a PEM file, in the same shape as [`served_cert`].
fn file_cert(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap();
    text[start..end].to_owned()
}

fn signal(p: &Running, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} failed");
}

/// Waits up to `within` for the process to exit; its status.
fn wait_exit(p: &mut Running, within: Duration) -> ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < end,
            "keyward still running {within:?} later; stderr: {:?}",
            p.stderr.all()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A served request proves the accept loops run, which start after the signal handlers are
/// installed (a SIGHUP before that would kill the process: the default disposition).
fn wait_until_serving(addr: SocketAddr, ca: &Path) {
    let r = get(addr, ca, "/ready");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

fn pools(one: SocketAddr, two: SocketAddr) -> String {
    format!(
        "[upstreams.one]\nservers = [\"http://{one}\"]\n\n[upstreams.two]\nservers = [\"http://{two}\"]\n\n"
    )
}

#[test]
fn sighup_swaps_a_certificate_and_a_route_under_wrk_load_without_a_failed_request() {
    let site = Site::new();
    let (up_one, one) = start_upstream_env(&[("UPSTREAM_NAME", "one")]);
    let (_up_two, two) = start_upstream_env(&[("UPSTREAM_NAME", "two")]);
    // Both keys before serve: serve holds the data directory's writer lock.
    let old = site.localhost_cert("old");
    let new = site.localhost_cert("new");
    let config = site.config(&format!(
        "{}{}[[routes]]\npath_prefix = \"/\"\nupstream = \"one\"\n",
        listener(&old, "old", ""),
        pools(one, two)
    ));
    let (p, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    wait_until_serving(addr, &old);
    assert_eq!(served_cert(addr), file_cert(&old));
    let before = json_body(&get(addr, &old, "/two/x"));
    assert_eq!(before["name"], "one", "no /two route yet");

    let url = format!("https://127.0.0.1:{}/load", addr.port());
    let mut wrk = Command::new("wrk")
        .args(["-t", "2", "-c", "4", "-d", "6s", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk (Debian package wrk) must be installed: scripts/test installs it");
    // Load is flowing before the reload.
    up_one.stdout.wait_for("REQUEST GET /load");

    site.config(&format!(
        "{}{}[[routes]]\npath_prefix = \"/\"\nupstream = \"one\"\n\n[[routes]]\npath_prefix = \"/two\"\nupstream = \"two\"\n",
        listener(&new, "new", ""),
        pools(one, two)
    ));
    signal(&p, "HUP");
    p.stderr.wait_for("configuration reloaded");
    // The new certificate and route while wrk still runs.
    assert_eq!(served_cert(addr), file_cert(&new));
    let after = json_body(&get(addr, &new, "/two/x"));
    assert_eq!(after["name"], "two", "the new route answers from pool two");
    let other = json_body(&get(addr, &new, "/elsewhere"));
    assert_eq!(other["name"], "one");
    assert!(
        wrk.try_wait().unwrap().is_none(),
        "wrk ended before the reload was checked: the reload did not happen under load"
    );

    let end = Instant::now() + DEADLINE;
    while wrk.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "wrk did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = wrk.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{report}");
    assert!(out.status.success(), "{report}");
    let requests: u64 = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output: {report}"));
    assert!(requests > 100, "only {requests} requests: {report}");
    assert!(!report.contains("Non-2xx"), "failed requests: {report}");
    if let Some(line) = report.lines().find(|l| l.contains("Socket errors")) {
        let counts: Vec<&str> = line
            .split([',', ':'])
            .skip(1)
            .map(|s| s.split_whitespace().last().unwrap_or(""))
            .collect();
        assert!(counts.iter().all(|c| *c == "0"), "socket errors: {report}");
    }
    let metrics = http_get(admin_addr(&p), "/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "keyward_config_reloads_total",
            &[("result", "ok")]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn a_broken_reload_is_refused_and_the_old_certificate_keeps_being_served() {
    let site = Site::new();
    let (_up, up) = start_upstream();
    let cert = site.localhost_cert("web");
    let good = format!(
        "{}[upstream]\nurl = \"http://{up}\"\n",
        listener(&cert, "web", "")
    );
    let config = site.config(&good);
    let (p, addrs) = start_serve(&config, 1);
    wait_until_serving(addrs[0], &cert);

    let missing = site.dir.join("missing.pem");
    site.config(&format!(
        "{}[upstream]\nurl = \"http://{up}\"\n",
        listener(&missing, "web", "")
    ));
    signal(&p, "HUP");
    let failed = p.stderr.wait_for("reload failed");
    assert!(failed.contains("missing.pem"), "names the file: {failed}");
    assert!(
        !p.stderr
            .all()
            .iter()
            .any(|l| l.contains("configuration reloaded")),
        "{:?}",
        p.stderr.all()
    );
    assert_eq!(served_cert(addrs[0]), file_cert(&cert));
    let r = get(addrs[0], &cert, "/still");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let metrics = http_get(admin_addr(&p), "/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "keyward_config_reloads_total",
            &[("result", "error")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_ne!(
        metric_value(
            &metrics,
            "keyward_config_reloads_total",
            &[("result", "ok")]
        )
        .unwrap_or(0.0),
        1.0
    );
    // Fixed again: the next SIGHUP applies it.
    site.config(&good);
    signal(&p, "HUP");
    p.stderr.wait_for("configuration reloaded");
}

#[test]
fn sigterm_refuses_new_connections_finishes_the_request_in_flight_and_exits_0() {
    let site = Site::new();
    let (up, up_addr) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "")
    ));
    let (mut p, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    wait_until_serving(addr, &cert);
    let slow = std::thread::spawn({
        let cert = cert.clone();
        move || {
            let started = Instant::now();
            (get(addr, &cert, "/slow?ms=2000"), started.elapsed())
        }
    });
    up.stdout.wait_for("REQUEST GET /slow?ms=2000");
    let sent = Instant::now();
    signal(&p, "TERM");
    p.stderr.wait_for("draining");
    // The listening socket closes as draining starts: refused well before the request ends.
    eventually(
        Duration::from_millis(1000),
        "new connections refused after the draining line",
        || {
            matches!(
                TcpStream::connect(addr),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        },
    );
    assert!(
        !slow.is_finished(),
        "the slow request ended before new connections were refused"
    );
    let (response, took) = slow.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(took >= Duration::from_millis(2000), "{took:?}");
    assert_eq!(json_body(&response)["path"], "/slow?ms=2000");
    let status = wait_exit(&mut p, Duration::from_secs(10));
    assert!(status.success(), "{status:?}: {:?}", p.stderr.all());
    assert!(sent.elapsed() < Duration::from_secs(10));
    p.stderr.wait_for("drained");
}

#[test]
fn the_drain_deadline_cuts_a_long_request_and_the_process_still_exits_0() {
    let site = Site::new();
    let (up, up_addr) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n\n[lifecycle]\ndrain_timeout_ms = 500\n",
        listener(&cert, "web", "")
    ));
    let (mut p, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    wait_until_serving(addr, &cert);
    let slow = std::thread::spawn({
        let cert = cert.clone();
        move || get(addr, &cert, "/slow?ms=10000")
    });
    up.stdout.wait_for("REQUEST GET /slow?ms=10000");
    let sent = Instant::now();
    signal(&p, "TERM");
    let status = wait_exit(&mut p, Duration::from_secs(5));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}: {:?}", p.stderr.all());
    assert!(took >= Duration::from_millis(500), "{took:?}");
    p.stderr.wait_for("drain deadline reached");
    // The cut request got no response (its connection closed with the process).
    let response = slow.join().unwrap();
    assert!(!response.contains("200 OK"), "{response}");
}
