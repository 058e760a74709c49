//! A PKCS#11 session: its slot, and the operations active in it (one find, sign, verify,
//! encrypt, decrypt and digest at a time, as PKCS#11 §5.6 allows).

use std::sync::Mutex;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::Rv;
use crate::mechanisms::{CryptPlan, SignPlan};

/// The most data one operation takes: the HSM's own limit (`MAX_DATA_BYTES`, 16 MiB).
pub(crate) const MAX_DATA: usize = 16 * 1024 * 1024;

/// A session as the module's table holds it: what never changes outside the lock.
pub(crate) struct SessionEntry {
    pub(crate) slot: CK_SLOT_ID,
    pub(crate) rw: bool,
    pub(crate) state: Mutex<Session>,
}

/// The operations of one session.
#[derive(Default)]
pub(crate) struct Session {
    pub(crate) find: Option<Find>,
    pub(crate) sign: Option<SignOp>,
    pub(crate) verify: Option<SignOp>,
    pub(crate) encrypt: Option<CryptOp>,
    pub(crate) decrypt: Option<CryptOp>,
    pub(crate) digest: Option<DigestOp>,
    /// The last `C_WrapKey` result, kept for the call that follows a length query.
    pub(crate) last_wrap: Option<(
        (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, CK_MECHANISM_TYPE),
        Vec<u8>,
    )>,
}

/// `C_FindObjects*`: the handles found, and how many were returned.
pub(crate) struct Find {
    pub(crate) handles: Vec<u64>,
    pub(crate) next: usize,
}

/// The data of a sign/verify operation: kept, or hashed as it arrives.
pub(crate) enum Data {
    Kept(Zeroizing<Vec<u8>>),
    Hashing(aws_lc_rs::digest::Context),
}

impl Data {
    /// Adds data; past [`MAX_DATA`] kept bytes, `CKR_DATA_LEN_RANGE`.
    pub(crate) fn add(&mut self, part: &[u8]) -> Rv {
        match self {
            Data::Kept(v) => {
                if v.len() + part.len() > MAX_DATA {
                    return Err(CKR_DATA_LEN_RANGE);
                }
                v.extend_from_slice(part);
            }
            Data::Hashing(ctx) => ctx.update(part),
        }
        Ok(())
    }

    /// The bytes to send: what was kept, or the digest.
    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        match self {
            Data::Kept(v) => v,
            Data::Hashing(ctx) => Zeroizing::new(ctx.finish().as_ref().to_vec()),
        }
    }
}

/// A sign or verify operation.
pub(crate) struct SignOp {
    pub(crate) handle: u64,
    /// The key's latest version when the operation started: what verifies (PKCS#11 has no
    /// key versions; a key rotated after signing no longer verifies old signatures here).
    pub(crate) version: u32,
    pub(crate) plan: SignPlan,
    /// `None` once the data went to the HSM.
    pub(crate) data: Option<Data>,
    /// The signature's length.
    pub(crate) len: usize,
    /// A signature made for a call whose buffer was too small.
    pub(crate) result: Option<Vec<u8>>,
    /// `C_SignUpdate` was called: `C_Sign` is no longer allowed.
    pub(crate) multi: bool,
}

/// An encrypt or decrypt operation (multi-part data is gathered, then sent at the end).
pub(crate) struct CryptOp {
    pub(crate) handle: u64,
    /// The key's latest version when the operation started: what decrypts.
    pub(crate) version: u32,
    pub(crate) plan: CryptPlan,
    pub(crate) data: Zeroizing<Vec<u8>>,
    /// The output's length (or a bound on it) for a length query.
    pub(crate) out_len: OutLen,
    pub(crate) result: Option<Zeroizing<Vec<u8>>>,
    pub(crate) multi: bool,
}

/// A digest operation (computed here: no key is involved).
pub(crate) struct DigestOp {
    pub(crate) ctx: aws_lc_rs::digest::Context,
    pub(crate) multi: bool,
}

/// How long an encrypt/decrypt output is, for `n` bytes of input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OutLen {
    /// `n + k` (AES-GCM encrypt: the tag).
    Plus(usize),
    /// `n - k` at most (AES-GCM decrypt).
    Minus(usize),
    /// The next multiple of 16 above `n` (AES-CBC with PKCS#7 padding).
    Padded,
    /// At most `n` (AES-CBC decrypt).
    AtMostInput,
    /// Always this long (an RSA block).
    Fixed(usize),
}

impl OutLen {
    /// The length for `n` input bytes.
    pub(crate) fn of(self, n: usize) -> usize {
        match self {
            OutLen::Plus(k) => n + k,
            OutLen::Minus(k) => n.saturating_sub(k),
            OutLen::Padded => (n / 16 + 1) * 16,
            OutLen::AtMostInput => n,
            OutLen::Fixed(k) => k,
        }
    }
}
