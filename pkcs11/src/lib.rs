//! `libkeyward_pkcs11.so`: a PKCS#11 v2.40 module whose token is a Keyward HSM cluster, over
//! the network API (`keyward-client`), as AWS CloudHSM's PKCS#11 library is for CloudHSM.
//!
//! - **Configuration**: `KEYWARD_PKCS11_CONF` names a TOML file (see `config`), one slot per
//!   `[[token]]` (cluster).
//! - **Login**: `C_Login(CKU_USER)` with the PIN `user:password` of a crypto-user (or only the
//!   password when the token's `username` is set). Login state is per token, for every
//!   session of the process, as PKCS#11 specifies.
//! - **Objects** are the user's keys (and keys shared with it): object handles are Keyward
//!   key handles, stable across processes and nodes. Policy is the HSM's: the module maps
//!   attributes and mechanisms and reports the HSM's refusals as `CKR_*` codes.
//! - **Threads and fork**: see `module`. Panics never cross the FFI boundary (`ffi::guard`).
//!
//! `unsafe` is allowed in this crate only, at the FFI boundary, each block with its reason.
//! The module reports 2.40 (`C_GetFunctionList`); no 3.0 interface (`C_GetInterface`).

mod config;
mod entry_crypto;
mod entry_general;
mod error;
mod ffi;
mod keys;
mod mechanisms;
mod module;
mod objects;
mod ops;
mod session;

pub use entry_crypto::*;
pub use entry_general::*;

use cryptoki_sys::*;

/// Declares entry points the module does not offer: each returns `$rv` after checking
/// nothing else (PKCS#11 §5.2 lets a module return `CKR_FUNCTION_NOT_SUPPORTED` for them).
macro_rules! not_supported {
    ($( $name:ident ( $($arg:ty),* ) => $rv:expr; )+) => {
        $(
            #[no_mangle]
            #[allow(non_snake_case, reason = "PKCS#11's function names")]
            /// Not offered by this module.
            ///
            /// # Safety
            /// None needed: the arguments are not read.
            pub unsafe extern "C" fn $name($(_: $arg),*) -> CK_RV {
                $rv
            }
        )+
    };
}

not_supported! {
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR) => CKR_FUNCTION_NOT_SUPPORTED;
    C_InitPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SetPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR, CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) => CKR_FUNCTION_NOT_SUPPORTED;
    C_CreateObject(CK_SESSION_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE) => CKR_FUNCTION_NOT_SUPPORTED;
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE) => CKR_FUNCTION_NOT_SUPPORTED;
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE) => CKR_FUNCTION_NOT_SUPPORTED;
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG) => CKR_FUNCTION_NOT_SUPPORTED;
    C_GetFunctionStatus(CK_SESSION_HANDLE) => CKR_FUNCTION_NOT_PARALLEL;
    C_CancelFunction(CK_SESSION_HANDLE) => CKR_FUNCTION_NOT_PARALLEL;
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut std::ffi::c_void) => CKR_FUNCTION_NOT_SUPPORTED;
}

/// The module's function table.
static FUNCTIONS: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: entry_general::CRYPTOKI_VERSION,
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};

/// `C_GetFunctionList`: the module's entry point for applications (callable before
/// `C_Initialize`).
///
/// # Safety
/// `list` is null (`CKR_ARGUMENTS_BAD`) or writable.
#[no_mangle]
#[allow(non_snake_case, reason = "PKCS#11's function name")]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    // SAFETY: non-null and writable (caller). Applications only read the table (PKCS#11
    // §5.4: "the application must not modify it"), so handing out a pointer to the immutable
    // static is sound.
    unsafe { *list = std::ptr::addr_of!(FUNCTIONS) as *mut CK_FUNCTION_LIST };
    CKR_OK
}
