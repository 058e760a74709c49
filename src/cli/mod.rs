//! The command line: every `clap` type of `keyward` (commands, their flags and the global
//! connection flags) and the parsers of flag values. No behaviour: `main` dispatches each
//! command to its module in [`crate::cmd`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keyward_config::ApiLimits;
use keyward_hsm::KeySpec;

mod ca;
mod codesign;
mod envelope;
mod seal;
pub(crate) use ca::CaCommand;
pub(crate) use codesign::*;
pub(crate) use envelope::*;
pub(crate) use seal::*;

#[derive(Parser)]
#[command(
    name = "keyward",
    version,
    about = "TLS reverse proxy with keys held in a bundled HSM",
    after_help = "Exit codes: 0 success; 1 error (one line on stderr, `keyward: error: ...`, with \
                  the API's error code such as key_not_found), or `crypto verify` or `verify-file` \
                  found the signature invalid; 2 usage error."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    #[command(flatten)]
    pub(crate) conn: Conn,
}

#[derive(clap::Args, Clone)]
pub(crate) struct DataDirArg {
    /// HSM data directory (master key, API TLS files; the store too, without --store).
    #[arg(long, env = "KEYWARD_DATA_DIR", default_value = "keyward-data")]
    pub(crate) data_dir: PathBuf,
    /// The cluster's PostgreSQL store instead of DATA_DIR/keyward.sqlite3:
    /// `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=require]`. Password: --store-password-file,
    /// else env KEYWARD_HSM__STORE_PASSWORD.
    #[arg(long, env = "KEYWARD_HSM__STORE", value_parser = parse_store)]
    pub(crate) store: Option<keyward_config::PostgresStore>,
    /// File holding the PostgreSQL store's password.
    #[arg(long, env = "KEYWARD_HSM__STORE_PASSWORD_FILE", requires = "store")]
    pub(crate) store_password_file: Option<PathBuf>,
    /// PEM CA certificate(s) of the PostgreSQL server (TLS then required, name verified).
    #[arg(long, env = "KEYWARD_HSM__STORE_CA_FILE", requires = "store")]
    pub(crate) store_ca_file: Option<PathBuf>,
    /// Master key file of a key-file seal (default DATA_DIR/master.key; `[seal] key_file`).
    #[arg(long = "seal-key-file", env = "KEYWARD_SEAL__KEY_FILE")]
    pub(crate) seal_key_file: Option<PathBuf>,
}

impl DataDirArg {
    /// The `[hsm]` settings these flags give.
    pub(crate) fn hsm(&self) -> keyward_config::HsmConfig {
        let mut hsm = keyward_config::HsmConfig::in_data_dir(self.data_dir.clone());
        hsm.store = self.store.clone().map(|mut pg| {
            pg.password_file = self.store_password_file.clone();
            pg.ca_file = self.store_ca_file.clone();
            pg
        });
        hsm.key_file = self.seal_key_file.clone();
        hsm
    }
}

