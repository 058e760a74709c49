//! The seal of this node (see `keyward_hsm::seal`): making one at `init` (a key file, a
//! passphrase or Shamir shares), the master key of a command that opens the store itself,
//! and the gate of a serving node, which opens the HSM when it is unsealed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use keyward_config::HsmConfig;
use keyward_hsm::{
    passphrase, read_seal_config, shamir, Hsm, MasterKey, OpenOptions, SealConfig, SealType,
    UnsealShare,
};
use keyward_keystore::{Backend, PostgresBackend, SqliteBackend};
use keyward_server::{NodeStore, Opener, SealGate};
use zeroize::Zeroizing;

use crate::data_dir::{self, WriterLock};

/// The environment variable a command that opens a passphrase-sealed store itself reads the
/// passphrase from (else it asks on the terminal).
pub(crate) const PASSPHRASE_ENV: &str = "KEYWARD_SEAL_PASSPHRASE";

/// The seal `keyward init` makes.
pub(crate) enum NewSeal {
    /// A new random key in the key file (`[seal] key_file`, default `DATA_DIR/master.key`).
    KeyFile,
    /// Argon2id of this passphrase.
    Passphrase(Zeroizing<String>),
    /// `shares` shares, any `threshold` of which unseal.
    Shamir {
        /// N.
        shares: u8,
        /// M.
        threshold: u8,
    },
}

/// A new seal: its master key, its configuration, and the shares to print (shamir).
pub(crate) struct Sealing {
    pub(crate) master: MasterKey,
    pub(crate) config: SealConfig,
    pub(crate) shares: Vec<UnsealShare>,
}

/// Makes the master key and configuration of `seal`.
pub(crate) fn new_seal(seal: &NewSeal) -> Result<Sealing> {
    Ok(match seal {
        NewSeal::KeyFile => Sealing {
            master: MasterKey::generate()?,
            config: SealConfig::key_file(),
            shares: Vec::new(),
        },
        NewSeal::Passphrase(p) => {
            let (master, config) = passphrase::new_seal(p)?;
            Sealing {
                master,
                config,
                shares: Vec::new(),
            }
        }
        NewSeal::Shamir { shares, threshold } => {
            let master = MasterKey::generate()?;
            let (printed, config) = shamir::split(&master, *shares, *threshold)?;
            Sealing {
                master,
                config,
                shares: printed,
            }
        }
    })
}

/// A passphrase from `file` (its first line), else [`PASSPHRASE_ENV`], else asked on the
/// terminal (twice when `confirm`).
pub(crate) fn read_passphrase(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(f) = file {
        return Ok(Zeroizing::new(crate::cmd::read_password_file(f)?));
    }
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("seal passphrase: ")
            .with_context(|| format!("no terminal to ask for the seal passphrase: give --passphrase-file or set {PASSPHRASE_ENV}"))?,
    );
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
        if *again != *first {
            bail!("the two passphrases differ");
        }
    }
    Ok(first)
}

/// The master key for a command that opens the store itself (not a serving node): the key
/// file of a key-file seal, or the passphrase (from [`PASSPHRASE_ENV`] or the terminal). A
/// store sealed by shares is opened only by a serving node, which operators unseal.
pub(crate) fn local_master_key(hsm: &HsmConfig, store: &dyn Backend) -> Result<MasterKey> {
    let config = read_seal_config(store)?;
    match config.seal_type {
        SealType::KeyFile => data_dir::read_master_key(&hsm.master_key_file()),
        SealType::Passphrase => {
            let p = read_passphrase(None, false)?;
            Ok(passphrase::master_key(&config, &p)?)
        }
        SealType::Shamir => bail!(
            "this store is sealed by Shamir shares: start a node (`keyward hsm serve` or `keyward serve`), unseal it with `keyward operator unseal`, and use it with --server"
        ),
    }
}

/// The store of a serving node, for its [`SealGate`]: a fresh connection for each open.
struct ServedStore {
    postgres: Option<keyward_keystore::PostgresOptions>,
    sqlite: std::path::PathBuf,
    key_file: std::path::PathBuf,
    name: String,
    options: OpenOptions,
}

impl ServedStore {
    fn backend(&self) -> Result<Box<dyn Backend>, keyward_hsm::Error> {
        Ok(match &self.postgres {
            Some(o) => Box::new(PostgresBackend::open(o)?),
            None => Box::new(SqliteBackend::open(&self.sqlite)?),
        })
    }
}

impl NodeStore for ServedStore {
    fn open(&self, master: Option<&MasterKey>) -> Result<Hsm, keyward_hsm::Error> {
        let backend = self.backend()?;
        let from_file;
        let master = match master {
            Some(m) => m,
            None => {
                let bytes = keyward_keystore::data_dir::read_master_key(&self.key_file)?;
                from_file = MasterKey::from_bytes(&bytes)?;
                &from_file
            }
        };
        let opened = Hsm::open_with(backend, master, self.options)?;
        for what in opened.accepted_at_open() {
            tracing::warn!(store = %self.name, "{what} (recorded in the audit trail)");
        }
        Ok(opened)
    }

    fn seal_config(&self) -> Result<SealConfig, keyward_hsm::Error> {
        read_seal_config(self.backend()?.as_ref())
    }
}

/// The store of `hsm` for a [`SealGate`] (see [`NodeStore`]).
pub(crate) fn opener(hsm: &HsmConfig, options: OpenOptions) -> Result<Opener> {
    Ok(Box::new(ServedStore {
        postgres: hsm
            .store
            .as_ref()
            .map(data_dir::postgres_options)
            .transpose()?,
        sqlite: data_dir::store_path(&hsm.data_dir),
        key_file: hsm.master_key_file(),
        name: data_dir::store_name(hsm),
        options,
    }))
}

/// The gate of a node that serves the API as its store's writer: unsealed now (the audit
/// trail records it) when the seal is a key file, else sealed until operators unseal it.
/// `busy` is the error when another process holds the store's writer lock.
pub(crate) fn serving_gate(
    hsm: &HsmConfig,
    options: OpenOptions,
    node: &str,
    busy: impl FnOnce() -> anyhow::Error,
) -> Result<(Arc<SealGate>, WriterLock)> {
    let store = data_dir::open_store(hsm)?;
    let lock = store.try_lock(hsm)?.ok_or_else(busy)?;
    let config = read_seal_config(store.as_dyn())
        .with_context(|| format!("store {}", data_dir::store_name(hsm)))?;
    drop(store);
    let open = opener(hsm, options)?;
    if config.seal_type.needs_operator() {
        match &config.shamir {
            Some(s) => tracing::warn!(
                seal = config.seal_type.as_str(),
                threshold = s.threshold,
                shares = s.shares,
                "the HSM is sealed: it answers 503 sealed until operators unseal it with `keyward operator unseal`"
            ),
            None => tracing::warn!(
                seal = config.seal_type.as_str(),
                "the HSM is sealed: it answers 503 sealed until an operator unseals it with `keyward operator unseal`"
            ),
        }
        return Ok((SealGate::sealed(config, open, node), lock));
    }
    let opened = open
        .open(None)
        .map_err(|e| data_dir::unsealing_failed(hsm, e))?;
    opened.record_unseal(node)?;
    Ok((SealGate::unsealed(Arc::new(opened), open, node)?, lock))
}

/// Records the seal of a node that stops while unsealed.
pub(crate) fn record_stop(gate: &SealGate, node: &str) -> Result<()> {
    if let Some(hsm) = gate.hsm() {
        if !hsm.is_read_only() {
            hsm.record_seal(node)?;
        }
    }
    Ok(())
}
