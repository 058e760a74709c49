"""Groups `misc` (token, mechanisms, random, digests, objects, keys made by the `keyward` CLI),
`errors` (the CKR codes of the contract; KEYWARD_BIN, NODE_URL, NODE_CA and ADMIN_PASSWORD
let it ask the node for a user's failed logins) and `isolation` (bob against alice's keys)."""

import hashlib
import json
import os
import pkcs11
import subprocess
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import KeyType, ObjectClass
from pkcs11 import Attribute as A
from pkcs11 import Mechanism as M
from pkcs11 import MechanismFlag as F
from pkcs11 import exceptions as E

from p11util import (
    CKA_VENDOR_TEST, P256, check, expect, expect_refused, public_key_info, session, spki, token,
)

OFFERED = {
    M.ECDSA, M.ECDSA_SHA256, M.ECDSA_SHA384, M.ECDSA_SHA512, M.RSA_PKCS, M.SHA256_RSA_PKCS,
    M.SHA384_RSA_PKCS, M.SHA512_RSA_PKCS, M.RSA_PKCS_PSS, M.SHA256_RSA_PKCS_PSS,
    M.SHA384_RSA_PKCS_PSS, M.SHA512_RSA_PKCS_PSS, M.EDDSA, M.SHA256_HMAC, M.SHA384_HMAC,
    M.SHA512_HMAC, M.AES_GCM, M.AES_CBC_PAD, M.RSA_PKCS_OAEP, M.AES_KEY_WRAP, M.AES_KEY_WRAP_KWP,
    M.EC_KEY_PAIR_GEN, M.RSA_PKCS_KEY_PAIR_GEN, M.EC_EDWARDS_KEY_PAIR_GEN, M.AES_KEY_GEN,
    M.GENERIC_SECRET_KEY_GEN, M.SHA256, M.SHA384, M.SHA512, M.SHA_1,
}
NOT_OFFERED = (M.DES3_CBC, M._MD5, M.AES_ECB, M.AES_CTR, M.ECDSA_SHA1, M.SHA1_RSA_PKCS)


def token_and_mechanisms():
    t = token()
    check(t.label == "keyward", f"token label {t.label!r}")
    check(t.slot.slot_id == 0, f"slot id {t.slot.slot_id}")
    mechs = t.slot.get_mechanisms()
    check(not OFFERED - mechs, f"not listed: {sorted(m.name for m in OFFERED - mechs)}")
    listed = [m.name for m in NOT_OFFERED if m in mechs]
    check(not listed, f"listed but not in the contract: {listed}")
    for mech, flag in ((M.ECDSA, F.SIGN), (M.AES_GCM, F.ENCRYPT), (M.AES_KEY_WRAP, F.WRAP),
                       (M.SHA256, F.DIGEST), (M.EC_KEY_PAIR_GEN, F.GENERATE_KEY_PAIR)):
        info = t.slot.get_mechanism_info(mech)
        check(flag in info.flags, f"{mech.name} flags {info.flags}")
    rsa = t.slot.get_mechanism_info(M.RSA_PKCS_KEY_PAIR_GEN)
    check((rsa.min_key_length, rsa.max_key_length) == (2048, 4096),
          f"RSA key sizes {rsa.min_key_length}..{rsa.max_key_length}")
    expect(E.MechanismInvalid, t.slot.get_mechanism_info, M.DES3_CBC)


def random_bytes():
    with session() as s:
        a, b = s.generate_random(256), s.generate_random(256)
        check(len(a) == 32 and len(b) == 32, f"{len(a)} and {len(b)} bytes")
        check(a != b, "two draws are equal")
        check(len(s.generate_random(8 * 1000)) == 1000, "1000 bytes")


def digests():
    data = b"digest me" * 1000
    with session() as s:
        for mech, name in ((M.SHA_1, "sha1"), (M.SHA256, "sha256"), (M.SHA384, "sha384"),
                           (M.SHA512, "sha512")):
            want = hashlib.new(name, data).digest()
            check(s.digest(data, mechanism=mech) == want, f"{mech.name} single-part")
            parts = iter([data[:5], data[5:4000], data[4000:]])
            check(s.digest(parts, mechanism=mech) == want, f"{mech.name} multi-part")


