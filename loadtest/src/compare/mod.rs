//! `keyward-loadtest compare`: keyward next to nginx, nginx + SoftHSM2 and HAProxy, on one
//! machine in one run, each server pinned to one core and this load generator to another.
//!
//! For each round, key type and target: start the target (fresh process) with the shared
//! key and certificate; check one proxied request; then each scenario in `Scenario::ALL`
//! order (the idle scenario, memory per held connection, last), each after a short
//! unmeasured warm-up. Server CPU comes from `/proc/PID/stat` (process and descendants, before and
//! after each run), memory from `/proc/PID/status` (VmRSS), the client side from the load
//! generator's own report (run as a child process pinned with `taskset`).
//! Outputs: `results.json`, `results.md` and `results.png` in `--out`.

mod args;
mod output;
mod pkcs11_target;
mod procs;
mod targets;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::cli::{Cipher, Group, TlsVersion};
pub use args::CompareArgs;
use procs::run_ok;
use targets::{Binaries, Material, Started};
pub use targets::{KeyKind, TargetKind};

/// Set by SIGINT/SIGTERM: the run stops at the next step, stopping every server and
/// removing the work directory (unless `--keep-work`).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Fails once SIGINT or SIGTERM has arrived.
fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted; servers stopped");
    }
    Ok(())
}

/// What is measured.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// New connection, full TLS 1.3 handshake (X25519), no request.
    Tls13Full,
    /// The same with X25519MLKEM768 (keyward only: nginx's OpenSSL 3.0 has no ML-KEM).
    Tls13FullMlkem,
    /// New connection, full TLS 1.2 handshake (ECDHE X25519).
    Tls12Full,
    /// New connection resuming a TLS 1.3 session (PSK-DHE with a ticket).
    Tls13Resumed,
    /// New connection resuming a TLS 1.2 session (ticket or session id).
    Tls12Resumed,
    /// Keep-alive HTTP/1.1 requests over TLS 1.3, proxied to the upstream.
    KeepAlive,
    /// Many idle keep-alive TLS connections: the server's memory per connection.
    Idle,
}

impl Scenario {
    /// In report order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Tls13Full,
        Scenario::Tls13FullMlkem,
        Scenario::Tls12Full,
        Scenario::Tls13Resumed,
        Scenario::Tls12Resumed,
        Scenario::KeepAlive,
        Scenario::Idle,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Tls13Full => "TLS 1.3 full",
            Scenario::Tls13FullMlkem => "TLS 1.3 full, X25519MLKEM768",
            Scenario::Tls12Full => "TLS 1.2 full",
            Scenario::Tls13Resumed => "TLS 1.3 resumed",
            Scenario::Tls12Resumed => "TLS 1.2 resumed",
            Scenario::KeepAlive => "keep-alive requests",
            Scenario::Idle => "idle connections",
        }
    }

    /// Whether `target` runs it.
    pub fn applies_to(self, target: TargetKind) -> bool {
        self != Scenario::Tls13FullMlkem || target.is_keyward()
    }

    /// The unit of `ops`.
    pub fn unit(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "request",
            Scenario::Idle => "connection",
            _ => "handshake",
        }
    }
}

/// How long or how much each run is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    name: String,
    rounds: u32,
    /// Measured duration per run (None: `count`).
    duration_s: Option<f64>,
    /// Operations per run when there is no duration.
    count: Option<u64>,
    warmup_s: Option<f64>,
    warmup_count: Option<u64>,
    idle_connections: usize,
    /// Why `idle_connections` is lower than asked, if it is.
    idle_connections_note: Option<String>,
    /// Pause between the last idle connection opening and reading memory.
    idle_settle_s: f64,
    connections: usize,
    verify_every: u64,
    server_cpu: usize,
    client_cpu: usize,
}

