//! The audit log.

use serde::{Deserialize, Serialize};

/// `GET /v1/audit` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// First sequence number (from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// At most this many entries, 1 to 1000; default 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// An audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditEntryDto))]
pub struct AuditEntry {
    /// Position in the chain.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub event: String,
    /// On what.
    pub target: Option<String>,
    /// `ok`, `failed`, `denied`, ...
    pub outcome: String,
    /// Chain hash of the previous entry, hex.
    pub prev_hash: String,
}

/// The audit chain check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditReportDto))]
pub struct AuditReport {
    /// Entries read.
    pub entries: u64,
    /// Whether the chain is intact.
    pub intact: bool,
    /// The first problem found.
    pub problem: Option<String>,
}
