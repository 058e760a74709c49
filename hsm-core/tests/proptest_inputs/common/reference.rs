//! Outside-the-HSM crypto (aws-lc-rs): the reference the HSM's results are checked against.

use super::*;

/// RSA PKCS#8 keys, generated once per test binary (RSA key generation is slow).
pub(crate) fn rsa_keys() -> &'static [(KeySpec, Vec<u8>)] {
    static KEYS: OnceLock<Vec<(KeySpec, Vec<u8>)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let sizes = [
            (KeySpec::Rsa2048, lc_rsa::KeySize::Rsa2048),
            (KeySpec::Rsa3072, lc_rsa::KeySize::Rsa3072),
            (KeySpec::Rsa4096, lc_rsa::KeySize::Rsa4096),
        ];
        std::thread::scope(|s| {
            let jobs: Vec<_> = sizes
                .iter()
                .map(|&(spec, size)| {
                    s.spawn(move || {
                        let pair = lc_rsa::KeyPair::generate(size).expect("rsa keygen");
                        (spec, pair.as_der().expect("pkcs8").as_ref().to_vec())
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.join().expect("keygen"))
                .collect()
        })
    })
}

pub(crate) struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

pub(crate) fn hkdf_sha256(secret: &[u8], salt: &[u8], info: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(secret)
        .expand(&[info], Len(len))
        .ok()?
        .fill(&mut out)
        .ok()?;
    Some(out)
}

pub(crate) fn ecdh(
    mine: &agreement::PrivateKey,
    alg: &'static agreement::Algorithm,
    peer: &[u8],
) -> Option<Vec<u8>> {
    agreement::agree(
        mine,
        agreement::UnparsedPublicKey::new(alg, peer),
        (),
        |s| Ok(s.to_vec()),
    )
    .ok()
}

/// Key check value as the HSM documents it.
pub(crate) fn kcv_secret(spec: KeySpec, value: &[u8]) -> String {
    if spec.key_type() == "aes" {
        let alg = match value.len() {
            16 => &cipher::AES_128,
            24 => &cipher::AES_192,
            _ => &cipher::AES_256,
        };
        let key = EncryptingKey::ecb(UnboundCipherKey::new(alg, value).unwrap()).unwrap();
        let mut block = [0u8; 16];
        key.encrypt(&mut block).unwrap();
        hex::encode(&block[..3])
    } else if value.len() < 16 {
        // Short secrets get no check value (it would give the secret away).
        String::new()
    } else {
        hex::encode(&digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, value).as_ref()[..3])
    }
}

pub(crate) fn kcv_spki(spki: &[u8]) -> String {
    hex::encode(&digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, spki).as_ref()[..3])
}

pub(crate) fn kek(key: &[u8; 32]) -> AesKek {
    AesKek::new(&key_wrap::AES_256, key).unwrap()
}

/// AES-KW (`padded` false) or AES-KWP of `data` under `key`.
pub(crate) fn aes_kw(key: &[u8; 32], data: &[u8], padded: bool) -> Vec<u8> {
    let mut out = vec![0u8; data.len() + 16];
    let n = if padded {
        kek(key).wrap_with_padding(data, &mut out).unwrap().len()
    } else {
        kek(key).wrap(data, &mut out).unwrap().len()
    };
    out.truncate(n);
    out
}

pub(crate) fn gcm_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, key).unwrap())
}

/// IV (12) ‖ ciphertext ‖ tag (16), the HSM's aes-gcm layout.
pub(crate) fn gcm_seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut iv = [0u8; 12];
    aws_lc_rs::rand::fill(&mut iv).unwrap();
    let mut body = plaintext.to_vec();
    gcm_key(key)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut body)
        .unwrap();
    [iv.as_slice(), &body].concat()
}

pub(crate) fn gcm_open(key: &[u8; 32], input: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let iv: [u8; 12] = input.get(..12)?.try_into().ok()?;
    let mut body = input[12..].to_vec();
    let n = gcm_key(key)
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut body)
        .ok()?
        .len();
    body.truncate(n);
    Some(body)
}

/// IV (16) ‖ ciphertext, the HSM's aes-cbc-pad layout.
pub(crate) fn cbc_seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let k =
        PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&cipher::AES_256, key).unwrap())
            .unwrap();
    let mut body = plaintext.to_vec();
    let ctx = k.encrypt(&mut body).unwrap();
    let iv: &[u8] = (&ctx).try_into().unwrap();
    [iv, &body].concat()
}

pub(crate) fn cbc_open(key: &[u8; 32], input: &[u8]) -> Option<Vec<u8>> {
    let iv: [u8; 16] = input.get(..16)?.try_into().ok()?;
    let k = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&cipher::AES_256, key).ok()?)
        .ok()?;
    let mut body = input[16..].to_vec();
    let n = k
        .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
        .ok()?
        .len();
    body.truncate(n);
    Some(body)
}

