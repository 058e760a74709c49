//! `keyward quickstart`: an HTTPS proxy with an HSM-held key in front of the built-in demo
//! upstream, with the HSM API and the admin endpoints beside it. Everything it needs (store,
//! key, certificates, an admin whose password goes to `DATA_DIR/admin.password`) is made on
//! the first start and reused after.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result};
use keyward_hsm::{Hsm, KeyClass, KeyInfo, KeySigner, KeySpec, Session, PROXY_USER};
use keyward_server::pki;
use keyward_server::tls::{api_cert_path, provision_api_certificate, API_KEY_LABEL};

use super::serve::{bind_admin, run_proxy};
use super::Signals;
use crate::{data_dir, demo_upstream};

/// Runs `keyward quickstart` until SIGTERM or Ctrl-C.
pub(crate) async fn run(
    data: &crate::cli::DataDirArg,
    listen: SocketAddr,
    api_listen: SocketAddr,
    admin_listen: SocketAddr,
) -> Result<()> {
    const LABEL: &str = "quickstart";
    let signals = Signals::catch()?;
    let api_listener = super::bind(api_listen).await?;
    if data.store.is_some() {
        anyhow::bail!(
            "the quickstart runs on the embedded store in its data directory; for a PostgreSQL store, run `keyward serve` with [hsm] store"
        );
    }
    let dir = data.data_dir.as_path();
    let (hsm, _writer) = data_dir::open_or_create_for_writing(&data.hsm())?;
    let hsm = std::sync::Arc::new(hsm);
    let session = hsm.service_session(PROXY_USER)?;
    quickstart_api_setup(&hsm, &session, dir)?;
    let key = proxy_key(&hsm, &session, LABEL)?;
    let signer = hsm.signer(&session, key.handle)?;
    let cert_path = dir.join("quickstart.crt");
    write_certificate_unless_current(&signer, &cert_path)?;
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
    let opener = crate::seal::opener(&data.hsm(), keyward_hsm::OpenOptions::default())?;
    let gate = keyward_server::SealGate::unsealed(hsm.clone(), opener, "quickstart")?;
    drop(signer);
    drop(hsm);
    let api_tls = keyward_server::tls::tls_config(&gate, dir, None)?;
    tracing::info!(
        addr = %api_listener.local_addr()?,
        ca = %api_cert_path(dir).display(),
        admin_password_file = %dir.join(ADMIN_PASSWORD_FILE).display(),
        "serving the HSM API (user admin)"
    );
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(keyward_server::listener::serve(
        api_listener,
        api_tls,
        gate.clone(),
        keyward_config::ApiLimits::default(),
        std::time::Duration::from_millis(config.lifecycle.drain_timeout_ms),
        async move {
            let _ = stop_rx.changed().await;
        },
    ));
    // `operator seal` stops the quickstart (its proxy holds keys of the HSM).
    let mut events = gate.subscribe();
    let sealed = async move {
        let _ = events.wait_for(|h| h.is_none()).await;
        tracing::info!("sealed: the quickstart stops (start it again to unseal)");
    };
    run_proxy(proxy, admin, None, signals, stop_tx, sealed).await?;
    let _ = api.await;
    crate::seal::record_stop(&gate, "quickstart")?;
    Ok(())
}

/// File (mode 0600) where the quickstart keeps the generated password of its admin.
const ADMIN_PASSWORD_FILE: &str = "admin.password";

/// What `keyward init` does, for the quickstart: the API's TLS key and certificate, and an
/// admin whose generated password goes to `DIR/admin.password` (mode 0600). Idempotent.
fn quickstart_api_setup(hsm: &Hsm, session: &Session, dir: &Path) -> Result<()> {
    if hsm
        .find_by_label(session, API_KEY_LABEL, KeyClass::Private)
        .is_err()
    {
        provision_api_certificate(
            hsm,
            session,
            dir,
            &localhost_dns(),
            &localhost_ips(),
            super::init::API_CERT_DAYS,
        )?;
    }
    if !hsm.has_admin() {
        let password = super::init::generate_password(hsm, session)?;
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

/// The names of the quickstart's certificates: `localhost`, 127.0.0.1 and ::1.
fn localhost_dns() -> [String; 1] {
    ["localhost".to_owned()]
}

fn localhost_ips() -> [IpAddr; 2] {
    [
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ]
}

/// The proxy's private key labelled `label`, generated (P-256) when there is none.
fn proxy_key(hsm: &Hsm, session: &Session, label: &str) -> Result<KeyInfo> {
    match hsm.find_by_label(session, label, KeyClass::Private) {
        Ok(k) => Ok(k),
        Err(keyward_hsm::Error::LabelNotFound { .. }) => {
            let (private, _) = pki::generate_tls_key(hsm, session, KeySpec::EcP256, label)?;
            tracing::info!(handle = %private.handle, "generated P-256 key \"quickstart\" in the HSM");
            Ok(private)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes a new self-signed certificate for `signer` to `path` (valid 365 days) unless the
/// one there already certifies its key.
fn write_certificate_unless_current(signer: &KeySigner, path: &Path) -> Result<()> {
    let current = std::fs::read(path)
        .ok()
        .and_then(|pem| pki::certificate_spki(&pem))
        .is_some_and(|spki| spki == signer.spki_der());
    if current {
        return Ok(());
    }
    let key = pki::HsmCertKey::new(signer.clone())?;
    let pem = pki::self_signed(&key, &localhost_dns(), &localhost_ips(), 365)?;
    std::fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))
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
