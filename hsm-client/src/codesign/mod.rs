//! Code signing with an HSM key: detached CMS signatures (RFC 5652) and raw signatures of
//! files, and their verification.
//!
//! Signing ([`crate::Client::code_signer`], then [`crate::Client::sign_detached_cms`] or
//! [`crate::Client::sign_digest_raw`]): the file is hashed here, in constant memory
//! ([`DigestAlgorithm::hash_reader`]); the HSM signs only the CMS signed attributes (or, raw,
//! the digest), so the file never travels and the key never leaves the HSM. The signer
//! certificate's public key must be the HSM key's. Algorithms: [`SignatureAlgorithm`].
//!
//! Verifying ([`DetachedCms::from_der`], then [`TrustAnchors::verify_cms`]; raw:
//! [`TrustAnchors::verify_raw`]) runs here with no node: aws-lc-rs checks the signature and
//! rustls-webpki the signer certificate's path to a trusted root with the code-signing
//! extended key usage (id-kp-codeSigning) at the signing time. The signing time is the
//! signer's own claim: RFC 3161 timestamps are not made or read yet.
//!
//! ```no_run
//! # async fn run(client: keyward_client::Client, key: u64) -> Result<(), keyward_client::Error> {
//! use keyward_client::codesign::certificates_from_pem;
//!
//! let cert = certificates_from_pem(&std::fs::read("signer.pem").unwrap())?.remove(0);
//! let signer = client.code_signer(key, Some(cert), Vec::new(), None).await?;
//! let digest = signer.algorithm().digest().hash_reader(std::fs::File::open("app.tar").unwrap())?;
//! let cms = client.sign_detached_cms(&signer, &digest, std::time::SystemTime::now()).await?;
//! std::fs::write("app.tar.sig", cms).unwrap();
//! # Ok(()) }
//! ```

mod algorithm;
mod sign;
mod verify;

pub use algorithm::{DigestAlgorithm, FileDigest, SignatureAlgorithm};
pub use sign::{certificates_from_pem, CodeSigner};
pub use verify::{DetachedCms, Invalid, TrustAnchors, Verified};
/// An X.509 certificate (the `x509-cert` crate's).
pub use x509_cert::Certificate;
