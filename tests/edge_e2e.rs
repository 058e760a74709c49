//! Issue 5's edge features end to end, with the real binary, a real upstream process and real
//! clients (curl, openssl, a rustls client over raw sockets).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

impl Site {
    /// A key in the HSM and a self-signed certificate for `names` (first = CN).
    fn cert(&self, spec: &str, label: &str, names: &[&str]) -> PathBuf {
        generate_key(&self.data(), spec, label);
        let out = self.dir.join(format!("{label}.pem"));
        let data = self.data().display().to_string();
        let out_s = out.display().to_string();
        let mut args = vec![
            "cert",
            "self-signed",
            "--key",
            label,
            "--out",
            &out_s,
            "--data-dir",
            &data,
            "--ip",
            "127.0.0.1",
        ];
        for n in names {
            args.push("--dns");
            args.push(n);
        }
        keyward_ok(&args);
        out
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// TLS over `tcp` (which may already carry a PROXY header).
fn tls_over(tcp: TcpStream, ca: &Path) -> Tls {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = rustls::ClientConnection::new(
        client_config(&[ca]),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

fn get(addr: SocketAddr, ca: &Path, path: &str, headers: &str) -> String {
    let mut s = tls_over(TcpStream::connect(addr).unwrap(), ca);
    exchange(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// The upstream saw a request for `path` (it prints `REQUEST <method> <path>`).
fn upstream_saw(up: &Running, path: &str) -> bool {
    up.stdout
        .all()
        .iter()
        .any(|l| l.starts_with("REQUEST ") && l.ends_with(&format!(" {path}")))
}

#[test]
fn sni_picks_exact_wildcard_or_default_and_the_key_type_the_client_can_verify() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let ec = site.cert("ec-p256", "a-ec", &["a.test"]);
    let rsa = site.cert("rsa-2048", "a-rsa", &["a.test"]);
    let b = site.cert("ec-p256", "b", &["b.test"]);
    let wild = site.cert("ec-p384", "wild", &["*.w.test"]);
    let dflt = site.cert("ec-p256", "dflt", &["localhost"]);
    let cert = |label: &str, path: &Path, extra: &str| {
        format!(
            "[[listeners.certificates]]\nkey_label = \"{label}\"\nchain_file = \"{}\"\n{extra}\n",
            path.display()
        )
    };
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n{}{}{}{}{}\n[upstream]\nurl = \"http://{up_addr}\"\n",
        cert("a-rsa", &rsa, ""),
        cert("a-ec", &ec, ""),
        cert("b", &b, ""),
        cert("wild", &wild, ""),
        cert("dflt", &dflt, "default = true"),
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let served = |name: &str, extra: &[&str]| -> String {
        let out = s_client(addrs[0], name, extra);
        let start = out.find("-----BEGIN CERTIFICATE-----").expect(&out);
        let end = out[start..].find("-----END CERTIFICATE-----").unwrap() + start;
        out[start..end].to_owned()
    };
    let file_cert = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap();
        let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
        let end = text.find("-----END CERTIFICATE-----").unwrap();
        text[start..end].to_owned()
    };
    // An ECDSA-only client (TLS 1.3) and an RSA-only TLS 1.2 client, same name.
    assert_eq!(
        served("a.test", &["-sigalgs", "ECDSA+SHA256"]),
        file_cert(&ec)
    );
    assert_eq!(
        served(
            "a.test",
            &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]
        ),
        file_cert(&rsa)
    );
    assert_eq!(served("b.test", &[]), file_cert(&b));
    assert_eq!(served("x.w.test", &[]), file_cert(&wild));
    // A wildcard covers one label only; unknown names get the default.
    assert_eq!(served("y.x.w.test", &[]), file_cert(&dflt));
    assert_eq!(served("unknown.test", &[]), file_cert(&dflt));
}

#[test]
fn a_slowloris_client_is_cut_at_the_header_timeout_while_others_are_served() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "client_header_timeout_ms = 2000")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    let slow = std::thread::spawn({
        let cert = cert.clone();
        move || {
            let mut s = tls_over(TcpStream::connect(addr).unwrap(), &cert);
            let started = Instant::now();
            let head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            let mut sent = 0;
            for b in head {
                if s.write_all(&[*b]).and_then(|_| s.flush()).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(1));
                if started.elapsed() > Duration::from_secs(15) {
                    break;
                }
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            (
                sent,
                started.elapsed(),
                String::from_utf8_lossy(&rest).into_owned(),
            )
        }
    });
    // Meanwhile another client is served normally.
    for _ in 0..3 {
        let r = get(addr, &cert, "/fast", "");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let (sent, elapsed, rest) = slow.join().unwrap();
    assert!(
        sent < 10,
        "the slow client sent {sent} bytes without being cut"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(!rest.contains("200 OK"), "{rest}");
}

#[test]
fn smuggling_attempts_get_400_and_never_reach_the_upstream() {
    let site = Site::new();
    let (up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let cases: [(&str, &str); 6] = [
        (
            "/cl-te",
            "POST /cl-te HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        ),
        (
            "/te-cl",
            "POST /te-cl HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nConnection: close\r\n\r\n0\r\n\r\n",
        ),
        (
            "/dup-cl",
            "POST /dup-cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        ),
        (
            "/dup-cl-differ",
            "POST /dup-cl-differ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd",
        ),
        (
            "/bad-chunk",
            "POST /bad-chunk HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "/obs-fold",
            "GET /obs-fold HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n folded\r\nConnection: close\r\n\r\n",
        ),
    ];
    for (path, raw) in cases {
        let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
        let r = exchange(&mut s, raw.as_bytes());
        assert!(r.starts_with("HTTP/1.1 400"), "{path}: {r}");
    }
    // A clean request afterwards reaches it, so the upstream's log is live.
    let r = get(addrs[0], &cert, "/clean", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    up.stdout.wait_for("REQUEST GET /clean");
    for (path, _) in cases {
        assert!(!upstream_saw(&up, path), "{path} reached the upstream");
    }
}

/// PROXY protocol v2 header for TCP over IPv4 (haproxy's proxy-protocol.txt §2.2).
fn proxy_v2(src: [u8; 4], src_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

#[test]
fn proxy_protocol_sets_the_client_address_and_untrusted_sources_are_refused() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(
            &cert,
            "web",
            "[listeners.proxy_protocol]\ntrusted_cidrs = [\"127.0.0.0/8\"]"
        ),
        listener(
            &cert,
            "web",
            "[listeners.proxy_protocol]\ntrusted_cidrs = [\"10.0.0.0/8\"]"
        ),
    ));
    let (_p, addrs) = start_serve(&config, 2);
    let request = b"GET /who HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

    let mut tcp = TcpStream::connect(addrs[0]).unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 55555 443\r\n")
        .unwrap();
    let r = exchange(&mut tls_over(tcp, &cert), request);
    let j = json_body(&r);
    assert_eq!(j["headers"]["x-forwarded-for"], "203.0.113.7", "{r}");

    let mut tcp = TcpStream::connect(addrs[0]).unwrap();
    tcp.write_all(&proxy_v2([198, 51, 100, 9], 40000)).unwrap();
    let r = exchange(&mut tls_over(tcp, &cert), request);
    let j = json_body(&r);
    assert_eq!(j["headers"]["x-forwarded-for"], "198.51.100.9", "{r}");
    assert!(j["headers"]["forwarded"]
        .as_str()
        .unwrap()
        .contains("for=198.51.100.9"));

    // No header from a trusted source: refused.
    let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
    assert!(
        s.write_all(request).and_then(|_| s.flush()).is_err() || {
            let mut buf = [0u8; 16];
            !matches!(s.read(&mut buf), Ok(n) if n > 0)
        }
    );
    // A header from a source outside trusted_cidrs: closed without a handshake.
    let mut tcp = TcpStream::connect(addrs[1]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 55555 443\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(tcp.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn redirect_listener_hsts_request_ids_forwarded_headers_and_limits() {
    let site = Site::new();
    let (up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"redirect\"\nredirect_https_port = 8443\n\n[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(
            &cert,
            "web",
            "hsts = \"max-age=63072000; includeSubDomains\"\nmax_body_bytes = 1000\nmax_header_bytes = 8192"
        ),
    ));
    let (_p, addrs) = start_serve(&config, 2);
    let r = http_get(addrs[1], "/a/b?c=d");
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("location: https://localhost:8443/a/b?c=d"),
        "{r}"
    );

    let r = get(
        addrs[0],
        &cert,
        "/h",
        "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Request-Id: spoofed\r\n",
    );
    assert!(
        r.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=63072000; includesubdomains"),
        "{r}"
    );
    let j = json_body(&r);
    // Replace (the default): the client's own forwarding headers are dropped.
    assert_eq!(j["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        j["headers"]["forwarded"],
        "for=127.0.0.1;proto=https;host=\"localhost\""
    );
    let id = j["headers"]["x-request-id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_ne!(id, "spoofed");
    assert!(r.contains(&format!("x-request-id: {id}")), "{r}");

    // Bodies over max_body_bytes: 413, by Content-Length and by chunked size.
    let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
    let body = "x".repeat(1001);
    let r = exchange(
        &mut s,
        format!("POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1001\r\nConnection: close\r\n\r\n{body}").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
    let r = exchange(
        &mut s,
        format!("POST /big-chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3e9\r\n{body}\r\n0\r\n\r\n").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Headers over max_header_bytes: 431.
    let r = get(
        addrs[0],
        &cert,
        "/big-header",
        &format!("X-Big: {}\r\n", "y".repeat(9000)),
    );
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let r = get(addrs[0], &cert, "/after", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    up.stdout.wait_for("REQUEST GET /after");
    for path in ["/big", "/big-chunked", "/big-header"] {
        assert!(!upstream_saw(&up, path), "{path}");
    }
}

#[test]
fn websocket_upgrades_are_spliced_through() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    // tungstenite, a WebSocket client library, over the proxy's TLS.
    let tls = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
    let url = format!("wss://localhost:{}/ws", addrs[0].port());
    let (mut ws, response) = tungstenite::client(url.as_str(), tls).expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    for msg in ["hello", "second frame"] {
        ws.send(tungstenite::Message::text(msg)).unwrap();
        let back = ws.read().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), format!("echo: {msg}"));
    }
    ws.close(None).unwrap();
}

#[test]
fn h2_requests_reach_an_http1_upstream_with_authority_and_trailers() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let addr = addrs[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async move {
        use http_body_util::BodyExt;
        let mut cfg = (*client_config(&[&cert])).clone();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", "abc123".parse().unwrap());
        let frames = vec![
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from_static(
                b"hello",
            ))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        let req = http::Request::post(format!("https://localhost:{}/h2", addr.port()))
            .header("te", "trailers")
            .header("connection-specific", "kept")
            .body(http_body_util::StreamBody::new(futures_util_stream(frames)))
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    });
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["method"], "POST");
    assert_eq!(j["headers"]["host"], format!("localhost:{}", addr.port()));
    assert_eq!(j["body_bytes"], 5);
    assert_eq!(j["trailers"]["x-checksum"], "abc123", "{j}");
    assert!(j["headers"].get("te").is_none(), "{j}");
}

/// A stream over a vector of frames, without depending on futures-util.
fn futures_util_stream<T: Unpin>(items: Vec<T>) -> impl tokio_stream_like::Stream<Item = T> {
    tokio_stream_like::Iter(items.into_iter())
}

mod tokio_stream_like {
    pub(crate) use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    pub(crate) struct Iter<I>(pub(crate) I);
    impl<I: Iterator + Unpin> Stream for Iter<I> {
        type Item = I::Item;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
            Poll::Ready(self.0.next())
        }
    }
}

#[test]
fn metrics_parse_and_name_every_required_family_after_one_request() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n[upstream.health_check]\npath = \"/health\"\ninterval_ms = 500\n",
        listener(&cert, "web", "")
    ));
    let (p, addrs) = start_serve(&config, 1);
    let admin = admin_addr(&p);
    assert!(http_get(admin, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(admin, "/readyz").starts_with("HTTP/1.1 200"));
    let r = get(addrs[0], &cert, "/one", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let text = http_get(admin, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let names: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "keyward_tls_handshakes_total",
        "keyward_tls_handshake_duration_seconds_count",
        "keyward_hsm_sign_duration_seconds_count",
        "keyward_hsm_errors_total",
        "keyward_connections_active",
        "keyward_http_requests_total",
        "keyward_upstream_request_duration_seconds_count",
        "keyward_upstream_healthy",
        "keyward_certificate_not_after_seconds",
    ] {
        assert!(names.contains(family), "{family} missing from {names:?}");
    }
    let handshake = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "keyward_tls_handshakes_total"
                && s.labels.get("result") == Some("ok")
                && s.labels.get("version") == Some("1.3")
                && s.labels.get("resumed") == Some("false")
        })
        .expect("a full TLS 1.3 handshake counted");
    assert!(matches!(handshake.value, prometheus_parse::Value::Counter(v) if v >= 1.0));
    let req = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "keyward_http_requests_total" && s.labels.get("status") == Some("200")
        })
        .expect("a 200 counted");
    assert_eq!(req.labels.get("route"), Some("default"));
    let signs = scrape
        .samples
        .iter()
        .find(|s| s.metric == "keyward_hsm_sign_duration_seconds_count")
        .unwrap();
    assert!(
        matches!(signs.value, prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) if v >= 1.0),
        "{:?}",
        signs.value
    );
    let healthy = scrape
        .samples
        .iter()
        .find(|s| s.metric == "keyward_upstream_healthy")
        .unwrap();
    assert_eq!(healthy.labels.get("pool"), Some("default"));
}

