//! [`NodeError`]: what setting up a node can fail with outside an HTTP request: the API's TLS
//! configuration ([`crate::tls`]) and HSM-signed certificates ([`crate::pki`]). Request errors
//! are [`crate::ApiError`].

/// A failure to set up the API's TLS or to build a certificate or CSR in the HSM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// From the HSM core (a key that does not exist, a signature that failed, ...).
    #[error(transparent)]
    Hsm(#[from] keyward_hsm::Error),
    /// A file could not be written (the API certificate).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The API certificate file could not be read.
    #[error("cannot read the API certificate {path} (run `keyward init`)")]
    ApiCertificateUnreadable {
        /// The file (`DATA_DIR/api-ca.pem`).
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The API key file (a node an operator unseals) is missing, exposed or not a key.
    #[error("cannot use the API key file {path}: {reason}")]
    ApiKeyUnusable {
        /// The file.
        path: String,
        /// What is wrong (never key bytes).
        reason: String,
    },
    /// The client CA file (mutual TLS) could not be read.
    #[error("cannot read client CA {path}")]
    ClientCaUnreadable {
        /// The file.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file is not PEM.
    #[error("{path} is not a PEM certificate")]
    NotPem {
        /// The file.
        path: String,
        /// What the PEM parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A client CA file holds a certificate rustls cannot use as a trust anchor.
    #[error("{path} holds an unusable CA certificate")]
    UnusableCa {
        /// The file.
        path: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// A client CA file holds no certificate.
    #[error("{path} holds no certificate")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// The client certificate verifier could not be built.
    #[error("client certificate verifier")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the server configuration.
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    /// A key of this type cannot sign certificates.
    #[error("{spec} keys cannot sign certificates")]
    CannotSignCertificates {
        /// The key's type.
        spec: keyward_hsm::KeySpec,
    },
    /// The HSM returned a public key that is not a valid SubjectPublicKeyInfo.
    #[error("HSM public key is not valid SPKI")]
    BadSpki,
    /// A DNS name for a certificate is not valid (RFC 1035 preferred syntax).
    #[error("--dns {name:?} is not a valid DNS name")]
    InvalidDnsName {
        /// The name.
        name: String,
    },
    /// A validity that ends after the year 9999.
    #[error("--days {days} ends after the year 9999")]
    ValidityTooLong {
        /// The validity asked for, in days.
        days: u32,
    },
    /// No randomness for a certificate serial number.
    #[error("no randomness for the serial number")]
    NoRandomness,
    /// Building, signing or encoding a certificate or CSR failed (`what` says which).
    #[error("{what}")]
    Certificate {
        /// The step, e.g. `signing the certificate in the HSM failed`.
        what: &'static str,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
}
