"""Exact CK_RV codes and fork behaviour through ctypes (p11raw): `raw_test.py fork|codes|isolation`.

Run by tests/pkcs11_e2e/python.rs with PKCS11_MODULE, KEYWARD_PKCS11_CONF and PIN set, plus:
- fork: alice's CLI-made P-256 pair labelled `fork-ec`. The parent initializes, logs in and
  signs; a child that calls functions without C_Initialize must get
  CKR_CRYPTOKI_NOT_INITIALIZED (and not hang); a child that calls C_Initialize (no
  C_Finalize first) must log in and sign; the parent still signs afterwards.
- codes: alice's CLI-made pair `codes-ec`: login, attribute and mechanism codes.
- isolation: run as bob with ALICE_EC_PRIV and ALICE_AES (alice's key handles).
Prints `ok WHAT: CODE` / `FAIL WHAT: ...`; exit status 1 when any failed.
"""

import hashlib
import os
import signal
import sys
import time
import traceback

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

import p11raw as R
from p11util import der_octet_string

MODULE, PIN = os.environ["PKCS11_MODULE"], os.environ["PIN"]
CHILD_DEADLINE_S = 60
failures = []


def report(what, ok, detail):
    print(f"{'ok' if ok else 'FAIL'} {what}: {detail}", flush=True)
    if not ok:
        failures.append(what)


def expect_rv(what, got, want):
    ok = got == R.CKR[want]
    report(what, ok, R.name(got) + ("" if ok else f", wanted CKR_{want}"))
    return ok


def logged_in(m, pin=PIN):
    """Slot 0's token, a R/W session, C_Login(CKU_USER); fails loudly otherwise."""
    rv, slots = m.slots()
    assert rv == 0 and slots, f"C_GetSlotList: {R.name(rv)} {slots}"
    rv, session = m.open_session(slots[0])
    assert rv == 0, f"C_OpenSession: {R.name(rv)}"
    rv = m.login(session, pin)
    assert rv == 0, f"C_Login: {R.name(rv)}"
    return session


def find_one(m, session, klass, label):
    rv, found = m.find(session, klass, label)
    assert rv == 0 and len(found) == 1, f"find {label}: {R.name(rv)} {found}"
    return found[0]


def p256_public(m, session, pub):
    rv, point, _ = m.attribute(session, pub, R.CKA_EC_POINT)
    assert rv == 0, f"CKA_EC_POINT: {R.name(rv)}"
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), der_octet_string(point))


def signs(m, session, priv, key, what):
    digest = hashlib.sha256(what.encode()).digest()
    rv, raw = m.sign(session, priv, digest)
    if not expect_rv(f"{what}: C_Sign", rv, "OK"):
        return
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        report(f"{what}: signature verifies", True, f"{len(raw)} bytes")
    except Exception as e:  # noqa: BLE001
        report(f"{what}: signature verifies", False, repr(e))


def in_child(label, fn):
    """Runs fn() in a forked child; its exit status says whether its checks passed. A child
    that does not finish within CHILD_DEADLINE_S is killed and reported as hung."""
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            code = 0 if fn() else 1
        except BaseException:  # noqa: BLE001 - anything in the child is a failure
            traceback.print_exc(file=sys.stdout)
        finally:
            sys.stdout.flush()
            os._exit(code)
    end = time.monotonic() + CHILD_DEADLINE_S
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            report(f"{label} (child exit status)", code == 0, str(code))
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    report(f"{label} (child)", False, f"hung for {CHILD_DEADLINE_S} s, killed")


def fork_mode():
    m = R.Module(MODULE)
    expect_rv("parent: C_Initialize", m.initialize(), "OK")
    session = logged_in(m)
    priv = find_one(m, session, R.CKO_PRIVATE_KEY, "fork-ec")
    key = p256_public(m, session, find_one(m, session, R.CKO_PUBLIC_KEY, "fork-ec"))
    signs(m, session, priv, key, "parent before fork")

    def without_initialize():
        before = len(failures)
        want = "CRYPTOKI_NOT_INITIALIZED"
        expect_rv("child without C_Initialize: C_GetSlotList", m.slots()[0], want)
        expect_rv("child without C_Initialize: C_OpenSession", m.open_session(0)[0], want)
        expect_rv("child without C_Initialize: C_SignInit (parent's session)",
                  m.sign_init(session, priv), want)
        expect_rv("child without C_Initialize: C_Login (parent's session)",
                  m.login(session, PIN), want)
        return len(failures) == before

    def reinitializes():
        before = len(failures)
        if not expect_rv("child: C_Initialize", m.initialize(), "OK"):
            return False
        s = logged_in(m)
        again = find_one(m, s, R.CKO_PRIVATE_KEY, "fork-ec")
        report("child: same key handle as the parent", again == priv, f"{again} vs {priv}")
        signs(m, s, again, key, "child after C_Initialize")
        return len(failures) == before

    in_child("child without C_Initialize", without_initialize)
    in_child("child that calls C_Initialize", reinitializes)
    signs(m, session, priv, key, "parent after the children")