def cli_keys():
    """Keys the `keyward` CLI made are objects whose handles are the node's key handles."""
    with session() as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="cli-ec")
        pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label="cli-ec")
        check(priv.handle == int(os.environ["CLI_EC_PRIV"]), f"private handle {priv.handle}")
        check(pub.handle == int(os.environ["CLI_EC_PUB"]), f"public handle {pub.handle}")
        with open(os.environ["CLI_EC_PEM"], "rb") as f:
            key = serialization.load_pem_public_key(f.read())
        check(public_key_info(pub) == spki(key), "CKA_PUBLIC_KEY_INFO != `keyward key public`")
        raw = priv.sign(b"cli", mechanism=M.ECDSA_SHA256)
        r, s_ = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        key.verify(encode_dss_signature(r, s_), b"cli", ec.ECDSA(hashes.SHA256()))
        mac_key = s.get_key(object_class=ObjectClass.SECRET_KEY, label="cli-hmac")
        mac = mac_key.sign(os.environ["HMAC_MSG"].encode(), mechanism=M.SHA256_HMAC)
        check(mac.hex() == os.environ["CLI_HMAC_HEX"], "SHA256_HMAC != `keyward crypto hmac`")


def objects():
    with session() as s:
        key = s.generate_key(KeyType.AES, 128, store=True, label="py-id", id=b"\xab\xcd",
                             capabilities=F.ENCRYPT | F.DECRYPT)
        found = {o.handle for o in s.get_objects({A.CLASS: ObjectClass.SECRET_KEY})}
        check(key.handle in found, "a new key is not found by class")
        by_id = list(s.get_objects({A.ID: b"\xab\xcd"}))
        check([o.handle for o in by_id] == [key.handle], f"by CKA_ID: {by_id}")
        labels = {o[A.LABEL] for o in s.get_objects({A.KEY_TYPE: KeyType.EC})}
        check("cli-ec" in labels and "py-id" not in labels, f"EC labels {labels}")
        doomed = s.generate_key(KeyType.AES, 128, store=True, label="py-doomed",
                                capabilities=F.ENCRYPT | F.DECRYPT)
        check(doomed[A.LABEL] == "py-doomed", "label")
        doomed.destroy()
        expect(E.NoSuchKey, s.get_key, label="py-doomed")


def run(c):
    c.run("token_and_mechanisms", token_and_mechanisms)
    c.run("random", random_bytes)
    c.run("digests", digests)
    c.run("cli_keys", cli_keys)
    c.run("objects", objects)


def mechanism_invalid():
    with session() as s:
        aes = s.generate_key(KeyType.AES, 256, store=True, label="py-err-aes",
                             capabilities=F.ENCRYPT | F.DECRYPT)
        for mech in (M.AES_ECB, M.AES_CTR, M.DES3_CBC):
            expect(E.MechanismInvalid, aes.encrypt, b"0123456789abcdef", mechanism=mech,
                   mechanism_param=bytes(16) if mech != M.AES_ECB else None)
        ec_params = s.create_domain_parameters(KeyType.EC, {A.EC_PARAMS: P256}, local=True)
        _, priv = ec_params.generate_keypair(store=True, label="py-err-ec",
                                             capabilities=F.SIGN | F.VERIFY)
        expect(E.MechanismInvalid, priv.sign, b"m", mechanism=M.ECDSA_SHA1)
        expect(E.MechanismInvalid, s.digest, b"m", mechanism=M._MD5)
        expect(E.MechanismInvalid, s.generate_key, KeyType.DES3, store=True, label="py-des3",
               mechanism=M.DES3_KEY_GEN)


def wrong_pin():
    user = os.environ["PIN"].split(":")[0]
    expect(E.PinIncorrect, session, f"{user}:not-the-password")
    with session() as s:  # the right password still works afterwards
        check(len(s.generate_random(64)) == 8, "random after a wrong PIN")


def admin_view(name):
    """The node's record of user `name` (`keyward user list --json` as the admin)."""
    out = subprocess.run(
        [os.environ["KEYWARD_BIN"], "user", "list", "--json", "--server", os.environ["NODE_URL"],
         "--ca-cert", os.environ["NODE_CA"], "--user", "admin", "--password",
         os.environ["ADMIN_PASSWORD"]],
        check=True, capture_output=True, timeout=60,
    ).stdout
    return next(u for u in json.loads(out) if u["username"] == name)


