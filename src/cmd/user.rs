//! `keyward user ...`: HSM users on the nodes given by `--server`.

use anyhow::Result;
use keyward_client::{CallOptions, Client, Password};

use crate::cli::{Conn, Role, UserCommand};
use crate::output;

/// `keyward user ...`.
pub(crate) fn run(conn: &Conn, cmd: UserCommand) -> Result<()> {
    super::client_runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = user_inner(&remote.client, cmd).await;
        remote.finish(r).await
    })
}

async fn user_inner(client: &Client, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            role,
            password_file,
            out,
        } => {
            let password = Password::new(super::read_password_file(&password_file)?);
            let role = match role {
                Role::Admin => keyward_client::Role::Admin,
                Role::CryptoUser => keyward_client::Role::CryptoUser,
            };
            let u = client
                .create_user(&name, role.as_str(), &password, CallOptions::default())
                .await?;
            if out.json {
                output::json(&serde_json::json!({ "username": u.username, "role": u.role }))?;
            } else {
                println!("created user {} (role {})", u.username, u.role);
            }
        }
        UserCommand::List { out } => {
            let users = client.list_users().await?;
            if out.json {
                let mut v = serde_json::to_value(&users)?;
                // The API leaves out an unset lockout end; the CLI has always printed it as null.
                for u in v.as_array_mut().into_iter().flatten() {
                    if let Some(u) = u.as_object_mut() {
                        u.entry("lockout_ends_unix_ms")
                            .or_insert(serde_json::Value::Null);
                    }
                }
                output::json(&v)?;
            } else {
                output::table(
                    &["USER", "ROLE", "LOCKED", "FAILED-LOGINS", "SERVICE"],
                    users.iter().map(|u| {
                        [
                            u.username.clone(),
                            u.role.to_string(),
                            match u.lockout_ends_unix_ms {
                                Some(ms) if u.locked => format!("until {}", output::utc(ms)),
                                _ => u.locked.to_string(),
                            },
                            u.failed_logins.to_string(),
                            u.service.to_string(),
                        ]
                    }),
                );
            }
        }
        UserCommand::Delete { name } => {
            client.delete_user(&name).await?;
            println!("deleted user {name}");
        }
        UserCommand::ChangePassword {
            name,
            password_file,
        } => {
            set_password(client, &name, &password_file).await?;
            println!("changed the password of {name}");
        }
        UserCommand::Unlock {
            name,
            password_file,
        } => {
            // Unlocking is setting a new password (as CloudHSM's `user change-password`).
            set_password(client, &name, &password_file).await?;
            println!("unlocked {name} with a new password");
        }
    }
    Ok(())
}

/// Sets `name`'s password to the contents of `password_file`.
async fn set_password(client: &Client, name: &str, password_file: &std::path::Path) -> Result<()> {
    let password = Password::new(super::read_password_file(password_file)?);
    client.change_password(name, &password).await?;
    Ok(())
}
