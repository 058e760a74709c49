//! The comparison's outputs: `results.json` (every run, the medians, the targets), a
//! Markdown report and a PNG chart (plotters).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::targets::{Binaries, KeyKind, TargetKind};
use super::{Profile, Run, Scenario};

/// Medians over the rounds of one (key, target, scenario).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// Key type.
    pub(crate) key: KeyKind,
    /// System under test.
    pub(crate) target: TargetKind,
    /// Scenario.
    pub(crate) scenario: Scenario,
    /// Rounds measured.
    pub(crate) runs: usize,
    /// Median operations per second.
    pub(crate) ops_per_s: f64,
    /// Median server CPU per operation, ms.
    pub(crate) server_cpu_ms_per_op: f64,
    /// Lowest and highest server CPU per operation over the rounds, ms.
    pub(crate) server_cpu_ms_per_op_range: (f64, f64),
    /// Median server core use, %.
    pub(crate) server_core_percent: f64,
    /// Median client CPU per operation, ms.
    pub(crate) client_cpu_ms_per_op: f64,
    /// Median client core use, %.
    pub(crate) client_core_percent: f64,
    /// Median p99 latency, ms.
    pub(crate) p99_ms: f64,
    /// Errors over all rounds.
    pub(crate) errors: u64,
    /// Resumed handshakes over all rounds ÷ handshakes over all rounds.
    pub(crate) resumed_fraction: f64,
    /// HSM signatures over all rounds (keyward with the key in the HSM).
    pub(crate) hsm_signs: Option<u64>,
    /// Full (not resumed) handshakes over all rounds.
    pub(crate) full_handshakes: u64,
    /// Median memory per idle connection, KiB.
    pub(crate) kib_per_connection: Option<f64>,
}

/// One performance target of the issue, with the measured ratio.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Goal {
    /// What is promised.
    pub(crate) goal: String,
    /// The measured figures.
    pub(crate) measured: String,
    /// Measured ratio (where the goal is a ratio).
    pub(crate) ratio: Option<f64>,
    /// Met, missed, or unknown (a target was not run).
    pub(crate) met: Option<bool>,
}

/// Everything `results.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Results {
    generated_at: String,
    profile: Profile,
    elapsed_s: f64,
    machine: BTreeMap<String, String>,
    versions: BTreeMap<String, String>,
    targets: Vec<TargetKind>,
    keys: Vec<KeyKind>,
    /// Medians per (key, target, scenario).
    pub(crate) summary: Vec<Summary>,
    /// The performance targets and whether they were met.
    pub(crate) goals: Vec<Goal>,
    /// Every measured run.
    pub(crate) runs: Vec<Run>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// First line of a command's output (stdout, else stderr), or "not found".
fn version_of(cmd: &mut Command) -> String {
    match cmd.output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        }
        Err(_) => "not found".to_owned(),
    }
}

fn dpkg_version(package: &str) -> String {
    version_of(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]))
}

