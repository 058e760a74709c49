//! wrap, unwrap.

use crate::common::*;

/// The key and session that unwrap what `w` wrapped.
fn unwrapper(fx: &Fx, w: &KeyInfo) -> KeyHandle {
    if is_rsa(w.spec) {
        fx.kek_pair(w.spec).unwrap().0
    } else {
        w.handle
    }
}

fn unwrap_target(t: &KeyInfo) -> UnwrapTarget {
    if t.class == KeyClass::Secret {
        UnwrapTarget::Secret(t.spec)
    } else {
        UnwrapTarget::Private
    }
}

#[test]
fn wrap_any_key_under_any_key_and_unwrap_it_back() {
    let fx = Fx::new();
    let mine = fx.mine();
    let mut fitting = Vec::new();
    for w in &mine {
        for &m in WM::ALL {
            for t in &mine {
                if !matches!(expect_wrap(&fx.me, Some(w), m, Some(t)), Want::Err(_)) {
                    fitting.push((0, fx.pick_of(w.handle), m, fx.pick_of(t.handle)));
                }
            }
        }
    }
    let call = biased(
        (session(), pick(), select(WM::ALL.to_vec()), pick()),
        fitting,
    );
    run(CASES, call, |(s, wk, m, tk)| {
        let s = fx.session(s);
        let (wh, th) = (fx.handle(&wk), fx.handle(&tk));
        let (winfo, tinfo) = (fx.info(wh), fx.info(th));
        let before = fx.snapshot();
        let got = fx.hsm.wrap_key(s, wh, m, th);
        check(
            "wrap_key",
            &got,
            expect_wrap(s, winfo.as_ref(), m, tinfo.as_ref()),
        )?;
        fx.unchanged("wrap_key", &before)?;
        let (Ok(blob), Some(w), Some(t)) = (got, winfo, tinfo) else {
            return Ok(());
        };
        let uh = unwrapper(&fx, &w);
        let session = if is_rsa(w.spec) { &fx.me } else { s };
        if !fx.info(uh).is_some_and(|u| u.attributes.unwrap) {
            return Ok(());
        }
        let new = fx.hsm.unwrap_key(
            session,
            uh,
            m,
            &blob,
            unwrap_target(&t),
            &KeyTemplate::labelled(&fx.label("unwrapped")),
        );
        prop_assert!(new.is_ok(), "unwrap {m}: {:?}", new.err());
        let new = new.unwrap();
        prop_assert_eq!(new.spec, t.spec);
        prop_assert_eq!(new.class, t.class);
        prop_assert_eq!(&new.attributes.check_value, &t.attributes.check_value);
        prop_assert!(!new.attributes.local);
        prop_assert_eq!(new.owner.as_str(), session.user());
        fx.hsm.destroy_key(session, new.handle).unwrap();
        fx.unchanged("wrap, unwrap and destroy", &before)
    });
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum Target {
    Private,
    Secret(KeySpec),
}

impl Target {
    fn get(&self) -> UnwrapTarget {
        match self {
            Target::Private => UnwrapTarget::Private,
            Target::Secret(s) => UnwrapTarget::Secret(*s),
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => Just(Target::Private),
        3 => any_spec().prop_map(Target::Secret),
    ]
}

#[test]
fn unwrap_of_random_bytes_is_refused() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        for &m in WM::ALL {
            if expect_unwrap_policy(&fx.me, Some(&k), m).is_ok() {
                fitting.push((0, fx.pick_of(k.handle), m));
            }
        }
    }
    let call = biased((session(), pick(), select(WM::ALL.to_vec())), fitting);
    run(
        CASES,
        (call, sized_bytes(), target(), label_choice()),
        |((s, k, m), blob, t, l)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let before = fx.snapshot();
            let label = fx.label_for(&l, KeyClass::Secret);
            let got = fx
                .hsm
                .unwrap_key(s, h, m, &blob, t.get(), &KeyTemplate::labelled(&label));
            let w = want(|| {
                expect_unwrap_policy(s, fx.info(h).as_ref(), m)?;
                Err("invalid_input")
            });
            fx.outcome("unwrap_key", &before, &got, w)
        },
    );
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum WrapDamage {
    Bytes(Tamper),
    WrongTarget,
}