impl Profile {
    fn from_args(a: &CompareArgs) -> Profile {
        let (name, rounds, duration, idle, warm) = if a.tiny {
            ("tiny", 1, None, 20, None)
        } else if a.quick {
            ("quick", 1, Some(2.0), 1000, Some(0.3))
        } else {
            ("full", 5, Some(3.0), 10_000, Some(1.0))
        };
        let duration_s = a.duration.map(|d| d.as_secs_f64()).or(duration);
        Profile {
            name: name.to_owned(),
            rounds: a.rounds.unwrap_or(rounds).max(1),
            duration_s,
            count: duration_s.is_none().then_some(60),
            warmup_s: warm,
            warmup_count: warm.is_none().then_some(10),
            idle_connections: a.idle_connections.unwrap_or(idle),
            idle_connections_note: None,
            idle_settle_s: if a.tiny { 0.1 } else { 1.0 },
            connections: a.connections.max(1),
            verify_every: a.verify_every,
            server_cpu: a.server_cpu,
            client_cpu: a.client_cpu,
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Key type.
    pub key: KeyKind,
    /// System under test.
    pub target: TargetKind,
    /// What was measured.
    pub scenario: Scenario,
    /// Round number, from 1.
    pub round: u32,
    /// Handshakes, requests or held connections (see `Scenario::unit`).
    pub ops: u64,
    /// `ops` per second of the run (for idle: connections opened per second).
    pub ops_per_s: f64,
    /// Server CPU time (user + system, process tree) ÷ `ops`, milliseconds.
    pub server_cpu_ms_per_op: f64,
    /// Server CPU time ÷ wall time × 100.
    pub server_core_percent: f64,
    /// Load generator CPU time ÷ `ops`, milliseconds.
    pub client_cpu_ms_per_op: f64,
    /// Load generator CPU time ÷ wall time × 100.
    pub client_core_percent: f64,
    /// Latency percentiles of completed operations, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub error_total: u64,
    /// Completed handshakes and, of those, resumed ones.
    pub handshakes: u64,
    /// Resumed handshakes.
    pub resumed: u64,
    /// keyward with the key in the HSM: signatures the HSM made during the run.
    pub hsm_signs: Option<u64>,
    /// Idle scenario: memory.
    pub idle: Option<IdleMemory>,
    /// What the first handshake negotiated (version, suite, group, signature scheme).
    pub negotiated: Option<serde_json::Value>,
}

/// Memory of the idle scenario.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct IdleMemory {
    /// Connections open while memory was read.
    pub held: usize,
    /// Of those, connections that answered a request after the hold.
    pub alive_after_hold: usize,
    /// Server VmRSS before opening them, KiB.
    pub rss_before_kib: u64,
    /// Server VmRSS with them open, KiB.
    pub rss_held_kib: u64,
    /// (held − before) ÷ held, KiB.
    pub kib_per_connection: f64,
}

/// Runs the comparison and writes the outputs.
///
/// # Errors
/// A missing tool, a target that fails to start or to answer, or unwritable outputs.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.render {
        return render(dir);
    }
    let profile = Profile::from_args(args);
    let targets = selected(&args.targets, &TargetKind::ALL);
    let keys = selected(&args.keys, &[KeyKind::P256, KeyKind::Rsa2048]);
    let scenarios = selected(&args.scenarios, &Scenario::ALL);
    let mut profile = profile;
    preflight(args, &targets, &mut profile)?;
    let bins = Binaries {
        keyward: args.keyward_bin.clone(),
        keyward_plain: plain_bin(args),
        nginx: targets::nginx_path(),
        haproxy: targets::find_program("haproxy"),
        pkcs11_module: pkcs11_module(args),
    };
    // The work directory holds private keys, a master key and passwords: owner only, and
    // removed (with every server stopped) also when the run is interrupted.
    let work = tempfile::Builder::new()
        .prefix("keyward-compare.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating the work directory")?;
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("installing the SIGINT/SIGTERM handler")?;
    // Kept (for reading configurations and logs) when asked, also after a failure.
    let (_cleanup, work_dir) = if args.keep_work {
        (None, work.keep())
    } else {
        let dir = work.path().to_owned();
        (Some(work), dir)
    };
    let started_at = Instant::now();
    log(&format!(
        "{} run: {} round(s), targets {}, keys {}; work dir {}",
        profile.name,
        profile.rounds,
        targets.iter().map(|t| t.id()).collect::<Vec<_>>().join(","),
        keys.iter().map(|k| k.id()).collect::<Vec<_>>().join(","),
        work_dir.display()
    ));
    let material = targets::prepare(
        &work_dir,
        &keys,
        targets
            .iter()
            .any(|t| t.is_keyward() || t.needs_keyward_hsm())
            .then_some(bins.keyward.as_path()),
        targets.contains(&TargetKind::NginxSofthsm),
    )?;
    let (mut upstream, upstream_port) = targets::start_upstream(&material, profile.server_cpu)?;

    let mut runs = Vec::new();
    for round in 1..=profile.rounds {
        for &key in &keys {
            for &target in &targets {
                let mut started = targets::start(
                    target,
                    key,
                    &material,
                    &bins,
                    profile.server_cpu,
                    upstream_port,
                    profile.idle_connections,
                )?;
                let measured = measure_target(
                    &profile,
                    &scenarios,
                    &material,
                    &mut started,
                    key,
                    target,
                    round,
                )
                .with_context(|| format!("{} with {} (round {round})", target.name(), key.name()));
                let measured = match measured {
                    Ok(m) => m,
                    Err(e) => {
                        let tail = started.server.log_tail();
                        return Err(e.context(format!("server log ends:\n{tail}")));
                    }
                };
                started.server.stop();
                runs.extend(measured);
                upstream.check_running()?;
            }
        }
    }
    upstream.stop();

    let results =
        output::Results::new(&profile, &bins, &targets, &keys, runs, started_at.elapsed())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_outputs(&results, &args.out)?;
    log(&format!(
        "finished in {:.0} s",
        started_at.elapsed().as_secs_f64()
    ));
    if args.keep_work {
        log(&format!("kept the work directory {}", work_dir.display()));
    }
    Ok(())
}

