//! Known-answer self-tests run before the HSM serves anything (FIPS 140-3 style pre-operational
//! tests). A failure makes [`crate::Hsm::open`] and [`crate::Hsm::create`] refuse to start.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::error::{Error, Result};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

/// Runs every known-answer test.
pub(crate) fn run() -> Result<()> {
    sha256()?;
    aes_256_gcm()?;
    ed25519()?;
    ecdsa_pairwise()?;
    Ok(())
}

/// FIPS 180-4 example: SHA-256("abc").
fn sha256() -> Result<()> {
    let d = digest::digest(&digest::SHA256, b"abc");
    if d.as_ref() != hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") {
        return Err(Error::SelfTestFailed {
            algorithm: "sha-256",
        });
    }
    Ok(())
}

/// McGrew–Viega GCM test case 14: K = 0^256, IV = 0^96, P = 0^128.
fn aes_256_gcm() -> Result<()> {
    let fail = || Error::SelfTestFailed {
        algorithm: "aes-256-gcm",
    };
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0u8; 32]).map_err(|_| fail())?);
    let mut buf = vec![0u8; 16];
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0u8; 12]),
        Aad::empty(),
        &mut buf,
    )
    .map_err(|_| fail())?;
    let want = hex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
    if buf != want {
        return Err(fail());
    }
    let mut tampered = want.clone();
    tampered[0] ^= 1;
    if key
        .open_in_place(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::empty(),
            &mut tampered,
        )
        .is_ok()
    {
        return Err(fail());
    }
    Ok(())
}

/// RFC 8032 §7.1 TEST 1 (empty message).
fn ed25519() -> Result<()> {
    let fail = || Error::SelfTestFailed {
        algorithm: "ed25519",
    };
    let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, &public).map_err(|_| fail())?;
    let sig = pair.sign(b"");
    let want = hex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    if sig.as_ref() != want {
        return Err(fail());
    }
    Ok(())
}

/// Pairwise consistency for ECDSA P-256 (signatures are randomized, so sign then verify).
fn ecdsa_pairwise() -> Result<()> {
    let fail = || Error::SelfTestFailed {
        algorithm: "ecdsa-p256",
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pair = signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| fail())?;
    let sig = pair.sign(&rng, b"keyward self-test").map_err(|_| fail())?;
    let public = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        pair.public_key().as_ref(),
    );
    public
        .verify(b"keyward self-test", sig.as_ref())
        .map_err(|_| fail())?;
    if public.verify(b"keyward self-test!", sig.as_ref()).is_ok() {
        return Err(fail());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_known_answers_pass() {
        super::run().unwrap();
    }
}