def codes_mode():
    m = R.Module(MODULE)
    expect_rv("C_Initialize", m.initialize(), "OK")
    expect_rv("C_Initialize again", m.initialize(), "CRYPTOKI_ALREADY_INITIALIZED")
    rv, slots = m.slots()
    rv, session = m.open_session(slots[0])
    expect_rv("C_OpenSession", rv, "OK")
    user = PIN.split(":")[0]
    expect_rv("C_Login(CKU_SO)", m.login(session, "so:pin", R.CKU_SO), "USER_TYPE_INVALID")
    expect_rv("C_Login with a wrong password", m.login(session, f"{user}:wrong"), "PIN_INCORRECT")
    expect_rv("C_Login", m.login(session, PIN), "OK")
    expect_rv("C_Login again", m.login(session, PIN), "USER_ALREADY_LOGGED_IN")
    priv = find_one(m, session, R.CKO_PRIVATE_KEY, "codes-ec")
    rv, _, length = m.attribute(session, priv, R.CKA_VALUE)
    expect_rv("CKA_VALUE of a private key", rv, "ATTRIBUTE_SENSITIVE")
    report("CKA_VALUE's ulValueLen is CK_UNAVAILABLE_INFORMATION",
           length == R.CK_UNAVAILABLE_INFORMATION, hex(length))
    rv, _, _ = m.attribute(session, priv, 0x80001234)
    expect_rv("a vendor-defined attribute", rv, "ATTRIBUTE_TYPE_INVALID")
    expect_rv("C_SignInit(CKM_ECDSA_SHA1)", m.sign_init(session, priv, R.CKM_ECDSA_SHA1),
              "MECHANISM_INVALID")
    expect_rv("C_DigestInit(CKM_MD5)", m.digest_init(session, R.CKM_MD5), "MECHANISM_INVALID")
    expect_rv("C_SignInit with a made-up handle", m.sign_init(session, 0xDEADBEEF),
              "KEY_HANDLE_INVALID")
    rv, _, _ = m.attribute(session, 0xDEADBEEF, R.CKA_LABEL)
    expect_rv("C_GetAttributeValue of a made-up handle", rv, "OBJECT_HANDLE_INVALID")


def isolation_mode():
    m = R.Module(MODULE)
    expect_rv("C_Initialize", m.initialize(), "OK")
    session = logged_in(m)
    alice_ec, alice_aes = int(os.environ["ALICE_EC_PRIV"]), int(os.environ["ALICE_AES"])
    rv, _, _ = m.attribute(session, alice_ec, R.CKA_LABEL)
    expect_rv("bob reads alice's key's label", rv, "OBJECT_HANDLE_INVALID")
    expect_rv("bob signs with alice's key", m.sign_init(session, alice_ec), "KEY_HANDLE_INVALID")
    expect_rv("bob encrypts with alice's AES key", m.gcm_encrypt_init(session, alice_aes),
              "KEY_HANDLE_INVALID")
    expect_rv("bob destroys alice's key", m.destroy(session, alice_ec), "OBJECT_HANDLE_INVALID")
    rv, found = m.find(session, R.CKO_PRIVATE_KEY, "alice-ec")
    report("bob finds alice's key by label", rv == 0 and not found, f"{R.name(rv)} {found}")


if __name__ == "__main__":
    modes = {"fork": fork_mode, "codes": codes_mode, "isolation": isolation_mode}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(modes)}}}")
    modes[sys.argv[1]]()
    print(f"summary: {len(failures)} failed: {failures}")
    sys.exit(1 if failures else 0)
