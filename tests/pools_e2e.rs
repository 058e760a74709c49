//! Issue 5's upstream pools end to end, with the real binary, nginx from Debian and the Python
//! upstream: active health checks take a failing server out within the rise/fall window and
//! bring it back, connect failures are retried for idempotent requests only, and routes pick
//! pools by Host and path prefix.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx from Debian in the foreground with its own configuration in a temp folder: `/`
/// answers `nginx\n`, `/health` answers 200.
fn start_nginx(dir: &Path) -> (Running, SocketAddr) {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: install the Debian package nginx-light (scripts/test does)"
    );
    let root = dir.join("nginx");
    std::fs::create_dir_all(&root).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let r = root.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {r}/nginx.pid;\nerror_log stderr;\nevents {{}}\n\
         http {{\n  access_log {r}/access.log;\n  client_body_temp_path {r}/body;\n  \
         proxy_temp_path {r}/proxy;\n  fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  \
         scgi_temp_path {r}/scgi;\n  server {{\n    listen {addr};\n    \
         location / {{ return 200 \"nginx\\n\"; }}\n    \
         location = /health {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
    );
    let file = root.join("nginx.conf");
    std::fs::write(&file, conf).unwrap();
    let mut cmd = Command::new(NGINX);
    cmd.arg("-p")
        .arg(&root)
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(&file);
    let running = Running::spawn(cmd);
    wait_for_port(addr);
    (running, addr)
}

/// Sends `METHOD path` over TLS with `Connection: close` (and a small body for POST); the raw
/// response.
fn request(addr: SocketAddr, ca: &Path, method: &str, path: &str) -> String {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = rustls::ClientConnection::new(
        client_config(&[ca]),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let body = if method == "POST" { "hello" } else { "" };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.flush().unwrap();
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

fn body(response: &str) -> &str {
    &response[response.find("\r\n\r\n").expect("a response") + 4..]
}

/// Which upstream answered a 200: `nginx`, or the Python upstream's `UPSTREAM_NAME` (or
/// `python` when unnamed).
fn who(response: &str) -> String {
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let b = body(response);
    if b == "nginx\n" {
        return "nginx".into();
    }
    let j: serde_json::Value = serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}"));
    assert_eq!(j["upstream"], "keyward-test-upstream", "{b}");
    match j["name"].as_str() {
        Some("") | None => "python".into(),
        Some(n) => n.into(),
    }
}

fn metrics(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

fn healthy(admin: SocketAddr, pool: &str, server: SocketAddr) -> Option<f64> {
    metric_value(
        &metrics(admin),
        "keyward_upstream_healthy",
        &[("pool", pool), ("server", &format!("http://{server}"))],
    )
}

/// Requests `/x` until `n` consecutive answers come from `from`; fails after `within`.
fn until_only(addr: SocketAddr, ca: &Path, from: &str, n: usize, within: Duration) {
    let mut run = 0;
    let mut seen = Vec::new();
    let end = Instant::now() + within;
    while run < n {
        assert!(
            Instant::now() < end,
            "not {n} answers in a row from {from} within {within:?}; last answers: {seen:?}"
        );
        let w = who(&request(addr, ca, "GET", "/x"));
        run = if w == from { run + 1 } else { 0 };
        seen.push(w);
        if seen.len() > 20 {
            seen.remove(0);
        }
    }
}

#[test]
fn a_server_failing_its_health_check_stops_receiving_requests_and_returns_when_healthy() {
    let site = Site::new();
    let (_nginx, nginx) = start_nginx(&site.dir);
    let down = site.dir.join("down");
    let down_s = down.display().to_string();
    let (_py, py) = start_upstream_env(&[("UPSTREAM_HEALTH_FILE", &down_s)]);
    let cert = site.localhost_cert("web");
    let (interval_ms, fall, rise) = (200u64, 2u64, 2u64);
    let config = site.config(&format!(
        "{}[upstreams.mixed]\nservers = [\"http://{nginx}\", \"http://{py}\"]\nbalance = \"round_robin\"\n\n\
         [upstreams.mixed.health_check]\npath = \"/health\"\ninterval_ms = {interval_ms}\nfall = {fall}\nrise = {rise}\n",
        listener(&cert, "web", "upstream = \"mixed\"")
    ));
    let (p, addrs) = start_serve(&config, 1);
    let (addr, admin) = (addrs[0], admin_addr(&p));
    // Round robin: both answer, in turn.
    let answers: Vec<String> = (0..6)
        .map(|_| who(&request(addr, &cert, "GET", "/x")))
        .collect();
    assert!(answers.iter().any(|w| w == "nginx"), "{answers:?}");
    assert!(answers.iter().any(|w| w == "python"), "{answers:?}");
    assert!(
        answers.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {answers:?}"
    );
    assert_eq!(healthy(admin, "mixed", py), Some(1.0));
    assert_eq!(healthy(admin, "mixed", nginx), Some(1.0));

    // Failing: out after `fall` failed checks (plus one interval, plus scheduling margin).
    std::fs::write(&down, b"").unwrap();
    let window = Duration::from_millis(interval_ms * (fall + 1)) + Duration::from_millis(1500);
    let started = Instant::now();
    eventually(window, "python marked unhealthy", || {
        healthy(admin, "mixed", py) == Some(0.0)
    });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(interval_ms * (fall - 1)),
        "ejected after {took:?}: sooner than {fall} checks"
    );
    until_only(addr, &cert, "nginx", 10, Duration::from_secs(5));
    assert_eq!(healthy(admin, "mixed", nginx), Some(1.0));

    // Healthy again: back after `rise` passing checks.
    std::fs::remove_file(&down).unwrap();
    let window = Duration::from_millis(interval_ms * (rise + 1)) + Duration::from_millis(1500);
    eventually(window, "python healthy again", || {
        healthy(admin, "mixed", py) == Some(1.0)
    });
    let answers: Vec<String> = (0..4)
        .map(|_| who(&request(addr, &cert, "GET", "/x")))
        .collect();
    assert!(
        answers.iter().any(|w| w == "python"),
        "python answers again: {answers:?}"
    );
    assert!(answers.iter().any(|w| w == "nginx"), "{answers:?}");
}

#[test]
fn a_dead_server_costs_no_get_while_a_post_is_never_resent_and_passive_ejection_removes_it() {
    let site = Site::new();
    let (py_proc, py) = start_upstream();
    let dead = closed_port();
    let cert = site.localhost_cert("web");
    // Listener 0: no passive ejection, so the dead server keeps its turn. Listener 1: one
    // failure ejects it for a minute.
    let config = site.config(&format!(
        "{}{}[upstreams.keep]\nservers = [\"http://{dead}\", \"http://{py}\"]\nmax_fails = 0\nretries = 1\n\n\
         [upstreams.eject]\nservers = [\"http://{dead}\", \"http://{py}\"]\nmax_fails = 1\nfail_timeout_ms = 60000\n",
        listener(&cert, "web", "upstream = \"keep\""),
        listener(&cert, "web", "upstream = \"eject\""),
    ));
    let (p, addrs) = start_serve(&config, 2);
    let admin = admin_addr(&p);

    // GET: a refused connect is retried on the live server, every time.
    for i in 0..8 {
        let r = request(addrs[0], &cert, "GET", &format!("/get{i}"));
        assert_eq!(who(&r), "python", "{r}");
    }
    // POST is not idempotent: whichever turn lands on the dead server is a 502, the others
    // reach the live server, and a POST that failed is never re-sent elsewhere.
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for i in 0..6 {
        let path = format!("/post{i}");
        let r = request(addrs[0], &cert, "POST", &path);
        if r.starts_with("HTTP/1.1 502") {
            assert!(body(&r).contains("upstream unavailable"), "{r}");
            bad.push(path);
        } else {
            assert_eq!(who(&r), "python", "{r}");
            ok.push(path);
        }
    }
    assert!(!ok.is_empty() && !bad.is_empty(), "ok {ok:?}, 502 {bad:?}");
    assert!(
        bad.len() <= 3,
        "round robin over two servers: at most every other POST fails: {bad:?}"
    );
    py_proc
        .stdout
        .wait_for(&format!("REQUEST POST {}", ok.last().unwrap()));
    let seen = py_proc.stdout.all();
    for path in &bad {
        assert!(
            !seen.contains(&format!("REQUEST POST {path}")),
            "{path} got 502 but reached the live server"
        );
    }
    for path in &ok {
        let n = seen
            .iter()
            .filter(|l| **l == format!("REQUEST POST {path}"))
            .count();
        assert_eq!(n, 1, "{path} sent {n} times");
    }
    assert_eq!(healthy(admin, "keep", dead), Some(1.0), "max_fails = 0");

    // max_fails = 1: the first failed connect ejects the dead server; every POST then works.
    for i in 0..4 {
        let r = request(addrs[1], &cert, "GET", &format!("/warm{i}"));
        assert_eq!(who(&r), "python", "{r}");
    }
    assert_eq!(healthy(admin, "eject", dead), Some(0.0));
    for i in 0..6 {
        let r = request(addrs[1], &cert, "POST", &format!("/after{i}"));
        assert_eq!(who(&r), "python", "{r}");
    }
}

/// `curl -k` to `https://127.0.0.1:PORT{path}` with a Host header; returns (status, body).
fn curl(addr: SocketAddr, host: &str, path: &str) -> (String, String) {
    let url = format!("https://127.0.0.1:{}{path}", addr.port());
    let got = Curl::url(&url)
        .args(&["-k", "-H", &format!("Host: {host}")])
        .run();
    assert!(got.ok, "curl {url}: {}", got.stderr);
    (got.status.to_string(), got.body)
}

#[test]
fn routes_pick_a_pool_by_host_and_path_prefix() {
    let site = Site::new();
    let (_nginx, nginx) = start_nginx(&site.dir);
    let (_api, api) = start_upstream_env(&[("UPSTREAM_NAME", "api")]);
    let (_fb, fallback) = start_upstream_env(&[("UPSTREAM_NAME", "fallback")]);
    let cert = site.localhost_cert("web");
    let config = site.config(&format!(
        "{}[upstreams.api]\nservers = [\"http://{api}\"]\n\n[upstreams.web]\nservers = [\"http://{nginx}\"]\n\n\
         [upstreams.fallback]\nservers = [\"http://{fallback}\"]\n\n\
         [[routes]]\nname = \"static\"\npath_prefix = \"/static\"\nupstream = \"web\"\n\n\
         [[routes]]\nname = \"api\"\nhost = \"api.test\"\nupstream = \"api\"\n\n\
         [[routes]]\nname = \"wild\"\nhost = \"*.apps.test\"\npath_prefix = \"/v1\"\nupstream = \"api\"\n",
        listener(&cert, "web", "upstream = \"fallback\"")
    ));
    let (_p, addrs) = start_serve(&config, 1);
    let name = |host: &str, path: &str| -> String {
        let (status, body) = curl(addrs[0], host, path);
        assert_eq!(status, "200", "{host}{path}: {body}");
        if body == "nginx\n" {
            return "nginx".into();
        }
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        // The upstream gets the client's path and Host.
        assert_eq!(j["path"], path, "{body}");
        assert_eq!(j["headers"]["host"], host, "{body}");
        j["name"].as_str().unwrap().to_owned()
    };
    assert_eq!(name("localhost", "/static/app.js"), "nginx");
    assert_eq!(name("localhost", "/static"), "nginx");
    // Whole segments only.
    assert_eq!(name("localhost", "/staticx"), "fallback");
    // An exact host beats a host-less route, whatever the path.
    assert_eq!(name("api.test", "/static/app.js"), "api");
    assert_eq!(name("api.test", "/users"), "api");
    assert_eq!(name("API.test", "/users"), "api");
    // A wildcard host covers one label, with its prefix.
    assert_eq!(name("x.apps.test", "/v1/items"), "api");
    assert_eq!(name("x.apps.test", "/v2/items"), "fallback");
    assert_eq!(name("y.x.apps.test", "/v1/items"), "fallback");
    assert_eq!(name("other.test", "/"), "fallback");
}
