//! `keyward ca …`: create CAs, issue, list, revoke and fetch CRLs on the nodes given by
//! `--server` (the CA logic is the node's: `keyward_server::ca`).

use std::path::Path;

use anyhow::{Context, Result};
use keyward_client::{Client, CreateCaRequest, IssueRequest};

use super::{key_handle, write_output};
use crate::cli::{CaCommand, Conn};
use crate::output;

/// `keyward ca …`.
pub(crate) fn run(conn: &Conn, cmd: CaCommand) -> Result<()> {
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = ca_inner(&remote.client, conn.user.as_deref(), cmd).await;
        remote.finish(r).await
    })
}

fn write_text(out: Option<&Path>, text: &str) -> Result<()> {
    write_output(out, text.as_bytes())
}

async fn ca_inner(client: &Client, me: Option<&str>, cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Create {
            name,
            common_name,
            key_type,
            days,
            parent,
            path_len,
            permitted_dns,
            allow_dns,
            allow_ip,
            max_days,
            crl_period_s,
            crl_urls,
            ocsp_urls,
            out,
        } => {
            let ca = client
                .create_ca(&CreateCaRequest {
                    name,
                    common_name,
                    key_type: Some(key_type),
                    validity_days: days,
                    parent,
                    path_len,
                    permitted_dns,
                    allowed_dns: allow_dns,
                    allow_ip,
                    max_validity_days: max_days,
                    crl_period_s,
                    crl_urls,
                    ocsp_urls,
                })
                .await?;
            if out.json {
                output::json(&ca)?;
            } else {
                println!(
                    "created CA {} ({}), key {}, valid until {}",
                    ca.name, ca.subject, ca.key, ca.not_after
                );
            }
        }
        CaCommand::List { out } => {
            let cas = client.cas().await?;
            if out.json {
                output::json(&cas)?;
            } else {
                output::table(
                    &["CA", "PARENT", "SUBJECT", "NOT-AFTER", "OWNER", "REVOKED"],
                    cas.iter().map(|c| {
                        [
                            c.name.clone(),
                            c.parent.clone().unwrap_or_else(|| "-".into()),
                            c.subject.clone(),
                            c.not_after.clone(),
                            c.owner.clone(),
                            c.revoked.to_string(),
                        ]
                    }),
                );
            }
        }
        CaCommand::Certificate { name, out } => {
            let pem = client.ca_certificate_chain(&name).await?;
            write_text(out.as_deref(), &pem)?;
        }
        CaCommand::Issue {
            name,
            profile,
            csr,
            key,
            dns,
            ip,
            common_name,
            days,
            out,
            fullchain,
            force,
            json,
        } => {
            if out.exists() && !force {
                anyhow::bail!("{} exists; pass --force to replace it", out.display());
            }
            let csr_pem = csr
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .transpose()?;
            let key = match key {
                Some(k) => Some(key_handle(client, me, &k, &["private"]).await?),
                None => None,
            };
            let cert = client
                .issue_certificate(
                    &name,
                    &IssueRequest {
                        profile: Some(profile),
                        csr_pem,
                        key,
                        dns,
                        ips: ip.iter().map(ToString::to_string).collect(),
                        common_name,
                        validity_days: days,
                    },
                )
                .await?;
            let mut pem = cert.certificate_pem.clone();
            if fullchain {
                pem.push_str(&cert.chain_pem);
            }
            std::fs::write(&out, pem).with_context(|| format!("cannot write {}", out.display()))?;
            if json.json {
                output::json(&cert)?;
            } else {
                println!(
                    "issued serial {} ({}) until {}: wrote {}",
                    cert.serial,
                    cert.subject,
                    cert.not_after,
                    out.display()
                );
            }
        }
        CaCommand::Certificates { name, out } => {
            let certs = client.issued_certificates(&name).await?;
            if out.json {
                output::json(&certs)?;
            } else {
                output::table(
                    &["SERIAL", "PROFILE", "SUBJECT", "NOT-AFTER", "STATUS"],
                    certs.iter().map(|c| {
                        [
                            c.serial.clone(),
                            c.profile.clone(),
                            c.subject.clone(),
                            c.not_after.clone(),
                            c.status.clone(),
                        ]
                    }),
                );
            }
        }
        CaCommand::Revoke {
            name,
            serial,
            reason,
        } => {
            let c = client
                .revoke_certificate(&name, &serial, Some(&reason))
                .await?;
            println!(
                "revoked serial {} of CA {} ({}); a new CRL is published",
                c.serial,
                c.ca,
                c.revocation_reason.as_deref().unwrap_or("unspecified")
            );
        }
        CaCommand::Crl { name, publish, out } => {
            let pem = if publish {
                client.publish_crl(&name).await?.crl_pem
            } else {
                pem::encode(&pem::Pem::new("X509 CRL", client.crl(&name).await?))
            };
            write_text(out.as_deref(), &pem)?;
        }
    }
    Ok(())
}
