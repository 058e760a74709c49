//! Certificates `keyward serve` renews from an issuing CA in its own HSM
//! (`[[listeners.certificates]] renew_ca`): at start and every hour, each certificate with
//! fewer than `renew_before_days` left is re-issued for the same key and names
//! (`keyward_server::ca::issue_for_proxy_key`), its chain file replaced atomically, and the
//! configuration reloaded as SIGHUP does, so the new certificate is served without a restart.
//! A failure is logged and tried again after five minutes; the old certificate stays served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyward_hsm::Hsm;

/// How often certificates are checked.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// How soon a failed renewal is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// Whether any certificate of `config` is renewed from a CA.
pub(crate) fn configured(config: &keyward_config::Config) -> bool {
    config
        .listeners
        .iter()
        .flat_map(|l| &l.certificates)
        .any(|c| c.renew_ca.is_some())
}

/// Starts the renewal task of a proxy with the HSM `hsm`, configured by `config_path` (read
/// again at each check, so a reload's changes count), reloading through `handle`. Abort the
/// task when the proxy stops.
pub(crate) fn spawn(
    hsm: Arc<Hsm>,
    config_path: PathBuf,
    handle: keyward_proxy::ProxyHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = match check(&hsm, &config_path, &handle).await {
                true => CHECK_EVERY,
                false => RETRY_AFTER,
            };
            tokio::time::sleep(wait).await;
        }
    })
}

/// One pass over the configured certificates; false when one renewal failed.
async fn check(hsm: &Arc<Hsm>, config_path: &Path, handle: &keyward_proxy::ProxyHandle) -> bool {
    let config = match keyward_config::Config::load(config_path, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(config = %config_path.display(), error = %e, "certificate renewal: the configuration does not load");
            return false;
        }
    };
    let mut all_ok = true;
    let mut renewed = false;
    for cert in config.listeners.iter().flat_map(|l| &l.certificates) {
        let Some(ca) = cert.renew_ca.clone() else {
            continue;
        };
        let hsm = hsm.clone();
        let chain_file = cert.chain_file.clone();
        let label = cert.key_label.clone();
        let before = cert.renew_before_days;
        let done =
            tokio::task::spawn_blocking(move || renew_one(&hsm, &ca, &label, &chain_file, before))
                .await
                .map_err(|_| anyhow::anyhow!("renewal task failed"))
                .and_then(|r| r);
        match done {
            Ok(None) => {}
            Ok(Some((serial, not_after))) => {
                renewed = true;
                tracing::info!(chain_file = %cert.chain_file.display(), serial, not_after, "certificate renewed");
            }
            Err(e) => {
                all_ok = false;
                tracing::warn!(chain_file = %cert.chain_file.display(), error = %format!("{e:#}"), "certificate renewal failed; the current certificate stays served");
            }
        }
    }
    if renewed {
        crate::cmd::serve::reload(config_path, handle);
    }
    all_ok
}

/// Renews one certificate when due: `Some((serial, not_after))` when it did.
fn renew_one(
    hsm: &Hsm,
    ca: &str,
    label: &str,
    chain_file: &Path,
    before_days: u32,
) -> anyhow::Result<Option<(String, String)>> {
    use anyhow::Context;
    let current = std::fs::read(chain_file)
        .with_context(|| format!("cannot read {}", chain_file.display()))?;
    let Some((dns, ips)) = keyward_server::ca::renewal_due(&current, before_days)? else {
        return Ok(None);
    };
    let (record, pem) = keyward_server::ca::issue_for_proxy_key(hsm, ca, label, &dns, &ips, None)?;
    crate::cmd::cert_issue::write_certificate(chain_file, &pem)?;
    Ok(Some((record.serial, record.not_after_unix_s.to_string())))
}
