//! The systems under test: key material shared by all of them, and how each one is set up
//! and started (keyward with the key in its HSM or in memory, nginx with a key file or a
//! SoftHSM2 token through the PKCS#11 engine, HAProxy with a key file).

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::procs::{free_port, run_ok, Server};
use crate::cli::SigAlgs;

/// SoftHSM2's PKCS#11 module (Debian package softhsm2).
const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The crypto-user who owns the keys imported into keyward's HSM, and its password.
pub(super) const BENCH_USER: &str = "bench";
pub(super) const BENCH_PASSWORD: &str = "bench-user-password";
/// The SoftHSM2 token's user PIN (a throwaway token in the work directory).
const SOFTHSM_PIN: &str = "1234";
/// Idle keep-alive limit given to every server, so the idle scenario's connections stay open.
pub(super) const IDLE_TIMEOUT_S: u64 = 300;
/// Connection limit given to every server (the idle scenario holds up to 10,000).
const MAX_CONNECTIONS: u64 = 12_000;
/// HAProxy's `maxconn` is the idle scenario's connections plus this many.
const HAPROXY_SPARE_CONNECTIONS: usize = 32;

/// The most idle connections every target can hold under a RLIMIT_NOFILE hard limit of
/// `hard`: HAProxy reserves two descriptors per connection of its `maxconn` (client and
/// server side) plus a few, and refuses to start when it cannot raise its limit that far
/// (a container without CAP_SYS_RESOURCE cannot go past the hard limit).
pub(crate) fn idle_connection_limit(hard: u64) -> usize {
    let per_connection = 2;
    let reserve = 2 * HAPROXY_SPARE_CONNECTIONS as u64 + 64;
    usize::try_from(hard.saturating_sub(reserve) / per_connection).unwrap_or(usize::MAX)
}

/// A server key type; every target serves the same key and certificate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize, Deserialize,
)]
pub enum KeyKind {
    /// ECDSA P-256 (signature scheme ecdsa_secp256r1_sha256).
    #[value(name = "p256")]
    #[serde(rename = "p256")]
    P256,
    /// RSA 2048 (rsa_pss_rsae_sha256 in both TLS versions).
    #[value(name = "rsa2048")]
    #[serde(rename = "rsa2048")]
    Rsa2048,
}

impl KeyKind {
    /// Short id used in labels and file names.
    pub fn id(self) -> &'static str {
        match self {
            KeyKind::P256 => "p256",
            KeyKind::Rsa2048 => "rsa2048",
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::P256 => "P-256",
            KeyKind::Rsa2048 => "RSA-2048",
        }
    }

    /// The signature schemes the client offers for this key (the same for every server).
    pub fn sigalgs(self) -> SigAlgs {
        match self {
            KeyKind::P256 => SigAlgs::EcdsaP256Sha256,
            KeyKind::Rsa2048 => SigAlgs::RsaPssSha256,
        }
    }

    fn openssl_genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::P256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        }
    }
}

/// A system under test.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// keyward; the key imported into its HSM (signing through the HSM layer).
    KeywardHsm,
    /// keyward built with `bench-plain-keys`; the same key as a plain in-memory rustls key.
    KeywardPlain,
    /// nginx (Debian), key in a PEM file, one worker process.
    Nginx,
    /// nginx (master + one worker) with the key in SoftHSM2 through libengine-pkcs11-openssl.
    NginxSofthsm,
    /// nginx (master + one worker) with the key in a Keyward HSM node, through
    /// libengine-pkcs11-openssl and `libkeyward_pkcs11.so`; CPU of nginx and the node.
    NginxKeyward,
    /// HAProxy (Debian), key in a PEM file, one thread.
    Haproxy,
}

impl TargetKind {
    /// Every target, in report order.
    pub const ALL: [TargetKind; 6] = [
        TargetKind::KeywardHsm,
        TargetKind::KeywardPlain,
        TargetKind::Nginx,
        TargetKind::NginxSofthsm,
        TargetKind::NginxKeyward,
        TargetKind::Haproxy,
    ];

