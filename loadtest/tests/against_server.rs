//! Runs the real `keyward-loadtest` binary against a real in-process TLS server
//! (tokio-rustls + hyper, rcgen P-256 certificate, HTTP/1.1 and h2 by ALPN).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

/// A TLS server on 127.0.0.1 answering every request with `200 ok`. It lives until the
/// test process exits.
struct Server {
    addr: SocketAddr,
    cert_pem: PathBuf,
    _dir: tempfile::TempDir,
}

/// A fresh self-signed P-256 certificate for `localhost`: (PEM, DER, PKCS#8 key DER).
fn p256_cert() -> (String, Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), cert.der().to_vec(), key.serialize_der())
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (pem, der, key) = p256_cert();
    let cert_pem = dir.path().join("server.pem");
    std::fs::write(&cert_pem, pem).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.into()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(|_req| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    Server {
        addr,
        cert_pem,
        _dir: dir,
    }
}

/// Runs the binary with `--json` and returns its report.
fn loadtest(mode: &str, server: &Server, pin: &std::path::Path, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_keyward-loadtest"))
        .arg(mode)
        .arg(server.addr.to_string())
        .arg("--pin-cert")
        .arg(pin)
        .args(["--json", "--threads", "2", "--timeout", "10s"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{mode} {extra:?}: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn u(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {report}"))
}

fn assert_cpu_reported(report: &Value) {
    let total = report["cpu"]["total_ms"].as_f64().unwrap();
    assert!(total > 0.0, "own CPU not measured: {report}");
    assert!(
        report["cpu"]["core_percent"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

#[test]
fn full_tls13_handshakes_are_counted_with_no_errors() {
    let server = start_server();
    let report = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &["--count", "200", "--connections", "4"],
    );
    assert_eq!(u(&report, "handshakes"), 200, "{report}");
    assert_eq!(u(&report, "resumed"), 0, "{report}");
    assert_eq!(u(&report, "error_total"), 0, "{report}");
    assert_eq!(u(&report, "requests"), 0, "{report}");
    assert!(report["handshakes_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert_eq!(report["negotiated"]["version"], "TLSv1_3", "{report}");
    assert_eq!(report["negotiated"]["group"], "X25519", "{report}");
    assert_cpu_reported(&report);
    assert!(
        report["cpu"]["per_handshake_ms"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

#[test]
fn resume_resumes_every_handshake_after_the_first() {
    let server = start_server();
    let report = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &["--count", "200", "--resume"],
    );
    assert_eq!(u(&report, "handshakes"), 200, "{report}");
    assert_eq!(u(&report, "error_total"), 0, "{report}");
    assert_eq!(u(&report, "resumed"), 199, "{report}");
}

#[test]
fn tls12_full_and_resumed() {
    let server = start_server();
    let full = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &["--count", "200", "--tls", "1.2"],
    );
    assert_eq!(u(&full, "handshakes"), 200, "{full}");
    assert_eq!(u(&full, "error_total"), 0, "{full}");
    assert_eq!(u(&full, "resumed"), 0, "{full}");
    assert_eq!(full["negotiated"]["version"], "TLSv1_2", "{full}");

    let resumed = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &[
            "--count",
            "200",
            "--tls",
            "1.2",
            "--resume",
            "--group",
            "secp256r1",
            "--cipher",
            "chacha20-poly1305",
        ],
    );
    assert_eq!(u(&resumed, "handshakes"), 200, "{resumed}");
    assert_eq!(u(&resumed, "resumed"), 199, "{resumed}");
    assert_eq!(resumed["negotiated"]["group"], "secp256r1", "{resumed}");
    assert_eq!(
        resumed["negotiated"]["cipher_suite"], "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "{resumed}"
    );
}

#[test]
fn wrong_pinned_certificate_fails_every_handshake() {
    let server = start_server();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, p256_cert().0).unwrap();
    let report = loadtest(
        "handshake",
        &server,
        &other,
        &["--count", "200", "--connections", "4"],
    );
    assert_eq!(u(&report, "handshakes"), 0, "{report}");
    assert_eq!(report["errors"]["tls"], 200, "{report}");
    assert_eq!(u(&report, "error_total"), 200, "{report}");
    assert!(report["negotiated"].is_null(), "{report}");
}

#[test]
fn offering_only_rsa_schemes_to_an_ecdsa_server_fails() {
    let server = start_server();
    let report = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &["--count", "20", "--sigalgs", "rsa-pss"],
    );
    assert_eq!(u(&report, "handshakes"), 0, "{report}");
    assert_eq!(report["errors"]["tls"], 20, "{report}");
}

#[test]
fn handshake_with_one_request_per_connection() {
    let server = start_server();
    let report = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &[
            "--count",
            "200",
            "--connections",
            "4",
            "--request",
            "--group",
            "x25519mlkem768",
            "--cipher",
            "aes128-gcm",
        ],
    );
    assert_eq!(u(&report, "handshakes"), 200, "{report}");
    assert_eq!(u(&report, "requests"), 200, "{report}");
    assert_eq!(u(&report, "error_total"), 0, "{report}");
    assert_eq!(report["negotiated"]["group"], "X25519MLKEM768", "{report}");
    assert_eq!(
        report["negotiated"]["cipher_suite"], "TLS13_AES_128_GCM_SHA256",
        "{report}"
    );
    assert_eq!(report["negotiated"]["alpn"], "http/1.1", "{report}");
}

#[test]
fn open_loop_at_a_rate() {
    let server = start_server();
    let report = loadtest(
        "handshake",
        &server,
        &server.cert_pem,
        &["--count", "200", "--rate", "500"],
    );
    assert_eq!(u(&report, "handshakes"), 200, "{report}");
    assert_eq!(u(&report, "error_total"), 0, "{report}");
    // 200 starts at 500/s take at least 398 ms.
    assert!(report["elapsed_s"].as_f64().unwrap() >= 0.398, "{report}");
    assert!(report["late_starts"].is_u64(), "{report}");
}

#[test]
fn keep_alive_requests_over_http1_and_h2() {
    let server = start_server();
    for (http, alpn) in [("1.1", "http/1.1"), ("2", "h2")] {
        let report = loadtest(
            "request",
            &server,
            &server.cert_pem,
            &["--count", "200", "--connections", "4", "--http", http],
        );
        assert_eq!(u(&report, "requests"), 200, "{report}");
        assert_eq!(u(&report, "error_total"), 0, "{report}");
        // One handshake per keep-alive connection, not per request.
        assert_eq!(u(&report, "handshakes"), 4, "{report}");
        assert!(report["requests_per_s"].as_f64().unwrap() > 0.0, "{report}");
        assert_eq!(report["negotiated"]["alpn"], alpn, "{report}");
        assert_cpu_reported(&report);
        assert!(
            report["cpu"]["per_request_ms"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
}
