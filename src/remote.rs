//! Commands that talk to HSM nodes over the REST API, through `keyward-client`.
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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use keyward_client::{
    CallOptions, Client, ClientConfig, DecryptItem, EncryptItem, Key, KeyFilter, KeyTemplate,
    Password, PublicKeyInput, SessionToken, SignItem, VerifyItem,
};

/// Where the HSM nodes are and who logs in.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct Conn {
    /// HSM node URL, e.g. https://localhost:9200 (repeatable for several nodes; env
    /// KEYWARD_SERVER is comma-separated). Remote commands need it; `key list` uses it when
    /// given, else the local data directory.
    #[arg(
        long = "server",
        env = "KEYWARD_SERVER",
        value_delimiter = ',',
        global = true
    )]
    pub(crate) server: Vec<String>,
    /// User name for remote commands.
    #[arg(long, env = "KEYWARD_USER", global = true)]
    user: Option<String>,
    /// Password for remote commands (prefer env KEYWARD_PASSWORD).
    #[arg(long, env = "KEYWARD_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// CA certificate (PEM) that signed the nodes' API certificate, e.g. DATA_DIR/api-ca.pem.
    #[arg(long = "ca-cert", env = "KEYWARD_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Session token file (default $XDG_RUNTIME_DIR/keyward/session.json, else
    /// ~/.keyward/session.json). Written by `login --save`, used by commands given no
    /// password, deleted by `logout`.
    #[arg(long = "token-file", env = "KEYWARD_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// With `keyward login`: save the session token(s) to the token file, so that later
    /// commands need no password (until `keyward logout` or the session expires).
    #[arg(long, global = true)]
    save: bool,
}

/// A connected client; `saved` when it runs on tokens of the token file (then it must not log
/// out at the end, and a `401 session_invalid` means the saved session is gone).
struct Remote {
    client: Client,
    saved: bool,
}

