//! Key versions through the CLI: encrypt, rotate, encrypt, decrypt both, retire version 1
//! with `key config`, rewrap a v1 ciphertext to v2, trim; signatures carry their version.

use std::path::Path;

use crate::common::*;

/// `crypto OP --key data --mechanism aes-gcm --in IN --out OUT [EXTRA...]` as alice.
fn aes(lab: &Lab, op: &str, input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "crypto".to_owned(),
        op.to_owned(),
        "--key".into(),
        "data".into(),
        "--mechanism".into(),
        "aes-gcm".into(),
        "--in".into(),
        p(input),
        "--out".into(),
        p(out),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kw(&lab.node, "alice", ALICE, &args)
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn encrypt_rotate_encrypt_decrypt_both_retire_v1_and_rewrap_it_to_v2() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let d = lab.dir();
    sym(
        n,
        &[
            "aes",
            "--bits",
            "256",
            "--label",
            "data",
            "--attr",
            "encrypt=true",
            "--attr",
            "decrypt=true",
        ],
    );
    let plain = d.join("plain.txt");
    std::fs::write(&plain, b"attack at dawn\n").unwrap();

    // Version 1: raw bytes, as before keys had versions.
    let ct1 = d.join("v1.enc");
    ok(aes(&lab, "encrypt", &plain, &ct1, &[]));
    let raw = std::fs::read(&ct1).unwrap();
    assert_eq!(raw.len(), 12 + 15 + 16, "raw aes-gcm output for version 1");

    // Rotate by label: same handle, version 2.
    let rotated = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &["key", "rotate", "data", "--json"],
    ));
    assert_eq!(rotated["latest_version"], 2);
    let text = kw_ok(n, "alice", ALICE, &["key", "show", "data"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("latest version") && l.trim_end().ends_with('2')),
        "{text}"
    );

    // Version 2: the self-describing text form.
    let ct2 = d.join("v2.enc");
    ok(aes(&lab, "encrypt", &plain, &ct2, &[]));
    let v2 = std::fs::read_to_string(&ct2).unwrap();
    assert!(v2.starts_with("kw:v2:"), "{v2}");

    // Both decrypt.
    for ct in [&ct1, &ct2] {
        let out = d.join("out.txt");
        ok(aes(&lab, "decrypt", ct, &out, &[]));
        assert_eq!(std::fs::read(&out).unwrap(), b"attack at dawn\n");
    }

    // Rewrap the v1 ciphertext into v2 without the plaintext leaving the HSM.
    let re = d.join("rewrapped.enc");
    ok(aes(&lab, "rewrap", &ct1, &re, &[]));
    let rewrapped = std::fs::read_to_string(&re).unwrap();
    assert!(rewrapped.starts_with("kw:v2:"), "{rewrapped}");
    let answer = json(&ok(aes(
        &lab,
        "rewrap",
        &ct1,
        &d.join("unused"),
        &["--json"],
    )));
    assert_eq!(answer["key_version"], 2);
    assert!(answer.get("plaintext").is_none());

    // min_decryption_version = 2: version 1 is refused (key_version_retired), the rewrapped
    // ciphertext decrypts.
    let cfg = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "config",
            "data",
            "--min-decryption-version",
            "2",
            "--json",
        ],
    ));
    assert_eq!(cfg["min_decryption_version"], 2);
    kw_err(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "decrypt",
            "--key",
            "data",
            "--mechanism",
            "aes-gcm",
            "--in",
            &p(&ct1),
        ],
        "key_version_retired",
    );
    let out = d.join("out2.txt");
    ok(aes(&lab, "decrypt", &re, &out, &[]));
    assert_eq!(std::fs::read(&out).unwrap(), b"attack at dawn\n");

    // Trim version 1; bob (shared with, not the owner) may not manage versions.
    let trimmed = json(&kw_ok(
        n,
        "alice",
        ALICE,
        &[
            "key",
            "trim",
            "data",
            "--min-available-version",
            "2",
            "--json",
        ],
    ));
    assert_eq!(trimmed["min_available_version"], 2);
    let handle = trimmed["handle"].as_u64().unwrap().to_string();
    kw_ok(
        n,
        "alice",
        ALICE,
        &["key", "share", "--key", &handle, "--with", "bob"],
    );
    kw_err(
        n,
        "bob",
        BOB,
        &["key", "rotate", &handle],
        "permission_denied",
    );
}

#[test]
fn signatures_carry_their_version_and_verify_after_rotation() {
    let lab = Lab::new().with_alice_and_bob();
    let n = &lab.node;
    let msg = lab.message();
    let (private, public) = pair(n, "ec", &["--curve", "p256"], "signer");
    let sig1 = lab.dir().join("v1.sig");
    let sig2 = lab.dir().join("v2.sig");
    let private = private.to_string();
    kw_ok(
        n,
        "alice",
        ALICE,
        &sign_args(&private, "ecdsa-sha256", &p(&msg), &p(&sig1)),
    );
    kw_ok(n, "alice", ALICE, &["key", "rotate", "signer"]);
    kw_ok(
        n,
        "alice",
        ALICE,
        &sign_args(&private, "ecdsa-sha256", &p(&msg), &p(&sig2)),
    );
    assert!(std::fs::read_to_string(&sig2)
        .unwrap()
        .starts_with("kw:v2:"));
    for sig in [&sig1, &sig2] {
        let out = kw_ok(
            n,
            "alice",
            ALICE,
            &[
                "crypto",
                "verify",
                "--key",
                &public.to_string(),
                "--mechanism",
                "ecdsa-sha256",
                "--in",
                &p(&msg),
                "--signature",
                &p(sig),
            ],
        );
        assert_eq!(out.trim(), "valid");
    }
    // The raw v1 signature named as version 2 does not verify.
    let out = kw(
        n,
        "alice",
        ALICE,
        &[
            "crypto",
            "verify",
            "--key",
            &public.to_string(),
            "--mechanism",
            "ecdsa-sha256",
            "--in",
            &p(&msg),
            "--signature",
            &p(&sig1),
            "--key-version",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}
