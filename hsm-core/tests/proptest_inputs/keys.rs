//! import_public_key, generate, random.

use crate::common::*;

#[derive(Clone, Debug)]
enum SpkiInput {
    Valid(usize),
    Damaged(usize, Tamper),
    RawPoint(usize),
    Random(Vec<u8>),
    Sequence(Vec<u8>),
}

#[test]
fn import_public_key_of_any_bytes() {
    let fx = Fx::new();
    let spkis: Vec<(KeySpec, Vec<u8>)> = fx
        .pairs
        .iter()
        .map(|&(s, _, u)| (s, fx.hsm.public_key_spki(&fx.me, u).unwrap()))
        .collect();
    let n = spkis.len();
    let input = prop_oneof![
        3 => (0..n).prop_map(SpkiInput::Valid),
        3 => (0..n, tamper()).prop_map(|(i, t)| SpkiInput::Damaged(i, t)),
        1 => (0usize..3).prop_map(SpkiInput::RawPoint),
        1 => sized_bytes().prop_map(SpkiInput::Random),
        1 => small_bytes().prop_map(SpkiInput::Sequence),
    ];
    run(
        CASES,
        (session(), input, label_choice()),
        |(s, input, l)| {
            let s = fx.session(s);
            let (bytes, spec, der_w) = match &input {
                SpkiInput::Valid(i) => (spkis[*i].1.clone(), Some(spkis[*i].0), Want::Ok),
                SpkiInput::Damaged(i, t) => match t.apply(&spkis[*i].1) {
                    Some(bad) => (bad, None, Want::OkOr("invalid_input")),
                    None => return Ok(()),
                },
                SpkiInput::RawPoint(c) => {
                    let p = agreement::PrivateKey::generate(CURVES[*c]).unwrap();
                    let point = p.compute_public_key().unwrap().as_ref().to_vec();
                    (point, None, Want::Err("invalid_input"))
                }
                SpkiInput::Random(b) => (b.clone(), None, Want::Err("invalid_input")),
                SpkiInput::Sequence(b) => (
                    [&[0x30u8][..], b].concat(),
                    None,
                    Want::Err("invalid_input"),
                ),
            };
            let label = fx.label_for(&l, KeyClass::Public);
            let before = fx.snapshot();
            let w = want(|| {
                active_as(s, Role::CryptoUser)?;
                label_ok(&label)?;
                match (der_w, fx.label_free(s, &label, KeyClass::Public)) {
                    (Want::Ok, Err(label_code)) => Err(label_code),
                    (Want::OkOr(bad), Err(label_code)) => Ok(Want::ErrEither(bad, label_code)),
                    (w, _) => Ok(w),
                }
            });
            let got = fx.hsm.import_public_key(s, &bytes, &usage_public(&label));
            fx.outcome("import_public_key", &before, &got, w)?;
            let Ok(new) = got else {
                return Ok(());
            };
            if let Some(spec) = spec {
                prop_assert_eq!(new.spec, spec);
                prop_assert_eq!(fx.hsm.public_key_spki(s, new.handle).unwrap(), bytes);
            }
            prop_assert_eq!(new.class, KeyClass::Public);
            prop_assert!(!new.attributes.local && !new.attributes.sensitive);
            prop_assert_eq!(new.linked_handle, None);
            fx.hsm.destroy_key(s, new.handle).unwrap();
            fx.unchanged("import and destroy", &before)
        },
    );
    fx.check_reopen();
}

