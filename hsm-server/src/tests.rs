//! The API through its router, without sockets.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keyward_hsm::test_util::{TestHsm, TestStore};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::router;

pub(super) struct Api {
    /// The HSM's store; the router holds the HSM.
    _store: TestStore,
    /// Built once, as a server does: the router holds state (the idempotency cache).
    router: axum::Router,
}

pub(super) fn api() -> Api {
    let t = TestHsm::new();
    t.admin();
    let (store, hsm) = t.into_parts();
    Api {
        _store: store,
        router: router(Arc::new(hsm)),
    }
}

impl Api {
    pub(super) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.raw(req).await
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    pub(super) async fn login(&self, user: &str, pw: &str) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    async fn keys(&self, token: &str) -> Value {
        self.call("GET", "/v1/keys", Some(token), None).await.1
    }
}

pub(super) fn b64(b: &[u8]) -> String {
    keyward_api::Base64::encode(b).as_str().to_owned()
}

#[tokio::test]
async fn login_generate_sign_verify_encrypt_and_batches() {
    let a = api();
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
    let alice = a.login("alice", "alice-password").await;
    let (s, pair) = a
        .call(
            "POST",
            "/v1/keys/asymmetric-pair",
            Some(&alice),
            Some(json!({
                "spec": "ec-p256",
                "private": {"label": "web", "attributes": {"sign": true, "extractable": false}},
                "public": {"label": "web", "attributes": {"verify": true}}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{pair}");
    let (k, p) = (
        pair["private"]["handle"].as_u64().unwrap(),
        pair["public"]["handle"].as_u64().unwrap(),
    );
    let (s, sig) = a
        .call(
            "POST",
            "/v1/crypto/sign",
            Some(&alice),
            Some(json!({"key": k, "mechanism": "ecdsa-sha256", "message": b64(b"hello")})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sig}");
    let (s, ok) = a
        .call("POST", "/v1/crypto/verify", Some(&alice), Some(json!({"key": p, "mechanism": "ecdsa-sha256", "message": b64(b"hello"), "signature": sig["signature"]})))
        .await;
    assert_eq!((s, ok["valid"].as_bool()), (StatusCode::OK, Some(true)));
    let (s, pk) = a
        .call(
            "GET",
            &format!("/v1/keys/{p}/public-key"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(pk["pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(pk["jwk"]["crv"], "P-256");
    let (s, aes) = a
        .call("POST", "/v1/keys/symmetric", Some(&alice), Some(json!({"spec": "aes-256", "template": {"label": "data", "attributes": {"encrypt": true, "decrypt": true}}})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{aes}");
    let h = aes["handle"].as_u64().unwrap();
    let (_, ct) = a.call("POST", "/v1/crypto/encrypt", Some(&alice), Some(json!({"key": h, "mechanism": "aes-gcm", "plaintext": b64(b"secret"), "aad": b64(b"ctx")}))).await;
    let (s, pt) = a
        .call("POST", "/v1/crypto/decrypt", Some(&alice), Some(json!({"key": h, "mechanism": "aes-gcm", "ciphertext": ct["ciphertext"], "aad": b64(b"ctx")})))
        .await;
    assert_eq!(
        (s, pt["plaintext"].as_str()),
        (StatusCode::OK, Some(b64(b"secret").as_str()))
    );
    // A batch with one good and one bad item.
    let (s, r) = a
        .call(
            "POST",
            "/v1/crypto/sign/batch",
            Some(&alice),
            Some(json!({"items": [
                {"key": k, "mechanism": "ecdsa-sha256", "message": b64(b"a")},
                {"key": 1, "mechanism": "ecdsa-sha256", "message": b64(b"b")}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(r["results"][0]["ok"]["signature"].is_string());
    assert_eq!(r["results"][1]["error"]["code"], "key_not_found");
    // Audit, as the admin.
    let (s, rep) = a.call("POST", "/v1/audit/verify", Some(&admin), None).await;
    assert_eq!((s, rep["intact"].as_bool()), (StatusCode::OK, Some(true)));
}

/// method, path, token, body, expected status, expected code
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<Value>,
    StatusCode,
    &'a str,
);

/// An API with the user alice (a crypto-user) logged in: the API, alice's session token.
async fn api_with_alice() -> (Api, String) {
    let a = api();
    let admin = a.login("admin", "admin-password").await;
    a.call(
        "POST",
        "/v1/users",
        Some(&admin),
        Some(json!({"username": "alice", "role": "crypto-user", "password": "alice-password"})),
    )
    .await;
    let alice = a.login("alice", "alice-password").await;
    (a, alice)
}

/// Sends each case and checks its status, its error code and that it has a message; then
/// checks that `alice`'s keys are what they were.
async fn each_refused(a: &Api, alice: &str, cases: Vec<Case<'_>>) {
    let before = a.keys(alice).await;
    for (method, path, token, body, status, code) in cases {
        let (s, v) = a.call(method, path, token, body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:?}: {v}"
        );
        assert!(v["message"].is_string());
    }
    assert_eq!(a.keys(alice).await, before, "nothing changed");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_code_and_changes_nothing() {
    let (a, alice) = api_with_alice().await;
    let before = a.keys(&alice).await;
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            "/v1/crypto/sign",
            Some(&alice),
            Some(json!({"key": 1, "mechanism": "ecdsa-sha256", "message": "!!!"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/keys/symmetric",
            Some(&alice),
            Some(json!({"spec": 5, "template": {"label": "x"}})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/keys/symmetric",
            Some(&alice),
            Some(json!({"spec": "aes-999", "template": {"label": "x"}})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "GET",
            "/v1/keys/12345",
            Some(&alice),
            None,
            StatusCode::NOT_FOUND,
            "key_not_found",
        ),
        (
            "POST",
            "/v1/crypto/random",
            Some(&alice),
            Some(json!({"length": 0})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "GET",
            "/v1/keys?limit=0",
            Some(&alice),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "GET",
            "/v1/keys?limit=x",
            Some(&alice),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "GET",
            "/v1/nope",
            Some(&alice),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "DELETE",
            "/v1/crypto/sign",
            Some(&alice),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    each_refused(&a, &alice, cases).await;
    // Not JSON, and oversized.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/crypto/sign")
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (s, v) = a.raw(req).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "{v}"
    );
    let huge = format!(
        "{{\"key\":1,\"mechanism\":\"ed25519\",\"message\":\"{}\"}}",
        "A".repeat(crate::MAX_BODY_BYTES + 10)
    );
    let req = Request::builder()
        .method("POST")
        .uri("/v1/crypto/sign")
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    let (s, v) = a.raw(req).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{v}"
    );
    assert_eq!(a.keys(&alice).await, before, "nothing changed");
}

#[tokio::test]
async fn requests_without_a_valid_session_or_role_get_401_or_403_and_change_nothing() {
    let (a, alice) = api_with_alice().await;
    let unknown = "00".repeat(32);
    let cases: Vec<Case<'_>> = vec![
        (
            "GET",
            "/v1/keys",
            Some(&unknown),
            None,
            StatusCode::UNAUTHORIZED,
            "session_invalid",
        ),
        (
            "GET",
            "/v1/keys",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "session_invalid",
        ),
        (
            "GET",
            "/v1/users",
            Some("forged"),
            None,
            StatusCode::UNAUTHORIZED,
            "session_invalid",
        ),
        (
            "POST",
            "/v1/users",
            Some(&alice),
            Some(json!({"username": "eve", "role": "admin", "password": "eve-password"})),
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "GET",
            "/v1/audit",
            Some(&alice),
            None,
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "wrong-password"})),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        ),
    ];
    each_refused(&a, &alice, cases).await;
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let a = api();
    let (s, doc) = a.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["paths"]["/v1/crypto/sign"]["post"].is_object());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .unwrap_or_default();
    let served = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("KEYWARD_UPDATE_OPENAPI").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"),
            &served,
        )
        .unwrap();
        return;
    }
    assert_eq!(
        committed, served,
        "hsm-server/openapi.json is stale: run with KEYWARD_UPDATE_OPENAPI=1"
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_creation_return_the_first_result() {
    let a = api();
    let admin = a.login("admin", "admin-password").await;
    a.call(
        "POST",
        "/v1/users",
        Some(&admin),
        Some(json!({"username": "alice", "role": "crypto-user", "password": "alice-password"})),
    )
    .await;
    let alice = a.login("alice", "alice-password").await;
    let create = |key: Option<&'static str>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/v1/keys/symmetric")
            .header("authorization", format!("Bearer {alice}"))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.body(Body::from(json!({"spec": "aes-256", "template": {"label": "once", "attributes": {"encrypt": true}}}).to_string()))
            .unwrap()
    };
    let (s1, first) = a.raw(create(Some("k-1"))).await;
    assert_eq!(s1, StatusCode::CREATED, "{first}");
    let (s2, again) = a.raw(create(Some("k-1"))).await;
    assert_eq!(
        (s2, &again),
        (StatusCode::CREATED, &first),
        "the replay is the first response"
    );
    // Without the key, the same request is a new creation (refused here: the label is taken).
    let (s3, v) = a.raw(create(None)).await;
    assert_eq!(
        (s3, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("label_exists"))
    );
    let keys = a.keys(&alice).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    // The same key with another body is refused, not answered with the first result.
    let other = Request::builder()
        .method("POST")
        .uri("/v1/keys/symmetric")
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "k-1")
        .body(Body::from(
            json!({"spec": "aes-128", "template": {"label": "other"}}).to_string(),
        ))
        .unwrap();
    let (s, v) = a.raw(other).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    // Without a valid session nothing is replayed.
    let anonymous = Request::builder()
        .method("POST")
        .uri("/v1/keys/symmetric")
        .header("content-type", "application/json")
        .header("idempotency-key", "k-1")
        .body(Body::from("{}"))
        .unwrap();
    let (s, v) = a.raw(anonymous).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_invalid"))
    );
    // Another token does not see alice's replay.
    let (s4, v) = a
        .raw(
            Request::builder()
                .method("POST")
                .uri("/v1/keys/symmetric")
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "k-1")
                .body(Body::from(
                    json!({"spec": "aes-256", "template": {"label": "x"}}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (s4, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_denied"))
    );
}

#[tokio::test]
async fn failed_logins_for_a_name_are_throttled_alike_for_every_name_and_locked_users_look_unknown()
{
    let a = api();
    let admin = a.login("admin", "admin-password").await;
    a.call(
        "POST",
        "/v1/users",
        Some(&admin),
        Some(json!({"username": "bob", "role": "crypto-user", "password": "bob-password"})),
    )
    .await;
    let attempt = |user: &'static str, pw: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"username": user, "password": pw}).to_string(),
            ))
            .unwrap()
    };
    // Three free failures each, for an existing name and an unknown one: identical answers.
    for _ in 0..3 {
        let (s1, v1) = a.raw(attempt("bob", "wrong-password")).await;
        let (s2, v2) = a.raw(attempt("nobody", "wrong-password")).await;
        assert_eq!((s1, &v1), (s2, &v2));
        assert_eq!(s1, StatusCode::UNAUTHORIZED);
        assert_eq!(v1["code"], "authentication_failed");
    }
    // The fourth attempt must wait, for both names alike, with Retry-After.
    for user in ["bob", "nobody"] {
        let res = a
            .router
            .clone()
            .oneshot(attempt(user, "bob-password"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{user}");
        assert_eq!(res.headers()["retry-after"], "1");
    }
    // Other names are not slowed.
    a.login("admin", "admin-password").await;
    // A locked user (five failures, waiting out the delays) answers as an unknown one.
    let mut failures = 3;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while failures < 5 {
        assert!(std::time::Instant::now() < deadline);
        let (s, _) = a.raw(attempt("bob", "wrong-password")).await;
        if s == StatusCode::UNAUTHORIZED {
            failures += 1;
        } else {
            assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let (s, v) = a.call("GET", "/v1/users", Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "bob" && u["locked"] == true));
    let locked = loop {
        let (s, v) = a.raw(attempt("bob", "bob-password")).await;
        if s != StatusCode::TOO_MANY_REQUESTS {
            break (s, v);
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let unknown = a.raw(attempt("nobody-else", "bob-password")).await;
    assert_eq!(locked, unknown);
}

#[tokio::test]
async fn a_key_another_user_may_not_see_answers_like_a_missing_one_and_labels_are_per_owner() {
    let a = api();
    let admin = a.login("admin", "admin-password").await;
    for name in ["alice", "bob"] {
        let (s, _) = a
            .call(
                "POST",
                "/v1/users",
                Some(&admin),
                Some(json!({"username": name, "role": "crypto-user", "password": format!("{name}-password")})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let alice = a.login("alice", "alice-password").await;
    let bob = a.login("bob", "bob-password").await;
    let make = |token: String| {
        let a = &a;
        async move {
            a.call(
                "POST",
                "/v1/keys/symmetric",
                Some(&token),
                Some(json!({"spec": "aes-256", "template": {"label": "data", "attributes": {"encrypt": true, "decrypt": true}}})),
            )
            .await
        }
    };
    let (s, alices) = make(alice.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{alices}");
    // Bob owns a key labelled `data` too.
    let (s, bobs) = make(bob.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{bobs}");
    let (s, again) = make(alice.clone()).await;
    assert_eq!(
        (s, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("label_exists"))
    );
    // Alice's key and a handle that does not exist look the same to bob.
    let h = alices["handle"].as_u64().unwrap();
    let missing = h ^ 1;
    for (method, path, body) in [
        ("GET", "/v1/keys/{h}", None),
        ("DELETE", "/v1/keys/{h}", None),
        ("GET", "/v1/keys/{h}/public-key", None),
        (
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "{h}", "mechanism": "aes-gcm", "plaintext": "aGk="})),
        ),
    ] {
        let call = |handle: u64| {
            let path = path.replace("{h}", &handle.to_string());
            let body = body.clone().map(|b: Value| {
                serde_json::from_str(&b.to_string().replace("\"{h}\"", &handle.to_string()))
                    .unwrap()
            });
            let a = &a;
            let bob = bob.clone();
            async move { a.call(method, &path, Some(&bob), body).await }
        };
        let (s1, v1) = call(h).await;
        let (s2, v2) = call(missing).await;
        assert_eq!(s1, StatusCode::NOT_FOUND, "{method} {path}: {v1}");
        assert_eq!(s2, StatusCode::NOT_FOUND, "{method} {path}: {v2}");
        assert_eq!(v1["code"], v2["code"]);
        assert_eq!(
            v1["message"].as_str().unwrap().replace(&h.to_string(), "H"),
            v2["message"]
                .as_str()
                .unwrap()
                .replace(&missing.to_string(), "H"),
            "{method} {path}"
        );
    }
    // Bob's list shows only his own key.
    let (_, page) = a.call("GET", "/v1/keys", Some(&bob), None).await;
    let keys = page["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["owner"], "bob");
}

#[tokio::test]
async fn key_versions_rotate_config_rewrap_trim_and_the_versioned_forms() {
    let (a, alice) = api_with_alice().await;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (a, alice) = (&a, alice.clone());
        async move { a.call(method, &path, Some(&alice), body).await }
    };
    let (s, k) = call(
        "POST",
        "/v1/keys/symmetric".into(),
        Some(json!({"spec": "aes-256", "template": {"label": "data",
            "attributes": {"encrypt": true, "decrypt": true, "sign": false, "verify": false}}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let h = k["handle"].as_u64().unwrap();
    assert_eq!(
        (
            &k["latest_version"],
            &k["min_decryption_version"],
            &k["min_encryption_version"]
        ),
        (&json!(1), &json!(1), &json!(0))
    );
    let encrypt = |text: &'static [u8]| {
        call(
            "POST",
            "/v1/crypto/encrypt".into(),
            Some(json!({"key": h, "mechanism": "aes-gcm", "plaintext": b64(text)})),
        )
    };
    let (s, c1) = encrypt(b"one").await;
    assert_eq!(s, StatusCode::OK, "{c1}");
    assert_eq!(c1["key_version"], 1);
    let v1 = c1["versioned"].as_str().unwrap().to_owned();
    assert_eq!(v1, format!("kw:v1:{}", c1["ciphertext"].as_str().unwrap()));

    let (s, rotated) = call("POST", format!("/v1/keys/{h}/rotate"), None).await;
    assert_eq!(
        (s, &rotated["latest_version"]),
        (StatusCode::OK, &json!(2)),
        "{rotated}"
    );
    assert_eq!(rotated["handle"], h);
    let (_, shown) = call("GET", format!("/v1/keys/{h}"), None).await;
    assert_eq!(shown["latest_version"], 2);
    let (_, c2) = encrypt(b"two").await;
    assert_eq!(c2["key_version"], 2);
    let v2 = c2["versioned"].as_str().unwrap().to_owned();
    assert!(v2.starts_with("kw:v2:"), "{v2}");

    let decrypt = |body: Value| call("POST", "/v1/crypto/decrypt".into(), Some(body));
    // Both versions decrypt: the kw:vN: form, bare base64 with key_version, bare = version 1.
    for (body, plain) in [
        (
            json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v1}),
            b"one",
        ),
        (
            json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v2}),
            b"two",
        ),
        (
            json!({"key": h, "mechanism": "aes-gcm", "ciphertext": c2["ciphertext"], "key_version": 2}),
            b"two",
        ),
        (
            json!({"key": h, "mechanism": "aes-gcm", "ciphertext": c1["ciphertext"]}),
            b"one",
        ),
    ] {
        let (s, p) = decrypt(body.clone()).await;
        assert_eq!(
            (s, p["plaintext"].as_str()),
            (StatusCode::OK, Some(b64(plain).as_str())),
            "{body}"
        );
    }
    // A prefix and key_version that disagree, a malformed prefix: 400.
    for bad in [
        json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v2, "key_version": 1}),
        json!({"key": h, "mechanism": "aes-gcm", "ciphertext": "kw:v0:AAAA"}),
        json!({"key": h, "mechanism": "aes-gcm", "ciphertext": "kw:vx:AAAA"}),
        json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v2.replace("kw:v2", "kw:v9")}),
    ] {
        let (s, e) = decrypt(bad.clone()).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_input")),
            "{bad}: {e}"
        );
    }

    // Rewrap: the v1 ciphertext becomes v2 without the plaintext in the answer.
    let (s, r) = call(
        "POST",
        "/v1/crypto/rewrap".into(),
        Some(json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v1})),
    )
    .await;
    assert_eq!((s, &r["key_version"]), (StatusCode::OK, &json!(2)), "{r}");
    assert!(r.get("plaintext").is_none() && !r.to_string().contains(&b64(b"one")));
    let (_, p) =
        decrypt(json!({"key": h, "mechanism": "aes-gcm", "ciphertext": r["versioned"]})).await;
    assert_eq!(p["plaintext"], b64(b"one"));
    let (s, batch) = call(
        "POST",
        "/v1/crypto/rewrap/batch".into(),
        Some(json!({"items": [
            {"key": h, "mechanism": "aes-gcm", "ciphertext": v1},
            {"key": h, "mechanism": "aes-gcm", "ciphertext": "kw:v7:AAAA"}
        ]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{batch}");
    assert_eq!(batch["results"][0]["ok"]["key_version"], 2);
    assert_eq!(batch["results"][1]["error"]["code"], "invalid_input");

    // min_decryption_version = 2 refuses v1 with 403 key_version_retired.
    let (s, cfg) = call(
        "PATCH",
        format!("/v1/keys/{h}/config"),
        Some(json!({"min_decryption_version": 2})),
    )
    .await;
    assert_eq!(
        (s, &cfg["min_decryption_version"]),
        (StatusCode::OK, &json!(2)),
        "{cfg}"
    );
    let (s, e) = decrypt(json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v1})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_version_retired")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("version 1"), "{e}");
    let (s, e) = call(
        "POST",
        "/v1/crypto/encrypt".into(),
        Some(json!({"key": h, "mechanism": "aes-gcm", "plaintext": b64(b"x"), "key_version": 1})),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_version_retired"))
    );
    let (s, _) = decrypt(json!({"key": h, "mechanism": "aes-gcm", "ciphertext": v2})).await;
    assert_eq!(s, StatusCode::OK);

    // Out-of-range settings and trims: 400; a trim within range: 200, version 1 gone.
    for (method, path, body) in [
        ("PATCH", "config", json!({"min_decryption_version": 3})),
        ("PATCH", "config", json!({"min_encryption_version": 1})),
        ("PATCH", "config", json!({"bogus": 1})),
        ("POST", "trim", json!({"min_available_version": 3})),
    ] {
        let (s, e) = call(method, format!("/v1/keys/{h}/{path}"), Some(body.clone())).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_input")),
            "{body}: {e}"
        );
    }
    let (s, t) = call(
        "POST",
        format!("/v1/keys/{h}/trim"),
        Some(json!({"min_available_version": 2})),
    )
    .await;
    assert_eq!(
        (s, &t["min_available_version"]),
        (StatusCode::OK, &json!(2)),
        "{t}"
    );

    // Signatures carry their version; the public key of each version can be read.
    let (_, pair) = call(
        "POST",
        "/v1/keys/asymmetric-pair".into(),
        Some(json!({"spec": "ec-p256",
            "private": {"label": "signer", "attributes": {"sign": true}},
            "public": {"label": "signer", "attributes": {"verify": true}}})),
    )
    .await;
    let (k, p) = (
        pair["private"]["handle"].as_u64().unwrap(),
        pair["public"]["handle"].as_u64().unwrap(),
    );
    let sign = || {
        call(
            "POST",
            "/v1/crypto/sign".into(),
            Some(json!({"key": k, "mechanism": "ecdsa-sha256", "message": b64(b"m")})),
        )
    };
    let (_, s1) = sign().await;
    let (s, _) = call("POST", format!("/v1/keys/{p}/rotate"), None).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the public half rotates through its private key"
    );
    call("POST", format!("/v1/keys/{k}/rotate"), None).await;
    let (_, s2) = sign().await;
    assert_eq!(
        (&s1["key_version"], &s2["key_version"]),
        (&json!(1), &json!(2))
    );
    for sig in [&s1, &s2] {
        let (s, ok) = call(
            "POST",
            "/v1/crypto/verify".into(),
            Some(json!({"key": p, "mechanism": "ecdsa-sha256", "message": b64(b"m"), "signature": sig["versioned"]})),
        )
        .await;
        assert_eq!((s, &ok["valid"]), (StatusCode::OK, &json!(true)), "{sig}");
    }
    let (_, pk1) = call("GET", format!("/v1/keys/{p}/public-key?version=1"), None).await;
    let (_, pk2) = call("GET", format!("/v1/keys/{p}/public-key"), None).await;
    assert_ne!(pk1["der"], pk2["der"]);
    let (s, _) = call("GET", format!("/v1/keys/{p}/public-key?version=3"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_the_owner_rotates_and_a_retried_rotation_with_an_idempotency_key_rotates_once() {
    let (a, alice) = api_with_alice().await;
    let admin = a.login("admin", "admin-password").await;
    a.call(
        "POST",
        "/v1/users",
        Some(&admin),
        Some(json!({"username": "bob", "role": "crypto-user", "password": "bob-password"})),
    )
    .await;
    let bob = a.login("bob", "bob-password").await;
    let (_, k) = a
        .call(
            "POST",
            "/v1/keys/symmetric",
            Some(&alice),
            Some(json!({"spec": "aes-128", "template": {"label": "d", "attributes": {"encrypt": true, "decrypt": true}}})),
        )
        .await;
    let h = k["handle"].as_u64().unwrap();
    a.call(
        "POST",
        &format!("/v1/keys/{h}/share"),
        Some(&alice),
        Some(json!({"username": "bob"})),
    )
    .await;
    for (token, status, code) in [
        (&bob, StatusCode::FORBIDDEN, "permission_denied"),
        (&admin, StatusCode::FORBIDDEN, "permission_denied"),
    ] {
        let (s, e) = a
            .call("POST", &format!("/v1/keys/{h}/rotate"), Some(token), None)
            .await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{e}");
        let (s, e) = a
            .call(
                "PATCH",
                &format!("/v1/keys/{h}/config"),
                Some(token),
                Some(json!({"min_decryption_version": 1})),
            )
            .await;
        assert_eq!((s, e["code"].as_str()), (status, Some(code)), "{e}");
    }
    let rotate = || {
        let req = Request::builder()
            .method("POST")
            .uri(format!("/v1/keys/{h}/rotate"))
            .header("authorization", format!("Bearer {alice}"))
            .header("idempotency-key", "rotate-once")
            .body(Body::empty())
            .unwrap();
        a.raw(req)
    };
    let (s1, first) = rotate().await;
    let (s2, again) = rotate().await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first, again);
    let (_, shown) = a
        .call("GET", &format!("/v1/keys/{h}"), Some(&alice), None)
        .await;
    assert_eq!(shown["latest_version"], 2);
}
