//! OpenSC's `pkcs11-tool` (Debian bookworm: opensc 0.23.0) with `--module` on the Keyward
//! module: listing, key generation, signatures checked by `openssl`, decryption, wrapping,
//! deletion, its fork test and its self-test.
//!
//! What pkcs11-tool 0.23 cannot do here: `--encrypt` knows only AES-ECB/CBC/CBC-PAD (no
//! RSA-OAEP, no AES-GCM), and it has no way to read back the IV that the HSM picks for an
//! AES-CBC-PAD encryption (the module writes it into the parameter buffer, which pkcs11-tool
//! drops), so its CBC round trip can only compare the blocks after the first. It has no
//! name for CKM_AES_KEY_WRAP_KWP (`-M` prints `mechtype-0x210B`; `-m 0x210B` selects it).

use crate::common::*;

/// The values of the lines `KEY: value` of pkcs11-tool's output, in order.
fn values<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.trim_start().strip_prefix(key))
        .filter_map(|rest| rest.trim_start().strip_prefix(':'))
        .map(str::trim)
        .collect()
}

/// `-M` output: each mechanism's name with the rest of its line (key sizes and flags).
fn mechanisms(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(',').unwrap_or((l, ""));
            (name.to_owned(), rest.to_owned())
        })
        .collect()
}

#[test]
fn pkcs11_tool_lists_slots_tokens_and_mechanisms() {
    let lab = Lab::new();
    let info = lab.tool(&["-I"]).ok("pkcs11-tool -I");
    assert!(info.contains("Cryptoki version 2.40"), "{info}");

    // One slot per [[token]], numbered from 0.
    let two = lab.write_conf("two.toml", &[TOKEN, "keyward-two"]);
    let slots = lab.tool_with_conf(&two, &["-L"]).ok("pkcs11-tool -L");
    assert!(
        slots.contains("Slot 0 (0x0)") && slots.contains("Slot 1 (0x1)"),
        "{slots}"
    );
    assert_eq!(
        values(&slots, "token label"),
        [TOKEN, "keyward-two"],
        "{slots}"
    );

    let out = lab
        .tool(&["--token-label", TOKEN, "-M"])
        .ok("pkcs11-tool -M");
    let mechs = mechanisms(&out);
    let flags = |name: &str| -> &str {
        &mechs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"))
            .1
    };
    // pkcs11-tool names CKM_EC_KEY_PAIR_GEN "ECDSA-KEY-PAIR-GEN" (the same value, 0x1040).
    for (name, wanted) in [
        ("ECDSA", &["sign"][..]),
        ("ECDSA-SHA256", &["sign"]),
        ("ECDSA-SHA384", &["sign"]),
        ("ECDSA-SHA512", &["sign"]),
        ("RSA-PKCS", &["sign"]),
        ("SHA256-RSA-PKCS", &["sign"]),
        ("SHA384-RSA-PKCS", &["sign"]),
        ("SHA512-RSA-PKCS", &["sign"]),
        ("RSA-PKCS-PSS", &["sign"]),
        ("SHA256-RSA-PKCS-PSS", &["sign"]),
        ("SHA384-RSA-PKCS-PSS", &["sign"]),
        ("SHA512-RSA-PKCS-PSS", &["sign"]),
        ("EDDSA", &["sign"]),
        ("SHA256-HMAC", &["sign"]),
        ("SHA384-HMAC", &["sign"]),
        ("SHA512-HMAC", &["sign"]),
        ("AES-GCM", &["encrypt", "decrypt"]),
        ("AES-CBC-PAD", &["encrypt", "decrypt"]),
        ("RSA-PKCS-OAEP", &["decrypt"]),
        ("AES-KEY-WRAP", &["wrap", "unwrap"]),
        ("mechtype-0x210B", &["wrap", "unwrap"]),
        ("ECDSA-KEY-PAIR-GEN", &["generate_key_pair"]),
        ("RSA-PKCS-KEY-PAIR-GEN", &["generate_key_pair"]),
        ("EC-EDWARDS-KEY-PAIR-GEN", &["generate_key_pair"]),
        ("AES-KEY-GEN", &["generate"]),
        ("GENERIC-SECRET-KEY-GEN", &["generate"]),
        ("SHA256", &["digest"]),
        ("SHA384", &["digest"]),
        ("SHA512", &["digest"]),
        ("SHA-1", &["digest"]),
        ("ECDH1-DERIVE", &["derive"]),
    ] {
        let f = flags(name);
        for w in wanted {
            assert!(f.contains(w), "{name} lacks flag {w}: {f:?}\n{out}");
        }
    }
    // CKM_RSA_PKCS is for signatures only.
    assert!(!flags("RSA-PKCS").contains("decrypt"), "{out}");
    for absent in ["DES3-CBC", "MD5", "AES-ECB", "AES-CTR", "SHA-1-HMAC"] {
        assert!(
            mechs.iter().all(|(n, _)| n != absent),
            "{absent} listed:\n{out}"
        );
    }
}

