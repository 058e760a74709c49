//! `keyward audit ...`: the audit log of the node given by `--server`.

use anyhow::{bail, Result};

use crate::cli::{AuditCommand, Conn};
use crate::output;

/// `keyward audit verify` and `keyward audit list`.
pub(crate) fn run(conn: &Conn, cmd: AuditCommand) -> Result<()> {
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let client = &remote.client;
        let r = async {
            match cmd {
                AuditCommand::List { from, limit, out } => {
                    let limit = usize::try_from(limit).unwrap_or(1000);
                    let entries = client.audit_entries(from, limit).await?;
                    if out.json {
                        output::json_sorted(&entries)?;
                    } else {
                        output::table(
                            &["SEQ", "TIME", "ACTOR", "EVENT", "TARGET", "OUTCOME"],
                            entries.iter().map(|e| {
                                [
                                    e.seq.to_string(),
                                    output::utc(e.time_unix_ms),
                                    e.actor.clone(),
                                    e.event.clone(),
                                    e.target.clone().unwrap_or_default(),
                                    e.outcome.clone(),
                                ]
                            }),
                        );
                    }
                    Ok(())
                }
                AuditCommand::Verify { out } => {
                    let rep = client.audit_verify().await?;
                    if out.json {
                        output::json_sorted(&rep)?;
                    } else if rep.intact {
                        println!("audit chain intact: {} entries", rep.entries);
                    }
                    if !rep.intact {
                        bail!(
                            "audit chain broken after {} entries: {}",
                            rep.entries,
                            rep.problem.unwrap_or_default()
                        );
                    }
                    Ok(())
                }
            }
        }
        .await;
        remote.finish(r).await
    })
}
