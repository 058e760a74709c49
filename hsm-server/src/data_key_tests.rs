//! `POST /v1/crypto/data-key` and `/v1/crypto/data-key/unwrap` through the router: round
//! trips under AES and RSA KEKs, the policy's refusals as the API's error codes, bad input.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::tests::{api, b64, Api};

async fn user(a: &Api) -> String {
    let admin = a.login("admin", "admin-password").await;
    let (s, v) = a
        .call(
            "POST",
            "/v1/users",
            Some(&admin),
            Some(json!({"username": "alice", "role": "crypto-user", "password": "alice-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    a.login("alice", "alice-password").await
}

async fn aes_kek(a: &Api, token: &str, label: &str, wrap: bool, unwrap: bool) -> u64 {
    let (s, v) = a
        .call(
            "POST",
            "/v1/keys/symmetric",
            Some(token),
            Some(json!({"spec": "aes-256", "template": {"label": label,
                "attributes": {"wrap": wrap, "unwrap": unwrap, "encrypt": false, "decrypt": false}}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["handle"].as_u64().unwrap()
}

fn decoded_len(v: &Value) -> usize {
    serde_json::from_value::<keyward_api::Base64>(v.clone())
        .unwrap()
        .decode()
        .unwrap()
        .len()
}

async fn generate(a: &Api, token: &str, body: Value) -> (StatusCode, Value) {
    a.call("POST", "/v1/crypto/data-key", Some(token), Some(body))
        .await
}

async fn unwrap(a: &Api, token: &str, body: Value) -> (StatusCode, Value) {
    a.call(
        "POST",
        "/v1/crypto/data-key/unwrap",
        Some(token),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn aes_kwp_round_trip_and_refusals() {
    let a = api();
    let alice = user(&a).await;
    let kek = aes_kek(&a, &alice, "kek", true, true).await;
    let (s, dk) = generate(&a, &alice, json!({"key": kek, "mechanism": "aes-kwp"})).await;
    assert_eq!(s, StatusCode::OK, "{dk}");
    assert_eq!(dk["key_version"], 1);
    let plaintext = dk["plaintext"].as_str().unwrap().to_owned();
    let wrapped = dk["wrapped"].as_str().unwrap().to_owned();
    assert_eq!(decoded_len(&dk["plaintext"]), 32);
    assert_eq!(
        decoded_len(&dk["wrapped"]),
        48,
        "RFC 5649: tag (5) + 32, padded to 40, + 8"
    );
    let (s, v) = unwrap(
        &a,
        &alice,
        json!({"key": kek, "mechanism": "aes-kwp", "wrapped": wrapped, "key_version": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["plaintext"], plaintext.as_str());

    // The policy's refusals are the API's codes.
    let wrap_only = aes_kek(&a, &alice, "wrap-only", true, false).await;
    let unwrap_only = aes_kek(&a, &alice, "unwrap-only", false, true).await;
    let (s, v) = generate(
        &a,
        &alice,
        json!({"key": unwrap_only, "mechanism": "aes-kwp"}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("attribute_violation")),
        "{v}"
    );
    let (s, v) = unwrap(
        &a,
        &alice,
        json!({"key": wrap_only, "mechanism": "aes-kwp", "wrapped": wrapped, "key_version": 1}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("attribute_violation")),
        "{v}"
    );
    let (s, v) = generate(&a, &alice, json!({"key": 999, "mechanism": "aes-kwp"})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("key_not_found"))
    );
    // Bad input: a mechanism, a length, base64, tampered bytes.
    for body in [
        json!({"key": kek, "mechanism": "aes-kw"}),
        json!({"key": kek, "mechanism": "aes-kwp", "bytes": 31}),
    ] {
        let (s, v) = generate(&a, &alice, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (s, v) = unwrap(
        &a,
        &alice,
        json!({"key": kek, "mechanism": "aes-kwp", "wrapped": "not base64!", "key_version": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("wrapped"), "{v}");
    let (s, v) = unwrap(
        &a,
        &alice,
        json!({"key": kek, "mechanism": "aes-kwp", "wrapped": b64(&[0u8; 40]), "key_version": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["message"], "invalid input: unwrap failed", "{v}");
    // No key bytes in any error.
    assert!(!v.to_string().contains(&plaintext));
}

#[tokio::test]
async fn rsa_oaep_wraps_with_the_public_key_and_unwraps_with_the_private_key() {
    let a = api();
    let alice = user(&a).await;
    let (s, pair) = a
        .call(
            "POST",
            "/v1/keys/asymmetric-pair",
            Some(&alice),
            Some(json!({
                "spec": "rsa-2048",
                "private": {"label": "kek", "attributes": {"unwrap": true}},
                "public": {"label": "kek", "attributes": {"wrap": true}}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{pair}");
    let (private, public) = (
        pair["private"]["handle"].as_u64().unwrap(),
        pair["public"]["handle"].as_u64().unwrap(),
    );
    let (s, dk) = generate(
        &a,
        &alice,
        json!({"key": public, "mechanism": "rsa-oaep-sha256", "bytes": 16}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{dk}");
    let (s, v) = unwrap(
        &a,
        &alice,
        json!({"key": private, "mechanism": "rsa-oaep-sha256", "wrapped": dk["wrapped"], "key_version": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["plaintext"], dk["plaintext"]);
    let (s, v) = unwrap(
        &a,
        &alice,
        json!({"key": public, "mechanism": "rsa-oaep-sha256", "wrapped": dk["wrapped"], "key_version": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}
