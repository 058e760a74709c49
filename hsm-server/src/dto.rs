//! JSON shapes of the API. Bytes are standard padded base64 (RFC 4648 §4) strings.

use base64::Engine;
use keyward_hsm::{AttributeName, Attributes, KeyInfo, KeyTemplate, UserInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Decodes a base64 field, naming it in the error.
pub(crate) fn b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| ApiError::BadRequest(format!("{field} is not valid standard padded base64")))
}

/// Encodes bytes as standard padded base64.
pub(crate) fn enc(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST /v1/auth/login`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Session lifetime in seconds, 1 to 604800; default 3600.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A new session.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token: 64 hex characters. Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Seconds until the session expires.
    pub expires_in_seconds: u64,
    /// The user.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: String,
}

/// A user.
#[derive(Serialize, ToSchema)]
pub struct UserDto {
    /// User name.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: String,
    /// Locked after 5 consecutive failed logins: a crypto-user until an admin sets a new
    /// password, an admin until `lockout_ends_unix_ms`.
    pub locked: bool,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// For a locked admin: when the lockout ends by itself, milliseconds since the Unix
    /// epoch; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_ends_unix_ms: Option<u64>,
    /// A service identity without a password.
    pub service: bool,
}

impl From<UserInfo> for UserDto {
    fn from(u: UserInfo) -> Self {
        UserDto {
            username: u.name,
            role: u.role.as_str().into(),
            locked: u.locked,
            failed_logins: u.failed_logins,
            lockout_ends_unix_ms: u.lockout_ends_unix_ms,
            service: u.service,
        }
    }
}

/// `POST /v1/users`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1 to 64 characters of `A-Z a-z 0-9 - _ .`, starting with a letter or digit.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: String,
    /// 8 to 256 characters.
    pub password: String,
}

/// `PUT /v1/users/{username}/password`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password, 8 to 256 characters.
    pub password: String,
}

/// A key object's attributes (see the HSM documentation for their rules).
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AttributesDto {
    /// Label, unique per key class.
    pub label: String,
    /// Application id, lower-case hex.
    pub id: String,
    /// May sign / MAC.
    pub sign: bool,
    /// May verify.
    pub verify: bool,
    /// May encrypt.
    pub encrypt: bool,
    /// May decrypt.
    pub decrypt: bool,
    /// May wrap keys.
    pub wrap: bool,
    /// May unwrap keys.
    pub unwrap: bool,
    /// May derive keys.
    pub derive: bool,
    /// May be exported wrapped.
    pub extractable: bool,
    /// Never readable in plaintext.
    pub sensitive: bool,
    /// Persistent (false: session key).
    pub token: bool,
    /// Set by an admin.
    pub trusted: bool,
    /// Only trusted keys may wrap it.
    pub wrap_with_trusted: bool,
    /// Attributes may change.
    pub modifiable: bool,
    /// May be destroyed.
    pub destroyable: bool,
    /// Generated in the HSM.
    pub local: bool,
    /// Never extractable.
    pub never_extractable: bool,
    /// Always sensitive.
    pub always_sensitive: bool,
    /// Key check value, 6 hex digits (empty for short secrets).
    pub check_value: String,
}

impl From<&Attributes> for AttributesDto {
    fn from(a: &Attributes) -> Self {
        AttributesDto {
            label: a.label.clone(),
            id: a.id.clone(),
            sign: a.sign,
            verify: a.verify,
            encrypt: a.encrypt,
            decrypt: a.decrypt,
            wrap: a.wrap,
            unwrap: a.unwrap,
            derive: a.derive,
            extractable: a.extractable,
            sensitive: a.sensitive,
            token: a.token,
            trusted: a.trusted,
            wrap_with_trusted: a.wrap_with_trusted,
            modifiable: a.modifiable,
            destroyable: a.destroyable,
            local: a.local,
            never_extractable: a.never_extractable,
            always_sensitive: a.always_sensitive,
            check_value: a.check_value.clone(),
        }
    }
}

/// A key object: everything but its value.
#[derive(Serialize, ToSchema)]
pub struct KeyDto {
    /// Key handle (53-bit unsigned integer).
    pub handle: u64,
    /// The other half of a pair.
    pub linked_handle: Option<u64>,
    /// `secret`, `private` or `public`.
    pub class: String,
    /// Key type and size, e.g. `ec-p256`, `aes-256`, `generic-secret-32`.
    pub spec: String,
    /// Owning crypto-user.
    pub owner: String,
    /// Crypto-users it is shared with.
    pub shared_with: Vec<String>,
    /// Attributes.
    pub attributes: AttributesDto,
}

impl From<KeyInfo> for KeyDto {
    fn from(k: KeyInfo) -> Self {
        KeyDto {
            handle: k.handle.0,
            linked_handle: k.linked_handle.map(|h| h.0),
            class: k.class.as_str().into(),
            spec: k.spec.name(),
            owner: k.owner,
            shared_with: k.shared_with,
            attributes: (&k.attributes).into(),
        }
    }
}

/// Attributes chosen for a new key: a label and boolean attributes by name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDto {
    /// Label (required), 1 to 127 bytes of UTF-8; unique among the caller's own keys of one
    /// class (another user may own a key with the same label). Labels starting with
    /// `keyward-` or `tls-ticket-key-` are reserved for Keyward's service keys (403).
    pub label: String,
    /// Optional application id, lower-case hex.
    #[serde(default)]
    pub id: Option<String>,
    /// Boolean attributes, e.g. `{"sign": true, "extractable": true}`. Unset ones take the
    /// defaults: `modifiable`, `destroyable` and `token` true; `sign` and `verify` true for
    /// secret keys; every other one false, `extractable` included: a key can be exported
    /// (wrapped) only if it is created `extractable`, which cannot be set later.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, bool>,
}

impl TemplateDto {
    pub(crate) fn template(&self) -> Result<KeyTemplate, ApiError> {
        let mut t = KeyTemplate::labelled(&self.label);
        if let Some(id) = &self.id {
            t.attributes.push((
                AttributeName::Id,
                keyward_hsm::AttributeValue::Text(id.clone()),
            ));
        }
        for (name, v) in &self.attributes {
            let n: AttributeName = name.parse()?;
            t = t.with(n, *v);
        }
        Ok(t)
    }
}

/// `POST /v1/keys/symmetric`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSymmetricRequest {
    /// `aes-128`, `aes-192`, `aes-256` or `generic-secret-N` (N = 1..800 bytes).
    pub spec: String,
    /// The key's attributes.
    pub template: TemplateDto,
}

/// `POST /v1/keys/asymmetric-pair`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratePairRequest {
    /// `ec-p256`, `ec-p384`, `ec-p521`, `rsa-2048`, `rsa-3072`, `rsa-4096` or `ed25519`.
    pub spec: String,
    /// The private key's attributes.
    pub private: TemplateDto,
    /// The public key's attributes.
    pub public: TemplateDto,
}

/// A new key pair.
#[derive(Serialize, ToSchema)]
pub struct KeyPairDto {
    /// The private key.
    pub private: KeyDto,
    /// The public key.
    pub public: KeyDto,
}

/// `POST /v1/keys/import-public`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportPublicRequest {
    /// SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`) ...
    #[serde(default)]
    pub pem: Option<String>,
    /// ... or as base64 DER.
    #[serde(default)]
    pub der: Option<String>,
    /// The key's attributes.
    pub template: TemplateDto,
}

