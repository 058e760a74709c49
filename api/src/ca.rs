//! `/v1/ca`: the issuing CAs, the certificates they issue, revocation, CRLs and OCSP (see
//! `keyward-server`'s `ca` module). Certificates and CRLs travel as PEM text (RFC 7468).

use serde::{Deserialize, Serialize};

/// `POST /v1/ca`: a new root CA (no `parent`) or intermediate CA, its key generated in the HSM
/// (signs, not extractable) and owned by the caller.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CreateCaRequestDto))]
#[serde(deny_unknown_fields)]
pub struct CreateCaRequest {
    /// The CA's name: 1 to 64 of `a-z 0-9 _ . -`, starting with a letter or digit.
    pub name: String,
    /// Its certificate's subject common name.
    pub common_name: String,
    /// Its key: `ec-p256`, `ec-p384` (default), `rsa-3072`, `rsa-4096`.
    #[serde(default)]
    pub key_type: Option<String>,
    /// Its certificate's validity, in days (default 3650 for a root, 1825 for an intermediate;
    /// an intermediate's ends no later than its parent's).
    #[serde(default)]
    pub validity_days: Option<u32>,
    /// The CA that signs its certificate (the caller must be allowed to sign with that CA's
    /// key); absent for a self-signed root.
    #[serde(default)]
    pub parent: Option<String>,
    /// Path length constraint of its certificate (RFC 5280 §4.2.1.9): how many CAs may follow
    /// it; absent: unlimited for a root, one less than its parent's for an intermediate.
    #[serde(default)]
    pub path_len: Option<u8>,
    /// Permitted DNS subtrees of its certificate's name constraints (RFC 5280 §4.2.1.10),
    /// e.g. `example.com`; empty: no constraint.
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    /// DNS names it may issue: `example.com` (that name), `*.example.com` (that wildcard or one
    /// label below), `.example.com` (any name below); empty: any name its name constraints
    /// allow.
    #[serde(default)]
    pub allowed_dns: Vec<String>,
    /// Whether it may issue IP-address names (default false).
    #[serde(default)]
    pub allow_ip: bool,
    /// Longest validity it issues, in days (default 397; each profile has its own limit).
    #[serde(default)]
    pub max_validity_days: Option<u32>,
    /// How long each CRL is valid, in seconds (default 86400); a new one is signed when half
    /// of that has passed, or on demand.
    #[serde(default)]
    pub crl_period_s: Option<u64>,
    /// URLs where relying parties fetch its CRL, written into the CRL distribution points
    /// (RFC 5280 §4.2.1.13) of every certificate it issues, e.g.
    /// `http://pki.example.com/v1/ca/NAME/crl` (Keyward serves it at `GET /v1/ca/{name}/crl`);
    /// absolute `http` or `https` URLs, at most 4, 512 bytes each; empty (default): none.
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// URLs of its OCSP responder, written into the authority information access (RFC 5280
    /// §4.2.2.1, id-ad-ocsp) of every certificate it issues (Keyward answers at
    /// `POST /v1/ca/{name}/ocsp`); same rules as `crl_urls`.
    #[serde(default)]
    pub ocsp_urls: Vec<String>,
}

/// An issuing CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CaDto))]
pub struct Ca {
    /// Its name.
    pub name: String,
    /// Its key's handle.
    pub key: u64,
    /// Its owner.
    pub owner: String,
    /// The CA above it; absent for a root.
    pub parent: Option<String>,
    /// Its certificate's subject (RFC 4514 text).
    pub subject: String,
    /// Its certificate's `notAfter`, RFC 3339.
    pub not_after: String,
    /// Its certificate, PEM.
    pub certificate_pem: String,
    /// The certificates above it, nearest first, PEM (empty for a root).
    pub chain_pem: String,
    /// DNS names it may issue (see [`CreateCaRequest::allowed_dns`]).
    pub allowed_dns: Vec<String>,
    /// Whether it issues IP-address names.
    pub allow_ip: bool,
    /// Longest validity it issues, in days.
    pub max_validity_days: u32,
    /// Seconds each CRL is valid.
    pub crl_period_s: u64,
    /// CRL distribution point URLs in the certificates it issues.
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// OCSP responder URLs in the certificates it issues.
    #[serde(default)]
    pub ocsp_urls: Vec<String>,
    /// Number of the newest CRL (0: none yet).
    pub crl_number: u64,
    /// How many certificates it revoked.
    pub revoked: usize,
}

/// `POST /v1/ca/{name}/issue`: a certificate from a PKCS#10 request, or for a key in the HSM.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = IssueRequestDto))]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// `tls-server` (default), `tls-client`, `code-signing` or `intermediate`.
    #[serde(default)]
    pub profile: Option<String>,
    /// A PKCS#10 request (RFC 2986), PEM: its signature is checked and its public key
    /// certified. Exactly one of `csr_pem` and `key`.
    #[serde(default)]
    pub csr_pem: Option<String>,
    /// Handle of a private key in the HSM the caller may see: its public key is certified.
    #[serde(default)]
    pub key: Option<u64>,
    /// DNS names (subject alternative names); absent: the CSR's.
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP addresses (subject alternative names); absent: the CSR's.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Subject common name; absent: the CSR's, else the first DNS name.
    #[serde(default)]
    pub common_name: Option<String>,
    /// Validity in days (default: the smaller of the profile's and the CA's limit).
    #[serde(default)]
    pub validity_days: Option<u32>,
}

/// A certificate in a CA's register.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = IssuedCertificateDto))]
pub struct IssuedCertificate {
    /// The issuing CA.
    pub ca: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// The profile it was issued under.
    pub profile: String,
    /// Subject (RFC 4514 text).
    pub subject: String,
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<String>,
    /// `notBefore`, RFC 3339.
    pub not_before: String,
    /// `notAfter`, RFC 3339.
    pub not_after: String,
    /// `valid`, `expired` or `revoked`.
    pub status: String,
    /// When it was revoked, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why: an RFC 5280 §5.3.1 reason name (`keyCompromise`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
    /// Who asked for it.
    pub issued_by: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The issuing CA's certificate and those above it, PEM (the chain a server sends after
    /// its own certificate).
    pub chain_pem: String,
}

/// `POST /v1/ca/{name}/certificates/{serial}/revoke`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RevokeRequestDto))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// An RFC 5280 §5.3.1 reason: `unspecified` (default), `keyCompromise`, `cACompromise`,
    /// `affiliationChanged`, `superseded`, `cessationOfOperation`, `certificateHold`,
    /// `privilegeWithdrawn`, `aACompromise`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A CRL just published (`POST /v1/ca/{name}/crl`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CrlInfoDto))]
pub struct CrlInfo {
    /// Its CRL number (RFC 5280 §5.2.3).
    pub crl_number: u64,
    /// Its `nextUpdate`, RFC 3339.
    pub next_update: String,
    /// How many certificates it lists.
    pub revoked: usize,
    /// The CRL, PEM.
    pub crl_pem: String,
}
