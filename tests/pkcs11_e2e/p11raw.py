"""A minimal ctypes binding of a PKCS#11 v2.40 module through C_GetFunctionList, returning raw
CK_RV codes: for checks that need the exact code or control over C_Initialize (fork), which
python-pkcs11 hides. Only the calls the raw checks use are bound."""

import ctypes as C

CK_ULONG = C.c_ulong
PTR_ULONG = C.POINTER(CK_ULONG)

# CK_RV values (PKCS#11 v2.40 §5.1 / pkcs11t.h).
CKR = {
    "OK": 0x0, "ATTRIBUTE_SENSITIVE": 0x11, "ATTRIBUTE_TYPE_INVALID": 0x12,
    "KEY_HANDLE_INVALID": 0x60, "MECHANISM_INVALID": 0x70, "OBJECT_HANDLE_INVALID": 0x82,
    "PIN_INCORRECT": 0xA0, "PIN_LOCKED": 0xA4, "USER_ALREADY_LOGGED_IN": 0x100,
    "USER_NOT_LOGGED_IN": 0x101, "USER_TYPE_INVALID": 0x103,
    "CRYPTOKI_NOT_INITIALIZED": 0x190, "CRYPTOKI_ALREADY_INITIALIZED": 0x191,
}
NAMES = {v: k for k, v in CKR.items()}

CKU_SO, CKU_USER = 0, 1
CKF_RW_SESSION, CKF_SERIAL_SESSION = 0x2, 0x4
CKA_CLASS, CKA_VALUE, CKA_LABEL, CKA_EC_POINT = 0x0, 0x11, 0x3, 0x181
CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 2, 3
CKM_ECDSA, CKM_ECDSA_SHA1, CKM_MD5, CKM_AES_GCM = 0x1041, 0x1042, 0x210, 0x1087
CK_UNAVAILABLE_INFORMATION = (1 << (8 * C.sizeof(CK_ULONG))) - 1

FUNCTIONS = """C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo
C_GetTokenInfo C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN
C_OpenSession C_CloseSession C_CloseAllSessions C_GetSessionInfo C_GetOperationState
C_SetOperationState C_Login C_Logout C_CreateObject C_CopyObject C_DestroyObject
C_GetObjectSize C_GetAttributeValue C_SetAttributeValue C_FindObjectsInit C_FindObjects
C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate C_EncryptFinal C_DecryptInit
C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest C_DigestUpdate C_DigestKey
C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit C_SignRecover
C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover
C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate
C_GenerateKey C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey C_SeedRandom
C_GenerateRandom C_GetFunctionStatus C_CancelFunction C_WaitForSlotEvent""".split()


class CK_VERSION(C.Structure):
    _fields_ = [("major", C.c_ubyte), ("minor", C.c_ubyte)]


