//! `keyward serve` with `[api]`: the HSM API from the start, sealed or not; the proxy while
//! the HSM is unsealed. A node sealed by a passphrase or shares starts with its API only
//! (`503 sealed`, `/readyz` not ready, no TLS listener of the proxy bound); each unseal
//! builds the proxy (binding its listeners), each seal stops it (its listeners close, the
//! connections drain) and drops every key.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use keyward_hsm::PROXY_USER;
use tokio::sync::watch;

use super::{shutdown_signal, Signals};

const NODE: &str = "serve";

/// Runs the node until SIGTERM or SIGINT; `api_listener` is bound to `[api] address`.
pub(crate) async fn run(
    config: &keyward_config::Config,
    config_path: &Path,
    options: keyward_hsm::OpenOptions,
    api_listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    signals: Signals,
) -> Result<()> {
    let Some(api) = &config.api else {
        anyhow::bail!("[api] is not configured");
    };
    let Signals { mut hup, term, int } = signals;
    let (gate, _writer) = crate::seal::serving_gate(&config.hsm, options, NODE, || {
        anyhow::anyhow!(
            "the store {} is in use by another keyward process, so this one can only be a reader node, which cannot serve the HSM API ([api] writes to the store): remove [api] from this node's configuration, or serve the API from the writer",
            crate::data_dir::store_name(&config.hsm)
        )
    })?;
    let me = crate::catch_up::NodeName::new(api_listener.local_addr()?, NODE);
    let lockout = Duration::from_secs(api.admin_lockout_s);
    let follower = crate::catch_up::follow_gate(&gate, me.clone(), move |hsm| {
        hsm.set_admin_lockout(lockout);
    });
    let rotation = crate::rotation::run(&gate);
    let crls = crate::crl_schedule::run(&gate);
    let schedule = config
        .backup
        .clone()
        .map(|b| crate::backup::schedule(&gate, b, me.node.clone()))
        .transpose()?;
    let tls = keyward_server::tls::tls_config(&gate, &config.hsm.data_dir, None)?;
    tracing::info!(
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "runtime started"
    );

    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal(term, int).await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tracing::info!(addr = %api_listener.local_addr()?, "serving the HSM API");
    let api_task = tokio::spawn(keyward_server::listener::serve(
        api_listener,
        tls,
        gate.clone(),
        api.limits,
        Duration::from_millis(config.lifecycle.drain_timeout_ms),
        stopped(stop.clone()),
    ));
    let ready = keyward_proxy::admin::Readiness::default();
    if let Some(listener) = admin {
        tracing::info!(addr = %listener.local_addr()?, "serving admin endpoints (/metrics, /healthz, /readyz)");
        tokio::spawn(keyward_proxy::admin::serve_admin(
            listener,
            ready.clone(),
            stopped(stop.clone()),
        ));
    }
    // SIGHUP reloads the proxy that runs now.
    let (handle_tx, handle_rx) = watch::channel::<Option<keyward_proxy::ProxyHandle>>(None);
    let path = config_path.to_owned();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(handle) = handle_rx.borrow().clone() else {
                tracing::warn!("SIGHUP ignored: the node is sealed (no proxy runs)");
                continue;
            };
            super::serve::reload(&path, &handle);
        }
    });

    let mut events = gate.subscribe();
    loop {
        let mut stop_rx = stop.clone();
        let hsm = tokio::select! {
            h = events.wait_for(|h| h.is_some()) => h.ok().and_then(|h| h.clone()),
            _ = stop_rx.wait_for(|s| *s) => None,
        };
        let Some(hsm) = hsm else { break };
        let session = hsm.service_session(PROXY_USER)?;
        let proxy =
            keyward_proxy::Proxy::build(config, &hsm, &session, keyward_proxy::NodeRole::Writer)?;
        // Aborted when the proxy stops, so a seal drops the HSM with the proxy.
        let renewal = crate::renew::spawn(
            crate::renew::Issuer::Local(hsm.clone()),
            config_path.to_owned(),
            proxy.handle(),
        );
        drop(hsm);
        super::serve::log_listeners(&proxy, config);
        handle_tx.send_replace(Some(proxy.handle()));
        ready.set(true);
        let mut sealed = gate.subscribe();
        let mut stop_rx = stop.clone();
        let ready_on_stop = ready.clone();
        proxy
            .run(async move {
                tokio::select! {
                    _ = sealed.wait_for(|h| h.is_none()) => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
                ready_on_stop.set(false);
            })
            .await;
        handle_tx.send_replace(None);
        renewal.abort();
        if *stop.borrow() {
            break;
        }
        tracing::info!("sealed: the proxy stopped; it starts again when the node is unsealed");
    }
    // The API drained beside the proxy, within the same deadline.
    let _ = api_task.await;
    follower.abort();
    rotation.abort();
    crls.abort();
    if let Some(s) = schedule {
        s.abort();
    }
    crate::seal::record_stop(&gate, NODE)?;
    if let Some(hsm) = gate.hsm() {
        crate::catch_up::leave(&hsm, &me);
    }
    Ok(())
}
