//! `keyward init`: a new HSM in a data directory: the store and master key, the API's TLS key
//! and self-signed certificate (`DATA_DIR/api-ca.pem`), and the first admin. Also the admin
//! password the quickstart generates.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Result};
use keyward_hsm::{Hsm, Password, Session, PROXY_USER};
use keyward_server::tls::{api_cert_path, provision_api_certificate};

use crate::data_dir;

/// Validity of the API's self-signed certificate, in days.
pub(crate) const API_CERT_DAYS: u32 = 3650;

/// Runs `keyward init`. The admin password comes from `password_file`, else the environment
/// variable `KEYWARD_ADMIN_PASSWORD`, else it is generated and printed once.
pub(crate) fn run(
    store: &keyward_config::HsmConfig,
    admin: &str,
    password_file: Option<&Path>,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<()> {
    let dir = store.data_dir.as_path();
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
    let (hsm, _writer) = data_dir::open_or_create_for_writing(store)?;
    let session = hsm.service_session(PROXY_USER)?;
    provision_api_certificate(&hsm, &session, dir, dns, ips, API_CERT_DAYS)?;
    let (password, generated) = match given {
        Some(p) => (p, false),
        None => (generate_password(&hsm, &session)?, true),
    };
    hsm.bootstrap_admin(admin, &password)?;
    println!("initialized the HSM in {}", dir.display());
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