    /// Stable id (as on the command line).
    pub fn id(self) -> &'static str {
        match self {
            TargetKind::KeywardHsm => "keyward-hsm",
            TargetKind::KeywardPlain => "keyward-plain",
            TargetKind::Nginx => "nginx",
            TargetKind::NginxSofthsm => "nginx-softhsm",
            TargetKind::NginxKeyward => "nginx-keyward",
            TargetKind::Haproxy => "haproxy",
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::KeywardHsm => "keyward (key in HSM)",
            TargetKind::KeywardPlain => "keyward (key in memory)",
            TargetKind::Nginx => "nginx (key file)",
            TargetKind::NginxSofthsm => "nginx + SoftHSM2 (PKCS#11)",
            TargetKind::NginxKeyward => "nginx + Keyward node (PKCS#11)",
            TargetKind::Haproxy => "HAProxy (key file)",
        }
    }

    /// Whether this is keyward (it offers X25519MLKEM768, and has a sign counter).
    pub fn is_keyward(self) -> bool {
        matches!(self, TargetKind::KeywardHsm | TargetKind::KeywardPlain)
    }

    /// Whether it needs the keys imported into a Keyward HSM.
    pub fn needs_keyward_hsm(self) -> bool {
        matches!(self, TargetKind::KeywardHsm | TargetKind::NginxKeyward)
    }
}

/// One key type's files: the key (PKCS#8 PEM and DER), its public key (DER), a self-signed
/// certificate for `localhost` and 127.0.0.1, and certificate + key in one file (HAProxy).
#[derive(Debug)]
pub(crate) struct KeyFiles {
    /// PKCS#8 private key, PEM.
    pub key_pem: PathBuf,
    /// Self-signed certificate, PEM.
    pub cert_pem: PathBuf,
    /// Certificate followed by the key (HAProxy's `crt`).
    pub combined_pem: PathBuf,
    /// The label of the key in keyward's HSM and the SoftHSM2 token.
    pub label: String,
}

/// Everything the targets share: keys and certificates, keyward's data directory with the
/// keys imported, the SoftHSM2 token with the same keys, the plain upstream.
#[derive(Debug)]
pub(crate) struct Material {
    /// The work directory.
    pub dir: PathBuf,
    /// Per key type.
    pub keys: BTreeMap<KeyKind, KeyFiles>,
    /// keyward's data directory.
    pub keyward_data: PathBuf,
    /// `SOFTHSM2_CONF` and `OPENSSL_CONF` for nginx + SoftHSM2.
    pub softhsm_env: Vec<(String, PathBuf)>,
}

/// Makes the keys and certificates with the OpenSSL CLI and loads them into keyward's HSM
/// (with `keyward_bin`, when given) and, when `softhsm`, a SoftHSM2 token.
///
/// # Errors
/// A tool fails; its output is in the error.
pub(crate) fn prepare(
    dir: &Path,
    keys: &[KeyKind],
    keyward_bin: Option<&Path>,
    softhsm: bool,
) -> anyhow::Result<Material> {
    let mut files = BTreeMap::new();
    for &k in keys {
        let key_pem = dir.join(format!("{}.key.pem", k.id()));
        let cert_pem = dir.join(format!("{}.cert.pem", k.id()));
        run_ok(
            "openssl genpkey",
            Command::new("openssl")
                .arg("genpkey")
                .args(k.openssl_genpkey_args())
                .arg("-out")
                .arg(&key_pem),
        )?;
        run_ok(
            "openssl req -x509",
            Command::new("openssl")
                .args(["req", "-x509", "-new", "-sha256", "-days", "30"])
                .args(["-subj", "/CN=localhost"])
                .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
                .arg("-key")
                .arg(&key_pem)
                .arg("-out")
                .arg(&cert_pem),
        )?;
        let combined_pem = dir.join(format!("{}.combined.pem", k.id()));
        fs::write(
            &combined_pem,
            [fs::read(&cert_pem)?, fs::read(&key_pem)?].concat(),
        )?;
        files.insert(
            k,
            KeyFiles {
                key_pem,
                cert_pem,
                combined_pem,
                label: format!("bench-{}", k.id()),
            },
        );
    }
    let keyward_data = dir.join("keyward-data");
    if let Some(bin) = keyward_bin {
        import_into_keyward(dir, bin, &keyward_data, &files)?;
    }
    let softhsm_env = if softhsm {
        softhsm_token(dir, &files)?
    } else {
        Vec::new()
    };
    Ok(Material {
        dir: dir.to_owned(),
        keys: files,
        keyward_data,
        softhsm_env,
    })
}

