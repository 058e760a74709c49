//! `keyward backup create|list|verify|restore|delete`: encrypted archives of the whole store
//! (format: `keyward_hsm::backup`) in a directory or an S3 bucket ([`crate::backup`]).

use anyhow::{bail, Context, Result};
use keyward_hsm::backup::{open_archive, read_header, BackupHeader};
use keyward_hsm::{passphrase, Hsm, MasterKey, SealConfig, SealType, UnsealStep, Unsealer};

use crate::backup::{archive_name, destination};
use crate::cli::{BackupCommand, Conn, SealProof};
use crate::progress::Progress;
use crate::{data_dir, output};

/// Runs one `keyward backup` command.
pub(crate) fn run(conn: &Conn, command: BackupCommand) -> Result<()> {
    super::client_runtime()?.block_on(async {
        match command {
            BackupCommand::Create { dest, data, out } => {
                let progress = Progress::new(out.json);
                let dest = destination(&dest.destination)?;
                progress.step("taking the backup");
                let archive = if conn.server.is_empty() {
                    let hsm_config = data.hsm();
                    let (hsm, _lock) =
                        data_dir::open_for_writing(&hsm_config, keyward_hsm::OpenOptions::default())?;
                    let node = format!("{} (keyward backup create)", hsm_config.data_dir.display());
                    tokio::task::spawn_blocking(move || hsm.backup_as("operator", &node, false))
                        .await??
                        .1
                } else {
                    if conn.server.len() != 1 {
                        bail!("take a backup through one node (one --server): it is the whole cluster's store");
                    }
                    let remote = conn.connect().await?;
                    let r = remote.client.backup().await.map_err(anyhow::Error::from);
                    remote.finish(r).await?
                };
                let header = read_header(&archive)?;
                let name = archive_name(header.created_unix_ms, &header.id);
                progress.step(&format!("writing {name} ({} bytes)", archive.len()));
                let size = archive.len();
                dest.put(&name, archive).await?;
                progress.finish();
                if out.json {
                    return output::json(&serde_json::json!({
                        "name": name, "destination": dest.shown, "bytes": size, "header": header,
                    }));
                }
                println!(
                    "wrote {name} to {} ({size} bytes: {} keys, {} users, {} audit entries, sequence {})",
                    dest.shown, header.keys, header.users, header.audit_entries, header.store_sequence
                );
                Ok(())
            }
            BackupCommand::List { dest, out } => {
                let dest = destination(&dest.destination)?;
                let mut rows = Vec::new();
                for a in dest.list().await? {
                    let header = dest.header(&a.name).await.ok();
                    rows.push((a, header));
                }
                if out.json {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|(a, h)| serde_json::json!({"name": a.name, "bytes": a.size, "header": h}))
                        .collect();
                    return output::json(&v);
                }
                output::table(
                    &["NAME", "BYTES", "TAKEN", "NODE", "KEYS", "USERS", "SEAL"],
                    rows.iter().map(|(a, h)| {
                        let (taken, node, keys, users, seal) = match h {
                            Some(h) => (
                                output::utc(h.created_unix_ms),
                                h.node.clone(),
                                h.keys.to_string(),
                                h.users.to_string(),
                                format!("{} (generation {})", h.seal.seal_type.as_str(), h.seal.generation),
                            ),
                            None => ("unreadable".into(), "-".into(), "-".into(), "-".into(), "-".into()),
                        };
                        vec![a.name.clone(), a.size.to_string(), taken, node, keys, users, seal]
                    }),
                );
                Ok(())
            }
            BackupCommand::Verify {
                name,
                dest,
                data,
                proof,
                out,
            } => {
                let progress = Progress::new(out.json);
                progress.step(&format!("reading {name}"));
                let archive = destination(&dest.destination)?.get(&name).await?;
                let header = read_header(&archive)?;
                progress.finish();
                let master = master_key_of(&header.seal, &data.hsm(), &proof)?;
                let progress = Progress::new(out.json);
                progress.step("verifying every byte");
                let (header, records) = open_archive(&archive, &master)?;
                progress.finish();
                if out.json {
                    return output::json(&serde_json::json!({"name": name, "valid": true, "records": records.len(), "header": header}));
                }
                println!(
                    "{name}: valid ({} records: {} keys, {} users, {} audit entries; taken {} by {})",
                    records.len(),
                    header.keys,
                    header.users,
                    header.audit_entries,
                    output::utc(header.created_unix_ms),
                    header.node
                );
                Ok(())
            }
            BackupCommand::Restore {
                name,
                dest,
                data,
                proof,
                force,
                out,
            } => restore(&name, &dest.destination, &data.hsm(), &proof, force, out.json).await,
            BackupCommand::Delete { name, dest, out } => {
                let dest = destination(&dest.destination)?;
                dest.delete(&name).await?;
                if out.json {
                    return output::json(&serde_json::json!({"deleted": name, "destination": dest.shown}));
                }
                println!("deleted {name} from {}", dest.shown);
                Ok(())
            }
        }
    })
}

