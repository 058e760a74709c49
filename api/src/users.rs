//! Logins, users and health.

use serde::{Deserialize, Serialize};

use crate::names::Role;
use crate::secret::{Password, SessionToken};

/// `POST /v1/auth/login`
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub password: Password,
    /// Session lifetime in seconds, 1 to 604800; default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A new session.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// Bearer token: 64 hex characters. Send as `Authorization: Bearer <token>`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub token: SessionToken,
    /// Seconds until the session expires.
    pub expires_in_seconds: u64,
    /// The user.
    pub username: String,
    /// `admin` or `crypto-user`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: Role,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UserDto))]
pub struct User {
    /// User name.
    pub username: String,
    /// `admin` or `crypto-user`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub role: Role,
    /// Locked after 5 consecutive failed logins: a crypto-user until an admin sets a new
    /// password, an admin until `lockout_ends_unix_ms`.
    pub locked: bool,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// For a locked admin: when the lockout ends by itself, milliseconds since the Unix
    /// epoch; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_ends_unix_ms: Option<u64>,
    /// A service identity without a password.
    pub service: bool,
}

/// `POST /v1/users`
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1 to 64 characters of `A-Z a-z 0-9 - _ .`, starting with a letter or digit.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: String,
    /// 8 to 256 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub password: Password,
}

/// `PUT /v1/users/{username}/password`
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password, 8 to 256 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub password: Password,
}

/// Liveness and readiness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = HealthDto))]
pub struct Health {
    /// `ok`.
    pub status: String,
}