/// `GET /v1/keys` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Exact label.
    pub label: Option<String>,
    /// Exact owner (user name). Labels are unique per owner and class, so `label` and
    /// `owner` together name at most one key of a class.
    pub owner: Option<String>,
    /// `secret`, `private` or `public`.
    pub class: Option<String>,
    /// `aes`, `generic-secret`, `rsa`, `ec` or `ed25519`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub key_type: Option<String>,
    /// Boolean attribute filters, comma separated: `sign=true,extractable=false`.
    pub attributes: Option<String>,
    /// Return keys with a handle greater than this (the previous page's `next`).
    pub after: Option<u64>,
    /// Page size, 1 to 1000; default 100.
    pub limit: Option<usize>,
}

/// A page of keys.
#[derive(Serialize, ToSchema)]
pub struct KeyPageDto {
    /// Keys ordered by handle.
    pub keys: Vec<KeyDto>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<u64>,
}

/// `PATCH /v1/keys/{handle}/attributes`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAttributeRequest {
    /// Attribute name, e.g. `sign`, `label`, `modifiable`.
    pub name: String,
    /// `true`/`false`, or a string for `label` and `id`.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// `POST /v1/keys/{handle}/share`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The crypto-user to share with.
    pub username: String,
}

/// A public key.
#[derive(Serialize, ToSchema)]
pub struct PublicKeyDto {
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
    /// SubjectPublicKeyInfo DER, base64.
    pub der: String,
    /// RFC 7517 JSON Web Key (EC, RSA, OKP), when the type has one.
    #[schema(value_type = Object)]
    pub jwk: Option<serde_json::Value>,
}

/// `POST /v1/keys/{handle}/wrap`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WrapRequest {
    /// `aes-kw`, `aes-kwp`, `aes-gcm`, `rsa-oaep` or `rsa-aes`.
    pub mechanism: String,
    /// Handle of the key to wrap (owned, extractable).
    pub target: u64,
}

/// Wrapped key bytes.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WrappedDto {
    /// The wrapped key, base64.
    pub wrapped: String,
}

/// `POST /v1/keys/{handle}/unwrap`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest {
    /// `aes-kw`, `aes-kwp`, `aes-gcm`, `rsa-oaep` or `rsa-aes`.
    pub mechanism: String,
    /// The wrapped key, base64.
    pub wrapped: String,
    /// For a secret key: its spec (`aes-256`, `generic-secret-32`, ...); absent for a private
    /// key in PKCS#8.
    #[serde(default)]
    pub secret_spec: Option<String>,
    /// The new key's attributes.
    pub template: TemplateDto,
}

