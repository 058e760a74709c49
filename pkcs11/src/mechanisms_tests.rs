use cryptoki_sys::*;

use super::*;

fn mech(kind: CK_MECHANISM_TYPE, param: Param) -> Mech {
    Mech { kind, param }
}

#[test]
fn ecdsa_digests_are_cut_or_padded_to_the_curve_as_fips_186_says() {
    let d48: Vec<u8> = (1..=48).collect();
    // P-256 signs the leftmost 256 bits of a SHA-384 digest.
    assert_eq!(
        resolve(ApiMech::Ecdsa(32), &d48).unwrap(),
        ("ecdsa-sha256", d48[..32].to_vec())
    );
    // P-521 takes a SHA-384 digest's value: zero bytes on the left.
    let (name, padded) = resolve(ApiMech::Ecdsa(64), &d48).unwrap();
    assert_eq!(name, "ecdsa-sha512");
    assert_eq!((&padded[..16], &padded[16..]), (&[0u8; 16][..], &d48[..]));
    assert_eq!(
        resolve(ApiMech::Ecdsa(48), &d48).unwrap(),
        ("ecdsa-sha384", d48.clone())
    );
    assert_eq!(
        resolve(ApiMech::Ecdsa(32), &[0; 19]),
        Err(CKR_DATA_LEN_RANGE)
    );
    assert_eq!(
        resolve(ApiMech::Ecdsa(32), &[0; 65]),
        Err(CKR_DATA_LEN_RANGE)
    );
}

#[test]
fn rsa_pkcs_reads_sha2_digest_infos_only() {
    // The DigestInfo prefix of RFC 8017 §9.2 note 1, then a SHA-256 digest.
    let mut info = DIGEST_INFOS[0].0.to_vec();
    info.extend_from_slice(&[7; 32]);
    let (name, digest) = resolve(ApiMech::RsaByDigestInfo, &info).unwrap();
    assert_eq!((name, digest), ("rsa-pkcs1-sha256", vec![7u8; 32]));
    // A digest of the wrong length for its algorithm, a bare digest, MD5‖SHA-1: refused.
    let short = &info[..info.len() - 1];
    assert_eq!(
        resolve(ApiMech::RsaByDigestInfo, short),
        Err(CKR_DATA_INVALID)
    );
    assert_eq!(
        resolve(ApiMech::RsaByDigestInfo, &[7; 32]),
        Err(CKR_DATA_INVALID)
    );
    assert_eq!(
        resolve(ApiMech::RsaByDigestInfo, &[7; 36]),
        Err(CKR_DATA_INVALID)
    );
}

#[test]
fn pss_parameters_must_be_the_hsms() {
    let pss = |hash, mgf, salt_len| Param::Pss {
        hash,
        mgf,
        salt_len,
    };
    let good = pss(CKM_SHA256, CKG_MGF1_SHA256, 32);
    let plan = sign_plan(&mech(CKM_SHA256_RSA_PKCS_PSS, good), "rsa", 0).unwrap();
    assert_eq!(plan.api, ApiMech::Fixed("rsa-pss-sha256"));
    assert_eq!(plan.feed, Feed::HashHere(CKM_SHA256));
    for bad in [
        pss(CKM_SHA256, CKG_MGF1_SHA256, 20),
        pss(CKM_SHA256, CKG_MGF1_SHA384, 32),
        pss(CKM_SHA384, CKG_MGF1_SHA384, 48),
        Param::None,
    ] {
        let r = sign_plan(&mech(CKM_SHA256_RSA_PKCS_PSS, bad), "rsa", 0);
        assert_eq!(r.unwrap_err(), CKR_MECHANISM_PARAM_INVALID);
    }
}

#[test]
fn mechanisms_must_fit_the_key_type() {
    let plan = |kind, key_type| sign_plan(&mech(kind, Param::None), key_type, 32).unwrap_err();
    assert_eq!(plan(CKM_ECDSA, "rsa"), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(plan(CKM_SHA256_HMAC, "ec"), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(plan(CKM_MD5, "rsa"), CKR_MECHANISM_INVALID);
    let kw = mech(CKM_AES_KEY_WRAP, Param::None);
    assert_eq!(
        wrap_mech(&kw, "rsa"),
        Err(CKR_WRAPPING_KEY_TYPE_INCONSISTENT)
    );
    let kwp = mech(CKM_AES_KEY_WRAP_KWP, Param::None);
    assert_eq!(wrap_mech(&kwp, "aes"), Ok("aes-kwp"));
    let odd_iv = mech(CKM_AES_KEY_WRAP, Param::Bytes(vec![1; 8]));
    assert_eq!(wrap_mech(&odd_iv, "aes"), Err(CKR_MECHANISM_PARAM_INVALID));
}

proptest::proptest! {
    /// A digest shorter than the curve's is the same integer once padded; a longer one is cut
    /// to its leftmost bytes; the length is always the mechanism's.
    #[test]
    fn ecdsa_digests_keep_their_value(digest in proptest::collection::vec(proptest::num::u8::ANY, 20..=64), n in proptest::sample::select(vec![32usize, 48, 64])) {
        let (_, out) = resolve(ApiMech::Ecdsa(n), &digest).unwrap();
        proptest::prop_assert_eq!(out.len(), n);
        if digest.len() <= n {
            proptest::prop_assert!(out[..n - digest.len()].iter().all(|b| *b == 0));
            proptest::prop_assert_eq!(&out[n - digest.len()..], &digest[..]);
        } else {
            proptest::prop_assert_eq!(&out[..], &digest[..n]);
        }
    }

    /// Any bytes as input to `CKM_RSA_PKCS`: a refusal or a SHA-2 digest, never a panic.
    #[test]
    fn digest_info_parsing_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
        if let Ok((_, digest)) = resolve(ApiMech::RsaByDigestInfo, &data) {
            proptest::prop_assert!([32, 48, 64].contains(&digest.len()));
        }
    }
}
