//! `[log]`: the log filter, line format and access log.

use serde::Deserialize;

use crate::check::Context;
use crate::{yes, Error};

/// `[log]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// `level`: a `tracing` filter such as `info` or `keyward_proxy=debug,info`. Default `info`.
    pub level: String,
    /// `format`: `text` (default) or `json`.
    pub format: LogFormat,
    /// `access_log`: one line per request (target `keyward::access`). Default true.
    pub access_log: bool,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "\"text\" or \"json\"")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [log] table")]
pub(crate) struct RawLog {
    #[serde(default = "default_level")]
    level: String,
    #[serde(default = "default_format")]
    format: LogFormat,
    #[serde(default = "yes")]
    access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: default_level(),
            format: default_format(),
            access_log: true,
        }
    }
}

fn default_level() -> String {
    "info".into()
}
fn default_format() -> LogFormat {
    LogFormat::Text
}

impl RawLog {
    /// The `[log]` settings; `cx` is the `log` table.
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<LogConfig, Error> {
        if !valid_log_filter(&self.level) {
            return Err(cx.invalid(
                "level",
                "not a log filter: use off, error, warn, info, debug or trace, optionally per target (\"keyward_proxy=debug,info\")",
            ));
        }
        Ok(LogConfig {
            level: self.level,
            format: self.format,
            access_log: self.access_log,
        })
    }
}

/// Log levels a `log.level` directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `tracing` filter: comma-separated `LEVEL` or `TARGET=LEVEL` directives.
fn valid_log_filter(filter: &str) -> bool {
    !filter.trim().is_empty()
        && filter.split(',').all(|d| {
            let level =
                d.rsplit_once('=').map_or(
                    d,
                    |(target, level)| if target.trim().is_empty() { "" } else { level },
                );
            LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
        })
}
