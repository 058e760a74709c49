//! `keyward init`: a new HSM in a data directory: the store and its seal (a master key file,
//! a passphrase, or Shamir shares printed once), the API's TLS key (in the HSM; in
//! `DATA_DIR/api-tls.key` for a seal an operator unseals) and self-signed certificate
//! (`DATA_DIR/api-ca.pem`), and the first admin. Also the admin password the quickstart
//! generates.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Result};
use keyward_hsm::{Hsm, Password, Session, PROXY_USER};
use keyward_server::tls::{api_cert_path, provision_api_certificate, provision_api_key_file};

use crate::cli::{SealArgs, SealKind};
use crate::seal::NewSeal;

use crate::data_dir;

/// Validity of the API's self-signed certificate, in days.
pub(crate) const API_CERT_DAYS: u32 = 3650;

/// The API certificate's names of `keyward init`.
pub(crate) struct ApiNames<'a> {
    pub(crate) dns: &'a [String],
    pub(crate) ips: &'a [IpAddr],
}

/// Runs `keyward init`. The admin password comes from `password_file`, else the environment
/// variable `KEYWARD_ADMIN_PASSWORD`, else it is generated and printed once. With
/// `if_missing`, a data directory that holds a store is left as it is.
pub(crate) fn run(
    store: &keyward_config::HsmConfig,
    admin: &str,
    password_file: Option<&Path>,
    names: ApiNames<'_>,
    seal: &SealArgs,
    if_missing: bool,
    json: bool,
) -> Result<()> {
    let ApiNames { dns, ips } = names;
    let dir = store.data_dir.as_path();
    if if_missing && data_dir::exists(store) {
        println!("already initialized: {}", dir.display());
        return Ok(());
    }
    if data_dir::exists(store) {
        bail!("{} already holds an HSM store", dir.display());
    }
    let given = match (password_file, std::env::var("KEYWARD_ADMIN_PASSWORD")) {
        (Some(f), _) => Some(super::read_password_file(f)?),
        (None, Ok(p)) => Some(p),
        (None, Err(_)) => None,
    };
    let given = given.map(Password::new);
    // Check inputs before anything is written.
    if given
        .as_ref()
        .is_some_and(|p| p.expose().chars().count() < 8)
    {
        bail!("the admin password must be at least 8 characters");
    }
    let new_seal = match seal.seal {
        SealKind::KeyFile => NewSeal::KeyFile,
        SealKind::Passphrase => NewSeal::Passphrase(crate::seal::read_passphrase(
            seal.passphrase_file.as_deref(),
            true,
        )?),
        SealKind::Shamir => NewSeal::Shamir {
            shares: seal.shares,
            threshold: seal.threshold,
        },
    };
    if let NewSeal::Shamir { shares, threshold } = new_seal {
        if threshold < 2 || threshold > shares || shares > keyward_hsm::shamir::MAX_SHARES {
            bail!(
                "--shares and --threshold must satisfy 2 <= threshold <= shares <= {}",
                keyward_hsm::shamir::MAX_SHARES
            );
        }
    }
    let (hsm, _writer, shares) = data_dir::create_for_writing(store, &new_seal)?;
    let session = hsm.service_session(PROXY_USER)?;
    if matches!(new_seal, NewSeal::KeyFile) {
        provision_api_certificate(&hsm, &session, dir, dns, ips, API_CERT_DAYS)?;
    } else {
        // The API must serve TLS while the node is sealed (to take the shares): its key is a
        // file, not an HSM key.
        provision_api_key_file(dir, dns, ips, API_CERT_DAYS)?;
    }
    let (password, generated) = match given {
        Some(p) => (p, false),
        None => (generate_password(&hsm, &session)?, true),
    };
    hsm.bootstrap_admin(admin, &password)?;
    let config = hsm.seal_config()?;
    if json {
        crate::output::json(&serde_json::json!({
            "data_dir": dir,
            "api_certificate": api_cert_path(dir),
            "seal": {
                "type": config.seal_type.as_str(),
                "shares": config.shamir.as_ref().map_or(0, |s| s.shares),
                "threshold": config.shamir.as_ref().map_or(0, |s| s.threshold),
            },
            "unseal_keys": shares.iter().map(|s| s.expose()).collect::<Vec<_>>(),
            "admin": admin,
            "admin_password": generated.then(|| password.expose()),
        }))?;
        return Ok(());
    }
    println!("initialized the HSM in {}", dir.display());
    match config.seal_type {
        keyward_hsm::SealType::KeyFile => println!(
            "sealed by the key file {} (keep a copy apart from the store)",
            store.master_key_file().display()
        ),
        keyward_hsm::SealType::Passphrase => println!(
            "sealed by a passphrase: a node starts sealed; unseal it with `keyward operator unseal --passphrase-file F`"
        ),
        keyward_hsm::SealType::Shamir => {
            println!(
                "sealed by {} unseal keys, {} of which unseal a node (shown once: give one to each key holder)",
                shares.len(),
                config.shamir.as_ref().map_or(0, |s| s.threshold)
            );
            for (i, share) in shares.iter().enumerate() {
                println!("unseal key {}: {}", i + 1, share.expose());
            }
        }
    }
    println!(
        "API certificate (trust it with --ca-cert): {}",
        api_cert_path(dir).display()
    );
    if generated {
        println!(
            "admin {admin:?} password (shown once): {}",
            password.expose()
        );
    }
    Ok(())
}

/// A new admin password: 18 random bytes from the HSM, base64url without padding (24
/// characters).
pub(crate) fn generate_password(hsm: &Hsm, session: &Session) -> Result<Password> {
    use base64::Engine;
    let raw = zeroize::Zeroizing::new(hsm.random(session, 18)?);
    Ok(Password::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice()),
    ))
}