#[test]
fn layer4_listener_forwards_the_decrypted_stream_to_a_tcp_upstream() {
    let site = Site::new();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    // A TCP echo server.
    let echo_addr = spawn_tcp_server(|mut c| {
        let mut buf = [0u8; 1024];
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 || c.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let config = site.config(&format!(
        "{}[upstreams.echo]\nservers = [\"tcp://{echo_addr}\"]\n",
        listener(&cert, "web", "mode = \"tcp\"\nupstream = \"echo\"")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
    for msg in [&b"ping"[..], b"not http at all\x00\x01"] {
        s.write_all(msg).unwrap();
        s.flush().unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn key_exchange_groups_default_to_the_post_quantum_hybrid_and_can_be_restricted() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", ""),
        listener(&cert, "web", "kx_groups = [\"secp256r1\"]"),
    ));
    let (_p, addrs) = start_serve(&config, 2);
    let handshake = |addr: SocketAddr, group: &'static dyn rustls::crypto::SupportedKxGroup| {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = vec![group];
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut conn = rustls::ClientConnection::new(
            Arc::new(cfg),
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let result = conn.complete_io(&mut tcp);
        (
            result.is_ok() && !conn.is_handshaking(),
            conn.negotiated_key_exchange_group().map(|g| g.name()),
        )
    };
    use rustls::crypto::aws_lc_rs::kx_group;
    let (ok, group) = handshake(addrs[0], kx_group::X25519MLKEM768);
    assert!(ok);
    assert_eq!(group, Some(rustls::NamedGroup::X25519MLKEM768));
    let (ok, _) = handshake(addrs[1], kx_group::X25519);
    assert!(!ok, "a group the listener does not offer must fail");
    let (ok, group) = handshake(addrs[1], kx_group::SECP256R1);
    assert!(ok);
    assert_eq!(group, Some(rustls::NamedGroup::secp256r1));
}

#[test]
fn idle_keep_alive_connections_are_closed_and_max_connections_queues_the_rest() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "idle_timeout_ms = 1000"),
        listener(&cert, "web", "max_connections = 2"),
    ));
    let (_p, addrs) = start_serve(&config, 2);

    // One keep-alive request, then nothing: the server closes after about a second.
    let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
    s.write_all(b"GET /keep HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    s.flush().unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = idle_from.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );

    // max_connections = 2: a third connection waits in the backlog until one closes.
    let open = |addr| {
        let mut s = tls_over(TcpStream::connect(addr).unwrap(), &cert);
        s.conn.complete_io(&mut s.sock).unwrap();
        s
    };
    let first = open(addrs[1]);
    let _second = open(addrs[1]);
    let mut third_tcp = TcpStream::connect(addrs[1]).unwrap();
    third_tcp
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut third = rustls::ClientConnection::new(
        client_config(&[&cert]),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    assert!(
        third.complete_io(&mut third_tcp).is_err(),
        "a third connection must not be served while two are open"
    );
    drop(first);
    third_tcp
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while third.is_handshaking() {
        third.complete_io(&mut third_tcp).unwrap();
    }
}

#[test]
fn json_access_log_lines_carry_the_request_id_sent_upstream() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "[log]\nformat = \"json\"\n\n{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", ""),
    ));
    let (p, addrs) = start_serve_json(&config);
    let r = get(addrs[0], &cert, "/logged?secret=hunter2", "");
    let id = json_body(&r)["headers"]["x-request-id"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = p.stderr.wait_for(&id);
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["target"], "keyward::access");
    assert_eq!(v["fields"]["request_id"], id.as_str());
    assert_eq!(v["fields"]["status"], 200);
    assert_eq!(v["fields"]["path"], "/logged");
    assert!(
        !line.contains("hunter2"),
        "query strings are not logged: {line}"
    );
}