fn parse_store(url: &str) -> Result<keyward_config::PostgresStore, String> {
    keyward_config::PostgresStore::from_url(url)
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run an HTTPS proxy with an HSM-held key in front of a built-in demo upstream.
    Quickstart {
        #[command(flatten)]
        data: DataDirArg,
        /// Address to serve HTTPS on. The quickstart's three default ports are used by no
        /// other command's defaults, so it can keep running while you try the others.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Address of the HSM REST API (TLS; trust DATA_DIR/api-ca.pem; admin password in
        /// DATA_DIR/admin.password).
        #[arg(long, default_value = "127.0.0.1:9201")]
        api_listen: SocketAddr,
        /// Address of the admin endpoints (plain HTTP): /metrics, /healthz, /readyz.
        #[arg(long, default_value = "127.0.0.1:9091")]
        admin_listen: SocketAddr,
    },
    /// Run the proxy from a configuration file (SIGHUP reloads it; SIGTERM drains and exits).
    Serve {
        /// TOML configuration file (see keyward.example.toml).
        #[arg(long, env = "KEYWARD_CONFIG")]
        config: PathBuf,
        /// Worker threads running connections; overrides `[runtime] worker_threads` (0 or
        /// absent: one per CPU the process may use).
        #[arg(long, value_parser = clap::value_parser!(u16).range(0..=1024))]
        worker_threads: Option<u16>,
        /// Only check the configuration (every key, with the environment's overrides) and
        /// exit: 0 and `configuration OK`, or 1 and the first problem. Opens no store, binds
        /// no socket.
        #[arg(long)]
        check_config: bool,
        #[command(flatten)]
        accept: AcceptArgs,
    },
    /// Create a new HSM: store, master key, the API's TLS key and certificate, first admin.
    Init {
        #[command(flatten)]
        data: DataDirArg,
        /// Name of the first admin.
        #[arg(long, default_value = "admin")]
        admin: String,
        /// File holding the first admin's password (else env KEYWARD_ADMIN_PASSWORD, else one
        /// is generated and printed once).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        /// DNS names of the API's certificate (repeatable).
        #[arg(long = "api-dns", default_value = "localhost")]
        api_dns: Vec<String>,
        /// IP addresses of the API's certificate (repeatable).
        #[arg(long = "api-ip", default_values = ["127.0.0.1", "::1"])]
        api_ip: Vec<IpAddr>,
        #[command(flatten)]
        seal: SealArgs,
        /// A data directory that already holds a store is left as it is (exit 0, `already
        /// initialized`): for an init container that runs at every start.
        #[arg(long)]
        if_missing: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Run an HSM-only node: the REST API over TLS.
    #[command(subcommand)]
    Hsm(HsmCommand),
    /// Manage keys in the HSM.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Make certificates and CSRs signed inside the HSM.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Issuing CAs on the node(s) given by --server: create, issue, revoke, CRLs.
    #[command(subcommand)]
    Ca(CaCommand),
    /// End the saved session(s) of `keyward login --save` and delete the token file.
    Logout,
    /// Recovery on the machine that holds the data directory and master key, with every
    /// keyward process on it stopped.
    #[command(subcommand)]
    Recover(RecoverCommand),
    /// Log in to the HSM node(s) given by --server and print the user's role.
    Login {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage HSM users on the node(s) given by --server.
    #[command(subcommand)]
    User(UserCommand),
    /// Sign, verify, encrypt, decrypt and MAC with keys on the node(s) given by --server.
    #[command(subcommand)]
    Crypto(CryptoCommand),
    /// The audit log of the node given by --server.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The nodes of a cluster store (--store): heartbeats, versions, the change sequence
    /// each applied. Reads the database only (no master key needed).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The seal of each --server node: status, unseal, seal, rekey (Vault's `operator`).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Encrypted backups of the whole store, in a directory or an S3 bucket.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Sign a file with a key on the --server nodes: a detached CMS signature or a raw one.
    SignFile(SignFileArgs),
    /// Verify a file's signature here (no server): prints `valid` (exit 0) or `invalid: REASON` (exit 1).
    VerifyFile(VerifyFileArgs),
}

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// The store's change sequence and every node: what it runs, when it started, its last
    /// heartbeat, the sequence it applied and its lag; `up` when seen in the last 15 s.
    Status {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The nodes' names, one per line (`up` ones only unless --all).
    Nodes {
        #[command(flatten)]
        data: DataDirArg,
        /// Also nodes not seen in the last 15 s.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum RecoverCommand {
    /// Set a user's password and unlock it without logging in (e.g. when every admin is
    /// locked out). Audited.
    ResetPassword {
        #[command(flatten)]
        data: DataDirArg,
        /// The user.
        #[arg(long)]
        name: String,
        /// File holding the new password.
        #[arg(long)]
        password_file: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum HsmCommand {
    /// Serve the HSM REST API (TLS; the key is the HSM's `api-tls` key).
    Serve {
        #[command(flatten)]
        data: DataDirArg,
        /// Address of the API listener.
        #[arg(long, default_value = "127.0.0.1:9200")]
        listen: SocketAddr,
        /// CA certificate(s), PEM: clients may log in with a certificate it issued (mutual
        /// TLS); the certificate's subject common name is the user name.
        #[arg(long)]
        client_ca: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        backup: BackupScheduleArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a key pair inside the HSM (the private key is not extractable).
    Generate {
        /// ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.
        #[arg(long = "type", value_parser = parse_spec)]
        spec: KeySpec,
        /// Label for both objects of the pair.
        #[arg(long)]
        label: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// List key objects (on the --server nodes when given, else in the local data dir).
    List {
        /// Print JSON (an array of key objects).
        #[arg(long)]
        json: bool,
        /// With --server: attr.label=L, class=private|public|secret, type=ec, attr.NAME=true
        /// (repeatable).
        #[arg(long = "filter")]
        filter: Vec<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    #[command(flatten)]
    Remote(KeyRemote),
}

#[derive(Subcommand)]
pub(crate) enum CertCommand {
    /// A TLS server certificate (full chain, PEM) from an issuing CA for a key, in one step:
    /// with --server, the CA on those nodes certifies your key --key; without, the CA and the
    /// proxy's key in the local data directory (with every keyward process on it stopped).
    Issue {
        /// The issuing CA.
        #[arg(long)]
        ca: String,
        /// Label of the HSM private key.
        #[arg(long)]
        key: String,
        /// DNS subject alternative names (repeatable).
        #[arg(long = "dns", required_unless_present = "ip")]
        dns: Vec<String>,
        /// IP subject alternative names (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Validity in days (default: the CA's limit).
        #[arg(long)]
        days: Option<u32>,
        /// Output PEM file: the certificate, then the CA chain.
        #[arg(long)]
        out: PathBuf,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Write a self-signed TLS server certificate for an HSM key.
    SelfSigned {
        /// Label of the HSM private key.
        #[arg(long)]
        key: String,
        /// DNS subject alternative names (repeatable).
        #[arg(long = "dns", required_unless_present = "ip")]
        dns: Vec<String>,
        /// IP subject alternative names (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Output PEM file.
        #[arg(long)]
        out: PathBuf,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Write a PKCS#10 certificate signing request for an HSM key.
    Csr {
        /// Label of the HSM private key.
        #[arg(long)]
        key: String,
        /// DNS subject alternative names (repeatable).
        #[arg(long = "dns", required = true)]
        dns: Vec<String>,
        /// IP subject alternative names (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Output PEM file.
        #[arg(long)]
        out: PathBuf,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
}

fn parse_spec(s: &str) -> Result<KeySpec, String> {
    s.parse().map_err(|e: keyward_hsm::Error| e.to_string())
}

/// Where the HSM nodes are and who logs in.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct Conn {
    /// HSM node URL, e.g. https://localhost:9200 (repeatable for several nodes; env
    /// KEYWARD_SERVER is comma-separated). Remote commands need it; `key list` uses it when
    /// given, else the local data directory.
    #[arg(
        long = "server",
        env = "KEYWARD_SERVER",
        value_delimiter = ',',
        global = true
    )]
    pub(crate) server: Vec<String>,
    /// User name for remote commands.
    #[arg(long, env = "KEYWARD_USER", global = true)]
    pub(crate) user: Option<String>,
    /// Password for remote commands (prefer env KEYWARD_PASSWORD).
    #[arg(long, env = "KEYWARD_PASSWORD", hide_env_values = true, global = true)]
    pub(crate) password: Option<String>,
    /// CA certificate (PEM) that signed the nodes' API certificate, e.g. DATA_DIR/api-ca.pem.
    #[arg(long = "ca-cert", env = "KEYWARD_CA_CERT", global = true)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// Session token file (default $XDG_RUNTIME_DIR/keyward/session.json, else
    /// ~/.keyward/session.json). Written by `login --save`, used by commands given no
    /// password, deleted by `logout`.
    #[arg(long = "token-file", env = "KEYWARD_TOKEN_FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// With `keyward login`: save the session token(s) to the token file, so that later
    /// commands need no password (until `keyward logout` or the session expires).
    #[arg(long, global = true)]
    pub(crate) save: bool,
}

#[derive(Args, Clone, Debug)]
pub(crate) struct JsonFlag {
    /// Print JSON instead of a human-readable text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Create a user (admin).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// File holding the new user's password.
        #[arg(long = "password-file")]
        password_file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List users.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a user (admin).
    Delete {
        #[arg(long)]
        name: String,
    },
    /// Set a user's password (an admin for anyone, which also unlocks; a user for itself).
    ChangePassword {
        #[arg(long)]
        name: String,
        #[arg(long = "password-file")]
        password_file: PathBuf,
    },
    /// Unlock a locked user by setting a new password (admin).
    Unlock {
        #[arg(long)]
        name: String,
        #[arg(long = "password-file")]
        password_file: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Role {
    Admin,
    CryptoUser,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum SymType {
    Aes,
    GenericSecret,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum PairType {
    Rsa,
    Ec,
    Ed25519,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum PublicFormat {
    Pem,
    Jwk,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum FileEncoding {
    /// A PEM that names the HSM key and holds no key material.
    ReferencePem,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ImportFormat {
    Pem,
}

/// Remote key commands (they need `--server`).
#[derive(Subcommand, Debug)]
pub(crate) enum KeyRemote {
    /// Generate an AES or generic-secret key on the HSM.
    GenerateSymmetric {
        #[arg(value_enum)]
        kind: SymType,
        /// AES key size: 128, 192 or 256.
        #[arg(long, required_if_eq("kind", "aes"))]
        bits: Option<u32>,
        /// Generic-secret length in bytes.
        #[arg(long, required_if_eq("kind", "generic-secret"))]
        bytes: Option<u32>,
        #[arg(long)]
        label: String,
        /// Boolean attribute NAME=true|false (repeatable), e.g. encrypt=true.
        #[arg(long = "attr", value_parser = parse_attr)]
        attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Generate a key pair on the HSM.
    GenerateAsymmetricPair {
        #[arg(value_enum)]
        kind: PairType,
        /// RSA modulus size: 2048, 3072 or 4096 (default 2048).
        #[arg(long)]
        bits: Option<u32>,
        /// EC curve: p256, p384 or p521 (default p256).
        #[arg(long)]
        curve: Option<String>,
        #[arg(long)]
        label: String,
        /// Private key attribute NAME=true|false (repeatable).
        #[arg(long = "private-attr", value_parser = parse_attr)]
        private_attr: Vec<(String, bool)>,
        /// Public key attribute NAME=true|false (repeatable).
        #[arg(long = "public-attr", value_parser = parse_attr)]
        public_attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one key: its attributes and key versions.
    Show {
        /// Key handle, or label of your own key (else of one shared with you).
        key: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Add a new version to a secret key or a key pair (Vault transit's rotate): new
    /// signatures, MACs and ciphertexts use it; older versions still decrypt and verify down
    /// to min_decryption_version. A pair rotates through its private key. A TLS certificate
    /// names one version: the proxy keeps serving it until a certificate for the new version
    /// (`cert csr` / `cert self-signed` after the rotation) is loaded.
    Rotate {
        /// Secret or private key: handle, or label of your own key.
        key: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Set a key's version settings: decrypt, verify and rewrap refuse versions below
    /// --min-decryption-version; new data with an explicit older version is refused below
    /// --min-encryption-version (0: no limit beyond the first).
    Config {
        /// Secret or private key: handle, or label of your own key.
        key: String,
        #[arg(long)]
        min_decryption_version: Option<u32>,
        #[arg(long)]
        min_encryption_version: Option<u32>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Destroy the key versions below --min-available-version for good (at most
    /// min_decryption_version and a set min_encryption_version).
    Trim {
        /// Secret or private key: handle, or label of your own key.
        key: String,
        #[arg(long)]
        min_available_version: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change one attribute of a key (true/false, or text for label and id).
    SetAttribute {
        /// Key handle, or label (yours, else the one shared with you; a pair's two keys share a
        /// label: use a handle).
        #[arg(long)]
        key: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        value: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Share a key with a crypto-user (use only).
    Share {
        /// Secret or private key: handle, or label of your own key.
        #[arg(long)]
        key: String,
        /// The crypto-user (`--user` is the one who logs in).
        #[arg(long = "with", alias = "share-user")]
        with: String,
    },
    /// Stop sharing a key.
    Unshare {
        /// Secret or private key: handle, or label of your own key.
        #[arg(long)]
        key: String,
        /// The crypto-user (`--user` is the one who logs in).
        #[arg(long = "with", alias = "share-user")]
        with: String,
    },
    /// Destroy a key: your own (it must be destroyable), or as an admin with
    /// --force-by-admin any user's key (audited as key.destroy-by-admin).
    Delete {
        /// Key handle, or label (yours, else the one shared with you; a pair's two keys share a
        /// label: use a handle).
        #[arg(long)]
        key: String,
        /// As an admin: destroy another user's key, even one that is not destroyable.
        #[arg(long = "force-by-admin")]
        force_by_admin: bool,
    },
    /// Write a file that stands for a private key where tools expect a key file: a reference
    /// PEM that names the HSM key (label and public-key hash) and holds no key material; the
    /// proxy accepts it as `key_file` in a certificate entry.
    GenerateFile {
        /// Private key: handle, or label (yours, else the one shared with you).
        #[arg(long)]
        key: String,
        /// File encoding.
        #[arg(long, value_enum, default_value = "reference-pem")]
        encoding: FileEncoding,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a public key (PEM or JWK).
    Public {
        /// Private or public key: handle, or label (the private key of a pair first).
        #[arg(long)]
        key: String,
        #[arg(long, value_enum, default_value = "pem")]
        format: PublicFormat,
    },
    /// Export key TARGET wrapped under the wrapping key.
    Wrap {
        /// Wrapping key (secret, or RSA public): handle, or label (yours, else the one shared with
        /// you).
        #[arg(long)]
        key: String,
        /// The key to wrap (secret or private): handle, or label (yours, else the one shared with
        /// you).
        #[arg(long)]
        target: String,
        /// aes-kw, aes-kwp, aes-gcm, rsa-oaep or rsa-aes.
        #[arg(long)]
        mechanism: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a wrapped key under the unwrapping key.
    Unwrap {
        /// Unwrapping key (secret or private): handle, or label (yours, else the one shared with
        /// you).
        #[arg(long)]
        key: String,
        #[arg(long)]
        mechanism: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        label: String,
        /// Spec of a secret key (aes-256, generic-secret-32, ...); absent for a PKCS#8
        /// private key.
        #[arg(long = "secret-spec")]
        secret_spec: Option<String>,
        #[arg(long = "attr", value_parser = parse_attr)]
        attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Import a PEM key: a public key directly; a PKCS#8 private key wrapped under a
    /// transport key generated on the HSM (never in plaintext over the API).
    Import {
        #[arg(value_enum)]
        format: ImportFormat,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        label: String,
        /// Attribute NAME=true|false (repeatable; a private key defaults to sign=true).
        #[arg(long = "attr", value_parser = parse_attr)]
        attr: Vec<(String, bool)>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// Options shared by the crypto commands.
#[derive(Args, Debug)]
pub(crate) struct CryptoArgs {
    /// Key handle, or label: your own key of that label (of a class that fits the
    /// operation), else the one such key shared with you.
    #[arg(long)]
    pub(crate) key: String,
    /// Mechanism, e.g. ecdsa-sha256, ed25519, rsa-pss-sha256, aes-gcm, hmac-sha256.
    #[arg(long)]
    pub(crate) mechanism: String,
    /// Input file (default stdin).
    #[arg(long = "in")]
    pub(crate) input: Option<PathBuf>,
}

/// Signatures, MACs and ciphertexts the crypto commands write: the raw bytes when key version
/// 1 made them (as before keys had versions), else the text `kw:vN:BASE64` and a newline. The
/// commands that read them take either; raw bytes are version 1 unless --key-version says
/// otherwise.
#[derive(Subcommand, Debug)]
pub(crate) enum CryptoCommand {
    /// Sign the input; the signature goes to --out (default stdout): raw for key version 1,
    /// else `kw:vN:BASE64`.
    Sign {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a signature over the input: prints `valid` (exit 0) or `invalid` (exit 1).
    Verify {
        #[command(flatten)]
        a: CryptoArgs,
        /// File holding the signature: `kw:vN:BASE64`, or raw.
        #[arg(long)]
        signature: PathBuf,
        /// The key version that made a raw signature (default 1).
        #[arg(long)]
        key_version: Option<u32>,
    },
    /// Encrypt the input with the key's latest version: raw for version 1, else
    /// `kw:vN:BASE64`.
    Encrypt {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
        /// File with additional authenticated data (aes-gcm).
        #[arg(long = "aad-file")]
        aad_file: Option<PathBuf>,
    },
    /// Decrypt the input (`kw:vN:BASE64`, or raw) with the key version that made it.
    Decrypt {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
        /// File with additional authenticated data (aes-gcm).
        #[arg(long = "aad-file")]
        aad_file: Option<PathBuf>,
        /// The key version that made a raw ciphertext (default 1).
        #[arg(long)]
        key_version: Option<u32>,
    },
    /// Re-encrypt a ciphertext (`kw:vN:BASE64`, or raw) under the key's latest version inside
    /// the HSM: the plaintext never leaves it. The key needs decrypt and encrypt.
    Rewrap {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
        /// File with additional authenticated data (aes-gcm), the same for both.
        #[arg(long = "aad-file")]
        aad_file: Option<PathBuf>,
        /// The key version that made a raw ciphertext (default 1).
        #[arg(long)]
        key_version: Option<u32>,
        /// Print the API's JSON answer (ciphertext, key_version, versioned) instead.
        #[arg(long)]
        json: bool,
    },
    /// HMAC of the input: raw for key version 1, else `kw:vN:BASE64`.
    Hmac {
        #[command(flatten)]
        a: CryptoArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Envelope-encrypt a file of any size: AES-256-GCM chunks under a fresh data key that the
    /// HSM makes and wraps under --key (README: Envelope encryption).
    EncryptFile(EncryptFileArgs),
    /// Decrypt an envelope made by encrypt-file, each chunk verified before it is written.
    DecryptFile(DecryptFileArgs),
}

#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Check the audit hash chain of the node (admin); exit 1 when it is broken.
    Verify {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show audit entries (admin): sequence number, time (UTC), actor, event, target, outcome.
    List {
        /// First entry (sequence number, from 1).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most entries to show, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

fn parse_attr(s: &str) -> Result<(String, bool), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=true|false, got {s:?}"))?;
    let value = value
        .parse::<bool>()
        .map_err(|_| format!("{name}: expected true or false, got {value:?}"))?;
    Ok((name.to_owned(), value))
}

/// The flags of `keyward hsm serve` for its listener's defences (the `[api]` keys of
/// `keyward serve`, with the same defaults).
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct LimitArgs {
    /// Deadline of a client's TLS handshake, in ms.
    #[arg(long, default_value_t = ApiLimits::default().handshake_timeout_ms, value_parser = positive)]
    pub(crate) handshake_timeout_ms: u64,
    /// Deadline of an HTTP/1.1 request head, in ms (slowloris defence; also while a keep-alive
    /// connection waits for its next request).
    #[arg(long, default_value_t = ApiLimits::default().client_header_timeout_ms, value_parser = positive)]
    pub(crate) client_header_timeout_ms: u64,
    /// Longest wait between two reads of a request body, in ms (then 408).
    #[arg(long, default_value_t = ApiLimits::default().client_body_timeout_ms, value_parser = positive)]
    pub(crate) client_body_timeout_ms: u64,
    /// A connection with no request in flight and no bytes moving is closed after this, in ms.
    #[arg(long, default_value_t = ApiLimits::default().idle_timeout_ms, value_parser = positive)]
    pub(crate) idle_timeout_ms: u64,
    /// Connections open at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = ApiLimits::default().max_connections as u64, value_parser = positive)]
    pub(crate) max_connections: u64,
    /// After SIGTERM, requests in flight get this long to finish, in ms.
    #[arg(long, default_value_t = keyward_config::DEFAULT_DRAIN_TIMEOUT_MS, value_parser = positive)]
    pub(crate) drain_timeout_ms: u64,
    /// How long an admin stays locked after 5 consecutive failed logins, in s; 0: until another
    /// admin (or `keyward recover reset-password`) sets a new password. Crypto-users stay
    /// locked until an admin resets them.
    #[arg(long, default_value_t = keyward_config::DEFAULT_ADMIN_LOCKOUT_S)]
    pub(crate) admin_lockout_s: u64,
    #[command(flatten)]
    pub(crate) accept: AcceptArgs,
}

/// What `serve` and `hsm serve` accept at start instead of refusing to open the store; each
/// acceptance is written to the audit trail.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct AcceptArgs {
    /// Start although the audit trail is damaged (an entry edited, swapped, deleted or
    /// inserted): the stretch from the first bad entry to now is recorded as accepted, pinned
    /// by a digest, and audited (`audit.damage-accepted`); any later change in it, and damage
    /// elsewhere, still stops the node; `audit verify` keeps reporting it. For one start, after
    /// investigating: do not leave it in a unit file.
    #[arg(long)]
    pub(crate) accept_audit_damage: bool,
    /// Start although the store is older than its rollback anchor (`keyward.sqlite3.anchor`:
    /// confirmed changes are missing) or the anchor is missing: the node starts from the store
    /// as it is, writes a new anchor and audits it (`store.rollback-accepted`).
    #[arg(long)]
    pub(crate) accept_rollback: bool,
}

impl AcceptArgs {
    pub(crate) fn options(self) -> keyward_hsm::OpenOptions {
        keyward_hsm::OpenOptions {
            accept_audit_damage: self.accept_audit_damage,
            accept_rollback: self.accept_rollback,
        }
    }
}

fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> ApiLimits {
        let mut limits = ApiLimits::default();
        limits.handshake_timeout_ms = self.handshake_timeout_ms;
        limits.client_header_timeout_ms = self.client_header_timeout_ms;
        limits.client_body_timeout_ms = self.client_body_timeout_ms;
        limits.idle_timeout_ms = self.idle_timeout_ms;
        limits.max_connections = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        limits
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}
