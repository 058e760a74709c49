"""Group `cipher`: AES-GCM and AES-CBC-PAD round trips with the caller's IV (and, for GCM,
an all-zero IV replaced by a random one written into CK_GCM_PARAMS.pIv during
C_EncryptInit, as AWS CloudHSM's library does), RSA-OAEP, AES key wrapping (RFC 3394 and
RFC 5649)."""
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import MGF, KeyType, ObjectClass
from pkcs11 import Attribute as A
from pkcs11 import Mechanism as M
from pkcs11 import MechanismFlag as F
from pkcs11 import exceptions as E
from pkcs11.mechanisms import GCMParams

from p11util import check, der_octet_string, expect, expect_refused, rsa_public, session

PLAIN = b"forty bytes of plaintext for the module."
CRYPT = F.ENCRYPT | F.DECRYPT


def fresh(n):
    """A new zeroed `bytes` of n bytes. python-pkcs11 passes a `bytes` IV by pointer, so the
    IV the module writes back (CK_GCM_PARAMS.pIv) lands in this object: it must be a
    private one, never shared or interned."""
    return bytes(bytearray(n))


def copy_of(b):
    return bytes(bytearray(b))


def aes_key(s, bits, label, id_, capabilities=CRYPT, template=None):
    return s.generate_key(
        KeyType.AES, bits, store=True, label=label, id=id_, capabilities=capabilities,
        template=template,
    )


def gcm_encrypt(key, plain, aad):
    iv = fresh(12)
    ct = key.encrypt(plain, mechanism=M.AES_GCM, mechanism_param=GCMParams(iv, aad, 128))
    return copy_of(iv), ct


