//! A Keyward node for PKCS#11 tests: an HSM (`keyward init`), `keyward hsm serve` on a free
//! port, crypto-users, and a module configuration (`KEYWARD_PKCS11_CONF`) naming the node.
//! Everything readable by other users (nginx's workers run as `nobody` when nginx starts as
//! root): the folder is 0755, the CA copy and the configuration 0644.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{init_hsm, keyward_bin, keyward_ok, start_hsm_serve, Running};

/// The admin password of [`Node`]'s HSM.
pub const ADMIN_PASSWORD: &str = "p11-admin-password";

/// A running node with what PKCS#11 applications need.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub server: Running,
    pub addr: SocketAddr,
    /// The module configuration file (`KEYWARD_PKCS11_CONF`), token label `keyward`.
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
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        init_hsm(&data, ADMIN_PASSWORD);
        let (server, addr) = start_hsm_serve(&data, &[]);
        let ca = dir.path().join("api-ca.pem");
        std::fs::copy(data.join("api-ca.pem"), &ca).unwrap();
        let conf = dir.path().join("pkcs11.toml");
        std::fs::write(
            &conf,
            format!(
                "[[token]]\nlabel = \"keyward\"\nservers = [\"https://localhost:{}\"]\nca_file = {:?}\n",
                addr.port(),
                ca.display().to_string()
            ),
        )
        .unwrap();
        for f in [&ca, &conf] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        Node {
            dir,
            server,
            addr,
            conf,
        }
    }

    /// The `--server … --ca-cert …` arguments of remote CLI commands.
    pub fn api_args(&self) -> Vec<String> {
        vec![
            "--server".into(),
            format!("https://localhost:{}", self.addr.port()),
            "--ca-cert".into(),
            self.dir.path().join("api-ca.pem").display().to_string(),
        ]
    }

    /// Creates a crypto-user `name` with `password`.
    pub fn crypto_user(&self, name: &str, password: &str) {
        let pw = self.dir.path().join(format!("{name}.pw"));
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        let mut args = vec![
            "user".to_owned(),
            "create".into(),
            "--name".into(),
            name.into(),
            "--role".into(),
            "crypto-user".into(),
            "--password-file".into(),
            pw.display().to_string(),
            "--user".into(),
            "admin".into(),
            "--password".into(),
            ADMIN_PASSWORD.into(),
        ];
        args.extend(self.api_args());
        keyward_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Generates an EC P-256 pair labelled `label` owned by `user` (`sign` / `verify`).
    pub fn ec_pair(&self, user: &str, password: &str, label: &str) {
        let mut args = vec![
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
            "--user",
            user,
            "--password",
            password,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(self.api_args());
        keyward_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