/// The values given on the command line (sorted, each once), or `all` when none were.
fn selected<T: Ord + Clone>(given: &[T], all: &[T]) -> Vec<T> {
    let mut v = if given.is_empty() {
        all.to_vec()
    } else {
        given.to_vec()
    };
    v.sort();
    v.dedup();
    v
}

/// Writes results.json, results.md and results.png into `out` and prints the Markdown.
fn write_outputs(results: &output::Results, out: &std::path::Path) -> anyhow::Result<()> {
    let json_path = out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(results)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = out.join("results.md");
    std::fs::write(&md_path, results.markdown())
        .with_context(|| format!("writing {}", md_path.display()))?;
    let png_path = out.join("results.png");
    results.chart(&png_path)?;
    println!("{}", results.markdown());
    log(&format!(
        "wrote {}, {} and {}",
        json_path.display(),
        md_path.display(),
        png_path.display()
    ));
    Ok(())
}

/// `--render DIR`: the outputs again from the runs recorded in DIR/results.json.
fn render(dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut results: output::Results =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    results.recompute();
    write_outputs(&results, dir)
}

fn log(msg: &str) {
    eprintln!("compare: {msg}");
}

/// `--keyward-plain-bin`, else `keyward-bench-plain` next to `--keyward-bin` if it exists.
/// `--pkcs11-module`, else `libkeyward_pkcs11.so` beside `--keyward-bin`.
fn pkcs11_module(args: &CompareArgs) -> PathBuf {
    args.pkcs11_module
        .clone()
        .unwrap_or_else(|| args.keyward_bin.with_file_name("libkeyward_pkcs11.so"))
}

fn plain_bin(args: &CompareArgs) -> Option<PathBuf> {
    args.keyward_plain_bin.clone().or_else(|| {
        let beside = args.keyward_bin.with_file_name("keyward-bench-plain");
        beside.is_file().then_some(beside)
    })
}

