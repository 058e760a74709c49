"""Shared helpers of the python-pkcs11 checks (tests/pkcs11_e2e/module_test.py).

Environment (set by tests/pkcs11_e2e/python.rs): PKCS11_MODULE (the .so), KEYWARD_PKCS11_CONF
(the module's configuration), PIN (`username:password` of the user the group runs as).
"""

import os
import sys
import traceback

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute as A
from pkcs11.attributes import AttributeMapper

TOKEN = "keyward"

# DER of the named curves' OIDs (CKA_EC_PARAMS), and of Ed25519 (RFC 8410 id-Ed25519).
P256 = bytes.fromhex("06082a8648ce3d030107")
P384 = bytes.fromhex("06052b81040022")
P521 = bytes.fromhex("06052b81040023")
ED25519 = bytes.fromhex("06032b6570")
CURVES = {P256: ec.SECP256R1(), P384: ec.SECP384R1(), P521: ec.SECP521R1()}


class Checks:
    """Runs named checks; one failure does not stop the others."""

    def __init__(self):
        self.passed = []
        self.failed = []

    def run(self, name, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported by name
            self.failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=4, file=sys.stdout)
        else:
            self.passed.append(name)
            print(f"ok {name}", flush=True)


def expect(exc_type, fn, *args, **kwargs):
    """Insists that `fn(...)` raises `exc_type` (a pkcs11.exceptions class)."""
    try:
        fn(*args, **kwargs)
    except exc_type:
        return
    except pkcs11.PKCS11Error as e:
        raise AssertionError(f"expected {exc_type.__name__}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"expected {exc_type.__name__}, got success")


def expect_refused(fn, *args, **kwargs):
    """Insists that `fn(...)` raises some PKCS11Error; returns its class name."""
    try:
        fn(*args, **kwargs)
    except pkcs11.PKCS11Error as e:
        return type(e).__name__
    raise AssertionError("expected an error, got success")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def lib():
    return pkcs11.lib(os.environ["PKCS11_MODULE"])


def token():
    return lib().get_token(token_label=TOKEN)


def session(pin=None):
    """A read-write session logged in with `pin` (default: $PIN); use with `with`."""
    return token().open(user_pin=pin or os.environ["PIN"], rw=True, attribute_mapper=MAPPER)


def der_octet_string(value):
    """The contents of a DER OCTET STRING; fails when `value` is not exactly one."""
    check(value[:1] == b"\x04", f"not an OCTET STRING: {value.hex()}")
    n = value[1]
    if n < 0x80:
        body = value[2:]
    else:
        width = n & 0x7F
        n = int.from_bytes(value[2 : 2 + width], "big")
        body = value[2 + width :]
    check(len(body) == n, f"OCTET STRING length {n} != {len(body)}: {value.hex()}")
    return body


def ec_public(pub):
    """A cryptography public key from CKA_EC_PARAMS and CKA_EC_POINT (a DER OCTET STRING, as
    PKCS#11 v2.40 §2.3.3 says and OpenSSL-based callers expect)."""
    point = der_octet_string(pub[A.EC_POINT])
    return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[pub[A.EC_PARAMS]], point)


def ed25519_public(pub):
    return ed25519.Ed25519PublicKey.from_public_bytes(der_octet_string(pub[A.EC_POINT]))


def rsa_public(pub):
    n = int.from_bytes(pub[A.MODULUS], "big")
    e = int.from_bytes(pub[A.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def spki(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Attributes python-pkcs11 0.10 has no name for, read and written as bytes by number through
# the sessions' attribute mapper: CKA_PUBLIC_KEY_INFO (v2.40) and one no module knows.
CKA_PUBLIC_KEY_INFO = 0x129
CKA_VENDOR_TEST = 0x80001234
MAPPER = AttributeMapper()
for _attr in (CKA_PUBLIC_KEY_INFO, CKA_VENDOR_TEST):
    MAPPER.register_handler(_attr, bytes, bytes)


def public_key_info(obj):
    return obj[CKA_PUBLIC_KEY_INFO]


def check_public_key_info(pub, key):
    """CKA_PUBLIC_KEY_INFO is the SubjectPublicKeyInfo of the key the other attributes give."""
    got = public_key_info(pub)
    check(got == spki(key), f"CKA_PUBLIC_KEY_INFO {got.hex()} != {spki(key).hex()}")


def main(groups):
    """`module_test.py GROUP`: runs one group; exit status 1 when any check failed."""
    if len(sys.argv) != 2 or sys.argv[1] not in groups:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(groups)}}}")
    checks = Checks()
    groups[sys.argv[1]](checks)
    print(f"summary: {len(checks.passed)} passed, {len(checks.failed)} failed: {checks.failed}")
    sys.exit(1 if checks.failed else 0)
