//! `[listeners.proxy_protocol]`: the PROXY protocol header (v1 or v2) a listener expects from
//! the load balancers in front of it.

use ipnet::IpNet;
use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// `[listeners.proxy_protocol]`: expect a PROXY protocol v1 or v2 header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyProtocolConfig {
    /// `trusted_cidrs`: sources allowed to send the header (e.g. `["10.0.0.0/8"]`); a
    /// connection from any other source is closed. Required, non-empty.
    pub trusted_cidrs: Vec<IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [listeners.proxy_protocol] table")]
pub(crate) struct RawProxyProtocol {
    #[serde(default)]
    trusted_cidrs: Vec<String>,
}

impl RawProxyProtocol {
    /// The listener's PROXY protocol settings; `cx` is the `proxy_protocol` table.
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<ProxyProtocolConfig, Error> {
        if self.trusted_cidrs.is_empty() {
            return Err(cx.invalid(
                "trusted_cidrs",
                "name the load balancers' addresses (e.g. [\"10.0.0.0/8\"]); others are refused",
            ));
        }
        Ok(ProxyProtocolConfig {
            trusted_cidrs: cx.nets("trusted_cidrs", &self.trusted_cidrs)?,
        })
    }
}