/// `POST /v1/keys/{handle}/derive`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeriveRequest {
    /// Peer public key: SPKI DER or an uncompressed point, base64.
    pub peer_public: String,
    /// HKDF salt, base64 (default empty).
    #[serde(default)]
    pub salt: Option<String>,
    /// HKDF info, base64 (default empty).
    #[serde(default)]
    pub info: Option<String>,
    /// Spec of the new secret key.
    pub spec: String,
    /// The new key's attributes.
    pub template: TemplateDto,
}

/// `POST /v1/crypto/sign` (also a batch item)
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Key handle.
    pub key: u64,
    /// e.g. `ecdsa-sha256`, `rsa-pss-sha256`, `ed25519`, `hmac-sha256`.
    pub mechanism: String,
    /// The message, base64 ...
    #[serde(default)]
    pub message: Option<String>,
    /// ... or its digest, base64 (ECDSA and RSA only).
    #[serde(default)]
    pub digest: Option<String>,
    /// ECDSA signature encoding: `der` (default) or `raw` (r‖s).
    #[serde(default)]
    pub encoding: Option<String>,
}

/// A signature.
#[derive(Serialize, ToSchema)]
pub struct SignatureDto {
    /// The signature or MAC, base64.
    pub signature: String,
}

/// `POST /v1/crypto/verify` (also a batch item)
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Key handle.
    pub key: u64,
    /// Mechanism.
    pub mechanism: String,
    /// The message, base64 ...
    #[serde(default)]
    pub message: Option<String>,
    /// ... or its digest, base64.
    #[serde(default)]
    pub digest: Option<String>,
    /// The signature, base64.
    pub signature: String,
    /// `der` (default) or `raw`.
    #[serde(default)]
    pub encoding: Option<String>,
}

/// A verification result.
#[derive(Serialize, ToSchema)]
pub struct VerifiedDto {
    /// Whether the signature is valid.
    pub valid: bool,
}

/// `POST /v1/crypto/encrypt` (also a batch item)
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Key handle.
    pub key: u64,
    /// `aes-gcm`, `aes-cbc-pad`, `rsa-oaep-sha256/384/512`.
    pub mechanism: String,
    /// Plaintext, base64.
    pub plaintext: String,
    /// Additional authenticated data for aes-gcm, base64.
    #[serde(default)]
    pub aad: Option<String>,
}

/// A ciphertext.
#[derive(Serialize, ToSchema)]
pub struct CiphertextDto {
    /// Ciphertext, base64; aes-gcm: IV(12) ‖ ciphertext ‖ tag(16); aes-cbc-pad: IV(16) ‖ ciphertext.
    pub ciphertext: String,
}

/// `POST /v1/crypto/decrypt` (also a batch item)
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// Key handle.
    pub key: u64,
    /// Mechanism.
    pub mechanism: String,
    /// Ciphertext in the layout `encrypt` returns, base64.
    pub ciphertext: String,
    /// AAD for aes-gcm, base64.
    #[serde(default)]
    pub aad: Option<String>,
}

/// A plaintext.
#[derive(Serialize, ToSchema)]
pub struct PlaintextDto {
    /// Plaintext, base64.
    pub plaintext: String,
}

/// `POST /v1/crypto/random`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomRequest {
    /// Number of bytes, 1 to 65536.
    pub length: usize,
}

/// Random bytes.
#[derive(Serialize, ToSchema)]
pub struct RandomDto {
    /// Random bytes, base64.
    pub bytes: String,
}

/// A batch of requests of one kind (1 to 1000 items).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    /// The items, processed in order.
    pub items: Vec<T>,
}

/// One batch result: the item's result or its error.
#[derive(Serialize, ToSchema)]
pub struct BatchItem<T> {
    /// The result, when the item succeeded (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<T>,
    /// The error, when it failed (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorBody>,
}

/// Results of a batch, in the items' order.
#[derive(Serialize, ToSchema)]
pub struct BatchResults<T> {
    /// One entry per item.
    pub results: Vec<BatchItem<T>>,
}

/// `DELETE /v1/keys/{handle}` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DestroyQuery {
    /// `true`: an admin destroys any crypto-user's token key, `destroyable` or not (audited as
    /// `key.destroy-by-admin`); keys of the node's service user are refused (403). Default `false`: the owner destroys its own key.
    pub force_by_admin: Option<bool>,
}

/// `GET /v1/audit` query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// First sequence number (from 1).
    pub from: Option<u64>,
    /// At most this many entries, 1 to 1000; default 100.
    pub limit: Option<usize>,
}

/// An audit entry.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryDto {
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
#[derive(Serialize, ToSchema)]
pub struct AuditReportDto {
    /// Entries read.
    pub entries: u64,
    /// Whether the chain is intact.
    pub intact: bool,
    /// The first problem found.
    pub problem: Option<String>,
}

/// Liveness and readiness.
#[derive(Serialize, ToSchema)]
pub struct HealthDto {
    /// `ok`.
    pub status: String,
}
