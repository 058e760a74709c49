//! Entry points: encryption, decryption, digests, signatures, verification and key wrapping
//! (PKCS#11 v2.40 §5.8–5.14). Multi-part data is gathered (or hashed) here and sent to the
//! HSM once, at the final call.
#![allow(non_snake_case, reason = "PKCS#11's function names")]
#![allow(
    clippy::missing_safety_doc,
    reason = "the PKCS#11 specification states each contract"
)]

use cryptoki_sys::*;

use crate::ffi::{bytes, give, guard, mechanism, put, session, settle, template};
use crate::module::lock;
use crate::objects::Template;
use crate::session::{Session, SignOp};
use crate::{keys, ops};

/// The session's sign or verify operation.
fn sign_op(s: &mut Session, verify: bool) -> &mut Option<SignOp> {
    if verify {
        &mut s.verify
    } else {
        &mut s.sign
    }
}

/// `C_SignInit` / `C_VerifyInit`.
///
/// # Safety
/// As the entry points'.
unsafe fn sign_init(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    verify: bool,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: a CK_MECHANISM (caller).
        let mech = unsafe { mechanism(mech, false) }?;
        let token = m.token(e.slot)?;
        token.need_login()?;
        let mut s = lock(&e.state);
        let op = sign_op(&mut s, verify);
        if op.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        *op = Some(ops::sign_init(&m, token, &mech, key, verify)?);
        Ok(())
    })
}

/// `C_SignUpdate` / `C_VerifyUpdate`: an error ends the operation.
///
/// # Safety
/// As the entry points'.
unsafe fn sign_update(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
    verify: bool,
) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let mut s = lock(&e.state);
        let slot = sign_op(&mut s, verify);
        let op = slot.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.multi = true;
        // SAFETY: `len` bytes at `part` (caller).
        let r = unsafe { bytes(part, len) }.and_then(|p| {
            op.data
                .as_mut()
                .ok_or(CKR_OPERATION_NOT_INITIALIZED)?
                .add(p)
        });
        if r.is_err() {
            *slot = None;
        }
        r
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { sign_init(h, mech, key, false) }
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        let mut s = lock(&e.state);
        let op = s.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = (|| {
            if op.multi {
                return Err(CKR_OPERATION_ACTIVE);
            }
            // SAFETY: `len` bytes at `data` (caller).
            let data = unsafe { bytes(data, len) }?;
            let hint = op.len;
            // SAFETY: PKCS#11's output convention (caller).
            unsafe {
                give(sig, sig_len, hint, || {
                    if op.result.is_none() {
                        op.data
                            .as_mut()
                            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?
                            .add(data)?;
                    }
                    ops::sign(&m, token, op)
                })
            }
        })();
        settle(&mut s.sign, r)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { sign_update(h, part, len, false) }
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    h: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        let mut s = lock(&e.state);
        let op = s.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let hint = op.len;
        // SAFETY: PKCS#11's output convention (caller).
        let r = unsafe { give(sig, sig_len, hint, || ops::sign(&m, token, op)) };
        settle(&mut s.sign, r)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { sign_init(h, mech, key, true) }
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        let mut s = lock(&e.state);
        let mut op = s.verify.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if op.multi {
            return Err(CKR_OPERATION_ACTIVE);
        }
        // SAFETY: `len` bytes at `data`, `sig_len` at `sig` (caller).
        let (data, sig) = unsafe { (bytes(data, len)?, bytes(sig, sig_len)?) };
        op.data
            .as_mut()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?
            .add(data)?;
        ops::verify(&m, token, &mut op, sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { sign_update(h, part, len, true) }
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    h: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        let mut op = lock(&e.state)
            .verify
            .take()
            .ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        // SAFETY: `sig_len` bytes at `sig` (caller).
        let sig = unsafe { bytes(sig, sig_len) }?;
        ops::verify(&m, token, &mut op, sig)
    })
}

/// `C_EncryptInit` / `C_DecryptInit`.
fn crypt_init(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    encrypt: bool,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: a CK_MECHANISM (the entry point's caller).
        let mech = unsafe { mechanism(mech, encrypt) }?;
        let token = m.token(e.slot)?;
        token.need_login()?;
        let mut s = lock(&e.state);
        let slot = if encrypt {
            &mut s.encrypt
        } else {
            &mut s.decrypt
        };
        if slot.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        *slot = Some(ops::crypt_init(&m, token, mech, key, encrypt)?);
        Ok(())
    })
}

/// `C_Encrypt` / `C_Decrypt` (`single`), `C_EncryptFinal` / `C_DecryptFinal` (no input).
///
/// # Safety
/// As the entry points'.
unsafe fn crypt(
    h: CK_SESSION_HANDLE,
    input: Option<(*mut CK_BYTE, CK_ULONG)>,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    encrypt: bool,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        let mut s = lock(&e.state);
        let slot = if encrypt {
            &mut s.encrypt
        } else {
            &mut s.decrypt
        };
        let op = slot.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = (|| {
            let fresh: &[u8] = match input {
                Some(_) if op.multi => return Err(CKR_OPERATION_ACTIVE),
                // SAFETY: `len` bytes at `p` (caller).
                Some((p, len)) => unsafe { bytes(p, len) }?,
                None => &[],
            };
            let hint = op.out_len.of(op.data.len() + fresh.len());
            // SAFETY: PKCS#11's output convention (caller).
            unsafe {
                give(out, out_len, hint, || {
                    if op.result.is_none() {
                        if op.data.len() + fresh.len() > crate::session::MAX_DATA {
                            return Err(CKR_DATA_LEN_RANGE);
                        }
                        op.data.extend_from_slice(fresh);
                    }
                    ops::crypt(&m, token, op, encrypt)
                })
            }
        })();
        settle(slot, r)
    })
}

