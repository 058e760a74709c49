//! The `keyward` command: wiring only. See `keyward --help`.
//!
//! Exit codes: 0 success; 1 an error (one line on stderr naming the cause); 2 a usage error.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use keyward_hsm::{
    AttributeName, Hsm, KeyClass, KeyFilter, KeyInfo, KeySpec, KeyTemplate, Session, PROXY_USER,
};

mod api_server;
mod certs;
mod data_dir;
mod demo_upstream;
mod remote;
mod table;

#[derive(Parser)]
#[command(
    name = "keyward",
    version,
    about = "TLS reverse proxy with keys held in a bundled HSM",
    after_help = "Exit codes: 0 success; 1 error (one line on stderr, `keyward: error: ...`, with \
                  the API's error code such as key_not_found), or `crypto verify` found the \
                  signature invalid; 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: remote::Conn,
}

#[derive(clap::Args, Clone)]
struct DataDirArg {
    /// HSM data directory (store and master key).
    #[arg(long, env = "KEYWARD_DATA_DIR", default_value = "keyward-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run an HTTPS proxy with an HSM-held key in front of a built-in demo upstream.
    Quickstart {
        #[command(flatten)]
        data: DataDirArg,
        /// Address to serve HTTPS on. The quickstart's three default ports are used by no
        /// other command's defaults, so it can keep running while you try the others.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Address of the HSM REST API (TLS; trust DATA_DIR/api-ca.pem; admin password in
        /// DATA_DIR/admin.password).
        #[arg(long, default_value = "127.0.0.1:9201")]
        api_listen: SocketAddr,
        /// Address of the admin endpoints (plain HTTP): /metrics, /healthz, /readyz.
        #[arg(long, default_value = "127.0.0.1:9091")]
        admin_listen: SocketAddr,
    },
    /// Run the proxy from a configuration file (SIGHUP reloads it; SIGTERM drains and exits).
    Serve {
        /// TOML configuration file (see keyward.example.toml).
        #[arg(long, env = "KEYWARD_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        accept: api_server::AcceptArgs,
    },
    /// Create a new HSM: store, master key, the API's TLS key and certificate, first admin.
    Init {
        #[command(flatten)]
        data: DataDirArg,
        /// Name of the first admin.
        #[arg(long, default_value = "admin")]
        admin: String,
        /// File holding the first admin's password (else env KEYWARD_ADMIN_PASSWORD, else one
        /// is generated and printed once).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        /// DNS names of the API's certificate (repeatable).
        #[arg(long = "api-dns", default_value = "localhost")]
        api_dns: Vec<String>,
        /// IP addresses of the API's certificate (repeatable).
        #[arg(long = "api-ip", default_values = ["127.0.0.1", "::1"])]
        api_ip: Vec<IpAddr>,
    },
    /// Run an HSM-only node: the REST API over TLS.
    #[command(subcommand)]
    Hsm(HsmCommand),
    /// Manage keys in the HSM.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Make certificates and CSRs signed inside the HSM.
    #[command(subcommand)]
    Cert(CertCommand),
    /// End the saved session(s) of `keyward login --save` and delete the token file.
    Logout,
    /// Recovery on the machine that holds the data directory and master key, with every
    /// keyward process on it stopped.
    #[command(subcommand)]
    Recover(RecoverCommand),
    /// Log in to the HSM node(s) given by --server and print the user's role.
    Login {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage HSM users on the node(s) given by --server.
    #[command(subcommand)]
    User(remote::UserCommand),
    /// Sign, verify, encrypt, decrypt and MAC with keys on the node(s) given by --server.
    #[command(subcommand)]
    Crypto(remote::CryptoCommand),
    /// The audit log of the node given by --server.
    #[command(subcommand)]
    Audit(remote::AuditCommand),
}

#[derive(Subcommand)]
enum RecoverCommand {
    /// Set a user's password and unlock it without logging in (e.g. when every admin is
    /// locked out). Audited.
    ResetPassword {
        #[command(flatten)]
        data: DataDirArg,
        /// The user.
        #[arg(long)]
        name: String,
        /// File holding the new password.
        #[arg(long)]
        password_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum HsmCommand {
    /// Serve the HSM REST API (TLS; the key is the HSM's `api-tls` key).
    Serve {
        #[command(flatten)]
        data: DataDirArg,
        /// Address of the API listener.
        #[arg(long, default_value = "127.0.0.1:9200")]
        listen: SocketAddr,
        /// CA certificate(s), PEM: clients may log in with a certificate it issued (mutual
        /// TLS); the certificate's subject common name is the user name.
        #[arg(long)]
        client_ca: Option<PathBuf>,
        #[command(flatten)]
        limits: api_server::LimitArgs,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate a key pair inside the HSM (the private key is not extractable).
    Generate {
        /// ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.
        #[arg(long = "type", value_parser = parse_spec)]
        spec: KeySpec,
        /// Label for both objects of the pair.
        #[arg(long)]
        label: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// List key objects (on the --server nodes when given, else in the local data dir).
    List {
        /// Print JSON (an array of key objects).
        #[arg(long)]
        json: bool,
        /// With --server: attr.label=L, class=private|public|secret, type=ec, attr.NAME=true
        /// (repeatable).
        #[arg(long = "filter")]
        filter: Vec<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    #[command(flatten)]
    Remote(remote::KeyRemote),
}

#[derive(Subcommand)]
enum CertCommand {
    /// Write a self-signed TLS server certificate for an HSM key.
    SelfSigned {
        /// Label of the HSM private key.
        #[arg(long)]
        key: String,
        /// DNS subject alternative names (repeatable).
        #[arg(long = "dns", required_unless_present = "ip")]
        dns: Vec<String>,
        /// IP subject alternative names (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Output PEM file.
        #[arg(long)]
        out: PathBuf,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Write a PKCS#10 certificate signing request for an HSM key.
    Csr {
        /// Label of the HSM private key.
        #[arg(long)]
        key: String,
        /// DNS subject alternative names (repeatable).
        #[arg(long = "dns", required = true)]
        dns: Vec<String>,
        /// IP subject alternative names (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Output PEM file.
        #[arg(long)]
        out: PathBuf,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
}

fn parse_spec(s: &str) -> Result<KeySpec, String> {
    s.parse().map_err(|e: keyward_hsm::Error| e.to_string())
}

fn init_logging(level: &str, json: bool) {
    let mut filter = std::env::var("KEYWARD_LOG").unwrap_or_else(|_| level.to_owned());
    // rustls warns once per handshake about client mistakes (e.g. an IP address sent as SNI):
    // a log line per handshake on the hot path, and log spam any client can cause. Quiet it
    // unless the operator asks for rustls explicitly.
    if !filter.contains("rustls") {
        filter.push_str(",rustls=error");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let conn = cli.conn;
    let result = match cli.command {
        Command::Quickstart {
            data,
            listen,
            api_listen,
            admin_listen,
        } => {
            init_logging("info", false);
            runtime().and_then(|rt| {
                rt.block_on(quickstart(&data.data_dir, listen, api_listen, admin_listen))
            })
        }
        Command::Serve { config, accept } => serve(&config, accept.options()),
        Command::Init {
            data,
            admin,
            admin_password_file,
            api_dns,
            api_ip,
        } => {
            init_logging("warn", false);
            init(
                &data.data_dir,
                &admin,
                admin_password_file.as_deref(),
                &api_dns,
                &api_ip,
            )
        }
        Command::Hsm(HsmCommand::Serve {
            data,
            listen,
            client_ca,
            limits,
        }) => {
            init_logging("info", false);
            runtime().and_then(|rt| {
                rt.block_on(async {
                    let Signals { term, int, .. } = Signals::catch()?;
                    api_server::run_node(
                        &data.data_dir,
                        listen,
                        client_ca.as_deref(),
                        &limits,
                        shutdown_signal(term, int),
                    )
                    .await
                })
            })
        }
        Command::Key(KeyCommand::Remote(cmd)) => {
            init_logging("warn", false);
            remote::key(&conn, cmd)
        }
        Command::Key(KeyCommand::List { json, filter, .. }) if conn.is_remote() => {
            init_logging("warn", false);
            remote::key_list(&conn, &filter, json)
        }
        Command::Key(cmd) => {
            init_logging("warn", false);
            key_command(cmd)
        }
        Command::Login { json } => {
            init_logging("warn", false);
            remote::login(&conn, json)
        }
        Command::Recover(RecoverCommand::ResetPassword {
            data,
            name,
            password_file,
        }) => {
            init_logging("warn", false);
            (|| {
                let text = std::fs::read_to_string(&password_file)
                    .with_context(|| format!("cannot read {}", password_file.display()))?;
                let password =
                    keyward_hsm::Password::new(text.trim_end_matches(['\r', '\n']).to_owned());
                let (hsm, _writer) = data_dir::open_for_writing(
                    &data.data_dir,
                    keyward_hsm::OpenOptions::default(),
                )?;
                hsm.offline_reset_password(&name, &password)?;
                println!("reset the password of {name:?} and unlocked it");
                Ok(())
            })()
        }
        Command::Logout => {
            init_logging("warn", false);
            remote::logout(&conn)
        }
        Command::User(cmd) => {
            init_logging("warn", false);
            remote::user(&conn, cmd)
        }
        Command::Crypto(cmd) => {
            init_logging("warn", false);
            match remote::crypto(&conn, cmd) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Audit(cmd) => {
            init_logging("warn", false);
            remote::audit(&conn, cmd)
        }
        Command::Cert(cmd) => {
            init_logging("warn", false);
            cert_command(cmd)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The signals a long-running command handles, caught before it announces anything (call
/// `catch` inside the runtime, first thing): a SIGTERM, SIGINT or SIGHUP that arrives early is
/// handled, never the default action that would kill the process without a drain.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn catch() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let kind =
            |k: SignalKind, name: &str| signal(k).with_context(|| format!("cannot handle {name}"));
        Ok(Signals {
            hup: kind(SignalKind::hangup(), "SIGHUP")?,
            term: kind(SignalKind::terminate(), "SIGTERM")?,
            int: kind(SignalKind::interrupt(), "SIGINT")?,
        })
    }
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}

/// Binds the admin listener of `config` (if any) and logs its address.
async fn bind_admin(config: &keyward_config::Config) -> Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = config.admin.address else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (admin.address)"))?;
    Ok(Some(listener))
}

/// Serves `proxy` with its admin endpoints until SIGTERM/Ctrl-C, reloading `config_path` on
/// SIGHUP when given, then drains. `stopping` becomes true at SIGTERM (the HSM API drains at
/// the same time as the proxy).
async fn run_proxy(
    proxy: keyward_proxy::Proxy,
    admin: Option<tokio::net::TcpListener>,
    config_path: Option<&Path>,
    signals: Signals,
    stopping: tokio::sync::watch::Sender<bool>,
) -> Result<()> {
    let Signals { mut hup, term, int } = signals;
    let ready = keyward_proxy::admin::Readiness::default();
    // The sockets are bound and listening (connections queue in the backlog until the accept
    // loops below start), so the proxy is ready before the admin address is announced.
    ready.set(true);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(listener) = admin {
        tracing::info!(addr = %listener.local_addr()?, "serving admin endpoints (/metrics, /healthz, /readyz)");
        let mut rx = stop_rx.clone();
        tokio::spawn(keyward_proxy::admin::serve_admin(
            listener,
            ready.clone(),
            async move {
                let _ = rx.changed().await;
            },
        ));
    }
    let handle = proxy.handle();
    let path = config_path.map(Path::to_owned);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(path) = &path else {
                tracing::warn!("SIGHUP ignored: quickstart has no configuration file to reload");
                continue;
            };
            let result = match keyward_config::Config::load(path, std::env::vars()) {
                Ok(c) => handle.reload(&c).map_err(anyhow::Error::from),
                Err(e) => {
                    // `reload` counts its own failures; a file that does not load is one too.
                    keyward_proxy::metrics::metrics()
                        .config_reloads
                        .with_label_values(&["error"])
                        .inc();
                    Err(e.into())
                }
            };
            match result {
                Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                Err(e) => tracing::error!(
                    config = %path.display(),
                    error = %format!("{e:#}"),
                    "reload failed; the running configuration is kept"
                ),
            }
        }
    });
    let ready_on_stop = ready.clone();
    proxy
        .run(async move {
            shutdown_signal(term, int).await;
            ready_on_stop.set(false);
            let _ = stopping.send(true);
        })
        .await;
    let _ = stop_tx.send(true);
    Ok(())
}

fn serve(config_path: &Path, options: keyward_hsm::OpenOptions) -> Result<()> {
    let config = keyward_config::Config::load(config_path, std::env::vars())?;
    init_logging(
        &config.log.level,
        config.log.format == keyward_config::LogFormat::Json,
    );
    let rt = runtime()?;
    rt.block_on(async {
        let signals = Signals::catch()?;
        let api_listener = match &config.api {
            Some(api) => Some(api_server::bind(api.address).await?),
            None => None,
        };
        let admin = bind_admin(&config).await?;
        let (hsm, writer) =
            data_dir::open_for_serving(&config.hsm.data_dir, config.api.is_some(), options)?;
        if let Some(api) = &config.api {
            hsm.set_admin_lockout(std::time::Duration::from_secs(api.admin_lockout_s));
        }
        let role = match writer {
            Some(_) => keyward_proxy::NodeRole::Writer,
            None => keyward_proxy::NodeRole::Reader,
        };
        let hsm = std::sync::Arc::new(hsm);
        let session = hsm.service_session(PROXY_USER)?;
        let proxy = keyward_proxy::Proxy::build(&config, &hsm, &session, role)?;
        let api_tls = match &api_listener {
            Some(_) => Some(api_server::tls_config(
                &hsm,
                &session,
                &config.hsm.data_dir,
                None,
            )?),
            None => None,
        };
        // A reader node writes no audit records (the writer's chain is the store's).
        if writer.is_some() {
            hsm.record_unseal("serve")?;
        } else {
            tracing::info!("reader node unsealed (not recorded in the audit trail)");
        }
        for (addr, mode) in proxy
            .local_addrs()
            .into_iter()
            .zip(config.listeners.iter().map(|l| l.mode))
        {
            match mode {
                keyward_config::ListenerMode::Http => tracing::info!(%addr, "listening for HTTPS"),
                keyward_config::ListenerMode::Tcp => {
                    tracing::info!(%addr, "listening for HTTPS (TLS to TCP, layer 4)")
                }
                keyward_config::ListenerMode::Redirect => {
                    tracing::info!(%addr, "listening for HTTP (redirects to HTTPS)")
                }
            }
        }
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let mut api = None;
        if let (Some(listener), Some(tls), Some(a)) = (api_listener, api_tls, &config.api) {
            tracing::info!(addr = %listener.local_addr()?, "serving the HSM API");
            api = Some(tokio::spawn(api_server::serve(
                listener,
                tls,
                hsm.clone(),
                a.limits,
                std::time::Duration::from_millis(config.lifecycle.drain_timeout_ms),
                async move {
                    let _ = stop_rx.changed().await;
                },
            )));
        }
        run_proxy(proxy, admin, Some(config_path), signals, stop_tx).await?;
        if let Some(api) = api {
            // It drained beside the proxy, within the same deadline.
            let _ = api.await;
        }
        if writer.is_some() {
            hsm.record_seal("serve")?;
        } else {
            tracing::info!("reader node sealed (not recorded in the audit trail)");
        }
        drop(hsm);
        Ok(())
    })
}

fn init(
    dir: &Path,
    admin: &str,
    password_file: Option<&Path>,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<()> {
    if data_dir::store_path(dir).exists() {
        bail!("{} already holds an HSM store", dir.display());
    }
    let (password, generated) = match (password_file, std::env::var("KEYWARD_ADMIN_PASSWORD")) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            (text.trim_end_matches(['\r', '\n']).to_owned(), false)
        }
        (None, Ok(p)) => (p, false),
        (None, Err(_)) => {
            let mut raw = [0u8; 18];
            aws_lc_rs::rand::fill(&mut raw)
                .map_err(|_| anyhow::anyhow!("random generator failed"))?;
            use base64::Engine;
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
                true,
            )
        }
    };
    let password = keyward_hsm::Password::new(password);
    // Check inputs before anything is written.
    if password.expose().chars().count() < 8 {
        bail!("the admin password must be at least 8 characters");
    }
    let (hsm, _writer) = data_dir::open_or_create_for_writing(dir)?;
    let session = hsm.service_session(PROXY_USER)?;
    let (key, _) = generate_tls_key(&hsm, &session, KeySpec::EcP256, api_server::API_KEY_LABEL)?;
    let rc = certs::HsmRcgenKey::new(hsm.signer(&session, key.handle)?)?;
    let pem = certs::self_signed(&rc, dns, ips, 3650)?;
    std::fs::write(api_server::api_cert_path(dir), pem)?;
    hsm.bootstrap_admin(admin, &password)?;
    println!("initialized the HSM in {}", dir.display());
    println!(
        "API certificate (trust it with --ca-cert): {}",
        api_server::api_cert_path(dir).display()
    );
    if generated {
        println!(
            "admin {admin:?} password (shown once): {}",
            password.expose()
        );
    }
    Ok(())
}

fn find_private(hsm: &Hsm, session: &Session, label: &str) -> Result<KeyInfo> {
    Ok(hsm.find_by_label(session, label, KeyClass::Private)?)
}

/// Generates a TLS key pair: the private key signs and never leaves the HSM.
fn generate_tls_key(
    hsm: &Hsm,
    session: &Session,
    spec: KeySpec,
    label: &str,
) -> Result<(KeyInfo, KeyInfo)> {
    let private = KeyTemplate::labelled(label)
        .with(AttributeName::Sign, true)
        .with(AttributeName::Extractable, false);
    let public = KeyTemplate::labelled(label).with(AttributeName::Verify, true);
    Ok(hsm.generate_key_pair(session, spec, &private, &public)?)
}

async fn quickstart(
    dir: &Path,
    listen: SocketAddr,
    api_listen: SocketAddr,
    admin_listen: SocketAddr,
) -> Result<()> {
    const LABEL: &str = "quickstart";
    let signals = Signals::catch()?;
    let api_listener = api_server::bind(api_listen).await?;
    let (hsm, _writer) = data_dir::open_or_create_for_writing(dir)?;
    let hsm = std::sync::Arc::new(hsm);
    let session = hsm.service_session(PROXY_USER)?;
    quickstart_api_setup(&hsm, &session, dir)?;
    let key = match hsm.find_by_label(&session, LABEL, KeyClass::Private) {
        Ok(k) => k,
        Err(keyward_hsm::Error::LabelNotFound { .. }) => {
            let (private, _) = generate_tls_key(&hsm, &session, KeySpec::EcP256, LABEL)?;
            tracing::info!(handle = %private.handle, "generated P-256 key \"quickstart\" in the HSM");
            private
        }
        Err(e) => return Err(e.into()),
    };
    let signer = hsm.signer(&session, key.handle)?;
    let cert_path = dir.join("quickstart.crt");
    let reuse = std::fs::read(&cert_path)
        .ok()
        .and_then(|pem| cert_spki(&pem))
        .is_some_and(|spki| spki == signer.spki_der());
    if !reuse {
        let rc = certs::HsmRcgenKey::new(signer.clone())?;
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse()?, "::1".parse()?];
        let pem = certs::self_signed(&rc, &["localhost".to_owned()], &ips, 365)?;
        std::fs::write(&cert_path, pem)
            .with_context(|| format!("cannot write {}", cert_path.display()))?;
    }
    let upstream = demo_upstream::start()
        .await
        .context("cannot start the demo upstream")?;
    let config_path = dir.join("quickstart.toml");
    std::fs::write(
        &config_path,
        format!(
            "# Written by `keyward quickstart` on every start; the upstream is the demo server's port.\n\
             [hsm]\ndata_dir = \".\"\n\n\
             [[listeners]]\naddress = \"{listen}\"\n\n\
             [[listeners.certificates]]\nkey_label = \"{LABEL}\"\nchain_file = \"quickstart.crt\"\n\n\
             [upstream]\nurl = \"http://{upstream}\"\n\n\
             [admin]\naddress = \"{admin_listen}\"\n"
        ),
    )?;
    let config = keyward_config::Config::load(&config_path, std::iter::empty())?;
    let admin = bind_admin(&config).await?;
    let proxy =
        keyward_proxy::Proxy::build(&config, &hsm, &session, keyward_proxy::NodeRole::Writer)?;
    hsm.record_unseal("quickstart")?;
    let addr = proxy
        .local_addrs()
        .first()
        .copied()
        .context("no listener")?;
    let host = if addr.ip().is_loopback() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    println!(
        "Keyward is serving https://{host}:{port}/ with HSM key \"{LABEL}\" (ec-p256, handle {handle}); try: curl --cacert {cert} https://{host}:{port}/",
        port = addr.port(),
        handle = key.handle,
        cert = shell_quote(&cert_path.display().to_string()),
    );
    let api_tls = api_server::tls_config(&hsm, &session, dir, None)?;
    tracing::info!(
        addr = %api_listener.local_addr()?,
        ca = %api_server::api_cert_path(dir).display(),
        admin_password_file = %dir.join(ADMIN_PASSWORD_FILE).display(),
        "serving the HSM API (user admin)"
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(api_server::serve(
        api_listener,
        api_tls,
        hsm.clone(),
        keyward_config::ApiLimits::default(),
        std::time::Duration::from_millis(config.lifecycle.drain_timeout_ms),
        async move {
            let _ = stop_rx.changed().await;
        },
    ));
    run_proxy(proxy, admin, None, signals, stop_tx).await?;
    let _ = api.await;
    hsm.record_seal("quickstart")?;
    Ok(())
}

/// File (mode 0600) where the quickstart keeps the generated password of its admin.
const ADMIN_PASSWORD_FILE: &str = "admin.password";

/// What `keyward init` does, for the quickstart: the API's TLS key and certificate, and an
/// admin whose generated password goes to `DIR/admin.password` (mode 0600). Idempotent.
fn quickstart_api_setup(hsm: &Hsm, session: &Session, dir: &Path) -> Result<()> {
    if hsm
        .find_by_label(session, api_server::API_KEY_LABEL, KeyClass::Private)
        .is_err()
    {
        let (key, _) = generate_tls_key(hsm, session, KeySpec::EcP256, api_server::API_KEY_LABEL)?;
        let rc = certs::HsmRcgenKey::new(hsm.signer(session, key.handle)?)?;
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse()?, "::1".parse()?];
        let pem = certs::self_signed(&rc, &["localhost".to_owned()], &ips, 3650)?;
        std::fs::write(api_server::api_cert_path(dir), pem)?;
    }
    if !hsm.has_admin() {
        let mut raw = [0u8; 18];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("random generator failed"))?;
        use base64::Engine;
        let password = keyward_hsm::Password::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        );
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(ADMIN_PASSWORD_FILE);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(password.expose().as_bytes())?;
        hsm.bootstrap_admin("admin", &password)?;
    }
    Ok(())
}

/// Whether two paths name the same existing folder (an empty parent means ".").
fn same_dir(a: &Path, b: &Path) -> bool {
    let a = if a.as_os_str().is_empty() {
        Path::new(".")
    } else {
        a
    };
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Quotes a path for a POSIX shell when it has anything but safe characters.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn cert_spki(pem: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let block = x509_parser::pem::parse_x509_pem(pem).ok()?.1;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&block.contents).ok()?;
    Some(cert.tbs_certificate.subject_pki.raw.to_vec())
}

fn key_command(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate {
            spec,
            label,
            json,
            data,
        } => {
            // Refuse bad input before anything is created on disk.
            keyward_hsm::Attributes::check_label(&label)?;
            let (hsm, _writer) = data_dir::open_or_create_for_writing(&data.data_dir)?;
            let session = hsm.service_session(PROXY_USER)?;
            let (private, public) = generate_tls_key(&hsm, &session, spec, &label)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "private": private, "public": public })
                    )?
                );
            } else {
                println!(
                    "generated {spec} key pair {:?}: private key handle {}, public key handle {}",
                    private.attributes.label, private.handle, public.handle
                );
            }
        }
        KeyCommand::Remote(_) => unreachable!("dispatched to remote"),
        KeyCommand::List { json, filter, data } => {
            if !filter.is_empty() {
                bail!("--filter needs --server (the local key list shows every key)");
            }
            let hsm = data_dir::open_to_read(&data.data_dir)?;
            let session = hsm.service_session(PROXY_USER)?;
            let mut keys = Vec::new();
            let mut after = None;
            loop {
                let page = hsm.list_keys(
                    &session,
                    &KeyFilter::default(),
                    after,
                    keyward_hsm::MAX_PAGE_SIZE,
                )?;
                keys.extend(page.keys);
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                table::print(
                    &["HANDLE", "CLASS", "TYPE", "LINKED", "ATTRIBUTES", "LABEL"],
                    keys.iter().map(|k| {
                        let a = &k.attributes;
                        let flags: Vec<&str> = [
                            (a.sign, "sign"),
                            (a.verify, "verify"),
                            (a.extractable, "extractable"),
                        ]
                        .into_iter()
                        .filter_map(|(on, name)| on.then_some(name))
                        .collect();
                        [
                            k.handle.to_string(),
                            k.class.to_string(),
                            k.spec.to_string(),
                            k.linked_handle.map(|h| h.to_string()).unwrap_or_default(),
                            flags.join(","),
                            a.label.clone(),
                        ]
                    }),
                );
            }
        }
    }
    Ok(())
}

