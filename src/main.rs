//! The `keyward` command: wiring only. See `keyward --help`.
//!
//! [`cli`] declares the commands, [`cmd`] runs each one, [`output`] prints tables and JSON,
//! [`session`] connects to HSM nodes, [`data_dir`] opens the local HSM. The crypto, TLS and
//! storage live in the library crates (`keyward-hsm`, `keyward-server`, `keyward-client`,
//! `keyward-keystore`, `keyward-proxy`).
//!
//! Exit codes: 0 success; 1 an error (one line on stderr naming the cause); 2 a usage error.
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

mod backup;
mod catch_up;
mod cli;
mod cmd;
mod crl_schedule;
mod data_dir;
mod demo_upstream;
mod logging;
mod output;
mod progress;
mod remote;
mod renew;
mod rotation;
mod seal;
mod session;

use cli::{Cli, Command, HsmCommand, RecoverCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` logs as its configuration file says, once it has read it.
    if let Some(level) = log_level(&cli.command) {
        logging::init(level, false);
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        // `crypto verify` found the signature invalid (it printed `invalid`).
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("keyward: error: {e:#}");
            if e.downcast_ref::<remote::LoginRefused>().is_some() {
                return ExitCode::from(remote::LOGIN_REFUSED_EXIT);
            }
            ExitCode::FAILURE
        }
    }
}

/// The log level of `command`; `None` for `serve`, whose configuration file sets it.
fn log_level(command: &Command) -> Option<&'static str> {
    match command {
        Command::Serve { .. } => None,
        Command::Quickstart { .. } | Command::Hsm(_) => Some("info"),
        _ => Some("warn"),
    }
}

/// Runs the command; `Ok(false)` when it ran but its answer is "no" (an invalid signature).
fn run(cli: Cli) -> Result<bool> {
    let conn = cli.conn;
    match cli.command {
        Command::Quickstart {
            data,
            listen,
            api_listen,
            admin_listen,
        } => cmd::server_runtime(None)?.block_on(cmd::quickstart::run(
            &data,
            listen,
            api_listen,
            admin_listen,
        ))?,
        Command::Serve {
            config,
            check_config: true,
            ..
        } => {
            let loaded = keyward_config::Config::load(&config, std::env::vars())?;
            if let Some(remote) = &loaded.hsm.remote {
                remote::client_and_password(remote)?;
            }
            println!("configuration OK: {}", config.display());
        }
        Command::Serve {
            config,
            worker_threads,
            accept,
            ..
        } => cmd::serve::run(&config, worker_threads, accept.options())?,
        Command::Init {
            data,
            admin,
            admin_password_file,
            api_dns,
            api_ip,
            seal,
            if_missing,
            out,
        } => cmd::init::run(
            &data.hsm(),
            &admin,
            admin_password_file.as_deref(),
            cmd::init::ApiNames {
                dns: &api_dns,
                ips: &api_ip,
            },
            &seal,
            if_missing,
            out.json,
        )?,
        Command::Hsm(HsmCommand::Serve {
            data,
            listen,
            client_ca,
            limits,
            backup,
        }) => cmd::hsm::run(
            &data.hsm(),
            listen,
            client_ca.as_deref(),
            &limits,
            backup.config(),
        )?,
        Command::Key(command) => cmd::key::run(&conn, command)?,
        Command::Cert(command) => cmd::cert::run(&conn, command)?,
        Command::Ca(command) => cmd::ca::run(&conn, command)?,
        Command::Login { json } => cmd::login::login(&conn, json)?,
        Command::Logout => cmd::login::logout(&conn)?,
        Command::Recover(RecoverCommand::ResetPassword {
            data,
            name,
            password_file,
        }) => cmd::recover::reset_password(&data.hsm(), &name, &password_file)?,
        Command::User(command) => cmd::user::run(&conn, command)?,
        Command::Crypto(command) => return cmd::crypto::run(&conn, command),
        Command::Audit(command) => cmd::audit::run(&conn, command)?,
        Command::Cluster(command) => cmd::cluster::run(command)?,
        Command::Operator(command) => cmd::operator::run(&conn, command)?,
        Command::Backup(command) => cmd::backup::run(&conn, command)?,
        Command::SignFile(args) => cmd::codesign::sign_file(&conn, args)?,
        Command::VerifyFile(args) => return cmd::codesign::verify_file(&args),
    }
    Ok(true)
}
