//! sign, verify, signer.

use crate::common::*;

#[test]
fn sign_any_key_mechanism_and_input() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in SM::ALL {
            if k.class != KeyClass::Public && k.attributes.sign && sign_fits(k.spec, m) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(SM::ALL.to_vec())), fitting);
    run(
        CASES,
        (call, input(), encoding()),
        |((s, k, m), input, e)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let info = fx.info(h);
            let before = fx.snapshot();
            let got = fx.hsm.sign(s, h, m, input.as_input(), e);
            check("sign", &got, expect_sign(s, info.as_ref(), m, &input))?;
            fx.unchanged("sign", &before)?;
            if let (Ok(sig), Some(info)) = (&got, &info) {
                if let Ok(spki) = fx.hsm.public_key_spki(&fx.admin, h) {
                    let ok = ext_verify(&spki, info.spec, m, e, &input, sig);
                    prop_assert_eq!(ok, Some(true), "signature does not verify in aws-lc-rs");
                } else if h == fx.known {
                    let Input::Message(msg) = &input else {
                        unreachable!()
                    };
                    let mac = hmac::sign(&hmac::Key::new(hmac_alg(m), &fx.known_value), msg);
                    prop_assert_eq!(sig.as_slice(), mac.as_ref());
                }
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

#[test]
fn verify_of_random_signatures_is_false_or_refused() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in SM::ALL {
            for e in [SignatureEncoding::Der, SignatureEncoding::Raw] {
                if k.attributes.verify && verify_fits(k.spec, m, e) {
                    fitting.push((0, fx.pick_of(k.handle), m, e));
                }
            }
        }
    }
    let call = biased(
        (session(), pick(), select(SM::ALL.to_vec()), encoding()),
        fitting,
    );
    run(
        CASES,
        (call, input(), sized_bytes()),
        |((s, k, m, e), input, sig)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let before = fx.snapshot();
            let got = fx.hsm.verify(s, h, m, input.as_input(), &sig, e);
            check(
                "verify",
                &got,
                expect_verify(s, fx.info(h).as_ref(), m, e, &input),
            )?;
            prop_assert!(!matches!(got, Ok(true)), "a random signature verified");
            fx.unchanged("verify", &before)
        },
    );
    fx.check_reopen();
}

