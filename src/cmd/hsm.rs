//! `keyward hsm serve`: an HSM-only node, serving the REST API over TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use keyward_config::HsmConfig;

use super::{shutdown_signal, Signals};
use crate::cli::LimitArgs;

/// Runs `keyward hsm serve` until SIGTERM or Ctrl-C.
pub(crate) fn run(
    store: &HsmConfig,
    listen: SocketAddr,
    client_ca: Option<&Path>,
    limits: &LimitArgs,
    backup: Option<keyward_config::BackupConfig>,
) -> Result<()> {
    super::server_runtime(None)?.block_on(async {
        let Signals { term, int, .. } = Signals::catch()?;
        run_node(
            store,
            listen,
            client_ca,
            limits,
            backup,
            shutdown_signal(term, int),
        )
        .await
    })
}

/// Opens `dir` as its writer (sealed, when operators unseal it), serves the API on `listen`
/// until `shutdown`, drains, and records the unseal and the seal in the audit trail.
async fn run_node(
    store: &HsmConfig,
    listen: SocketAddr,
    client_ca: Option<&Path>,
    limits: &LimitArgs,
    backup: Option<keyward_config::BackupConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    const NODE: &str = "hsm serve";
    let listener = super::bind(listen).await?;
    let dir = store.data_dir.as_path();
    let (gate, _writer) = crate::seal::serving_gate(store, limits.accept.options(), NODE, || {
        crate::data_dir::in_use(store)
    })?;
    let me = crate::catch_up::NodeName::new(listener.local_addr()?, NODE);
    let lockout = Duration::from_secs(limits.admin_lockout_s);
    let follower = crate::catch_up::follow_gate(&gate, me.clone(), move |hsm| {
        hsm.set_admin_lockout(lockout);
    });
    let rotation = crate::rotation::run(&gate);
    let crls = crate::crl_schedule::run(&gate);
    let schedule = backup
        .map(|b| crate::backup::schedule(&gate, b, me.node.clone()))
        .transpose()?;
    let tls = keyward_server::tls::tls_config(&gate, dir, client_ca)?;
    tracing::info!(addr = %listener.local_addr()?, "serving the HSM API");
    keyward_server::listener::serve(
        listener,
        tls,
        gate.clone(),
        limits.limits(),
        limits.drain_timeout(),
        shutdown,
    )
    .await;
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
