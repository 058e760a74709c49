//! A Keyward node for the PKCS#11 tests: an HSM (`keyward init`), `keyward hsm serve` on a
//! free port, crypto-users, and a module configuration (`KEYWARD_PKCS11_CONF`) with the one
//! token `keyward` on the node. Everything is readable by other users (nginx's workers run as
//! `nobody` when nginx starts as root): the folder is 0755, the CA copy and the configuration
//! 0644.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{init_hsm, keyward_bin, start_hsm_serve, Running};

/// The admin password of [`Node`]'s HSM.
pub const ADMIN_PASSWORD: &str = "admin-password";
/// The token label in [`Node::conf`].
pub const TOKEN: &str = "keyward";

/// A running node with what PKCS#11 applications need.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub server: Running,
    pub addr: SocketAddr,
    /// `https://localhost:PORT`.
    pub url: String,
    /// The node's API CA (a 0644 copy).
    pub ca: PathBuf,
    /// The module configuration file (`KEYWARD_PKCS11_CONF`), token label [`TOKEN`].
    pub conf: PathBuf,
}

/// `libkeyward_pkcs11.so` beside the `keyward` binary (scripts/test builds it).
pub fn module_path() -> PathBuf {
    let path = Path::new(keyward_bin()).with_file_name("libkeyward_pkcs11.so");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p keyward-pkcs11` (scripts/test does)",
        path.display()
    );
    path
}

impl Node {
    /// A fresh node.
    pub fn start() -> Node {
        Node::start_with(false)
    }

    /// A fresh node whose API also logs in clients by certificates that the CA
    /// `client-ca.pem` in its folder issued ([`Node::client_certificate`]).
    pub fn start_with_client_ca() -> Node {
        Node::start_with(true)
    }

    fn start_with(client_ca: bool) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        init_hsm(&data, ADMIN_PASSWORD);
        let ca = dir.path().join("client-ca.pem");
        let mut extra = Vec::new();
        if client_ca {
            openssl(
                dir.path(),
                "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client-ca.key \
                 -out client-ca.pem -days 2 -subj /CN=clients -addext basicConstraints=critical,CA:TRUE \
                 -addext keyUsage=critical,keyCertSign",
            );
            extra = vec!["--client-ca".to_owned(), ca.display().to_string()];
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (server, addr) = start_hsm_serve(&data, &extra);
        let url = format!("https://localhost:{}", addr.port());
        let ca = dir.path().join("api-ca.pem");
        std::fs::copy(data.join("api-ca.pem"), &ca).unwrap();
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut node = Node {
            dir,
            server,
            addr,
            url,
            ca,
            conf: PathBuf::new(),
        };
        node.conf = node.write_conf("pkcs11.toml", &[TOKEN]);
        node
    }

    /// A client certificate for `CN=name` from `client-ca.pem`: `(certificate, key)` PEM files.
    pub fn client_certificate(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        std::fs::write(
            d.join(format!("{name}.ext")),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &format!(
                "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key \
                 -out {name}.csr -subj /CN={name}"
            ),
        );
        openssl(
            d,
            &format!(
                "x509 -req -in {name}.csr -CA client-ca.pem -CAkey client-ca.key -CAcreateserial \
                 -days 2 -extfile {name}.ext -out {name}.pem"
            ),
        );
        (d.join(format!("{name}.pem")), d.join(format!("{name}.key")))
    }

    /// A module configuration `name` in the folder with one `[[token]]` per label, each on
    /// this node (mode 0644).
    pub fn write_conf(&self, name: &str, labels: &[&str]) -> PathBuf {
        let body: String = labels
            .iter()
            .map(|label| {
                format!(
                    "[[token]]\nlabel = \"{label}\"\nservers = [\"{}\"]\nca_file = {:?}\n\n",
                    self.url,
                    self.ca.display().to_string()
                )
            })
            .collect();
        let path = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// `keyward ARGS --server URL --ca-cert CA --user USER --password PASSWORD`; insists on
    /// success; returns stdout.
    pub fn kw_ok(&self, user: &str, password: &str, args: &[&str]) -> String {
        let out = Command::new(keyward_bin())
            .args(args)
            .args(["--server", &self.url, "--ca-cert"])
            .arg(&self.ca)
            .args(["--user", user, "--password", password])
            .env_remove("KEYWARD_DATA_DIR")
            .env_remove("KEYWARD_SERVER")
            .env_remove("KEYWARD_USER")
            .env_remove("KEYWARD_PASSWORD")
            .env_remove("KEYWARD_CA_CERT")
            .stdin(Stdio::null())
            .output()
            .expect("run keyward");
        assert!(
            out.status.success(),
            "keyward {args:?} as {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// [`kw_ok`](Self::kw_ok) with `--json`, parsed.
    pub fn json(&self, user: &str, password: &str, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.kw_ok(user, password, &args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Creates the crypto-user of `pin` (`user:password`).
    pub fn crypto_user(&self, pin: &str) {
        let (name, password) = pin.split_once(':').unwrap();
        let pw = self.dir.path().join(format!("{name}.pw"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        let pw = pw.display().to_string();
        let args = [
            "user",
            "create",
            "--name",
            name,
            "--role",
            "crypto-user",
            "--password-file",
            &pw,
        ];
        let out = self.kw_ok("admin", ADMIN_PASSWORD, &args);
        assert!(out.contains(name), "{out}");
    }

    /// An EC P-256 pair labelled `label` owned by the user of `pin` (`sign` / `verify`):
    /// `(private, public)` handles.
    pub fn ec_pair(&self, pin: &str, label: &str) -> (u64, u64) {
        let (user, password) = pin.split_once(':').unwrap();
        let v = self.json(
            user,
            password,
            &[
                "key",
                "generate-asymmetric-pair",
                "ec",
                "--curve",
                "p256",
                "--label",
                label,
                "--private-attr",
                "sign=true",
                "--public-attr",
                "verify=true",
            ],
        );
        (
            v["private"]["handle"].as_u64().unwrap(),
            v["public"]["handle"].as_u64().unwrap(),
        )
    }
}

/// `openssl ARGS` (whitespace-separated) in `dir`; must succeed.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
