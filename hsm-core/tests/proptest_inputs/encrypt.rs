//! encrypt, decrypt.

use crate::common::*;

#[test]
fn encrypt_any_key_mechanism_and_input() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in EM::ALL {
            if k.attributes.encrypt && encrypt_fits(&k, m, false) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(EM::ALL.to_vec())), fitting);
    run(CASES, (call, bytes(), aad()), |((s, k, m), pt, aad)| {
        let s = fx.session(s);
        let h = fx.handle(&k);
        let info = fx.info(h);
        let before = fx.snapshot();
        let got = fx.hsm.encrypt(s, h, m, &pt, &aad);
        check(
            "encrypt",
            &got,
            expect_encrypt(s, info.as_ref(), m, pt.len(), aad.len()),
        )?;
        fx.unchanged("encrypt", &before)?;
        let (Ok(ct), Some(info)) = (got, info) else {
            return Ok(());
        };
        // Layout, and decrypt gives the plaintext back.
        let (session, dk) = if is_rsa(info.spec) {
            prop_assert_eq!(ct.len(), rsa_bytes(info.spec));
            (&fx.me, fx.pair(info.spec).unwrap().0)
        } else {
            let expected = match m {
                EM::AesGcm => 12 + pt.len() + 16,
                _ => 16 + (pt.len() / 16 + 1) * 16,
            };
            prop_assert_eq!(ct.len(), expected);
            (s, h)
        };
        if fx.info(dk).is_some_and(|d| d.attributes.decrypt) {
            let back = fx.hsm.decrypt(session, dk, m, &ct, &aad);
            prop_assert!(back.is_ok(), "decrypt: {:?}", back.err());
            let back = back.unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
        }
        Ok(())
    });
    fx.check_reopen();
}

#[test]
fn decrypt_of_random_bytes_is_refused() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in EM::ALL {
            if k.attributes.decrypt && encrypt_fits(&k, m, true) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(EM::ALL.to_vec())), fitting);
    run(
        CASES,
        (call, sized_bytes(), aad()),
        |((s, k, m), ct, aad)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let before = fx.snapshot();
            let got = fx.hsm.decrypt(s, h, m, &ct, &aad);
            let w = expect_decrypt_random(s, fx.info(h).as_ref(), m, ct.len(), aad.len());
            check("decrypt", &got, w)?;
            fx.unchanged("decrypt", &before)
        },
    );
    fx.check_reopen();
}

/// (encrypting key, decrypting key, spec, mechanism) for every fitting combination.
fn encrypt_combos(fx: &Fx, mechanisms: &[EM]) -> Vec<(KeyHandle, KeyHandle, KeySpec, EM)> {
    let mut v = Vec::new();
    for &m in mechanisms {
        if matches!(m, EM::AesGcm | EM::AesCbcPad) {
            for &(spec, k) in fx.secrets.iter().chain([&(KeySpec::Aes256, fx.known)]) {
                if spec.key_type() == "aes" {
                    v.push((k, k, spec, m));
                }
            }
        } else {
            for &(spec, p, u) in &fx.pairs {
                if is_rsa(spec) {
                    v.push((u, p, spec, m));
                    v.push((p, p, spec, m));
                }
            }
        }
    }
    v
}