/// The master key of `seal` from what the operator gives: the key file, the passphrase, or
/// unseal keys (as many as the threshold).
fn master_key_of(
    seal: &SealConfig,
    hsm: &keyward_config::HsmConfig,
    proof: &SealProof,
) -> Result<MasterKey> {
    Ok(match seal.seal_type {
        SealType::KeyFile => data_dir::read_master_key(&hsm.master_key_file()).context(
            "this backup was taken under a key-file seal: give that key file (--seal-key-file, or DATA_DIR/master.key)",
        )?,
        SealType::Passphrase => {
            if proof.unseal_keys_file.is_some() && proof.passphrase_file.is_none() {
                bail!("this backup's seal is a passphrase, not unseal keys: give --passphrase-file (or KEYWARD_SEAL_PASSPHRASE)");
            }
            let p = crate::seal::read_passphrase(proof.passphrase_file.as_deref(), false)?;
            passphrase::master_key(seal, &p)?
        }
        SealType::Shamir => {
            if proof.passphrase_file.is_some() && proof.unseal_keys_file.is_none() {
                bail!(
                    "this backup's seal is {} unseal keys of {}, not a passphrase: give --unseal-keys-file",
                    u8::max(seal.shamir.as_ref().map_or(0, |s| s.threshold), 1),
                    seal.shamir.as_ref().map_or(0, |s| s.shares)
                );
            }
            let mut u = Unsealer::new(seal.clone());
            let keys: Vec<zeroize::Zeroizing<String>> = match &proof.unseal_keys_file {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?
                    .lines()
                    .map(|l| zeroize::Zeroizing::new(l.trim().to_owned()))
                    .filter(|l| !l.is_empty())
                    .collect(),
                None => (0..u.threshold())
                    .map(|i| {
                        rpassword::prompt_password(format!("unseal key {} of {}: ", i + 1, u.threshold()))
                            .map(zeroize::Zeroizing::new)
                            .context("no terminal: give --unseal-keys-file")
                    })
                    .collect::<Result<_>>()?,
            };
            let mut master = None;
            for k in &keys {
                let step = u.add(k).context(
                    "an unseal key was refused for this backup's seal (if the keys are right, the archive's header was changed)",
                )?;
                if let UnsealStep::Complete(m) = step {
                    master = Some(m);
                    break;
                }
            }
            master.with_context(|| {
                format!(
                    "this backup's seal needs {} unseal keys; {} valid ones given",
                    u.threshold(),
                    u.progress()
                )
            })?
        }
    })
}

async fn restore(
    name: &str,
    dest: &str,
    hsm: &keyward_config::HsmConfig,
    proof: &SealProof,
    force: bool,
    json: bool,
) -> Result<()> {
    let progress = Progress::new(json);
    progress.step(&format!("reading {name}"));
    let archive = destination(dest)?.get(name).await?;
    let header = read_header(&archive)?;
    progress.finish();
    let master = master_key_of(&header.seal, hsm, proof)?;
    let progress = Progress::new(json);
    // Every byte checked before anything is written.
    progress.step("verifying every byte");
    open_archive(&archive, &master)?;
    progress.step("opening the target store");
    let (backend, created) = data_dir::restore_target(hsm, force)?;
    // No node may run on it meanwhile.
    let _lock = backend
        .try_lock(hsm)?
        .ok_or_else(|| data_dir::in_use(hsm))?;
    progress.step(&format!(
        "writing {} records and checking them",
        header.records
    ));
    let restored = {
        let archive = archive.clone();
        tokio::task::spawn_blocking(move || {
            Hsm::restore(backend.boxed(), &archive, &master, "operator", force)
        })
        .await?
    };
    let (restored, header): (Hsm, BackupHeader) = match restored {
        Ok(r) => r,
        Err(e) => {
            // A store this command made, and could not fill, is removed again.
            if created && hsm.store.is_none() {
                let store = data_dir::store_path(&hsm.data_dir);
                for suffix in ["", "-wal", "-shm", ".anchor"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
                }
            }
            return Err(e.into());
        }
    };
    drop(restored);
    // The API's TLS identity: a key file beside the store (the archive holds keys, not the
    // node's files).
    let dir = &hsm.data_dir;
    if !keyward_server::tls::api_cert_path(dir).exists() {
        keyward_server::tls::provision_api_key_file(
            dir,
            &["localhost".to_owned()],
            &["127.0.0.1".parse()?, "::1".parse()?],
            super::init::API_CERT_DAYS,
        )?;
    }
    progress.finish();
    if json {
        return output::json(
            &serde_json::json!({"restored": name, "store": data_dir::store_name(hsm), "header": header}),
        );
    }
    println!(
        "restored {name} into {} ({} records: {} keys, {} users, {} audit entries; taken {} by {}); the audit trail records the restore",
        data_dir::store_name(hsm),
        header.records,
        header.keys,
        header.users,
        header.audit_entries,
        output::utc(header.created_unix_ms),
        header.node
    );
    if header.seal.seal_type == SealType::KeyFile
        && hsm.key_file.is_none()
        && !hsm.master_key_file().exists()
    {
        println!(
            "note: nodes open it with the archive's key file at {}",
            hsm.master_key_file().display()
        );
    }
    Ok(())
}