/// A `keyward` command with no `KEYWARD_*` variables from the caller's environment.
pub(super) fn keyward(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KEYWARD_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Imports each key as an operator would: a new HSM (`keyward init`), an HSM node
/// (`keyward hsm serve`), a crypto user who imports the PKCS#8 key (wrapped under a
/// transport key, `keyward key import pem`) and shares it with the proxy's identity.
fn import_into_keyward(
    dir: &Path,
    bin: &Path,
    data: &Path,
    keys: &BTreeMap<KeyKind, KeyFiles>,
) -> anyhow::Result<()> {
    let admin_pw = dir.join("admin.pw");
    let user_pw = dir.join("bench.pw");
    fs::write(&admin_pw, "bench-admin-password\n")?;
    fs::write(&user_pw, format!("{BENCH_PASSWORD}\n"))?;
    run_ok(
        "keyward init",
        keyward(bin)
            .arg("init")
            .arg("--data-dir")
            .arg(data)
            .arg("--admin-password-file")
            .arg(&admin_pw),
    )?;
    let port = free_port()?;
    let log = dir.join("keyward-hsm-serve.log");
    let mut node_cmd = keyward(bin);
    node_cmd
        .args(["hsm", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .env("KEYWARD_LOG", "info");
    let mut node = Server::start("keyward hsm serve", 0, &mut node_cmd, &log)?;
    node.wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), false)?;
    // Throwaway credentials of a throwaway HSM; the password goes in the environment, not
    // on the command line.
    let remote = |user: &str, password: &str| {
        let mut cmd = keyward(bin);
        cmd.args(["--server", &format!("https://localhost:{port}")])
            .arg("--ca-cert")
            .arg(data.join("api-ca.pem"))
            .args(["--user", user])
            .env("KEYWARD_PASSWORD", password);
        cmd
    };
    run_ok(
        "keyward user create",
        remote("admin", "bench-admin-password")
            .args([
                "user",
                "create",
                "--name",
                BENCH_USER,
                "--role",
                "crypto-user",
            ])
            .arg("--password-file")
            .arg(&user_pw),
    )?;
    for files in keys.values() {
        let out = run_ok(
            "keyward key import pem",
            remote(BENCH_USER, BENCH_PASSWORD)
                .args(["key", "import", "pem", "--label", &files.label, "--json"])
                .arg("--in")
                .arg(&files.key_pem),
        )?;
        let key: serde_json::Value = serde_json::from_slice(&out.stdout)
            .context("parsing the output of keyward key import")?;
        let handle = key["handle"]
            .as_u64()
            .context("keyward key import printed no handle")?;
        run_ok(
            "keyward key share",
            remote(BENCH_USER, BENCH_PASSWORD).args([
                "key",
                "share",
                "--key",
                &handle.to_string(),
                "--with",
                "keyward-proxy",
            ]),
        )?;
    }
    node.stop();
    Ok(())
}

/// A SoftHSM2 token `kw` in the work directory holding each private key (with its public
/// key and certificate under the same CKA_ID, which libp11 needs for EC keys), and an
/// OpenSSL configuration that loads the PKCS#11 engine.
fn softhsm_token(
    dir: &Path,
    keys: &BTreeMap<KeyKind, KeyFiles>,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let tokens = dir.join("softhsm-tokens");
    fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    let openssl_cnf =
        engine_openssl_cnf(&dir.join("openssl-pkcs11.cnf"), Path::new(SOFTHSM_MODULE))?;
    run_ok(
        "softhsm2-util --init-token",
        Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "kw"])
            .args(["--pin", SOFTHSM_PIN, "--so-pin", SOFTHSM_PIN])
            .env("SOFTHSM2_CONF", &conf),
    )?;
    for (i, files) in keys.values().enumerate() {
        let id = format!("{:02x}", i + 1);
        let der = |what: &str, tool: &str, input: &Path, args: &[&str]| {
            let out = dir.join(format!("{}.{what}.der", files.label));
            run_ok(
                "openssl (DER for pkcs11-tool)",
                Command::new("openssl")
                    .arg(tool)
                    .args(args)
                    .args(["-outform", "DER", "-in"])
                    .arg(input)
                    .arg("-out")
                    .arg(&out),
            )
            .map(|_| out)
        };
        let objects = [
            ("privkey", der("key", "pkey", &files.key_pem, &[])?),
            ("pubkey", der("pub", "pkey", &files.key_pem, &["-pubout"])?),
            ("cert", der("cert", "x509", &files.cert_pem, &[])?),
        ];
        for (kind, file) in objects {
            run_ok(
                "pkcs11-tool --write-object",
                Command::new("pkcs11-tool")
                    .args(["--module", SOFTHSM_MODULE, "--login", "--pin", SOFTHSM_PIN])
                    .args(["--token-label", "kw", "--write-object"])
                    .arg(&file)
                    .args(["--type", kind, "--id", &id, "--label", &files.label])
                    .env("SOFTHSM2_CONF", &conf),
            )?;
        }
    }
    Ok(vec![
        ("SOFTHSM2_CONF".to_owned(), conf),
        ("OPENSSL_CONF".to_owned(), openssl_cnf),
    ])
}

