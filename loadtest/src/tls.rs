//! The rustls client configuration: offered version, group, cipher suites and signature
//! schemes, resumption, and server certificate verification (pinned or WebPKI).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, PeerMisbehaved, RootCertStore,
    SignatureScheme, SupportedCipherSuite,
};

use crate::cli::{Cipher, Group, SigAlgs, TlsVersion};

/// Everything that shapes the client's TLS handshakes.
#[derive(Debug)]
pub struct TlsOptions<'a> {
    /// The only protocol version offered.
    pub version: TlsVersion,
    /// The key-exchange groups offered, in preference order (at least one).
    pub groups: &'a [Group],
    /// The signature schemes offered.
    pub sigalgs: SigAlgs,
    /// The cipher suites offered.
    pub cipher: Cipher,
    /// Pinned end-entity certificate (PEM file), or
    pub pin_cert: Option<&'a Path>,
    /// WebPKI roots (PEM file).
    pub ca: Option<&'a Path>,
    /// Keep a session cache and resume (true), or disable resumption entirely (false).
    pub resume: bool,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<Vec<u8>>,
    /// Check the server's handshake signature on one handshake in this many (1: every
    /// handshake). Only with a pinned certificate.
    pub verify_every: u64,
}

/// What the verifier saw during a run, shared by every connection.
#[derive(Debug, Default)]
pub struct Observed {
    /// The server's handshake signature scheme on the first full handshake.
    pub signature_scheme: OnceLock<SignatureScheme>,
    /// Handshake signatures checked.
    pub verified: AtomicU64,
    /// Handshake signatures not checked (sampling with `verify_every` > 1).
    pub unchecked: AtomicU64,
}

