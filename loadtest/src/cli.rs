//! Command-line interface (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// TLS handshake and HTTP request load generator for benchmarking Keyward and other TLS
/// servers side by side.
///
/// Pin the generator to its own cores with `taskset`, for example
/// `taskset -c 1 keyward-loadtest --threads 1 handshake ...`, and the server to others.
#[derive(Debug, Parser)]
#[command(name = "keyward-loadtest", version)]
pub struct Cli {
    /// What to measure.
    #[command(subcommand)]
    pub mode: Mode,
}

/// The two load shapes.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// A new TCP + TLS connection per operation (measures handshakes).
    Handshake(HandshakeArgs),
    /// Keep-alive HTTP/1.1 or HTTP/2 requests over a fixed set of TLS connections.
    Request(RequestArgs),
    /// Open many keep-alive TLS connections (handshake + one HTTP/1.1 request each), hold
    /// them idle, then check they still answer (measures the server's memory per idle
    /// connection, read by whoever runs this).
    Idle(IdleArgs),
    /// Benchmark keyward, nginx, nginx + SoftHSM2 and HAProxy side by side on this
    /// machine (see `loadtest/README.md`); writes results.json, results.md, results.png.
    Compare(crate::compare::CompareArgs),
}

/// Options shared by both modes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Server address, `HOST:PORT` (resolved once at start).
    pub target: String,

    /// TLS server name (SNI and name checked with `--ca`). An IP address sends no SNI.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,

    /// Accept exactly this end-entity certificate (PEM; the first certificate in the
    /// file). No chain building or name check; the handshake signature is still verified.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "ca",
        conflicts_with = "ca"
    )]
    pub pin_cert: Option<PathBuf>,

    /// Verify the server chain and name with WebPKI against these roots (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// TLS protocol version offered (only this one).
    #[arg(long = "tls", value_enum, default_value = "1.3")]
    pub tls: TlsVersion,

    /// Key-exchange groups offered, in preference order (comma-separated). TLS 1.3 sends
    /// a key share for the first. A TLS 1.2 server with an ECDSA certificate may also
    /// require the certificate's curve in the list (OpenSSL does, RFC 4492 §5.1), so
    /// `x25519,secp256r1` is what browsers offer there.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "x25519")]
    pub group: Vec<Group>,

    /// Signature schemes offered for the server's handshake signature.
    #[arg(long, value_enum, default_value = "all")]
    pub sigalgs: SigAlgs,

    /// Cipher suites offered, by AEAD. It also sets the handshake hash: SHA-384 for
    /// AES-256-GCM, SHA-256 for the others (a noticeable share of handshake CPU).
    #[arg(long, value_enum, default_value = "all")]
    pub cipher: Cipher,

    /// Tokio worker threads (default: the number of CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Stop starting new operations after this long (`500ms`, `10s`, `2m`). Default `10s`
    /// unless `--count` is given.
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,

    /// Stop after starting this many operations (handshakes, or requests in `request` mode).
    #[arg(long)]
    pub count: Option<u64>,

    /// Give up on one operation (connect + handshake + request) after this long; counted as
    /// a `timeout` error.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Request path.
    #[arg(long, default_value = "/")]
    pub path: String,

    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,

    /// With `--pin-cert`: check the server's handshake signature on one handshake in N
    /// instead of every one, so the client spends less per handshake than the server (a
    /// P-256 verification costs more than the signature). 1 checks every handshake.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub verify_every: u64,
}

/// `handshake` mode options.
#[derive(Debug, Args)]
pub struct HandshakeArgs {
    /// Options shared by both modes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Resume sessions: a client session cache shared by all connections, so each
    /// connection resumes a previous session (TLS 1.3 tickets; TLS 1.2 session ids or
    /// tickets). Without it, no cache and no tickets: every handshake is full.
    #[arg(long)]
    pub resume: bool,

    /// Closed loop: this many connections in flight at all times (default 1).
    #[arg(long, conflicts_with = "rate")]
    pub connections: Option<usize>,

    /// Open loop: start this many connections per second on a fixed schedule, whatever
    /// the server's speed. Latency counts from the scheduled start.
    #[arg(long)]
    pub rate: Option<f64>,

    /// After the handshake, send one `GET` with `Connection: close` and read the whole
    /// response. Without it the client closes (close_notify) right after the handshake.
    #[arg(long)]
    pub request: bool,
}

/// `request` mode options.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Options shared by both modes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// HTTP version (negotiated with ALPN, which offers only this one).
    #[arg(long, value_enum, default_value = "1.1")]
    pub http: HttpVersion,

    /// Keep-alive connections, each with one request in flight at a time.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
}

/// `idle` mode options. `--duration` and `--count` do not apply.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Options shared by all modes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,

    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,

    /// Hold the open connections this long. Without it they are held until standard input
    /// reaches end of file (how `compare` measures memory while they are open).
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3 (RFC 8446).
    #[value(name = "1.3")]
    Tls13,
}

/// A key-exchange group (RFC 8446 §4.2.7 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Group {
    /// X25519 (RFC 7748).
    X25519,
    /// NIST P-256.
    Secp256r1,
    /// NIST P-384.
    Secp384r1,
    /// Hybrid X25519 + ML-KEM-768 (TLS 1.3 only).
    X25519mlkem768,
}

/// A family of signature schemes offered in `signature_algorithms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigAlgs {
    /// ECDSA with P-256/SHA-256, P-384/SHA-384, P-521/SHA-512.
    Ecdsa,
    /// Only ecdsa_secp256r1_sha256 (so every server makes the same signature).
    EcdsaP256Sha256,
    /// RSASSA-PSS (rsae) with SHA-256/384/512.
    RsaPss,
    /// Only rsa_pss_rsae_sha256.
    RsaPssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256/384/512 (TLS 1.2 only: TLS 1.3 forbids it in
    /// CertificateVerify, RFC 8446 §4.2.3).
    RsaPkcs1,
    /// Everything the crypto provider verifies.
    All,
}

/// A family of cipher suites, by AEAD (TLS 1.3 suites, RFC 8446 §B.4, and the TLS 1.2
/// ECDHE suites with the same AEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cipher {
    /// AES-128-GCM with SHA-256.
    Aes128Gcm,
    /// AES-256-GCM with SHA-384.
    Aes256Gcm,
    /// ChaCha20-Poly1305 with SHA-256.
    Chacha20Poly1305,
    /// Every suite of the provider's default list, in its order.
    All,
}

/// An HTTP version for `request` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpVersion {
    /// HTTP/1.1 keep-alive.
    #[value(name = "1.1")]
    Http1,
    /// HTTP/2 (one stream at a time per connection).
    #[value(name = "2")]
    Http2,
}

/// Parses `250ms`, `10s`, `2m`, `1h` or a bare number of seconds.
///
/// # Errors
/// A message for clap when the number or the unit is not recognised.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("invalid duration `{s}`"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in `{s}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}