def aes_gcm():
    with session() as s:
        for bits, id_ in ((128, b"\x51"), (192, b"\x52"), (256, b"\x53")):
            key = aes_key(s, bits, f"py-gcm{bits}", id_)
            check(key[A.VALUE_LEN] == bits // 8, f"CKA_VALUE_LEN {key[A.VALUE_LEN]}")
            aad = b"header"
            iv, ct = gcm_encrypt(key, PLAIN, aad)
            check(iv != bytes(12), "the module did not write the HSM's IV into pIv")
            check(len(ct) == len(PLAIN) + 16, f"ciphertext+tag of {len(ct)} bytes")
            back = key.decrypt(ct, mechanism=M.AES_GCM, mechanism_param=GCMParams(iv, aad, 128))
            check(back == PLAIN, f"AES-{bits}-GCM round trip gave {back!r}")
            iv2, ct2 = gcm_encrypt(key, PLAIN, aad)
            check(iv2 != iv and ct2 != ct, "two encryptions share an IV")
            # A caller's (non-zero) IV is used as given: the buffer is unchanged, the same IV
            # gives the same ciphertext, and only that IV decrypts it.
            mine = os.urandom(12)
            given = copy_of(mine)
            ct3 = key.encrypt(PLAIN, mechanism=M.AES_GCM, mechanism_param=GCMParams(given, aad, 128))
            check(given == mine, "the module changed a caller's non-zero IV")
            again = key.encrypt(PLAIN, mechanism=M.AES_GCM,
                                mechanism_param=GCMParams(copy_of(mine), aad, 128))
            check(again == ct3, "the caller's GCM IV was not used")
            back3 = key.decrypt(ct3, mechanism=M.AES_GCM, mechanism_param=GCMParams(mine, aad, 128))
            check(back3 == PLAIN, "AES-GCM with the caller's IV")
            expect_refused(key.decrypt, ct3, mechanism=M.AES_GCM,
                           mechanism_param=GCMParams(iv, aad, 128))
            tampered = bytes([ct[0] ^ 1]) + ct[1:]
            refusal = expect_refused(key.decrypt, tampered, mechanism=M.AES_GCM,
                                     mechanism_param=GCMParams(iv, aad, 128))
            print(f"  AES-{bits}-GCM tampered ciphertext:", refusal)
            expect_refused(key.decrypt, ct, mechanism=M.AES_GCM,
                           mechanism_param=GCMParams(iv, b"other", 128))
        # No AAD at all.
        iv, ct = gcm_encrypt(key, PLAIN, None)
        back = key.decrypt(ct, mechanism=M.AES_GCM, mechanism_param=GCMParams(iv, None, 128))
        check(back == PLAIN, "AES-GCM without AAD")


def aes_cbc_pad():
    with session() as s:
        key = aes_key(s, 256, "py-cbc", b"\x54")
        for plain in (PLAIN, b"", b"sixteen bytes!!!"):
            iv = os.urandom(16)
            given = copy_of(iv)
            ct = key.encrypt(plain, mechanism=M.AES_CBC_PAD, mechanism_param=given)
            check(given == iv, "the module changed the caller's CBC IV")
            again = key.encrypt(plain, mechanism=M.AES_CBC_PAD, mechanism_param=copy_of(iv))
            check(again == ct, "the caller's CBC IV was not used")
            want = (len(plain) // 16 + 1) * 16
            check(len(ct) == want, f"{len(plain)} bytes encrypt to {len(ct)}, not {want}")
            back = key.decrypt(ct, mechanism=M.AES_CBC_PAD, mechanism_param=iv)
            check(back == plain, f"AES-CBC-PAD round trip gave {back!r}")
            # Decryption takes the given IV: another IV changes the first block only.
            other = bytes([iv[0] ^ 0x80]) + iv[1:]
            if plain:
                changed = key.decrypt(ct, mechanism=M.AES_CBC_PAD, mechanism_param=other)
                check(changed[0] == plain[0] ^ 0x80 and changed[1:] == plain[1:],
                      "decryption ignores the given IV")


def oaep_pair(s):
    try:
        return s.get_key(object_class=ObjectClass.PUBLIC_KEY, label="py-rsa-oaep"), s.get_key(
            object_class=ObjectClass.PRIVATE_KEY, label="py-rsa-oaep")
    except E.NoSuchKey:
        return s.generate_keypair(
            KeyType.RSA, 3072, store=True, label="py-rsa-oaep", id=b"\x61", capabilities=CRYPT
        )


OAEP = ((hashes.SHA256(), M.SHA256, MGF.SHA256), (hashes.SHA384(), M.SHA384, MGF.SHA384),
        (hashes.SHA512(), M.SHA512, MGF.SHA512))


def rsa_oaep_decrypt():
    """The module decrypts what `cryptography` encrypted to its public key."""
    with session() as s:
        pub, priv = oaep_pair(s)
        key = rsa_public(pub)
        for h, mech, mgf in OAEP:
            oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
            back = priv.decrypt(key.encrypt(PLAIN, oaep), mechanism=M.RSA_PKCS_OAEP,
                                mechanism_param=(mech, mgf, None))
            check(back == PLAIN, f"OAEP/{h.name}: gave {back!r}")
        ct = key.encrypt(PLAIN, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
        print("  OAEP with SHA-1 (not offered):", expect_refused(
            priv.decrypt, ct, mechanism=M.RSA_PKCS_OAEP, mechanism_param=(M.SHA_1, MGF.SHA1, None)))
        # CKM_RSA_PKCS is for signatures only.
        ct = key.encrypt(PLAIN, padding.PKCS1v15())
        print("  RSA_PKCS decryption:", expect_refused(priv.decrypt, ct, mechanism=M.RSA_PKCS))


def rsa_oaep_encrypt():
    """C_Encrypt with the public key object, then C_Decrypt."""
    with session() as s:
        pub, priv = oaep_pair(s)
        for h, mech, mgf in OAEP:
            param = (mech, mgf, None)
            ct = pub.encrypt(PLAIN, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param)
            check(len(ct) == 384, f"OAEP ciphertext of {len(ct)} bytes")
            back = priv.decrypt(ct, mechanism=M.RSA_PKCS_OAEP, mechanism_param=param)
            check(back == PLAIN, f"OAEP/{h.name}: gave {back!r}")


def aes_wrap():
    with session() as s:
        kek = aes_key(s, 256, "py-kek", b"\x71", capabilities=F.WRAP | F.UNWRAP)
        payload = aes_key(s, 256, "py-payload", b"\x72", template={A.EXTRACTABLE: True})
        check(payload[A.EXTRACTABLE] is True, "the payload is not extractable")
        iv, ct = gcm_encrypt(payload, PLAIN, b"")
        check_value = payload[A.CHECK_VALUE]
        check(len(check_value) == 3, f"CKA_CHECK_VALUE of {len(check_value)} bytes")
        for mech, label, id_ in ((M.AES_KEY_WRAP, "py-unwrapped", b"\x73"),
                                 (M.AES_KEY_WRAP_KWP, "py-unwrapped-kwp", b"\x74")):
            wrapped = kek.wrap_key(payload, mechanism=mech)
            check(len(wrapped) == 40, f"{mech.name}: {len(wrapped)} bytes, not 32 + 8")
            copy = kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, label=label,
                                  id=id_, store=True, capabilities=CRYPT, mechanism=mech)
            back = copy.decrypt(ct, mechanism=M.AES_GCM, mechanism_param=GCMParams(iv, b"", 128))
            check(back == PLAIN, f"{mech.name}: the unwrapped key decrypts to {back!r}")
            check(copy[A.CHECK_VALUE] == check_value, f"{mech.name}: CKA_CHECK_VALUE differs")
            check(copy[A.LOCAL] is False, f"{mech.name}: an unwrapped key says CKA_LOCAL")
            check(copy[A.VALUE_LEN] == 32, f"{mech.name}: CKA_VALUE_LEN {copy[A.VALUE_LEN]}")
            # A flipped byte does not unwrap (RFC 3394 §2.2.3 integrity check).
            bad = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
            expect_refused(kek.unwrap_key, ObjectClass.SECRET_KEY, KeyType.AES, bad,
                           label=label + "-bad", store=True, capabilities=CRYPT, mechanism=mech)
        stuck = aes_key(s, 256, "py-stuck", b"\x75")
        check(stuck[A.EXTRACTABLE] is False, "an AES key is extractable by default")
        expect(E.KeyUnextractable, kek.wrap_key, stuck, mechanism=M.AES_KEY_WRAP)


def ecdh_derive():
    """CKM_ECDH1_DERIVE with CKD_NULL: the derived key is the shared secret Z. Checked against
    `cryptography`'s ECDH from a local peer key (an HMAC with the derived key equals one with
    Z computed here), and two token keys deriving from each other agree."""
    from cryptography.hazmat.primitives import hmac as chmac
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from pkcs11 import KDF
    from p11util import P256, ec_public

    with session() as s:
        dp = s.create_domain_parameters(KeyType.EC, {A.EC_PARAMS: P256}, local=True)
        pairs = [
            dp.generate_keypair(store=True, label=f"py-ecdh-{n}", capabilities=F.DERIVE)
            for n in ("a", "b")
        ]
        (a_pub, a_priv), (b_pub, b_priv) = pairs
        local = ec.generate_private_key(ec.SECP256R1())
        point = local.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        z = local.exchange(ec.ECDH(), ec_public(a_pub))
        key = a_priv.derive_key(
            KeyType.GENERIC_SECRET, 256, label="py-ecdh-z", capabilities=F.SIGN | F.VERIFY,
            mechanism=M.ECDH1_DERIVE, mechanism_param=(KDF.NULL, None, point),
        )
        mac = chmac.HMAC(z, hashes.SHA256())
        mac.update(PLAIN)
        check(key.sign(PLAIN, mechanism=M.SHA256_HMAC) == mac.finalize(),
              "the derived key is not the shared secret")
        # The two token keys, each with the other's public point: the same AES key.
        def aes_from(priv, pub, label):
            other = der_octet_string(pub[A.EC_POINT])
            return priv.derive_key(KeyType.AES, 256, label=label, capabilities=CRYPT,
                                   mechanism=M.ECDH1_DERIVE, mechanism_param=(KDF.NULL, None, other))
        ka, kb = aes_from(a_priv, b_pub, "py-ecdh-ab"), aes_from(b_priv, a_pub, "py-ecdh-ba")
        iv, ct = gcm_encrypt(ka, PLAIN, b"")
        back = kb.decrypt(ct, mechanism=M.AES_GCM, mechanism_param=GCMParams(iv, None, 128))
        check(back == PLAIN, "the two sides derived different keys")
        expect(E.MechanismParamInvalid, a_priv.derive_key, KeyType.AES, 256, label="py-x963",
               capabilities=CRYPT, mechanism=M.ECDH1_DERIVE,
               mechanism_param=(KDF.SHA256, None, point))


def run(c):
    c.run("ecdh_derive", ecdh_derive)
    c.run("aes_gcm", aes_gcm)
    c.run("aes_cbc_pad", aes_cbc_pad)
    c.run("rsa_oaep_decrypt", rsa_oaep_decrypt)
    c.run("rsa_oaep_encrypt", rsa_oaep_encrypt)
    c.run("aes_key_wrap", aes_wrap)
