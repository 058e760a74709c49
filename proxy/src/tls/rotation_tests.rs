//! Key versions and TLS: a certificate holds one version's public key. After the HSM key is
//! rotated, the proxy keeps serving the certificate it has with that version (the running
//! config, and a reload with the same certificate); a certificate for the new version switches
//! to it; retiring the old version stops the old certificate. Real rustls handshakes in
//! memory, the client checking the server's signature against the certificate.

use std::path::Path;
use std::sync::Arc;

use keyward_hsm::test_util::TestHsm;
use keyward_hsm::{AttributeName, KeySpec, KeyTemplate, VersionSettings};
use rustls::{RootCertStore, ServerConfig};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::server_config;
use crate::Keys;

/// An HSM key's public key as rcgen takes it (the certificate's subject key).
struct HsmPublicKey(Vec<u8>);

impl rcgen::PublicKeyData for HsmPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A test CA (its key in memory: test-only) that issues `localhost` certificates.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    roots: RootCertStore,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            roots,
        }
    }

    /// A certificate for the public key `spki` (SubjectPublicKeyInfo DER), written to `path`.
    fn issue(&self, spki: &[u8], path: &Path) -> Vec<u8> {
        let (_, parsed) = SubjectPublicKeyInfo::from_der(spki).unwrap();
        let key = HsmPublicKey(parsed.subject_public_key.data.to_vec());
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(path, cert.pem()).unwrap();
        cert.der().to_vec()
    }
}

/// A listener serving `chain` with the HSM key labelled `site`, as a (re)load builds it.
fn load(dir: &Path, chain: &str, keys: &Keys) -> Result<ServerConfig, crate::error::Error> {
    let toml = dir.join("keyward.toml");
    std::fs::write(
        &toml,
        format!("[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"site\"\nchain_file = \"{chain}\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n"),
    )
    .unwrap();
    let config = keyward_config::Config::load(&toml, Vec::new()).unwrap();
    server_config(&config.listeners[0], &config.session_resumption, keys)
}

/// A full handshake against `server`; the certificate the client accepted.
fn handshake(server: &ServerConfig, roots: &RootCertStore) -> Result<Vec<u8>, rustls::Error> {
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    let mut client = rustls::ClientConnection::new(
        Arc::new(client_config),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server.clone())).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets()?;
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets()?;
        if !client.is_handshaking() && !server.is_handshaking() {
            let leaf = client.peer_certificates().unwrap()[0].as_ref().to_vec();
            return Ok(leaf);
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

#[test]
fn a_rotated_key_keeps_serving_its_certificate_until_a_new_one_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let test_hsm = TestHsm::new();
    let me = test_hsm.service();
    let (_store, hsm) = test_hsm.into_parts();
    let hsm = Arc::new(hsm);
    let keys = Keys::Local {
        hsm: hsm.clone(),
        session: me.clone(),
        role: crate::NodeRole::Writer,
    };
    let (key, _) = hsm
        .generate_key_pair(
            &me,
            KeySpec::EcP256,
            &KeyTemplate::labelled("site").with(AttributeName::Sign, true),
            &KeyTemplate::labelled("site"),
        )
        .unwrap();
    let ca = Ca::new();
    let cert1 = ca.issue(
        &hsm.public_key_spki(&me, key.handle).unwrap(),
        &dir.path().join("v1.pem"),
    );
    let running = load(dir.path(), "v1.pem", &keys).unwrap();
    assert_eq!(handshake(&running, &ca.roots).unwrap(), cert1);

    hsm.rotate_key(&me, key.handle).unwrap();
    // The running listener, and a reload with the same certificate, sign with version 1.
    assert_eq!(handshake(&running, &ca.roots).unwrap(), cert1);
    let reloaded = load(dir.path(), "v1.pem", &keys).unwrap();
    assert_eq!(handshake(&reloaded, &ca.roots).unwrap(), cert1);

    // A certificate for version 2 (issued after the rotation) switches the listener to it.
    let cert2 = ca.issue(
        &hsm.public_key_spki(&me, key.handle).unwrap(),
        &dir.path().join("v2.pem"),
    );
    assert_ne!(cert1, cert2);
    let switched = load(dir.path(), "v2.pem", &keys).unwrap();
    assert_eq!(handshake(&switched, &ca.roots).unwrap(), cert2);

    // Retiring version 1: the old certificate's handshakes fail, and it no longer loads.
    hsm.configure_key_versions(
        &me,
        key.handle,
        VersionSettings {
            min_decryption_version: Some(2),
            min_encryption_version: None,
        },
    )
    .unwrap();
    assert!(handshake(&running, &ca.roots).is_err());
    assert!(matches!(
        load(dir.path(), "v1.pem", &keys),
        Err(crate::error::Error::KeyMismatch { .. })
    ));
    assert_eq!(handshake(&switched, &ca.roots).unwrap(), cert2);
}
