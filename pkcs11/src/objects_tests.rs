use cryptoki_sys::*;

use super::*;

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

#[test]
fn templates_map_onto_the_hsms_attributes_with_pkcs11_defaults() {
    let t = Template::parse(&[
        (CKA_LABEL, b"web".to_vec()),
        (CKA_ID, vec![0xab, 0x01]),
        (CKA_SIGN, vec![1]),
        (CKA_PRIVATE, vec![0]),
    ])
    .unwrap();
    let k = t
        .key_template(CKO_PRIVATE_KEY, "unused", &["decrypt"])
        .unwrap();
    assert_eq!(k.label, "web");
    assert_eq!(k.id.as_deref(), Some("ab01"));
    // A usage attribute was given: no defaults added; CKA_TOKEN absent: a session object.
    assert_eq!(k.attributes.get("sign"), Some(&true));
    assert_eq!(k.attributes.get("decrypt"), None);
    assert_eq!(k.attributes.get("token"), Some(&false));
    let bare = Template::parse(&[(CKA_TOKEN, vec![1])]).unwrap();
    let k = bare
        .key_template(CKO_SECRET_KEY, "p11-x", &["encrypt", "decrypt"])
        .unwrap();
    assert_eq!(
        (k.label.as_str(), k.attributes.get("token")),
        ("p11-x", Some(&true))
    );
    assert_eq!(k.attributes.get("encrypt"), Some(&true));
}

#[test]
fn bad_templates_get_the_right_codes() {
    let parse = |a: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>| Template::parse(&a).unwrap_err();
    assert_eq!(
        parse(vec![(CKA_SIGN, vec![1, 0])]),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    assert_eq!(
        parse(vec![(CKA_CLASS, vec![1])]),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    assert_eq!(
        parse(vec![(CKA_LABEL, vec![0xff])]),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    assert_eq!(parse(vec![(CKA_LOCAL, vec![1])]), CKR_ATTRIBUTE_READ_ONLY);
    assert_eq!(
        parse(vec![(CKA_VENDOR_DEFINED, vec![])]),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    let wrong_class = Template::parse(&[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))]).unwrap();
    assert_eq!(
        wrong_class
            .key_template(CKO_SECRET_KEY, "x", &[])
            .unwrap_err(),
        CKR_TEMPLATE_INCONSISTENT
    );
}

#[test]
fn key_specs_come_from_curves_sizes_and_lengths() {
    let ec = |params: &[u8]| Template {
        ec_params: Some(params.to_vec()),
        ..Template::default()
    };
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    assert_eq!(pair_spec(CKM_EC_KEY_PAIR_GEN, &ec(&p256)), Ok("ec-p256"));
    // secp256k1 (1.3.132.0.10) is not among the HSM's curves.
    let k1 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    assert_eq!(
        pair_spec(CKM_EC_KEY_PAIR_GEN, &ec(&k1)),
        Err(CKR_CURVE_NOT_SUPPORTED)
    );
    assert_eq!(
        pair_spec(CKM_EC_EDWARDS_KEY_PAIR_GEN, &ec(b"\x13\x0cedwards25519")),
        Ok("ed25519")
    );
    let rsa = |bits, e: &[u8]| Template {
        modulus_bits: Some(bits),
        public_exponent: Some(e.to_vec()),
        ..Template::default()
    };
    assert_eq!(
        pair_spec(CKM_RSA_PKCS_KEY_PAIR_GEN, &rsa(3072, &[1, 0, 1])),
        Ok("rsa-3072")
    );
    assert_eq!(
        pair_spec(CKM_RSA_PKCS_KEY_PAIR_GEN, &rsa(1024, &[1, 0, 1])),
        Err(CKR_KEY_SIZE_RANGE)
    );
    assert_eq!(
        pair_spec(CKM_RSA_PKCS_KEY_PAIR_GEN, &rsa(2048, &[3])),
        Err(CKR_ATTRIBUTE_VALUE_INVALID)
    );
    assert_eq!(secret_spec("aes", Some(24)).unwrap(), "aes-192");
    assert_eq!(secret_spec("aes", Some(20)), Err(CKR_KEY_SIZE_RANGE));
    assert_eq!(
        secret_spec("generic-secret", Some(801)),
        Err(CKR_KEY_SIZE_RANGE)
    );
    assert_eq!(secret_spec("aes", None), Err(CKR_TEMPLATE_INCOMPLETE));
}

proptest::proptest! {
    /// Any attribute list parses to a template or a PKCS#11 code; never a panic.
    #[test]
    fn any_template_parses_or_is_refused(attrs in proptest::collection::vec((0u64..0x700, proptest::collection::vec(proptest::num::u8::ANY, 0..12)), 0..8)) {
        let attrs: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> = attrs.into_iter().map(|(t, v)| (t as CK_ATTRIBUTE_TYPE, v)).collect();
        let _ = Template::parse(&attrs).map(|t| t.key_template(CKO_SECRET_KEY, "x", &["sign"]));
    }
}