pub(crate) fn oaep_alg(m: EM) -> &'static lc_rsa::OaepAlgorithm {
    match m {
        EM::RsaOaepSha384 => &lc_rsa::OAEP_SHA384_MGF1SHA384,
        EM::RsaOaepSha512 => &lc_rsa::OAEP_SHA512_MGF1SHA512,
        _ => &lc_rsa::OAEP_SHA256_MGF1SHA256,
    }
}

pub(crate) fn oaep_seal(spki: &[u8], m: EM, plaintext: &[u8]) -> Vec<u8> {
    let key = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(spki).unwrap()).unwrap();
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(oaep_alg(m), plaintext, &mut out, None)
        .unwrap()
        .len();
    out.truncate(n);
    out
}

pub(crate) fn rsa_bytes(spec: KeySpec) -> usize {
    match spec {
        KeySpec::Rsa2048 => 256,
        KeySpec::Rsa3072 => 384,
        _ => 512,
    }
}

/// Largest RSA-OAEP plaintext (RFC 8017 §7.1.1): k − 2·hLen − 2.
pub(crate) fn oaep_max(spec: KeySpec, m: EM) -> usize {
    let h = match m {
        EM::RsaOaepSha384 => 48,
        EM::RsaOaepSha512 => 64,
        _ => 32,
    };
    rsa_bytes(spec) - 2 * h - 2
}

/// The aws-lc-rs verification algorithm for a signature the HSM made.
pub(crate) fn ext_verify_alg(
    spec: KeySpec,
    m: SM,
    e: SignatureEncoding,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    use KeySpec as S;
    use SignatureEncoding as E;
    use SM as M;
    Some(match (spec, m, e) {
        (S::EcP256, M::EcdsaSha256, E::Der) => &signature::ECDSA_P256_SHA256_ASN1,
        (S::EcP256, M::EcdsaSha256, E::Raw) => &signature::ECDSA_P256_SHA256_FIXED,
        (S::EcP384, M::EcdsaSha384, E::Der) => &signature::ECDSA_P384_SHA384_ASN1,
        (S::EcP384, M::EcdsaSha384, E::Raw) => &signature::ECDSA_P384_SHA384_FIXED,
        (S::EcP521, M::EcdsaSha256, E::Der) => &signature::ECDSA_P521_SHA256_ASN1,
        (S::EcP521, M::EcdsaSha256, E::Raw) => &signature::ECDSA_P521_SHA256_FIXED,
        (S::EcP521, M::EcdsaSha384, E::Der) => &signature::ECDSA_P521_SHA384_ASN1,
        (S::EcP521, M::EcdsaSha384, E::Raw) => &signature::ECDSA_P521_SHA384_FIXED,
        (S::EcP521, M::EcdsaSha512, E::Der) => &signature::ECDSA_P521_SHA512_ASN1,
        (S::EcP521, M::EcdsaSha512, E::Raw) => &signature::ECDSA_P521_SHA512_FIXED,
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPkcs1Sha256, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPkcs1Sha384, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPkcs1Sha512, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPssSha256, _) => {
            &signature::RSA_PSS_2048_8192_SHA256
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPssSha384, _) => {
            &signature::RSA_PSS_2048_8192_SHA384
        }
        (S::Rsa2048 | S::Rsa3072 | S::Rsa4096, M::RsaPssSha512, _) => {
            &signature::RSA_PSS_2048_8192_SHA512
        }
        (S::Ed25519, M::Ed25519, _) => &signature::ED25519,
        _ => return None,
    })
}

/// Verifies an HSM signature with aws-lc-rs; `None` when there is no public algorithm.
pub(crate) fn ext_verify(
    spki: &[u8],
    spec: KeySpec,
    m: SM,
    e: SignatureEncoding,
    input: &Input,
    sig: &[u8],
) -> Option<bool> {
    let alg = ext_verify_alg(spec, m, e)?;
    let key = UnparsedPublicKey::new(alg, spki);
    Some(match input {
        Input::Message(msg) => key.verify(msg, sig).is_ok(),
        Input::Digest(d) => {
            let d = digest::Digest::import_less_safe(d, m.digest()?).ok()?;
            key.verify_digest(&d, sig).is_ok()
        }
    })
}

pub(crate) fn hmac_alg(m: SM) -> hmac::Algorithm {
    match m {
        SM::HmacSha384 => hmac::HMAC_SHA384,
        SM::HmacSha512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

/// The ECDH curves of the tests' peers, by index.
pub(crate) const CURVES: [&agreement::Algorithm; 4] = [
    &agreement::ECDH_P256,
    &agreement::ECDH_P384,
    &agreement::ECDH_P521,
    &agreement::X25519,
];

/// The index in [`CURVES`] of an EC spec's curve.
pub(crate) fn curve_of(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::EcP256 => Some(0),
        KeySpec::EcP384 => Some(1),
        KeySpec::EcP521 => Some(2),
        _ => None,
    }
}