/// `start_serve` for a JSON-logging server: waits for the listener's JSON line.
fn start_serve_json(config: &Path) -> (Running, Vec<SocketAddr>) {
    let mut cmd = std::process::Command::new(keyward_bin());
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("KEYWARD_LOG", "info")
        .env("KEYWARD_ADMIN__ADDRESS", "127.0.0.1:0");
    let p = Running::spawn(cmd);
    let line = p.stderr.wait_for("listening for HTTPS");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
    (p, vec![addr])
}

#[test]
fn an_ocsp_response_file_is_stapled() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let dir = &site.dir;
    let sh = |cmd: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A CA (openssl), a leaf certificate for an HSM key issued by it, and the CA's OCSP
    // response for that leaf (RFC 6960), made by `openssl ocsp`.
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=Test-CA -days 2 2>/dev/null");
    generate_key(&site.data(), "ec-p256", "web");
    let data = site.data().display().to_string();
    keyward_ok(&[
        "cert",
        "csr",
        "--key",
        "web",
        "--dns",
        "localhost",
        "--out",
        &dir.join("web.csr").display().to_string(),
        "--data-dir",
        &data,
    ]);
    sh("printf 'basicConstraints=CA:FALSE\\nsubjectAltName=DNS:localhost\\n' > ext.cnf && openssl x509 -req -in web.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out web.pem -days 1 -extfile ext.cnf 2>/dev/null");
    sh("serial=$(openssl x509 -in web.pem -noout -serial | cut -d= -f2); printf 'V\\t301231000000Z\\t\\t%s\\tunknown\\t/CN=localhost\\n' \"$serial\" > index.txt");
    sh("openssl ocsp -issuer ca.pem -cert web.pem -reqout req.der -no_nonce >/dev/null 2>&1 && openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin req.der -respout web.ocsp -ndays 1 >/dev/null 2>&1");
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"web.pem\"\nocsp_file = \"web.ocsp\"\n\n[upstream]\nurl = \"http://{up_addr}\"\n"
    ));
    let (_p, addrs) = start_serve(&config, 1);
    for version in ["-tls1_3", "-tls1_2"] {
        let out = s_client(addrs[0], "localhost", &["-status", version]);
        assert!(
            out.contains("OCSP Response Status: successful"),
            "{version}: {out}"
        );
        assert!(out.contains("Cert Status: good"), "{version}: {out}");
    }
    drop(_p);
    // A response for another certificate of the same CA is refused at start, naming the file.
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.csr -subj /CN=other 2>/dev/null && openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out other.pem -days 1 2>/dev/null");
    sh("serial=$(openssl x509 -in other.pem -noout -serial | cut -d= -f2); printf 'V\\t301231000000Z\\t\\t%s\\tunknown\\t/CN=other\\n' \"$serial\" > index2.txt");
    sh("openssl ocsp -issuer ca.pem -cert other.pem -reqout req2.der -no_nonce >/dev/null 2>&1 && openssl ocsp -index index2.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin req2.der -respout other.ocsp -ndays 1 >/dev/null 2>&1");
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"web.pem\"\nocsp_file = \"other.ocsp\"\n\n[upstream]\nurl = \"http://{up_addr}\"\n"
    ));
    let out = keyward(&["serve", "--config", &config.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("other.ocsp") && err.contains("another certificate"),
        "{err}"
    );
}

