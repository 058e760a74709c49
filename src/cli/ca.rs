//! `keyward ca …`: the issuing CAs on the nodes given by `--server`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Subcommand;

use super::JsonFlag;

/// Issuing CAs whose keys the HSM generates and never releases (see the README's "Issuing
/// CA"). Every command acts on the nodes given by --server.
#[derive(Subcommand, Debug)]
pub(crate) enum CaCommand {
    /// Create a root CA (no --parent) or an intermediate CA signed by --parent; its key is
    /// generated in the HSM (label `ca-NAME`, not extractable) and owned by you.
    Create {
        /// The CA's name (1 to 64 of a-z 0-9 _ . -).
        name: String,
        /// Its certificate's subject common name.
        #[arg(long)]
        common_name: String,
        /// ec-p256, ec-p384, rsa-3072 or rsa-4096.
        #[arg(long = "key-type", default_value = "ec-p384")]
        key_type: String,
        /// Validity of its certificate in days (default 3650 for a root, 1825 otherwise).
        #[arg(long)]
        days: Option<u32>,
        /// The CA that signs its certificate.
        #[arg(long)]
        parent: Option<String>,
        /// Path length constraint: how many CAs may follow it.
        #[arg(long)]
        path_len: Option<u8>,
        /// Name constraint: a permitted DNS subtree (repeatable).
        #[arg(long = "permitted-dns")]
        permitted_dns: Vec<String>,
        /// A DNS name it may issue: `example.com`, `*.example.com`, `.example.com` (any name
        /// below) (repeatable; none: any name its constraints allow).
        #[arg(long = "allow-dns")]
        allow_dns: Vec<String>,
        /// It may issue IP-address names.
        #[arg(long)]
        allow_ip: bool,
        /// Longest validity it issues, in days (default 397).
        #[arg(long)]
        max_days: Option<u32>,
        /// Seconds each CRL is valid (default 86400).
        #[arg(long)]
        crl_period_s: Option<u64>,
        /// A URL of its CRL, written into every certificate it issues (CRL distribution
        /// point), e.g. `http://pki.example.com/v1/ca/NAME/crl` (repeatable).
        #[arg(long = "crl-url")]
        crl_urls: Vec<String>,
        /// A URL of its OCSP responder, written into every certificate it issues (authority
        /// information access), e.g. `http://pki.example.com/v1/ca/NAME/ocsp` (repeatable).
        #[arg(long = "ocsp-url")]
        ocsp_urls: Vec<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the CAs.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Write a CA's certificate and those above it (PEM) to --out or stdout.
    Certificate {
        /// The CA.
        name: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Issue a certificate from a PKCS#10 request (--csr) or for an HSM key (--key).
    Issue {
        /// The CA.
        name: String,
        /// tls-server, tls-client, code-signing or intermediate.
        #[arg(long, default_value = "tls-server")]
        profile: String,
        /// A PEM certificate signing request.
        #[arg(long, required_unless_present = "key", conflicts_with = "key")]
        csr: Option<PathBuf>,
        /// Label or handle of a private key in the HSM.
        #[arg(long)]
        key: Option<String>,
        /// DNS names (repeatable; default: the CSR's).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP addresses (repeatable; default: the CSR's).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Subject common name (default: the CSR's, else the first name).
        #[arg(long)]
        common_name: Option<String>,
        /// Validity in days (default: the profile's and the CA's limit).
        #[arg(long)]
        days: Option<u32>,
        /// Write the certificate (PEM) here; with --fullchain, followed by the CA chain.
        #[arg(long)]
        out: PathBuf,
        /// Append the issuing CA's chain to --out (what a TLS server serves).
        #[arg(long)]
        fullchain: bool,
        /// Replace --out if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// The CA's register: every certificate it issued, with its status.
    Certificates {
        /// The CA.
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke a certificate and publish a new CRL.
    Revoke {
        /// The CA.
        name: String,
        /// The certificate's serial number (hex).
        #[arg(long)]
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise
        /// (removeFromCRL is for delta CRLs and is refused).
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Write the CA's newest CRL (PEM) to --out or stdout; --publish signs a new one first.
    Crl {
        /// The CA.
        name: String,
        /// Sign and publish a new CRL now.
        #[arg(long)]
        publish: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
