//! One Keyward node with three crypto-users, the module's configuration file, and bounded runs
//! of the programs that load the module (pkcs11-tool, openssl, the Python checks).

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::pkcs11::Node;
pub(crate) use crate::support::pkcs11::{module_path, ADMIN_PASSWORD, TOKEN};
use crate::support::*;

/// PINs are `username:password` of a crypto-user (as AWS CloudHSM's library).
pub(crate) const ALICE_PIN: &str = "alice:alice-password";
pub(crate) const BOB_PIN: &str = "bob:bob-password";
/// Carol exists to be locked out; alice and bob keep working.
pub(crate) const CAROL_PIN: &str = "carol:carol-password";
/// What one pkcs11-tool or openssl run may take.
pub(crate) const TOOL_DEADLINE: Duration = Duration::from_secs(60);

/// `target/` (or `$CARGO_TARGET_DIR`): two levels above the `keyward` binary.
pub(crate) fn target_dir() -> PathBuf {
    let bin = Path::new(keyward_bin());
    bin.parent().and_then(Path::parent).unwrap().to_path_buf()
}

pub(crate) fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A node (`keyward init` + `keyward hsm serve`), crypto-users alice, bob and carol, and a
/// module configuration with the one token `keyward`, all in a temporary folder.
pub(crate) struct Lab {
    node: Node,
    pub(crate) url: String,
    pub(crate) ca: PathBuf,
    /// `pkcs11.toml`: what `KEYWARD_PKCS11_CONF` names for every program the test runs.
    pub(crate) conf: PathBuf,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        Lab::on(Node::start())
    }

    /// A lab whose node also logs in clients by certificate (see `Node::client_certificate`).
    pub(crate) fn with_client_ca() -> Lab {
        Lab::on(Node::start_with_client_ca())
    }

    fn on(node: Node) -> Lab {
        for pin in [ALICE_PIN, BOB_PIN, CAROL_PIN] {
            node.crypto_user(pin);
        }
        Lab {
            url: node.url.clone(),
            ca: node.ca.clone(),
            conf: node.conf.clone(),
            node,
        }
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    pub(crate) fn dir(&self) -> &Path {
        self.node.dir.path()
    }

    /// Writes `name` in the lab folder; returns its path.
    pub(crate) fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A module configuration with one `[[token]]` per label, each on this node.
    pub(crate) fn write_conf(&self, name: &str, labels: &[&str]) -> PathBuf {
        self.node.write_conf(name, labels)
    }

    /// `keyward ARGS --server URL --ca-cert CA --user USER --password PASSWORD`; insists on
    /// success; returns stdout.
    pub(crate) fn kw_ok(&self, user: &str, password: &str, args: &[&str]) -> String {
        self.node.kw_ok(user, password, args)
    }

    /// `kw_ok` as alice, read as JSON.
    pub(crate) fn alice_json(&self, args: &[&str]) -> serde_json::Value {
        let (user, password) = ALICE_PIN.split_once(':').unwrap();
        let out = self.kw_ok(user, password, args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Alice's keys as `keyward key list --json` prints them (the node's own view).
    pub(crate) fn alice_keys(&self) -> Vec<serde_json::Value> {
        let v = self.alice_json(&["key", "list", "--json"]);
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .clone()
    }

    /// Alice's EC P-256 pair made by the CLI (private `sign`, public `verify`): the handles.
    pub(crate) fn alice_cli_ec(&self, label: &str) -> (u64, u64) {
        self.node.ec_pair(ALICE_PIN, label)
    }

    /// `pkcs11-tool --module SO ARGS` with this lab's configuration.
    pub(crate) fn tool(&self, args: &[&str]) -> Finished {
        self.tool_with_conf(&self.conf, args)
    }

    pub(crate) fn tool_with_conf(&self, conf: &Path, args: &[&str]) -> Finished {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(module_path())
            .args(args)
            .env("KEYWARD_PKCS11_CONF", conf);
        run_bounded(&mut cmd, TOOL_DEADLINE)
    }

    /// pkcs11-tool on token `keyward`, logged in as alice, with the whitespace-separated
    /// `args` (lab paths have no spaces); insists on success; returns stdout and stderr.
    pub(crate) fn alice(&self, args: &str) -> String {
        let mut all = vec!["--token-label", TOKEN, "--login", "--pin", ALICE_PIN];
        all.extend(args.split_whitespace());
        self.tool(&all).ok(&format!("pkcs11-tool {args}"))
    }

    /// The path of `name` in the lab folder, as text.
    pub(crate) fn path(&self, name: &str) -> String {
        p(&self.dir().join(name))
    }

    /// The contents of `name` in the lab folder.
    pub(crate) fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// What a bounded run printed, and how it ended.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    /// Insists on exit status 0; returns stdout followed by stderr.
    pub(crate) fn ok(&self, what: &str) -> String {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.all()
    }

    pub(crate) fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` in its own process group; kills the whole group and fails the test when it
/// has not finished `within` (a hang in the module is a failure, never a stuck test).
pub(crate) fn run_bounded(cmd: &mut Command, within: Duration) -> Finished {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let collect = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let end = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= end {
            // The group: forked children of the program hold the pipes open too.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) => Finished {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{cmd:?} did not finish within {within:?} (killed):\n\
             stdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    }
}

/// `openssl ARGS` (whitespace-separated), bounded; insists on success; returns stdout
/// followed by stderr.
pub(crate) fn openssl(args: &str) -> String {
    let args: Vec<&str> = args.split_whitespace().collect();
    run_bounded(Command::new("openssl").args(&args), TOOL_DEADLINE).ok(&format!("openssl {args:?}"))
}

/// `openssl ARGS` says `Verified OK`.
pub(crate) fn openssl_verifies(args: &str) {
    let out = openssl(args);
    assert!(out.contains("Verified OK"), "openssl {args}: {out}");
}

/// The DER public key `der` (as `pkcs11-tool --read-object --type pubkey` writes it) converted
/// to PEM beside it; returns the PEM's path.
pub(crate) fn der_to_pem(der: &str) -> String {
    let pem = format!("{der}.pem");
    openssl(&format!("pkey -pubin -inform DER -in {der} -out {pem}"));
    pem
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}
