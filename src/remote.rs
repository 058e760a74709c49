//! `[hsm] mode = "remote"`: the proxy's [`keyward_proxy::remote::RemoteHsm`] over
//! `keyward-client`: one HTTP/2 connection per node (hyper multiplexes every sign on it),
//! failover to the next node when one cannot be reached, a login per node as the configured
//! crypto-user (again after a `401`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use keyward_client::{Client, ClientConfig, KeyFilter, SignInput, SignItem};
use keyward_config::RemoteHsm;
use keyward_proxy::remote::{BoxFuture, RemoteKey, SignFailure, WrappedTicketKey};
use zeroize::Zeroizing;

/// The environment variable holding the password when `password_file` is not set.
const PASSWORD_ENV: &str = "KEYWARD_HSM__PASSWORD";

/// The HSM nodes as the proxy's signer sees them.
#[derive(Debug)]
pub(crate) struct ClientHsm {
    client: Client,
}

/// The password: `password_file` (trailing newline removed), else `KEYWARD_HSM__PASSWORD`.
fn password(cfg: &RemoteHsm) -> Result<Zeroizing<String>> {
    match &cfg.password_file {
        Some(path) => {
            let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                format!("cannot read hsm.password_file {}", path.display())
            })?);
            Ok(Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned()))
        }
        None => match std::env::var(PASSWORD_ENV) {
            Ok(p) => Ok(Zeroizing::new(p)),
            Err(_) => bail!(
                "[hsm] mode = \"remote\" needs the password of {:?}: set hsm.password_file or {PASSWORD_ENV}",
                cfg.username
            ),
        },
    }
}

impl ClientHsm {
    /// Logs in to one of the nodes (the others log in on first use).
    pub(crate) async fn connect(cfg: &RemoteHsm) -> Result<Arc<Self>> {
        let timeout = Duration::from_millis(cfg.sign_timeout_ms);
        let config = ClientConfig::new(cfg.servers.iter().cloned())
            .ca_cert_pem_file(&cfg.ca_file)
            .with_context(|| format!("hsm.ca_file {}", cfg.ca_file.display()))?
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .request_timeout(timeout)
            .cool_down(Duration::from_secs(2))
            .backoff_base(Duration::from_millis(20))
            .max_attempts(2);
        let client = Client::new(config).context("[hsm] servers")?;
        let password = password(cfg)?;
        let session = client
            .login(&cfg.username, password.as_str())
            .await
            .with_context(|| {
                format!(
                    "cannot log in to the HSM nodes {} as {:?}",
                    cfg.servers.join(", "),
                    cfg.username
                )
            })?;
        if session.role.to_string() != "crypto-user" {
            bail!(
                "hsm.username {:?} is a {}; a remote-mode proxy signs as a crypto-user that owns (or was shared) its TLS keys",
                cfg.username,
                session.role
            );
        }
        tracing::info!(
            servers = %cfg.servers.join(", "),
            user = %cfg.username,
            max_in_flight_signs = cfg.max_in_flight_signs,
            sign_timeout_ms = cfg.sign_timeout_ms,
            "remote signing: logged in to the HSM nodes"
        );
        Ok(Arc::new(ClientHsm { client }))
    }

    async fn find(&self, label: &str) -> Result<RemoteKey, keyward_client::Error> {
        let page = self
            .client
            .list_keys(&KeyFilter {
                label: Some(label.to_owned()),
                class: Some("private".into()),
                ..KeyFilter::default()
            })
            .await?;
        let key = match page.keys.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(keyward_client::Error::Config(format!(
                    "no private key labelled {label:?} that this user may use"
                )))
            }
            many => {
                return Err(keyward_client::Error::Config(format!(
                    "{} private keys labelled {label:?} are visible to this user; share only one",
                    many.len()
                )))
            }
        };
        let spec = key.spec.to_string().parse().map_err(|_| {
            keyward_client::Error::Config(format!(
                "key {label:?} has a type this proxy cannot sign with"
            ))
        })?;
        let oldest = key
            .min_decryption_version
            .max(key.min_encryption_version)
            .max(key.min_available_version)
            .max(1);
        let mut versions = Vec::new();
        for version in (oldest..=key.latest_version).rev() {
            let public = self.client.public_key_at(key.handle, Some(version)).await?;
            versions.push((version, public.der));
        }
        Ok(RemoteKey {
            handle: key.handle,
            spec,
            versions,
        })
    }
}

/// Whether `e` means that no node could be reached (rather than a refusal of this request).
fn unreachable(e: &keyward_client::Error) -> bool {
    use keyward_client::Error as E;
    match e {
        E::Connect(_) | E::Transport(_) | E::Timeout => true,
        E::Api { status, .. } => *status >= 500,
        E::AllNodesFailed { last } => unreachable(last),
        _ => false,
    }
}

impl keyward_proxy::remote::RemoteHsm for ClientHsm {
    fn private_key<'a>(&'a self, label: &'a str) -> BoxFuture<'a, Result<RemoteKey, String>> {
        Box::pin(async move { self.find(label).await.map_err(|e| e.to_string()) })
    }

    fn sign<'a>(
        &'a self,
        handle: u64,
        version: u32,
        mechanism: &'static str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignFailure>> {
        Box::pin(async move {
            let item = SignItem {
                key: handle,
                mechanism: mechanism.to_owned(),
                input: SignInput::Message(message.to_vec()),
                encoding: None,
                key_version: Some(version),
            };
            self.client.sign(&item).await.map_err(|e| SignFailure {
                unreachable: unreachable(&e),
                message: e.to_string(),
            })
        })
    }

    fn ticket_keys<'a>(
        &'a self,
        rotation_s: u64,
        recipient_spki: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<WrappedTicketKey>, String>> {
        Box::pin(async move {
            let r = self
                .client
                .ticket_keys(rotation_s, recipient_spki)
                .await
                .map_err(|e| e.to_string())?;
            r.keys
                .into_iter()
                .map(|k| {
                    let name: [u8; 16] = k
                        .name
                        .decode()
                        .ok()
                        .and_then(|n| n.try_into().ok())
                        .ok_or("a ticket key name is not 16 bytes of base64")?;
                    let wrapped = k
                        .wrapped_key
                        .decode()
                        .map_err(|_| "a wrapped ticket key is not base64")?;
                    Ok(WrappedTicketKey {
                        period: k.period,
                        name,
                        wrapped,
                    })
                })
                .collect::<Result<_, &str>>()
                .map_err(str::to_owned)
        })
    }
}
