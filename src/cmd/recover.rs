//! `keyward recover`: recovery on the machine that holds the data directory and master key,
//! with every keyward process on it stopped.

use std::path::Path;

use keyward_config::HsmConfig;

use anyhow::Result;

use crate::data_dir;

/// `keyward recover reset-password`: sets `name`'s password from `password_file` and unlocks
/// it, without logging in (audited).
pub(crate) fn reset_password(hsm: &HsmConfig, name: &str, password_file: &Path) -> Result<()> {
    let password = keyward_hsm::Password::new(super::read_password_file(password_file)?);
    let (opened, _writer) = data_dir::open_for_writing(hsm, keyward_hsm::OpenOptions::default())?;
    opened.offline_reset_password(name, &password)?;
    println!("reset the password of {name:?} and unlocked it");
    Ok(())
}
