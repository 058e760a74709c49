//! `keyward-loadtest compare --tiny` against the real targets (keyward with the key in its
//! HSM and in memory, nginx, nginx + SoftHSM2, nginx + Keyward's PKCS#11 module, HAProxy), so
//! the harness cannot rot: every
//! target starts, answers every scenario without errors, and the three outputs are written.
//!
//! Needs the `keyward` binary next to `keyward-loadtest` (built by `cargo test --workspace`)
//! and `keyward-bench-plain` (a `keyward` built with `--features bench-plain-keys`, which
//! `scripts/test` builds first), `libkeyward_pkcs11.so` (also built by `scripts/test`), and
//! nginx, haproxy, softhsm2, libengine-pkcs11-openssl,
//! opensc and fonts-dejavu-core (which `scripts/test` installs).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn sibling(name: &str) -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_keyward-loadtest"));
    let path = loadtest.with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with ./scripts/test (it builds keyward-bench-plain \
         and `cargo test --workspace` builds keyward)",
        path.display()
    );
    path
}

#[test]
fn tiny_comparison_runs_every_target_and_writes_json_markdown_and_png() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_keyward-loadtest"))
        .args(["compare", "--tiny", "--keyward-bin"])
        .arg(sibling("keyward"))
        .arg("--keyward-plain-bin")
        .arg(sibling("keyward-bench-plain"))
        .arg("--pkcs11-module")
        .arg(sibling("libkeyward_pkcs11.so"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "compare failed:\n{stderr}");

    let results: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    let runs = results["runs"].as_array().unwrap();
    // 6 targets × 2 keys × 6 scenarios, plus the ML-KEM row for the 2 keyward targets.
    assert_eq!(runs.len(), 6 * 2 * 6 + 2 * 2, "{results:#}");
    for r in runs {
        assert_eq!(r["error_total"], 0, "errors in {r}");
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
        assert!(r["server_cpu_ms_per_op"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["client_cpu_ms_per_op"].as_f64().unwrap() > 0.0, "{r}");
        let scenario = r["scenario"].as_str().unwrap();
        if scenario == "idle" {
            assert_eq!(r["idle"]["held"], 20, "{r}");
            assert_eq!(r["idle"]["alive_after_hold"], 20, "{r}");
            assert!(r["idle"]["rss_held_kib"].as_u64().unwrap() > 0, "{r}");
        }
        if scenario.ends_with("resumed") {
            assert!(r["resumed"].as_u64().unwrap() > 0, "nothing resumed: {r}");
        }
        // The same handshake on every server: X25519 (ML-KEM in its own row), AES-128-GCM,
        // one signature scheme per key.
        if scenario != "keep-alive" && !scenario.ends_with("resumed") {
            let n = &r["negotiated"];
            let group = if scenario == "tls13-full-mlkem" {
                "X25519MLKEM768"
            } else {
                "X25519"
            };
            assert_eq!(n["group"], group, "{r}");
            let scheme = if r["key"] == "p256" {
                "ECDSA_NISTP256_SHA256"
            } else {
                "RSA_PSS_SHA256"
            };
            assert_eq!(n["signature_scheme"], scheme, "{r}");
            assert!(
                n["cipher_suite"].as_str().unwrap().contains("AES_128_GCM"),
                "{r}"
            );
        }
        // keyward with the key in the HSM: one HSM signature per full handshake, none for a
        // resumed one.
        if r["target"] == "keyward-hsm" && scenario != "idle" {
            let full = r["handshakes"].as_u64().unwrap() - r["resumed"].as_u64().unwrap();
            assert_eq!(r["hsm_signs"].as_u64(), Some(full), "{r}");
        }
    }
    // Every goal was measured (with 20 idle connections, nginx's memory growth can round
    // to 0 KiB, which leaves that ratio undefined; the figures of a tiny run mean nothing).
    let goals = results["goals"].as_array().unwrap();
    assert_eq!(goals.len(), 10, "{goals:#?}");
    assert!(
        goals
            .iter()
            .all(|g| !g["measured"].as_str().unwrap().contains("not run")),
        "{goals:#?}"
    );

    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    for needle in [
        "| goal | measured | ratio | met |",
        "### P-256",
        "### RSA-2048",
        "nginx + SoftHSM2 (PKCS#11)",
        "HAProxy (key file)",
        "KiB per idle connection",
    ] {
        assert!(md.contains(needle), "{needle:?} not in results.md:\n{md}");
    }
    let png = std::fs::read(out.path().join("results.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
}
