use cryptoki_sys::*;

use super::*;

fn mech(kind: CK_MECHANISM_TYPE, param: Param) -> Mech {
    Mech { kind, param }
}

#[test]
fn ecdsa_picks_the_hash_by_digest_length_and_refuses_others() {
    assert_eq!(
        resolve(ApiMech::EcdsaByDigestLength, &[0; 32]).unwrap().0,
        "ecdsa-sha256"
    );
    assert_eq!(
        resolve(ApiMech::EcdsaByDigestLength, &[0; 48]).unwrap().0,
        "ecdsa-sha384"
    );
    assert_eq!(
        resolve(ApiMech::EcdsaByDigestLength, &[0; 64]).unwrap().0,
        "ecdsa-sha512"
    );
    assert_eq!(
        resolve(ApiMech::EcdsaByDigestLength, &[0; 20]),
        Err(CKR_DATA_LEN_RANGE)
    );
}

#[test]
fn rsa_pkcs_reads_sha2_digest_infos_only() {
    // openssl dgst -sha256 -binary | the DigestInfo prefix of RFC 8017 §9.2 note 1
    let mut info = DIGEST_INFOS[0].0.to_vec();
    info.extend_from_slice(&[7; 32]);
    let (name, digest) = resolve(ApiMech::RsaByDigestInfo, &info).unwrap();
    assert_eq!((name, digest), ("rsa-pkcs1-sha256", &[7u8; 32][..]));
    // A digest of the wrong length for its algorithm, a bare digest, MD5‖SHA-1: refused.
    assert_eq!(
        resolve(ApiMech::RsaByDigestInfo, &info[..info.len() - 1]),
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
    let good = Param::Pss {
        hash: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        salt_len: 32,
    };
    let plan = sign_plan(&mech(CKM_SHA256_RSA_PKCS_PSS, good), "rsa").unwrap();
    assert_eq!(plan.api, ApiMech::Fixed("rsa-pss-sha256"));
    assert_eq!(plan.feed, Feed::HashHere(CKM_SHA256));
    for bad in [
        Param::Pss {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            salt_len: 20,
        },
        Param::Pss {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA384,
            salt_len: 32,
        },
        Param::Pss {
            hash: CKM_SHA384,
            mgf: CKG_MGF1_SHA384,
            salt_len: 48,
        },
        Param::None,
    ] {
        let r = sign_plan(&mech(CKM_SHA256_RSA_PKCS_PSS, bad), "rsa");
        assert_eq!(r.unwrap_err(), CKR_MECHANISM_PARAM_INVALID);
    }
}

#[test]
fn mechanisms_must_fit_the_key_type() {
    assert_eq!(
        sign_plan(&mech(CKM_ECDSA, Param::None), "rsa").unwrap_err(),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        sign_plan(&mech(CKM_SHA256_HMAC, Param::None), "ec").unwrap_err(),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        sign_plan(&mech(CKM_MD5, Param::None), "rsa").unwrap_err(),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(
        wrap_mech(&mech(CKM_AES_KEY_WRAP, Param::None), "rsa"),
        Err(CKR_WRAPPING_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        wrap_mech(&mech(CKM_AES_KEY_WRAP_KWP, Param::None), "aes"),
        Ok("aes-kwp")
    );
    assert_eq!(
        wrap_mech(&mech(CKM_AES_KEY_WRAP, Param::Bytes(vec![1; 8])), "aes"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}