impl Remote {
    /// Logs out unless the client runs on a saved session; maps a dead saved session to a
    /// clear message.
    async fn finish<T>(self, r: Result<T>) -> Result<T> {
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

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn server_key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// The session token file: `{"version":1,"sessions":{URL:{"user","token","expires_at"}}}`.
struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    fn read(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
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
    fn write(&self, sessions: serde_json::Map<String, serde_json::Value>) -> Result<()> {
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
        let mut rnd = [0u8; 8];
        aws_lc_rs::rand::fill(&mut rnd).map_err(|_| anyhow!("random generator failed"))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map_or("session.json".into(), |n| n.to_string_lossy()),
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
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

impl Conn {
    pub(crate) fn is_remote(&self) -> bool {
        !self.server.is_empty()
    }

    fn client(&self) -> Result<Client> {
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

    fn token_file(&self) -> Result<TokenFile> {
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
    async fn connect(&self) -> Result<Remote> {
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
    async fn login(&self) -> Result<(Client, keyward_client::Session)> {
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

#[derive(Args, Clone, Debug)]
pub(crate) struct JsonFlag {
    /// Print JSON instead of a human-readable text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Create a user (admin).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// File holding the new user's password.
        #[arg(long = "password-file")]
        password_file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List users.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a user (admin).
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Set a user's password (an admin for anyone, which also unlocks; a user for itself).
    ChangePassword {
        #[arg(long)]
        name: String,
        #[arg(long = "password-file")]
        password_file: PathBuf,
    },
    /// Unlock a locked user by setting a new password (admin).
    Unlock {
        #[arg(long)]
        name: String,
        #[arg(long = "password-file")]
        password_file: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Role {
    Admin,
    CryptoUser,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum SymType {
    Aes,
    GenericSecret,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum PairType {
    Rsa,
    Ec,
    Ed25519,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum PublicFormat {
    Pem,
    Jwk,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum FileEncoding {
    /// A PEM that names the HSM key and holds no key material.
    ReferencePem,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ImportFormat {
    Pem,
}

/// Remote key commands (they need `--server`).
#[derive(Subcommand, Debug)]
pub(crate) enum KeyRemote {
    /// Generate an AES or generic-secret key on the HSM.
    GenerateSymmetric {
        #[arg(value_enum)]
        kind: SymType,
        /// AES key size: 128, 192 or 256.
        #[arg(long, required_if_eq("kind", "aes"))]
        bits: Option<u32>,
        /// Generic-secret length in bytes.
        #[arg(long, required_if_eq("kind", "generic-secret"))]
        bytes: Option<u32>,
        #[arg(long)]
        label: String,
        /// Boolean attribute NAME=true|false (repeatable), e.g. encrypt=true.
        #[arg(long = "attr", value_parser = parse_attr)]
        attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Generate a key pair on the HSM.
    GenerateAsymmetricPair {
        #[arg(value_enum)]
        kind: PairType,
        /// RSA modulus size: 2048, 3072 or 4096 (default 2048).
        #[arg(long)]
        bits: Option<u32>,
        /// EC curve: p256, p384 or p521 (default p256).
        #[arg(long)]
        curve: Option<String>,
        #[arg(long)]
        label: String,
        /// Private key attribute NAME=true|false (repeatable).
        #[arg(long = "private-attr", value_parser = parse_attr)]
        private_attr: Vec<(String, bool)>,
        /// Public key attribute NAME=true|false (repeatable).
        #[arg(long = "public-attr", value_parser = parse_attr)]
        public_attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change one attribute of a key (true/false, or text for label and id).
    SetAttribute {
        #[arg(long)]
        key: u64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        value: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Share a key with a crypto-user (use only).
    Share {
        #[arg(long)]
        key: u64,
        /// The crypto-user (`--user` is the one who logs in).
        #[arg(long = "with", alias = "share-user")]
        with: String,
    },
    /// Stop sharing a key.
    Unshare {
        #[arg(long)]
        key: u64,
        /// The crypto-user (`--user` is the one who logs in).
        #[arg(long = "with", alias = "share-user")]
        with: String,
    },
    /// Destroy a key: your own (it must be destroyable), or as an admin with
    /// --force-by-admin any user's key (audited as key.destroy-by-admin).
    Delete {
        #[arg(long)]
        key: u64,
        /// As an admin: destroy another user's key, even one that is not destroyable.
        #[arg(long = "force-by-admin")]
        force_by_admin: bool,
    },
    /// Write a file that stands for a private key where tools expect a key file: a reference
    /// PEM that names the HSM key (label and public-key hash) and holds no key material; the
    /// proxy accepts it as `key_file` in a certificate entry.
    GenerateFile {
        /// Private key handle.
        #[arg(long)]
        key: u64,
        /// File encoding.
        #[arg(long, value_enum, default_value = "reference-pem")]
        encoding: FileEncoding,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a public key (PEM or JWK).
    Public {
        #[arg(long)]
        key: u64,
        #[arg(long, value_enum, default_value = "pem")]
        format: PublicFormat,
    },
    /// Export key TARGET wrapped under the wrapping key.
    Wrap {
        /// Wrapping key handle.
        #[arg(long)]
        key: u64,
        /// Handle of the key to wrap.
        #[arg(long)]
        target: u64,
        /// aes-kw, aes-kwp, aes-gcm, rsa-oaep or rsa-aes.
        #[arg(long)]
        mechanism: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a wrapped key under the unwrapping key.
    Unwrap {
        /// Unwrapping key handle.
        #[arg(long)]
        key: u64,
        #[arg(long)]
        mechanism: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        label: String,
        /// Spec of a secret key (aes-256, generic-secret-32, ...); absent for a PKCS#8
        /// private key.
        #[arg(long = "secret-spec")]
        secret_spec: Option<String>,
        #[arg(long = "attr", value_parser = parse_attr)]
        attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Import a PEM key: a public key directly; a PKCS#8 private key wrapped under a
    /// transport key generated on the HSM (never in plaintext over the API).
    Import {
        #[arg(value_enum)]
        format: ImportFormat,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        label: String,
        /// Attribute NAME=true|false (repeatable; a private key defaults to sign=true).
        #[arg(long = "attr", value_parser = parse_attr)]
        attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// Options shared by the crypto commands.
#[derive(Args, Debug)]
pub(crate) struct CryptoArgs {
    /// Key handle, or label: your own key of that label (of a class that fits the
    /// operation), else the one such key shared with you.
    #[arg(long)]
    key: String,
    /// Mechanism, e.g. ecdsa-sha256, ed25519, rsa-pss-sha256, aes-gcm, hmac-sha256.
    #[arg(long)]
    mechanism: String,
    /// Input file (default stdin).
    #[arg(long = "in")]
    input: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum CryptoCommand {
    /// Sign the input; the raw signature goes to --out (default stdout).
    Sign {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a signature over the input: prints `valid` (exit 0) or `invalid` (exit 1).
    Verify {
        #[command(flatten)]
        a: CryptoArgs,
        /// File holding the raw signature.
        #[arg(long)]
        signature: PathBuf,
    },
    /// Encrypt the input.
    Encrypt {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
        /// File with additional authenticated data (aes-gcm).
        #[arg(long = "aad-file")]
        aad_file: Option<PathBuf>,
    },
    /// Decrypt the input.
    Decrypt {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
        /// File with additional authenticated data (aes-gcm).
        #[arg(long = "aad-file")]
        aad_file: Option<PathBuf>,
    },
    /// HMAC of the input.
    Hmac {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Check the audit hash chain of the node (admin); exit 1 when it is broken.
    Verify {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show audit entries (admin): sequence number, time (UTC), actor, event, target, outcome.
    List {
        /// First entry (sequence number, from 1).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most entries to show, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// `ms` since the Unix epoch as RFC 3339 UTC, to the second.
fn utc(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn parse_attr(s: &str) -> Result<(String, bool), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=true|false, got {s:?}"))?;
    let value = value
        .parse::<bool>()
        .map_err(|_| format!("{name}: expected true or false, got {value:?}"))?;
    Ok((name.to_owned(), value))
}

fn template(label: &str, attrs: &[(String, bool)]) -> KeyTemplate {
    attrs
        .iter()
        .fold(KeyTemplate::new(label), |t, (n, v)| t.with(n.clone(), *v))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn read_secret_file(path: &Path) -> Result<Password> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Password::new(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            Ok(buf)
        }
    }
}

fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => {
            // Outputs may be plaintexts or wrapped keys: readable by the owner only.
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            f.write_all(bytes)
                .with_context(|| format!("cannot write {}", p.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

fn key_json(k: &Key) -> serde_json::Value {
    let a = &k.attributes;
    serde_json::json!({
        "handle": k.handle,
        "linked_handle": k.linked_handle,
        "class": k.class,
        "spec": k.spec,
        "owner": k.owner,
        "shared_with": k.shared_with,
        "attributes": {
            "label": a.label, "id": a.id, "sign": a.sign, "verify": a.verify,
            "encrypt": a.encrypt, "decrypt": a.decrypt, "wrap": a.wrap, "unwrap": a.unwrap,
            "derive": a.derive, "extractable": a.extractable, "sensitive": a.sensitive,
            "token": a.token, "trusted": a.trusted, "wrap_with_trusted": a.wrap_with_trusted,
            "modifiable": a.modifiable, "destroyable": a.destroyable, "local": a.local,
            "never_extractable": a.never_extractable, "always_sensitive": a.always_sensitive,
            "check_value": a.check_value,
        },
    })
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn flags(k: &Key) -> String {
    let a = &k.attributes;
    [
        (a.sign, "sign"),
        (a.verify, "verify"),
        (a.encrypt, "encrypt"),
        (a.decrypt, "decrypt"),
        (a.wrap, "wrap"),
        (a.unwrap, "unwrap"),
        (a.derive, "derive"),
        (a.extractable, "extractable"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join(",")
}

fn print_keys(keys: &[Key], json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::Value::Array(
            keys.iter().map(key_json).collect(),
        ));
    }
    crate::table::print(
        &[
            "HANDLE",
            "CLASS",
            "TYPE",
            "LINKED",
            "OWNER",
            "ATTRIBUTES",
            "LABEL",
        ],
        keys.iter().map(|k| {
            [
                k.handle.to_string(),
                k.class.clone(),
                k.spec.clone(),
                k.linked_handle.map(|h| h.to_string()).unwrap_or_default(),
                k.owner.clone(),
                flags(k),
                k.attributes.label.clone(),
            ]
        }),
    );
    Ok(())
}

/// `keyward login`: checks the credentials and prints the role. With `--save` it logs in on
/// every `--server` node and keeps the sessions in the token file instead of logging out.
pub(crate) fn login(conn: &Conn, json: bool) -> Result<()> {
    runtime()?.block_on(async {
        if conn.save {
            return login_save(conn, json).await;
        }
        let (client, s) = conn.login().await?;
        if json {
            print_json(&serde_json::json!({ "username": s.username, "role": s.role }))?;
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
        print_json(&serde_json::json!({
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
    runtime()?.block_on(async {
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

/// `keyward user ...`.
pub(crate) fn user(conn: &Conn, cmd: UserCommand) -> Result<()> {
    runtime()?.block_on(async {
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
            let password = read_secret_file(&password_file)?;
            let role = match role {
                Role::Admin => "admin",
                Role::CryptoUser => "crypto-user",
            };
            let u = client
                .create_user(&name, role, &password, CallOptions::default())
                .await?;
            if out.json {
                print_json(&serde_json::json!({ "username": u.username, "role": u.role }))?;
            } else {
                println!("created user {} (role {})", u.username, u.role);
            }
        }
        UserCommand::List { out } => {
            let users = client.list_users().await?;
            if out.json {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "username": u.username, "role": u.role, "locked": u.locked,
                            "failed_logins": u.failed_logins, "service": u.service,
                            "lockout_ends_unix_ms": u.lockout_ends_unix_ms,
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(v))?;
            } else {
                crate::table::print(
                    &["USER", "ROLE", "LOCKED", "FAILED-LOGINS", "SERVICE"],
                    users.iter().map(|u| {
                        [
                            u.username.clone(),
                            u.role.clone(),
                            match u.lockout_ends_unix_ms {
                                Some(ms) if u.locked => format!("until {}", utc(ms)),
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
            client
                .change_password(&name, &read_secret_file(&password_file)?)
                .await?;
            println!("changed the password of {name}");
        }
        UserCommand::Unlock {
            name,
            password_file,
        } => {
            client
                .change_password(&name, &read_secret_file(&password_file)?)
                .await?;
            println!("unlocked {name} with a new password");
        }
    }
    Ok(())
}

/// Parses `--filter` values of `key list`.
fn key_filter(filters: &[String]) -> Result<KeyFilter> {
    let mut f = KeyFilter::default();
    for item in filters {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("--filter {item:?}: expected NAME=VALUE"))?;
        match name {
            "attr.label" | "label" => f.label = Some(value.to_owned()),
            "class" => f.class = Some(value.to_owned()),
            "type" | "key-type" => f.key_type = Some(value.to_owned()),
            _ => {
                let attr = name.strip_prefix("attr.").unwrap_or(name);
                let v: bool = value.parse().map_err(|_| {
                    anyhow!("--filter {item:?}: expected attr.NAME=true|false, class=, type=")
                })?;
                f.attributes.push((attr.to_owned(), v));
            }
        }
    }
    Ok(f)
}

/// `keyward key list --server ...`.
pub(crate) fn key_list(conn: &Conn, filters: &[String], json: bool) -> Result<()> {
    let mut filter = key_filter(filters)?;
    runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let client = &remote.client;
        let mut keys = Vec::new();
        let r: Result<()> = async {
            loop {
                let page = client.list_keys(&filter).await?;
                keys.extend(page.keys);
                match page.next {
                    Some(n) => filter.after = Some(n),
                    None => break Ok(()),
                }
            }
        }
        .await;
        remote.finish(r).await?;
        print_keys(&keys, json)
    })
}

/// `keyward key <remote command>`.
pub(crate) fn key(conn: &Conn, cmd: KeyRemote) -> Result<()> {
    runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = key_inner(&remote.client, cmd).await;
        remote.finish(r).await
    })
}

fn print_key(k: &Key, json: bool, what: &str) -> Result<()> {
    if json {
        print_json(&key_json(k))
    } else {
        println!(
            "{what} {} key {:?}: handle {}",
            k.spec, k.attributes.label, k.handle
        );
        Ok(())
    }
}

async fn key_inner(client: &Client, cmd: KeyRemote) -> Result<()> {
    match cmd {
        KeyRemote::GenerateSymmetric {
            kind,
            bits,
            bytes,
            label,
            attr,
            out,
        } => {
            let spec = match kind {
                SymType::Aes => format!("aes-{}", bits.context("--bits is required for aes")?),
                SymType::GenericSecret => format!(
                    "generic-secret-{}",
                    bytes.context("--bytes is required for generic-secret")?
                ),
            };
            let k = client
                .generate_symmetric(&spec, &template(&label, &attr), CallOptions::default())
                .await?;
            print_key(&k, out.json, "generated")?;
        }
        KeyRemote::GenerateAsymmetricPair {
            kind,
            bits,
            curve,
            label,
            private_attr,
            public_attr,
            out,
        } => {
            let spec = match kind {
                PairType::Rsa => {
                    if curve.is_some() {
                        bail!("--curve is for ec keys");
                    }
                    format!("rsa-{}", bits.unwrap_or(2048))
                }
                PairType::Ec => {
                    if bits.is_some() {
                        bail!("--bits is for rsa keys; ec takes --curve");
                    }
                    let c = curve.as_deref().unwrap_or("p256").to_ascii_lowercase();
                    format!("ec-{}", c.trim_start_matches("ec-").replace('-', ""))
                }
                PairType::Ed25519 => {
                    if bits.is_some() || curve.is_some() {
                        bail!("ed25519 takes neither --bits nor --curve");
                    }
                    "ed25519".to_owned()
                }
            };
            let pair = client
                .generate_pair(
                    &spec,
                    &template(&label, &private_attr),
                    &template(&label, &public_attr),
                    CallOptions::default(),
                )
                .await?;
            if out.json {
                print_json(&serde_json::json!({
                    "private": key_json(&pair.private),
                    "public": key_json(&pair.public),
                }))?;
            } else {
                println!(
                    "generated {spec} key pair {label:?}: private key handle {}, public key handle {}",
                    pair.private.handle, pair.public.handle
                );
            }
        }
        KeyRemote::SetAttribute {
            key,
            name,
            value,
            out,
        } => {
            let v = match value.as_str() {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                _ => serde_json::Value::String(value.clone()),
            };
            let k = client.set_attribute(key, &name, v).await?;
            print_key(&k, out.json, &format!("set {name}={value} on"))?;
        }
        KeyRemote::Share { key, with } => {
            client.share(key, &with, CallOptions::default()).await?;
            println!("shared key {key} with {with}");
        }
        KeyRemote::Unshare { key, with } => {
            client.unshare(key, &with).await?;
            println!("stopped sharing key {key} with {with}");
        }
        KeyRemote::Delete {
            key,
            force_by_admin,
        } => {
            if force_by_admin {
                client.destroy_as_admin(key).await?;
            } else {
                client.destroy(key).await?;
            }
            println!("deleted key {key}");
        }
        KeyRemote::GenerateFile {
            key,
            encoding: FileEncoding::ReferencePem,
            out,
        } => {
            let info = client.get_key(key).await?;
            if info.class != "private" {
                return Err(anyhow!(
                    "key {key} is a {} key; reference files name private keys",
                    info.class
                ));
            }
            let public = client.public_key(key).await?;
            let reference = keyward_hsm::KeyReference {
                v: 1,
                label: info.attributes.label.clone(),
                handle: key,
                spec: info.spec.clone(),
                spki_sha256: keyward_hsm::spki_sha256(&public.der),
            };
            write_output(Some(&out), reference.to_pem().as_bytes())?;
            println!(
                "wrote a reference to key {key} ({:?}) to {}",
                reference.label,
                out.display()
            );
        }
        KeyRemote::Public { key, format } => {
            let p = client.public_key(key).await?;
            match format {
                PublicFormat::Pem => print!("{}", p.pem),
                PublicFormat::Jwk => {
                    print_json(&p.jwk.ok_or_else(|| anyhow!("key {key} has no JWK form"))?)?
                }
            }
        }
        KeyRemote::Wrap {
            key,
            target,
            mechanism,
            out,
        } => {
            let wrapped = client.wrap(key, &mechanism, target).await?;
            write_output(Some(&out), &wrapped)?;
            println!(
                "wrote key {target} wrapped with {mechanism} under key {key} to {}",
                out.display()
            );
        }
        KeyRemote::Unwrap {
            key,
            mechanism,
            input,
            label,
            secret_spec,
            attr,
            out,
        } => {
            let wrapped = read_input(Some(&input))?;
            let k = client
                .unwrap(
                    key,
                    &mechanism,
                    &wrapped,
                    secret_spec.as_deref(),
                    &template(&label, &attr),
                    CallOptions::default(),
                )
                .await?;
            print_key(&k, out.json, "unwrapped")?;
        }
        KeyRemote::Import {
            format: ImportFormat::Pem,
            input,
            label,
            attr,
            out,
        } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let block = pem::parse(text.as_bytes())
                .with_context(|| format!("{} is not PEM", input.display()))?;
            let k = match block.tag() {
                "PUBLIC KEY" => {
                    client
                        .import_public(
                            &PublicKeyInput::Pem(text.clone()),
                            &template(&label, &attr),
                            CallOptions::default(),
                        )
                        .await?
                }
                "PRIVATE KEY" => {
                    let mut attr = attr;
                    if attr.is_empty() {
                        attr.push(("sign".to_owned(), true));
                    }
                    let der = zeroize::Zeroizing::new(block.into_contents());
                    import_private(client, &der, &template(&label, &attr)).await?
                }
                other => bail!(
                    "{}: PEM {other:?} is not supported; give a PUBLIC KEY or a PKCS#8 PRIVATE KEY \
                     (openssl pkcs8 -topk8 -nocrypt converts)",
                    input.display()
                ),
            };
            print_key(&k, out.json, "imported")?;
        }
    }
    Ok(())
}

/// Imports a PKCS#8 private key: a transport RSA pair is generated on the HSM, the key is
/// wrapped locally with `rsa-aes` (CKM_RSA_AES_KEY_WRAP) under its public half, unwrapped on
/// the HSM, and the transport pair destroyed.
async fn import_private(client: &Client, pkcs8: &[u8], template: &KeyTemplate) -> Result<Key> {
    // An unsupported or broken key is refused here, before a transport key is made.
    keyward_hsm::private_key_spec(pkcs8)?;
    let mut rnd = [0u8; 8];
    aws_lc_rs::rand::fill(&mut rnd).map_err(|_| anyhow!("random generator failed"))?;
    let label = format!(
        "import-transport-{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let pair = client
        .generate_pair(
            "rsa-2048",
            &KeyTemplate::new(&label)
                .with("unwrap", true)
                .with("extractable", false),
            &KeyTemplate::new(&label).with("wrap", true),
            CallOptions::default(),
        )
        .await
        .context("cannot generate the transport key")?;
    let result = async {
        let spki = client.public_key(pair.public.handle).await?.der;
        let wrapped = rsa_aes_wrap(&spki, pkcs8)?;
        Ok::<_, anyhow::Error>(
            client
                .unwrap(
                    pair.private.handle,
                    "rsa-aes",
                    &wrapped,
                    None,
                    template,
                    CallOptions::default(),
                )
                .await?,
        )
    }
    .await;
    let d1 = client.destroy(pair.private.handle).await;
    let d2 = client.destroy(pair.public.handle).await;
    let k = result?;
    d1.and(d2).context("cannot destroy the transport key")?;
    Ok(k)
}

/// PKCS#11 CKM_RSA_AES_KEY_WRAP: RSA-OAEP-SHA-256 of a fresh AES-256 key ‖ AES-KWP of `target`.
fn rsa_aes_wrap(spki: &[u8], target: &[u8]) -> Result<Vec<u8>> {
    use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
    let mut aes = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(aes.as_mut()).map_err(|_| anyhow!("random generator failed"))?;
    let rsa = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(spki).map_err(|_| anyhow!("bad transport public key"))?,
    )
    .map_err(|_| anyhow!("bad transport public key"))?;
    let mut out = vec![0u8; rsa.ciphertext_size()];
    let n = rsa
        .encrypt(&OAEP_SHA256_MGF1SHA256, aes.as_ref(), &mut out, None)
        .map_err(|_| anyhow!("rsa-oaep encryption failed"))?
        .len();
    out.truncate(n);
    let kek = AesKek::new(&AES_256, aes.as_ref()).map_err(|_| anyhow!("aes kek"))?;
    let mut kwp = vec![0u8; target.len().div_ceil(8) * 8 + 8];
    let m = kek
        .wrap_with_padding(target, &mut kwp)
        .map_err(|_| anyhow!("aes-kwp wrap failed"))?
        .len();
    kwp.truncate(m);
    out.extend_from_slice(&kwp);
    Ok(out)
}

/// `keyward crypto ...`. Returns whether a verification succeeded (always true otherwise).
pub(crate) fn crypto(conn: &Conn, cmd: CryptoCommand) -> Result<bool> {
    runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let r = crypto_inner(&remote.client, conn.user.as_deref(), cmd).await;
        remote.finish(r).await
    })
}

/// The handle `key` names: a number is a handle; anything else a label, looked up among the
/// keys of `classes` that `me` owns, else among those shared with the caller.
async fn key_handle(client: &Client, me: Option<&str>, key: &str, classes: &[&str]) -> Result<u64> {
    if let Ok(h) = key.parse::<u64>() {
        return Ok(h);
    }
    let mut found = Vec::new();
    for class in classes {
        let page = client
            .list_keys(&KeyFilter {
                label: Some(key.to_owned()),
                class: Some((*class).to_owned()),
                limit: Some(1000),
                ..KeyFilter::default()
            })
            .await?;
        found.extend(page.keys);
    }
    let own: Vec<&Key> = found
        .iter()
        .filter(|k| Some(k.owner.as_str()) == me)
        .collect();
    match (own.as_slice(), found.as_slice()) {
        ([one], _) => Ok(one.handle),
        ([], [one]) => Ok(one.handle),
        ([], []) => bail!(
            "no {} key labelled {key:?} that you own or that is shared with you",
            classes.join(" or ")
        ),
        _ => bail!(
            "the label {key:?} names {} keys ({}); use a handle",
            found.len(),
            found
                .iter()
                .map(|k| format!("{} {} of {}", k.handle, k.class, k.owner))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn read_aad(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    path.map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()
}

async fn crypto_inner(client: &Client, me: Option<&str>, cmd: CryptoCommand) -> Result<bool> {
    // The classes a key used by each operation may have (the private or secret half first).
    let using = ["private", "secret"];
    let checking = ["public", "secret"];
    match cmd {
        CryptoCommand::Sign { a, out } => {
            let data = read_input(a.input.as_deref())?;
            let sig = client
                .sign(&SignItem::message(
                    key_handle(client, me, &a.key, &using).await?,
                    a.mechanism,
                    data,
                ))
                .await?;
            write_output(out.as_deref(), &sig)?;
        }
        CryptoCommand::Hmac { a, out } => {
            let data = read_input(a.input.as_deref())?;
            let mac = client
                .hmac(&SignItem::message(
                    key_handle(client, me, &a.key, &["secret"]).await?,
                    a.mechanism,
                    data,
                ))
                .await?;
            write_output(out.as_deref(), &mac)?;
        }
        CryptoCommand::Verify { a, signature } => {
            let data = read_input(a.input.as_deref())?;
            let sig = std::fs::read(&signature)
                .with_context(|| format!("cannot read {}", signature.display()))?;
            let ok = client
                .verify(&VerifyItem::message(
                    key_handle(client, me, &a.key, &checking).await?,
                    a.mechanism,
                    data,
                    sig,
                ))
                .await?;
            println!("{}", if ok { "valid" } else { "invalid" });
            return Ok(ok);
        }
        CryptoCommand::Encrypt { a, out, aad_file } => {
            let key = key_handle(client, me, &a.key, &checking).await?;
            let mut item = EncryptItem::new(key, a.mechanism, read_input(a.input.as_deref())?);
            item.aad = read_aad(aad_file.as_deref())?;
            let ct = client.encrypt(&item).await?;
            write_output(out.as_deref(), &ct)?;
        }
        CryptoCommand::Decrypt { a, out, aad_file } => {
            let key = key_handle(client, me, &a.key, &using).await?;
            let mut item = DecryptItem::new(key, a.mechanism, read_input(a.input.as_deref())?);
            item.aad = read_aad(aad_file.as_deref())?;
            let pt = zeroize::Zeroizing::new(client.decrypt(&item).await?);
            write_output(out.as_deref(), &pt)?;
        }
    }
    Ok(true)
}

/// `keyward audit verify` and `keyward audit list`.
pub(crate) fn audit(conn: &Conn, cmd: AuditCommand) -> Result<()> {
    runtime()?.block_on(async {
        let remote = conn.connect().await?;
        let client = &remote.client;
        let r = async {
            match cmd {
                AuditCommand::List { from, limit, out } => {
                    let limit = usize::try_from(limit).unwrap_or(1000);
                    let entries = client.audit_entries(from, limit).await?;
                    if out.json {
                        print_json(&serde_json::to_value(&entries)?)?;
                    } else {
                        crate::table::print(
                            &["SEQ", "TIME", "ACTOR", "EVENT", "TARGET", "OUTCOME"],
                            entries.iter().map(|e| {
                                [
                                    e.seq.to_string(),
                                    utc(e.time_unix_ms),
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
                        print_json(&serde_json::json!({
                            "entries": rep.entries, "intact": rep.intact, "problem": rep.problem,
                        }))?;
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