impl Results {
    /// Aggregates the runs.
    ///
    /// # Errors
    /// Reading the machine's description fails.
    pub(crate) fn new(
        profile: &Profile,
        bins: &Binaries,
        targets: &[TargetKind],
        keys: &[KeyKind],
        runs: Vec<Run>,
        elapsed: Duration,
    ) -> anyhow::Result<Results> {
        let summary = summarize(&runs);
        let goals = goals(&summary, &runs);
        let mut machine = BTreeMap::new();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        machine.insert(
            "cpu".to_owned(),
            cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
        );
        machine.insert(
            "cpus".to_owned(),
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        );
        machine.insert(
            "kernel".to_owned(),
            version_of(Command::new("uname").arg("-r")),
        );
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        machine.insert(
            "memory".to_owned(),
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|l| l.trim().to_owned())
                .unwrap_or_default(),
        );
        let mut versions = BTreeMap::new();
        versions.insert(
            "keyward".to_owned(),
            version_of(Command::new(&bins.keyward).arg("--version")),
        );
        versions.insert(
            "keyward-loadtest".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
        versions.insert(
            "nginx".to_owned(),
            version_of(Command::new(&bins.nginx).arg("-v")),
        );
        if targets.contains(&TargetKind::Haproxy) {
            versions.insert(
                "haproxy".to_owned(),
                version_of(Command::new(&bins.haproxy).arg("-v")),
            );
        }
        versions.insert(
            "openssl".to_owned(),
            version_of(Command::new("openssl").arg("version")),
        );
        if targets.contains(&TargetKind::NginxSofthsm) {
            versions.insert("softhsm2".to_owned(), dpkg_version("softhsm2"));
            versions.insert(
                "libengine-pkcs11-openssl".to_owned(),
                dpkg_version("libengine-pkcs11-openssl"),
            );
        }
        versions.insert("rustls".to_owned(), "0.23 (aws-lc-rs provider)".to_owned());
        Ok(Results {
            generated_at: version_of(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
            profile: profile.clone(),
            elapsed_s: elapsed.as_secs_f64(),
            machine,
            versions,
            targets: targets.to_vec(),
            keys: keys.to_vec(),
            summary,
            goals,
            runs,
        })
    }

    /// The medians and goals again from `runs` (after loading a previous run).
    pub(crate) fn recompute(&mut self) {
        self.summary = summarize(&self.runs);
        self.goals = goals(&self.summary, &self.runs);
    }

    fn get(&self, key: KeyKind, target: TargetKind, scenario: Scenario) -> Option<&Summary> {
        find(&self.summary, key, scenario, target)
    }

    /// The Markdown report: settings, the goals, one table per key type.
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let p = &self.profile;
        let _ = writeln!(
            md,
            "## Comparison ({} run, {})\n",
            p.name, self.generated_at
        );
        let _ = writeln!(
            md,
            "Machine: {} × {}, {}, kernel {}. Server (and upstream) on CPU {}, load generator on CPU {}.",
            self.machine.get("cpus").map_or("", String::as_str),
            self.machine.get("cpu").map_or("", String::as_str),
            self.machine.get("memory").map_or("", String::as_str),
            self.machine.get("kernel").map_or("", String::as_str),
            p.server_cpu,
            p.client_cpu
        );
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(md, "Versions: {}.", versions.join("; "));
        let per_run = match (p.duration_s, p.count) {
            (Some(d), _) => format!("{d} s per run"),
            (None, Some(n)) => format!("{n} operations per run"),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "Runs: {} round(s), medians shown; {per_run}; {} concurrent connections; idle scenario {} connections; \
             the client checks the handshake signature on 1 in {} handshakes. Total {:.0} s.\n",
            p.rounds, p.connections, p.idle_connections, p.verify_every, self.elapsed_s
        );

        if let Some(note) = &p.idle_connections_note {
            let _ = writeln!(md, "Idle scenario: {note}.\n");
        }
        let _ = writeln!(md, "### Targets\n");
        let _ = writeln!(md, "| goal | measured | ratio | met |\n|---|---|---:|---|");
        for g in &self.goals {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                g.goal,
                g.measured,
                g.ratio.map_or("–".to_owned(), |r| format!("{r:.2}")),
                match g.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not measured",
                }
            );
        }
        for &key in &self.keys {
            self.markdown_key_table(&mut md, key);
        }
        self.markdown_negotiated(&mut md);
        md
    }

    /// One key type's table: every scenario and target measured.
    fn markdown_key_table(&self, md: &mut String, key: KeyKind) {
        let _ = writeln!(md, "\n### {}\n", key.name());
        let _ = writeln!(
            md,
            "| scenario | target | ops/s | server CPU ms/op | (range) | server core % | client CPU ms/op | p99 ms | errors | notes |\n\
             |---|---|---:|---:|---|---:|---:|---:|---:|---|"
        );
        for scenario in Scenario::ALL {
            for &target in &self.targets {
                let Some(s) = self.get(key, target, scenario) else {
                    continue;
                };
                let mut notes = Vec::new();
                if matches!(scenario, Scenario::Tls13Resumed | Scenario::Tls12Resumed) {
                    notes.push(format!("{:.1}% resumed", s.resumed_fraction * 100.0));
                }
                if let Some(signs) = s.hsm_signs {
                    notes.push(format!(
                        "{signs} HSM signs / {} full handshakes",
                        s.full_handshakes
                    ));
                }
                if scenario != Scenario::Idle && s.server_core_percent < 85.0 {
                    notes.push(format!(
                        "server core only {:.0}% busy: bound by the client, the upstream or the machine",
                        s.server_core_percent
                    ));
                }
                if let Some(kib) = s.kib_per_connection {
                    notes.push(format!("**{kib:.1} KiB per idle connection**"));
                }
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} {}s/s | {:.3} | {} | {:.0} | {:.3} | {:.2} | {} | {} |",
                    scenario.name(),
                    target.name(),
                    s.ops_per_s,
                    scenario.unit(),
                    s.server_cpu_ms_per_op,
                    if s.runs > 1 {
                        format!(
                            "{:.3}–{:.3}",
                            s.server_cpu_ms_per_op_range.0, s.server_cpu_ms_per_op_range.1
                        )
                    } else {
                        String::new()
                    },
                    s.server_core_percent,
                    s.client_cpu_ms_per_op,
                    s.p99_ms,
                    s.errors,
                    notes.join("; ")
                );
            }
        }
    }

    /// Which version, suite, group and scheme each target negotiated (first round).
    fn markdown_negotiated(&self, md: &mut String) {
        let _ = writeln!(md, "\n### Negotiated (first round)\n");
        let mut lines: BTreeMap<(KeyKind, Scenario, String), Vec<&str>> = BTreeMap::new();
        for r in &self.runs {
            if r.round != 1 || r.scenario == Scenario::KeepAlive {
                continue;
            }
            if let Some(n) = &r.negotiated {
                let line = format!(
                    "{} {} {} {}",
                    n["version"].as_str().unwrap_or(""),
                    n["cipher_suite"].as_str().unwrap_or(""),
                    n["group"].as_str().unwrap_or(""),
                    n["signature_scheme"]
                        .as_str()
                        .unwrap_or("(no full handshake)"),
                );
                lines
                    .entry((r.key, r.scenario, line))
                    .or_default()
                    .push(r.target.id());
            }
        }
        for ((key, scenario, line), targets) in lines {
            let _ = writeln!(
                md,
                "- {} / {}: {line} ({})",
                key.name(),
                scenario.name(),
                targets.join(", ")
            );
        }
    }

    /// A PNG: per key type, handshakes/s and server CPU µs per handshake for each
    /// handshake scenario, one bar per target.
    ///
    /// # Errors
    /// The font cannot be loaded or the file cannot be written.
    pub(crate) fn chart(&self, path: &Path) -> anyhow::Result<()> {
        register_font()?;
        let scenarios: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| !matches!(s, Scenario::KeepAlive | Scenario::Idle))
            .collect();
        let rows = self.keys.len().max(1);
        let root = BitMapBackend::new(path, (1600, 520 * rows as u32 + 60)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (title, body) = root.split_vertically(60);
        title
            .titled(
                &format!(
                    "TLS handshakes, one server core (medians of {} round(s), {})",
                    self.profile.rounds, self.generated_at
                ),
                ("sans-serif", 26),
            )
            .map_err(plot_err)?;
        let panels = body.split_evenly((rows, 2));
        let colors = [
            RGBColor(31, 119, 180),
            RGBColor(158, 202, 225),
            RGBColor(214, 39, 40),
            RGBColor(255, 152, 150),
            RGBColor(44, 160, 44),
        ];
        for (row, &key) in self.keys.iter().enumerate() {
            for col in 0..2 {
                let area = &panels[row * 2 + col];
                let value = |s: &Summary| {
                    if col == 0 {
                        s.ops_per_s
                    } else {
                        s.server_cpu_ms_per_op * 1000.0
                    }
                };
                let max = self
                    .summary
                    .iter()
                    .filter(|s| s.key == key && scenarios.contains(&s.scenario))
                    .map(value)
                    .fold(0.0, f64::max)
                    .max(1.0)
                    * if row == 0 && col == 0 { 1.5 } else { 1.15 };
                let n = scenarios.len() as f64;
                let caption = if col == 0 {
                    format!("{}: handshakes per second (higher is better)", key.name())
                } else {
                    format!(
                        "{}: server CPU µs per handshake (lower is better)",
                        key.name()
                    )
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(caption, ("sans-serif", 20))
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(70)
                    .build_cartesian_2d((0.0..n).step(0.5), 0.0..max)
                    .map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(scenarios.len() * 2 + 1)
                    .x_label_formatter(&|x| {
                        // Key points every 0.5: names at the middle of each group.
                        if (x.fract() - 0.5).abs() > 0.01 {
                            return String::new();
                        }
                        scenarios
                            .get(x.floor() as usize)
                            .map_or(String::new(), |s| short_name(*s).to_owned())
                    })
                    .x_label_style(("sans-serif", 15))
                    .y_label_style(("sans-serif", 14))
                    .draw()
                    .map_err(plot_err)?;
                let width = 0.8 / self.targets.len().max(1) as f64;
                for (ti, &target) in self.targets.iter().enumerate() {
                    let color = colors[TargetKind::ALL
                        .iter()
                        .position(|t| *t == target)
                        .unwrap_or(0)
                        % colors.len()];
                    let bars: Vec<_> = scenarios
                        .iter()
                        .enumerate()
                        .filter_map(|(si, &sc)| {
                            let s = self.get(key, target, sc)?;
                            let x0 = si as f64 + 0.1 + ti as f64 * width;
                            Some(Rectangle::new(
                                [(x0, 0.0), (x0 + width * 0.9, value(s))],
                                color.filled(),
                            ))
                        })
                        .collect();
                    let series = chart.draw_series(bars).map_err(plot_err)?;
                    if row == 0 && col == 0 {
                        series.label(target.name()).legend(move |(x, y)| {
                            Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                        });
                    }
                }
                if row == 0 && col == 0 {
                    chart
                        .configure_series_labels()
                        .position(SeriesLabelPosition::UpperRight)
                        .background_style(WHITE.mix(0.9))
                        .border_style(BLACK)
                        .label_font(("sans-serif", 15))
                        .draw()
                        .map_err(plot_err)?;
                }
            }
        }
        root.present().map_err(plot_err)?;
        Ok(())
    }
}