/// Writes an OpenSSL configuration at `path` that loads the PKCS#11 engine
/// (libengine-pkcs11-openssl) with the PKCS#11 module `module`; returns `path`.
///
/// # Errors
/// No engine is installed, or the file cannot be written.
pub(super) fn engine_openssl_cnf(path: &Path, module: &Path) -> anyhow::Result<PathBuf> {
    let engine = fs::read_dir("/usr/lib")?
        .flatten()
        .map(|e| e.path().join("engines-3/pkcs11.so"))
        .find(|p| p.exists())
        .context("no OpenSSL PKCS#11 engine (install libengine-pkcs11-openssl)")?;
    fs::write(
        path,
        format!(
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
             [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
             dynamic_path = {}\nMODULE_PATH = {}\ninit = 0\n",
            engine.display(),
            module.display()
        ),
    )?;
    Ok(path.to_owned())
}

/// The nginx that plays the upstream for every target: `200 ok` to any request, keep-alive.
///
/// # Errors
/// nginx fails to start.
pub(crate) fn start_upstream(m: &Material, cpu: usize) -> anyhow::Result<(Server, u16)> {
    let port = free_port()?;
    let dir = m.dir.join("upstream");
    let conf = format!(
        "{}    keepalive_requests 1000000;\n    keepalive_timeout {IDLE_TIMEOUT_S}s;\n    server {{\n\
         \x20       listen 127.0.0.1:{port};\n        location / {{ default_type text/plain; return 200 \"ok\\n\"; }}\n\
         \x20   }}\n}}\n",
        nginx_head(&dir, false)?
    );
    let server = start_nginx("upstream nginx", &dir, &conf, cpu, port, true, &[])?;
    Ok((server, port))
}

/// What a started target needs to know.
#[derive(Debug)]
pub(crate) struct Started {
    /// The process.
    pub server: Server,
    /// Where it accepts TLS.
    pub addr: SocketAddr,
    /// keyward's admin listener (`/metrics`).
    pub admin: Option<SocketAddr>,
    /// A process doing part of the target's work (the HSM node behind nginx + Keyward),
    /// whose CPU time counts as the target's.
    pub sidecar: Option<Server>,
}

impl Started {
    /// CPU time of the server's process tree and of the sidecar.
    pub(crate) fn cpu(&self) -> anyhow::Result<std::time::Duration> {
        let sidecar = match &self.sidecar {
            Some(s) => s.cpu()?,
            None => std::time::Duration::ZERO,
        };
        Ok(self.server.cpu()? + sidecar)
    }
}

/// Starts `target` serving `key` on a free port, pinned to `cpu`, forwarding to the
/// upstream on `upstream_port`.
///
/// # Errors
/// The configuration cannot be written or the server does not start listening.
/// The keyward configuration of one target: its data directory, listener, certificate
/// (`cert`: a `key_label` or `private_key_file` line) and upstream.
fn keyward_config(
    m: &Material,
    files: &KeyFiles,
    cert: &str,
    addr: SocketAddr,
    admin_port: u16,
    upstream_port: u16,
) -> String {
    format!(
        "[hsm]\ndata_dir = {data:?}\n\
         [log]\n# keyward=info logs readiness; the rustls target would warn on every\n\
         # handshake whose SNI is an IP address.\n\
         level = \"warn,keyward=info,rustls::msgs::handshake=error\"\n\
         access_log = false\n\
         [admin]\naddress = \"127.0.0.1:{admin_port}\"\n\
         [[listeners]]\naddress = \"{addr}\"\ntls_versions = [\"1.2\", \"1.3\"]\n\
         client_header_timeout_ms = {idle_ms}\nidle_timeout_ms = {idle_ms}\n\
         max_connections = {MAX_CONNECTIONS}\n\
         [[listeners.certificates]]\n{cert}\nchain_file = {chain:?}\n\
         [upstream]\nurl = \"http://127.0.0.1:{upstream_port}\"\n",
        data = m.keyward_data.display().to_string(),
        idle_ms = IDLE_TIMEOUT_S * 1000,
        chain = files.cert_pem.display().to_string(),
    )
}

pub(crate) fn start(
    target: TargetKind,
    key: KeyKind,
    m: &Material,
    bins: &Binaries,
    cpu: usize,
    upstream_port: u16,
    idle_connections: usize,
) -> anyhow::Result<Started> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let files = &m.keys[&key];
    let dir = m.dir.join(format!("{}-{}", target.id(), key.id()));
    fs::create_dir_all(&dir)?;
    let name = format!("{} ({})", target.name(), key.name());
    match target {
        TargetKind::KeywardHsm | TargetKind::KeywardPlain => {
            let admin_port = free_port()?;
            let (bin, cert) = if target == TargetKind::KeywardHsm {
                (&bins.keyward, format!("key_label = {:?}", files.label))
            } else {
                (
                    bins.keyward_plain
                        .as_ref()
                        .context("--keyward-plain-bin is needed for the keyward-plain target")?,
                    format!(
                        "private_key_file = {:?}",
                        files.key_pem.display().to_string()
                    ),
                )
            };
            let config = keyward_config(m, files, &cert, addr, admin_port, upstream_port);
            let config_path = dir.join("keyward.toml");
            fs::write(&config_path, config)?;
            let mut cmd = keyward(bin);
            cmd.arg("serve")
                .arg("--config")
                .arg(&config_path)
                .env("TOKIO_WORKER_THREADS", "1");
            let mut server = Server::start(&name, cpu, &mut cmd, &dir.join("keyward.log"))?;
            server.wait_listening(addr, false)?;
            Ok(Started {
                server,
                addr,
                admin: Some(SocketAddr::from(([127, 0, 0, 1], admin_port))),
                sidecar: None,
            })
        }
        TargetKind::Nginx | TargetKind::NginxSofthsm => {
            let softhsm = target == TargetKind::NginxSofthsm;
            let key_directive = if softhsm {
                format!(
                    "\"engine:pkcs11:pkcs11:token=kw;object={};type=private;pin-value={SOFTHSM_PIN}\"",
                    files.label
                )
            } else {
                files.key_pem.display().to_string()
            };
            let conf = format!(
                "{head}    keepalive_timeout {IDLE_TIMEOUT_S}s;\n    keepalive_requests 1000000;\n\
                 \x20   upstream plain {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}\n\
                 \x20   server {{\n        listen {addr} ssl;\n\
                 \x20       ssl_protocols TLSv1.2 TLSv1.3;\n\
                 \x20       ssl_certificate {cert};\n        ssl_certificate_key {key_directive};\n\
                 \x20       location / {{ proxy_pass http://plain; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n\
                 \x20   }}\n}}\n",
                head = nginx_head(&dir, softhsm)?,
                cert = files.cert_pem.display(),
            );
            let env: Vec<(String, PathBuf)> = if softhsm {
                m.softhsm_env.clone()
            } else {
                Vec::new()
            };
            let server = start_nginx(&name, &dir, &conf, cpu, port, true, &env)?;
            Ok(Started {
                server,
                addr,
                admin: None,
                sidecar: None,
            })
        }
        TargetKind::NginxKeyward => {
            super::pkcs11_target::start(m, bins, files, &dir, &name, cpu, addr, upstream_port)
        }
        TargetKind::Haproxy => {
            let conf = format!(
                "global\n    nbthread 1\n    maxconn {maxconn}\n\
                 \x20   ssl-default-bind-options ssl-min-ver TLSv1.2\n\
                 defaults\n    mode http\n    timeout connect 5s\n\
                 \x20   timeout client {IDLE_TIMEOUT_S}s\n    timeout server {IDLE_TIMEOUT_S}s\n\
                 \x20   timeout http-keep-alive {IDLE_TIMEOUT_S}s\n    maxconn {maxconn}\n\
                 frontend tls\n    bind {addr} ssl crt {crt} alpn http/1.1\n    default_backend plain\n\
                 backend plain\n    http-reuse always\n    server upstream 127.0.0.1:{upstream_port}\n",
                crt = files.combined_pem.display(),
                maxconn = idle_connections + HAPROXY_SPARE_CONNECTIONS,
            );
            let conf_path = dir.join("haproxy.cfg");
            fs::write(&conf_path, conf)?;
            let mut cmd = Command::new(&bins.haproxy);
            cmd.arg("-db").arg("-f").arg(&conf_path);
            let mut server = Server::start(&name, cpu, &mut cmd, &dir.join("haproxy.log"))?;
            server.wait_listening(addr, false)?;
            Ok(Started {
                server,
                addr,
                admin: None,
                sidecar: None,
            })
        }
    }
}

