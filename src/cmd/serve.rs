//! `keyward serve`: the proxy from a configuration file, with its admin endpoints and, with
//! `[api]`, the HSM API beside it; SIGHUP reloads the file, SIGTERM drains and exits. Also
//! the proxy loop the quickstart runs.

use std::path::Path;

use anyhow::{Context, Result};
use keyward_hsm::PROXY_USER;

use super::{shutdown_signal, Signals};
use crate::data_dir;

/// Binds the admin listener of `config` (if any) and logs its address.
pub(crate) async fn bind_admin(
    config: &keyward_config::Config,
) -> Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = config.admin.address else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (admin.address)"))?;
    Ok(Some(listener))
}

/// Serves `proxy` with its admin endpoints until SIGTERM/Ctrl-C (or `also_stop`), reloading `config_path` on
/// SIGHUP when given, then drains. `stopping` becomes true at SIGTERM (the HSM API drains at
/// the same time as the proxy).
pub(crate) async fn run_proxy(
    proxy: keyward_proxy::Proxy,
    admin: Option<tokio::net::TcpListener>,
    config_path: Option<&Path>,
    signals: Signals,
    stopping: tokio::sync::watch::Sender<bool>,
    also_stop: impl std::future::Future<Output = ()>,
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
            reload(path, &handle);
        }
    });
    let ready_on_stop = ready.clone();
    proxy
        .run(async move {
            tokio::select! {
                () = shutdown_signal(term, int) => {}
                () = also_stop => {}
            }
            ready_on_stop.set(false);
            let _ = stopping.send(true);
        })
        .await;
    let _ = stop_tx.send(true);
    Ok(())
}

/// Re-reads the configuration file `path` and applies it to the running proxy (SIGHUP);
/// a failure is logged and counted, and the running configuration is kept.
pub(crate) fn reload(path: &Path, handle: &keyward_proxy::ProxyHandle) {
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

/// Logs the address and mode of each listener of `proxy`.
pub(crate) fn log_listeners(proxy: &keyward_proxy::Proxy, config: &keyward_config::Config) {
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
}

/// Runs `keyward serve` with the configuration file `config_path`; `worker_threads` (the
/// command line's) overrides `[runtime] worker_threads`, 0 meaning one per CPU.
pub(crate) fn run(
    config_path: &Path,
    worker_threads: Option<u16>,
    options: keyward_hsm::OpenOptions,
) -> Result<()> {
    let config = keyward_config::Config::load(config_path, std::env::vars())?;
    crate::logging::init(
        &config.log.level,
        config.log.format == keyward_config::LogFormat::Json,
    );
    let workers = match worker_threads {
        Some(n) => std::num::NonZeroUsize::new(usize::from(n)),
        None => config.runtime.worker_threads,
    };
    let parked = config
        .hsm
        .remote
        .as_ref()
        .map_or(0, |r| r.max_in_flight_signs);
    let rt = super::server_runtime_with(workers, parked)?;
    rt.block_on(async {
        let signals = Signals::catch()?;
        let api_listener = match &config.api {
            Some(api) => Some(super::bind(api.address).await?),
            None => None,
        };
        let admin = bind_admin(&config).await?;
        if let Some(listener) = api_listener {
            return super::serve_api::run(&config, config_path, options, listener, admin, signals)
                .await;
        }
        if let Some(remote) = &config.hsm.remote {
            return run_remote(&config, config_path, remote, admin, signals).await;
        }
        let (hsm, writer) = data_dir::open_for_serving(&config.hsm, false, options)?;
        let role = match writer {
            Some(_) => keyward_proxy::NodeRole::Writer,
            None => keyward_proxy::NodeRole::Reader,
        };
        let hsm = std::sync::Arc::new(hsm);
        let session = hsm.service_session(PROXY_USER)?;
        let proxy = keyward_proxy::Proxy::build(&config, &hsm, &session, role)?;
        let me = crate::catch_up::NodeName::new(
            proxy
                .local_addrs()
                .first()
                .copied()
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            "serve",
        );
        crate::catch_up::follow(&hsm, &me)?;
        // A reader node writes no audit records (the writer's chain is the store's).
        if writer.is_some() {
            hsm.record_unseal("serve")?;
        } else {
            tracing::info!("reader node unsealed (not recorded in the audit trail)");
        }
        // Logged once serving is certain (a refused start prints its one error line only).
        tracing::info!(
            worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
            configured = workers.is_some(),
            "runtime started"
        );
        log_listeners(&proxy, &config);
        // Renewal writes the CA's register: the writer node's work.
        let renewal = writer.is_some().then(|| {
            let issuer = crate::renew::Issuer::Local(hsm.clone());
            crate::renew::spawn(issuer, config_path.to_owned(), proxy.handle())
        });
        let (stop_tx, _) = tokio::sync::watch::channel(false);
        run_proxy(
            proxy,
            admin,
            Some(config_path),
            signals,
            stop_tx,
            std::future::pending(),
        )
        .await?;
        if let Some(r) = renewal {
            r.abort();
        }
        if writer.is_some() {
            hsm.record_seal("serve")?;
        } else {
            tracing::info!("reader node sealed (not recorded in the audit trail)");
        }
        crate::catch_up::leave(&hsm, &me);
        drop(hsm);
        Ok(())
    })
}

/// `keyward serve` with `[hsm] mode = "remote"`: no store, no key; every full handshake's
/// signature comes from the HSM nodes (`keyward_proxy::remote`).
async fn run_remote(
    config: &keyward_config::Config,
    config_path: &Path,
    remote: &keyward_config::RemoteHsm,
    admin: Option<tokio::net::TcpListener>,
    signals: Signals,
) -> Result<()> {
    let nodes = crate::remote::ClientHsm::connect(remote).await?;
    let issuer = crate::renew::Issuer::Remote(nodes.clone());
    let remote = keyward_proxy::remote::Remote::new(
        nodes,
        remote.max_in_flight_signs,
        std::time::Duration::from_millis(remote.sign_timeout_ms),
    );
    let proxy = keyward_proxy::Proxy::build_with(config, keyward_proxy::Keys::Remote(remote))?;
    tracing::info!(
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "runtime started"
    );
    log_listeners(&proxy, config);
    let renewal = crate::renew::spawn(issuer, config_path.to_owned(), proxy.handle());
    let (stop_tx, _) = tokio::sync::watch::channel(false);
    let result = run_proxy(
        proxy,
        admin,
        Some(config_path),
        signals,
        stop_tx,
        std::future::pending(),
    )
    .await;
    renewal.abort();
    result
}