/// Medians per (key, target, scenario).
fn summarize(runs: &[Run]) -> Vec<Summary> {
    let mut groups: BTreeMap<(KeyKind, TargetKind, Scenario), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.key, r.target, r.scenario))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((key, target, scenario), rs)| {
            let m = |f: fn(&Run) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let handshakes: u64 = rs.iter().map(|r| r.handshakes).sum();
            let resumed: u64 = rs.iter().map(|r| r.resumed).sum();
            Summary {
                key,
                target,
                scenario,
                runs: rs.len(),
                ops_per_s: m(|r| r.ops_per_s),
                server_cpu_ms_per_op: m(|r| r.server_cpu_ms_per_op),
                server_cpu_ms_per_op_range: rs.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
                    (
                        lo.min(r.server_cpu_ms_per_op),
                        hi.max(r.server_cpu_ms_per_op),
                    )
                }),
                server_core_percent: m(|r| r.server_core_percent),
                client_cpu_ms_per_op: m(|r| r.client_cpu_ms_per_op),
                client_core_percent: m(|r| r.client_core_percent),
                p99_ms: m(|r| r.p99_ms),
                errors: rs.iter().map(|r| r.error_total).sum(),
                resumed_fraction: if handshakes > 0 {
                    resumed as f64 / handshakes as f64
                } else {
                    0.0
                },
                hsm_signs: rs
                    .iter()
                    .map(|r| r.hsm_signs)
                    .try_fold(0, |acc, s| s.map(|s| acc + s)),
                full_handshakes: handshakes - resumed,
                kib_per_connection: rs.iter().all(|r| r.idle.is_some()).then(|| {
                    median(
                        rs.iter()
                            .filter_map(|r| r.idle.map(|i| i.kib_per_connection))
                            .collect(),
                    )
                }),
            }
        })
        .collect()
}