/// Paths of the programs compared.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    /// `keyward` (normal build).
    pub keyward: PathBuf,
    /// `keyward` built with `--features bench-plain-keys`.
    pub keyward_plain: Option<PathBuf>,
    /// `nginx`.
    pub nginx: PathBuf,
    /// `haproxy`.
    pub haproxy: PathBuf,
    /// `libkeyward_pkcs11.so` (the nginx-keyward target).
    pub pkcs11_module: PathBuf,
}

/// The start of an nginx configuration: nginx's default master process and one worker,
/// foreground, everything under `dir`, room for the idle scenario's connections, no access
/// log. With `engine`, the PKCS#11 engine (`ssl_engine pkcs11`) and, when nginx starts as
/// root, a worker that runs as root too: the worker initializes the PKCS#11 module again
/// after fork() and reads its files (SoftHSM2's token, Keyward's configuration and CA) from
/// the work directory, which only its owner may enter.
pub(super) fn nginx_head(dir: &Path, engine: bool) -> anyhow::Result<String> {
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp)?;
    let d = dir.display();
    let t = tmp.display();
    let engine = match (engine, rustix::process::geteuid().is_root()) {
        (true, true) => "ssl_engine pkcs11;\nuser root;\n",
        (true, false) => "ssl_engine pkcs11;\n",
        (false, _) => "",
    };
    Ok(format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         env SOFTHSM2_CONF;\nenv OPENSSL_CONF;\n{engine}\
         events {{ worker_connections {MAX_CONNECTIONS}; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {t}/body;\n\
         \x20   proxy_temp_path {t}/proxy;\n    fastcgi_temp_path {t}/fastcgi;\n\
         \x20   uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n",
    ))
}