/// Every tool is there, the CPUs exist, keyward binaries run.
fn preflight(args: &CompareArgs, targets: &[TargetKind], p: &mut Profile) -> anyhow::Result<()> {
    if p.idle_connections == 0 {
        bail!("--idle-connections must be at least 1");
    }
    if args.verify_every == 0 {
        bail!("--verify-every must be at least 1 (1 checks every handshake signature)");
    }
    if p.duration_s.is_some_and(|d| d <= 0.0) {
        bail!("--duration must be positive");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if p.server_cpu == p.client_cpu || p.server_cpu.max(p.client_cpu) >= cpus {
        bail!(
            "--server-cpu {} and --client-cpu {} must be two different CPUs of the {cpus} available",
            p.server_cpu,
            p.client_cpu
        );
    }
    let mut tools = vec!["openssl", "taskset", "curl", "nginx"];
    if targets.contains(&TargetKind::Haproxy) {
        tools.push("haproxy");
    }
    if targets.contains(&TargetKind::NginxSofthsm) {
        tools.extend(["softhsm2-util", "pkcs11-tool"]);
    }
    if targets.contains(&TargetKind::NginxKeyward) && !pkcs11_module(args).is_file() {
        bail!(
            "the nginx-keyward target needs {} (cargo build --release -p keyward-pkcs11, or --pkcs11-module)",
            pkcs11_module(args).display()
        );
    }
    for tool in tools {
        let path = targets::find_program(tool);
        if !path.is_file() {
            bail!(
                "`{tool}` not found; `loadtest/compare` installs what is missing (Debian packages)"
            );
        }
    }
    // The open-file limit decides how many idle connections HAProxy can be given.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    let limit = targets::idle_connection_limit(hard);
    if targets.contains(&TargetKind::Haproxy) && p.idle_connections > limit {
        p.idle_connections_note = Some(format!(
            "{} idle connections instead of {}: the open-file hard limit here is {hard} and \
             HAProxy reserves two descriptors per connection",
            limit, p.idle_connections
        ));
        log(p.idle_connections_note.as_deref().unwrap_or_default());
        p.idle_connections = limit;
    }
    if !args.keyward_bin.is_file() {
        bail!(
            "keyward binary {} not found (cargo build --release)",
            args.keyward_bin.display()
        );
    }
    if targets.contains(&TargetKind::KeywardPlain) {
        match &plain_bin(args) {
            Some(p) if p.is_file() => {}
            Some(p) => bail!("--keyward-plain-bin {} not found", p.display()),
            None => bail!(
                "the keyward-plain target needs --keyward-plain-bin (cargo build --release --features bench-plain-keys)"
            ),
        }
    }
    Ok(())
}

/// Everything measured on one started target.
fn measure_target(
    p: &Profile,
    scenarios: &[Scenario],
    m: &Material,
    started: &mut Started,
    key: KeyKind,
    target: TargetKind,
    round: u32,
) -> anyhow::Result<Vec<Run>> {
    let files = &m.keys[&key];
    let client = Client {
        profile: p,
        addr: started.addr.to_string(),
        cert: files.cert_pem.clone(),
        key,
    };
    // One request through the proxy to the upstream must work before anything is measured.
    let probe = client.loadgen(&client.handshake_args(Scenario::Tls13Full, Some(1), None, true))?;
    if probe.requests != 1 {
        bail!("the probe request failed: {:?}", probe.errors);
    }
    let mut runs = Vec::new();
    for &scenario in scenarios {
        if !scenario.applies_to(target) {
            continue;
        }
        check_interrupted()?;
        log(&format!(
            "round {round}: {} / {} / {}",
            key.name(),
            target.name(),
            scenario.name()
        ));
        let run = if scenario == Scenario::Idle {
            client.idle(started, target, round)?
        } else {
            client.measure(started, target, scenario, round)?
        };
        if run.error_total > 0 {
            log(&format!("  {} errors: {:?}", run.error_total, run.errors));
        }
        runs.push(run);
        started.server.check_running()?;
    }
    Ok(runs)
}

/// Runs the load generator (this executable) as a child pinned to the client CPU.
struct Client<'a> {
    profile: &'a Profile,
    addr: String,
    cert: PathBuf,
    key: KeyKind,
}

