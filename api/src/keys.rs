//! Key objects, their attributes, and the requests that create, find, change and move keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::base64::Base64;
use crate::names::{KeyClass, KeySpec};

/// A key object's attributes (see the HSM documentation for their rules).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AttributesDto))]
#[serde(deny_unknown_fields)]
pub struct Attributes {
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

/// A key object: everything but its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = KeyDto))]
pub struct Key {
    /// Key handle (53-bit unsigned integer).
    pub handle: u64,
    /// The other half of a pair.
    pub linked_handle: Option<u64>,
    /// `secret`, `private` or `public`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub class: KeyClass,
    /// Key type and size, e.g. `ec-p256`, `aes-256`, `generic-secret-32`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub spec: KeySpec,
    /// Owning crypto-user.
    pub owner: String,
    /// Crypto-users it is shared with.
    pub shared_with: Vec<String>,
    /// Attributes.
    pub attributes: Attributes,
    /// Key versions (Vault transit style): the newest version, which new signatures, MACs and
    /// ciphertexts use; 1 until `POST /v1/keys/{handle}/rotate`.
    #[serde(default = "version_one")]
    pub latest_version: u32,
    /// Decrypt, verify and rewrap refuse older versions (403 `key_version_retired`).
    #[serde(default = "version_one")]
    pub min_decryption_version: u32,
    /// Signing and encrypting with an explicit `key_version` refuse older versions; 0: any
    /// version from `min_decryption_version` on.
    #[serde(default)]
    pub min_encryption_version: u32,
    /// The oldest version the HSM still holds; older ones were trimmed (destroyed).
    #[serde(default = "version_one")]
    pub min_available_version: u32,
}

fn version_one() -> u32 {
    1
}

/// Attributes chosen for a new key: a label and boolean attributes by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TemplateDto))]
#[serde(deny_unknown_fields)]
pub struct KeyTemplate {
    /// Label (required), 1 to 127 bytes of UTF-8; unique among the caller's own keys of one
    /// class (another user may own a key with the same label). Labels starting with
    /// `keyward-` or `tls-ticket-key-` are reserved for Keyward's service keys (403).
    pub label: String,
    /// Optional application id, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Boolean attributes, e.g. `{"sign": true, "extractable": true}`. Unset ones take the
    /// defaults: `modifiable`, `destroyable` and `token` true; `sign` and `verify` true for
    /// secret keys; every other one false, `extractable` included: a key can be exported
    /// (wrapped) only if it is created `extractable`, which cannot be set later.
    #[serde(default)]
    pub attributes: BTreeMap<String, bool>,
}

impl KeyTemplate {
    /// A template with only a label.
    pub fn new(label: impl Into<String>) -> Self {
        KeyTemplate {
            label: label.into(),
            id: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Sets a boolean attribute (`sign`, `encrypt`, `extractable`, ...).
    pub fn with(mut self, name: impl Into<String>, value: bool) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    /// Sets the application id (lower-case hex).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// `POST /v1/keys/symmetric`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GenerateSymmetricRequest {
    /// `aes-128`, `aes-192`, `aes-256` or `generic-secret-N` (N = 1..800 bytes).
    pub spec: String,
    /// The key's attributes.
    pub template: KeyTemplate,
}

/// `POST /v1/keys/asymmetric-pair`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GeneratePairRequest {
    /// `ec-p256`, `ec-p384`, `ec-p521`, `rsa-2048`, `rsa-3072`, `rsa-4096` or `ed25519`.
    pub spec: String,
    /// The private key's attributes.
    pub private: KeyTemplate,
    /// The public key's attributes.
    pub public: KeyTemplate,
}

/// A new key pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = KeyPairDto))]
pub struct KeyPair {
    /// The private key.
    pub private: Key,
    /// The public key.
    pub public: Key,
}

/// `POST /v1/keys/import-public`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportPublicRequest {
    /// SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// ... or as base64 DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub der: Option<Base64>,
    /// The key's attributes.
    pub template: KeyTemplate,
}

/// `GET /v1/keys` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListQuery {
    /// Exact label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Exact owner (user name). Labels are unique per owner and class, so `label` and
    /// `owner` together name at most one key of a class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `secret`, `private` or `public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `aes`, `generic-secret`, `rsa`, `ec` or `ed25519`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(rename = "type"))]
    pub key_type: Option<String>,
    /// Boolean attribute filters, comma separated: `sign=true,extractable=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    /// Return keys with a handle greater than this (the previous page's `next`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Page size, 1 to 1000; default 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A page of keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = KeyPageDto))]
pub struct KeyPage {
    /// Keys ordered by handle.
    pub keys: Vec<Key>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<u64>,
}

/// `PATCH /v1/keys/{handle}/attributes`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetAttributeRequest {
    /// Attribute name, e.g. `sign`, `label`, `modifiable`.
    pub name: String,
    /// `true`/`false`, or a string for `label` and `id`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: serde_json::Value,
}

