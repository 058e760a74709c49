//! The options of `keyward-loadtest compare`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{KeyKind, Scenario, TargetKind};
use crate::cli::parse_duration;

/// `compare` options.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A short run (one round, 2 s per scenario, 1,000 idle connections): under 5 minutes
    /// on a 2-core machine.
    #[arg(long, conflicts_with = "tiny")]
    pub quick: bool,

    /// A minimal run (a fixed count of handshakes per scenario, 20 idle connections) that
    /// only shows the harness works; its figures mean nothing.
    #[arg(long)]
    pub tiny: bool,

    /// Rounds (each target restarted per round); the tables show medians. Default 5, or 1
    /// with --quick/--tiny.
    #[arg(long)]
    pub rounds: Option<u32>,

    /// Measured time per scenario and round (default 3s; --quick 2s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Connections held in the idle scenario (default 10000; --quick 1000; --tiny 20).
    #[arg(long)]
    pub idle_connections: Option<usize>,

    /// Concurrent connections of the handshake and keep-alive scenarios.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,

    /// The client checks the server's handshake signature on one handshake in N (see
    /// `handshake --verify-every`).
    #[arg(long, default_value_t = 8)]
    pub verify_every: u64,

    /// Targets to run, comma-separated (default all): keyward-hsm, keyward-plain, nginx,
    /// nginx-softhsm, nginx-keyward, haproxy.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub targets: Vec<TargetKind>,

    /// Scenarios, comma-separated (default all): tls13-full, tls13-full-mlkem, tls12-full,
    /// tls13-resumed, tls12-resumed, keep-alive, idle.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,

    /// Key types, comma-separated (default both): p256, rsa2048.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub keys: Vec<KeyKind>,

    /// The keyward binary (normal build).
    #[arg(long, default_value = "target/release/keyward")]
    pub keyward_bin: PathBuf,

    /// A keyward binary built with `--features bench-plain-keys` (needed for the
    /// keyward-plain target). Default: `keyward-bench-plain` next to `--keyward-bin`.
    #[arg(long)]
    pub keyward_plain_bin: Option<PathBuf>,

    /// Keyward's PKCS#11 module for the nginx-keyward target. Default:
    /// `libkeyward_pkcs11.so` next to `--keyward-bin`.
    #[arg(long)]
    pub pkcs11_module: Option<PathBuf>,

    /// CPU for the server under test and the upstream.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,

    /// CPU for the load generator.
    #[arg(long, default_value_t = 1)]
    pub client_cpu: usize,

    /// Where results.json, results.md and results.png go.
    #[arg(long, default_value = "loadtest/results")]
    pub out: PathBuf,

    /// Keep the work directory (configurations, logs, keys) and print its path.
    #[arg(long)]
    pub keep_work: bool,

    /// Measure nothing: recompute the medians and targets from DIR/results.json (a
    /// previous run) and rewrite results.json, results.md and results.png in DIR.
    #[arg(long, value_name = "DIR")]
    pub render: Option<PathBuf>,
}