/// pkcs11-tool's `Signature is valid` / `Invalid signature` verdict for `args`.
fn tool_verifies(lab: &Lab, args: &str) -> bool {
    let out = lab.alice(&format!("--verify {args}"));
    match (
        out.contains("Signature is valid"),
        out.contains("Invalid signature"),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("no verdict from pkcs11-tool --verify {args}:\n{out}"),
    }
}

/// A SHA-256 DigestInfo (RFC 8017 §9.2 note 1) of `data`: the input of CKM_RSA_PKCS.
fn digest_info_sha256(data: &[u8]) -> Vec<u8> {
    let mut info =
        b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20".to_vec();
    info.extend(sha256(data));
    info
}

#[test]
fn pkcs11_tool_makes_ec_keys_whose_signatures_verify_in_openssl() {
    let lab = Lab::new();
    let text = b"a message for the Keyward PKCS#11 module\n";
    lab.file("msg", text);
    lab.file("msg.sha256", &sha256(text));
    lab.file("other.sha256", &sha256(b"another message"));
    let (msg, digest, other) = (
        lab.path("msg"),
        lab.path("msg.sha256"),
        lab.path("other.sha256"),
    );

    let out = lab.alice("--keypairgen --key-type EC:prime256v1 --label ec1 --id 01");
    assert!(
        out.contains("Private Key Object; EC") && out.contains("Public Key Object; EC"),
        "{out}"
    );
    assert_eq!(values(&out, "label"), ["ec1", "ec1"], "{out}");
    assert_eq!(values(&out, "ID"), ["01", "01"], "{out}");
    let der = lab.path("ec1.der");
    lab.alice(&format!("--read-object --type pubkey --id 01 -o {der}"));
    let public = der_to_pem(&der);

    // Raw ECDSA over a digest, in DER (`openssl`) format.
    let sig = lab.path("ec1.sig");
    lab.alice(&format!(
        "--sign --id 01 -m ECDSA --signature-format openssl -i {digest} -o {sig}"
    ));
    openssl_verifies(&format!(
        "dgst -sha256 -verify {public} -signature {sig} {msg}"
    ));
    let args = |input: &str| {
        format!("--id 01 -m ECDSA --signature-format openssl -i {input} --signature-file {sig}")
    };
    assert!(tool_verifies(&lab, &args(&digest)));
    assert!(!tool_verifies(&lab, &args(&other)));

    // The module hashes for ECDSA-SHA256.
    let sig = lab.path("ec1-sha256.sig");
    lab.alice(&format!(
        "--sign --id 01 -m ECDSA-SHA256 --signature-format openssl -i {msg} -o {sig}"
    ));
    openssl_verifies(&format!(
        "dgst -sha256 -verify {public} -signature {sig} {msg}"
    ));

    // Ed25519: pkcs11-tool 0.23 sends CKA_EC_PARAMS as the printable string "edwards25519"
    // and cannot export an Ed25519 public key; it verifies through the module.
    let out = lab.alice("--keypairgen --key-type EC:edwards25519 --label ed1 --id 03");
    assert!(out.contains("EC_EDWARDS"), "{out}");
    let sig = lab.path("ed1.sig");
    lab.alice(&format!("--sign --id 03 -m EDDSA -i {msg} -o {sig}"));
    assert_eq!(lab.read("ed1.sig").len(), 64);
    assert!(tool_verifies(
        &lab,
        &format!("--id 03 -m EDDSA -i {msg} --signature-file {sig}")
    ));
    assert!(!tool_verifies(
        &lab,
        &format!("--id 03 -m EDDSA -i {other} --signature-file {sig}")
    ));
}

