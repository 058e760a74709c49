//! `keyward-loadtest`: TLS handshake and HTTP request load generator. See the library
//! documentation and `loadtest/README.md`.

use anyhow::Context;
use clap::Parser;
use keyward_loadtest::cli::{Cli, Mode};
use keyward_loadtest::{compare, run};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let common = match &cli.mode {
        Mode::Handshake(a) => &a.common,
        Mode::Request(a) => &a.common,
        Mode::Idle(a) => &a.common,
        Mode::Compare(args) => return compare::run(args),
    };
    let threads = match common.threads {
        Some(n) => n.max(1),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let json = common.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut report = runtime.block_on(async {
        match cli.mode {
            Mode::Handshake(args) => run::handshake(args).await,
            Mode::Request(args) => run::request(args).await,
            Mode::Idle(args) => run::idle(args).await,
            Mode::Compare(_) => unreachable!("handled above"),
        }
    })?;
    report
        .settings
        .insert("threads", serde_json::json!(threads));
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