#[test]
fn sign_then_verify_is_true_and_a_changed_message_or_signature_is_false() {
    let fx = Fx::new();
    // (signing key, verifying key, spec, mechanism) for every fitting combination.
    let mut combos = Vec::new();
    for &(spec, p, u) in &fx.pairs {
        for &m in SM::ALL {
            if sign_fits(spec, m) {
                combos.push((p, u, spec, m));
            }
        }
    }
    let secrets = fx.secrets.iter().chain(&fx.keks);
    for &(spec, k) in secrets.chain([&(KeySpec::Aes256, fx.known)]) {
        for &m in SM::ALL.iter().filter(|m| m.is_hmac()) {
            combos.push((k, k, spec, m));
        }
    }
    run(
        CASES,
        (
            select(combos),
            bytes(),
            encoding(),
            any::<bool>(),
            any::<usize>(),
            0u8..8,
        ),
        |((p, u, spec, m), msg, e, as_digest, pos, bit)| {
            let me = &fx.me;
            let input = match m.digest() {
                Some(alg) if as_digest && m.accepts_digest() => {
                    Input::Digest(digest::digest(alg, &msg).as_ref().to_vec())
                }
                _ => Input::Message(msg.clone()),
            };
            let sig = fx.hsm.sign(me, p, m, input.as_input(), e);
            prop_assert!(sig.is_ok(), "sign {m} with {spec}: {:?}", sig.err());
            let sig = sig.unwrap();
            for verifier in [u, p] {
                let v = fx.hsm.verify(me, verifier, m, input.as_input(), &sig, e);
                prop_assert!(matches!(v, Ok(true)), "verify {m} {spec}: {v:?}");
                // A digest-signed signature verifies against the message too.
                let v = fx
                    .hsm
                    .verify(me, verifier, m, SignInput::Message(&msg), &sig, e);
                prop_assert!(matches!(v, Ok(true)), "verify message {m} {spec}: {v:?}");
            }
            // Outside the HSM.
            if spec.is_secret() {
                if p == fx.known {
                    let mac = hmac::sign(&hmac::Key::new(hmac_alg(m), &fx.known_value), &msg);
                    prop_assert_eq!(sig.as_slice(), mac.as_ref());
                }
            } else {
                let spki = fx.hsm.public_key_spki(me, u).unwrap();
                prop_assert_eq!(ext_verify(&spki, spec, m, e, &input, &sig), Some(true));
            }
            // A changed message does not verify.
            let mut changed = msg.clone();
            if changed.is_empty() {
                changed.push(0);
            } else {
                let i = pos % changed.len();
                changed[i] ^= 1 << bit;
            }
            let v = fx
                .hsm
                .verify(me, u, m, SignInput::Message(&changed), &sig, e);
            prop_assert!(matches!(v, Ok(false)), "changed message: {v:?}");
            // A changed signature does not verify.
            let mut bad = sig.clone();
            let i = pos % bad.len();
            bad[i] ^= 1 << bit;
            let v = fx.hsm.verify(me, u, m, SignInput::Message(&msg), &bad, e);
            prop_assert!(matches!(v, Ok(false)), "changed signature: {v:?}");
            // A truncated signature does not verify.
            let v = fx
                .hsm
                .verify(me, u, m, SignInput::Message(&msg), &sig[..sig.len() - 1], e);
            prop_assert!(matches!(v, Ok(false)), "truncated signature: {v:?}");
            Ok(())
        },
    );
    fx.check_reopen();
}

#[test]
fn signer_of_any_key_signs_only_what_the_key_allows() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in SM::ALL {
            if k.class == KeyClass::Private && sign_fits(k.spec, m) {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(SM::ALL.to_vec())), fitting);
    run(CASES, (call, bytes()), |((s, k, m), msg)| {
        let s = fx.session(s);
        let h = fx.handle(&k);
        let info = fx.info(h);
        let before = fx.snapshot();
        let w = want(|| {
            let i = usable(s, info.as_ref())?;
            if i.class != KeyClass::Private {
                return Err("mechanism_invalid");
            }
            Ok(Want::Ok)
        });
        let got = fx.hsm.signer(s, h);
        check("signer", &got, w)?;
        fx.unchanged("signer", &before)?;
        let (Ok(signer), Some(info)) = (got, info) else {
            return Ok(());
        };
        prop_assert_eq!(signer.info(), info.info.clone());
        prop_assert_eq!(signer.spec(), info.spec);
        let spki = fx.hsm.public_key_spki(&fx.admin, h).unwrap();
        prop_assert_eq!(signer.spki_der(), spki.as_slice());
        prop_assert_eq!(signer.supports(m), sign_fits(info.spec, m));
        let count = signer.sign_count();
        let w = want(|| {
            need(info.attributes.sign)?;
            if !sign_fits(info.spec, m) {
                return Err("mechanism_invalid");
            }
            Ok(Want::Ok)
        });
        let got = signer.sign(m, &msg);
        check("KeySigner::sign", &got, w)?;
        if let Ok(sig) = got {
            prop_assert_eq!(signer.sign_count(), count + 1);
            let ok = ext_verify(
                signer.spki_der(),
                info.spec,
                m,
                SignatureEncoding::Der,
                &Input::Message(msg),
                &sig,
            );
            prop_assert_eq!(ok, Some(true));
        } else {
            prop_assert_eq!(signer.sign_count(), count);
        }
        fx.unchanged("KeySigner::sign", &before)
    });
    fx.check_reopen();
}
