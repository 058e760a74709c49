//! `[runtime]`: the worker threads of `keyward serve`.

use std::num::NonZeroUsize;

use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// `[runtime]`
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// `worker_threads`: threads that run connections (TLS, HTTP, proxying). Each listener
    /// gets one listening socket and accept loop per worker (`SO_REUSEPORT`). `None` (the
    /// default, or `0`): one per CPU the process may run on (its affinity mask and cgroup
    /// CPU quota), as nginx's `worker_processes auto`. At most 1024.
    pub worker_threads: Option<NonZeroUsize>,
}

/// The largest `worker_threads` accepted.
pub const MAX_WORKER_THREADS: usize = 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [runtime] table")]
pub(crate) struct RawRuntime {
    #[serde(default)]
    worker_threads: usize,
}

impl RawRuntime {
    /// The `[runtime]` settings; `cx` is the `runtime` table.
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<RuntimeConfig, Error> {
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(cx.invalid(
                "worker_threads",
                format!("must be 0 (one per CPU) to {MAX_WORKER_THREADS}"),
            ));
        }
        Ok(RuntimeConfig {
            worker_threads: NonZeroUsize::new(self.worker_threads),
        })
    }
}
