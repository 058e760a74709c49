//! ECDH without a KDF (PKCS#11's `CKD_NULL`): the key is the shared secret's leftmost bytes,
//! checked against aws-lc-rs's own agreement from the peer's side (an independent
//! computation: the HSM's private key never leaves it, the peer's is local).

use aws_lc_rs::{agreement, hmac};

use crate::tests::TestHsm;
use crate::*;

fn template(label: &str) -> KeyTemplate {
    KeyTemplate::labelled(label)
        .with(AttributeName::Sign, true)
        .with(AttributeName::Derive, true)
}

#[test]
fn a_derived_key_without_kdf_is_the_shared_secret() {
    let h = TestHsm::new();
    let me = h.service();
    let (hsm_key, hsm_pub) = h
        .generate_key_pair(&me, KeySpec::EcP256, &template("base"), &template("base"))
        .unwrap();
    let hsm_spki = h.public_key_spki(&me, hsm_pub.handle).unwrap();
    // The peer: a local ephemeral P-256 key.
    let peer = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
    let peer_point = peer.compute_public_key().unwrap();
    let z: Vec<u8> = agreement::agree(
        &peer,
        agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &hsm_spki),
        (),
        |z| Ok(z.to_vec()),
    )
    .unwrap();
    assert_eq!(z.len(), 32);
    let params = EcdhParams {
        peer_public: peer_point.as_ref(),
        salt: b"",
        info: b"",
    };
    let derive = |spec, label: &str| {
        h.derive_key_with(
            &me,
            hsm_key.handle,
            &params,
            EcdhKdf::Null,
            spec,
            &template(label),
        )
    };
    // A 32-byte key is Z: the HSM's HMAC with it equals one computed here with Z.
    let k32 = derive(KeySpec::GenericSecret { bytes: 32 }, "z32").unwrap();
    let mac = |key: &[u8]| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), b"m")
            .as_ref()
            .to_vec()
    };
    let hsm_mac = |handle| {
        h.sign(
            &me,
            handle,
            SignMechanism::HmacSha256,
            SignInput::Message(b"m"),
            SignatureEncoding::Der,
        )
        .unwrap()
    };
    assert_eq!(hsm_mac(k32.handle), mac(&z));
    // A shorter key is Z's leftmost bytes; a longer one is refused, and so are salt and info.
    let k16 = derive(KeySpec::GenericSecret { bytes: 16 }, "z16").unwrap();
    assert_eq!(hsm_mac(k16.handle), mac(&z[..16]));
    let long = derive(KeySpec::GenericSecret { bytes: 33 }, "z33").unwrap_err();
    assert_eq!(long.code(), "invalid_input", "{long}");
    let salted = h
        .derive_key_with(
            &me,
            hsm_key.handle,
            &EcdhParams {
                salt: b"s",
                ..params
            },
            EcdhKdf::Null,
            KeySpec::Aes256,
            &template("salted"),
        )
        .unwrap_err();
    assert_eq!(salted.code(), "invalid_input", "{salted}");
    // HKDF (the default) gives another key from the same agreement.
    let hkdf = h
        .derive_key(
            &me,
            hsm_key.handle,
            &params,
            KeySpec::GenericSecret { bytes: 32 },
            &template("hkdf"),
        )
        .unwrap();
    assert_ne!(hsm_mac(hkdf.handle), mac(&z));
}
