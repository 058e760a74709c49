//! `[admin]`: the plain-HTTP admin listener (`/metrics`, `/healthz`, `/readyz`).

use std::net::SocketAddr;

use serde::Deserialize;

use crate::yes;

/// `[admin]`: the plain-HTTP admin listener with `/metrics`, `/healthz` and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminConfig {
    /// `address`: `IP:port`; default `127.0.0.1:9090`. `enabled = false` turns it off.
    pub address: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [admin] table")]
pub(crate) struct RawAdmin {
    #[serde(default = "default_admin_address")]
    address: SocketAddr,
    #[serde(default = "yes")]
    enabled: bool,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            address: default_admin_address(),
            enabled: true,
        }
    }
}

fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

impl RawAdmin {
    /// The `[admin]` settings (nothing here can be invalid).
    pub(crate) fn validate(self) -> AdminConfig {
        AdminConfig {
            address: self.enabled.then_some(self.address),
        }
    }
}
