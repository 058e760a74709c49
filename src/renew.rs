//! Certificates `keyward serve` renews from an issuing CA (`[[listeners.certificates]]
//! renew_ca`): at start, every hour and at each SIGHUP, each certificate with fewer than `renew_before_days`
//! left is re-issued for the same key and names, its chain file replaced atomically, and the
//! configuration reloaded as SIGHUP does, so the new certificate is served without a restart.
//! With a local HSM the CA is in it (`keyward_server::ca::issue_for_proxy_key`); in remote
//! mode the proxy's crypto-user asks the nodes (`POST /v1/ca/{name}/issue` for its key), so it
//! must be allowed to sign with the CA's key (own it, or have it shared). A failure is logged
//! and tried again after five minutes; the old certificate stays served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyward_hsm::Hsm;

/// How often certificates are checked.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// How soon a failed renewal is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// Where new certificates come from.
pub(crate) enum Issuer {
    /// The CA in the node's own HSM.
    Local(Arc<Hsm>),
    /// The CA on the remote-mode proxy's HSM nodes.
    Remote(Arc<crate::remote::ClientHsm>),
}

/// Starts the renewal task of a proxy, configured by `config_path` (read again at each
/// check, so a reload's changes count), reloading through `handle`. Abort the task when the
/// proxy stops.
pub(crate) fn spawn(
    issuer: Issuer,
    config_path: PathBuf,
    handle: keyward_proxy::ProxyHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A SIGHUP (a reload) also starts a check: a certificate given `renew_ca` by the
        // reload is looked at now, not within the hour.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let wait = match check(&issuer, &config_path, &handle).await {
                true => CHECK_EVERY,
                false => RETRY_AFTER,
            };
            match hup.as_mut() {
                Some(h) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = h.recv() => {}
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    })
}

/// One pass over the configured certificates; false when one renewal failed.
async fn check(issuer: &Issuer, config_path: &Path, handle: &keyward_proxy::ProxyHandle) -> bool {
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
        let Some(ca) = &cert.renew_ca else {
            continue;
        };
        match renew_one(
            issuer,
            ca,
            &cert.key_label,
            &cert.chain_file,
            cert.renew_before_days,
        )
        .await
        {
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
async fn renew_one(
    issuer: &Issuer,
    ca: &str,
    label: &str,
    chain_file: &Path,
    before_days: u32,
) -> anyhow::Result<Option<(String, String)>> {
    let current = std::fs::read(chain_file)
        .with_context(|| format!("cannot read {}", chain_file.display()))?;
    let Some((dns, ips)) = keyward_server::ca::renewal_due(&current, before_days)? else {
        return Ok(None);
    };
    let (serial, not_after, pem) = match issuer {
        Issuer::Local(hsm) => {
            let (hsm, ca, label) = (hsm.clone(), ca.to_owned(), label.to_owned());
            tokio::task::spawn_blocking(move || {
                keyward_server::ca::issue_for_proxy_key(&hsm, &ca, &label, &dns, &ips, None)
            })
            .await
            .context("renewal task failed")?
            .map(|(r, pem)| {
                let not_after = crate::cmd::cert_issue::rfc3339(r.not_after_unix_s);
                (r.serial, not_after, pem)
            })?
        }
        Issuer::Remote(nodes) => {
            let (client, me) = nodes.client();
            let key = crate::cmd::key_handle(client, Some(me), label, &["private"]).await?;
            let c = client
                .issue_certificate(
                    ca,
                    &keyward_client::IssueRequest {
                        profile: Some("tls-server".into()),
                        csr_pem: None,
                        key: Some(key),
                        dns,
                        ips: ips.iter().map(ToString::to_string).collect(),
                        common_name: None,
                        validity_days: None,
                    },
                )
                .await?;
            (
                c.serial,
                c.not_after,
                format!("{}{}", c.certificate_pem, c.chain_pem),
            )
        }
    };
    crate::cmd::cert_issue::write_certificate(chain_file, &pem)?;
    Ok(Some((serial, not_after)))
}