pub(super) fn start_nginx(
    name: &str,
    dir: &Path,
    conf: &str,
    cpu: usize,
    port: u16,
    workers: bool,
    env: &[(String, PathBuf)],
) -> anyhow::Result<Server> {
    fs::create_dir_all(dir)?;
    let conf_path = dir.join("nginx.conf");
    fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(nginx_path());
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut server = Server::start(name, cpu, &mut cmd, &dir.join("stderr.log"))?;
    server
        .wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), workers)
        .map_err(|e| {
            let errors = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            e.context(format!("nginx error.log:\n{errors}"))
        })?;
    Ok(server)
}

/// nginx from Debian (`/usr/sbin` is not on every PATH).
pub(crate) fn nginx_path() -> PathBuf {
    find_program("nginx")
}

/// `name` on PATH, else in /usr/sbin or /sbin; else `name` as given (fails when run).
pub(crate) fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// keyward's count of HSM signatures made for TLS handshakes, from its admin `/metrics`
/// (`keyward_hsm_sign_duration_seconds_count`), fetched with curl.
///
/// # Errors
/// The endpoint does not answer or has no such metric.
pub(crate) fn hsm_sign_count(admin: SocketAddr) -> anyhow::Result<u64> {
    let out = run_ok(
        "curl /metrics",
        Command::new("curl")
            .args(["-sSf", "--max-time", "10"])
            .arg(format!("http://{admin}/metrics")),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).context("parsing /metrics")?;
    // The histogram's +Inf bucket is its count (the `_count` line, which the parser folds in).
    let mut total = None;
    for s in &scrape.samples {
        if s.metric == "keyward_hsm_sign_duration_seconds" {
            if let prometheus_parse::Value::Histogram(buckets) = &s.value {
                let count = buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count);
                *total.get_or_insert(0.0) += count;
            }
        }
    }
    let Some(total) = total else {
        bail!("no keyward_hsm_sign_duration_seconds histogram in /metrics");
    };
    Ok(total as u64)
}
