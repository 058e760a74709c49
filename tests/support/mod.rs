//! Shared fixtures for the integration tests: temporary data directories, the real `keyward`
//! binary and a real upstream process, waiting on ports and log lines with deadlines.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    unreachable_pub,
    reason = "a module of each test binary, not a library"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod moto;
pub mod pkcs11;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn keyward_bin() -> &'static str {
    env!("CARGO_BIN_EXE_keyward")
}

/// Runs `keyward ARGS` to completion.
pub fn keyward(args: &[&str]) -> Output {
    Command::new(keyward_bin())
        .args(args)
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_CONFIG")
        .env("KEYWARD_ADMIN__ADDRESS", "127.0.0.1:0")
        .output()
        .expect("run keyward")
}

/// Runs `keyward ARGS` and insists on success; returns stdout.
pub fn keyward_ok(args: &[&str]) -> String {
    let out = keyward(args);
    assert!(
        out.status.success(),
        "keyward {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Lines a child writes, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn follow(&self, stream: impl std::io::Read + Send + 'static) {
        let me = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lock, cv) = &*me.0;
                lock.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
    }

    /// Waits until a line contains `needle`; returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let (lock, cv) = &*self.0;
        let end = Instant::now() + DEADLINE;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line containing {needle:?} within {DEADLINE:?}; got {lines:?}"
            );
            lines = cv.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn all(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().clone()
    }
}

/// A child process killed when dropped.
pub struct Running {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = Lines::default();
        let stderr = Lines::default();
        stdout.follow(child.stdout.take().unwrap());
        stderr.follow(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the exit status (with a deadline).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit(DEADLINE)
    }

    /// Sends SIGTERM; returns at once.
    pub fn send_sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit; fails the test after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < end,
                "process did not exit within {within:?}: {:?}",
                self.stderr.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python upstream from `tests/fixtures/upstream.py`.
pub fn start_upstream() -> (Running, SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    let up = Running::spawn(cmd);
    let line = up.stdout.wait_for("PORT ");
    let port: u16 = line.trim_start_matches("PORT ").trim().parse().unwrap();
    (up, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// An address on which nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Starts `keyward serve --config FILE` and waits for every listener; returns their addresses.
pub fn start_serve(config: &Path, listeners: usize) -> (Running, Vec<SocketAddr>) {
    start_serve_with(config, listeners, &[])
}

/// [`start_serve`] with more command-line arguments.
pub fn start_serve_with(
    config: &Path,
    listeners: usize,
    args: &[&str],
) -> (Running, Vec<SocketAddr>) {
    let mut cmd = Command::new(keyward_bin());
    cmd.args(["serve", "--config"])
        .arg(config)
        .args(args)
        .env("KEYWARD_LOG", "info")
        // Tests run in parallel: each admin listener on its own port.
        .env("KEYWARD_ADMIN__ADDRESS", "127.0.0.1:0");
    let p = Running::spawn(cmd);
    p.stderr.wait_for("listening for HTTP");
    let end = Instant::now() + DEADLINE;
    let addrs = loop {
        let addrs: Vec<SocketAddr> = p
            .stderr
            .all()
            .iter()
            .filter(|l| l.contains("listening for HTTP"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .map(|a| a.parse().unwrap())
            })
            .collect();
        if addrs.len() == listeners {
            break addrs;
        }
        assert!(
            Instant::now() < end,
            "listeners did not all start: {:?}",
            p.stderr.all()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (p, addrs)
}

/// SHA-256 of every file below `dir`, by relative path: a fingerprint to show "nothing written".
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let digest = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    &std::fs::read(&p).unwrap(),
                );
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    digest.as_ref().to_vec(),
                );
            }
        }
    }
    out
}

