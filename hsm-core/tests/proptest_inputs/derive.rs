//! derive.

use crate::common::*;

#[derive(Clone, Debug)]
enum Peer {
    /// A fresh aws-lc-rs key on curve `curve` (see `CURVES`), as SPKI or raw point, maybe
    /// damaged.
    Fresh {
        curve: usize,
        spki: bool,
        damage: Option<Tamper>,
    },
    /// The SPKI of one of the fixture's public keys.
    Fixture(usize),
    Random(Vec<u8>),
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        5 => (0usize..4, any::<bool>(), prop::option::weighted(0.3, tamper()))
            .prop_map(|(curve, spki, damage)| Peer::Fresh { curve, spki, damage }),
        2 => any::<usize>().prop_map(Peer::Fixture),
        1 => sized_bytes().prop_map(Peer::Random),
    ]
}

/// The peer's bytes, whether they are a valid key on the base key's curve (the outcome the
/// peer alone predicts), and the private half when the test made it.
fn peer_bytes(
    fx: &Fx,
    peer: &Peer,
    base_curve: Option<usize>,
) -> (Vec<u8>, Want, Option<agreement::PrivateKey>) {
    let on_curve = |same: bool| {
        if same {
            Want::Ok
        } else {
            Want::Err("invalid_input")
        }
    };
    match peer {
        Peer::Fresh {
            curve,
            spki,
            damage,
        } => {
            let p = agreement::PrivateKey::generate(CURVES[*curve]).unwrap();
            let public = p.compute_public_key().unwrap();
            let bytes = if *spki {
                public.as_der().unwrap().as_ref().to_vec()
            } else {
                public.as_ref().to_vec()
            };
            match damage.as_ref().and_then(|t| t.apply(&bytes)) {
                Some(bad) => (bad, Want::OkOr("invalid_input"), None),
                None => (bytes, on_curve(base_curve == Some(*curve)), Some(p)),
            }
        }
        Peer::Fixture(i) => {
            let (spec, _, u) = fx.pairs[i % fx.pairs.len()];
            let same = curve_of(spec).is_some() && curve_of(spec) == base_curve;
            (
                fx.hsm.public_key_spki(&fx.admin, u).unwrap(),
                on_curve(same),
                None,
            )
        }
        Peer::Random(b) => (b.clone(), Want::Err("invalid_input"), None),
    }
}

/// The derived key's attributes: the template's, no more exportable than the base key.
fn derived_attributes(t: &KeyTemplate, base: Option<&K>) -> Result<Attributes, &'static str> {
    build(t, KeyClass::Secret).map(|mut a| {
        if let Some(b) = base {
            let b = &b.attributes;
            a.local = false;
            a.extractable &= b.extractable;
            a.never_extractable = b.never_extractable && !a.extractable;
            a.always_sensitive = b.always_sensitive && a.sensitive;
            a.wrap_with_trusted |= b.wrap_with_trusted;
        }
        a
    })
}

#[test]
fn derive_any_key_with_any_peer() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        if let (Some(curve), true, KeyClass::Private) =
            (curve_of(k.spec), k.attributes.derive, k.class)
        {
            for spki in [false, true] {
                let peer = Peer::Fresh {
                    curve,
                    spki,
                    damage: None,
                };
                fitting.push((0, fx.pick_of(k.handle), peer));
            }
        }
    }
    let call = biased((session(), pick(), peer()), fitting);
    run(
        CASES,
        (
            call,
            small_bytes(),
            small_bytes(),
            prop_oneof![
                4 => valid_secret_spec(),
                1 => select(KeySpec::ASYMMETRIC.to_vec()),
                1 => any::<u16>().prop_map(|bytes| KeySpec::GenericSecret { bytes }),
            ],
            template(),
        ),
        |((s, k, peer), salt, info, spec, (l, attrs))| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let base = fx.info(h);
            let base_curve = base.as_ref().and_then(|b| curve_of(b.spec));
            let (peer_bytes, peer_w, mine) = peer_bytes(&fx, &peer, base_curve);
            let t = make_template(&fx, &l, &attrs, KeyClass::Secret);
            let built = derived_attributes(&t, base.as_ref());
            let before = fx.snapshot();
            let w = want(|| {
                let b = usable(s, base.as_ref())?;
                need(b.attributes.derive)?;
                if b.spec.key_type() != "ec" || b.class != KeyClass::Private {
                    return Err("mechanism_invalid");
                }
                invalid_if(!secret_spec_valid(spec))?;
                let a = built.clone()?;
                separated(&a, None)?;
                // The peer key is read before the label is checked.
                match (peer_w, fx.label_free(s, &a.label, KeyClass::Secret)) {
                    (Want::Err(e), _) => Err(e),
                    (Want::OkOr(e), Err(label)) => Ok(Want::ErrEither(e, label)),
                    (_, Err(label)) => Err(label),
                    (w, Ok(_)) => Ok(w),
                }
            });
            let got = fx.hsm.derive_key(
                s,
                h,
                &EcdhParams {
                    peer_public: &peer_bytes,
                    salt: &salt,
                    info: &info,
                },
                spec,
                &t,
            );
            fx.outcome("derive_key", &before, &got, w)?;
            let Ok(new) = got else {
                return Ok(());
            };
            prop_assert_eq!(new.spec, spec);
            prop_assert_eq!(new.class, KeyClass::Secret);
            let mut expected = built.unwrap();
            expected.check_value = new.attributes.check_value.clone();
            prop_assert_eq!(&new.attributes, &expected);
            if let (Some(p), Some(curve)) = (&mine, base_curve) {
                let spki = fx.hsm.public_key_spki(&fx.admin, h).unwrap();
                let z = ecdh(p, CURVES[curve], &spki).unwrap();
                let len = spec.secret_len().unwrap();
                let value = hkdf_sha256(&z, &salt, &info, len).unwrap();
                prop_assert_eq!(&new.attributes.check_value, &kcv_secret(spec, &value));
            }
            if new.attributes.destroyable {
                fx.hsm.destroy_key(s, new.handle).unwrap();
                fx.unchanged("derive and destroy", &before)?;
            }
            Ok(())
        },
    );
    fx.check_reopen();
}