/// Builds the client configuration shared by every connection of a run, and the record of
/// what its verifier sees.
///
/// # Errors
/// Unreadable or empty PEM files, a group that cannot be used with the version (ML-KEM
/// with TLS 1.2), no signature scheme left to offer, or `verify_every` other than 1
/// without a pinned certificate.
pub fn client_config(opts: &TlsOptions<'_>) -> anyhow::Result<(Arc<ClientConfig>, Arc<Observed>)> {
    let base = aws_lc_rs::default_provider();
    if opts.groups.is_empty() {
        bail!("no key-exchange group to offer");
    }
    let mut kx_groups = Vec::new();
    for g in opts.groups {
        let group = match g {
            Group::X25519 => aws_lc_rs::kx_group::X25519,
            Group::Secp256r1 => aws_lc_rs::kx_group::SECP256R1,
            Group::Secp384r1 => aws_lc_rs::kx_group::SECP384R1,
            Group::X25519mlkem768 => aws_lc_rs::kx_group::X25519MLKEM768,
        };
        if opts.version == TlsVersion::Tls12
            && !group.usable_for_version(rustls::ProtocolVersion::TLSv1_2)
        {
            bail!(
                "key-exchange group {:?} cannot be used with TLS 1.2",
                group.name()
            );
        }
        kx_groups.push(group);
    }
    let cipher_suites = offered_suites(opts.cipher, &base.cipher_suites);
    let provider = Arc::new(CryptoProvider {
        kx_groups,
        cipher_suites,
        ..base
    });
    let schemes = offered_schemes(opts.sigalgs, &provider.signature_verification_algorithms);
    if schemes.is_empty() {
        bail!("no signature scheme to offer for {:?}", opts.sigalgs);
    }

    let check = match (opts.pin_cert, opts.ca) {
        (Some(path), _) => Check::Pinned(read_first_cert(path)?),
        (None, Some(path)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading CA certificates from {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
                roots.add(cert).context("adding a CA certificate")?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .context("building the WebPKI verifier")?;
            Check::WebPki(webpki)
        }
        (None, None) => bail!("give --pin-cert FILE or --ca FILE"),
    };
    if opts.verify_every == 0 || (opts.verify_every > 1 && opts.pin_cert.is_none()) {
        bail!("--verify-every must be 1, or more than 1 with --pin-cert");
    }
    let observed = Arc::new(Observed::default());
    let verifier = Arc::new(Verifier {
        check,
        algorithms: provider.signature_verification_algorithms,
        schemes,
        verify_every: opts.verify_every,
        signed: AtomicU64::new(0),
        observed: observed.clone(),
    });

    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.version {
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = if opts.resume {
        Resumption::in_memory_sessions(1024).tls12_resumption(Tls12Resumption::SessionIdOrTickets)
    } else {
        Resumption::disabled()
    };
    config.alpn_protocols.clone_from(&opts.alpn);
    Ok((Arc::new(config), observed))
}

/// The signature schemes of `family` that `algorithms` can verify, in the provider's order.
fn offered_schemes(
    family: SigAlgs,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Vec<SignatureScheme> {
    use SignatureScheme as S;
    let wanted: &[SignatureScheme] = match family {
        SigAlgs::Ecdsa => &[
            S::ECDSA_NISTP256_SHA256,
            S::ECDSA_NISTP384_SHA384,
            S::ECDSA_NISTP521_SHA512,
        ],
        SigAlgs::EcdsaP256Sha256 => &[S::ECDSA_NISTP256_SHA256],
        SigAlgs::RsaPss => &[S::RSA_PSS_SHA256, S::RSA_PSS_SHA384, S::RSA_PSS_SHA512],
        SigAlgs::RsaPssSha256 => &[S::RSA_PSS_SHA256],
        SigAlgs::RsaPkcs1 => &[
            S::RSA_PKCS1_SHA256,
            S::RSA_PKCS1_SHA384,
            S::RSA_PKCS1_SHA512,
        ],
        SigAlgs::All => return algorithms.supported_schemes(),
    };
    algorithms
        .supported_schemes()
        .into_iter()
        .filter(|s| wanted.contains(s))
        .collect()
}

/// The suites of `suites` that use the AEAD `cipher`, in the provider's order.
fn offered_suites(cipher: Cipher, suites: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
    use rustls::CipherSuite as C;
    let wanted: &[C] = match cipher {
        Cipher::Aes128Gcm => &[
            C::TLS13_AES_128_GCM_SHA256,
            C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        Cipher::Aes256Gcm => &[
            C::TLS13_AES_256_GCM_SHA384,
            C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        Cipher::Chacha20Poly1305 => &[
            C::TLS13_CHACHA20_POLY1305_SHA256,
            C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        Cipher::All => return suites.to_vec(),
    };
    suites
        .iter()
        .filter(|s| wanted.contains(&s.suite()))
        .copied()
        .collect()
}

/// Reads the first certificate of a PEM file.
fn read_first_cert(path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let mut certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading the pinned certificate {}", path.display()))?;
    match certs.next() {
        Some(cert) => cert.with_context(|| format!("parsing {}", path.display())),
        None => bail!("no CERTIFICATE in {}", path.display()),
    }
}

/// How the server certificate is accepted.
#[derive(Debug)]
enum Check {
    /// Exactly this end-entity certificate (DER equality); intermediates, name and
    /// validity period are ignored.
    Pinned(CertificateDer<'static>),
    /// Full WebPKI chain and name verification.
    WebPki(Arc<WebPkiServerVerifier>),
}

/// A [`ServerCertVerifier`] that accepts a pinned certificate (or delegates to WebPKI),
/// offers only the chosen signature schemes, and verifies the handshake signature
/// (RFC 5246 §7.4.3 ServerKeyExchange, RFC 8446 §4.4.3 CertificateVerify) on every
/// handshake, or with a pinned certificate on one in `verify_every` (a benchmark-only
/// saving: the client then spends less per handshake than the server; a server that signs
/// wrongly still fails the sampled handshakes).
#[derive(Debug)]
struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
    schemes: Vec<SignatureScheme>,
    verify_every: u64,
    /// Signed handshakes seen so far (the sampling position).
    signed: AtomicU64,
    observed: Arc<Observed>,
}

impl Verifier {
    /// Checks the scheme was offered and records it; false when this handshake's signature
    /// is skipped by sampling.
    fn admit(&self, dss: &DigitallySignedStruct) -> Result<bool, Error> {
        if !self.schemes.contains(&dss.scheme) {
            return Err(Error::PeerMisbehaved(
                PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        let _ = self.observed.signature_scheme.set(dss.scheme);
        let n = self.signed.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(self.verify_every) {
            self.observed.unchecked.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        self.observed.verified.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match &self.check {
            Check::Pinned(pinned) if pinned.as_ref() == end_entity.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            Check::Pinned(_) => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            Check::WebPki(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if !self.admit(dss)? {
            return Ok(HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        if !self.admit(dss)? {
            return Ok(HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_families_are_disjoint_subsets_of_all() {
        let algs = aws_lc_rs::default_provider().signature_verification_algorithms;
        let all = offered_schemes(SigAlgs::All, &algs);
        for family in [SigAlgs::Ecdsa, SigAlgs::RsaPss, SigAlgs::RsaPkcs1] {
            let some = offered_schemes(family, &algs);
            assert_eq!(some.len(), 3, "{family:?}: {some:?}");
            assert!(some.iter().all(|s| all.contains(s)));
        }
        assert!(offered_schemes(SigAlgs::Ecdsa, &algs)
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(!offered_schemes(SigAlgs::Ecdsa, &algs).contains(&SignatureScheme::RSA_PSS_SHA256));
    }

    #[test]
    fn cipher_families_have_one_tls13_and_two_tls12_suites() {
        let suites = aws_lc_rs::default_provider().cipher_suites;
        for cipher in [
            Cipher::Aes128Gcm,
            Cipher::Aes256Gcm,
            Cipher::Chacha20Poly1305,
        ] {
            let some = offered_suites(cipher, &suites);
            assert_eq!(some.len(), 3, "{cipher:?}: {some:?}");
            assert_eq!(
                some.iter().filter(|s| s.tls13().is_some()).count(),
                1,
                "{cipher:?}"
            );
        }
        assert_eq!(offered_suites(Cipher::All, &suites).len(), suites.len());
    }
}
