//! `keyward operator`: the seal of each `--server` node (status, unseal, seal, rekey), over
//! the API's `/v1/sys/*` routes. Each node of a cluster is unsealed on its own, with the
//! cluster's one seal; rekey runs once, against any node.

use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_client::{Password, RekeyRequest, SealStatus, UnsealRequest};

use crate::cli::{Conn, OperatorCommand, SealKind};
use crate::output;

/// Runs one `keyward operator` command.
pub(crate) fn run(conn: &Conn, command: OperatorCommand) -> Result<()> {
    super::client_runtime()?.block_on(async {
        if conn.server.is_empty() {
            bail!("no HSM node: pass --server URL (repeatable) or set KEYWARD_SERVER");
        }
        match command {
            OperatorCommand::Status { out } => {
                each_node(conn, out.json, false, |c| async move {
                    c.seal_status().await.map_err(Into::into)
                })
                .await
            }
            OperatorCommand::Unseal {
                key,
                passphrase_file,
                reset,
                out,
            } => unseal(conn, key, passphrase_file.as_deref(), reset, out.json).await,
            OperatorCommand::Seal { out } => {
                each_node(conn, out.json, true, |c| async move {
                    c.seal().await.map_err(Into::into)
                })
                .await
            }
            OperatorCommand::Rotate { status, wait, out } => {
                if conn.server.len() != 1 {
                    bail!(
                        "rotate through one node (one --server): the cluster shares the data key"
                    );
                }
                let remote = conn.connect().await?;
                let r = rotate(&remote.client, status, wait, out.json).await;
                remote.finish(r).await
            }
            OperatorCommand::Rekey {
                seal,
                current_keys_file,
                current_passphrase_file,
                out,
            } => {
                rekey(
                    conn,
                    &seal,
                    current_keys_file.as_deref(),
                    current_passphrase_file.as_deref(),
                    out.json,
                )
                .await
            }
        }
    })
}

/// A client of the one node `url`, logged in when the command has credentials.
fn node(conn: &Conn, url: &str) -> Conn {
    Conn {
        server: vec![url.to_owned()],
        ..conn.clone()
    }
}

/// Runs `call` on each node in turn (logged in when `auth`), printing each node's seal
/// status after it.
async fn each_node<F, Fut>(conn: &Conn, json: bool, auth: bool, call: F) -> Result<()>
where
    F: Fn(keyward_client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<SealStatus>>,
{
    let mut all = Vec::new();
    for url in &conn.server {
        let one = node(conn, url);
        let status = if auth {
            let remote = one.connect().await?;
            let r = call(remote.client.clone()).await;
            remote.finish(r).await
        } else {
            call(one.client()?).await
        }
        .with_context(|| format!("node {url}"))?;
        all.push((url.clone(), status));
    }
    print_statuses(&all, json)
}

fn print_statuses(all: &[(String, SealStatus)], json: bool) -> Result<()> {
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|(url, s)| serde_json::json!({ "server": url, "status": s }))
            .collect();
        return output::json(&v);
    }
    output::table(
        &[
            "SERVER",
            "SEALED",
            "TYPE",
            "PROGRESS",
            "SHARES",
            "GENERATION",
        ],
        all.iter().map(|(url, s)| {
            [
                url.clone(),
                s.sealed.to_string(),
                s.seal_type.clone(),
                if s.seal_type == "shamir" {
                    format!("{}/{}", s.progress, s.threshold)
                } else {
                    "-".into()
                },
                s.shares.to_string(),
                s.generation.to_string(),
            ]
        }),
    );
    Ok(())
}

async fn unseal(
    conn: &Conn,
    key: Option<String>,
    passphrase_file: Option<&Path>,
    reset: bool,
    json: bool,
) -> Result<()> {
    let mut key = key.map(Password::new);
    let mut passphrase: Option<zeroize::Zeroizing<String>> = None;
    let mut all = Vec::new();
    for url in &conn.server {
        let client = node(conn, url).client()?;
        let status = client
            .seal_status()
            .await
            .with_context(|| format!("node {url}"))?;
        let request = if reset {
            UnsealRequest {
                reset: true,
                ..Default::default()
            }
        } else if !status.sealed {
            if !json {
                println!("{url}: already unsealed");
            }
            all.push((url.clone(), status));
            continue;
        } else {
            match status.seal_type.as_str() {
                "shamir" if passphrase_file.is_some() => bail!(
                    "{url} is sealed by unseal keys ({} of {}), not a passphrase: give one key",
                    status.threshold,
                    status.shares
                ),
                "passphrase" if key.is_some() => {
                    bail!("{url} is sealed by a passphrase, not unseal keys: give --passphrase-file (or KEYWARD_SEAL_PASSPHRASE)")
                }
                "key-file" if key.is_some() || passphrase_file.is_some() => {
                    bail!("{url} is sealed by a key file: `keyward operator unseal` without a key makes it read its key file again")
                }
                "shamir" => {
                    if key.is_none() {
                        key = Some(Password::new(
                            rpassword::prompt_password(format!(
                                "unseal key ({} of {} given): ",
                                status.progress, status.threshold
                            ))
                            .context(
                                "no terminal to ask for the unseal key: give it as an argument",
                            )?,
                        ));
                    }
                    UnsealRequest {
                        key: key.as_ref().map(|k| Password::from(k.expose_secret())),
                        ..Default::default()
                    }
                }
                "passphrase" => {
                    if passphrase.is_none() {
                        passphrase = Some(crate::seal::read_passphrase(passphrase_file, false)?);
                    }
                    UnsealRequest {
                        passphrase: passphrase.as_ref().map(|p| Password::from(p.as_str())),
                        ..Default::default()
                    }
                }
                _ => UnsealRequest::default(),
            }
        };
        let after = client
            .unseal(&request)
            .await
            .with_context(|| format!("node {url}"))?;
        if !json {
            if reset {
                println!("{url}: unseal progress reset");
            } else if after.sealed {
                println!(
                    "{url}: sealed, unseal progress {}/{}",
                    after.progress, after.threshold
                );
            } else if !after.sealed {
                println!("{url}: unsealed");
            }
        }
        all.push((url.clone(), after));
    }
    if json {
        return print_statuses(&all, true);
    }
    Ok(())
}

