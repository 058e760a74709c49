//! The mechanisms the token offers, and how each maps onto the HSM API's mechanisms.
//!
//! | PKCS#11 | API | input given to C_Sign / C_Verify |
//! | --- | --- | --- |
//! | `CKM_ECDSA` | `ecdsa-sha256/384/512` by curve (P-256/384/521) | a digest of 20 to 64 bytes; signature `r‖s` |
//! | `CKM_ECDSA_SHA256/384/512` | as `CKM_ECDSA` (the module hashes) | the message; signature `r‖s` |
//!
//! ECDSA signs the leftmost bits of a digest longer than the curve's order and the integer
//! value of a shorter one (FIPS 186-5 §6.4.1): the module passes the HSM a digest of the
//! curve's length, the longer one cut, the shorter one zero-padded on the left, so any hash
//! signs with any curve and the signature verifies as ECDSA over the original digest.
//! | `CKM_RSA_PKCS` | `rsa-pkcs1-sha*` from the DigestInfo (RFC 8017 §9.2) | a DER DigestInfo of SHA-256/384/512 |
//! | `CKM_SHA256/384/512_RSA_PKCS` | `rsa-pkcs1-sha*` | the message |
//! | `CKM_RSA_PKCS_PSS` | `rsa-pss-sha*` (salt = hash length, MGF1 with the same hash) | a digest |
//! | `CKM_SHA256/384/512_RSA_PKCS_PSS` | `rsa-pss-sha*` | the message |
//! | `CKM_EDDSA` | `ed25519` (pure; no prehash, no context) | the message |
//! | `CKM_SHA256/384/512_HMAC` | `hmac-sha*` | the message |

use cryptoki_sys::*;

use crate::error::Rv;