class CK_ATTRIBUTE(C.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", C.c_void_p), ("ulValueLen", CK_ULONG)]


class CK_MECHANISM(C.Structure):
    _fields_ = [("mechanism", CK_ULONG), ("pParameter", C.c_void_p), ("ulParameterLen", CK_ULONG)]


class CK_GCM_PARAMS(C.Structure):
    _fields_ = [("pIv", C.c_void_p), ("ulIvLen", CK_ULONG), ("ulIvBits", CK_ULONG),
                ("pAAD", C.c_void_p), ("ulAADLen", CK_ULONG), ("ulTagBits", CK_ULONG)]


class CK_FUNCTION_LIST(C.Structure):
    _fields_ = [("version", CK_VERSION)] + [(name, C.c_void_p) for name in FUNCTIONS]


P_ATTR, P_MECH, P_BYTE = C.POINTER(CK_ATTRIBUTE), C.POINTER(CK_MECHANISM), C.c_char_p
SIGNATURES = {
    "C_Initialize": [C.c_void_p],
    "C_Finalize": [C.c_void_p],
    "C_GetSlotList": [C.c_ubyte, PTR_ULONG, PTR_ULONG],
    "C_OpenSession": [CK_ULONG, CK_ULONG, C.c_void_p, C.c_void_p, PTR_ULONG],
    "C_Login": [CK_ULONG, CK_ULONG, P_BYTE, CK_ULONG],
    "C_FindObjectsInit": [CK_ULONG, P_ATTR, CK_ULONG],
    "C_FindObjects": [CK_ULONG, PTR_ULONG, CK_ULONG, PTR_ULONG],
    "C_FindObjectsFinal": [CK_ULONG],
    "C_GetAttributeValue": [CK_ULONG, CK_ULONG, P_ATTR, CK_ULONG],
    "C_DestroyObject": [CK_ULONG, CK_ULONG],
    "C_SignInit": [CK_ULONG, P_MECH, CK_ULONG],
    "C_Sign": [CK_ULONG, P_BYTE, CK_ULONG, C.c_void_p, PTR_ULONG],
    "C_EncryptInit": [CK_ULONG, P_MECH, CK_ULONG],
    "C_DigestInit": [CK_ULONG, P_MECH],
}


def name(rv):
    return f"CKR_{NAMES.get(rv, '?')} (0x{rv:x})"


class Module:
    """One loaded module; every method returns the CK_RV first."""

    def __init__(self, path):
        self.dll = C.CDLL(path)
        fl = C.POINTER(CK_FUNCTION_LIST)()
        rv = self.dll.C_GetFunctionList(C.byref(fl))
        assert rv == 0, f"C_GetFunctionList: {name(rv)}"
        self.fl = fl.contents
        assert (self.fl.version.major, self.fl.version.minor) == (2, 40), "not a v2.40 list"
        self.fn = {
            n: C.CFUNCTYPE(CK_ULONG, *args)(getattr(self.fl, n)) for n, args in SIGNATURES.items()
        }

    def initialize(self):
        return self.fn["C_Initialize"](None)

    def slots(self):
        n = CK_ULONG(0)
        rv = self.fn["C_GetSlotList"](1, None, C.byref(n))
        if rv:
            return rv, []
        ids = (CK_ULONG * max(n.value, 1))()
        rv = self.fn["C_GetSlotList"](1, ids, C.byref(n))
        return rv, list(ids[: n.value])

    def open_session(self, slot):
        h = CK_ULONG(0)
        rv = self.fn["C_OpenSession"](slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, None, None,
                                      C.byref(h))
        return rv, h.value

    def login(self, session, pin, user_type=CKU_USER):
        pin = pin.encode()
        return self.fn["C_Login"](session, user_type, pin, len(pin))

    def find(self, session, klass, label):
        k = CK_ULONG(klass)
        lab = C.create_string_buffer(label.encode(), len(label))
        tmpl = (CK_ATTRIBUTE * 2)(
            CK_ATTRIBUTE(CKA_CLASS, C.addressof(k), C.sizeof(k)),
            CK_ATTRIBUTE(CKA_LABEL, C.addressof(lab), len(label)),
        )
        rv = self.fn["C_FindObjectsInit"](session, tmpl, 2)
        if rv:
            return rv, []
        out, n = (CK_ULONG * 16)(), CK_ULONG(0)
        rv = self.fn["C_FindObjects"](session, out, 16, C.byref(n))
        self.fn["C_FindObjectsFinal"](session)
        return rv, list(out[: n.value])

    def attribute(self, session, obj, attr_type):
        """(rv, value or None, ulValueLen as the module left it)."""
        a = (CK_ATTRIBUTE * 1)(CK_ATTRIBUTE(attr_type, None, 0))
        rv = self.fn["C_GetAttributeValue"](session, obj, a, 1)
        if rv or a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION:
            return rv, None, a[0].ulValueLen
        buf = C.create_string_buffer(a[0].ulValueLen)
        a[0].pValue = C.addressof(buf)
        rv = self.fn["C_GetAttributeValue"](session, obj, a, 1)
        return rv, buf.raw[: a[0].ulValueLen], a[0].ulValueLen

    @staticmethod
    def mechanism(mech):
        return C.byref(CK_MECHANISM(mech, None, 0))

    def sign_init(self, session, key, mech=CKM_ECDSA):
        return self.fn["C_SignInit"](session, self.mechanism(mech), key)

    def sign(self, session, key, data, mech=CKM_ECDSA):
        rv = self.sign_init(session, key, mech)
        if rv:
            return rv, b""
        out, n = C.create_string_buffer(1024), CK_ULONG(1024)
        rv = self.fn["C_Sign"](session, data, len(data), C.addressof(out), C.byref(n))
        return rv, out.raw[: n.value]

    def gcm_encrypt_init(self, session, key):
        """C_EncryptInit with CKM_AES_GCM, a 12-byte IV buffer and a 128-bit tag."""
        iv = C.create_string_buffer(12)
        params = CK_GCM_PARAMS(C.addressof(iv), 12, 96, None, 0, 128)
        mech = CK_MECHANISM(CKM_AES_GCM, C.addressof(params), C.sizeof(params))
        return self.fn["C_EncryptInit"](session, C.byref(mech), key)

    def digest_init(self, session, mech):
        return self.fn["C_DigestInit"](session, self.mechanism(mech))

    def destroy(self, session, obj):
        return self.fn["C_DestroyObject"](session, obj)