impl Client<'_> {
    /// Options every run shares: the pinned certificate, one TLS version, one group,
    /// AES-128-GCM (the same suite on every server), the key's signature schemes, one
    /// client thread, JSON output.
    fn common_args(&self, tls: TlsVersion, groups: &[Group]) -> Vec<String> {
        vec![
            self.addr.clone(),
            "--pin-cert".into(),
            self.cert.display().to_string(),
            "--server-name".into(),
            "localhost".into(),
            "--tls".into(),
            value_name(tls),
            "--group".into(),
            groups
                .iter()
                .map(|g| value_name(*g))
                .collect::<Vec<_>>()
                .join(","),
            "--cipher".into(),
            value_name(Cipher::Aes128Gcm),
            "--sigalgs".into(),
            value_name(self.key.sigalgs()),
            "--verify-every".into(),
            self.profile.verify_every.to_string(),
            "--threads".into(),
            "1".into(),
            "--json".into(),
        ]
    }

    /// `handshake` (or `request` for keep-alive) arguments for `scenario`, run for
    /// `count` operations or `duration_s` seconds.
    fn handshake_args(
        &self,
        scenario: Scenario,
        count: Option<u64>,
        duration_s: Option<f64>,
        with_request: bool,
    ) -> Vec<String> {
        // X25519 for the key exchange everywhere (and ML-KEM in its own row). TLS 1.2
        // also lists P-256: OpenSSL serves an ECDSA P-256 certificate over TLS 1.2 only
        // to clients that list the certificate's curve (RFC 4492 §5.1); X25519 stays
        // first, so it is what is negotiated.
        let (tls, groups): (TlsVersion, &[Group]) = match scenario {
            Scenario::Tls12Full | Scenario::Tls12Resumed => {
                (TlsVersion::Tls12, &[Group::X25519, Group::Secp256r1])
            }
            Scenario::Tls13FullMlkem => (TlsVersion::Tls13, &[Group::X25519mlkem768]),
            _ => (TlsVersion::Tls13, &[Group::X25519]),
        };
        let mode = if scenario == Scenario::KeepAlive {
            "request"
        } else {
            "handshake"
        };
        let mut a = vec![mode.to_owned()];
        a.extend(self.common_args(tls, groups));
        a.extend(["--connections".into(), self.profile.connections.to_string()]);
        if matches!(scenario, Scenario::Tls13Resumed | Scenario::Tls12Resumed) {
            a.push("--resume".into());
        }
        if with_request && mode == "handshake" {
            a.push("--request".into());
        }
        match (count, duration_s) {
            (_, Some(s)) => a.extend(["--duration".into(), format!("{}ms", (s * 1000.0).round())]),
            (Some(n), None) => a.extend(["--count".into(), n.to_string()]),
            (None, None) => {}
        }
        a
    }

    fn command(&self, args: &[String]) -> anyhow::Result<Command> {
        let me = std::env::current_exe().context("locating keyward-loadtest")?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(self.profile.client_cpu.to_string())
            .arg(me)
            .args(args);
        Ok(cmd)
    }

    /// Runs the load generator to completion and parses its report.
    fn loadgen(&self, args: &[String]) -> anyhow::Result<Report> {
        check_interrupted()?;
        let out = run_ok("keyward-loadtest", &mut self.command(args)?)?;
        check_interrupted()?;
        parse_report(&out.stdout)
    }

    /// A handshake or keep-alive scenario: warm-up, then one measured run.
    fn measure(
        &self,
        s: &mut Started,
        target: TargetKind,
        scenario: Scenario,
        round: u32,
    ) -> anyhow::Result<Run> {
        let p = self.profile;
        self.loadgen(&self.handshake_args(scenario, p.warmup_count, p.warmup_s, false))?;
        let signs0 = sign_count(s, target)?;
        let cpu0 = s.cpu()?;
        let report = self.loadgen(&self.handshake_args(scenario, p.count, p.duration_s, false))?;
        let cpu = s.cpu()?.saturating_sub(cpu0);
        let signs = match (signs0, sign_count(s, target)?) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let ops = if scenario == Scenario::KeepAlive {
            report.requests
        } else {
            report.handshakes
        };
        Ok(Run::from_report(
            self.key, target, scenario, round, &report, ops, cpu, signs, None,
        ))
    }

    /// The idle scenario: warm-up, memory before, open and hold the connections, memory,
    /// release.
    fn idle(&self, s: &mut Started, target: TargetKind, round: u32) -> anyhow::Result<Run> {
        let p = self.profile;
        self.loadgen(&self.handshake_args(Scenario::Tls13Full, p.warmup_count, p.warmup_s, true))?;
        let rss_before = s.server.rss_kib()?;
        let cpu0 = s.cpu()?;
        let mut args = vec!["idle".to_owned()];
        args.extend(self.common_args(TlsVersion::Tls13, &[Group::X25519]));
        args.extend([
            "--connections".into(),
            p.idle_connections.to_string(),
            "--concurrency".into(),
            p.connections.to_string(),
        ]);
        let mut child = self
            .command(&args)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting keyward-loadtest idle")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let held_line = lines
            .next()
            .context("keyward-loadtest idle ended before holding its connections")??;
        let held: serde_json::Value =
            serde_json::from_str(&held_line).context("parsing the idle event line")?;
        let held_n = held["held"].as_u64().unwrap_or(0) as usize;
        let open_s = held["open_s"]
            .as_f64()
            .unwrap_or(0.0)
            .max(f64::MIN_POSITIVE);
        let client_cpu_ms = held["client_cpu_ms"].as_f64().unwrap_or(0.0);
        std::thread::sleep(Duration::from_secs_f64(p.idle_settle_s));
        let rss_held = s.server.rss_kib()?;
        let cpu = s.cpu()?.saturating_sub(cpu0);
        // End of input: the generator checks every connection, closes them and reports.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.flush();
        }
        let rest: Vec<String> = lines.collect::<Result<_, _>>()?;
        let status = child.wait()?;
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("keyward-loadtest idle failed ({status}): {err}");
        }
        let report = parse_report(rest.join("\n").as_bytes())?;
        let idle = report
            .idle
            .as_ref()
            .context("no idle section in the report")?;
        let memory = IdleMemory {
            held: held_n,
            alive_after_hold: idle.alive_after_hold,
            rss_before_kib: rss_before,
            rss_held_kib: rss_held,
            kib_per_connection: if held_n > 0 {
                rss_held.saturating_sub(rss_before) as f64 / held_n as f64
            } else {
                0.0
            },
        };
        let mut run = Run::from_report(
            self.key,
            target,
            Scenario::Idle,
            round,
            &report,
            held_n as u64,
            cpu,
            None,
            Some(memory),
        );
        // Rates and CPU of the opening phase only (the report's totals also cover the check
        // after the hold); the server's CPU was read right after it, before the hold ended.
        let per = |ms: f64| if held_n > 0 { ms / held_n as f64 } else { 0.0 };
        run.ops_per_s = held_n as f64 / open_s;
        run.client_cpu_ms_per_op = per(client_cpu_ms);
        run.client_core_percent = client_cpu_ms / 10.0 / open_s;
        run.server_core_percent = cpu.as_secs_f64() * 100.0 / (open_s + p.idle_settle_s);
        Ok(run)
    }
}

