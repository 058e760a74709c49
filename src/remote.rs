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
    /// The crypto-user it signs as.
    username: String,
}

/// The SDK client for the nodes (nothing sent yet) and the password, or what is wrong with the
/// settings that can be checked offline: the CA file holds a PEM certificate, the password is
/// there and not empty. `keyward serve --check-config` runs this too.
///
/// Timeouts: each attempt on one node gets a third of `sign_timeout_ms` (connecting at most
/// 2 s of it), so a node that hangs (stopped, blackholed) leaves time to sign on another; a
/// node that failed is skipped for 2 s.
pub(crate) fn client_and_password(cfg: &RemoteHsm) -> Result<(Client, Zeroizing<String>)> {
    let timeout = Duration::from_millis(cfg.sign_timeout_ms);
    let attempt = (timeout / 3).max(Duration::from_millis(20));
    let config = ClientConfig::new(cfg.servers.iter().cloned())
        .ca_cert_pem_file(&cfg.ca_file)
        .with_context(|| format!("cannot read hsm.ca_file {}", cfg.ca_file.display()))?
        .connect_timeout(attempt.min(Duration::from_secs(2)))
        .request_timeout(attempt)
        .cool_down(Duration::from_secs(2))
        .backoff_base(Duration::from_millis(20))
        .max_attempts(2);
    let client = Client::new(config).map_err(|e| match e {
        keyward_client::Error::Config(m) if m.contains("ca_cert_pem") => anyhow::anyhow!(
            "hsm.ca_file {} holds no PEM certificate the nodes' API certificates could chain to ({m})",
            cfg.ca_file.display()
        ),
        e => anyhow::Error::new(e).context("[hsm] servers"),
    })?;
    let password = password(cfg)?;
    if password.is_empty() {
        match &cfg.password_file {
            Some(p) => bail!("hsm.password_file {} is empty", p.display()),
            None => bail!("{PASSWORD_ENV} is empty"),
        }
    }
    Ok((client, password))
}

/// The password: `password_file` (trailing newline removed; refused when group or others may
/// access it, as the master key is), else `KEYWARD_HSM__PASSWORD`.
fn password(cfg: &RemoteHsm) -> Result<Zeroizing<String>> {
    match &cfg.password_file {
        Some(path) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .with_context(|| format!("cannot read hsm.password_file {}", path.display()))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "hsm.password_file {} may be read by group or others (mode {mode:04o}): chmod 600 it",
                    path.display()
                );
            }
            crate::cmd::read_secret_file(path, "hsm.password_file")
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

/// Marks a start that failed because the nodes refused the configured credentials: `keyward
/// serve` then exits with [`LOGIN_REFUSED_EXIT`] (EX_CONFIG), which the systemd unit does not
/// restart on (`RestartPreventExitStatus`).
#[derive(Debug)]
pub(crate) struct LoginRefused;

impl std::fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the HSM nodes refused the proxy's credentials (not retried: each try is a failed login, and the user locks after a few)")
    }
}

impl std::error::Error for LoginRefused {}

/// The exit status of a start whose login was refused: 78, EX_CONFIG of sysexits.h.
pub(crate) const LOGIN_REFUSED_EXIT: u8 = 78;

impl ClientHsm {
    /// Logs in to one of the nodes (the others log in on first use).
    pub(crate) async fn connect(cfg: &RemoteHsm) -> Result<Arc<Self>> {
        let (client, password) = client_and_password(cfg)?;
        let session = client
            .login(&cfg.username, password.as_str())
            .await
            .map_err(|e| {
                // A refused password is not retried by a restart: each try is a failed login,
                // and a crypto-user locks after a few (cluster-wide, until `user unlock`).
                let refused = matches!(
                    &e,
                    keyward_client::Error::Api { status: 401 | 403 | 423 | 429, .. }
                ) || matches!(&e, keyward_client::Error::AllNodesFailed { last } if matches!(**last, keyward_client::Error::Api { status: 401 | 403 | 423 | 429, .. }));
                let e = anyhow::Error::new(e);
                if refused {
                    e.context(LoginRefused)
                } else {
                    e
                }
            })
            .with_context(|| {
                format!(
                    "cannot log in to the HSM nodes {} as {:?} (each try on a node may take a third of hsm.sign_timeout_ms = {} ms)",
                    cfg.servers.join(", "),
                    cfg.username,
                    cfg.sign_timeout_ms
                )
            })?;
        if session.role != keyward_client::Role::CryptoUser {
            bail!(
                "hsm.username {:?} is not a crypto-user (its role: {}); a remote-mode proxy signs as a crypto-user that owns (or was shared) its TLS keys",
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
        Ok(Arc::new(ClientHsm {
            client,
            username: cfg.username.clone(),
        }))
    }

    /// The logged-in SDK client and its user, for the proxy's certificate renewal.
    pub(crate) fn client(&self) -> (&Client, &str) {
        (&self.client, &self.username)
    }

    async fn find(&self, label: &str) -> Result<RemoteKey, String> {
        let page = self
            .client
            .list_keys(&KeyFilter {
                label: Some(label.to_owned()),
                class: Some("private".into()),
                ..KeyFilter::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let key = match page.keys.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(format!(
                    "no private key labelled {label:?} that this user may use"
                ))
            }
            many => {
                return Err(format!(
                    "{} private keys labelled {label:?} are visible to this user; share only one",
                    many.len()
                ))
            }
        };
        if !key.attributes.sign {
            return Err(format!(
                "private key {label:?} (handle {}) may not sign (attribute sign = false): set it with `keyward key set-attribute` or generate the pair with --private-attr sign=true",
                key.handle
            ));
        }
        let spec = key
            .spec
            .to_string()
            .parse()
            .map_err(|_| format!("key {label:?} has a type this proxy cannot sign with"))?;
        let oldest = key
            .min_decryption_version
            .max(key.min_encryption_version)
            .max(key.min_available_version)
            .max(1);
        let mut versions = Vec::new();
        for version in (oldest..=key.latest_version).rev() {
            let public = self
                .client
                .public_key_at(key.handle, Some(version))
                .await
                .map_err(|e| e.to_string())?;
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
        Box::pin(self.find(label))
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
