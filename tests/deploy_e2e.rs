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

/// `helm` from `scripts/get-helm` (into the repository's `.tools/bin`), fetched once for all
/// tests of this file, or `None` with the reason printed when it cannot be obtained (no npm, or
/// no registry, on this machine).
fn helm() -> Option<PathBuf> {
    static HELM: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    HELM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (ok, out, err) = run(
            root.join("scripts/get-helm").to_str().unwrap(),
            &[root.join(".tools/bin").to_str().unwrap()],
        );
        if !ok {
            eprintln!("skipped: scripts/get-helm could not obtain helm: {err}");
            return None;
        }
        Some(root.join(out.trim()))
    })
    .clone()
}

/// `helm template` of the chart with the value set `ci/VALUES-values.yaml`, only `template`.
fn render_chart(helm: &Path, values: &str, template: &str) -> String {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/keyward");
    let values = chart.join(format!("ci/{values}-values.yaml"));
    let (ok, out, err) = run(
        helm.to_str().unwrap(),
        &[
            "template",
            "check",
            chart.to_str().unwrap(),
            "-f",
            values.to_str().unwrap(),
            "--show-only",
            template,
        ],
    );
    assert!(ok, "helm template: {err}");
    out
}

/// The text of the block scalar `keyward.toml: |` of a rendered ConfigMap, unindented.
fn configmap_toml(manifest: &str) -> String {
    let mut lines = manifest
        .lines()
        .skip_while(|l| l.trim() != "keyward.toml: |");
    lines.next().expect("a keyward.toml key in the ConfigMap");
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    assert!(!body.is_empty(), "an empty keyward.toml:\n{manifest}");
    body.join("\n") + "\n"
}

#[test]
fn the_charts_proxy_config_passes_check_config() {
    let Some(helm) = helm() else { return };
    let toml = configmap_toml(&render_chart(
        &helm,
        "proxy",
        "templates/proxy-configmap.yaml",
    ));
    assert!(toml.contains("mode = \"remote\""), "{toml}");
    // The files the pod mounts (chain, CA, password) as 0600 stand-ins under a temp dir, each
    // a PEM certificate (the check reads the CA file's certificates and the password).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let pem = dir.path().join("stand-in.pem");
    let (ok, _, err) = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{root}/stand-in.key"),
            "-subj",
            "/CN=stand-in",
            "-days",
            "1",
            "-out",
            pem.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let pem = std::fs::read_to_string(&pem).unwrap();
    let mut text = toml.clone();
    for quoted in toml
        .split('"')
        .filter(|s| s.starts_with("/etc/keyward/") || s.starts_with("/run/keyward/"))
    {
        let local = PathBuf::from(format!("{root}{quoted}"));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, &pem).unwrap();
        let mut perms = std::fs::metadata(&local).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&local, perms).unwrap();
        text = text.replace(
            &format!("\"{quoted}\""),
            &format!("\"{}\"", local.display()),
        );
    }
    let file = dir.path().join("keyward.toml");
    std::fs::write(&file, &text).unwrap();
    let out = keyward_ok(&[
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--check-config",
    ]);
    assert!(out.starts_with("configuration OK"), "{out}\n{text}");
}

/// `keyward hsm serve` has no configuration file (so no --check-config): the HSM node's
/// command line in the chart's StatefulSet must at least be one it parses. With its paths in
/// an empty temp dir it gets past the flags (exit 1, no store) instead of a usage error (2).
#[test]
fn the_charts_hsm_node_flags_are_ones_hsm_serve_takes() {
    let Some(helm) = helm() else { return };
    let manifest = render_chart(&helm, "cluster-embedded", "templates/hsm-statefulset.yaml");
    let lines = manifest
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "- hsm");
    let args: Vec<String> = std::iter::once("hsm".to_owned())
        .chain(
            lines
                .skip(1)
                .map_while(|l| l.strip_prefix("- "))
                .map(str::to_owned),
        )
        .collect();
    assert_eq!(args.get(1).map(String::as_str), Some("serve"), "{manifest}");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            let local = match a.split_once('=') {
                Some(("--listen", _)) => Some("--listen=127.0.0.1:0".to_owned()),
                Some((flag, path)) if path.starts_with('/') => Some(format!("{flag}={root}{path}")),
                _ => None,
            };
            local.unwrap_or(a)
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = keyward(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "keyward {args:?}: {err}");
    assert!(err.contains("no HSM store"), "keyward {args:?}: {err}");
}
