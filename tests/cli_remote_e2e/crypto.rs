//! Sign and verify, encrypt and decrypt, HMAC, through the remote CLI.

use std::path::Path;

use crate::common::*;

/// Alice signs `msg` with `priv_h`; the signature verifies with `pub_h`, and not over another
/// message.
fn sign_and_verify(lab: &Lab, msg: &Path, (priv_h, pub_h): (u64, u64), mech: &str) {
    let n = &lab.node;
    let sig = lab.dir().join(format!("{mech}.sig"));
    kw_ok(
        n,
        "alice",
        ALICE,
        &sign_args(&priv_h.to_string(), mech, &p(msg), &p(&sig)),
    );
    let verify = |file: &Path| {
        kw(
            n,
            "alice",
            ALICE,
            &[
                "crypto",
                "verify",
                "--key",
                &pub_h.to_string(),
                "--mechanism",
                mech,
                "--in",
                &p(file),
                "--signature",
                &p(&sig),
            ],
        )
    };
    let ok = verify(msg);
    assert_eq!(ok.status.code(), Some(0), "{mech}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "valid");
    let other = lab.dir().join("other.txt");
    std::fs::write(&other, b"another message\n").unwrap();
    let bad = verify(&other);
    assert_eq!(bad.status.code(), Some(1), "{mech}");
    assert_eq!(String::from_utf8_lossy(&bad.stdout).trim(), "invalid");
}

/// Sign and verify a file with each pair; openssl checks the EC signature; public keys come
/// out as PEM and JWK.
#[test]
fn every_pair_signs_and_verifies_a_file_and_openssl_checks_ecdsa() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let msg = lab.message();
    let ec = pair(n, "ec", &["--curve", "p256"], "ec1");
    let rsa = pair(n, "rsa", &["--bits", "2048"], "rsa1");
    let ed = pair(n, "ed25519", &[], "ed1");
    for (keys, mech) in [
        (ec, "ecdsa-sha256"),
        (rsa, "rsa-pss-sha256"),
        (ed, "ed25519"),
    ] {
        sign_and_verify(&lab, &msg, keys, mech);
    }
    let ec_pem = lab.dir().join("ec1.pub.pem");
    std::fs::write(
        &ec_pem,
        kw_ok(
            n,
            "alice",
            ALICE,
            &["key", "public", "--key", &ec.1.to_string()],
        ),
    )
    .unwrap();
    openssl_verifies(&ec_pem, &lab.dir().join("ecdsa-sha256.sig"), &msg);
    let jwk = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "public",
            "--key",
            &ed.1.to_string(),
            "--format",
            "jwk",
        ],
    ));
    assert_eq!(jwk["kty"], "OKP");
}

/// `crypto encrypt|decrypt --key KEY --mechanism aes-gcm --in IN --out OUT [--aad-file AAD]`.
fn aes_gcm<'a>(
    op: &'a str,
    key: &'a str,
    io: (&'a str, &'a str),
    aad: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec![
        "crypto",
        op,
        "--key",
        key,
        "--mechanism",
        "aes-gcm",
        "--in",
        io.0,
        "--out",
        io.1,
    ];
    if let Some(aad) = aad {
        args.extend(["--aad-file", aad]);
    }
    args
}

/// Encrypt / decrypt with AAD (without it, decryption is refused); HMAC.
#[test]
fn encrypt_and_decrypt_with_aad_and_hmac() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let msg = lab.message();
    let (aes, _) = sym(
        n,
        &[
            "aes",
            "--bits",
            "256",
            "--label",
            "aes1",
            "--attr",
            "encrypt=true",
            "--attr",
            "decrypt=true",
        ],
    );
    let (mac, _) = sym(
        n,
        &[
            "generic-secret",
            "--bytes",
            "32",
            "--label",
            "mac1",
            "--attr",
            "sign=true",
            "--attr",
            "verify=true",
        ],
    );
    let (ct, pt, aad) = (
        p(&lab.dir().join("msg.enc")),
        p(&lab.dir().join("msg.dec")),
        lab.dir().join("aad"),
    );
    std::fs::write(&aad, b"context").unwrap();
    let (aes_s, msg_s, aad) = (aes.to_string(), p(&msg), p(&aad));
    kw_ok(
        n,
        "alice",
        ALICE,
        &aes_gcm("encrypt", &aes_s, (&msg_s, &ct), Some(&aad)),
    );
    assert_eq!(
        std::fs::read(&ct).unwrap().len(),
        12 + std::fs::read(&msg).unwrap().len() + 16
    );
    kw_ok(
        n,
        "alice",
        ALICE,
        &aes_gcm("decrypt", &aes_s, (&ct, &pt), Some(&aad)),
    );
    assert_eq!(std::fs::read(&pt).unwrap(), std::fs::read(&msg).unwrap());
    kw_err(
        n,
        "alice",
        ALICE,
        &aes_gcm("decrypt", &aes_s, (&ct, &pt), None),
        "invalid_input",
    );
    let out = kw(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "hmac",
            "--key",
            &mac.to_string(),
            "--mechanism",
            "hmac-sha256",
            "--in",
            &msg_s,
        ],
    );
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 32, "raw HMAC on stdout");
}