fn short_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Tls13Full => "TLS 1.3 full",
        Scenario::Tls13FullMlkem => "1.3 full, ML-KEM",
        Scenario::Tls12Full => "TLS 1.2 full",
        Scenario::Tls13Resumed => "TLS 1.3 resumed",
        Scenario::Tls12Resumed => "TLS 1.2 resumed",
        Scenario::KeepAlive => "keep-alive",
        Scenario::Idle => "idle",
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}

/// DejaVu Sans (Debian fonts-dejavu-core) as plotters' "sans-serif".
fn register_font() -> anyhow::Result<()> {
    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let bytes = std::fs::read(FONT).with_context(|| {
        format!("reading {FONT} (install the Debian package fonts-dejavu-core)")
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{FONT} is not a usable font"))?;
    let _ = DONE.set(());
    Ok(())
}

/// Per-round ratios `a / b` for one key and scenario (both measured in the same round,
/// minutes apart, so slow periods of the machine mostly cancel out): (median, lowest,
/// highest), or None when a target was not run.
fn paired_ratio(
    runs: &[Run],
    key: KeyKind,
    scenario: Scenario,
    (a, value): (TargetKind, Metric),
    (b, other): (TargetKind, Metric),
) -> Option<(f64, f64, f64)> {
    let rounds: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.round).collect();
    let mut ratios = Vec::new();
    for round in rounds {
        let find = |t: TargetKind| {
            runs.iter().find(|r| {
                r.round == round && r.key == key && r.scenario == scenario && r.target == t
            })
        };
        if let (Some(x), Some(y)) = (
            find(a).and_then(|r| value.of_run(r)),
            find(b).and_then(|r| other.of_run(r)),
        ) {
            if y > 0.0 {
                ratios.push(x / y);
            }
        }
    }
    if ratios.is_empty() {
        return None;
    }
    let lo = ratios.iter().copied().fold(f64::MAX, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    Some((median(ratios), lo, hi))
}

/// A per-operation figure a goal compares.
#[derive(Debug, Clone, Copy)]
enum Metric {
    ServerCpu,
    ClientCpu,
    IdleKib,
}

impl Metric {
    fn of_run(self, r: &Run) -> Option<f64> {
        match self {
            Metric::ServerCpu => Some(r.server_cpu_ms_per_op),
            Metric::ClientCpu => Some(r.client_cpu_ms_per_op),
            Metric::IdleKib => r.idle.map(|i| i.kib_per_connection),
        }
    }

    fn of_summary(self, s: &Summary) -> Option<f64> {
        match self {
            Metric::ServerCpu => Some(s.server_cpu_ms_per_op),
            Metric::ClientCpu => Some(s.client_cpu_ms_per_op),
            Metric::IdleKib => s.kib_per_connection,
        }
    }
}

/// A goal "a ≤ limit × b", judged on the median of the per-round ratios.
#[allow(
    clippy::too_many_arguments,
    reason = "a goal is its name, operands, limit and the data to judge it on"
)]
fn ratio_goal(
    summary: &[Summary],
    runs: &[Run],
    goal: &str,
    key: KeyKind,
    scenario: Scenario,
    a: (TargetKind, Metric),
    b: (TargetKind, Metric),
    limit: f64,
    unit: &str,
) -> Goal {
    let median_of = |(t, m): (TargetKind, Metric)| {
        find(summary, key, scenario, t).and_then(|s| m.of_summary(s))
    };
    let paired = paired_ratio(runs, key, scenario, a, b);
    let measured = match (median_of(a), median_of(b), paired) {
        (Some(x), Some(y), Some((_, lo, hi))) => {
            format!("{x:.3} vs {y:.3} {unit} (medians); per-round ratios {lo:.2}–{hi:.2}")
        }
        (Some(x), Some(y), None) => {
            format!("{x:.3} vs {y:.3} {unit} (medians); no ratio (a divisor is 0)")
        }
        _ => "a target or scenario was not run".to_owned(),
    };
    Goal {
        goal: goal.to_owned(),
        measured,
        ratio: paired.map(|p| p.0),
        met: paired.map(|p| p.0 <= limit),
    }
}

