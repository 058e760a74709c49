//! Public keys as RFC 7517 JSON Web Keys (RFC 7518 §6 for EC and RSA, RFC 8037 for Ed25519).

use base64::Engine;
use keyward_hsm::KeySpec;
use serde_json::{json, Value};

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Reads one DER TLV; returns (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subjectPublicKey BIT STRING's bytes of an SPKI.
fn spk(spki: &[u8]) -> Option<&[u8]> {
    let (_, seq, _) = tlv(spki)?;
    let (_, _alg, rest) = tlv(seq)?;
    let (tag, bits, _) = tlv(rest)?;
    if tag != 0x03 || bits.first() != Some(&0) {
        return None;
    }
    Some(&bits[1..])
}

fn strip(int: &[u8]) -> &[u8] {
    let mut i = int;
    while i.len() > 1 && i[0] == 0 {
        i = &i[1..];
    }
    i
}

/// The JWK of a public key, or `None` for types without one here.
pub(crate) fn jwk(spec: KeySpec, spki: &[u8]) -> Option<Value> {
    let key = spk(spki)?;
    match spec {
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 => {
            let (crv, n) = match spec {
                KeySpec::EcP256 => ("P-256", 32),
                KeySpec::EcP384 => ("P-384", 48),
                _ => ("P-521", 66),
            };
            if key.len() != 1 + 2 * n || key[0] != 4 {
                return None;
            }
            Some(
                json!({"kty": "EC", "crv": crv, "x": b64url(&key[1..1 + n]), "y": b64url(&key[1 + n..])}),
            )
        }
        KeySpec::Ed25519 => Some(json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(key)})),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let (_, seq, _) = tlv(key)?;
            let (_, n, rest) = tlv(seq)?;
            let (_, e, _) = tlv(rest)?;
            Some(json!({"kty": "RSA", "n": b64url(strip(n)), "e": b64url(strip(e))}))
        }
        _ => None,
    }
}