#[test]
fn tampered_wrapped_key_never_unwraps() {
    let fx = Fx::new();
    // (wrapping key, unwrapping key, mechanism, target) that wrap successfully.
    let mut combos = Vec::new();
    let wrapping: Vec<(KeyHandle, KeyHandle, KeySpec)> = fx
        .keks
        .iter()
        .map(|&(s, k)| (k, k, s))
        .chain([(fx.known_kek, fx.known_kek, KeySpec::Aes256)])
        .chain(fx.kek_pairs.iter().map(|&(s, p, u)| (u, p, s)))
        .collect();
    let targets: Vec<K> = fx
        .all_keys()
        .into_iter()
        .filter(|k| {
            k.owner == PROXY_USER
                && k.class != KeyClass::Public
                && k.attributes.extractable
                && !k.attributes.wrap_with_trusted
        })
        .collect();
    for &(wh, uh, ws) in &wrapping {
        let winfo = fx.info(wh).unwrap();
        for &m in WM::ALL {
            for t in &targets {
                if expect_wrap(&fx.me, Some(&winfo), m, Some(t)) == Want::Ok {
                    combos.push((wh, uh, ws, m, t.info.clone()));
                }
            }
        }
    }
    let damage =
        prop_oneof![4 => tamper().prop_map(WrapDamage::Bytes), 1 => Just(WrapDamage::WrongTarget)];
    run(
        CASES,
        (select(combos), damage),
        |((wh, uh, _, m, t), damage)| {
            let me = &fx.me;
            let blob = fx.hsm.wrap_key(me, wh, m, t.handle).unwrap();
            let (bad, target) = match &damage {
                WrapDamage::Bytes(tm) => match tm.apply(&blob) {
                    Some(bad) => (bad, unwrap_target(&t)),
                    None => return Ok(()),
                },
                WrapDamage::WrongTarget => (
                    blob.clone(),
                    match t.spec.secret_len() {
                        Some(32) => UnwrapTarget::Secret(KeySpec::Aes128),
                        Some(_) => UnwrapTarget::Secret(KeySpec::Aes256),
                        None => UnwrapTarget::Secret(KeySpec::GenericSecret { bytes: 32 }),
                    },
                ),
            };
            let before = fx.snapshot();
            let got = fx.hsm.unwrap_key(
                me,
                uh,
                m,
                &bad,
                target,
                &KeyTemplate::labelled(&fx.label("tampered")),
            );
            prop_assert!(got.is_err(), "damaged {m} blob unwrapped ({damage:?})");
            fx.outcome("unwrap_key", &before, &got, Want::Err("invalid_input"))
        },
    );
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum Crafted {
    /// A secret value of the spec's length (or, with `Some`, of another length).
    Secret(KeySpec, Option<usize>, u64),
    /// A PKCS#8 key made by aws-lc-rs: 0..3 EC P-256/384/521, 3 Ed25519 v1, 4 Ed25519 v2.
    Pkcs8(usize, Option<Tamper>),
    Random(Vec<u8>),
}

fn crafted(specs: BoxedStrategy<KeySpec>) -> impl Strategy<Value = Crafted> {
    prop_oneof![
        4 => (specs, prop::option::weighted(0.2, 0usize..900), any::<u64>())
            .prop_map(|(s, l, seed)| Crafted::Secret(s, l, seed)),
        2 => (0usize..5, prop::option::weighted(0.3, tamper()))
            .prop_map(|(k, t)| Crafted::Pkcs8(k, t)),
        1 => small_bytes().prop_map(Crafted::Random),
    ]
}

/// Unwraps values wrapped outside the HSM under the known key: secrets become keys exactly
/// when their length fits the spec, PKCS#8 keys with their type detected; the check value is
/// the one computed outside.
fn unwrap_crafted(fx: &Fx, m: WM, c: &Crafted, strict_sizes: bool) -> TestCaseResult {
    let me = &fx.me;
    let (value, target, mut w, kcv) = match c {
        Crafted::Secret(spec, len, seed) => {
            let len = len.unwrap_or(spec.secret_len().unwrap_or(32));
            let value = filler(len, *seed);
            let fits = spec.secret_len() == Some(len)
                && (!strict_sizes || secret_spec_valid(*spec) || !spec.is_secret());
            let w = if fits && spec.is_secret() {
                Want::Ok
            } else {
                Want::Err("invalid_input")
            };
            let kcv = (w == Want::Ok).then(|| kcv_secret(*spec, &value));
            (value, UnwrapTarget::Secret(*spec), w, kcv)
        }
        Crafted::Pkcs8(kind, t) => {
            let rng = SystemRandom::new();
            let (der, spki) = match kind {
                0..=2 => {
                    let alg = [
                        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                        &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
                    ][*kind];
                    let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
                    let pair = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref()).unwrap();
                    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
                    (doc.as_ref().to_vec(), spki)
                }
                _ => {
                    let pair = Ed25519KeyPair::generate().unwrap();
                    let doc = if *kind == 3 {
                        pair.to_pkcs8v1().unwrap()
                    } else {
                        pair.to_pkcs8().unwrap()
                    };
                    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
                    (doc.as_ref().to_vec(), spki)
                }
            };
            match t.as_ref().and_then(|t| t.apply(&der)) {
                Some(bad) => (
                    bad,
                    UnwrapTarget::Private,
                    Want::OkOr("invalid_input"),
                    None,
                ),
                None => (der, UnwrapTarget::Private, Want::Ok, Some(kcv_spki(&spki))),
            }
        }
        Crafted::Random(b) => (
            b.clone(),
            UnwrapTarget::Private,
            Want::Err("invalid_input"),
            None,
        ),
    };
    // aes-kw takes multiples of 8 bytes, at least 16; aes-kwp at least 1 byte.
    let m = match m {
        WM::AesKw if value.len() < 16 || value.len() % 8 != 0 => WM::AesKwp,
        other => other,
    };
    let m = if value.is_empty() { WM::AesGcm } else { m };
    let blob = match m {
        WM::AesKw => aes_kw(&fx.known_kek_value, &value, false),
        WM::AesKwp => aes_kw(&fx.known_kek_value, &value, true),
        _ => gcm_seal(&fx.known_kek_value, &value, b""),
    };
    if let UnwrapTarget::Secret(spec) = target {
        if !spec.is_secret() {
            w = Want::Err("invalid_input");
        }
    }
    let before = fx.snapshot();
    let got = fx.hsm.unwrap_key(
        me,
        fx.known_kek,
        m,
        &blob,
        target,
        &KeyTemplate::labelled(&fx.label("crafted")),
    );
    fx.outcome(&format!("unwrap_key {m} {target:?}"), &before, &got, w)?;
    if let Ok(new) = got {
        if let (Some(kcv), Some(_)) = (kcv, c.secret_or_untampered()) {
            prop_assert_eq!(&new.attributes.check_value, &kcv);
        }
        if let UnwrapTarget::Secret(spec) = target {
            prop_assert_eq!(new.spec, spec);
        }
        prop_assert!(!new.attributes.local);
        fx.hsm.destroy_key(me, new.handle).unwrap();
        fx.unchanged("unwrap and destroy", &before)?;
    }
    Ok(())
}

impl Crafted {
    fn secret_or_untampered(&self) -> Option<()> {
        match self {
            Crafted::Secret(..) => Some(()),
            Crafted::Pkcs8(_, None) => Some(()),
            _ => None,
        }
    }
}

#[test]
fn unwrap_of_values_wrapped_outside_the_hsm() {
    let fx = Fx::new();
    run(
        CASES,
        (
            select(vec![WM::AesKw, WM::AesKwp, WM::AesGcm]),
            crafted(
                prop_oneof![4 => valid_secret_spec(), 1 => select(KeySpec::ASYMMETRIC.to_vec())]
                    .boxed(),
            ),
        ),
        |(m, c)| unwrap_crafted(&fx, m, &c, true),
    );
    fx.check_reopen();
}
