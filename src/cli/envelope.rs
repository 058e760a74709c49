//! The flags of `keyward crypto encrypt-file` and `keyward crypto decrypt-file` (envelope
//! encryption; the command is `crate::cmd::envelope`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How the data key is wrapped under the KEK.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum EnvelopeMechanism {
    /// AES key wrap with padding (RFC 5649) under an AES key with `wrap`.
    AesKwp,
    /// RSA-OAEP with SHA-256 (RFC 8017 §7.1) under an RSA public key with `wrap`.
    RsaOaepSha256,
}

impl EnvelopeMechanism {
    /// The mechanism's name in the API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EnvelopeMechanism::AesKwp => "aes-kwp",
            EnvelopeMechanism::RsaOaepSha256 => "rsa-oaep-sha256",
        }
    }
}

/// `keyward crypto encrypt-file`.
#[derive(Args, Debug)]
pub(crate) struct EncryptFileArgs {
    /// The key encryption key (KEK): handle or label; an AES key (aes-kwp) or an RSA public
    /// key (rsa-oaep-sha256), with `wrap`.
    #[arg(long)]
    pub(crate) key: String,
    #[arg(long, value_enum)]
    pub(crate) mechanism: EnvelopeMechanism,
    /// The file to encrypt.
    #[arg(long = "in")]
    pub(crate) input: PathBuf,
    #[command(flatten)]
    pub(crate) to: EncryptTo,
    /// Replace --out if it exists (a regular file other than --in).
    #[arg(long)]
    pub(crate) force: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where `encrypt-file` writes: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct EncryptTo {
    /// Write the envelope to this file (through a temporary file beside it, renamed at the
    /// end).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Upload the envelope to s3://BUCKET/KEY in parts as it is made (credentials and
    /// endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL,
    /// AWS_ALLOW_HTTP).
    #[arg(long)]
    pub(crate) upload: Option<String>,
}

/// `keyward crypto decrypt-file`.
#[derive(Args, Debug)]
pub(crate) struct DecryptFileArgs {
    #[command(flatten)]
    pub(crate) from: DecryptFrom,
    /// The plaintext file. Written through a temporary file beside it, renamed only once
    /// every chunk has verified; nothing is left on any failure.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Replace --out if it exists (a regular file other than --in).
    #[arg(long)]
    pub(crate) force: bool,
    /// The key that unwraps the data key (handle or label). Default: the KEK named in the
    /// envelope, or for an RSA public key its linked private key.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Print what was read as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where `decrypt-file` reads: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct DecryptFrom {
    /// The envelope file.
    #[arg(long = "in")]
    pub(crate) input: Option<PathBuf>,
    /// Download the envelope from s3://BUCKET/KEY as it is decrypted.
    #[arg(long)]
    pub(crate) download: Option<String>,
}