fn cert_command(cmd: CertCommand) -> Result<()> {
    let (key, dns, ip, out, force, data, days, csr) = match cmd {
        CertCommand::SelfSigned {
            key,
            dns,
            ip,
            days,
            out,
            force,
            data,
        } => (key, dns, ip, out, force, data, days, false),
        CertCommand::Csr {
            key,
            dns,
            ip,
            out,
            force,
            data,
        } => (key, dns, ip, out, force, data, 0, true),
    };
    if out.exists() && !force {
        bail!("{} exists; pass --force to replace it", out.display());
    }
    let reserved = [data_dir::STORE_FILE, data_dir::MASTER_KEY_FILE];
    if out.parent().is_some_and(|p| same_dir(p, &data.data_dir))
        && out
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| reserved.iter().any(|r| n.starts_with(r)))
    {
        bail!("{} is one of the HSM's own files", out.display());
    }
    if !csr && days == 0 {
        bail!("--days must be at least 1");
    }
    let hsm = data_dir::open_to_read(&data.data_dir)?;
    let session = hsm.service_session(PROXY_USER)?;
    let info = find_private(&hsm, &session, &key)?;
    let rc = certs::HsmRcgenKey::new(hsm.signer(&session, info.handle)?)?;
    let pem = if csr {
        certs::csr(&rc, &dns, &ip)?
    } else {
        certs::self_signed(&rc, &dns, &ip, days)?
    };
    std::fs::write(&out, pem).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