async fn rotate(
    client: &keyward_client::Client,
    status_only: bool,
    wait: bool,
    json: bool,
) -> Result<()> {
    let mut s = if status_only {
        client.rotation().await?
    } else {
        client.rotate().await?
    };
    if wait {
        let progress = crate::progress::Progress::new(json);
        while !s.done {
            progress.count(
                "rewriting records under the new data key",
                s.total_records.saturating_sub(s.pending_records),
                s.total_records,
            );
            // Polling a remote status: the node does the work.
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            s = client.rotation().await?;
        }
        progress.finish();
    }
    if json {
        return output::json(&s);
    }
    if s.done {
        println!(
            "data key at version {}: every record ({}) under it, older versions destroyed",
            s.current_version, s.total_records
        );
    } else {
        println!(
            "data key at version {} (readable: {:?}): {} of {} records still under an older version; the nodes rewrite them in the background (--wait to follow)",
            s.current_version, s.versions, s.pending_records, s.total_records
        );
    }
    Ok(())
}

async fn rekey(
    conn: &Conn,
    seal: &crate::cli::SealArgs,
    current_keys_file: Option<&Path>,
    current_passphrase_file: Option<&Path>,
    json: bool,
) -> Result<()> {
    if conn.server.len() != 1 {
        bail!("rekey one node (give one --server): the cluster shares the seal");
    }
    let remote = conn.connect().await?;
    let r = rekey_on(
        &remote.client,
        seal,
        current_keys_file,
        current_passphrase_file,
        json,
    )
    .await;
    remote.finish(r).await
}

async fn rekey_on(
    client: &keyward_client::Client,
    seal: &crate::cli::SealArgs,
    current_keys_file: Option<&Path>,
    current_passphrase_file: Option<&Path>,
    json: bool,
) -> Result<()> {
    let status = client.seal_status().await?;
    let mut request = RekeyRequest {
        shares: Some(seal.shares),
        threshold: Some(seal.threshold),
        ..Default::default()
    };
    match status.seal_type.as_str() {
        "shamir" => {
            request.current_keys = match current_keys_file {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(Password::from)
                    .collect(),
                None => (0..status.threshold)
                    .map(|i| {
                        rpassword::prompt_password(format!(
                            "current unseal key {} of {}: ",
                            i + 1,
                            status.threshold
                        ))
                        .map(Password::new)
                        .context("no terminal: give --current-keys-file")
                    })
                    .collect::<Result<_>>()?,
            }
        }
        "passphrase" => {
            let p = match current_passphrase_file {
                Some(f) => zeroize::Zeroizing::new(super::read_password_file(f)?),
                None => zeroize::Zeroizing::new(
                    rpassword::prompt_password("current seal passphrase: ")
                        .context("no terminal: give --current-passphrase-file")?,
                ),
            };
            request.current_passphrase = Some(Password::from(p.as_str()));
        }
        _ => {}
    }
    match seal.seal {
        SealKind::Shamir => request.seal_type = "shamir".into(),
        SealKind::Passphrase => {
            request.seal_type = "passphrase".into();
            let p = crate::seal::read_passphrase(seal.passphrase_file.as_deref(), true)?;
            request.passphrase = Some(Password::from(p.as_str()));
            request.shares = None;
            request.threshold = None;
        }
        SealKind::KeyFile => bail!(
            "a rekey makes a shamir or passphrase seal: give --seal shamir [--shares N --threshold M] or --seal passphrase [--passphrase-file F]"
        ),
    }
    let answer = client.rekey(&request).await?;
    if json {
        return output::json(&serde_json::json!({
            "status": answer.status,
            "unseal_keys": answer.keys.iter().map(|k| k.expose_secret()).collect::<Vec<_>>(),
        }));
    }
    println!(
        "rekeyed: seal {} generation {}; the old keys or passphrase no longer unseal any node",
        answer.status.seal_type, answer.status.generation
    );
    for (i, k) in answer.keys.iter().enumerate() {
        println!("unseal key {}: {}", i + 1, k.expose_secret());
    }
    Ok(())
}
