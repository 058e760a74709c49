//! Reading the configuration: the TOML file, then the `KEYWARD_*` variables on top (each a
//! figment provider of its own, so errors name it), and figment's errors turned into
//! [`Error::Invalid`] naming the key and its source.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::{validate, Config, Error, RawConfig};

/// Environment variables with the `KEYWARD_` prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "CONFIG",
    "DATA_DIR",
    "SERVER",
    "USER",
    "PASSWORD",
    "CA_CERT",
    "ADMIN_PASSWORD",
    "LOG",
    "BIN",
    // The PostgreSQL store's password: read when the store is opened, never configuration
    // (so it never shows in a dump of the settings).
    "HSM__STORE_PASSWORD",
    // A remote-mode proxy's password for its HSM user: read at start, never configuration.
    "HSM__PASSWORD",
];

/// One `KEYWARD_*` variable as a figment provider, so errors name the variable.
struct EnvVar {
    name: String,
    path: String,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value: Value = self.value.parse().unwrap_or_else(|e| match e {});
        let nested = figment::util::nest(&self.path, value);
        let dict = nested.into_dict().unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

impl Config {
    /// Reads `file`, then applies the `KEYWARD_*` variables among `env`, then validates.
    ///
    /// # Errors
    /// [`Error::Read`] if the file cannot be read; [`Error::Invalid`] naming the first bad key.
    pub fn load(
        file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Error> {
        std::fs::read_to_string(file).map_err(|e| Error::Read {
            path: file.to_owned(),
            reason: e.kind().to_string(),
        })?;
        let file_name = file.display().to_string();
        let mut figment = Figment::from(Toml::file_exact(file));
        for var in config_vars(env) {
            figment = figment.merge(var);
        }
        let raw: RawConfig = figment.extract().map_err(|e| from_figment(e, &file_name))?;
        validate(raw, &|key: &str| source_of(&figment, key, &file_name))
    }
}

/// The `KEYWARD_*` variables among `env` that are configuration keys, sorted by name.
fn config_vars(env: impl IntoIterator<Item = (String, String)>) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = env
        .into_iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("KEYWARD_")?;
            if NOT_CONFIG.iter().any(|n| n.eq_ignore_ascii_case(rest)) {
                return None;
            }
            Some(EnvVar {
                path: rest.to_ascii_lowercase().replace("__", "."),
                name: k,
                value: v,
            })
        })
        .collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// Where the value at `key` (e.g. `upstream.url`, `listeners[0].alpn`) came from.
fn source_of(figment: &Figment, key: &str, file_name: &str) -> String {
    let lookup = key.split('[').next().unwrap_or(key);
    match figment.find_metadata(lookup) {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            _ => md.name.to_string(),
        },
        None => file_name.to_owned(),
    }
}

/// Folds a possibly multi-line message (TOML syntax errors quote the line) into one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn from_figment(err: figment::Error, file_name: &str) -> Error {
    let source_name = match &err.metadata {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            _ => md.name.to_string(),
        },
        None => file_name.to_owned(),
    };
    let mut path = err.path.clone();
    let message = match &err.kind {
        figment::error::Kind::UnknownField(found, expected) => {
            if path.last() != Some(found) {
                path.push(found.clone());
            }
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            format!("unknown key (expected one of: {})", expected.join(", "))
        }
        figment::error::Kind::MissingField(field) => {
            if path.last().map(String::as_str) != Some(field.as_ref()) {
                path.push(field.to_string());
            }
            "required key is missing".to_owned()
        }
        other => one_line(&other.to_string()),
    };
    Error::Invalid {
        source_name,
        key: key_path(&path),
        message,
    }
}

/// `["listeners", "0", "address"]` → `listeners[0].address`.
fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for p in parts {
        if p.parse::<usize>().is_ok() {
            out.push_str(&format!("[{p}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}
