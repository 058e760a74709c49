"""Group `sign`: key pair generation and every signature and MAC mechanism, each signature
verified by the module and, for public-key ones, independently by `cryptography`."""

import hashlib

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import MGF, KeyType, ObjectClass
from pkcs11 import Attribute as A
from pkcs11 import Mechanism as M
from pkcs11 import MechanismFlag as F

from p11util import (
    ED25519, P256, P384, P521, check, check_public_key_info, ec_public, ed25519_public,
    expect_refused, rsa_public, session,
)

MSG = b"a message signed through the Keyward PKCS#11 module"
SIGN_VERIFY = F.SIGN | F.VERIFY
HASHES = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def ec_pair(s, params, label, id_, mechanism=None):
    dp = s.create_domain_parameters(
        KeyType.EC_EDWARDS if params == ED25519 else KeyType.EC, {A.EC_PARAMS: params}, local=True
    )
    return dp.generate_keypair(
        store=True, label=label, id=id_, capabilities=SIGN_VERIFY, mechanism=mechanism
    )


def der_sig(raw):
    half = len(raw) // 2
    r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    return encode_dss_signature(r, s)


def ecdsa_check(pub, key, name, digest, raw):
    size = {"secp256r1": 64, "secp384r1": 96, "secp521r1": 132}[key.curve.name]
    check(len(raw) == size, f"r||s of {key.curve.name} is {size} bytes, got {len(raw)}")
    key.verify(der_sig(raw), digest, ec.ECDSA(Prehashed(HASHES[name])))
    check(pub.verify(digest, raw, mechanism=M.ECDSA), f"module rejects its ECDSA/{name}")
    other = hashlib.new(name, b"x").digest()
    check(not pub.verify(other, raw, mechanism=M.ECDSA), "module accepts another digest")


def ecdsa_matching_hashes():
    """Each curve with the hash of its size (P-521 with SHA-512), raw and hashing mechanisms."""
    with session() as s:
        for params, label, id_, name, mech in (
            (P256, "py-ec256", b"\x11", "sha256", M.ECDSA_SHA256),
            (P384, "py-ec384", b"\x12", "sha384", M.ECDSA_SHA384),
            (P521, "py-ec521", b"\x13", "sha512", M.ECDSA_SHA512),
        ):
            pub, priv = ec_pair(s, params, label, id_)
            key = ec_public(pub)
            check_public_key_info(pub, key)
            digest = hashlib.new(name, MSG).digest()
            ecdsa_check(pub, key, name, digest, priv.sign(digest, mechanism=M.ECDSA))
            raw = priv.sign(MSG, mechanism=mech)
            key.verify(der_sig(raw), MSG, ec.ECDSA(HASHES[name]))
            check(pub.verify(MSG, raw, mechanism=mech), f"module rejects {mech.name}")
        # A SHA-1 digest (20 bytes) is signed as its value (FIPS 186-5 §6.4.1) and verifies.
        sha1 = hashlib.sha1(MSG).digest()
        ecdsa_check(pub, key, "sha1", sha1, priv.sign(sha1, mechanism=M.ECDSA))
        print("  ECDSA over a 19-byte input:",
              expect_refused(priv.sign, sha1[:19], mechanism=M.ECDSA))


def ecdsa_any_hash_any_curve():
    """CKM_ECDSA takes a hash of 32, 48 or 64 bytes on every curve (a longer one is truncated
    to the order's size, FIPS 186-4 §6.4), and CKM_ECDSA_SHA* go with every curve."""
    refused = []
    with session() as s:
        for params in (P256, P384, P521):
            pub, priv = ec_pair(s, params, f"py-ec-any-{params.hex()}", b"")
            key = ec_public(pub)
            for name, mech in (("sha256", M.ECDSA_SHA256), ("sha384", M.ECDSA_SHA384),
                               ("sha512", M.ECDSA_SHA512)):
                digest = hashlib.new(name, MSG).digest()
                try:
                    ecdsa_check(pub, key, name, digest, priv.sign(digest, mechanism=M.ECDSA))
                    key.verify(der_sig(priv.sign(MSG, mechanism=mech)), MSG, ec.ECDSA(HASHES[name]))
                except pkcs11.PKCS11Error as e:
                    refused.append(f"{key.curve.name}+{name}: {type(e).__name__}")
    check(not refused, f"refused: {refused}")


