use std::str::FromStr;

use crate::*;

fn round_trip<T>(value: &T, wire: &str)
where
    T: FromStr + std::fmt::Display + serde::Serialize + serde::de::DeserializeOwned + PartialEq,
    T: std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    assert_eq!(value.to_string(), wire);
    assert_eq!(&wire.parse::<T>().unwrap(), value, "{wire}");
    let json = serde_json::to_string(value).unwrap();
    assert_eq!(json, format!("\"{wire}\""));
    assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value);
}

#[test]
fn every_key_class_role_and_mechanism_round_trips_through_its_wire_string() {
    let classes = ["secret", "private", "public"];
    assert_eq!(KeyClass::ALL.len(), classes.len());
    for (c, wire) in KeyClass::ALL.iter().zip(classes) {
        round_trip(c, wire);
        assert_eq!(*c, wire);
    }
    let roles = ["admin", "crypto-user"];
    assert_eq!(Role::ALL.len(), roles.len());
    for (r, wire) in Role::ALL.iter().zip(roles) {
        round_trip(r, wire);
    }
    for m in Mechanism::ALL {
        round_trip(m, m.as_str());
        assert_eq!(String::from(*m), m.as_str());
    }
    assert_eq!(Mechanism::ALL.len(), 22);
    assert!("rsa-2048".parse::<KeyClass>().is_err());
    assert_eq!(
        "root".parse::<Role>().unwrap_err().to_string(),
        "unknown role \"root\""
    );
    assert!("ecdsa-sha1".parse::<Mechanism>().is_err());
}

#[test]
fn every_key_spec_round_trips_through_its_wire_string() {
    let fixed = [
        "aes-128", "aes-192", "aes-256", "ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072",
        "rsa-4096", "ed25519",
    ];
    for (s, wire) in KeySpec::FIXED.iter().zip(fixed) {
        round_trip(s, wire);
    }
    for bytes in [1u16, 32, 800] {
        round_trip(
            &KeySpec::GenericSecret { bytes },
            &format!("generic-secret-{bytes}"),
        );
    }
    for bad in [
        "generic-secret-",
        "generic-secret-032",
        "generic-secret-x",
        "aes-512",
        "",
    ] {
        assert!(bad.parse::<KeySpec>().is_err(), "{bad}");
    }
    assert_eq!(KeySpec::EcP256, "ec-p256");
}

#[test]
fn every_error_code_round_trips_and_unknown_codes_are_kept() {
    for c in ErrorCode::KNOWN {
        round_trip(c, c.as_str());
    }
    let codes: std::collections::HashSet<_> = ErrorCode::KNOWN.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes.len(), ErrorCode::KNOWN.len(), "a wire string twice");
    let newer: ErrorCode = "quota_exceeded".parse().unwrap();
    assert_eq!(newer, ErrorCode::Other("quota_exceeded".into()));
    round_trip(&newer, "quota_exceeded");
    let body: ErrorBody =
        serde_json::from_str(r#"{"code":"key_not_found","message":"no key"}"#).unwrap();
    assert_eq!(body.code, ErrorCode::KeyNotFound);
    assert_eq!(body.code, "key_not_found");
    assert_eq!(body.to_string(), "key_not_found: no key");
}

