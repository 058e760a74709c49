//! The one error type of the SDK.

use keyward_api::ErrorCode;

/// A boxed error from the transport layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a call can fail with. Never contains a token or a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error body `{ "code", "message" }`.
    #[error("API error {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code, e.g. [`ErrorCode::KeyNotFound`] (`key_not_found`);
        /// a code this version does not know is [`ErrorCode::Other`].
        code: ErrorCode,
        /// Human-readable message.
        message: String,
    },
    /// The node could not be reached (TCP connect, TLS handshake): the request was not sent.
    #[error("cannot connect: {0}")]
    Connect(#[source] BoxError),
    /// The node's TLS certificate did not verify with the configured CA certificate(s): it was
    /// issued by another CA, does not cover the node's host name, or has expired. The request
    /// was not sent.
    #[error("the TLS certificate of {node} is not trusted by {ca}: {reason}")]
    UntrustedCertificate {
        /// The node's base URL.
        node: String,
        /// The trust anchors: `the CA file PATH` (from [`crate::ClientConfig::ca_cert_pem_file`])
        /// or `the configured CA certificate`.
        ca: String,
        /// Why verification failed, in words.
        reason: String,
    },
    /// The connection failed after the request may have been sent (reset, closed, HTTP error).
    #[error("transport error: {0}")]
    Transport(#[source] BoxError),
    /// No complete answer within the configured request timeout.
    #[error("request timed out")]
    Timeout,
    /// The response was not the JSON the API documents.
    #[error("cannot decode the response: {0}")]
    Decode(String),
    /// Every node (and every retry) failed; `last` is the last failure.
    #[error("all nodes failed; last error: {last}")]
    AllNodesFailed {
        /// The last failure.
        last: Box<Error>,
    },
    /// The client configuration is invalid (node URL, CA certificate, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The call needs a session: call [`crate::Client::login`] first.
    #[error("not logged in")]
    NotLoggedIn,
    /// The one-use transport key of [`crate::Client::import_private_pkcs8`] could not be
    /// generated or destroyed (`action`: `generate` or `destroy`).
    #[error("cannot {action} the transport key")]
    TransportKey {
        /// What failed: `generate` or `destroy`.
        action: &'static str,
        /// The API call's error.
        #[source]
        source: Box<Error>,
    },
    /// Wrapping a key on this machine failed (the step is named): a transport public key the
    /// crypto library refuses, or no randomness.
    #[error("{0}")]
    LocalWrap(&'static str),
    /// Reading the input of a local step (a file being hashed) failed.
    #[error("cannot read the input: {0}")]
    Read(#[source] std::io::Error),
    /// A certificate, public key or CMS structure could not be read or encoded (`what`: the
    /// step, e.g. `read the PEM certificates`).
    #[error("cannot {what}: {source}")]
    Der {
        /// The step that failed.
        what: &'static str,
        /// The DER library's error.
        #[source]
        source: der::Error,
    },
    /// The signer certificate's public key is not the public key of key `key` (in any
    /// version that may sign): the certificate belongs to another key.
    #[error("the certificate's public key is not the public key of HSM key {key}")]
    CertificateKeyMismatch {
        /// The key handle.
        key: u64,
    },
    /// A key type code signing does not take (`algorithm`: its OID, and curve).
    #[error("code signing does not support keys of algorithm {algorithm}")]
    UnsupportedKey {
        /// The SubjectPublicKeyInfo algorithm.
        algorithm: String,
    },
    /// A mechanism that is unknown or does not fit the key.
    #[error("mechanism {mechanism} does not fit an {key} key; expected one of {expected}")]
    MechanismMismatch {
        /// The mechanism asked for.
        mechanism: String,
        /// The key type, e.g. `EC P-256`.
        key: &'static str,
        /// The mechanisms that fit.
        expected: String,
    },
    /// A digest made with another hash than the signature algorithm's.
    #[error("the digest is {got}; the signature algorithm needs {expected}")]
    DigestMismatch {
        /// The hash the algorithm needs.
        expected: String,
        /// The digest's hash.
        got: String,
    },
    /// A CMS signature needs the signer certificate: the signer was made without one.
    #[error("a CMS signature needs the signer certificate")]
    MissingCertificate,
    /// A combination this does not do (the reason says which and what to do instead).
    #[error("{0}")]
    Unsupported(&'static str),
    /// Envelope encryption or decryption failed on this machine: I/O, a malformed or
    /// truncated envelope, a chunk that fails authentication.
    #[error(transparent)]
    Envelope(#[from] crate::EnvelopeError),
}

impl Error {
    /// The API error code (`key_not_found`, ...), also through [`Error::AllNodesFailed`].
    pub fn code(&self) -> Option<&str> {
        self.error_code().map(ErrorCode::as_str)
    }

    /// The API error code as [`ErrorCode`], also through [`Error::AllNodesFailed`].
    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            Error::AllNodesFailed { last } => last.error_code(),
            _ => None,
        }
    }

    /// The HTTP status of an API error, also through [`Error::AllNodesFailed`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::AllNodesFailed { last } => last.status(),
            _ => None,
        }
    }
}

/// Result of an SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
