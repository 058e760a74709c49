//! `keyward cert issue`: a certificate from an issuing CA for a key, in one step, written as
//! the full chain a TLS server serves.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_client::IssueRequest;

use crate::cli::{Conn, DataDirArg};
use crate::data_dir;

/// The arguments of `keyward cert issue`.
pub(crate) struct IssueArgs {
    pub(crate) ca: String,
    pub(crate) key: String,
    pub(crate) dns: Vec<String>,
    pub(crate) ip: Vec<IpAddr>,
    pub(crate) days: Option<u32>,
    pub(crate) data: DataDirArg,
}

/// Runs `keyward cert issue`: on the `--server` nodes when given, else in the local data
/// directory. Writes `out` (mode 0644: a certificate is public) and prints the serial.
pub(crate) fn run(conn: &Conn, a: IssueArgs, out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        bail!("{} exists; pass --force to replace it", out.display());
    }
    let (serial, not_after, pem) = if conn.server.is_empty() {
        let (hsm, _lock) =
            data_dir::open_for_writing(&a.data.hsm(), keyward_hsm::OpenOptions::default())?;
        let (record, pem) =
            keyward_server::ca::issue_for_proxy_key(&hsm, &a.ca, &a.key, &a.dns, &a.ip, a.days)?;
        (record.serial, rfc3339(record.not_after_unix_s), pem)
    } else {
        super::client_runtime()?.block_on(async {
            let remote = conn.connect().await?;
            let r = async {
                let key =
                    super::key_handle(&remote.client, conn.user.as_deref(), &a.key, &["private"])
                        .await?;
                let c = remote
                    .client
                    .issue_certificate(
                        &a.ca,
                        &IssueRequest {
                            profile: Some("tls-server".into()),
                            csr_pem: None,
                            key: Some(key),
                            dns: a.dns.clone(),
                            ips: a.ip.iter().map(ToString::to_string).collect(),
                            common_name: None,
                            validity_days: a.days,
                        },
                    )
                    .await?;
                Ok((
                    c.serial,
                    c.not_after,
                    format!("{}{}", c.certificate_pem, c.chain_pem),
                ))
            }
            .await;
            remote.finish(r).await
        })?
    };
    write_certificate(out, &pem)?;
    println!(
        "issued serial {serial} (not after {not_after}): wrote {}",
        out.display()
    );
    Ok(())
}

/// RFC 3339 text of a Unix time in seconds (as the API writes `not_after`).
pub(crate) fn rfc3339(unix_s: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix_s).unwrap_or(i64::MAX))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_s.to_string())
}

/// Writes a certificate file atomically (a temporary file in the same folder, renamed), so a
/// proxy reloading at that moment reads the old file or the new one, never half of one.
pub(crate) fn write_certificate(out: &Path, pem: &str) -> Result<()> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, pem.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot write {}", out.display()))?;
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
