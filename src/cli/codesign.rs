//! The flags of `keyward sign-file` and `keyward verify-file` (code signing).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// What a file signature is.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignatureFormat {
    /// A detached CMS SignedData, DER (RFC 5652 §5): `openssl cms -verify` reads it.
    Cms,
    /// The bare signature of the file (ECDSA: DER Ecdsa-Sig-Value; RSA: modulus-length
    /// bytes), as `keyward crypto sign` writes it: `openssl dgst -verify` reads it.
    Raw,
}

/// `keyward sign-file`.
#[derive(Args, Debug)]
pub(crate) struct SignFileArgs {
    /// The private key: handle, or label of your own key (else the one shared with you).
    #[arg(long)]
    pub(crate) key: String,
    /// The signer's certificate (PEM) for the key; required for cms. Its public key must be
    /// the HSM key's. More certificates in the file are treated as --chain.
    #[arg(long)]
    pub(crate) cert: Option<PathBuf>,
    /// Intermediate CA certificates (PEM) to put in the signature (repeatable).
    #[arg(long)]
    pub(crate) chain: Vec<PathBuf>,
    /// The file to sign (hashed here; it is not sent).
    #[arg(long = "in")]
    pub(crate) input: PathBuf,
    /// Where to write the signature.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Signature format.
    #[arg(long, value_enum, default_value = "cms")]
    pub(crate) format: SignatureFormat,
    /// Signature mechanism, e.g. rsa-pss-sha256 (default: ecdsa-sha256 for P-256,
    /// ecdsa-sha384 for P-384, ecdsa-sha512 for P-521, rsa-pkcs1-sha256 for RSA, ed25519).
    #[arg(long)]
    pub(crate) mechanism: Option<String>,
}

/// `keyward verify-file` (runs here; no server).
#[derive(Args, Debug)]
pub(crate) struct VerifyFileArgs {
    /// The signed file.
    #[arg(long = "in")]
    pub(crate) input: PathBuf,
    /// The signature.
    #[arg(long)]
    pub(crate) sig: PathBuf,
    /// Trusted root CA certificate(s), PEM.
    #[arg(long)]
    pub(crate) ca_file: PathBuf,
    /// Untrusted intermediate CA certificates, PEM (repeatable), besides those in the
    /// signature.
    #[arg(long)]
    pub(crate) untrusted: Vec<PathBuf>,
    /// Signature format.
    #[arg(long, value_enum, default_value = "cms")]
    pub(crate) format: SignatureFormat,
    /// The signer's certificate, PEM (required for raw; for cms, where the signature lacks
    /// it).
    #[arg(long)]
    pub(crate) cert: Option<PathBuf>,
    /// Raw format: the signature mechanism (default as for sign-file).
    #[arg(long)]
    pub(crate) mechanism: Option<String>,
}
