//! `keyward login` and `keyward logout`: check credentials, save sessions to the token file
//! (`--save`) and end them (see [`crate::session`]).

use anyhow::{anyhow, Context, Result};
use keyward_client::{Client, SessionToken};

use crate::cli::Conn;
use crate::output;
use crate::session::{now_unix, server_key};

/// `keyward login`: checks the credentials and prints the role. With `--save` it logs in on
/// every `--server` node and keeps the sessions in the token file instead of logging out.
pub(crate) fn login(conn: &Conn, json: bool) -> Result<()> {
    super::client_runtime()?.block_on(async {
        if conn.save {
            return login_save(conn, json).await;
        }
        let (client, s) = conn.login().await?;
        if json {
            output::json(&serde_json::json!({ "username": s.username, "role": s.role }))?;
        } else {
            println!("logged in as {} (role {})", s.username, s.role);
        }
        let _ = client.logout().await;
        Ok(())
    })
}

async fn login_save(conn: &Conn, json: bool) -> Result<()> {
    let file = conn.token_file()?;
    let mut sessions = file.read().unwrap_or_default();
    let now = now_unix();
    sessions.retain(|_, e| {
        e.get("expires_at")
            .and_then(|t| t.as_u64())
            .is_some_and(|t| t > now)
    });
    let mut role = None;
    let mut logged_in: Vec<Client> = Vec::new();
    let r: Result<()> = async {
        for url in &conn.server {
            let one = Conn {
                server: vec![url.clone()],
                ..conn.clone()
            };
            let (client, s) = one.login().await?;
            logged_in.push(client.clone());
            let key = server_key(url);
            let token = client
                .session_token(&key)
                .ok_or_else(|| anyhow!("{key}: the login returned no session"))?;
            sessions.insert(
                key,
                serde_json::json!({
                    "user": s.username,
                    "token": token.expose_secret(),
                    "expires_at": now_unix() + s.expires_in_seconds,
                }),
            );
            role = Some((s.username, s.role));
        }
        file.write(sessions)
    }
    .await;
    if let Err(e) = r {
        for c in logged_in {
            let _ = c.logout().await;
        }
        return Err(e);
    }
    let (username, role) =
        role.context("no HSM server: pass --server URL or set KEYWARD_SERVER")?;
    if json {
        output::json(&serde_json::json!({
            "username": username, "role": role, "token_file": file.path.display().to_string(),
        }))?;
    } else {
        println!(
            "logged in as {username} (role {role}); session saved to {}",
            file.path.display()
        );
    }
    Ok(())
}

/// `keyward logout`: ends the sessions saved in the token file on their servers (with
/// `--ca-cert`) and deletes the file.
pub(crate) fn logout(conn: &Conn) -> Result<()> {
    let file = conn.token_file()?;
    let sessions = file.read()?;
    if sessions.is_empty() && !file.path.exists() {
        println!("no saved session ({} does not exist)", file.path.display());
        return Ok(());
    }
    let now = now_unix();
    let mut problems = Vec::new();
    super::client_runtime()?.block_on(async {
        for (url, e) in &sessions {
            let (Some(token), Some(exp)) = (
                e.get("token").and_then(|t| t.as_str()),
                e.get("expires_at").and_then(|t| t.as_u64()),
            ) else {
                continue;
            };
            if exp <= now {
                continue;
            }
            let one = Conn {
                server: vec![url.clone()],
                ..conn.clone()
            };
            let r = async {
                let client = one.client()?;
                client.set_session_token(url, SessionToken::new(token.to_owned()))?;
                client.logout().await?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = r {
                problems.push(format!("{url}: {e:#}"));
            }
        }
    });
    std::fs::remove_file(&file.path)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("cannot delete {}", file.path.display()))?;
    for p in &problems {
        eprintln!("keyward: warning: cannot end the session on {p}");
    }
    println!(
        "logged out {} saved session(s); deleted {}",
        sessions.len() - problems.len(),
        file.path.display()
    );
    Ok(())
}