def login_outcome(pin):
    """C_Login with `pin`, waiting out the node's login throttle (after 3 failures a user name
    must wait 1 s, 2 s, 4 s, … between attempts: CKR_PIN_LOCKED meanwhile): the exception
    class of the first attempt the node judged, or None when it logged in."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with session(pin):
                return None
        except E.PinLocked:
            check(time.monotonic() < deadline, "still throttled after 60 s")
            time.sleep(0.25)
        except pkcs11.PKCS11Error as e:
            return type(e)


def lockout():
    """The server locks a user after 5 failed logins. One C_Login is one login on the node
    (no retries that would lock a user sooner). A locked user's correct PIN then gets
    CKR_PIN_INCORRECT, as a wrong one does: the node does not tell anyone who tries
    passwords which user is locked. While the node throttles a name after failures, C_Login
    gets CKR_PIN_LOCKED. An admin's `keyward user unlock` (a new password) lets the user in
    again."""
    pin = os.environ["CAROL_PIN"]
    user = pin.split(":")[0]
    wrong = user + ":not-the-password"
    for attempt in range(1, 6):
        got = login_outcome(wrong)
        check(got is E.PinIncorrect, f"wrong PIN {attempt}: {got}")
        seen = admin_view(user)["failed_logins"]
        check(seen == attempt, f"after {attempt} wrong PINs the node counts {seen}")
    check(admin_view(user)["locked"], "the node has not locked the user after 5 failures")
    got = login_outcome(pin)
    check(got is E.PinIncorrect, f"the locked user's right PIN: {got}")
    new_password = "carol-new-password"
    pw_file = os.path.join(os.environ["WORK_DIR"], "carol-new.pw")
    with open(pw_file, "w") as f:
        f.write(new_password + "\n")
    subprocess.run(
        [os.environ["KEYWARD_BIN"], "user", "unlock", "--name", user, "--password-file", pw_file,
         "--server", os.environ["NODE_URL"], "--ca-cert", os.environ["NODE_CA"], "--user", "admin",
         "--password", os.environ["ADMIN_PASSWORD"]],
        check=True, capture_output=True, timeout=60,
    )
    check(login_outcome(f"{user}:{new_password}") is None, "no login after unlock")


def sensitive():
    with session() as s:
        fixed = s.generate_key(KeyType.AES, 256, store=True, label="py-sens",
                               capabilities=F.ENCRYPT | F.DECRYPT)
        check(fixed[A.EXTRACTABLE] is False and fixed[A.SENSITIVE] is True, "defaults")
        expect(E.AttributeSensitive, lambda: fixed[A.VALUE])
        loose = s.generate_key(KeyType.AES, 256, store=True, label="py-sens-x",
                               capabilities=F.ENCRYPT | F.DECRYPT, template={A.EXTRACTABLE: True})
        expect(E.AttributeSensitive, lambda: loose[A.VALUE])
        ec_params = s.create_domain_parameters(KeyType.EC, {A.EC_PARAMS: P256}, local=True)
        _, priv = ec_params.generate_keypair(store=True, label="py-sens-ec",
                                             capabilities=F.SIGN | F.VERIFY)
        expect(E.AttributeSensitive, lambda: priv[A.VALUE])


def unknown_attribute():
    vendor = CKA_VENDOR_TEST
    with session() as s:
        expect(E.AttributeTypeInvalid, s.generate_key, KeyType.AES, 128, store=True,
               label="py-vendor", template={vendor: b"x"})
        key = s.generate_key(KeyType.AES, 128, store=True, label="py-plain",
                             capabilities=F.ENCRYPT | F.DECRYPT)
        expect(E.AttributeTypeInvalid, lambda: key[vendor])


def run_errors(c):
    c.run("mechanism_invalid", mechanism_invalid)
    c.run("pin_incorrect", wrong_pin)
    c.run("pin_locked_after_five_failures", lockout)
    c.run("attribute_sensitive", sensitive)
    c.run("attribute_type_invalid", unknown_attribute)


def isolation():
    """Run as bob: alice's keys (ALICE_HANDLES, ALICE_LABELS) are not his objects."""
    handles = {int(h) for h in os.environ["ALICE_HANDLES"].split(",")}
    labels = os.environ["ALICE_LABELS"].split(",")
    with session() as s:
        mine = s.generate_key(KeyType.AES, 128, store=True, label="bob-aes",
                              capabilities=F.ENCRYPT | F.DECRYPT)
        seen = {o.handle: o[A.LABEL] for o in s.get_objects()}
        check(mine.handle in seen, "bob does not see his own key")
        check(not handles & set(seen), f"bob sees alice's handles {handles & set(seen)}")
        for label in labels:
            check(not list(s.get_objects({A.LABEL: label})), f"bob finds {label!r}")
            expect(E.NoSuchKey, s.get_key, label=label)


def run_isolation(c):
    c.run("isolation", isolation)