#[test]
fn connect_upgrades_to_other_protocols_forged_subjects_and_bad_hosts_are_refused() {
    let site = Site::new();
    let (up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "client_body_timeout_ms = 1000")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let send = |raw: &str| {
        let mut s = tls_over(TcpStream::connect(addrs[0]).unwrap(), &cert);
        exchange(&mut s, raw.as_bytes())
    };
    // CONNECT is not a tunnel here.
    let r = send("CONNECT localhost:22 HTTP/1.1\r\nHost: localhost:22\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    // Host with user info, or a port that is not a number.
    for host in ["user@localhost", "localhost:abc"] {
        let r = send(&format!(
            "GET /bad-host HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        assert!(r.starts_with("HTTP/1.1 400"), "{host}: {r}");
    }
    // An h2c upgrade is not spliced: a plain request, then the connection closes.
    let r = send("GET /h2c HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
    let j = json_body(&r);
    assert!(j["headers"].get("upgrade").is_none(), "{j}");
    // A client's own certificate-subject header is removed even without client auth.
    let r = get(
        addrs[0],
        &cert,
        "/forged",
        "X-Client-Cert-Subject: CN=admin\r\n",
    );
    assert!(
        json_body(&r)["headers"]
            .get("x-client-cert-subject")
            .is_none(),
        "{r}"
    );
    // A body that stops arriving: 408 after client_body_timeout_ms.
    let started = Instant::now();
    let r = send("POST /stalled HTTP/1.1\r\nHost: localhost\r\nContent-Length: 900\r\n\r\nabc");
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for path in ["/bad-host", "/stalled"] {
        assert!(!upstream_saw(&up, path), "{path}");
    }
}

#[test]
fn an_upstream_that_stalls_mid_body_is_cut_at_the_read_timeout() {
    let site = Site::new();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    // An upstream that sends its headers and 7 of 100 body bytes, then nothing.
    let stall_addr = spawn_tcp_server(|mut c| {
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        std::thread::sleep(Duration::from_secs(30));
    });
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{stall_addr}\"\nread_timeout_ms = 1000\n",
        listener(&cert, "web", "")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let started = Instant::now();
    let r = get(addrs[0], &cert, "/", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.ends_with("partial"),
        "the response is cut, not completed: {r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_http2_client_that_never_sends_its_preface_is_closed_when_idle() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(&cert, "web", "idle_timeout_ms = 1000")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let mut cfg = (*client_config(&[&cert])).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addrs[0]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.conn.complete_io(&mut s.sock).unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]));
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
}

#[test]
fn forwarding_headers_are_appended_only_for_trusted_proxies() {
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    let cert = site.cert("ec-p256", "web", &["localhost"]);
    let config = site.config(&format!(
        "{}{}[upstream]\nurl = \"http://{up_addr}\"\n",
        listener(
            &cert,
            "web",
            "forwarded_headers = \"append\"\ntrusted_proxies = [\"127.0.0.1\"]"
        ),
        listener(
            &cert,
            "web",
            "forwarded_headers = \"append\"\ntrusted_proxies = [\"10.0.0.0/8\"]"
        ),
    ));
    let (_p, addrs) = start_serve(&config, 2);
    let sent = "X-Forwarded-For: 203.0.113.5\r\nForwarded: for=203.0.113.5\r\n";
    let trusted = json_body(&get(addrs[0], &cert, "/t", sent));
    assert_eq!(
        trusted["headers"]["x-forwarded-for"],
        "203.0.113.5, 127.0.0.1"
    );
    assert!(trusted["headers"]["forwarded"]
        .as_str()
        .unwrap()
        .starts_with("for=203.0.113.5, for=127.0.0.1"));
    let untrusted = json_body(&get(addrs[1], &cert, "/u", sent));
    assert_eq!(untrusted["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(untrusted["headers"]["forwarded"]
        .as_str()
        .unwrap()
        .starts_with("for=127.0.0.1;"));
}

#[test]
fn private_key_files_are_refused_outside_benchmark_builds() {
    let site = Site::new();
    let cert = site.localhost_cert("web");
    std::fs::write(site.dir.join("key.pem"), "not used").unwrap();
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nprivate_key_file = \"key.pem\"\nchain_file = \"{}\"\n\n[upstream]\nurl = \"http://127.0.0.1:1\"\n",
        cert.display()
    ));
    let out = keyward(&["serve", "--config", &config.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bench-plain-keys") && err.contains("key.pem"),
        "{err}"
    );
}