/// Generation with random specs and templates. RSA is left out: generating RSA keys per case
/// would take most of the run (RSA keys are generated once, for the fixture).
#[test]
fn generate_with_any_spec_and_template() {
    let fx = Fx::new();
    let spec = prop_oneof![
        3 => select(vec![
            KeySpec::Aes128,
            KeySpec::Aes192,
            KeySpec::Aes256,
            KeySpec::EcP256,
            KeySpec::EcP384,
            KeySpec::EcP521,
            KeySpec::Ed25519,
        ]),
        1 => (1u16..=GENERIC_SECRET_MAX_BYTES).prop_map(|bytes| KeySpec::GenericSecret { bytes }),
        1 => any::<u16>().prop_map(|bytes| KeySpec::GenericSecret { bytes }),
    ];
    run(
        CASES,
        (session(), spec, any::<bool>(), template(), template()),
        |(s, spec, as_secret, (l1, a1), (l2, a2))| {
            let s = fx.session(s);
            let before = fx.snapshot();
            if as_secret {
                let t = make_template(&fx, &l1, &a1, KeyClass::Secret);
                let built = build(&t, KeyClass::Secret);
                let w = want(|| {
                    active_as(s, Role::CryptoUser)?;
                    invalid_if(!spec.is_secret())?;
                    invalid_if(!secret_spec_valid(spec))?;
                    let a = built.clone()?;
                    separated(&a, None)?;
                    fx.label_free(s, &a.label, KeyClass::Secret)?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.generate_secret_key(s, spec, &t);
                fx.outcome("generate_secret_key", &before, &got, w)?;
                if let (Ok(k), Ok(mut a)) = (got, built) {
                    a.check_value = k.attributes.check_value.clone();
                    prop_assert_eq!(&k.attributes, &a);
                    prop_assert_eq!(k.spec, spec);
                    prop_assert_eq!(k.owner.as_str(), s.user());
                    if a.destroyable {
                        fx.hsm.destroy_key(s, k.handle).unwrap();
                    }
                }
            } else {
                let tp = make_template(&fx, &l1, &a1, KeyClass::Private);
                let tu = make_template(&fx, &l2, &a2, KeyClass::Public);
                let (bp, bu) = (build(&tp, KeyClass::Private), build(&tu, KeyClass::Public));
                let w = want(|| {
                    active_as(s, Role::CryptoUser)?;
                    invalid_if(spec.is_secret())?;
                    let (p, u) = (bp.clone()?, bu.clone()?);
                    separated(&p, Some(&u))?;
                    fx.label_free(s, &p.label, KeyClass::Private)?;
                    fx.label_free(s, &u.label, KeyClass::Public)?;
                    Ok(Want::Ok)
                });
                let got = fx.hsm.generate_key_pair(s, spec, &tp, &tu);
                fx.outcome("generate_key_pair", &before, &got, w)?;
                if let (Ok((p, u)), Ok(mut ap), Ok(mut au)) = (got, bp, bu) {
                    ap.check_value = p.attributes.check_value.clone();
                    au.check_value = u.attributes.check_value.clone();
                    prop_assert_eq!(&p.attributes, &ap);
                    prop_assert_eq!(&u.attributes, &au);
                    prop_assert_eq!(
                        p.attributes.check_value.clone(),
                        u.attributes.check_value.clone()
                    );
                    prop_assert_eq!(p.linked_handle, Some(u.handle));
                    prop_assert_eq!(u.linked_handle, Some(p.handle));
                    for (k, a) in [(p, ap), (u, au)] {
                        if a.destroyable {
                            fx.hsm.destroy_key(s, k.handle).unwrap();
                        }
                    }
                }
            }
            Ok(())
        },
    );
    fx.check_reopen();
}

// ---------------------------------------------------------------------------------------------
// random
// ---------------------------------------------------------------------------------------------

#[test]
fn random_of_any_length() {
    let fx = Fx::new();
    let len = prop_oneof![
        4 => 0usize..=MAX_RANDOM_BYTES + 10,
        1 => select(vec![0usize, 1, MAX_RANDOM_BYTES, MAX_RANDOM_BYTES + 1, usize::MAX]),
        1 => any::<usize>(),
    ];
    run(CASES, (session(), len), |(s, len)| {
        let s = fx.session(s);
        let before = fx.snapshot();
        let w = want(|| {
            invalid_if(!(1..=MAX_RANDOM_BYTES).contains(&len))?;
            Ok(Want::Ok)
        });
        let got = fx.hsm.random(s, len);
        fx.outcome("random", &before, &got, w)?;
        if let Ok(v) = got {
            prop_assert_eq!(v.len(), len);
            if len >= 16 {
                prop_assert_ne!(v, fx.hsm.random(s, len).unwrap());
            }
        }
        fx.unchanged("random", &before)
    });
}
