//! `keyward cert`: a self-signed TLS server certificate or a PKCS#10 CSR for a key in the
//! local data directory, signed inside the HSM ([`keyward_server::pki`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_hsm::{KeyClass, PROXY_USER};
use keyward_server::pki;

use crate::cli::{CertCommand, Conn};
use crate::data_dir;

/// Runs `keyward cert self-signed`, `keyward cert csr` or `keyward cert issue`.
pub(crate) fn run(conn: &Conn, cmd: CertCommand) -> Result<()> {
    let (key, dns, ip, out, force, data, days, csr) = match cmd {
        CertCommand::Issue {
            ca,
            key,
            dns,
            ip,
            days,
            out,
            force,
            data,
        } => {
            let args = super::cert_issue::IssueArgs {
                ca,
                key,
                dns,
                ip,
                days,
                data,
            };
            return super::cert_issue::run(conn, args, &out, force);
        }
        CertCommand::SelfSigned {
            key,
            dns,
            ip,
            days,
            out,
            force,
            data,
        } => (key, dns, ip, out, force, data, days, false),
        CertCommand::Csr {
            key,
            dns,
            ip,
            out,
            force,
            data,
        } => (key, dns, ip, out, force, data, 0, true),
    };
    if out.exists() && !force {
        bail!("{} exists; pass --force to replace it", out.display());
    }
    let reserved = [data_dir::STORE_FILE, data_dir::MASTER_KEY_FILE];
    if out.parent().is_some_and(|p| same_dir(p, &data.data_dir))
        && out
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| reserved.iter().any(|r| n.starts_with(r)))
    {
        bail!("{} is one of the HSM's own files", out.display());
    }
    if !csr && days == 0 {
        bail!("--days must be at least 1");
    }
    let hsm = data_dir::open_to_read(&data.hsm())?;
    let session = hsm.service_session(PROXY_USER)?;
    let info = hsm.find_by_label(&session, &key, KeyClass::Private)?;
    let signer = pki::HsmCertKey::new(hsm.signer(&session, info.handle)?)?;
    let pem = if csr {
        pki::csr(&signer, &dns, &ip)?
    } else {
        pki::self_signed(&signer, &dns, &ip, days)?
    };
    std::fs::write(&out, pem).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Whether two paths name the same existing folder (an empty parent means ".").
fn same_dir(a: &Path, b: &Path) -> bool {
    let a = if a.as_os_str().is_empty() {
        Path::new(".")
    } else {
        a
    };
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
