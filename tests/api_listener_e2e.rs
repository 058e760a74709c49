//! The HSM API listener's defences, against the real `keyward hsm serve`: a slowloris client
//! is cut at the header timeout while others are served, a stalled body gets 408, the
//! connection limit holds, and SIGTERM drains an in-flight request.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

const PASSWORD: &str = "admin-password";

fn node(tmp: &tempfile::TempDir, extra: &[&str]) -> (Running, SocketAddr, PathBuf) {
    let data = tmp.path().join("data");
    init_hsm(&data, PASSWORD);
    let (server, addr) = start_hsm_serve(&data, extra);
    (server, addr, data.join("api-ca.pem"))
}

/// `GET /v1/health` on a new connection; returns the response.
fn health(addr: SocketAddr, ca: &Path) -> String {
    let mut s = tls_connect(addr, ca);
    exchange(
        &mut s,
        b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[test]
fn a_slowloris_client_is_cut_at_the_header_timeout_while_others_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = node(&tmp, &["--client-header-timeout-ms", "3000"]);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let slow_ca = ca.clone();
    let slow = std::thread::spawn(move || {
        let mut s = tls_connect(addr, &slow_ca);
        s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n")
            .unwrap();
        s.flush().unwrap();
        let started = Instant::now();
        started_tx.send(()).unwrap();
        // One more header line every 2 s (the read timeout paces it) until the server closes.
        s.sock
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut lines = 0;
        let mut answer = Vec::new();
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "never cut after {lines} lines"
            );
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {
                    lines += 1;
                    let line = format!("X-Slow-{lines}: 1\r\n");
                    if s.write_all(line.as_bytes())
                        .and_then(|()| s.flush())
                        .is_err()
                    {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        (
            started.elapsed(),
            lines,
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    started_rx.recv().unwrap();
    // While the slow client trickles, others are served.
    for _ in 0..3 {
        let response = health(addr, &ca);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let (cut_after, lines, answer) = slow.join().unwrap();
    assert!(
        cut_after >= Duration::from_millis(2500) && cut_after < Duration::from_secs(8),
        "cut after {cut_after:?} ({lines} header lines)"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "the slow request was answered: {answer}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    let response = health(addr, &ca);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn a_request_body_that_stops_arriving_gets_408() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = node(&tmp, &["--client-body-timeout-ms", "1000"]);
    let mut s = tls_connect(addr, &ca);
    let started = Instant::now();
    let response = exchange(
        &mut s,
        b"POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    );
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_eq!(json_body(&response)["code"], "request_timeout");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = node(&tmp, &["--max-connections", "1"]);
    let first = tls_connect(addr, &ca);
    // The second is accepted by the kernel only: its handshake does not progress.
    let server_name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut second = rustls::ClientConnection::new(client_config(&[&ca]), server_name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let stalled = loop {
        match second.complete_io(&mut tcp) {
            Ok(_) if second.is_handshaking() => continue,
            Ok(_) => break false,
            Err(e) if is_timeout(&e) => break true,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(
        stalled,
        "a second connection was served beyond max_connections"
    );
    drop(first);
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    while second.is_handshaking() {
        second.complete_io(&mut tcp).unwrap();
    }
    let mut s = rustls::StreamOwned::new(second, tcp);
    let response = exchange(
        &mut s,
        b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn sigterm_drains_an_in_flight_request_refuses_new_connections_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let drain = Duration::from_secs(20);
    let (mut server, addr, ca) = node(&tmp, &["--drain-timeout-ms", "20000"]);
    // An in-flight login: hyper sends `100 Continue` once the server reads the body, so the
    // request is inside the server when the client sees it.
    let body = format!(r#"{{"username":"admin","password":"{PASSWORD}"}}"#);
    let mut s = tls_connect(addr, &ca);
    write!(
        s,
        "POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.flush().unwrap();
    let mut continued = Vec::new();
    while !continued.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed before 100 Continue");
        continued.push(byte[0]);
    }
    assert!(continued.starts_with(b"HTTP/1.1 100"), "{continued:?}");

    let terminated = Instant::now();
    server.send_sigterm();
    server.stderr.wait_for("API draining");
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited mid-request"
    );

    // The in-flight request completes.
    let response = exchange(&mut s, body.as_bytes());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(json_body(&response)["token"].is_string(), "{response}");
    let status = server.wait_exit(drain);
    assert!(status.success(), "{status:?}");
    assert!(terminated.elapsed() < drain);
    server
        .stderr
        .wait_for("API drained: every connection closed");
}
