//! Signing, verifying and MACs with a key value (ECDSA, RSA PKCS#1 v1.5 and PSS, Ed25519,
//! HMAC), with the digest checks of pre-hashed input.

use super::*;

impl Material {
    /// Whether `mechanism` can sign with this key (ignoring attributes).
    pub(crate) fn can_sign(&self, mechanism: SignMechanism) -> bool {
        match self {
            Material::Ec { signers, .. } => signers.0.pairs.iter().any(|(m, _, _)| *m == mechanism),
            Material::Rsa { .. } => rsa_sign_encoding(mechanism).is_some(),
            Material::Ed25519 { .. } => mechanism == SignMechanism::Ed25519,
            Material::Secret { .. } => mechanism.is_hmac(),
            Material::Public { .. } => false,
        }
    }

    pub(super) fn check_digest(
        mechanism: SignMechanism,
        input: SignInput<'_>,
    ) -> Result<Option<digest::Digest>> {
        match input {
            SignInput::Message(_) => Ok(None),
            SignInput::Digest(d) => {
                if !mechanism.accepts_digest() {
                    return Err(Error::invalid(format!(
                        "{mechanism} signs whole messages, not digests"
                    )));
                }
                let alg = mechanism
                    .digest()
                    .ok_or(Error::Internal("digest mechanism without hash"))?;
                digest::Digest::import_less_safe(d, alg)
                    .map(Some)
                    .map_err(|_| {
                        Error::invalid(format!(
                            "a {mechanism} digest is {} bytes",
                            alg.output_len()
                        ))
                    })
            }
        }
    }

    /// Signs. The caller has checked policy and [`can_sign`](Self::can_sign).
    pub(crate) fn sign(
        &self,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        encoding: SignatureEncoding,
    ) -> Result<Vec<u8>> {
        let digest = Material::check_digest(mechanism, input)?;
        let msg = match input {
            SignInput::Message(m) => m,
            SignInput::Digest(d) => d,
        };
        match self {
            Material::Ec { signers, .. } => {
                let pair = signers
                    .0
                    .pairs
                    .iter()
                    .find(|(m, e, _)| *m == mechanism && *e == encoding)
                    .map(|(_, _, p)| p)
                    .ok_or(Error::Internal("ec signer after can_sign"))?;
                let sig = match &digest {
                    Some(d) => pair.sign_digest(d),
                    None => pair.sign(&SystemRandom::new(), msg),
                };
                sig.map(|s| s.as_ref().to_vec())
                    .map_err(|_| crypto("ecdsa sign"))
            }
            Material::Ed25519 { pair, .. } => Ok(pair.sign(msg).as_ref().to_vec()),
            Material::Rsa { pair, .. } => {
                let enc = rsa_sign_encoding(mechanism)
                    .ok_or(Error::Internal("rsa mechanism after can_sign"))?;
                let mut sig = vec![0u8; pair.public_modulus_len()];
                match &digest {
                    Some(d) => pair.sign_digest(enc, d, &mut sig),
                    None => pair.sign(enc, &SystemRandom::new(), msg, &mut sig),
                }
                .map_err(|_| crypto("rsa sign"))?;
                Ok(sig)
            }
            Material::Secret { value, .. } => {
                let alg =
                    hmac_alg(mechanism).ok_or(Error::Internal("hmac mechanism after can_sign"))?;
                Ok(hmac::sign(&hmac::Key::new(alg, value), msg)
                    .as_ref()
                    .to_vec())
            }
            Material::Public { .. } => Err(Error::Internal("sign with a public key")),
        }
    }

    /// Verifies; `Ok(false)` for a wrong signature, `Err` for an unusable mechanism.
    pub(crate) fn verify(
        &self,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        signature: &[u8],
        encoding: SignatureEncoding,
    ) -> Result<bool> {
        let digest = Material::check_digest(mechanism, input)?;
        if let Material::Secret { value, .. } = self {
            let alg = hmac_alg(mechanism).ok_or(Error::Internal("hmac mechanism"))?;
            let msg = match input {
                SignInput::Message(m) | SignInput::Digest(m) => m,
            };
            return Ok(hmac::verify(&hmac::Key::new(alg, value), msg, signature).is_ok());
        }
        let spki = self
            .spki()
            .ok_or(Error::Internal("asymmetric key without spki"))?;
        let spec = self.spec();
        let alg: &'static dyn signature::VerificationAlgorithm = match spec.key_type() {
            "ec" => ec_verify_alg(spec, mechanism, encoding)
                .ok_or(Error::Internal("ec verify mechanism"))?,
            "rsa" => rsa_verify_alg(mechanism).ok_or(Error::Internal("rsa verify mechanism"))?,
            _ => &signature::ED25519,
        };
        let key = UnparsedPublicKey::new(alg, spki);
        Ok(match (&digest, input) {
            (Some(d), _) => key.verify_digest(d, signature).is_ok(),
            (None, SignInput::Message(m)) => key.verify(m, signature).is_ok(),
            (None, SignInput::Digest(_)) => false,
        })
    }

    /// Whether `mechanism` can verify with this key.
    pub(crate) fn can_verify(&self, mechanism: SignMechanism, encoding: SignatureEncoding) -> bool {
        let spec = self.spec();
        match spec.key_type() {
            "ec" => ec_verify_alg(spec, mechanism, encoding).is_some(),
            "rsa" => rsa_verify_alg(mechanism).is_some(),
            "ed25519" => mechanism == SignMechanism::Ed25519,
            _ => mechanism.is_hmac(),
        }
    }
}