/// A mechanism's parameter, read from `CK_MECHANISM.pParameter` by the FFI layer.
#[derive(Debug)]
pub(crate) enum Param {
    /// No parameter.
    None,
    /// Bytes (an AES key-wrap IV, ...).
    Bytes(Vec<u8>),
    /// An IV (AES-CBC).
    Iv(Vec<u8>),
    /// `CK_GCM_PARAMS`: the IV, the AAD, the tag length in bits.
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: CK_ULONG,
    },
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    },
    /// `CK_ECDH1_DERIVE_PARAMS`: the KDF, the shared data's length, the peer's public value.
    Ecdh {
        kdf: CK_EC_KDF_TYPE,
        shared_len: CK_ULONG,
        public: Vec<u8>,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS` (the label's length only: labels are refused).
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label_len: CK_ULONG,
    },
}

/// A mechanism with its parameter.
#[derive(Debug)]
pub(crate) struct Mech {
    pub(crate) kind: CK_MECHANISM_TYPE,
    pub(crate) param: Param,
}

/// What the token can do: `(mechanism, min key size, max key size, flags)`; key sizes in bits
/// for RSA and EC, in bytes for AES and generic secrets (PKCS#11 §2.1 of the mechanisms spec).
/// `CKF_HW`: done by the HSM (the digests are computed by the module).
pub(crate) const MECHANISMS: &[(CK_MECHANISM_TYPE, CK_ULONG, CK_ULONG, CK_FLAGS)] = &[
    (
        CKM_EC_KEY_PAIR_GEN,
        256,
        521,
        CKF_GENERATE_KEY_PAIR | EC_FLAGS,
    ),
    (
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        255,
        255,
        CKF_GENERATE_KEY_PAIR | EC_FLAGS,
    ),
    (
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        2048,
        4096,
        CKF_GENERATE_KEY_PAIR | CKF_HW,
    ),
    (CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE | CKF_HW),
    (CKM_GENERIC_SECRET_KEY_GEN, 1, 800, CKF_GENERATE | CKF_HW),
    (CKM_ECDSA, 256, 521, CKF_SIGN | CKF_VERIFY | EC_FLAGS),
    (CKM_ECDSA_SHA256, 256, 521, CKF_SIGN | CKF_VERIFY | EC_FLAGS),
    (CKM_ECDSA_SHA384, 256, 521, CKF_SIGN | CKF_VERIFY | EC_FLAGS),
    (CKM_ECDSA_SHA512, 256, 521, CKF_SIGN | CKF_VERIFY | EC_FLAGS),
    (CKM_EDDSA, 255, 255, CKF_SIGN | CKF_VERIFY | EC_FLAGS),
    (CKM_RSA_PKCS, 2048, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY),
    (
        CKM_SHA256_RSA_PKCS,
        2048,
        4096,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA384_RSA_PKCS,
        2048,
        4096,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA512_RSA_PKCS,
        2048,
        4096,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (CKM_RSA_PKCS_PSS, 2048, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY),
    (
        CKM_SHA256_RSA_PKCS_PSS,
        2048,
        4096,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA384_RSA_PKCS_PSS,
        2048,
        4096,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_SHA512_RSA_PKCS_PSS,
        2048,
        4096,
        CKF_HW | CKF_SIGN | CKF_VERIFY,
    ),
    (
        CKM_RSA_PKCS_OAEP,
        2048,
        4096,
        CKF_HW | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
    ),
    (CKM_SHA256_HMAC, 1, 800, CKF_HW | CKF_SIGN | CKF_VERIFY),
    (CKM_SHA384_HMAC, 1, 800, CKF_HW | CKF_SIGN | CKF_VERIFY),
    (CKM_SHA512_HMAC, 1, 800, CKF_HW | CKF_SIGN | CKF_VERIFY),
    (CKM_AES_GCM, 16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT),
    (CKM_AES_CBC_PAD, 16, 32, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT),
    (CKM_AES_KEY_WRAP, 16, 32, CKF_HW | CKF_WRAP | CKF_UNWRAP),
    (CKM_AES_KEY_WRAP_KWP, 16, 32, CKF_HW | CKF_WRAP | CKF_UNWRAP),
    (CKM_ECDH1_DERIVE, 256, 521, CKF_DERIVE | EC_FLAGS),
    (CKM_SHA_1, 0, 0, CKF_DIGEST),
    (CKM_SHA256, 0, 0, CKF_DIGEST),
    (CKM_SHA384, 0, 0, CKF_DIGEST),
    (CKM_SHA512, 0, 0, CKF_DIGEST),
];

const EC_FLAGS: CK_FLAGS = CKF_HW | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// A hash the module computes itself.
pub(crate) fn digest_alg(kind: CK_MECHANISM_TYPE) -> Option<&'static aws_lc_rs::digest::Algorithm> {
    use aws_lc_rs::digest;
    Some(match kind {
        CKM_SHA_1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        CKM_SHA256 => &digest::SHA256,
        CKM_SHA384 => &digest::SHA384,
        CKM_SHA512 => &digest::SHA512,
        _ => return None,
    })
}

/// The API's name of a SHA-2 hash mechanism (`sha256`, ...) and its MGF1 partner.
fn sha2(hash: CK_MECHANISM_TYPE) -> Option<(&'static str, CK_RSA_PKCS_MGF_TYPE)> {
    Some(match hash {
        CKM_SHA256 => ("sha256", CKG_MGF1_SHA256),
        CKM_SHA384 => ("sha384", CKG_MGF1_SHA384),
        CKM_SHA512 => ("sha512", CKG_MGF1_SHA512),
        _ => return None,
    })
}

/// How the data given to a sign or verify operation reaches the HSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// The application gives a digest (or a DigestInfo); sent as is.
    Digest,
    /// The module hashes the message with this mechanism's hash and sends the digest.
    HashHere(CK_MECHANISM_TYPE),
    /// The message itself is sent (Ed25519, HMAC).
    Message,
}

/// Which API mechanism signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiMech {
    /// Always this one.
    Fixed(&'static str),
    /// ECDSA on a curve whose mechanism takes digests of this many bytes (P-256: 32,
    /// P-384: 48, P-521: 64).
    Ecdsa(usize),
    /// `CKM_RSA_PKCS`: by the DigestInfo's algorithm.
    RsaByDigestInfo,
}

/// A sign/verify mechanism resolved for one key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignPlan {
    pub(crate) api: ApiMech,
    pub(crate) feed: Feed,
    pub(crate) hmac: bool,
    /// ECDSA: signatures are `r‖s`.
    pub(crate) raw_ecdsa: bool,
}

/// The digest length of the HSM's ECDSA mechanism for an EC key spec (`ec-p256`, …).
pub(crate) fn ecdsa_digest_len(spec: &str) -> usize {
    match spec {
        "ec-p384" => 48,
        "ec-p521" => 64,
        _ => 32,
    }
}

/// Resolves a sign/verify mechanism for a key type (`ec`, `rsa`, `ed25519`, `aes`,
/// `generic-secret`); `ecdsa_len` is [`ecdsa_digest_len`] of an EC key.
pub(crate) fn sign_plan(mech: &Mech, key_type: &str, ecdsa_len: usize) -> Rv<SignPlan> {
    let plan = |api, feed| SignPlan {
        api,
        feed,
        hmac: false,
        raw_ecdsa: false,
    };
    let (plan, wants) = match mech.kind {
        CKM_ECDSA => (
            SignPlan {
                raw_ecdsa: true,
                ..plan(ApiMech::Ecdsa(ecdsa_len), Feed::Digest)
            },
            "ec",
        ),
        CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384 | CKM_ECDSA_SHA512 => {
            let hash = match mech.kind {
                CKM_ECDSA_SHA256 => CKM_SHA256,
                CKM_ECDSA_SHA384 => CKM_SHA384,
                _ => CKM_SHA512,
            };
            (
                SignPlan {
                    raw_ecdsa: true,
                    ..plan(ApiMech::Ecdsa(ecdsa_len), Feed::HashHere(hash))
                },
                "ec",
            )
        }
        CKM_RSA_PKCS => (plan(ApiMech::RsaByDigestInfo, Feed::Digest), "rsa"),
        CKM_SHA256_RSA_PKCS => (
            plan(
                ApiMech::Fixed("rsa-pkcs1-sha256"),
                Feed::HashHere(CKM_SHA256),
            ),
            "rsa",
        ),
        CKM_SHA384_RSA_PKCS => (
            plan(
                ApiMech::Fixed("rsa-pkcs1-sha384"),
                Feed::HashHere(CKM_SHA384),
            ),
            "rsa",
        ),
        CKM_SHA512_RSA_PKCS => (
            plan(
                ApiMech::Fixed("rsa-pkcs1-sha512"),
                Feed::HashHere(CKM_SHA512),
            ),
            "rsa",
        ),
        CKM_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => (pss(mech)?, "rsa"),
        CKM_EDDSA => {
            if !matches!(mech.param, Param::None) {
                // Ed25519ph and Ed25519ctx (CK_EDDSA_PARAMS) are not offered.
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            (plan(ApiMech::Fixed("ed25519"), Feed::Message), "ed25519")
        }
        CKM_SHA256_HMAC | CKM_SHA384_HMAC | CKM_SHA512_HMAC => {
            let name = match mech.kind {
                CKM_SHA256_HMAC => "hmac-sha256",
                CKM_SHA384_HMAC => "hmac-sha384",
                _ => "hmac-sha512",
            };
            let p = SignPlan {
                hmac: true,
                ..plan(ApiMech::Fixed(name), Feed::Message)
            };
            return match key_type {
                "generic-secret" | "aes" => Ok(p),
                _ => Err(CKR_KEY_TYPE_INCONSISTENT),
            };
        }
        _ => return Err(CKR_MECHANISM_INVALID),
    };
    if key_type != wants {
        return Err(CKR_KEY_TYPE_INCONSISTENT);
    }
    Ok(plan)
}

/// RSA-PSS: the parameters must be the HSM's (MGF1 with the message hash, salt as long as
/// the hash, RFC 8017 §9.1 as TLS 1.3 uses it).
fn pss(mech: &Mech) -> Rv<SignPlan> {
    let Param::Pss {
        hash,
        mgf,
        salt_len,
    } = mech.param
    else {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    };
    let (name, want_mgf) = sha2(hash).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
    let hashed_by = match mech.kind {
        CKM_SHA256_RSA_PKCS_PSS => Some(CKM_SHA256),
        CKM_SHA384_RSA_PKCS_PSS => Some(CKM_SHA384),
        CKM_SHA512_RSA_PKCS_PSS => Some(CKM_SHA512),
        _ => None,
    };
    let hash_len = digest_alg(hash).map_or(0, |a| a.output_len()) as CK_ULONG;
    if mgf != want_mgf || salt_len != hash_len || hashed_by.is_some_and(|h| h != hash) {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    let api = match name {
        "sha256" => "rsa-pss-sha256",
        "sha384" => "rsa-pss-sha384",
        _ => "rsa-pss-sha512",
    };
    Ok(SignPlan {
        api: ApiMech::Fixed(api),
        feed: hashed_by.map_or(Feed::Digest, Feed::HashHere),
        hmac: false,
        raw_ecdsa: false,
    })
}

/// The DER prefixes of a DigestInfo (RFC 8017 §9.2, note 1) for the hashes the HSM signs.
const DIGEST_INFOS: &[(&[u8], &str)] = &[
    (
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        "rsa-pkcs1-sha256",
    ),
    (
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        "rsa-pkcs1-sha384",
    ),
    (
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        "rsa-pkcs1-sha512",
    ),
];

/// The API mechanism and the bytes to send for `data` under `api`.
pub(crate) fn resolve(api: ApiMech, data: &[u8]) -> Rv<(&'static str, Vec<u8>)> {
    match api {
        ApiMech::Fixed(name) => Ok((name, data.to_vec())),
        ApiMech::Ecdsa(n) => {
            // SHA-1 (20 bytes) to SHA-512 (64): what PKCS#11 applications hash with.
            if !(20..=64).contains(&data.len()) {
                return Err(CKR_DATA_LEN_RANGE);
            }
            let digest = if data.len() >= n {
                data[..n].to_vec()
            } else {
                [vec![0; n - data.len()], data.to_vec()].concat()
            };
            let name = match n {
                48 => "ecdsa-sha384",
                64 => "ecdsa-sha512",
                _ => "ecdsa-sha256",
            };
            Ok((name, digest))
        }
        ApiMech::RsaByDigestInfo => DIGEST_INFOS
            .iter()
            .find_map(|(prefix, name)| {
                let digest = data.strip_prefix(*prefix)?;
                (digest.len() == usize::from(prefix[prefix.len() - 1]))
                    .then(|| (*name, digest.to_vec()))
            })
            // Raw RSA over anything but a SHA-2 DigestInfo (e.g. TLS 1.1's MD5‖SHA-1) is not
            // offered: the HSM signs only what it can name.
            .ok_or(CKR_DATA_INVALID),
    }
}

/// An encryption mechanism resolved: the API name, the AAD and the IV.
#[derive(Debug)]
pub(crate) struct CryptPlan {
    pub(crate) api: &'static str,
    /// AES-GCM: the AAD.
    pub(crate) aad: Vec<u8>,
    /// AES: the IV (12 bytes for GCM, 16 for CBC).
    pub(crate) iv: Option<Vec<u8>>,
}

/// Resolves an encrypt/decrypt mechanism for a key type.
pub(crate) fn crypt_plan(mech: Mech, key_type: &str) -> Rv<CryptPlan> {
    let (plan, wants) = match (mech.kind, mech.param) {
        (CKM_AES_GCM, Param::Gcm { iv, aad, tag_bits }) => {
            if iv.len() != 12 || tag_bits != 128 {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            (
                CryptPlan {
                    api: "aes-gcm",
                    aad,
                    iv: Some(iv),
                },
                "aes",
            )
        }
        (CKM_AES_CBC_PAD, Param::Iv(iv)) if iv.len() == 16 => (
            CryptPlan {
                api: "aes-cbc-pad",
                aad: Vec::new(),
                iv: Some(iv),
            },
            "aes",
        ),
        (
            CKM_RSA_PKCS_OAEP,
            Param::Oaep {
                hash,
                mgf,
                label_len,
            },
        ) => {
            let (name, want_mgf) = sha2(hash).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
            if mgf != want_mgf || label_len != 0 {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            let api = match name {
                "sha256" => "rsa-oaep-sha256",
                "sha384" => "rsa-oaep-sha384",
                _ => "rsa-oaep-sha512",
            };
            (
                CryptPlan {
                    api,
                    aad: Vec::new(),
                    iv: None,
                },
                "rsa",
            )
        }
        (CKM_AES_GCM | CKM_AES_CBC_PAD | CKM_RSA_PKCS_OAEP, _) => {
            return Err(CKR_MECHANISM_PARAM_INVALID)
        }
        _ => return Err(CKR_MECHANISM_INVALID),
    };
    if key_type != wants {
        return Err(CKR_KEY_TYPE_INCONSISTENT);
    }
    Ok(plan)
}

/// A wrap mechanism's API name, for a wrapping key type.
pub(crate) fn wrap_mech(mech: &Mech, key_type: &str) -> Rv<&'static str> {
    let (name, wants) = match (mech.kind, &mech.param) {
        (CKM_AES_KEY_WRAP, Param::None) => ("aes-kw", "aes"),
        (CKM_AES_KEY_WRAP, Param::Bytes(iv)) if iv.is_empty() || iv == &[0xA6; 8] => {
            ("aes-kw", "aes")
        }
        (CKM_AES_KEY_WRAP_KWP, Param::None) => ("aes-kwp", "aes"),
        (CKM_AES_KEY_WRAP_KWP, Param::Bytes(iv))
            if iv.is_empty() || iv == &[0xA6, 0x59, 0x59, 0xA6] =>
        {
            ("aes-kwp", "aes")
        }
        (
            CKM_RSA_PKCS_OAEP,
            Param::Oaep {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                label_len: 0,
            },
        ) => ("rsa-oaep", "rsa"),
        (CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_KWP | CKM_RSA_PKCS_OAEP, _) => {
            return Err(CKR_MECHANISM_PARAM_INVALID)
        }
        _ => return Err(CKR_MECHANISM_INVALID),
    };
    if key_type != wants {
        return Err(CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
    }
    Ok(name)
}

#[cfg(test)]
#[path = "mechanisms_tests.rs"]
mod tests;