/// Runs a command and returns (status ok, stdout, stderr) as text.
pub fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect(program);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One `openssl s_client` connection to `addr` (SNI `localhost`, `-ign_eof`, plus `extra`)
/// that sends a small `GET` with `Connection: close` and reads until the server closes (so a
/// TLS 1.3 NewSessionTicket, sent after the handshake, is read too). Returns stdout followed
/// by stderr; fails the test after [`DEADLINE`].
pub fn s_client_request(addr: SocketAddr, extra: &[&str]) -> String {
    use std::io::Write as _;
    let connect = addr.to_string();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-ign_eof",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /s_client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let end = Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!(
                "openssl s_client did not finish within {DEADLINE:?}: {:?}",
                child.wait_with_output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openssl s_client` against `addr` with extra flags; returns its stdout.
pub fn s_client(addr: SocketAddr, servername: &str, extra: &[&str]) -> String {
    let connect = addr.to_string();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        servername,
        "-showcerts",
    ];
    args.extend_from_slice(extra);
    let out = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `New, TLSv1.x` / `Reused, TLSv1.x` line s_client prints.
pub fn session_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| panic!("no New/Reused line in s_client output:\n{out}"))
}

/// Writes a new session file from `addr`, checks it was a full handshake of `version`.
pub fn new_session(addr: SocketAddr, file: &Path, version: &str, extra: &[&str]) {
    let out = s_client_request(
        addr,
        &[&["-sess_out", file.to_str().unwrap()], extra].concat(),
    );
    assert!(
        session_line(&out).starts_with(&format!("New, {version}")),
        "{out}"
    );
    assert!(
        out.contains("keyward-test-upstream"),
        "no answer from the upstream: {out}"
    );
    let pem = std::fs::read_to_string(file).unwrap();
    assert!(pem.contains("BEGIN SSL SESSION PARAMETERS"), "{pem}");
}

/// Resumes the session in `file` on `addr`; returns the New/Reused line.
pub fn resume(addr: SocketAddr, file: &Path, extra: &[&str]) -> String {
    let out = s_client_request(
        addr,
        &[&["-sess_in", file.to_str().unwrap()], extra].concat(),
    );
    assert!(
        out.contains("keyward-test-upstream"),
        "no answer from the upstream: {out}"
    );
    session_line(&out).to_owned()
}

/// `keyward key generate --type SPEC --label LABEL --data-dir DATA`.
pub fn generate_key(data: &Path, spec: &str, label: &str) {
    let data = data.display().to_string();
    keyward_ok(&[
        "key",
        "generate",
        "--type",
        spec,
        "--label",
        label,
        "--data-dir",
        &data,
    ]);
}

/// `keyward cert self-signed` for `localhost` and `127.0.0.1`, written to `out`.
pub fn self_signed(data: &Path, label: &str, out: &Path) {
    let (data, out) = (data.display().to_string(), out.display().to_string());
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        label,
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        &out,
        "--data-dir",
        &data,
    ]);
}

/// Opens a data directory from the test (a second reader beside a running server is fine).
pub fn open_hsm(dir: &Path) -> keyward_hsm::Hsm {
    keyward_hsm::test_util::open_data_dir(dir)
}

/// The proxy's service session, which owns the keys the CLI makes.
pub fn me(hsm: &keyward_hsm::Hsm) -> keyward_hsm::Session {
    hsm.service_session(keyward_hsm::PROXY_USER).unwrap()
}

/// The Python upstream from `tests/fixtures/upstream.py` with extra environment variables
/// (`UPSTREAM_NAME`, `UPSTREAM_HEALTH_FILE`).
pub fn start_upstream_env(env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let up = Running::spawn(cmd);
    let line = up.stdout.wait_for("PORT ");
    let port: u16 = line.trim_start_matches("PORT ").trim().parse().unwrap();
    (up, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits (with [`DEADLINE`]) until at least `n` lines of `lines` contain `needle`.
pub fn wait_for_count(lines: &Lines, needle: &str, n: usize) {
    let (lock, cv) = &*lines.0;
    let end = Instant::now() + DEADLINE;
    let mut all = lock.lock().unwrap();
    loop {
        if all.iter().filter(|l| l.contains(needle)).count() >= n {
            return;
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "fewer than {n} lines containing {needle:?} within {DEADLINE:?}; got {all:?}"
        );
        all = cv.wait_timeout(all, left).unwrap().0;
    }
}

/// Polls `check` every 50 ms until it returns true; fails with `what` after `within`.
pub fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a TCP connection to `addr` succeeds (a server started by the test).
pub fn wait_for_port(addr: SocketAddr) {
    eventually(DEADLINE, &format!("{addr} accepts connections"), || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
}

/// A free TCP port on 127.0.0.1 for a server that cannot take port 0 (bound, then released).
pub fn free_port() -> u16 {
    closed_port().port()
}

/// The value of one sample in Prometheus text `metrics`: the line starting with `name{` whose
/// labels contain every `labels` pair (`key="value"`); `None` when there is no such line.
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A temporary folder for one test: the HSM data directory `data/`, certificates and the
/// configuration file. Removed when dropped. Test files add their own helper methods.
pub struct Site {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Site { _tmp: tmp, dir }
    }

    /// The HSM data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A P-256 key in the HSM and a self-signed certificate for `localhost` and 127.0.0.1.
    pub fn localhost_cert(&self, label: &str) -> PathBuf {
        generate_key(&self.data(), "ec-p256", label);
        let out = self.dir.join(format!("{label}.pem"));
        self_signed(&self.data(), label, &out);
        out
    }

    /// Writes (or rewrites) `keyward.toml`: `[hsm] data_dir = "data"`, then `body`.
    pub fn config(&self, body: &str) -> PathBuf {
        let p = self.dir.join("keyward.toml");
        std::fs::write(&p, format!("[hsm]\ndata_dir = \"data\"\n\n{body}")).unwrap();
        p
    }
}

pub fn listener(cert: &Path, label: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n{extra}\n[[listeners.certificates]]\nkey_label = \"{label}\"\nchain_file = \"{}\"\n\n",
        cert.display()
    )
}

/// A rustls client that trusts exactly the certificates in `ca` (PEM files).
pub fn client_config(ca: &[&Path]) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for f in ca {
        for c in rustls_pki_types::CertificateDer::pem_file_iter(f).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub fn json_body(response: &str) -> serde_json::Value {
    let body = &response[response.find("\r\n\r\n").expect("a response") + 4..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

pub fn admin_addr(p: &Running) -> SocketAddr {
    let line = p.stderr.wait_for("serving admin endpoints");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .parse()
        .unwrap()
}

pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    exchange(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Sends `request` and reads until the server closes (requests carry `Connection: close`).
pub fn exchange(stream: &mut impl ReadWrite, request: &[u8]) -> String {
    stream.write_all(request).unwrap();
    stream.flush().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Any byte stream (TCP, TLS over TCP).
pub trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// A TCP server on a loopback port that runs `handler` on a thread per connection.
pub fn spawn_tcp_server(handler: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(c) = conn else { break };
            std::thread::spawn(move || handler(c));
        }
    });
    addr
}

/// `keyward init --data-dir DATA` with the first admin `admin` whose password is `password`
/// (written to [`admin_password_file`]); returns what init printed.
pub fn init_hsm(data: &Path, password: &str) -> String {
    let pw_file = admin_password_file(data);
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    keyward_ok(&[
        "init",
        "--data-dir",
        &data.display().to_string(),
        "--admin-password-file",
        &pw_file.display().to_string(),
    ])
}

/// Where [`init_hsm`] writes the admin password for `data`: `DATA.admin.pw` beside it.
pub fn admin_password_file(data: &Path) -> PathBuf {
    data.with_extension("admin.pw")
}

/// Starts `keyward hsm serve --listen 127.0.0.1:0 --data-dir DATA EXTRA...` and waits for its
/// "serving the HSM API" line; returns the process and the bound address.
pub fn start_hsm_serve(data: &Path, extra: &[&str]) -> (Running, SocketAddr) {
    let mut cmd = Command::new(keyward_bin());
    cmd.args(["hsm", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("KEYWARD_LOG", "info");
    let server = Running::spawn(cmd);
    let line = server.stderr.wait_for("serving the HSM API");
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .parse()
        .unwrap();
    (server, addr)
}

/// A TLS connection to `addr` (SNI `localhost`, no ALPN: HTTP/1.1) trusting the PEM file `ca`,
/// handshake done.
pub fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let server_name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(&[ca]), server_name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// One `curl` request: the only way the tests run curl. `-sS --max-time 20`, and a last
/// stdout line with the status, HTTP version and total time (read into [`CurlOutput`]).
pub struct Curl {
    url: String,
    args: Vec<String>,
}

/// What [`Curl::run`] got.
#[derive(Debug)]
pub struct CurlOutput {
    /// curl exited 0.
    pub ok: bool,
    /// The response status (`0` when there was no response).
    pub status: u16,
    /// `1.1` or `2`.
    pub http_version: String,
    /// Seconds from start to the end of the transfer.
    pub time_total_s: f64,
    /// Standard output without the status line: the body, or what `--trace-ascii -` wrote.
    pub body: String,
    /// Standard error (`-sS`: the error when it failed).
    pub stderr: String,
}

impl Curl {
    /// A request to `url` as given (no name resolution override, no CA).
    pub fn url(url: impl Into<String>) -> Curl {
        Curl {
            url: url.into(),
            args: Vec::new(),
        }
    }

    /// `https://localhost:PORT{path}` with `localhost` resolved to `addr`'s 127.0.0.1 (so the
    /// certificate's name matches), trusting the PEM file `ca`.
    pub fn https(addr: SocketAddr, path: &str, ca: &Path) -> Curl {
        let port = addr.port();
        Curl::url(format!("https://localhost:{port}{path}"))
            .args(&["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(&["--cacert", &ca.display().to_string()])
    }

    /// More curl arguments (before the URL).
    pub fn args(mut self, args: &[&str]) -> Curl {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// `-H "authorization: Bearer TOKEN"` when there is a token.
    pub fn bearer(self, token: Option<&str>) -> Curl {
        match token {
            Some(t) => self.args(&["-H", &format!("authorization: Bearer {t}")]),
            None => self,
        }
    }

    /// Runs curl and splits its output.
    pub fn run(self) -> CurlOutput {
        let mut args: Vec<&str> = vec!["-sS", "--max-time", "20"];
        args.extend(self.args.iter().map(String::as_str));
        args.extend([
            "-w",
            "\n%{http_code} %{http_version} %{time_total}",
            &self.url,
        ]);
        let (ok, out, stderr) = run("curl", &args);
        let (body, last) = out.rsplit_once('\n').unwrap_or(("", &out));
        let mut fields = last.split(' ');
        let mut next = || fields.next().unwrap_or("");
        CurlOutput {
            ok,
            status: next().parse().unwrap_or(0),
            http_version: next().to_owned(),
            time_total_s: next().parse().unwrap_or(f64::NAN),
            body: body.to_owned(),
            stderr,
        }
    }
}

/// An HSM API call with curl over TLS (trusting `ca`): the status and the JSON body (`Null`
/// when the body is not JSON).
pub fn curl_json(
    ca: &Path,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut curl = Curl::https(addr, path, ca)
        .args(&["-X", method])
        .bearer(token);
    if let Some(b) = body {
        curl = curl.args(&["-H", "content-type: application/json", "-d", b]);
    }
    let got = curl.run();
    assert!(got.ok, "{}", got.stderr);
    (
        got.status,
        serde_json::from_str(&got.body).unwrap_or(serde_json::Value::Null),
    )
}
