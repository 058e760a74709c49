//! The deployment artefacts: the systemd units of `deploy/systemd/` pass `systemd-analyze
//! verify`, and `keyward serve` runs as `keyward.service` runs it (its command line and
//! environment, reload by SIGHUP, stop by SIGTERM).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn unit(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/systemd")
            .join(name),
    )
    .unwrap()
}

/// The values of `key=` lines of the `[Service]` section.
fn service_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn both_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["keyward.service", "keyward-hsm.service"] {
        // `verify` needs ExecStart's binary on this machine: the one the tests built.
        let text = unit(name).replace("/usr/bin/keyward", keyward_bin());
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (ok, out, err) = run(
        "systemd-analyze",
        &[
            "verify",
            dir.path().join("keyward.service").to_str().unwrap(),
            dir.path().join("keyward-hsm.service").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.trim().is_empty() && err.trim().is_empty(),
        "warnings: {out}{err}"
    );
}

#[test]
fn keyward_serve_runs_as_the_unit_runs_it() {
    let text = unit("keyward.service");
    let exec = service_values(&text, "ExecStart").pop().unwrap();
    let env = service_values(&text, "Environment");
    assert!(
        exec.starts_with("/usr/bin/keyward serve --config /etc/keyward/keyward.toml"),
        "{exec}"
    );
    assert!(service_values(&text, "ExecReload")
        .pop()
        .unwrap()
        .contains("-HUP $MAINPID"));

    let site = Site::new();
    let cert = site.localhost_cert("web");
    let (_up, up) = start_upstream();
    let config = site.config(&format!(
        "{}[upstream]\nurl = \"http://{up}\"\n",
        listener(&cert, "web", "")
    ));
    let state: PathBuf = site.data();
    let mut args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
    for a in &mut args {
        if a == "/etc/keyward/keyward.toml" {
            *a = config.display().to_string();
        }
    }
    let mut cmd = Command::new(keyward_bin());
    cmd.args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for e in &env {
        let (k, v) = e.split_once('=').unwrap();
        // StateDirectory=keyward is /var/lib/keyward under systemd: here the test's data dir.
        let v = if v == "/var/lib/keyward" {
            state.to_str().unwrap()
        } else {
            v
        };
        cmd.env(k, v);
    }
    cmd.env("KEYWARD_ADMIN__ADDRESS", "127.0.0.1:0");
    let mut node = Running::spawn(cmd);
    let line = node.stderr.wait_for("listening for HTTPS");
    // KEYWARD_LOG__FORMAT=json: one JSON object per line, for journald.
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    let addr: std::net::SocketAddr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(Curl::https(addr, "/", &cert).run().status, 200);
    // `systemctl reload`: SIGHUP.
    let (ok, _, err) = run("kill", &["-HUP", &node.child.id().to_string()]);
    assert!(ok, "{err}");
    node.stderr.wait_for("configuration reloaded");
    assert_eq!(Curl::https(addr, "/", &cert).run().status, 200);
    // `systemctl stop`: SIGTERM, a drain, exit 0 within TimeoutStopSec.
    let stop_s: u64 = service_values(&text, "TimeoutStopSec")
        .pop()
        .unwrap()
        .parse()
        .unwrap();
    node.send_sigterm();
    let status = node.wait_exit(std::time::Duration::from_secs(stop_s));
    assert!(status.success(), "{:?}", node.stderr.all());
}

#[test]
fn check_config_accepts_the_example_and_names_the_first_problem() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("keyward.example.toml");
    let out = keyward_ok(&[
        "serve",
        "--config",
        example.to_str().unwrap(),
        "--check-config",
    ]);
    assert!(out.starts_with("configuration OK"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    std::fs::write(&bad, format!("{text}\n[backup]\ndestination = \"/b\"\n")).unwrap();
    let out = keyward(&["serve", "--config", bad.to_str().unwrap(), "--check-config"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("backup.destination") && err.contains("[api]"),
        "{err}"
    );
}