fn find(
    summary: &[Summary],
    key: KeyKind,
    scenario: Scenario,
    target: TargetKind,
) -> Option<&Summary> {
    summary
        .iter()
        .find(|s| s.key == key && s.target == target && s.scenario == scenario)
}

/// The issue's performance targets, each with what was measured. Ratios of per-operation
/// figures are medians of per-round ratios (see [`paired_ratio`]).
fn goals(summary: &[Summary], runs: &[Run]) -> Vec<Goal> {
    use Scenario::{Idle, Tls12Full, Tls12Resumed, Tls13Full, Tls13Resumed};
    use TargetKind::{KeywardHsm, KeywardPlain, Nginx};
    let p256 = KeyKind::P256;
    let mut goals = vec![
        ratio_goal(
            summary,
            runs,
            "server CPU per full TLS 1.3 P-256 handshake ≤ 0.5× nginx (key file)",
            p256,
            Tls13Full,
            (KeywardHsm, Metric::ServerCpu),
            (Nginx, Metric::ServerCpu),
            0.5,
            "ms",
        ),
        ratio_goal(
            summary,
            runs,
            "server CPU per full TLS 1.3 P-256 handshake ≤ 1.05× keyward with the key in memory",
            p256,
            Tls13Full,
            (KeywardHsm, Metric::ServerCpu),
            (KeywardPlain, Metric::ServerCpu),
            1.05,
            "ms",
        ),
        ratio_goal(
            summary,
            runs,
            "load generator CPU per full TLS 1.3 P-256 handshake below keyward's (key in HSM)",
            p256,
            Tls13Full,
            (KeywardHsm, Metric::ClientCpu),
            (KeywardHsm, Metric::ServerCpu),
            0.999,
            "ms",
        ),
    ];
    for key in [KeyKind::P256, KeyKind::Rsa2048] {
        for sc in [Tls13Resumed, Tls12Resumed] {
            let Some(s) = find(summary, key, sc, KeywardHsm) else {
                continue;
            };
            // Every HSM signature must belong to a full handshake (the first connections of
            // a run, before the client holds a session), and most handshakes must have
            // resumed, or the check proves nothing.
            let met = s
                .hsm_signs
                .map(|n| n == s.full_handshakes && s.resumed_fraction >= 0.9);
            goals.push(Goal {
                goal: format!(
                    "{}, {}: a resumed handshake makes no HSM sign call",
                    key.name(),
                    sc.name()
                ),
                measured: match s.hsm_signs {
                    Some(n) => format!(
                        "{n} HSM signs for {} full handshakes; {:.1}% of handshakes resumed",
                        s.full_handshakes,
                        s.resumed_fraction * 100.0
                    ),
                    None => "no sign counter".to_owned(),
                },
                ratio: None,
                met,
            });
        }
        let rate = |sc| find(summary, key, sc, KeywardHsm).map(|s| s.ops_per_s);
        let (resumed, full) = (rate(Tls12Resumed), rate(Tls12Full));
        if resumed.is_some() || full.is_some() {
            let ratio = match (resumed, full) {
                (Some(r), Some(f)) if f > 0.0 => Some(r / f),
                _ => None,
            };
            goals.push(Goal {
                goal: format!(
                    "{}: resumed TLS 1.2 handshakes/s ≥ 4× full TLS 1.2 (keyward, key in HSM)",
                    key.name()
                ),
                measured: match (resumed, full) {
                    (Some(r), Some(f)) => format!("{r:.0} vs {f:.0} handshakes/s (medians)"),
                    _ => "a scenario was not run".to_owned(),
                },
                ratio,
                met: ratio.map(|r| r >= 4.0),
            });
        }
    }
    goals.push(ratio_goal(
        summary,
        runs,
        "memory per idle TLS connection (P-256) ≤ nginx's",
        p256,
        Idle,
        (KeywardHsm, Metric::IdleKib),
        (Nginx, Metric::IdleKib),
        1.0,
        "KiB",
    ));
    goals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
