//! Where backups go: a directory, or an S3-compatible bucket (`s3://BUCKET[/PREFIX]`), through
//! `object_store` (its local file system and Amazon S3 backends); [`s3_bucket`] also serves
//! `keyward crypto encrypt-file --upload`. S3 settings come from the
//! standard environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL` for another S3-compatible server, `AWS_ALLOW_HTTP=true`
//! for a plain-HTTP one).
//!
//! Archives are named `keyward-YYYYMMDDTHHMMSSZ-ID.kwbackup` (the time the backup was taken,
//! UTC, and the first 8 hex digits of its id), so that names sort by age. Also here: the
//! node's backup schedule (`[backup]`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

/// File name suffix of an archive.
pub(crate) const SUFFIX: &str = ".kwbackup";

/// A backup destination.
pub(crate) struct Destination {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// As the operator wrote it.
    pub(crate) shown: String,
}

/// One archive at a destination.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) size: u64,
}

/// Opens `spec`: `s3://BUCKET[/PREFIX]`, or a directory (created, mode 0700, if missing).
pub(crate) fn destination(spec: &str) -> Result<Destination> {
    if spec.trim().is_empty() {
        bail!("no backup destination: give a directory or s3://BUCKET[/PREFIX]");
    }
    if let Some(rest) = spec.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || prefix.split('/').any(|p| p == ".." || p == ".") {
            bail!(
                "{spec}: an S3 destination is s3://BUCKET[/PREFIX] (no `.` or `..` in the prefix)"
            );
        }
        let s3 = s3_bucket(bucket).with_context(|| format!("backup destination {spec}"))?;
        return Ok(Destination {
            store: s3,
            prefix: StorePath::from(prefix.trim_matches('/')),
            shown: spec.to_owned(),
        });
    }
    if spec.contains("://") {
        bail!("{spec}: a backup destination is a directory or s3://BUCKET[/PREFIX]");
    }
    let dir = std::path::Path::new(spec);
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the backup directory {spec}"))?;
    }
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("backup destination {spec}"))?;
    Ok(Destination {
        store: Arc::new(local),
        prefix: StorePath::default(),
        shown: spec.to_owned(),
    })
}

/// The S3 bucket `bucket`, with the settings of the standard environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`): backup destinations and `keyward crypto encrypt-file --upload`.
pub(crate) fn s3_bucket(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()?;
    Ok(Arc::new(s3))
}

/// The archive name of a backup taken at `created_unix_ms` with id `id`.
pub(crate) fn archive_name(created_unix_ms: u64, id: &str) -> String {
    let secs = i64::try_from(created_unix_ms / 1000).unwrap_or(0);
    let stamp = time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| {
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| created_unix_ms.to_string());
    format!("keyward-{stamp}-{}{SUFFIX}", &id[..id.len().min(8)])
}

