//! `[backup]`: the node's backup schedule.

use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// `[backup]`: every `interval_s`, one node of the store takes a backup to `destination` and
/// keeps the newest `retention` archives there.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupConfig {
    /// `destination`: a directory, or `s3://BUCKET[/PREFIX]` (credentials and endpoint from
    /// the `AWS_*` environment variables).
    pub destination: String,
    /// `interval_s`: seconds between backups, 1 to 31 622 400 (a year); default 86 400.
    pub interval_s: u64,
    /// `retention`: archives kept at the destination (the oldest are deleted), 1 to 10 000;
    /// default 7.
    pub retention: usize,
}

impl BackupConfig {
    /// A schedule to `destination` with the default interval and retention.
    pub fn to(destination: impl Into<String>) -> Self {
        BackupConfig {
            destination: destination.into(),
            interval_s: 86_400,
            retention: 7,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [backup] table")]
pub(crate) struct RawBackup {
    destination: String,
    interval_s: Option<u64>,
    retention: Option<usize>,
}

impl RawBackup {
    /// The `[backup]` settings; `cx` is the `backup` table.
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<BackupConfig, Error> {
        if self.destination.trim().is_empty() {
            return Err(cx.invalid("destination", "must be a directory or s3://BUCKET[/PREFIX]"));
        }
        let mut c = BackupConfig::to(self.destination);
        if let Some(i) = self.interval_s {
            if !(1..=31_622_400).contains(&i) {
                return Err(cx.invalid("interval_s", "must be 1 to 31622400 (a year)"));
            }
            c.interval_s = i;
        }
        if let Some(r) = self.retention {
            if !(1..=10_000).contains(&r) {
                return Err(cx.invalid("retention", "must be 1 to 10000"));
            }
            c.retention = r;
        }
        Ok(c)
    }
}