#[test]
fn encrypt_then_decrypt_returns_the_plaintext() {
    let fx = Fx::new();
    let combos = encrypt_combos(&fx, EM::ALL);
    run(
        CASES,
        (select(combos), bytes(), aad()),
        |((ek, dk, spec, m), mut pt, aad)| {
            let me = &fx.me;
            let aad = if m == EM::AesGcm { aad } else { Vec::new() };
            if is_rsa(spec) {
                pt.truncate(oaep_max(spec, m));
            }
            let ct = fx.hsm.encrypt(me, ek, m, &pt, &aad);
            prop_assert!(ct.is_ok(), "encrypt {m} {spec}: {:?}", ct.err());
            let ct = ct.unwrap();
            let back = fx.hsm.decrypt(me, dk, m, &ct, &aad);
            prop_assert!(back.is_ok(), "decrypt {m} {spec}: {:?}", back.err());
            let back = back.unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
            // Encryption is randomized.
            let ct2 = fx.hsm.encrypt(me, ek, m, &pt, &aad).unwrap();
            prop_assert_ne!(&ct, &ct2);
            if m == EM::AesGcm {
                let mut other = aad.clone();
                other.push(0);
                let r = fx.hsm.decrypt(me, dk, m, &ct, &other);
                prop_assert!(r.is_err(), "aes-gcm opened with another AAD");
                prop_assert_eq!(r.unwrap_err().code(), "invalid_input");
            }
            // Against aws-lc-rs, both ways.
            if ek == fx.known {
                let kv = &fx.known_value;
                let (theirs, ours) = match m {
                    EM::AesGcm => (gcm_open(kv, &ct, &aad), gcm_seal(kv, &pt, &aad)),
                    _ => (cbc_open(kv, &ct), cbc_seal(kv, &pt)),
                };
                prop_assert_eq!(theirs.as_deref(), Some(pt.as_slice()));
                let back = fx.hsm.decrypt(me, dk, m, &ours, &aad).unwrap();
                prop_assert_eq!(back.as_slice(), pt.as_slice());
            }
            if is_rsa(spec) {
                let spki = fx.hsm.public_key_spki(me, ek).unwrap();
                let ours = oaep_seal(&spki, m, &pt);
                let back = fx.hsm.decrypt(me, dk, m, &ours, &[]).unwrap();
                prop_assert_eq!(back.as_slice(), pt.as_slice());
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

#[test]
fn tampered_ciphertext_never_decrypts() {
    let fx = Fx::new();
    let combos = encrypt_combos(
        &fx,
        &[
            EM::AesGcm,
            EM::RsaOaepSha256,
            EM::RsaOaepSha384,
            EM::RsaOaepSha512,
        ],
    );
    run(
        CASES,
        (
            select(combos),
            small_bytes(),
            aad(),
            tamper(),
            any::<bool>(),
        ),
        |((ek, dk, spec, m), mut pt, aad, t, change_aad)| {
            let me = &fx.me;
            let aad = if m == EM::AesGcm { aad } else { Vec::new() };
            if is_rsa(spec) {
                pt.truncate(oaep_max(spec, m));
            }
            let ct = fx.hsm.encrypt(me, ek, m, &pt, &aad).unwrap();
            let before = fx.snapshot();
            let (bad, bad_aad) = match t.apply(&ct) {
                Some(bad) => (bad, aad.clone()),
                None if m == EM::AesGcm || change_aad => {
                    (ct.clone(), [aad.as_slice(), b"!"].concat())
                }
                None => return Ok(()),
            };
            let got = fx.hsm.decrypt(me, dk, m, &bad, &bad_aad);
            prop_assert!(got.is_err(), "tampered {m} ciphertext decrypted ({t:?})");
            fx.outcome("decrypt", &before, &got, Want::Err("invalid_input"))
        },
    );
    fx.check_reopen();
}

/// aes-cbc-pad carries no integrity check (NIST SP 800-38A): a flipped IV bit decrypts to a
/// plaintext with that bit flipped. What does hold: the original plaintext never comes back.
#[test]
fn tampered_cbc_ciphertext_never_gives_the_plaintext_back() {
    let fx = Fx::new();
    let combos = encrypt_combos(&fx, &[EM::AesCbcPad]);
    run(
        CASES,
        (select(combos), small_bytes(), tamper()),
        |((ek, dk, _, m), pt, t)| {
            let me = &fx.me;
            let ct = fx.hsm.encrypt(me, ek, m, &pt, &[]).unwrap();
            let Some(bad) = t.apply(&ct) else {
                return Ok(());
            };
            let before = fx.snapshot();
            let got = fx.hsm.decrypt(me, dk, m, &bad, &[]);
            if let Ok(out) = &got {
                prop_assert_ne!(out.as_slice(), pt.as_slice());
            }
            check("decrypt", &got, Want::OkOr("invalid_input"))?;
            fx.unchanged("decrypt", &before)
        },
    );
}

/// aes-cbc-pad is unauthenticated (NIST SP 800-38A; aes-gcm is the mechanism with an
/// integrity check): flipping bit `b` of IV byte `i` decrypts, without an error, to the
/// plaintext with bit `b` of byte `i` flipped. (The strict "a tampered ciphertext never
/// decrypts" property holds only for the authenticated mechanisms, above.)
#[test]
fn a_tampered_cbc_iv_decrypts_to_other_plaintext_without_an_error() {
    let fx = Fx::new();
    let combos = encrypt_combos(&fx, &[EM::AesCbcPad]);
    run(
        CASES,
        (
            select(combos),
            vec(any::<u8>(), 1..64),
            any::<usize>(),
            0u8..8,
        ),
        |((ek, dk, _, m), pt, at, bit)| {
            let ct = fx.hsm.encrypt(&fx.me, ek, m, &pt, &[]).unwrap();
            // The IV is the first 16 bytes; it is XORed into the first plaintext block.
            let i = at % pt.len().min(16);
            let mut bad = ct.clone();
            bad[i] ^= 1 << bit;
            let mut expected = pt.clone();
            expected[i] ^= 1 << bit;
            let got = fx.hsm.decrypt(&fx.me, dk, m, &bad, &[]);
            let out = got.map_err(|e| {
                TestCaseError::fail(format!(
                    "a tampered IV was refused: {} ({e})",
                    e.code().as_str()
                ))
            })?;
            prop_assert_eq!(out.as_slice(), expected.as_slice());
            prop_assert_ne!(out.as_slice(), pt.as_slice());
            Ok(())
        },
    );
}
