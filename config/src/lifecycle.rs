//! `[lifecycle]`: how `keyward serve` shuts down.

use serde::Deserialize;

/// `[lifecycle]`
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleConfig {
    /// `drain_timeout_ms`: after SIGTERM, in-flight requests get this long to finish before
    /// their connections are closed. Default 30000.
    pub drain_timeout_ms: u64,
}

/// Default of `[lifecycle] drain_timeout_ms` (also of `keyward hsm serve --drain-timeout-ms`).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [lifecycle] table")]
pub(crate) struct RawLifecycle {
    #[serde(default = "default_drain")]
    drain_timeout_ms: u64,
}

impl Default for RawLifecycle {
    fn default() -> Self {
        RawLifecycle {
            drain_timeout_ms: default_drain(),
        }
    }
}

fn default_drain() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}

impl RawLifecycle {
    /// The `[lifecycle]` settings (nothing here can be invalid).
    pub(crate) fn validate(self) -> LifecycleConfig {
        LifecycleConfig {
            drain_timeout_ms: self.drain_timeout_ms,
        }
    }
}