impl Destination {
    fn path(&self, name: &str) -> Result<StorePath> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("{name:?} is not an archive name (keyward-…{SUFFIX})");
        }
        Ok(if self.prefix.as_ref().is_empty() {
            StorePath::from(name)
        } else {
            self.prefix.clone().join(name)
        })
    }

    /// Writes `archive` as `name`.
    pub(crate) async fn put(&self, name: &str, archive: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(name)?, PutPayload::from(archive))
            .await
            .with_context(|| format!("cannot write {name} to {}", self.shown))?;
        Ok(())
    }

    /// Reads the archive `name`.
    pub(crate) async fn get(&self, name: &str) -> Result<Vec<u8>> {
        let got = self
            .store
            .get(&self.path(name)?)
            .await
            .with_context(|| format!("cannot read {name} from {}", self.shown))?;
        Ok(got.bytes().await?.to_vec())
    }

    /// Deletes the archive `name`.
    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        // A missing archive is an error worth telling (a mistyped name), not a no-op.
        self.store
            .head(&path)
            .await
            .with_context(|| format!("no archive {name} in {}", self.shown))?;
        self.store
            .delete(&path)
            .await
            .with_context(|| format!("cannot delete {name} from {}", self.shown))?;
        Ok(())
    }

    /// The archives at the destination, oldest first.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>> {
        use futures_util::TryStreamExt as _;
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let mut all: Vec<Listed> = self
            .store
            .list(prefix)
            .try_filter_map(|m| async move {
                let name = m.location.filename().unwrap_or_default().to_owned();
                Ok((name.starts_with("keyward-") && name.ends_with(SUFFIX))
                    .then_some(Listed { name, size: m.size }))
            })
            .try_collect()
            .await
            .with_context(|| format!("cannot list {}", self.shown))?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// The header of the archive `name`, read from its first bytes (two ranged reads).
    pub(crate) async fn header(&self, name: &str) -> Result<keyward_hsm::backup::BackupHeader> {
        let path = self.path(name)?;
        let head = self
            .store
            .get_range(&path, 0..12)
            .await
            .with_context(|| format!("cannot read {name} from {}", self.shown))?;
        let len = head
            .get(8..12)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u64::from(u32::from_be_bytes(b)));
        let whole = self
            .store
            .get_range(&path, 0..12 + len.min(64 * 1024))
            .await
            .with_context(|| format!("cannot read {name} from {}", self.shown))?;
        Ok(keyward_hsm::backup::read_header(&whole)?)
    }

    /// Deletes the oldest scheduled archives of the store `store_id` beyond the newest
    /// `keep`; archives of `backup create`, of other stores, and files it cannot read are
    /// left alone. Returns the names deleted.
    pub(crate) async fn prune(&self, keep: usize, store_id: &str) -> Result<Vec<String>> {
        let mut ours = Vec::new();
        for a in self.list().await? {
            if let Ok(h) = self.header(&a.name).await {
                if h.scheduled && h.store_id == store_id {
                    ours.push(a.name);
                }
            }
        }
        let excess = ours.len().saturating_sub(keep);
        let mut gone = Vec::new();
        for old in ours.into_iter().take(excess) {
            self.delete(&old).await?;
            gone.push(old);
        }
        Ok(gone)
    }
}

/// The node's backup schedule: every `interval`, one node (the first to claim the period in
/// a shared store; the only node otherwise) takes a backup to `destination` and keeps the
/// newest `retention`. Runs while the node is unsealed; failures are logged and counted, the
/// next period tries again.
pub(crate) fn schedule(
    gate: &keyward_server::SealGate,
    config: keyward_config::BackupConfig,
    node: String,
) -> Result<tokio::task::JoinHandle<()>> {
    let dest = Arc::new(destination(&config.destination)?);
    let gate_events = gate.subscribe();
    let interval = Duration::from_secs(config.interval_s);
    tracing::info!(
        destination = %dest.shown,
        interval_s = config.interval_s,
        retention = config.retention,
        "backup schedule"
    );
    Ok(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once: the first backup waits one interval.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(hsm) = gate_events.borrow().clone() else {
                tracing::info!("scheduled backup skipped: the node is sealed");
                continue;
            };
            let period = now_unix_s() / config.interval_s.max(1);
            let node = node.clone();
            let taken = tokio::task::spawn_blocking(move || {
                if !hsm.claim_period(&format!("backup-schedule/{period}"), &node, interval)? {
                    return Ok(None);
                }
                hsm.backup_as("backup-schedule", &node, true).map(Some)
            })
            .await;
            let (header, archive) = match taken {
                Ok(Ok(Some(t))) => t,
                Ok(Ok(None)) => {
                    tracing::debug!("scheduled backup taken by another node");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "scheduled backup failed");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "scheduled backup failed");
                    continue;
                }
            };
            let name = archive_name(header.created_unix_ms, &header.id);
            let size = archive.len();
            if let Err(e) = dest.put(&name, archive).await {
                tracing::error!(error = %format!("{e:#}"), "scheduled backup not written");
                continue;
            }
            let pruned = dest.prune(config.retention, &header.store_id).await;
            tracing::info!(archive = %name, bytes = size, records = header.records, period, pruned = ?pruned.as_ref().ok(), "scheduled backup written");
            if let Err(e) = pruned {
                tracing::warn!(error = %format!("{e:#}"), "pruning old backups failed");
            }
        }
    }))
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
