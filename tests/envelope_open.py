"""Opens a Keyward envelope (README "Envelope encryption", format version 1) without Keyward:
the independent check of tests/envelope_e2e.rs. Python's `cryptography` (AESGCM) decrypts the
chunks; openssl unwraps the data key (the test runs it between the two steps).

    envelope_open.py wrapped ENVELOPE OUT   # writes the wrapped data key from the header
    envelope_open.py open ENVELOPE DATAKEY OUT  # decrypts every chunk with the data key
"""

import hashlib
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def read_header(data):
    if data[:6] != b"KWENV\n" or data[6] != 1:
        raise SystemExit("not a version 1 envelope")
    chunk_bytes = struct.unpack(">I", data[8:12])[0]
    label_len = data[24]
    at = 25 + label_len
    wrapped_len = struct.unpack(">H", data[at : at + 2])[0]
    wrapped = data[at + 2 : at + 2 + wrapped_len]
    prefix = data[at + 2 + wrapped_len : at + 2 + wrapped_len + 7]
    header_len = 34 + label_len + wrapped_len
    return data[:header_len], chunk_bytes, wrapped, prefix


def main():
    mode, envelope = sys.argv[1], open(sys.argv[2], "rb").read()
    header, chunk_bytes, wrapped, prefix = read_header(envelope)
    if mode == "wrapped":
        open(sys.argv[3], "wb").write(wrapped)
        return
    unwrapped = open(sys.argv[3], "rb").read()
    # What is wrapped: the tag "KWDK" 0x01, then the data key.
    assert unwrapped[:5] == b"KWDK\x01", unwrapped[:5]
    key = unwrapped[5:]
    assert len(key) == 32, len(key)
    aead, aad = AESGCM(key), hashlib.sha256(header).digest()
    body, sealed, out, index = envelope[len(header) :], chunk_bytes + 16, [], 0
    while True:
        last = len(body) <= sealed
        piece, body = body[:sealed], body[sealed:]
        nonce = prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")
        out.append(aead.decrypt(nonce, piece, aad))
        index += 1
        if last:
            break
    open(sys.argv[4], "wb").write(b"".join(out))
    print(f"{index} chunks")


main()
