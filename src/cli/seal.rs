//! The command line of the seal and of backups: `init --seal`, `keyward operator`,
//! `keyward backup`, and the backup schedule of `hsm serve`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{DataDirArg, JsonFlag};

/// Where backups are.
#[derive(Args, Clone, Debug)]
pub(crate) struct DestinationArg {
    /// A directory, or s3://BUCKET[/PREFIX] (credentials and endpoint from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP).
    #[arg(long, env = "KEYWARD_BACKUP__DESTINATION")]
    pub(crate) destination: String,
}

/// The seal an archive was taken under, to verify or restore it: the key file
/// (--seal-key-file, else DATA_DIR/master.key), the passphrase, or unseal keys.
#[derive(Args, Clone, Debug)]
pub(crate) struct SealProof {
    /// Passphrase seal: the file holding it (else env KEYWARD_SEAL_PASSPHRASE, else asked).
    #[arg(long = "passphrase-file")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Shamir seal: a file with unseal keys, one per line (else asked, one by one).
    #[arg(long = "unseal-keys-file")]
    pub(crate) unseal_keys_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a backup: through the --server node (admin login), else of the local data
    /// directory (no node running on it), and write it to --destination.
    Create {
        #[command(flatten)]
        dest: DestinationArg,
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The archives at --destination, oldest first (name, size, and what each header says).
    List {
        #[command(flatten)]
        dest: DestinationArg,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Check an archive without restoring it: every byte, with its seal.
    Verify {
        /// The archive's name (`keyward backup list`).
        name: String,
        #[command(flatten)]
        dest: DestinationArg,
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        proof: SealProof,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Restore an archive into an empty store (a new data directory, or an empty PostgreSQL
    /// database with --store); every node then opens it with the archive's seal.
    Restore {
        /// The archive's name (`keyward backup list`).
        name: String,
        #[command(flatten)]
        dest: DestinationArg,
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        proof: SealProof,
        /// Replace the contents of a store that is not empty (every record of it).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete an archive.
    Delete {
        /// The archive's name.
        name: String,
        #[command(flatten)]
        dest: DestinationArg,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub(crate) enum OperatorCommand {
    /// Each node's seal: sealed or not, type, shares, threshold, unseal progress.
    Status {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Give each node one unseal key (a share; asked on the terminal when not given), or the
    /// passphrase, or --reset the shares given so far. No login needed.
    Unseal {
        /// One unseal key as `keyward init` printed it (prefer the prompt: an argument shows
        /// in `ps` and the shell's history).
        key: Option<String>,
        /// Passphrase seal: the file holding it (else env KEYWARD_SEAL_PASSPHRASE, else asked).
        #[arg(long = "passphrase-file")]
        passphrase_file: Option<PathBuf>,
        /// Forget the shares given so far.
        #[arg(long, conflicts_with_all = ["key", "passphrase_file"])]
        reset: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Seal each node (admin): every key leaves memory, the API answers 503 sealed and the
    /// proxy stops until the node is unsealed again.
    Seal {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Rotate the data key (admin): records written from now on are sealed under a new
    /// version; the nodes rewrite the older records in the background and then destroy the
    /// older version. With --status, only show where it stands.
    Rotate {
        /// Do not start one: show the rotation's progress.
        #[arg(long)]
        status: bool,
        /// Wait until it is finished, showing progress.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A new master key under a new seal (admin, with the current seal's keys or
    /// passphrase); only the root-key record changes and unsealed nodes keep running. The new unseal keys are printed
    /// once. Run against one node: the cluster shares the seal.
    Rekey {
        /// The new seal: `shamir` or `passphrase` (the other flags as `keyward init`'s).
        #[command(flatten)]
        seal: SealArgs,
        /// Shamir: a file with the current unseal keys, one per line (else asked, one by one).
        #[arg(long = "current-keys-file")]
        current_keys_file: Option<PathBuf>,
        /// Passphrase seal: the file holding the current passphrase (else asked).
        #[arg(long = "current-passphrase-file")]
        current_passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// The node's backup schedule (`[backup]` of `keyward serve`).
#[derive(Args, Clone, Debug)]
pub(crate) struct BackupScheduleArgs {
    /// Take a backup every --backup-interval-s to this directory or s3://BUCKET[/PREFIX]
    /// (one node of a cluster takes each); none without it.
    #[arg(long = "backup-destination", env = "KEYWARD_BACKUP__DESTINATION")]
    pub(crate) destination: Option<String>,
    /// Seconds between scheduled backups.
    #[arg(long = "backup-interval-s", env = "KEYWARD_BACKUP__INTERVAL_S", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    pub(crate) interval_s: u64,
    /// Scheduled archives kept at the destination (the oldest are deleted).
    #[arg(long = "backup-retention", env = "KEYWARD_BACKUP__RETENTION", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) retention: u64,
}

impl BackupScheduleArgs {
    /// The schedule these flags give.
    pub(crate) fn config(&self) -> Option<keyward_config::BackupConfig> {
        self.destination.as_ref().map(|d| {
            let mut c = keyward_config::BackupConfig::to(d.clone());
            c.interval_s = self.interval_s;
            c.retention = usize::try_from(self.retention).unwrap_or(usize::MAX);
            c
        })
    }
}

/// How `keyward init` (and `operator rekey`) seals the store.
#[derive(Args, Clone, Debug)]
pub(crate) struct SealArgs {
    /// What produces the master key: `key-file` (a random key in the key file; the node
    /// unseals itself), `passphrase` (Argon2id of a passphrase) or `shamir` (M-of-N shares,
    /// printed once); with the last two a node starts sealed until `keyward operator unseal`.
    #[arg(long, value_enum, default_value = "key-file")]
    pub(crate) seal: SealKind,
    /// Shamir: shares to make (N, 2 to 16).
    #[arg(long, default_value_t = 5)]
    pub(crate) shares: u8,
    /// Shamir: shares needed to unseal (M, 2 to N).
    #[arg(long, default_value_t = 3)]
    pub(crate) threshold: u8,
    /// Passphrase: the file holding it (else env KEYWARD_SEAL_PASSPHRASE, else asked twice
    /// on the terminal). 12 characters or more.
    #[arg(long = "passphrase-file")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

/// `--seal`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SealKind {
    /// A key file.
    KeyFile,
    /// A passphrase.
    Passphrase,
    /// Shamir shares.
    Shamir,
}
