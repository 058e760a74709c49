//! Encrypting, decrypting, wrapping and unwrapping with a key value (AES-GCM, AES-CBC,
//! RSA-OAEP, AES key wrap), and ECDH derivation.

use super::*;

impl Material {
    pub(super) fn aead_alg(&self) -> Option<&'static aead::Algorithm> {
        match self {
            Material::Secret {
                spec: KeySpec::Aes128,
                ..
            } => Some(&aead::AES_128_GCM),
            Material::Secret {
                spec: KeySpec::Aes192,
                ..
            } => Some(&aead::AES_192_GCM),
            Material::Secret {
                spec: KeySpec::Aes256,
                ..
            } => Some(&aead::AES_256_GCM),
            _ => None,
        }
    }

    pub(super) fn cipher_alg(&self) -> Option<&'static aws_lc_rs::cipher::Algorithm> {
        match self {
            Material::Secret {
                spec: KeySpec::Aes128,
                ..
            } => Some(&aws_lc_rs::cipher::AES_128),
            Material::Secret {
                spec: KeySpec::Aes192,
                ..
            } => Some(&aws_lc_rs::cipher::AES_192),
            Material::Secret {
                spec: KeySpec::Aes256,
                ..
            } => Some(&aws_lc_rs::cipher::AES_256),
            _ => None,
        }
    }

    pub(super) fn gcm_key(&self) -> Result<&LessSafeKey> {
        match self {
            Material::Secret { gcm: Some(k), .. } => Ok(k),
            _ => Err(Error::Internal("aes-gcm without an AES key")),
        }
    }

    pub(super) fn secret_value(&self) -> Option<&[u8]> {
        match self {
            Material::Secret { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether `mechanism` can encrypt (public/secret) or decrypt (private/secret) with this key.
    pub(crate) fn can_encrypt(&self, mechanism: EncryptMechanism, decrypt: bool) -> bool {
        match mechanism {
            EncryptMechanism::AesGcm | EncryptMechanism::AesCbcPad => self.aead_alg().is_some(),
            _ => match self {
                Material::Rsa { .. } => true,
                Material::Public { spec, .. } => !decrypt && spec.key_type() == "rsa",
                _ => false,
            },
        }
    }

    /// Encrypts. Output layout per [`EncryptMechanism`].
    pub(crate) fn encrypt(
        &self,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        self.encrypt_with_iv(mechanism, plaintext, aad, None)
    }

    /// Encrypts with the caller's IV for the AES modes (12 bytes for GCM, 16 for CBC; `None`:
    /// a random one). The output starts with the IV either way.
    pub(crate) fn encrypt_with_iv(
        &self,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
        given_iv: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let iv_len = match mechanism {
            EncryptMechanism::AesGcm => NONCE_LEN,
            EncryptMechanism::AesCbcPad => 16,
            _ => 0,
        };
        match given_iv {
            Some(_) if iv_len == 0 => {
                return Err(Error::invalid(format!("{mechanism} takes no IV")));
            }
            Some(iv) if iv.len() != iv_len => {
                return Err(Error::invalid(format!(
                    "the IV of {mechanism} is {iv_len} bytes (got {})",
                    iv.len()
                )));
            }
            _ => {}
        }
        if mechanism != EncryptMechanism::AesGcm && !aad.is_empty() {
            return Err(Error::invalid(format!(
                "{mechanism} takes no additional authenticated data"
            )));
        }
        match mechanism {
            EncryptMechanism::AesGcm => {
                let key = self.gcm_key()?;
                let mut iv = [0u8; NONCE_LEN];
                match given_iv {
                    Some(g) => iv.copy_from_slice(g),
                    None => aws_lc_rs::rand::fill(&mut iv).map_err(|_| crypto("random"))?,
                }
                // One buffer: IV ‖ plaintext sealed in place ‖ tag.
                let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + GCM_TAG_LEN);
                out.extend_from_slice(&iv);
                out.extend_from_slice(plaintext);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(aad),
                        &mut out[NONCE_LEN..],
                    )
                    .map_err(|_| crypto("aes-gcm encrypt"))?;
                out.extend_from_slice(tag.as_ref());
                Ok(out)
            }
            EncryptMechanism::AesCbcPad => {
                let alg = self.cipher_alg().ok_or(Error::Internal("aes-cbc key"))?;
                let key = PaddedBlockEncryptingKey::cbc_pkcs7(
                    UnboundCipherKey::new(alg, self.secret_value().unwrap_or_default())
                        .map_err(|_| crypto("aes key"))?,
                )
                .map_err(|_| crypto("aes key"))?;
                let mut body = plaintext.to_vec();
                let ctx = match given_iv {
                    Some(g) => {
                        let iv: [u8; 16] = g.try_into().map_err(|_| crypto("aes-cbc iv"))?;
                        key.less_safe_encrypt(&mut body, EncryptionContext::Iv128(iv.into()))
                    }
                    None => key.encrypt(&mut body),
                }
                .map_err(|_| crypto("aes-cbc encrypt"))?;
                let iv: &[u8] = (&ctx).try_into().map_err(|_| crypto("aes-cbc iv"))?;
                let mut out = iv.to_vec();
                out.extend_from_slice(&body);
                Ok(out)
            }
            _ => {
                let alg = oaep_alg(mechanism).ok_or(Error::Internal("oaep mechanism"))?;
                let spki = self.spki().ok_or(Error::Internal("rsa key without spki"))?;
                let key = OaepPublicEncryptingKey::new(
                    PublicEncryptingKey::from_der(spki).map_err(|_| crypto("rsa public key"))?,
                )
                .map_err(|_| crypto("rsa public key"))?;
                if plaintext.len() > key.max_plaintext_size(alg) {
                    return Err(Error::invalid(format!(
                        "{mechanism} with this key encrypts at most {} bytes",
                        key.max_plaintext_size(alg)
                    )));
                }
                let mut out = vec![0u8; key.ciphertext_size()];
                let n = key
                    .encrypt(alg, plaintext, &mut out, None)
                    .map_err(|_| crypto("rsa-oaep encrypt"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
        }
    }

    /// Decrypts the layout [`encrypt`](Self::encrypt) produces. Any authentication or padding
    /// failure is one error, `invalid_input` ("decryption failed"), with no detail to probe.
    pub(crate) fn decrypt(
        &self,
        mechanism: EncryptMechanism,
        input: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::invalid("decryption failed");
        if mechanism != EncryptMechanism::AesGcm && !aad.is_empty() {
            return Err(Error::invalid(format!(
                "{mechanism} takes no additional authenticated data"
            )));
        }
        match mechanism {
            EncryptMechanism::AesGcm => {
                if input.len() < NONCE_LEN + GCM_TAG_LEN {
                    return Err(Error::invalid(
                        "aes-gcm input is IV (12) ‖ ciphertext ‖ tag (16): too short",
                    ));
                }
                let key = self.gcm_key()?;
                let nonce =
                    Nonce::try_assume_unique_for_key(&input[..NONCE_LEN]).map_err(|_| failed())?;
                let mut body = Zeroizing::new(input[NONCE_LEN..].to_vec());
                let n = key
                    .open_in_place(nonce, Aad::from(aad), &mut body)
                    .map_err(|_| failed())?
                    .len();
                body.truncate(n);
                Ok(body)
            }
            EncryptMechanism::AesCbcPad => {
                let alg = self.cipher_alg().ok_or(Error::Internal("aes-cbc key"))?;
                if input.len() < CBC_IV_LEN + 16 || !(input.len() - CBC_IV_LEN).is_multiple_of(16) {
                    return Err(Error::invalid(
                        "aes-cbc-pad input is IV (16) ‖ ciphertext (a positive multiple of 16)",
                    ));
                }
                let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                    UnboundCipherKey::new(alg, self.secret_value().unwrap_or_default())
                        .map_err(|_| crypto("aes key"))?,
                )
                .map_err(|_| crypto("aes key"))?;
                let iv: [u8; CBC_IV_LEN] = input[..CBC_IV_LEN].try_into().map_err(|_| failed())?;
                let mut body = Zeroizing::new(input[CBC_IV_LEN..].to_vec());
                let n = key
                    .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| failed())?
                    .len();
                body.truncate(n);
                Ok(body)
            }
            _ => {
                let alg = oaep_alg(mechanism).ok_or(Error::Internal("oaep mechanism"))?;
                let Material::Rsa { oaep: key, .. } = self else {
                    return Err(Error::Internal("rsa-oaep decrypt without a private key"));
                };
                if input.len() != key.key_size_bytes() {
                    return Err(Error::invalid(format!(
                        "{mechanism} ciphertext is {} bytes",
                        key.key_size_bytes()
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let n = key
                    .decrypt(alg, input, &mut out, None)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
        }
    }

    /// Whether this key can wrap (or, with `unwrap`, unwrap) with `mechanism`.
    pub(crate) fn can_wrap(&self, mechanism: WrapMechanism, unwrap: bool) -> bool {
        match mechanism {
            WrapMechanism::AesKw | WrapMechanism::AesKwp => {
                matches!(
                    self,
                    Material::Secret {
                        spec: KeySpec::Aes128 | KeySpec::Aes256,
                        ..
                    }
                )
            }
            WrapMechanism::AesGcm => self.aead_alg().is_some(),
            WrapMechanism::RsaOaep | WrapMechanism::RsaAes => match self {
                Material::Rsa { .. } => true,
                Material::Public { spec, .. } => !unwrap && spec.key_type() == "rsa",
                _ => false,
            },
        }
    }

    pub(super) fn kek(&self) -> Result<AesKek> {
        let value = self
            .secret_value()
            .ok_or(Error::Internal("kek without value"))?;
        let cipher = match value.len() {
            16 => &key_wrap::AES_128,
            32 => &key_wrap::AES_256,
            _ => return Err(Error::Internal("kek length")),
        };
        AesKek::new(cipher, value).map_err(|_| crypto("aes kek"))
    }

    /// Wraps `target` (a secret value or PKCS#8) under this key.
    pub(crate) fn wrap(&self, mechanism: WrapMechanism, target: &[u8]) -> Result<Vec<u8>> {
        match mechanism {
            WrapMechanism::AesKw => {
                if target.len() < 16 || !target.len().is_multiple_of(8) {
                    return Err(Error::invalid(
                        "aes-kw wraps a multiple of 8 bytes, at least 16; use aes-kwp",
                    ));
                }
                let mut out = vec![0u8; target.len() + 8];
                let n = self
                    .kek()?
                    .wrap(target, &mut out)
                    .map_err(|_| crypto("aes-kw wrap"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesKwp => {
                let mut out = vec![0u8; target.len().div_ceil(8) * 8 + 8];
                let n = self
                    .kek()?
                    .wrap_with_padding(target, &mut out)
                    .map_err(|_| crypto("aes-kwp wrap"))?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesGcm => self.encrypt(EncryptMechanism::AesGcm, target, b""),
            WrapMechanism::RsaOaep => self.encrypt(EncryptMechanism::RsaOaepSha256, target, b""),
            WrapMechanism::RsaAes => {
                let ephemeral = Material::generate(KeySpec::Aes256)?;
                let mut out = self.encrypt(
                    EncryptMechanism::RsaOaepSha256,
                    ephemeral.secret_value().unwrap_or_default(),
                    b"",
                )?;
                out.extend(ephemeral.wrap(WrapMechanism::AesKwp, target)?);
                Ok(out)
            }
        }
    }

    /// Unwraps bytes wrapped by [`wrap`](Self::wrap) (or by another implementation of the same
    /// standard). Failures are one `invalid_input` "unwrap failed".
    pub(crate) fn unwrap(
        &self,
        mechanism: WrapMechanism,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::invalid("unwrap failed");
        match mechanism {
            WrapMechanism::AesKw => {
                if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
                    return Err(failed());
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = self
                    .kek()?
                    .unwrap(wrapped, &mut out)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesKwp => {
                if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
                    return Err(failed());
                }
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                let n = self
                    .kek()?
                    .unwrap_with_padding(wrapped, &mut out)
                    .map_err(|_| failed())?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            WrapMechanism::AesGcm => self
                .decrypt(EncryptMechanism::AesGcm, wrapped, b"")
                .map_err(|_| failed()),
            WrapMechanism::RsaOaep => self
                .decrypt(EncryptMechanism::RsaOaepSha256, wrapped, b"")
                .map_err(|_| failed()),
            WrapMechanism::RsaAes => {
                let Material::Rsa { pair, .. } = self else {
                    return Err(failed());
                };
                let n = pair.public_modulus_len();
                if wrapped.len() <= n {
                    return Err(failed());
                }
                let aes = self
                    .decrypt(EncryptMechanism::RsaOaepSha256, &wrapped[..n], b"")
                    .map_err(|_| failed())?;
                let ephemeral = Material::secret(KeySpec::Aes256, aes).map_err(|_| failed())?;
                ephemeral.unwrap(WrapMechanism::AesKwp, &wrapped[n..])
            }
        }
    }

    /// ECDH (SEC 1 §3.3.1) with `peer` (SubjectPublicKeyInfo DER or an uncompressed point),
    /// then HKDF-SHA256 (RFC 5869) with `salt` and `info` to `out_len` bytes, or (`kdf` Null)
    /// the shared secret's leftmost `out_len` bytes.
    pub(crate) fn derive_ecdh(
        &self,
        peer: &[u8],
        kdf: crate::EcdhKdf,
        salt: &[u8],
        info: &[u8],
        out_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let Material::Ec { spec, pkcs8, .. } = self else {
            return Err(Error::Internal("ecdh without an ec key"));
        };
        let alg = ecdh_alg(*spec).ok_or(Error::Internal("ecdh curve"))?;
        let private = agreement::PrivateKey::from_private_key_der(alg, pkcs8)
            .map_err(|_| crypto("ecdh private key"))?;
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let bad_peer =
            Error::invalid("the peer public key is not a valid point on the key's curve");
        if peer.first() == Some(&0x30) {
            // An SPKI must be the canonical named-curve form of a key on this curve.
            match Material::from_spki(peer) {
                Ok(m) if m.spec() == *spec => {}
                _ => return Err(bad_peer),
            }
        }
        agreement::agree(
            &private,
            agreement::UnparsedPublicKey::new(alg, peer),
            bad_peer,
            |secret| {
                if kdf == crate::EcdhKdf::Null {
                    return match secret.get(..out_len) {
                        Some(z) => Ok(Zeroizing::new(z.to_vec())),
                        None => Err(Error::invalid(format!(
                            "the shared secret is {} bytes: no key of {out_len} without a KDF",
                            secret.len()
                        ))),
                    };
                }
                let mut out = Zeroizing::new(vec![0u8; out_len]);
                hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
                    .extract(secret)
                    .expand(&[info], Len(out_len))
                    .and_then(|okm| okm.fill(&mut out))
                    .map_err(|_| Error::invalid("HKDF-SHA256 output is 1 to 8160 bytes"))?;
                Ok(out)
            },
        )
    }
}

/// Encrypts `value` to the holder of an RSA private key with RSAES-OAEP (RFC 8017 §7.1;
/// SHA-256, MGF1-SHA-256, `label` as the OAEP label): how a secret leaves the HSM for a
/// recipient that proved nothing but its session (TLS ticket keys for a remote proxy). The
/// recipient's key must be at least `min_bits` long.
///
/// # Errors
/// [`Error::InvalidInput`] when `recipient_spki` is not an RSA SubjectPublicKeyInfo of at
/// least `min_bits`; [`Error::Crypto`].
pub(crate) fn oaep_to_recipient(
    recipient_spki: &[u8],
    min_bits: usize,
    value: &[u8],
    label: &[u8],
) -> Result<Vec<u8>> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
    let key = PublicEncryptingKey::from_der(recipient_spki).map_err(|_| {
        Error::invalid("the recipient public key is not an RSA SubjectPublicKeyInfo (DER)")
    })?;
    if key.key_size_bits() < min_bits {
        return Err(Error::invalid(format!(
            "the recipient RSA key has {} bits; at least {min_bits} are required",
            key.key_size_bits()
        )));
    }
    let crypto = |_| Error::Crypto {
        operation: "rsa-oaep encrypt",
    };
    let key = OaepPublicEncryptingKey::new(key).map_err(crypto)?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, value, &mut out, Some(label))
        .map_err(crypto)?
        .len();
    out.truncate(n);
    Ok(out)
}