/// `POST /v1/keys/{handle}/share`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The crypto-user to share with.
    pub username: String,
}

/// A public key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PublicKeyDto))]
pub struct PublicKey {
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
    /// SubjectPublicKeyInfo DER, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub der: Base64,
    /// RFC 7517 JSON Web Key (EC, RSA, OKP), when the type has one.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub jwk: Option<serde_json::Value>,
}

/// `POST /v1/keys/{handle}/wrap`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WrapRequest {
    /// `aes-kw`, `aes-kwp`, `aes-gcm`, `rsa-oaep` or `rsa-aes`.
    pub mechanism: String,
    /// Handle of the key to wrap (owned, extractable).
    pub target: u64,
}

/// Wrapped key bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WrappedDto))]
pub struct Wrapped {
    /// The wrapped key, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped: Base64,
}

/// `POST /v1/keys/{handle}/unwrap`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest {
    /// `aes-kw`, `aes-kwp`, `aes-gcm`, `rsa-oaep` or `rsa-aes`.
    pub mechanism: String,
    /// The wrapped key, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped: Base64,
    /// For a secret key: its spec (`aes-256`, `generic-secret-32`, ...); absent for a private
    /// key in PKCS#8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_spec: Option<String>,
    /// The new key's attributes.
    pub template: KeyTemplate,
}

/// `POST /v1/keys/{handle}/derive`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeriveRequest {
    /// Peer public key: SPKI DER or an uncompressed point, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub peer_public: Base64,
    /// HKDF salt, base64 (default empty).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub salt: Option<Base64>,
    /// HKDF info, base64 (default empty).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub info: Option<Base64>,
    /// `hkdf-sha256` (default: HKDF-SHA256, RFC 5869, with the salt and info) or `none` (the
    /// key's value is the leftmost bytes of the shared secret Z, as PKCS#11's `CKD_NULL`; no
    /// salt or info; the key at most as long as Z: 32, 48 or 66 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<String>,
    /// Spec of the new secret key.
    pub spec: String,
    /// The new key's attributes.
    pub template: KeyTemplate,
}

/// `PATCH /v1/keys/{handle}/config`: the key's version settings (Vault transit's key
/// `config`); an absent field keeps its setting. On a secret key or the private key of a pair
/// (the public key follows); the owner only, and the key must be `modifiable`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyConfigRequest {
    /// Refuse decrypt, verify and rewrap of input made by older versions: from
    /// `min_available_version` to `latest_version`; may go down again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_decryption_version: Option<u32>,
    /// Refuse an explicit older `key_version` for new signatures, MACs and ciphertexts: 0 (any
    /// version from `min_decryption_version` on) or `min_decryption_version` to
    /// `latest_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_encryption_version: Option<u32>,
}

/// `POST /v1/keys/{handle}/trim`: destroys the material of every version below
/// `min_available_version` (Vault transit's `trim`); it may not be above
/// `min_decryption_version` nor a set `min_encryption_version`. There is no undo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrimRequest {
    /// The oldest version to keep.
    pub min_available_version: u32,
}

/// `GET /v1/keys/{handle}/public-key` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct PublicKeyQuery {
    /// The key version (default: the latest); any version the key still holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// `DELETE /v1/keys/{handle}` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DestroyQuery {
    /// `true`: an admin destroys any crypto-user's token key, `destroyable` or not (audited as
    /// `key.destroy-by-admin`); keys of the node's service user are refused (403). Default `false`: the owner destroys its own key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_by_admin: Option<bool>,
}