#[test]
fn base64_fields_are_standard_padded_base64_and_round_trip() {
    let bytes = [0u8, 0xfb, 0xff, 0x10, 0x20];
    let b = Base64::encode(&bytes);
    assert_eq!(b.as_str(), "APv/ECA=");
    let w = Wrapped { wrapped: b };
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(json, r#"{"wrapped":"APv/ECA="}"#);
    let back: Wrapped = serde_json::from_str(&json).unwrap();
    assert_eq!(back.wrapped.decode().unwrap(), bytes);
    // Decoded where used: a bad field parses, and fails only when decoded.
    let bad: Wrapped = serde_json::from_str(r#"{"wrapped":"APv_ECA"}"#).unwrap();
    assert!(bad.wrapped.decode().is_err());

    let secret = SecretBase64::encode(&bytes);
    assert_eq!(secret.expose_secret(), "APv/ECA=");
    let p = Plaintext { plaintext: secret };
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, r#"{"plaintext":"APv/ECA="}"#);
    let back: Plaintext = serde_json::from_str(&json).unwrap();
    assert_eq!(&back.plaintext.decode().unwrap()[..], bytes);
}

#[test]
fn requests_serialize_as_the_api_documents_them() {
    let t = KeyTemplate::new("k").with("sign", true);
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#"{"label":"k","attributes":{"sign":true}}"#
    );
    let q = ListQuery {
        key_type: Some("ec".into()),
        limit: Some(5),
        ..ListQuery::default()
    };
    assert_eq!(
        serde_json::to_string(&q).unwrap(),
        r#"{"type":"ec","limit":5}"#
    );
    assert!(serde_json::from_str::<KeyTemplate>(r#"{"label":"k","x":1}"#).is_err());
}

#[test]
fn secrets_never_show_in_debug() {
    let login = LoginRequest {
        username: "alice".into(),
        password: Password::from("hunter2-password"),
        ttl_seconds: None,
    };
    let enc = EncryptRequest {
        key: 1,
        mechanism: "aes-gcm".into(),
        plaintext: SecretBase64::encode(b"top secret value"),
        aad: None,
        key_version: None,
        iv: None,
    };
    let token = LoginResponse {
        token: SessionToken::new("f00dfeedf00dfeed".into()),
        expires_in_seconds: 60,
        username: "alice".into(),
        role: Role::CryptoUser,
    };
    let random = RandomBytes {
        bytes: SecretBase64::encode(b"random key bytes"),
    };
    let printed = format!("{login:?} {enc:?} {token:?} {random:?}");
    for secret in [
        "hunter2-password",
        "f00dfeedf00dfeed",
        SecretBase64::encode(b"top secret value").expose_secret(),
        SecretBase64::encode(b"random key bytes").expose_secret(),
    ] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(printed.contains("Password(<redacted>)"));
    assert!(printed.contains("SessionToken(<redacted>)"));
    assert!(printed.contains("SecretBase64(<redacted>)"));
    // The wire still carries them.
    assert!(serde_json::to_string(&login)
        .unwrap()
        .contains("hunter2-password"));
}

#[test]
fn key_versions_on_the_wire_stay_compatible_with_older_peers() {
    // An older server's answers: no key_version, no versioned form, no version fields.
    let ct: Ciphertext = serde_json::from_str(r#"{"ciphertext":"YWJj"}"#).unwrap();
    assert_eq!((ct.key_version, ct.versioned.as_ref()), (1, None));
    let sig: Signature = serde_json::from_str(r#"{"signature":"YWJj"}"#).unwrap();
    assert_eq!(sig.key_version, 1);
    // An older client's requests: bare base64, no key_version; still version 1.
    let d: DecryptRequest =
        serde_json::from_str(r#"{"key":1,"mechanism":"aes-gcm","ciphertext":"YWJj"}"#).unwrap();
    assert_eq!(
        d.ciphertext.decode_with(d.key_version).unwrap(),
        (1, b"abc".to_vec())
    );
    // A newer client's: the kw:vN: form in the same field.
    let d: DecryptRequest =
        serde_json::from_str(r#"{"key":1,"mechanism":"aes-gcm","ciphertext":"kw:v3:YWJj"}"#)
            .unwrap();
    assert_eq!(
        d.ciphertext.decode_with(d.key_version).unwrap(),
        (3, b"abc".to_vec())
    );
    // Requests without a version send no key_version field, for older servers.
    let e = EncryptRequest {
        key: 1,
        mechanism: "aes-gcm".into(),
        plaintext: SecretBase64::encode(b"x"),
        aad: None,
        key_version: None,
        iv: None,
    };
    assert!(!serde_json::to_string(&e).unwrap().contains("key_version"));
    assert_eq!(
        "key_version_retired".parse::<ErrorCode>().unwrap(),
        ErrorCode::KeyVersionRetired
    );
}

#[test]
fn data_key_wire_shapes_and_a_redacted_debug() {
    let req: crate::DataKeyRequest =
        serde_json::from_str(r#"{"key":4,"mechanism":"aes-kwp"}"#).unwrap();
    assert_eq!((req.key, req.bytes, req.key_version), (4, 32, None));
    assert!(serde_json::from_str::<crate::DataKeyRequest>(
        r#"{"key":4,"mechanism":"aes-kwp","length":32}"#
    )
    .is_err());
    let key = crate::DataKey {
        plaintext: SecretBase64::encode(b"data key bytes, thirty-two long!"),
        wrapped: Base64::encode(b"wrapped"),
        key_version: 1,
    };
    let json = serde_json::to_string(&key).unwrap();
    assert_eq!(
        json,
        r#"{"plaintext":"ZGF0YSBrZXkgYnl0ZXMsIHRoaXJ0eS10d28gbG9uZyE=","wrapped":"d3JhcHBlZA==","key_version":1}"#
    );
    let shown = format!("{key:?}");
    assert!(shown.contains("SecretBase64(<redacted>)"), "{shown}");
    assert!(!shown.contains("ZGF0YSBr"), "{shown}");
    let unwrap: crate::DataKeyUnwrapRequest = serde_json::from_str(
        r#"{"key":4,"mechanism":"rsa-oaep-sha256","wrapped":"AA==","key_version":1}"#,
    )
    .unwrap();
    assert_eq!(unwrap.wrapped.decode().unwrap(), [0]);
}
