//! The FFI boundary's helpers: reading the application's pointers into owned Rust values,
//! writing results back with PKCS#11's buffer convention (§5.2: a null buffer asks for the
//! length; a short one gets `CKR_BUFFER_TOO_SMALL` and the operation stays active), and
//! [`guard`], which keeps every panic on this side (`CKR_GENERAL_ERROR`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cryptoki_sys::*;

use crate::error::Rv;
use crate::mechanisms::{Mech, Param};
use crate::module::{module, Module};
use crate::session::SessionEntry;

/// Runs an entry point's body; a panic becomes `CKR_GENERAL_ERROR` (it never unwinds into
/// the application's C frames).
pub(crate) fn guard(body: impl FnOnce() -> Rv) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

/// The module and a session.
pub(crate) fn session(h: CK_SESSION_HANDLE) -> Rv<(Arc<Module>, Arc<SessionEntry>)> {
    let m = module()?;
    let e = m.session(h)?;
    Ok((m, e))
}

/// `len` bytes at `p` (null only when `len` is 0).
///
/// # Safety
/// `p` points to `len` readable bytes, or is null.
pub(crate) unsafe fn bytes<'a>(p: *const CK_BYTE, len: CK_ULONG) -> Rv<&'a [u8]> {
    let len = usize::try_from(len).map_err(|_| CKR_ARGUMENTS_BAD)?;
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: the caller guarantees `len` readable bytes at the non-null `p`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A template: `(type, value)` for each of `n` attributes.
///
/// # Safety
/// `p` points to `n` `CK_ATTRIBUTE`s whose `pValue` each point to `ulValueLen` bytes.
pub(crate) unsafe fn template(
    p: *const CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Rv<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    let n = usize::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || n > 1024 {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: the caller guarantees `n` attributes at the non-null `p`.
    let attrs = unsafe { std::slice::from_raw_parts(p, n) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each attribute's value is `ulValueLen` bytes at `pValue` (caller).
            let v = unsafe { bytes(a.pValue as *const CK_BYTE, a.ulValueLen) }?;
            Ok((a.type_, v.to_vec()))
        })
        .collect()
}

/// The mechanism and its parameter, copied (PKCS#11 callers may free the parameter as soon
/// as the `C_*Init` call returns: the JDK does).
///
/// With `fill_zero_gcm_iv` (`C_EncryptInit`), an AES-GCM IV of 12 zero bytes is replaced by
/// 12 random bytes, written into the caller's `pIv` now, during the call: an application
/// that leaves the IV to the token (as CloudHSM's library requires) reads it from there.
///
/// # Safety
/// `p` is null or points to a `CK_MECHANISM` whose parameter is what that mechanism takes.
pub(crate) unsafe fn mechanism(p: *const CK_MECHANISM, fill_zero_gcm_iv: bool) -> Rv<Mech> {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, a CK_MECHANISM (caller).
    let m = unsafe { &*p };
    let len = usize::try_from(m.ulParameterLen).map_err(|_| CKR_MECHANISM_PARAM_INVALID)?;
    let has = !m.pParameter.is_null() && len > 0;
    /// Reads the parameter as a `T` when it is exactly one.
    ///
    /// # Safety
    /// `m.pParameter` points to `len` readable bytes.
    unsafe fn param<T: Copy>(m: &CK_MECHANISM, len: usize) -> Rv<T> {
        if m.pParameter.is_null() || len != std::mem::size_of::<T>() {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        // SAFETY: `len` bytes, the size of T; read_unaligned makes no alignment assumption.
        Ok(unsafe { std::ptr::read_unaligned(m.pParameter as *const T) })
    }
    let param = match m.mechanism {
        CKM_AES_GCM => {
            // SAFETY: the parameter of CKM_AES_GCM is a CK_GCM_PARAMS (caller).
            let g: CK_GCM_PARAMS = unsafe { param(m, len) }?;
            // SAFETY: the IV is ulIvLen bytes at pIv, the AAD ulAADLen bytes at pAAD (caller).
            let (iv, aad) = unsafe { (bytes(g.pIv, g.ulIvLen), bytes(g.pAAD, g.ulAADLen)) };
            let (mut iv, aad) = (
                iv.map_err(|_| CKR_MECHANISM_PARAM_INVALID)?.to_vec(),
                aad.map_err(|_| CKR_MECHANISM_PARAM_INVALID)?.to_vec(),
            );
            if fill_zero_gcm_iv && iv.len() == 12 && iv.iter().all(|b| *b == 0) {
                aws_lc_rs::rand::fill(&mut iv).map_err(|_| CKR_FUNCTION_FAILED)?;
                // SAFETY: pIv has ulIvLen == 12 writable bytes during this call (caller).
                unsafe { std::ptr::copy_nonoverlapping(iv.as_ptr(), g.pIv, 12) };
            }
            Param::Gcm {
                iv,
                aad,
                tag_bits: g.ulTagBits,
            }
        }
        CKM_AES_CBC_PAD if has => {
            // SAFETY: `len` bytes at the non-null parameter (caller).
            Param::Iv(unsafe { bytes(m.pParameter as *const CK_BYTE, m.ulParameterLen) }?.to_vec())
        }
        CKM_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            // SAFETY: the PSS mechanisms take a CK_RSA_PKCS_PSS_PARAMS (caller).
            let p: CK_RSA_PKCS_PSS_PARAMS = unsafe { param(m, len) }?;
            Param::Pss {
                hash: p.hashAlg,
                mgf: p.mgf,
                salt_len: p.sLen,
            }
        }
        CKM_ECDH1_DERIVE => {
            // SAFETY: CKM_ECDH1_DERIVE takes a CK_ECDH1_DERIVE_PARAMS (caller).
            let p: CK_ECDH1_DERIVE_PARAMS = unsafe { param(m, len) }?;
            // SAFETY: ulPublicDataLen bytes at pPublicData (caller).
            let public = unsafe { bytes(p.pPublicData, p.ulPublicDataLen) }
                .map_err(|_| CKR_MECHANISM_PARAM_INVALID)?;
            let shared_len = if p.pSharedData.is_null() {
                0
            } else {
                p.ulSharedDataLen
            };
            Param::Ecdh {
                kdf: p.kdf,
                shared_len,
                public: public.to_vec(),
            }
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: CKM_RSA_PKCS_OAEP takes a CK_RSA_PKCS_OAEP_PARAMS (caller).
            let p: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param(m, len) }?;
            let label_len = if p.pSourceData.is_null() {
                0
            } else {
                p.ulSourceDataLen
            };
            Param::Oaep {
                hash: p.hashAlg,
                mgf: p.mgf,
                label_len,
            }
        }
        _ if has => {
            // SAFETY: `len` bytes at the non-null parameter (caller).
            Param::Bytes(
                unsafe { bytes(m.pParameter as *const CK_BYTE, m.ulParameterLen) }?.to_vec(),
            )
        }
        _ => Param::None,
    };
    Ok(Mech {
        kind: m.mechanism,
        param,
    })
}