#[test]
fn pkcs11_tool_makes_rsa_and_aes_keys_that_the_node_lists() {
    let lab = Lab::new();
    let text = b"a message for the Keyward PKCS#11 module\n";
    lab.file("msg", text);
    lab.file("msg.digestinfo", &digest_info_sha256(text));
    let (msg, info) = (lab.path("msg"), lab.path("msg.digestinfo"));

    let out = lab.alice("--keypairgen --key-type rsa:2048 --label rsa1 --id 02");
    assert!(out.contains("Private Key Object; RSA"), "{out}");
    let der = lab.path("rsa1.der");
    lab.alice(&format!("--read-object --type pubkey --id 02 -o {der}"));
    let public = der_to_pem(&der);

    let sig = lab.path("rsa1.sig");
    lab.alice(&format!(
        "--sign --id 02 -m SHA256-RSA-PKCS -i {msg} -o {sig}"
    ));
    openssl_verifies(&format!(
        "dgst -sha256 -verify {public} -signature {sig} {msg}"
    ));
    assert!(tool_verifies(
        &lab,
        &format!("--id 02 -m SHA256-RSA-PKCS -i {msg} --signature-file {sig}")
    ));
    // CKM_RSA_PKCS over the SHA-256 DigestInfo: the same (deterministic) signature.
    let raw = lab.path("rsa1-raw.sig");
    lab.alice(&format!("--sign --id 02 -m RSA-PKCS -i {info} -o {raw}"));
    assert_eq!(
        lab.read("rsa1-raw.sig"),
        lab.read("rsa1.sig"),
        "RSA-PKCS over the DigestInfo differs from SHA256-RSA-PKCS"
    );
    let pss = lab.path("rsa1-pss.sig");
    lab.alice(&format!(
        "--sign --id 02 -m SHA256-RSA-PKCS-PSS -i {msg} -o {pss}"
    ));
    openssl_verifies(&format!(
        "dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
         -verify {public} -signature {pss} {msg}"
    ));

    // pkcs11-tool's --keygen sends CKA_SENSITIVE and CKA_PRIVATE false unless --sensitive
    // and --private are given (see pkcs11_tool_makes_aes_keys_as_typed).
    let out = lab.alice("--keygen --key-type AES:32 --sensitive --private --label aes1 --id 04");
    assert!(out.contains("Secret Key Object; AES"), "{out}");

    let objects = lab.alice("-O");
    for label in ["rsa1", "aes1"] {
        assert!(
            values(&objects, "label").contains(&label),
            "{label}:\n{objects}"
        );
    }
    // The node sees the same keys, CKA_ID as its hex `id`.
    let keys = lab.alice_keys();
    for (label, id, count) in [("rsa1", "02", 2), ("aes1", "04", 1)] {
        let found: Vec<_> = keys
            .iter()
            .filter(|k| k["attributes"]["label"] == label)
            .collect();
        assert_eq!(found.len(), count, "{label} on the node: {keys:?}");
        for k in found {
            assert_eq!(k["attributes"]["id"], id, "{k}");
        }
    }
}

/// The plain command line: pkcs11-tool 0.23's --keygen template then says CKA_SENSITIVE false
/// and CKA_PRIVATE false.
#[test]
fn pkcs11_tool_makes_aes_keys_as_typed() {
    let lab = Lab::new();
    let out = lab.alice("--keygen --key-type AES:32 --label aes-plain --id 05");
    assert!(out.contains("Secret Key Object; AES"), "{out}");
    let out = lab.alice("--keygen --key-type GENERIC:32 --label generic-plain --id 06");
    assert!(out.contains("Secret Key Object"), "{out}");
}
