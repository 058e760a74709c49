//! `[hsm]`: where the HSM keeps its store and master key.

use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::Deserialize;

/// `[hsm]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HsmConfig {
    /// `data_dir`: folder holding the store (`keyward.sqlite3`) and the master key file
    /// (`master.key`). Default `keyward-data`.
    pub data_dir: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an [hsm] table")]
pub(crate) struct RawHsm {
    data_dir: Option<RelativePathBuf>,
}

impl RawHsm {
    /// The `[hsm]` settings, relative paths resolved (nothing here can be invalid).
    pub(crate) fn validate(self) -> HsmConfig {
        HsmConfig {
            data_dir: self
                .data_dir
                .map(|p| p.relative())
                .unwrap_or_else(|| PathBuf::from("keyward-data")),
        }
    }
}
