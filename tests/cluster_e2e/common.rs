//! What the cluster tests share: the test process's PostgreSQL, nodes of one store, the CLI
//! and the SDK against them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keyward_keystore::test_util::TestPostgres;

use crate::support::*;

/// A new database on the test server; returns its name and URL.
pub(crate) fn new_store() -> (String, String) {
    let pg = TestPostgres::shared();
    let db = pg.new_database();
    let url = pg.url(&db);
    (db, url)
}

pub(crate) fn p(path: &Path) -> String {
    path.display().to_string()
}

/// `keyward init --data-dir DIR --store URL` with the admin password `admin-password`.
pub(crate) fn init(dir: &Path, url: &str) -> std::process::Output {
    let pw = dir.with_extension("admin.pw");
    std::fs::write(&pw, "admin-password\n").unwrap();
    keyward(&[
        "init",
        "--data-dir",
        &p(dir),
        "--store",
        url,
        "--admin-password-file",
        &p(&pw),
    ])
}

/// [`init`], which must succeed.
pub(crate) fn init_ok(dir: &Path, url: &str) {
    let out = init(dir, url);
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn stderr_of(args: &[&str]) -> String {
    let out = keyward(args);
    assert!(!out.status.success(), "keyward {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `keyward ARGS --server URL --ca-cert CA --user USER --password PW`.
pub(crate) fn remote(
    url: &str,
    ca: &Path,
    user: &str,
    password: &str,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(keyward_bin())
        .args(args)
        .args(["--server", url, "--ca-cert"])
        .arg(ca)
        .args(["--user", user, "--password", password])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .output()
        .expect("run keyward")
}

pub(crate) fn remote_ok(url: &str, ca: &Path, user: &str, password: &str, args: &[&str]) -> String {
    let out = remote(url, ca, user, password, args);
    assert!(
        out.status.success(),
        "keyward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Copies a node's data directory (master key, API TLS files) for another node of its cluster.
pub(crate) fn copy_data_dir(from: &Path, to: &Path) {
    let (ok, _, err) = run("cp", &["-a", &p(from), &p(to)]);
    assert!(ok, "{err}");
}

/// The first certificate `openssl s_client -showcerts` printed.
pub(crate) fn served_certificate(out: &str) -> String {
    let start = out.find("-----BEGIN CERTIFICATE-----").expect(out);
    let end = out[start..].find("-----END CERTIFICATE-----").expect(out) + start;
    out[start..end].to_owned()
}

/// Starts `keyward hsm serve` for `data` on a given port (a node restarted where the clients
/// expect it).
pub(crate) fn start_hsm_serve_on(data: &Path, port: u16, url: &str) -> Running {
    let mut cmd = std::process::Command::new(keyward_bin());
    cmd.args([
        "hsm",
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .args(["--store", url])
    .env("KEYWARD_LOG", "info");
    let node = Running::spawn(cmd);
    node.stderr.wait_for("serving the HSM API");
    node
}

/// Nodes of one store: a new database, the first node's `keyward init` (admin password
/// `admin-password`), copies of its data directory for the others, and every node's
/// `keyward hsm serve --store`.
pub(crate) struct Cluster {
    pub(crate) url: String,
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) nodes: Vec<(Running, SocketAddr)>,
    /// The API certificate every node serves (they share its key through the store).
    pub(crate) ca: PathBuf,
    pub(crate) tmp: tempfile::TempDir,
}

impl Cluster {
    pub(crate) fn start(n: usize) -> Cluster {
        let (_db, url) = new_store();
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (1..=n)
            .map(|i| tmp.path().join(format!("node{i}")))
            .collect();
        init_ok(&dirs[0], &url);
        for d in &dirs[1..] {
            copy_data_dir(&dirs[0], d);
        }
        let nodes = dirs
            .iter()
            .map(|d| start_hsm_serve(d, &["--store", &url]))
            .collect();
        let ca = dirs[0].join("api-ca.pem");
        Cluster {
            url,
            dirs,
            nodes,
            ca,
            tmp,
        }
    }

    /// Node `i`'s API URL.
    pub(crate) fn api(&self, i: usize) -> String {
        format!("https://localhost:{}", self.nodes[i].1.port())
    }

    /// A crypto-user made by the admin on node `on`.
    pub(crate) fn create_crypto_user(&self, on: usize, name: &str, password: &str) {
        create_crypto_user(&self.api(on), &self.ca, self.tmp.path(), name, password);
    }
}

/// `keyward user create --role crypto-user` as the admin (`admin-password`) on the node at
/// `api`, the password file written into `dir`.
pub(crate) fn create_crypto_user(api: &str, ca: &Path, dir: &Path, name: &str, password: &str) {
    let file = dir.join(format!("{name}.pw"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    remote_ok(
        api,
        ca,
        "admin",
        "admin-password",
        &[
            "user",
            "create",
            "--name",
            name,
            "--role",
            "crypto-user",
            "--password-file",
            &p(&file),
        ],
    );
}

/// `keyward key generate-asymmetric-pair ec --curve p256` (private `sign`, public `verify`)
/// as alice (`alice-password`) on the node at `api`; returns the CLI's output.
pub(crate) fn alice_generates_pair(api: &str, ca: &Path, label: &str) -> std::process::Output {
    remote(
        api,
        ca,
        "alice",
        "alice-password",
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
            "--json",
        ],
    )
}

/// [`alice_generates_pair`], which must succeed; returns the private key's handle.
pub(crate) fn alice_pair(api: &str, ca: &Path, label: &str) -> u64 {
    let out = alice_generates_pair(api, ca, label);
    assert!(
        out.status.success(),
        "generate {label}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["private"]["handle"]
        .as_u64()
        .unwrap()
}

/// An SDK client for `urls`, logged in as `user`.
pub(crate) async fn sdk(
    urls: impl IntoIterator<Item = String>,
    ca: &Path,
    user: &str,
    password: &str,
) -> keyward_client::Client {
    let config = keyward_client::ClientConfig::new(urls)
        .ca_cert_pem_file(ca)
        .unwrap();
    let c = keyward_client::Client::new(config).unwrap();
    c.login(user, password).await.unwrap();
    c
}

/// Every key handle `c` may see, page by page.
pub(crate) async fn key_handles(c: &keyward_client::Client) -> std::collections::HashSet<u64> {
    let mut all = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = c
            .list_keys(&keyward_client::KeyFilter {
                after,
                limit: Some(1000),
                ..keyward_client::KeyFilter::default()
            })
            .await
            .unwrap();
        all.extend(page.keys.iter().map(|k| k.handle));
        match page.next {
            Some(n) => after = Some(n),
            None => return all,
        }
    }
}

/// `keyward cert self-signed --key LABEL` for `localhost` and 127.0.0.1 into `out`, signed in
/// the cluster store at `url` through the data directory `data` (as the nodes' service user).
pub(crate) fn cluster_self_signed(data: &Path, url: &str, label: &str, out: &Path) {
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        label,
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        &p(out),
        "--data-dir",
        &p(data),
        "--store",
        url,
    ]);
}