/// `C_EncryptUpdate` / `C_DecryptUpdate`: gathers the part; its output comes at the end.
///
/// # Safety
/// As the entry points'.
unsafe fn crypt_update(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
    out_len: *mut CK_ULONG,
    encrypt: bool,
) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let mut s = lock(&e.state);
        let slot = if encrypt {
            &mut s.encrypt
        } else {
            &mut s.decrypt
        };
        let op = slot.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.multi = true;
        let r = (|| {
            // SAFETY: `len` bytes at `part` (caller).
            let p = unsafe { bytes(part, len) }?;
            if op.data.len() + p.len() > crate::session::MAX_DATA {
                return Err(CKR_DATA_LEN_RANGE);
            }
            op.data.extend_from_slice(p);
            // SAFETY: writable (caller).
            unsafe { put(out_len, 0) }
        })();
        if r.is_err() {
            *slot = None;
        }
        r
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    crypt_init(h, mech, key, true)
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers, as C_Encrypt takes them.
    unsafe { crypt(h, Some((data, len)), out, out_len, true) }
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
    _out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { crypt_update(h, part, len, out_len, true) }
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { crypt(h, None, out, out_len, true) }
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    crypt_init(h, mech, key, false)
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { crypt(h, Some((data, len)), out, out_len, false) }
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
    _out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { crypt_update(h, part, len, out_len, false) }
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's pointers.
    unsafe { crypt(h, None, out, out_len, false) }
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        // SAFETY: a CK_MECHANISM (caller).
        let mech = unsafe { mechanism(mech, false) }?;
        let mut s = lock(&e.state);
        if s.digest.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        s.digest = Some(ops::digest_init(&mech)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let mut s = lock(&e.state);
        let op = s.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let r = (|| {
            if op.multi {
                return Err(CKR_OPERATION_ACTIVE);
            }
            // SAFETY: `len` bytes at `data` (caller).
            let data = unsafe { bytes(data, len) }?;
            let hint = op.ctx.algorithm().output_len();
            // SAFETY: PKCS#11's output convention (caller).
            unsafe {
                give(out, out_len, hint, || {
                    let mut ctx = op.ctx.clone();
                    ctx.update(data);
                    Ok(ctx.finish())
                })
            }
        })();
        settle(&mut s.digest, r)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let mut s = lock(&e.state);
        let op = s.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.multi = true;
        // SAFETY: `len` bytes at `part` (caller).
        match unsafe { bytes(part, len) } {
            Ok(p) => {
                op.ctx.update(p);
                Ok(())
            }
            Err(rv) => {
                s.digest = None;
                Err(rv)
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let mut s = lock(&e.state);
        let op = s.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let hint = op.ctx.algorithm().output_len();
        // SAFETY: PKCS#11's output convention (caller).
        let r = unsafe { give(out, out_len, hint, || Ok(op.ctx.clone().finish())) };
        settle(&mut s.digest, r)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: a CK_MECHANISM (caller).
        let mech = unsafe { mechanism(mech, false) }?;
        let token = m.token(e.slot)?;
        token.need_login()?;
        if out_len.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let mut s = lock(&e.state);
        let id = (wrapping, key, mech.kind);
        let wrapped = match s.last_wrap.take() {
            Some((last, bytes)) if last == id => bytes,
            _ => keys::wrap(&m, token, &mech, wrapping, key)?,
        };
        // SAFETY: PKCS#11's output convention (caller).
        let r = unsafe { give(out, out_len, wrapped.len(), || Ok(wrapped.as_slice())) }?;
        if !matches!(r, crate::ffi::Given::Written) {
            // Kept for the call with a buffer, which would otherwise wrap again.
            s.last_wrap = Some((id, wrapped));
        }
        settle(&mut None::<()>, Ok(r))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: a CK_MECHANISM, `wrapped_len` bytes and `count` attributes (caller).
        let (mech, wrapped, t) = unsafe {
            (
                mechanism(mech, false)?,
                bytes(wrapped, wrapped_len)?,
                template(attrs, count)?,
            )
        };
        let token = m.token(e.slot)?;
        token.need_login()?;
        if key.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let handle = keys::unwrap(&m, token, &mech, unwrapping, wrapped, &Template::parse(&t)?)?;
        // SAFETY: non-null, writable (caller).
        unsafe { put(key, handle) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: a CK_MECHANISM and `count` attributes (caller).
        let (mech, t) = unsafe { (mechanism(mech, false)?, template(attrs, count)?) };
        let token = m.token(e.slot)?;
        token.need_login()?;
        if key.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let handle = keys::derive(&m, token, &mech, base, &Template::parse(&t)?)?;
        // SAFETY: non-null, writable (caller).
        unsafe { put(key, handle) }
    })
}
