//! Issue 13's accept path with the real binary: one `SO_REUSEPORT` listening socket per worker
//! thread, each with the configured backlog (as `ss` reports it), the worker count from
//! `[runtime]` overridden by `--worker-threads`, and the accept-queue metrics (a full queue
//! shows in `keyward_listen_overflows_total`).

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::*;

/// `ss -ltn` lines of the sockets listening on `addr`'s port: (Recv-Q, Send-Q) each. For a
/// listening socket Recv-Q is the accept queue's length now and Send-Q its size (the backlog).
fn listening_sockets(addr: SocketAddr) -> Vec<(u32, u32)> {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
        .expect("ss (Debian package iproute2)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[0], "LISTEN", "{l}");
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

/// A site with an upstream, a P-256 key and certificate for localhost, and a configuration
/// of one listener (with `listener_extra`) after `top` (other tables); returns the upstream
/// process (keep it alive), the certificate and the configuration file.
fn site_with(site: &Site, top: &str, listener_extra: &str) -> (Running, PathBuf, PathBuf) {
    let (upstream, up) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{top}{}[upstream]\nurl = \"http://{up}\"\n",
        listener(&cert, "web", listener_extra)
    ));
    (upstream, cert, config)
}

fn scrape(p: &Running) -> String {
    http_get(admin_addr(p), "/metrics")
}

#[test]
fn each_worker_has_a_listening_socket_with_the_configured_backlog() {
    let site = Site::new();
    let (_upstream, cert, config) =
        site_with(&site, "[runtime]\nworker_threads = 2\n\n", "backlog = 321");
    // The command line overrides [runtime].
    let (mut p, addrs) = start_serve_with(&config, 1, &["--worker-threads", "3"]);
    let started = p.stderr.wait_for("runtime started");
    assert!(started.contains("worker_threads=3"), "{started}");
    assert_eq!(listening_sockets(addrs[0]), vec![(0, 321); 3]);
    // Every connection is served, whichever socket the kernel hands it to.
    for _ in 0..12 {
        let out = Curl::https(addrs[0], "/", &cert).run();
        assert_eq!(out.status, 200, "{out:?}");
    }
    let metrics = scrape(&p);
    let label = [("listener", &*addrs[0].to_string())];
    assert_eq!(
        metric_value(&metrics, "keyward_worker_threads", &[]),
        Some(3.0)
    );
    assert_eq!(
        metric_value(&metrics, "keyward_listen_sockets", &label),
        Some(3.0)
    );
    assert_eq!(
        metric_value(&metrics, "keyward_listen_backlog", &label),
        Some(321.0)
    );
    assert_eq!(
        metric_value(&metrics, "keyward_connections_accepted_total", &label),
        Some(12.0)
    );
    assert!(metric_value(&metrics, "keyward_listen_overflows_total", &[]).is_some());
    // A reload that changes the backlog is refused (listen(2) set it); the rest keeps running.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("backlog = 321", "backlog = 322"),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .unwrap();
    let failed = p.stderr.wait_for("reload failed");
    assert!(failed.contains("backlog changed"), "{failed}");
    assert_eq!(listening_sockets(addrs[0]), vec![(0, 321); 3]);
    assert!(p.terminate().success());
    assert!(listening_sockets(addrs[0]).is_empty());
}

#[test]
fn a_full_accept_queue_shows_in_the_overflow_counter() {
    let site = Site::new();
    // One socket, one connection at a time, a queue of one: the next connections wait in the
    // queue, and once it is full the kernel drops further SYNs.
    let (_upstream, cert, config) = site_with(&site, "", "backlog = 1\nmax_connections = 1");
    let (mut p, addrs) = start_serve_with(&config, 1, &["--worker-threads", "1"]);
    assert_eq!(listening_sockets(addrs[0]), vec![(0, 1)]);
    let overflows = |p: &Running| {
        metric_value(&scrape(p), "keyward_listen_overflows_total", &[]).expect("the counter")
    };
    let before = overflows(&p);
    // Holds the one permit: a TLS connection, kept open.
    let held = tls_connect(addrs[0], &cert);
    let mut queued = Vec::new();
    eventually(
        Duration::from_secs(20),
        "the kernel reports a listen overflow",
        || {
            if let Ok(s) = TcpStream::connect_timeout(&addrs[0], Duration::from_millis(100)) {
                queued.push(s);
            }
            overflows(&p) > before
        },
    );
    let sockets = listening_sockets(addrs[0]);
    assert!(
        sockets[0].0 >= 1,
        "the queue holds connections: {sockets:?}"
    );
    drop((held, queued));
    assert!(p.terminate().success());
}
