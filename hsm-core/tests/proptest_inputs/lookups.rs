//! key_info, public_key_spki, key_usage, list_keys, find_by_label.

use crate::common::*;

#[derive(Clone, Debug)]
struct Filter {
    label: Option<String>,
    class: Option<usize>,
    key_type: Option<String>,
    attributes: Vec<(AttributeName, bool)>,
}

fn filter() -> impl Strategy<Value = Filter> {
    (
        prop::option::weighted(0.3, text()),
        prop::option::weighted(0.4, 0usize..3),
        prop::option::weighted(
            0.3,
            select(vec![
                "aes".to_string(),
                "generic-secret".into(),
                "ec".into(),
                "rsa".into(),
                "ed25519".into(),
                "EC".into(),
                String::new(),
            ]),
        ),
        vec((select(AttributeName::ALL.to_vec()), any::<bool>()), 0..3),
    )
        .prop_map(|(label, class, key_type, attributes)| Filter {
            label,
            class,
            key_type,
            attributes,
        })
}

const CLASSES: [KeyClass; 3] = [KeyClass::Secret, KeyClass::Private, KeyClass::Public];

/// The page `list_keys` should return: the full list filtered here, and the next cursor.
fn expected_page(
    all: &[K],
    s: &Session,
    kf: &KeyFilter,
    after: Option<KeyHandle>,
    limit: usize,
) -> (Vec<KeyInfo>, Option<KeyHandle>) {
    let mut matching: Vec<KeyInfo> = all
        .iter()
        .filter(|k| visible(s, k))
        .map(|k| &k.info)
        .filter(|k| kf.label.as_ref().is_none_or(|l| &k.attributes.label == l))
        .filter(|k| kf.class.is_none_or(|c| k.class == c))
        .filter(|k| kf.key_type.as_ref().is_none_or(|t| k.spec.key_type() == t))
        .filter(|k| {
            kf.attributes
                .iter()
                .all(|(n, v)| k.attributes.get_bool(*n) == Some(*v))
        })
        .filter(|k| after.is_none_or(|a| k.handle > a))
        .cloned()
        .collect();
    matching.sort_by_key(|k| k.handle);
    let more = matching.len() > limit;
    matching.truncate(limit);
    let next = if more {
        matching.last().map(|k| k.handle)
    } else {
        None
    };
    (matching, next)
}

#[test]
fn lookups_with_any_handle_filter_and_page() {
    let fx = Fx::new();
    let limit = prop_oneof![
        4 => 1usize..40,
        1 => select(vec![0usize, 1, MAX_PAGE_SIZE, MAX_PAGE_SIZE + 1, usize::MAX]),
        1 => any::<usize>(),
    ];
    run(
        CASES,
        (
            session(),
            pick(),
            filter(),
            prop::option::of(pick()),
            limit,
            text(),
            0usize..3,
        ),
        |(s, k, f, after, limit, label, class)| {
            let s = fx.session(s);
            let h = fx.handle(&k);
            let info = fx.info(h);
            let all = fx.all_keys();
            let before = fx.snapshot();

            // key_info
            let w_info = want(|| {
                let i = info.as_ref().ok_or("key_not_found")?;
                if !visible(s, i) {
                    return Err("key_not_found");
                }
                Ok(Want::Ok)
            });
            let got = fx.hsm.key_info(s, h);
            check("key_info", &got, w_info)?;
            if let Ok(i) = &got {
                prop_assert_eq!(Some(i), info.as_ref().map(|k| &k.info));
            }
            // public_key_spki
            let got = fx.hsm.public_key_spki(s, h);
            let w = match (w_info, &info) {
                (Want::Ok, Some(i)) if i.class == KeyClass::Secret => {
                    Want::Err("mechanism_invalid")
                }
                (w, _) => w,
            };
            check("public_key_spki", &got, w)?;
            if let (Ok(spki), Some(i)) = (&got, &info) {
                prop_assert_eq!(spki.first(), Some(&0x30));
                prop_assert_eq!(&i.attributes.check_value, &kcv_spki(spki));
                if let Some(linked) = i.linked_handle {
                    let other = fx.hsm.public_key_spki(&fx.admin, linked).ok();
                    prop_assert_eq!(Some(spki), other.as_ref());
                }
            }
            // key_usage
            check("key_usage", &fx.hsm.key_usage(s, h), w_info)?;

            // list_keys, against the full list filtered here
            let kf = KeyFilter {
                label: f.label.clone(),
                class: f.class.map(|c| CLASSES[c]),
                key_type: f.key_type.clone(),
                attributes: f.attributes.clone(),
                owner: None,
            };
            let after = after.map(|p| fx.handle(&p));
            let w = want(|| {
                invalid_if(!(1..=MAX_PAGE_SIZE).contains(&limit))?;
                Ok(Want::Ok)
            });
            let got = fx.hsm.list_keys(s, &kf, after, limit);
            check("list_keys", &got, w)?;
            if let Ok(page) = got {
                let (keys, next) = expected_page(&all, s, &kf, after, limit);
                prop_assert_eq!(&page.keys, &keys);
                prop_assert_eq!(page.next, next);
            }

            // find_by_label, with a random or an existing label
            let label = if class == 0 && !all.is_empty() {
                all[k_index(&k) % all.len()].attributes.label.clone()
            } else {
                label
            };
            let cls = CLASSES[class];
            let got = fx.hsm.find_by_label(s, &label, cls);
            let found: Vec<&KeyInfo> = all
                .iter()
                .filter(|k| visible(s, k) && k.class == cls && k.attributes.label == label)
                .map(|k| &k.info)
                .collect();
            let w = match found.len() {
                0 => Want::Err("key_not_found"),
                1 => Want::Ok,
                _ => Want::Err("label_ambiguous"),
            };
            check("find_by_label", &got, w)?;
            if let Ok(one) = got {
                prop_assert_eq!(&one, found[0]);
            }
            fx.unchanged("lookups", &before)
        },
    );
}

fn k_index(p: &Pick) -> usize {
    match p {
        Pick::Key(i) => *i,
        Pick::Raw(h) => *h as usize,
    }
}
