//! set_attribute, share, unshare, destroy.

use crate::common::*;

#[test]
fn set_attribute_any_name_and_value() {
    let fx = Fx::new();
    let fitting = fx
        .mine()
        .iter()
        .map(|k| (0, fx.pick_of(k.handle)))
        .collect();
    run(
        CASES,
        (
            biased((session(), pick()), fitting),
            select(AttributeName::ALL.to_vec()),
            attr_value(),
        ),
        |((s, k), name, value)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let info = fx.info(h);
            let before = fx.snapshot();
            // The key as it should be afterwards, or the error.
            let expected: Result<KeyInfo, &str> = (|| {
                let i = if name == AttributeName::Trusted {
                    // Admins only, on any key they can see: not on another session's
                    // session objects (see `admins_set_trusted_only_on_keys_they_see`).
                    active_as(s, Role::Admin)?;
                    let k = info.as_ref().ok_or("key_not_found")?;
                    if k.scope.is_some_and(|id| id != s.id()) {
                        return Err("key_not_found");
                    }
                    k
                } else {
                    owned(s, info.as_ref())?
                };
                let a = &i.attributes;
                if name.is_read_only() || !a.modifiable {
                    return Err("attribute_violation");
                }
                let mut new = i.clone();
                match (name, &value) {
                    (AttributeName::Label, AttributeValue::Text(t)) => {
                        label_ok(t)?;
                        if t != &a.label {
                            fx.label_free(s, t, i.class)?;
                        }
                        new.attributes.label = t.clone();
                    }
                    (AttributeName::Id, AttributeValue::Text(t)) => {
                        id_ok(t)?;
                        new.attributes.id = t.clone();
                    }
                    (n, AttributeValue::Bool(v)) if a.get_bool(n).is_some() => {
                        let current = a.get_bool(n).unwrap();
                        let violation = match n {
                            AttributeName::Extractable => true,
                            AttributeName::Modifiable => *v && !current,
                            AttributeName::WrapWithTrusted | AttributeName::Sensitive => {
                                !*v && current
                            }
                            // Making a session key persistent is not supported (documented).
                            AttributeName::Token => *v != current,
                            _ => false,
                        };
                        need(!violation)?;
                        set_bool(&mut new.attributes, n, *v);
                        if n == AttributeName::Sensitive {
                            new.attributes.always_sensitive &= *v;
                        }
                        // A trusted key may itself be wrapped only by trusted keys.
                        if n == AttributeName::Trusted && *v {
                            new.attributes.wrap_with_trusted = true;
                        }
                    }
                    _ => return Err("invalid_input"),
                }
                // Key-usage separation, over the pair; a lone public key is exempt.
                let linked = i.linked_handle.and_then(|l| fx.info(l));
                if i.class != KeyClass::Public || linked.is_some() {
                    separated(&new.attributes, linked.as_ref().map(|l| &l.attributes))?;
                }
                Ok(new)
            })();
            let w = match &expected {
                Ok(_) => Want::Ok,
                Err(c) => Want::Err(c),
            };
            let got = fx.hsm.set_attribute(s, h, name, value.clone());
            fx.outcome("set_attribute", &before, &got, w)?;
            let (Ok(returned), Ok(expected)) = (got, expected) else {
                return Ok(());
            };
            prop_assert_eq!(&returned, &expected);
            prop_assert_eq!(fx.info(h).map(|k| k.info), Some(expected));
            // Nothing else changed.
            let after = fx.snapshot();
            let others = |p: &KeyPage| -> Vec<KeyInfo> {
                p.keys.iter().filter(|k| k.handle != h).cloned().collect()
            };
            prop_assert_eq!(others(&after.1), others(&before.1));
            Ok(())
        },
    );
    fx.check_reopen();
}

fn user_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec![
            "alice".to_string(),
            PROXY_USER.into(),
            "admin".into(),
            "nobody".into(),
            String::new(),
        ]),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

