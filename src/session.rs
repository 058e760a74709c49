//! Connecting to HSM nodes for the remote commands, through `keyward-client`.
//!
//! Connection flags are global (`--server`, `--user`, `--password`, `--ca-cert`, or their
//! `KEYWARD_*` environment variables). With a password every command logs in first and logs
//! out at the end.
//!
//! Saved sessions: `keyward login --save` logs in on each `--server` node and writes the
//! session tokens to a token file (`--token-file` / `KEYWARD_TOKEN_FILE`; default
//! `$XDG_RUNTIME_DIR/keyward/session.json`, else `~/.keyward/session.json`): per server URL
//! the bearer token, the user and the expiry (unix seconds); the file is 0600 (written to a
//! temp file created with O_EXCL, then renamed), its folder 0700. A later command without a
//! password uses the saved token of each server and does not log out; `keyward logout` ends
//! the saved sessions and deletes the file. Tokens are never printed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use keyward_client::{Client, ClientConfig, Password, SessionToken};

use crate::cli::Conn;

/// A connected client; `saved` when it runs on tokens of the token file (then it must not log
/// out at the end, and a `401 session_invalid` means the saved session is gone).
pub(crate) struct Remote {
    pub(crate) client: Client,
    saved: bool,
}

impl Remote {
    /// Logs out unless the client runs on a saved session; maps a dead saved session to a
    /// clear message.
    pub(crate) async fn finish<T>(self, r: Result<T>) -> Result<T> {
        if !self.saved {
            let _ = self.client.logout().await;
            return r;
        }
        r.map_err(|e| {
            let dead = e.chain().any(|c| {
                c.downcast_ref::<keyward_client::Error>()
                    .is_some_and(|e| e.status() == Some(401) && e.code() == Some("session_invalid"))
            });
            if dead {
                anyhow!("the saved session is no longer valid (logged out or expired): run `keyward login --save` again")
            } else {
                e
            }
        })
    }
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn server_key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// The session token file: `{"version":1,"sessions":{URL:{"user","token","expires_at"}}}`.
pub(crate) struct TokenFile {
    pub(crate) path: PathBuf,
}

impl TokenFile {
    pub(crate) fn read(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()))
            }
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a keyward token file", self.path.display()))?;
        Ok(v.get("sessions")
            .and_then(|s| s.as_object())
            .cloned()
            .unwrap_or_default())
    }

    /// Writes the sessions: a new 0600 temp file (O_EXCL) in the same folder, renamed over.
    pub(crate) fn write(&self, sessions: serde_json::Map<String, serde_json::Value>) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map_or("session.json".into(), |n| n.to_string_lossy()),
            tmp_suffix()
        ));
        let body = zeroize::Zeroizing::new(serde_json::to_vec_pretty(
            &serde_json::json!({ "version": 1, "sessions": sessions }),
        )?);
        let r = (|| -> Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
                .with_context(|| format!("cannot write {}", self.path.display()))
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }
}

/// 16 hex digits for a temp file's name, unlikely to repeat: the process id and the time
/// hashed with a per-process random seed. The file is created with O_EXCL, so a repeat fails
/// and never overwrites; the name needs no secrecy.
fn tmp_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

impl Conn {
    pub(crate) fn is_remote(&self) -> bool {
        !self.server.is_empty()
    }

    pub(crate) fn client(&self) -> Result<Client> {
        if self.server.is_empty() {
            bail!("no HSM server: pass --server URL or set KEYWARD_SERVER");
        }
        let ca = self
            .ca_cert
            .as_ref()
            .context("no CA certificate: pass --ca-cert FILE or set KEYWARD_CA_CERT")?;
        let config = ClientConfig::new(self.server.iter().map(|s| s.trim().to_owned()))
            .ca_cert_pem_file(ca)?;
        Ok(Client::new(config)?)
    }

    pub(crate) fn token_file(&self) -> Result<TokenFile> {
        if let Some(p) = &self.token_file {
            return Ok(TokenFile { path: p.clone() });
        }
        let path = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d).join("keyward").join("session.json"),
            None => PathBuf::from(std::env::var_os("HOME").context(
                "no token file: pass --token-file FILE or set KEYWARD_TOKEN_FILE (HOME is not set)",
            )?)
            .join(".keyward")
            .join("session.json"),
        };
        Ok(TokenFile { path })
    }

    /// A client of the nodes: logged in as `--user` with the password, or, when no password
    /// is given, on the sessions saved by `keyward login --save` for every `--server`.
    pub(crate) async fn connect(&self) -> Result<Remote> {
        if self.save {
            bail!("--save is only for `keyward login`");
        }
        if self.password.is_some() {
            let (client, _) = self.login().await?;
            return Ok(Remote {
                client,
                saved: false,
            });
        }
        let client = self.client()?;
        let sessions = self.token_file()?.read()?;
        let now = now_unix();
        let mut missing = Vec::new();
        for url in &self.server {
            let key = server_key(url);
            let entry = sessions.get(&key);
            let user = entry.and_then(|e| e.get("user")).and_then(|u| u.as_str());
            let token = entry.and_then(|e| e.get("token")).and_then(|t| t.as_str());
            let expires = entry
                .and_then(|e| e.get("expires_at"))
                .and_then(|t| t.as_u64())
                .unwrap_or(0);
            match (user, token) {
                (Some(u), Some(t)) if self.user.as_deref().is_none_or(|want| want == u) => {
                    if expires <= now {
                        bail!(
                            "the saved session for {key} has expired: run `keyward login --save` again"
                        );
                    }
                    client.set_session_token(&key, SessionToken::new(t.to_owned()))?;
                }
                _ => missing.push(key),
            }
        }
        if !missing.is_empty() {
            bail!(
                "no password: pass --password or set KEYWARD_PASSWORD, or run `keyward login --save` \
                 first (no saved session{} for {})",
                self.user
                    .as_deref()
                    .map(|u| format!(" of {u:?}"))
                    .unwrap_or_default(),
                missing.join(", ")
            );
        }
        Ok(Remote {
            client,
            saved: true,
        })
    }

    /// A client logged in as `--user`; returns the role too.
    pub(crate) async fn login(&self) -> Result<(Client, keyward_client::Session)> {
        let client = self.client()?;
        let user = self
            .user
            .as_deref()
            .context("no user: pass --user NAME or set KEYWARD_USER")?;
        let password = self
            .password
            .clone()
            .context("no password: pass --password or set KEYWARD_PASSWORD")?;
        let session = client
            .login(user, Password::new(password))
            .await
            .with_context(|| format!("login as {user:?} failed"))?;
        Ok((client, session))
    }
}
