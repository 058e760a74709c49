//! `[upstreams.NAME.health_check]`: active HTTP health checks of a pool's servers.

use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// `[upstreams.NAME.health_check]`: active HTTP health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheckConfig {
    /// `path`: requested with `GET`. Default `/`.
    pub path: String,
    /// `interval_ms`: between checks of one server. Default 5000.
    pub interval_ms: u64,
    /// `timeout_ms`: a check slower than this fails. Default 2000.
    pub timeout_ms: u64,
    /// `expected_status`: the status a healthy server answers. Default 200.
    pub expected_status: u16,
    /// `rise`: consecutive passes that make an unhealthy server healthy. Default 2.
    pub rise: u32,
    /// `fall`: consecutive failures that make a healthy server unhealthy. Default 3.
    pub fall: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a health_check table")]
pub(crate) struct RawHealthCheck {
    #[serde(default = "default_health_path")]
    path: String,
    #[serde(default = "default_health_interval")]
    interval_ms: u64,
    #[serde(default = "default_health_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_expected_status")]
    expected_status: u16,
    #[serde(default = "default_rise")]
    rise: u32,
    #[serde(default = "default_fall")]
    fall: u32,
}

fn default_health_path() -> String {
    "/".into()
}
fn default_health_interval() -> u64 {
    5_000
}
fn default_health_timeout() -> u64 {
    2_000
}
fn default_expected_status() -> u16 {
    200
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

impl RawHealthCheck {
    /// The health check of a pool; `cx` is the `health_check` table, `tcp` whether the pool's
    /// servers are `tcp://` ones.
    pub(crate) fn validate(self, cx: &Context<'_>, tcp: bool) -> Result<HealthCheckConfig, Error> {
        if tcp {
            return Err(cx.invalid_table("HTTP health checks need http:// or https:// servers"));
        }
        if !self.path.starts_with('/') || self.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(cx.invalid("path", "must be an absolute path such as /healthz"));
        }
        cx.positive("interval_ms", self.interval_ms)?;
        cx.positive("timeout_ms", self.timeout_ms)?;
        cx.positive("rise", u64::from(self.rise))?;
        cx.positive("fall", u64::from(self.fall))?;
        if !(100..=599).contains(&self.expected_status) {
            return Err(cx.invalid("expected_status", "must be 100 to 599"));
        }
        Ok(HealthCheckConfig {
            path: self.path,
            interval_ms: self.interval_ms,
            timeout_ms: self.timeout_ms,
            expected_status: self.expected_status,
            rise: self.rise,
            fall: self.fall,
        })
    }
}