#[test]
fn share_and_unshare_any_key_with_anyone() {
    let fx = Fx::new();
    let mut fitting = Vec::new();
    for k in fx.mine() {
        if k.class != KeyClass::Public {
            for share in [true, true, false] {
                fitting.push((0, fx.pick_of(k.handle), share, "alice".to_string()));
            }
        }
    }
    let call = biased((session(), pick(), any::<bool>(), user_name()), fitting);
    run(CASES, call, |(s, k, share, user)| {
        let s = fx.session(s);
        let h = fx.handle(&k);
        let info = fx.info(h);
        let before = fx.snapshot();
        let w = want(|| {
            let i = owned(s, info.as_ref())?;
            if share {
                match user.as_str() {
                    "alice" | PROXY_USER => {}
                    // Not a crypto-user, or no user at all: the same answer.
                    _ => return Err("invalid_input"),
                }
                invalid_if(user == s.user())?;
            } else {
                invalid_if(!i.shared_with.contains(&user))?;
            }
            Ok(Want::Ok)
        });
        let got = if share {
            fx.hsm.share_key(s, h, &user)
        } else {
            fx.hsm.unshare_key(s, h, &user)
        };
        fx.outcome(
            if share { "share_key" } else { "unshare_key" },
            &before,
            &got,
            w,
        )?;
        let (Ok(returned), Some(old)) = (got, info) else {
            return Ok(());
        };
        let mut expected = old.info.clone();
        expected.shared_with.retain(|u| u != &user);
        if share {
            expected.shared_with.push(user.clone());
            expected.shared_with.sort();
        }
        prop_assert_eq!(&returned, &expected);
        prop_assert_eq!(fx.info(h).map(|k| k.info), Some(expected.clone()));
        // The user sees (and may use) the key exactly while it is shared (session objects
        // stay with their session).
        let grantee = match user.as_str() {
            "alice" => &fx.alice,
            _ => &fx.me,
        };
        if old.class != KeyClass::Public && grantee.user() != old.owner && old.scope.is_none() {
            prop_assert_eq!(fx.hsm.key_info(grantee, h).is_ok(), share);
        }
        Ok(())
    });
    fx.check_reopen();
}

#[derive(Clone, Debug)]
enum DestroyTarget {
    Pick(Pick),
    /// A new key of the proxy user: (pair?, destroyable, with a signer held).
    Fresh(bool, bool),
}

#[test]
fn destroy_any_key() {
    let fx = Fx::new();
    let target = prop_oneof![
        1 => pick().prop_map(DestroyTarget::Pick),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(p, d)| DestroyTarget::Fresh(p, d)),
    ];
    run(CASES, (session(), target), |(s, t)| {
        let s = fx.session(s);
        let (h, signer) = match &t {
            DestroyTarget::Pick(p) => (fx.handle(p), None),
            DestroyTarget::Fresh(pair, destroyable) => {
                let label = fx.label("doomed");
                let tmpl = usage_data(&label).with(AttributeName::Destroyable, *destroyable);
                if *pair {
                    let (p, _) = fx
                        .hsm
                        .generate_key_pair(&fx.me, KeySpec::EcP256, &tmpl, &usage_public(&label))
                        .unwrap();
                    (p.handle, Some(fx.hsm.signer(&fx.me, p.handle).unwrap()))
                } else {
                    let k = fx
                        .hsm
                        .generate_secret_key(&fx.me, KeySpec::Aes128, &tmpl)
                        .unwrap();
                    (k.handle, None)
                }
            }
        };
        let info = fx.info(h);
        let before = fx.snapshot();
        let w = want(|| {
            let i = owned(s, info.as_ref())?;
            need(i.attributes.destroyable)?;
            Ok(Want::Ok)
        });
        let got = fx.hsm.destroy_key(s, h);
        fx.outcome("destroy_key", &before, &got, w)?;
        if got.is_ok() {
            prop_assert!(fx.info(h).is_none());
            prop_assert!(!fx.all_keys().iter().any(|k| k.handle == h));
            let again = fx.hsm.destroy_key(s, h);
            check("destroy again", &again, Want::Err("key_not_found"))?;
            let sig = fx.hsm.sign(
                s,
                h,
                SM::EcdsaSha256,
                SignInput::Message(b"m"),
                SignatureEncoding::Der,
            );
            check("sign destroyed", &sig, Want::Err("key_not_found"))?;
            if let Some(signer) = signer {
                let r = signer.sign(SM::EcdsaSha256, b"m");
                check("KeySigner::sign destroyed", &r, Want::Err("key_not_found"))?;
            }
        }
        Ok(())
    });
    fx.check_reopen();
}
