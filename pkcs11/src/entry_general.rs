//! Entry points: general, slot and token, session, login, object management and random
//! (PKCS#11 v2.40 §5.4–5.7, 5.15). Each one is `guard`ed: no panic crosses into C.
#![allow(non_snake_case, reason = "PKCS#11's function names")]
#![allow(
    clippy::missing_safety_doc,
    reason = "the PKCS#11 specification states each contract"
)]

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::error::Rv;
use crate::ffi::{bytes, guard, mechanism, padded, put, put_list, session, template};
use crate::keys;
use crate::mechanisms::MECHANISMS;
use crate::module::{self, lock, module};
use crate::objects::{self, needs_spki, Read, Template};
use crate::session::Find;

/// `CK_VERSION` of the implemented interface: 2.40.
pub(crate) const CRYPTOKI_VERSION: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};

fn library_version() -> CK_VERSION {
    let mut v = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u8>().unwrap_or(0));
    CK_VERSION {
        major: v.next().unwrap_or(0),
        minor: v.next().unwrap_or(0),
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| {
        if !args.is_null() {
            // SAFETY: a non-null argument is a CK_C_INITIALIZE_ARGS (PKCS#11 §5.4).
            let a = unsafe { &*(args as *const CK_C_INITIALIZE_ARGS) };
            if !a.pReserved.is_null() {
                return Err(CKR_ARGUMENTS_BAD);
            }
            let fns = [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ];
            if fns.iter().any(|f| *f) && !fns.iter().all(|f| *f) {
                return Err(CKR_ARGUMENTS_BAD);
            }
            // The module locks with the OS's primitives; it cannot use the application's.
            if fns[0] && a.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(CKR_CANT_LOCK);
            }
            // The SDK's runtime needs threads of its own.
            if a.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0 {
                return Err(CKR_NEED_TO_CREATE_THREADS);
            }
        }
        module::initialize()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        if !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        module::finalize()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard(|| {
        module()?;
        let value = CK_INFO {
            cryptokiVersion: CRYPTOKI_VERSION,
            manufacturerID: padded("Keyward"),
            flags: 0,
            libraryDescription: padded("Keyward PKCS#11 module"),
            libraryVersion: library_version(),
        };
        // SAFETY: `info` is writable or null (checked).
        unsafe { put(info, value) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    _token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        let slots: Vec<CK_SLOT_ID> = (0..m.tokens.len() as CK_SLOT_ID).collect();
        // SAFETY: PKCS#11's list convention (caller).
        unsafe { put_list(list, count, &slots) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        let m = module()?;
        let token = m.token(slot)?;
        let value = CK_SLOT_INFO {
            slotDescription: padded(&format!("Keyward cluster {}", token.config.label)),
            manufacturerID: padded("Keyward"),
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: library_version(),
            firmwareVersion: library_version(),
        };
        // SAFETY: writable or null (checked).
        unsafe { put(info, value) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let m = module()?;
        let token = m.token(slot)?;
        let (sessions, rw) = m.session_counts(slot);
        // The serial: the first 8 bytes of SHA-256 over the node list, in hex.
        let nodes = token.config.servers.join(",");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, nodes.as_bytes());
        let value = CK_TOKEN_INFO {
            label: padded(&token.config.label),
            manufacturerID: padded("Keyward"),
            model: padded("Keyward HSM"),
            serialNumber: padded(&hex::encode(&digest.as_ref()[..8])),
            // With a client certificate, an empty PIN logs in (PKCS#11's protected
            // authentication path: the application passes no PIN).
            flags: CKF_RNG
                | CKF_LOGIN_REQUIRED
                | CKF_USER_PIN_INITIALIZED
                | CKF_TOKEN_INITIALIZED
                | if token.config.client_cert_file.is_some() {
                    CKF_PROTECTED_AUTHENTICATION_PATH
                } else {
                    0
                },
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw,
            ulMaxPinLen: module::MAX_PIN as CK_ULONG,
            ulMinPinLen: 3,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: library_version(),
            firmwareVersion: library_version(),
            utcTime: [b' '; 16],
        };
        // SAFETY: writable or null (checked).
        unsafe { put(info, value) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        module()?.token(slot)?;
        let all: Vec<CK_MECHANISM_TYPE> = MECHANISMS.iter().map(|m| m.0).collect();
        // SAFETY: PKCS#11's list convention (caller).
        unsafe { put_list(list, count, &all) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        module()?.token(slot)?;
        let (_, min, max, flags) = MECHANISMS
            .iter()
            .find(|m| m.0 == kind)
            .ok_or(CKR_MECHANISM_INVALID)?;
        let value = CK_MECHANISM_INFO {
            ulMinKeySize: *min,
            ulMaxKeySize: *max,
            flags: *flags,
        };
        // SAFETY: writable or null (checked).
        unsafe { put(info, value) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: *mut c_void,
    _notify: CK_NOTIFY,
    handle: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        if handle.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let h = m.open_session(slot, flags & CKF_RW_SESSION != 0)?;
        // SAFETY: non-null, writable (caller).
        unsafe { put(handle, h) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module()?.close_session(h))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| module()?.close_all(slot))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    h: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let logged_in = m.token(e.slot)?.user().is_some();
        let state = match (e.rw, logged_in) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        };
        let value = CK_SESSION_INFO {
            slotID: e.slot,
            state,
            flags: CKF_SERIAL_SESSION | if e.rw { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        };
        // SAFETY: writable or null (checked).
        unsafe { put(info, value) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        match user_type {
            CKU_USER => {}
            // Keyward's admins manage users and the cluster, not keys: no SO login here.
            CKU_SO => return Err(CKR_USER_TYPE_INVALID),
            CKU_CONTEXT_SPECIFIC => return Err(CKR_OPERATION_NOT_INITIALIZED),
            _ => return Err(CKR_USER_TYPE_INVALID),
        }
        // SAFETY: `pin_len` bytes at `pin` (caller).
        let pin = unsafe { bytes(pin, pin_len) }?;
        m.login(m.token(e.slot)?, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        m.logout(m.token(e.slot)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    h: CK_SESSION_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: `count` attributes at `attrs` (caller).
        let wanted = unsafe { template(attrs, count) }?;
        let mut s = lock(&e.state);
        if s.find.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let handles = keys::find(&m, m.token(e.slot)?, &wanted)?;
        s.find = Some(Find { handles, next: 0 });
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    out: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let mut s = lock(&e.state);
        let find = s.find.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if count.is_null() || (out.is_null() && max > 0) {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let n = (find.handles.len() - find.next).min(max as usize);
        let batch = &find.handles[find.next..find.next + n];
        if n > 0 {
            // SAFETY: `out` has room for `max` >= n handles (caller).
            unsafe { std::ptr::copy_nonoverlapping(batch.as_ptr(), out, n) };
        }
        find.next += n;
        // SAFETY: non-null, writable (caller).
        unsafe { put(count, n as CK_ULONG) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        let (_, e) = session(h)?;
        let found = lock(&e.state).find.take();
        found.map(|_| ()).ok_or(CKR_OPERATION_NOT_INITIALIZED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        if attrs.is_null() && count > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        if count == 0 {
            return Ok(());
        }
        // SAFETY: `count` attributes at `attrs`, writable (caller).
        let list = unsafe { std::slice::from_raw_parts_mut(attrs, count as usize) };
        let c = if list.iter().any(|a| needs_spki(a.type_)) {
            m.key_with_spki(token, object)?
        } else {
            m.key(token, object, crate::error::Doing::Object)?
        };
        let mut result: Rv = Ok(());
        for a in list.iter_mut() {
            match objects::read(&c, a.type_) {
                Read::Value(v) => {
                    if a.pValue.is_null() {
                        a.ulValueLen = v.len() as CK_ULONG;
                    } else if (a.ulValueLen as usize) < v.len() {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        result = Err(CKR_BUFFER_TOO_SMALL);
                    } else {
                        // SAFETY: `pValue` has `ulValueLen` >= v.len() writable bytes.
                        unsafe {
                            std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len())
                        };
                        a.ulValueLen = v.len() as CK_ULONG;
                    }
                }
                Read::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_ATTRIBUTE_SENSITIVE);
                }
                Read::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_ATTRIBUTE_TYPE_INVALID);
                }
            }
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attrs: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        if !e.rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        // SAFETY: `count` attributes at `attrs` (caller).
        let changes = unsafe { template(attrs, count) }?;
        keys::set_attributes(&m, m.token(e.slot)?, object, &changes)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        if !e.rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        keys::destroy(&m, m.token(e.slot)?, object)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
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
        let handle = keys::generate_secret(&m, token, &mech, &Template::parse(&t)?)?;
        // SAFETY: non-null, writable (caller).
        unsafe { put(key, handle) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_attrs: *mut CK_ATTRIBUTE,
    pub_count: CK_ULONG,
    priv_attrs: *mut CK_ATTRIBUTE,
    priv_count: CK_ULONG,
    pub_key: *mut CK_OBJECT_HANDLE,
    priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        // SAFETY: a CK_MECHANISM and two templates (caller).
        let (mech, public, private) = unsafe {
            (
                mechanism(mech, false)?,
                template(pub_attrs, pub_count)?,
                template(priv_attrs, priv_count)?,
            )
        };
        let token = m.token(e.slot)?;
        token.need_login()?;
        if pub_key.is_null() || priv_key.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let (public, private) = keys::generate_pair(
            &m,
            token,
            &mech,
            &Template::parse(&public)?,
            &Template::parse(&private)?,
        )?;
        // SAFETY: non-null, writable (caller).
        unsafe {
            put(pub_key, public)?;
            put(priv_key, private)
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (m, e) = session(h)?;
        let token = m.token(e.slot)?;
        token.need_login()?;
        let len = len as usize;
        if len == 0 {
            return Ok(());
        }
        if out.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let mut done = 0;
        while done < len {
            // The API's most per request (`MAX_RANDOM_BYTES`).
            let n = (len - done).min(65_536);
            let chunk = m
                .block_on(token.client.random(n))
                .map_err(|e| crate::error::rv(&e, crate::error::Doing::KeyOp))?;
            if chunk.len() != n {
                return Err(CKR_DEVICE_ERROR);
            }
            // SAFETY: `out` has `len` writable bytes (caller); done + n <= len.
            unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), out.add(done), n) };
            done += n;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    h: CK_SESSION_HANDLE,
    _seed: *mut CK_BYTE,
    _len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        session(h)?;
        // The HSM's generator takes no seed from applications.
        Err(CKR_RANDOM_SEED_NOT_SUPPORTED)
    })
}
