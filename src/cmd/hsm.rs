//! `keyward hsm serve`: an HSM-only node, serving the REST API over TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use keyward_config::HsmConfig;

use super::{shutdown_signal, Signals};
use crate::cli::LimitArgs;
use crate::data_dir;

/// Runs `keyward hsm serve` until SIGTERM or Ctrl-C.
pub(crate) fn run(
    store: &HsmConfig,
    listen: SocketAddr,
    client_ca: Option<&Path>,
    limits: &LimitArgs,
) -> Result<()> {
    super::server_runtime(None)?.block_on(async {
        let Signals { term, int, .. } = Signals::catch()?;
        run_node(store, listen, client_ca, limits, shutdown_signal(term, int)).await
    })
}

/// Opens `dir` as its writer, serves the API on `listen` until `shutdown`, drains, and
/// records the unseal and the seal in the audit trail.
async fn run_node(
    store: &HsmConfig,
    listen: SocketAddr,
    client_ca: Option<&Path>,
    limits: &LimitArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listener = super::bind(listen).await?;
    let dir = store.data_dir.as_path();
    let (hsm, _writer) = data_dir::open_for_writing(store, limits.accept.options())?;
    hsm.set_admin_lockout(Duration::from_secs(limits.admin_lockout_s));
    let hsm = Arc::new(hsm);
    let me = crate::catch_up::NodeName::new(listener.local_addr()?, "hsm serve");
    crate::catch_up::follow(&hsm, &me)?;
    let session = hsm.service_session(keyward_hsm::PROXY_USER)?;
    let tls = keyward_server::tls::tls_config(&hsm, &session, dir, client_ca)?;
    hsm.record_unseal("hsm serve")?;
    tracing::info!(addr = %listener.local_addr()?, "serving the HSM API");
    keyward_server::listener::serve(
        listener,
        tls,
        hsm.clone(),
        limits.limits(),
        limits.drain_timeout(),
        shutdown,
    )
    .await;
    hsm.record_seal("hsm serve")?;
    crate::catch_up::leave(&hsm, &me);
    Ok(())
}