/// What writing an output did.
pub(crate) enum Given {
    /// The bytes were written: the operation ends.
    Written,
    /// Only the length was asked for, or the buffer was short (`too_small`): it goes on.
    Length { too_small: bool },
}

/// PKCS#11's output convention: with `out` null, `*out_len` gets `hint` (the length, or a
/// bound on it) and nothing is computed; otherwise `produce` runs (its result may be cached
/// by the caller's operation) and is copied if it fits.
///
/// # Safety
/// `out_len` is writable; `out` is null or has `*out_len` writable bytes.
pub(crate) unsafe fn give<B: AsRef<[u8]>>(
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    hint: usize,
    produce: impl FnOnce() -> Rv<B>,
) -> Rv<Given> {
    if out_len.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    if out.is_null() {
        // SAFETY: writable (caller).
        unsafe { *out_len = hint as CK_ULONG };
        return Ok(Given::Length { too_small: false });
    }
    let result = produce()?;
    let result = result.as_ref();
    // SAFETY: readable and writable (caller).
    let room = unsafe { *out_len } as usize;
    // SAFETY: writable (caller).
    unsafe { *out_len = result.len() as CK_ULONG };
    if room < result.len() {
        return Ok(Given::Length { too_small: true });
    }
    // SAFETY: `out` has `room` >= result.len() writable bytes (caller).
    unsafe { std::ptr::copy_nonoverlapping(result.as_ptr(), out, result.len()) };
    Ok(Given::Written)
}

/// Ends or keeps an operation after [`give`]: PKCS#11 ends it on success and on every error
/// but `CKR_BUFFER_TOO_SMALL` and a length query.
pub(crate) fn settle<T>(op: &mut Option<T>, r: Rv<Given>) -> Rv {
    match r {
        Ok(Given::Written) => {
            *op = None;
            Ok(())
        }
        Ok(Given::Length { too_small: false }) => Ok(()),
        Ok(Given::Length { too_small: true }) => Err(CKR_BUFFER_TOO_SMALL),
        Err(e) => {
            *op = None;
            Err(e)
        }
    }
}

/// A blank-padded fixed-size text field (`CK_INFO`, `CK_TOKEN_INFO`, …), cut at `N` bytes.
pub(crate) fn padded<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// Writes one value through an out-pointer.
///
/// # Safety
/// `p` is null (then `CKR_ARGUMENTS_BAD`) or writable.
pub(crate) unsafe fn put<T>(p: *mut T, value: T) -> Rv {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null and writable (caller).
    unsafe { p.write(value) };
    Ok(())
}

/// Writes a list with PKCS#11's convention (null: the count only; short: `CKR_BUFFER_TOO_SMALL`).
///
/// # Safety
/// `count` is writable; `list` is null or has `*count` writable elements.
pub(crate) unsafe fn put_list<T: Copy>(list: *mut T, count: *mut CK_ULONG, items: &[T]) -> Rv {
    if count.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: readable and writable (caller).
    let room = unsafe { *count } as usize;
    // SAFETY: writable (caller).
    unsafe { *count = items.len() as CK_ULONG };
    if list.is_null() {
        return Ok(());
    }
    if room < items.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    // SAFETY: `list` has room for `items.len()` elements (caller).
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), list, items.len()) };
    Ok(())
}