/// The HSM's signature count for keyward with the key in the HSM; None for the others.
fn sign_count(s: &Started, target: TargetKind) -> anyhow::Result<Option<u64>> {
    match (target, s.admin) {
        (TargetKind::KeywardHsm, Some(admin)) => Ok(Some(targets::hsm_sign_count(admin)?)),
        _ => Ok(None),
    }
}

/// clap's name of an enum value, as the command line takes it.
fn value_name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// The parts of the load generator's JSON report that the comparison uses.
#[derive(Debug, Deserialize)]
struct Report {
    elapsed_s: f64,
    handshakes: u64,
    resumed: u64,
    requests: u64,
    errors: BTreeMap<String, u64>,
    error_total: u64,
    latency_ms: ReportLatency,
    cpu: ReportCpu,
    negotiated: Option<serde_json::Value>,
    idle: Option<ReportIdle>,
}

#[derive(Debug, Deserialize)]
struct ReportLatency {
    p50: f64,
    p99: f64,
}

#[derive(Debug, Deserialize)]
struct ReportCpu {
    total_ms: f64,
    core_percent: f64,
}

#[derive(Debug, Deserialize)]
struct ReportIdle {
    alive_after_hold: usize,
}

fn parse_report(stdout: &[u8]) -> anyhow::Result<Report> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("keyward-loadtest printed no JSON report")?;
    serde_json::from_str(line).with_context(|| format!("parsing the report {line}"))
}

impl Run {
    #[allow(
        clippy::too_many_arguments,
        reason = "one row of the results table: every column is an argument"
    )]
    fn from_report(
        key: KeyKind,
        target: TargetKind,
        scenario: Scenario,
        round: u32,
        r: &Report,
        ops: u64,
        server_cpu: Duration,
        hsm_signs: Option<u64>,
        idle: Option<IdleMemory>,
    ) -> Run {
        let secs = r.elapsed_s.max(f64::MIN_POSITIVE);
        let per = |total_ms: f64| if ops > 0 { total_ms / ops as f64 } else { 0.0 };
        let server_ms = server_cpu.as_secs_f64() * 1000.0;
        Run {
            key,
            target,
            scenario,
            round,
            ops,
            ops_per_s: ops as f64 / secs,
            server_cpu_ms_per_op: per(server_ms),
            server_core_percent: server_ms / 10.0 / secs,
            client_cpu_ms_per_op: per(r.cpu.total_ms),
            client_core_percent: r.cpu.core_percent,
            p50_ms: r.latency_ms.p50,
            p99_ms: r.latency_ms.p99,
            errors: r.errors.clone(),
            error_total: r.error_total,
            handshakes: r.handshakes,
            resumed: r.resumed,
            hsm_signs,
            idle,
            negotiated: r.negotiated.clone(),
        }
    }
}
