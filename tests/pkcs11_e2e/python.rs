//! The Python checks beside this file, run with the venv `target/pkcs11-venv` (python-pkcs11
//! and cryptography from wheels; made here when missing, as scripts/test makes it):
//! `module_test.py GROUP` through python-pkcs11, `raw_test.py MODE` through ctypes for exact
//! CK_RV codes and fork(). Every run is bounded; a failure shows each failed check by name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::*;
use crate::support::keyward_bin;

const PYTHON_DEADLINE: Duration = Duration::from_secs(300);

/// The venv's python, with python-pkcs11 and cryptography importable.
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = target_dir().join("pkcs11-venv");
        let python = venv.join("bin/python");
        let ready = || {
            Command::new(&python)
                .args(["-c", "import pkcs11, cryptography"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ready() {
            run_bounded(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                PYTHON_DEADLINE,
            )
            .ok("python3 -m venv");
            run_bounded(
                Command::new(venv.join("bin/pip")).args([
                    "install",
                    "-q",
                    "--only-binary",
                    ":all:",
                    "python-pkcs11",
                    "cryptography",
                ]),
                PYTHON_DEADLINE,
            )
            .ok("pip install python-pkcs11 cryptography");
            assert!(ready(), "the venv {} lacks python-pkcs11", venv.display());
        }
        python
    })
}

/// Runs `SCRIPT ARG` from this folder as `pin`, with `env`; insists on exit status 0 and
/// shows every failed check.
fn python(lab: &Lab, script: &str, arg: &str, pin: &str, env: &[(&str, String)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pkcs11_e2e");
    let mut cmd = Command::new(venv_python());
    cmd.arg("-B")
        .arg(dir.join(script))
        .arg(arg)
        .current_dir(lab.dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("PKCS11_MODULE", module_path())
        .env("KEYWARD_PKCS11_CONF", &lab.conf)
        .env("PIN", pin);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_bounded(&mut cmd, PYTHON_DEADLINE);
    eprintln!("{script} {arg}:\n{}{}", out.stdout, out.stderr);
    let failed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL "))
        .collect();
    assert!(
        out.status.success(),
        "{script} {arg} exited {} with failed checks:\n{}\nstderr:\n{}",
        out.status,
        failed.join("\n"),
        out.stderr
    );
}

#[test]
fn python_pkcs11_signs_with_every_signature_mechanism() {
    let lab = Lab::new();
    python(&lab, "module_test.py", "sign", ALICE_PIN, &[]);
}

#[test]
fn python_pkcs11_encrypts_decrypts_wraps_and_unwraps() {
    let lab = Lab::new();
    python(&lab, "module_test.py", "cipher", ALICE_PIN, &[]);
}

#[test]
fn python_pkcs11_random_digests_objects_and_cli_keys() {
    let lab = Lab::new();
    let (private, public) = lab.alice_cli_ec("cli-ec");
    let (user, password) = ALICE_PIN.split_once(':').unwrap();
    let pem = lab.file(
        "cli-ec.pem",
        lab.kw_ok(
            user,
            password,
            &["key", "public", "--key", &private.to_string()],
        )
        .as_bytes(),
    );
    lab.kw_ok(
        user,
        password,
        &[
            "key",
            "generate-symmetric",
            "generic-secret",
            "--bytes",
            "32",
            "--label",
            "cli-hmac",
            "--attr",
            "sign=true",
            "--attr",
            "verify=true",
        ],
    );
    let msg = "the HMAC cross-check";
    let input = lab.file("hmac.in", msg.as_bytes());
    let mac_file = lab.path("hmac.out");
    lab.kw_ok(
        user,
        password,
        &[
            "crypto",
            "hmac",
            "--key",
            "cli-hmac",
            "--mechanism",
            "hmac-sha256",
            "--in",
            &p(&input),
            "--out",
            &mac_file,
        ],
    );
    let mac: String = lab
        .read("hmac.out")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    python(
        &lab,
        "module_test.py",
        "misc",
        ALICE_PIN,
        &[
            ("CLI_EC_PRIV", private.to_string()),
            ("CLI_EC_PUB", public.to_string()),
            ("CLI_EC_PEM", p(&pem)),
            ("HMAC_MSG", msg.to_owned()),
            ("CLI_HMAC_HEX", mac),
        ],
    );
    // What the module made, the node has: CKA_ID as the hex id; the destroyed key is gone.
    let keys = lab.alice_keys();
    let by_label = |label: &str| -> Vec<&serde_json::Value> {
        keys.iter()
            .filter(|k| k["attributes"]["label"] == label)
            .collect()
    };
    let made = by_label("py-id");
    assert!(
        made.len() == 1 && made[0]["attributes"]["id"] == "abcd",
        "{made:?}"
    );
    assert!(by_label("py-doomed").is_empty(), "{keys:?}");
}

#[test]
fn python_pkcs11_error_codes_and_lockout() {
    let lab = Lab::new();
    lab.alice_cli_ec("codes-ec");
    python(&lab, "raw_test.py", "codes", ALICE_PIN, &[]);
    python(
        &lab,
        "module_test.py",
        "errors",
        ALICE_PIN,
        &[
            ("CAROL_PIN", CAROL_PIN.to_owned()),
            ("KEYWARD_BIN", keyward_bin().to_owned()),
            ("NODE_URL", lab.url.clone()),
            ("NODE_CA", p(&lab.ca)),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            ("WORK_DIR", p(lab.conf.parent().unwrap())),
        ],
    );
    // The script saw carol locked after five wrong PINs, then unlocked her (a new password):
    // the node agrees that she is unlocked again, and alice was never locked.
    let out = lab.kw_ok("admin", ADMIN_PASSWORD, &["user", "list", "--json"]);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    let user = |name: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .clone()
    };
    assert_eq!(user("carol")["locked"], false, "{out}");
    assert_eq!(user("alice")["locked"], false, "{out}");
}

#[test]
fn python_pkcs11_other_users_keys_are_invisible_and_unusable() {
    let lab = Lab::new();
    let (alice_ec, alice_ec_pub) = lab.alice_cli_ec("alice-ec");
    let aes = lab.alice_json(&[
        "key",
        "generate-symmetric",
        "aes",
        "--bits",
        "256",
        "--label",
        "alice-aes",
        "--attr",
        "encrypt=true",
        "--attr",
        "decrypt=true",
        "--json",
    ]);
    let alice_aes = aes["handle"].as_u64().unwrap();
    let handles = format!("{alice_ec},{alice_ec_pub},{alice_aes}");
    python(
        &lab,
        "module_test.py",
        "isolation",
        BOB_PIN,
        &[
            ("ALICE_HANDLES", handles),
            ("ALICE_LABELS", "alice-ec,alice-aes".to_owned()),
        ],
    );
    python(
        &lab,
        "raw_test.py",
        "isolation",
        BOB_PIN,
        &[
            ("ALICE_EC_PRIV", alice_ec.to_string()),
            ("ALICE_AES", alice_aes.to_string()),
        ],
    );
    // Alice's keys are all still there.
    let labels: Vec<String> = lab
        .alice_keys()
        .iter()
        .map(|k| k["attributes"]["label"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        labels.iter().filter(|l| l.starts_with("alice-")).count(),
        3,
        "{labels:?}"
    );
}

#[test]
fn forked_child_must_initialize_and_then_signs() {
    let lab = Lab::new();
    lab.alice_cli_ec("fork-ec");
    python(&lab, "raw_test.py", "fork", ALICE_PIN, &[]);
}
