//! The module's configuration: a TOML file named by `KEYWARD_PKCS11_CONF` (default
//! [`DEFAULT_PATH`]). Each `[[token]]` is one cluster, one slot (slot IDs 0, 1, … in file
//! order):
//!
//! ```toml
//! [[token]]
//! label = "keyward"                              # the token label, 1 to 32 bytes of UTF-8
//! servers = ["https://hsm-0:9200", "https://hsm-1:9200"]
//! ca_file = "/etc/keyward/api-ca.pem"            # PEM CA of the nodes' API certificates
//! # username = "app"       # optional: then a PIN without ':' is this user's password
//! # client_cert_file = "/etc/keyward/app.pem"      # optional: log in by certificate
//! # client_key_file = "/etc/keyward/app.key"       #   (C_Login with an empty PIN)
//! # request_timeout_ms = 2000                    # per attempt on one node (default 2000)
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

/// Where the configuration is read when `KEYWARD_PKCS11_CONF` is not set.
pub(crate) const DEFAULT_PATH: &str = "/etc/keyward/pkcs11.toml";

/// The environment variable naming the configuration file.
pub(crate) const ENV: &str = "KEYWARD_PKCS11_CONF";

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// One per slot.
    pub(crate) token: Vec<TokenConfig>,
}

/// One cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenConfig {
    /// Token label (`CK_TOKEN_INFO.label`).
    pub(crate) label: String,
    /// The nodes' API URLs.
    pub(crate) servers: Vec<String>,
    /// PEM file of the CA that issued the nodes' API certificates.
    pub(crate) ca_file: PathBuf,
    /// A PIN without `:` is this user's password.
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// A client certificate (PEM) for the nodes' mutual TLS: `C_Login` with an empty PIN logs
    /// in as the user its common name names.
    #[serde(default)]
    pub(crate) client_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub(crate) client_key_file: Option<PathBuf>,
    /// Milliseconds per attempt on one node.
    #[serde(default = "default_timeout_ms")]
    pub(crate) request_timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    2000
}

impl TokenConfig {
    /// The timeout of one attempt on one node.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

impl Config {
    /// Reads the file `KEYWARD_PKCS11_CONF` names (or [`DEFAULT_PATH`]); the error names the
    /// file and what is wrong.
    ///
    /// The first path read is remembered: a process forked after `C_Initialize` finds the
    /// same file even when its environment was cleared (nginx workers keep only the
    /// variables its `env` directive names).
    pub(crate) fn load() -> Result<Config, String> {
        static FIRST: OnceLock<PathBuf> = OnceLock::new();
        let path = match std::env::var_os(ENV) {
            Some(p) => PathBuf::from(p),
            None => FIRST
                .get()
                .cloned()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
        };
        let _ = FIRST.set(path.clone());
        // One line on standard error: TOML's messages span several.
        Self::read(&path).map_err(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// Reads and checks one file.
    pub(crate) fn read(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let named = if std::env::var_os(ENV).is_some() {
                format!("named by {ENV}")
            } else {
                format!("the default: {ENV} is not set")
            };
            format!("cannot read {} ({named}): {e}", path.display())
        })?;
        let config: Config =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.token.is_empty() {
            return Err("no [[token]]".into());
        }
        for (i, t) in self.token.iter().enumerate() {
            if t.label.is_empty() || t.label.len() > 32 {
                return Err(format!("token[{i}].label must be 1 to 32 bytes"));
            }
            if t.servers.is_empty() {
                return Err(format!("token[{i}].servers is empty"));
            }
            if t.client_cert_file.is_some() != t.client_key_file.is_some() {
                return Err(format!(
                    "token[{i}]: client_cert_file and client_key_file go together"
                ));
            }
            if self.token[..i].iter().any(|o| o.label == t.label) {
                return Err(format!("token[{i}].label {:?} is used twice", t.label));
            }
            if !(100..=600_000).contains(&t.request_timeout_ms) {
                return Err(format!(
                    "token[{i}].request_timeout_ms must be 100 to 600000"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn parse(text: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("kw-p11-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:x}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        let r = Config::read(&path);
        std::fs::remove_file(&path).unwrap();
        r
    }

    #[test]
    fn reads_tokens_and_refuses_bad_ones_naming_the_key() {
        let ok =
            parse("[[token]]\nlabel = \"k\"\nservers = [\"https://a:1\"]\nca_file = \"/ca.pem\"\n")
                .unwrap();
        assert_eq!(ok.token[0].request_timeout_ms, 2000);
        let twice = parse(
            "[[token]]\nlabel = \"k\"\nservers = [\"https://a:1\"]\nca_file = \"/c\"\n\
             [[token]]\nlabel = \"k\"\nservers = [\"https://b:1\"]\nca_file = \"/c\"\n",
        )
        .unwrap_err();
        assert!(twice.contains("token[1].label"), "{twice}");
        let long = parse(&format!(
            "[[token]]\nlabel = \"{}\"\nservers = [\"https://a:1\"]\nca_file = \"/c\"\n",
            "x".repeat(33)
        ))
        .unwrap_err();
        assert!(long.contains("token[0].label"), "{long}");
        let unknown = parse(
            "[[token]]\nlabel = \"k\"\nservers = [\"https://a:1\"]\nca_file = \"/c\"\npin = \"1\"\n",
        )
        .unwrap_err();
        assert!(unknown.contains("pin"), "{unknown}");
        assert!(parse("").unwrap_err().contains("token"));
    }
}
