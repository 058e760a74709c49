//! HTTP/1.1 connections that rest between requests (`proxy/src/conn/h1.rs`) and clients that
//! send only empty lines there: RFC 9112 §2.2 lets a server ignore them, and they must neither
//! spin a worker nor stall the proxy. The real binary, rustls clients over raw sockets.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::*;

/// CPU time (user + system) the process `pid` has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A `Connection: close` GET of `path` over a new TLS connection; the whole answer.
fn get(addr: std::net::SocketAddr, ca: &std::path::Path, path: &str, prefix: &str) -> String {
    let mut s = tls_connect(addr, ca);
    exchange(
        &mut s,
        format!("{prefix}GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn blank_lines_between_requests_neither_spin_nor_stall_the_proxy() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "")
    ));
    let (p, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    // Clients that send only empty lines and close (or stay), then one that sends a request
    // after them.
    for payload in [&b"\n"[..], b"\r\n", b"\r\n\r\n\n"] {
        for close in [true, false] {
            let mut s = tls_connect(addr, &cert);
            s.write_all(payload).unwrap();
            s.flush().unwrap();
            if close {
                s.conn.send_close_notify();
                let _ = s.flush();
                drop(s);
            } else {
                std::mem::forget(s);
            }
        }
    }
    let r = get(addr, &cert, "/after-blank-lines", "\r\n\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Quiet now: a connection task that loops would burn a core.
    let before = cpu_ticks(p.child.id());
    let window = Instant::now();
    let r = get(addr, &cert, "/still-served", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    while window.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(p.child.id()) - before;
    assert!(
        used < 30,
        "{used} ticks of CPU in a quiet second: a connection spins"
    );
    let health = http_get(admin_addr(&p), "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}