def ec_attributes():
    with session() as s:
        pub, priv = ec_pair(s, P256, "py-ec-attrs", b"\x14")
        want_priv = {
            A.CLASS: ObjectClass.PRIVATE_KEY, A.KEY_TYPE: KeyType.EC, A.LABEL: "py-ec-attrs",
            A.ID: b"\x14", A.TOKEN: True, A.PRIVATE: True, A.SIGN: True, A.DECRYPT: False,
            A.DERIVE: False, A.UNWRAP: False, A.SENSITIVE: True, A.EXTRACTABLE: False,
            A.ALWAYS_SENSITIVE: True, A.NEVER_EXTRACTABLE: True, A.LOCAL: True,
            A.DESTROYABLE: True,
        }
        want_pub = {
            A.CLASS: ObjectClass.PUBLIC_KEY, A.KEY_TYPE: KeyType.EC, A.LABEL: "py-ec-attrs",
            A.ID: b"\x14", A.TOKEN: True, A.VERIFY: True, A.ENCRYPT: False, A.WRAP: False,
            A.EC_PARAMS: P256, A.LOCAL: True,
        }
        for obj, want in ((priv, want_priv), (pub, want_pub)):
            got = obj.get_attributes(list(want))
            bad = {k.name: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
            check(not bad, f"attributes (got, wanted): {bad}")
        check(priv.handle != pub.handle, "one handle for both halves")
        # The same key found again by its attributes.
        again = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="py-ec-attrs")
        check(again.handle == priv.handle, f"handle {again.handle} != {priv.handle}")


def rsa_signatures():
    with session() as s:
        pub, priv = s.generate_keypair(
            KeyType.RSA, 2048, store=True, label="py-rsa2048", id=b"\x21", capabilities=SIGN_VERIFY
        )
        check(pub[A.MODULUS_BITS] == 2048, f"CKA_MODULUS_BITS {pub[A.MODULUS_BITS]}")
        check(pub[A.PUBLIC_EXPONENT].lstrip(b"\0") == b"\x01\x00\x01", "e is not 65537")
        check(len(pub[A.MODULUS]) == 256, f"modulus of {len(pub[A.MODULUS])} bytes")
        key = rsa_public(pub)
        check_public_key_info(pub, key)
        for name, mech in (("sha256", M.SHA256_RSA_PKCS), ("sha384", M.SHA384_RSA_PKCS),
                           ("sha512", M.SHA512_RSA_PKCS)):
            sig = priv.sign(MSG, mechanism=mech)
            key.verify(sig, MSG, padding.PKCS1v15(), HASHES[name])
            check(pub.verify(MSG, sig, mechanism=mech), f"module rejects {mech.name}")
            check(not pub.verify(MSG + b"!", sig, mechanism=mech), f"{mech.name} accepts a change")
        # CKM_RSA_PKCS over a DigestInfo: byte for byte the SHA256_RSA_PKCS signature.
        prefix = bytes.fromhex("3031300d060960864801650304020105000420")
        info = prefix + hashlib.sha256(MSG).digest()
        check(priv.sign(info, mechanism=M.RSA_PKCS) == priv.sign(MSG, mechanism=M.SHA256_RSA_PKCS),
              "RSA_PKCS over the DigestInfo differs from SHA256_RSA_PKCS")


