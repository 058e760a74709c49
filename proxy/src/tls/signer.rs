//! The bridge from rustls to the HSM: a [`rustls::sign::SigningKey`] over an HSM key handle.
//!
//! The signer seam is rustls's own pair of traits: every key kind the proxy serves with is
//! an `Arc<dyn SigningKey>` in its `CertifiedKey`: [`HsmSigningKey`] here, rustls's
//! in-memory key in `bench-plain-keys` builds, and [`crate::remote`]'s signer over the HSM nodes'
//! API. rustls already calls
//! through that `Arc<dyn SigningKey>`, so the seam costs no extra indirection. A failed
//! HSM signature becomes `rustls::Error::Other` with the [`keyward_hsm::Error`] as its source.
//!
//! rustls calls [`Signer::sign`] synchronously once per full handshake (TLS 1.3
//! CertificateVerify, TLS 1.2 ServerKeyExchange) with the unhashed message; resumed handshakes
//! never call it. The embedded signer goes straight to [`KeySigner::sign`]: a policy check and
//! one aws-lc-rs signature, with no store access, no shared lock and no log line.

use std::sync::Arc;

use keyward_hsm::{KeySigner, KeySpec, SignMechanism};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::SubjectPublicKeyInfoDer;

/// TLS signature schemes (RFC 8446 §4.2.3) a key type can use, in our order of preference,
/// with the HSM mechanism each maps to.
pub(crate) fn schemes_for(spec: KeySpec) -> &'static [(SignatureScheme, SignMechanism)] {
    use SignMechanism as M;
    use SignatureScheme as S;
    match spec {
        KeySpec::EcP256 => &[(S::ECDSA_NISTP256_SHA256, M::EcdsaSha256)],
        KeySpec::EcP384 => &[(S::ECDSA_NISTP384_SHA384, M::EcdsaSha384)],
        KeySpec::EcP521 => &[(S::ECDSA_NISTP521_SHA512, M::EcdsaSha512)],
        KeySpec::Ed25519 => &[(S::ED25519, M::Ed25519)],
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
            (S::RSA_PSS_SHA256, M::RsaPssSha256),
            (S::RSA_PSS_SHA384, M::RsaPssSha384),
            (S::RSA_PSS_SHA512, M::RsaPssSha512),
            (S::RSA_PKCS1_SHA256, M::RsaPkcs1Sha256),
            (S::RSA_PKCS1_SHA384, M::RsaPkcs1Sha384),
            (S::RSA_PKCS1_SHA512, M::RsaPkcs1Sha512),
        ],
        KeySpec::Aes128 | KeySpec::Aes192 | KeySpec::Aes256 | KeySpec::GenericSecret { .. } => &[],
    }
}

/// An HSM private key as rustls sees it. Holds a [`KeySigner`], never key bytes.
#[derive(Debug)]
pub struct HsmSigningKey {
    key: KeySigner,
    schemes: &'static [(SignatureScheme, SignMechanism)],
}

impl HsmSigningKey {
    /// Wraps an HSM signer for rustls.
    pub fn new(key: KeySigner) -> Self {
        let schemes = schemes_for(key.spec());
        HsmSigningKey { key, schemes }
    }
}

impl SigningKey for HsmSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let (scheme, mechanism) = self.schemes.iter().find(|(s, _)| offered.contains(s))?;
        Some(Box::new(HsmSigner {
            key: self.key.clone(),
            scheme: *scheme,
            mechanism: *mechanism,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.key.spki_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key.spec().key_type() {
            "ec" => SignatureAlgorithm::ECDSA,
            "ed25519" => SignatureAlgorithm::ED25519,
            _ => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct HsmSigner {
    key: KeySigner,
    scheme: SignatureScheme,
    mechanism: SignMechanism,
}

impl Signer for HsmSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let started = std::time::Instant::now();
        let result = self.key.sign(self.mechanism, message);
        let m = crate::metrics::metrics();
        m.hsm_sign_duration.observe(started.elapsed().as_secs_f64());
        result.map_err(|e| {
            m.hsm_errors.inc();
            // The HSM error stays the cause (its text names the key handle and the failing
            // check, never key bytes); the allocation happens only on failure.
            rustls::Error::Other(rustls::OtherError(Arc::new(e)))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Builds an `Arc<dyn SigningKey>` for rustls.
pub fn signing_key(key: KeySigner) -> Arc<HsmSigningKey> {
    Arc::new(HsmSigningKey::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_knows_every_scheme_an_hsm_key_signs_with() {
        // The SNI resolver learns a key's schemes by offering each of ALL_SCHEMES alone: a
        // scheme missing there would make the key look unable to sign with it.
        for spec in [
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::EcP521,
            KeySpec::Ed25519,
            KeySpec::Rsa2048,
            KeySpec::Rsa3072,
            KeySpec::Rsa4096,
        ] {
            assert!(!schemes_for(spec).is_empty(), "{spec:?}");
            for (scheme, _) in schemes_for(spec) {
                assert!(
                    crate::tls::resolver::ALL_SCHEMES.contains(scheme),
                    "{spec:?}: {scheme:?}"
                );
            }
        }
    }
}