def rsa_pss():
    with session() as s:
        pub, priv = s.generate_keypair(
            KeyType.RSA, 2048, store=True, label="py-rsa-pss", id=b"\x22", capabilities=SIGN_VERIFY
        )
        key = rsa_public(pub)
        params = {
            "sha256": (M.SHA256, MGF.SHA256, 32), "sha384": (M.SHA384, MGF.SHA384, 48),
            "sha512": (M.SHA512, MGF.SHA512, 64),
        }
        mechs = {"sha256": M.SHA256_RSA_PKCS_PSS, "sha384": M.SHA384_RSA_PKCS_PSS,
                 "sha512": M.SHA512_RSA_PKCS_PSS}
        for name, p in params.items():
            pss = padding.PSS(mgf=padding.MGF1(HASHES[name]), salt_length=p[2])
            sig = priv.sign(MSG, mechanism=mechs[name], mechanism_param=p)
            key.verify(sig, MSG, pss, HASHES[name])
            check(pub.verify(MSG, sig, mechanism=mechs[name], mechanism_param=p),
                  f"module rejects {mechs[name].name}")
            digest = hashlib.new(name, MSG).digest()
            sig = priv.sign(digest, mechanism=M.RSA_PKCS_PSS, mechanism_param=p)
            key.verify(sig, digest, pss, Prehashed(HASHES[name]))
        # The salt must be as long as the hash.
        refusal = expect_refused(priv.sign, MSG, mechanism=M.SHA256_RSA_PKCS_PSS,
                                 mechanism_param=(M.SHA256, MGF.SHA256, 20))
        print("  PSS with a 20-byte salt:", refusal)


def rsa_sizes():
    with session() as s:
        for bits, id_ in ((3072, b"\x23"), (4096, b"\x24")):
            pub, priv = s.generate_keypair(
                KeyType.RSA, bits, store=True, label=f"py-rsa{bits}", id=id_,
                capabilities=SIGN_VERIFY,
            )
            check(pub[A.MODULUS_BITS] == bits, f"CKA_MODULUS_BITS {pub[A.MODULUS_BITS]} != {bits}")
            sig = priv.sign(MSG, mechanism=M.SHA256_RSA_PKCS)
            check(len(sig) == bits // 8, f"signature of {len(sig)} bytes")
            rsa_public(pub).verify(sig, MSG, padding.PKCS1v15(), hashes.SHA256())


def ed25519_signatures():
    with session() as s:
        pub, priv = ec_pair(s, ED25519, "py-ed25519", b"\x31", mechanism=M.EC_EDWARDS_KEY_PAIR_GEN)
        check(priv[A.KEY_TYPE] == KeyType.EC_EDWARDS, f"CKA_KEY_TYPE {priv[A.KEY_TYPE]}")
        key = ed25519_public(pub)
        check_public_key_info(pub, key)
        sig = priv.sign(MSG, mechanism=M.EDDSA)
        check(len(sig) == 64, f"Ed25519 signature of {len(sig)} bytes")
        key.verify(sig, MSG)
        check(pub.verify(MSG, sig, mechanism=M.EDDSA), "module rejects its EdDSA signature")
        check(not pub.verify(MSG + b"!", sig, mechanism=M.EDDSA), "EdDSA accepts a change")


def hmac():
    with session() as s:
        key = s.generate_key(
            KeyType.GENERIC_SECRET, 256, store=True, label="py-hmac", id=b"\x41",
            capabilities=SIGN_VERIFY, mechanism=M.GENERIC_SECRET_KEY_GEN,
        )
        check(key[A.VALUE_LEN] == 32, f"CKA_VALUE_LEN {key[A.VALUE_LEN]}")
        for mech, size in ((M.SHA256_HMAC, 32), (M.SHA384_HMAC, 48), (M.SHA512_HMAC, 64)):
            mac = key.sign(MSG, mechanism=mech)
            check(len(mac) == size, f"{mech.name}: {len(mac)} bytes")
            check(key.sign(MSG, mechanism=mech) == mac, f"{mech.name} is not deterministic")
            check(key.sign(MSG + b"!", mechanism=mech) != mac, f"{mech.name} ignores the message")
            check(key.verify(MSG, mac, mechanism=mech), f"module rejects its {mech.name}")
            check(not key.verify(MSG + b"!", mac, mechanism=mech), f"{mech.name} accepts a change")


def run(c):
    c.run("ecdsa_matching_hashes", ecdsa_matching_hashes)
    c.run("ecdsa_any_hash_any_curve", ecdsa_any_hash_any_curve)
    c.run("ec_attributes", ec_attributes)
    c.run("rsa_pkcs1_signatures", rsa_signatures)
    c.run("rsa_pss_signatures", rsa_pss)
    c.run("rsa_3072_4096", rsa_sizes)
    c.run("ed25519", ed25519_signatures)
    c.run("hmac", hmac)
