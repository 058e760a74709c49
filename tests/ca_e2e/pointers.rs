//! Certificates that say where their revocation status is (CRL distribution points, OCSP in
//! the authority information access), followed by OpenSSL and curl as a relying party would;
//! and the public OCSP responder's bounds (signed responses reused for nonce-less requests
//! until the status changes, at most 8 certificates per request).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::common::*;
use crate::support::*;

/// Posts the OCSP request in file `req` to `url`: the response's bytes.
fn post_ocsp(node_ca: &Path, url: &str, req: &Path) -> Vec<u8> {
    let out = req.with_extension("resp");
    let got = Curl::url(url)
        .args(&[
            "--cacert",
            &p(node_ca),
            "-H",
            "content-type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", p(req)),
            "-o",
            &p(&out),
        ])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
    std::fs::read(out).unwrap()
}

/// `openssl ocsp -issuer ISSUER -cert LEAF [-no_nonce] -reqout FILE`: the request file.
fn ocsp_request(dir: &Path, name: &str, issuer: &Path, leaf: &Path, nonce: bool) -> PathBuf {
    let req = dir.join(format!("{name}.req"));
    let (issuer, leaf, out) = (p(issuer), p(leaf), p(&req));
    let mut args = vec!["ocsp", "-issuer", &issuer, "-cert", &leaf, "-reqout", &out];
    if !nonce {
        args.push("-no_nonce");
    }
    openssl_ok(&args);
    req
}

/// `openssl ocsp -reqin REQ -respin RESP -CAfile CHAIN -resp_text`: (ok, output).
fn read_response(req: &Path, resp: &[u8], chain: &Path) -> (bool, String) {
    let file = req.with_extension("resp-in");
    std::fs::write(&file, resp).unwrap();
    let (ok, out, err) = run(
        "openssl",
        &[
            "ocsp",
            "-reqin",
            &p(req),
            "-respin",
            &p(&file),
            "-CAfile",
            &p(chain),
            "-resp_text",
        ],
    );
    (ok, format!("{out}{err}"))
}

#[test]
fn certificates_point_at_the_crl_and_the_ocsp_responder_which_stays_cheap() {
    let (node, _root, _inter, _chain) = node_with_cas();
    let dir = node.dir.path();
    let crl_url = format!("{}/v1/ca/edge/crl", node.url);
    let ocsp_url = format!("{}/v1/ca/edge/ocsp", node.url);

    let create = |name: &str, more: &[&str]| -> (bool, String, String) {
        let mut args = vec!["ca", "create", name, "--common-name", name];
        args.extend_from_slice(&["--key-type", "ec-p256", "--json"]);
        args.extend_from_slice(more);
        kw(&node, &args)
    };
    // URLs are checked when the CA is created.
    for bad in ["ftp://pki.example.test/crl", "/v1/ca/edge/crl"] {
        let (ok, _, err) = create("edge", &["--parent", "root", "--crl-url", bad]);
        assert!(!ok && err.contains("crl_urls"), "{bad}: {err}");
    }
    let (ok, made, err) = create(
        "edge",
        &[
            "--parent",
            "root",
            "--allow-dns",
            ".example.test",
            "--crl-url",
            &crl_url,
            "--ocsp-url",
            &ocsp_url,
        ],
    );
    assert!(ok, "{err}");
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    assert_eq!(made["crl_urls"], serde_json::json!([crl_url]));
    assert_eq!(made["ocsp_urls"], serde_json::json!([ocsp_url]));
    let edge = dir.join("edge.pem");
    let chain = dir.join("edge-chain.pem");
    std::fs::write(&edge, made["certificate_pem"].as_str().unwrap()).unwrap();
    kw_ok(&node, &["ca", "certificate", "edge", "--out", &p(&chain)]);
    // The root has no URLs, so the edge CA's own certificate carries none.
    let text = openssl_ok(&["x509", "-in", &p(&edge), "-noout", "-text"]);
    assert!(!text.contains("CRL Distribution Points"), "{text}");
    // A root with URLs: its own (self-signed) certificate carries none, its intermediate's
    // carries the root's.
    let (ok, _, err) = create(
        "root2",
        &[
            "--crl-url",
            "http://pki.example.test/root2.crl",
            "--ocsp-url",
            "http://ocsp.example.test/root2",
        ],
    );
    assert!(ok, "{err}");
    let (ok, inter2, err) = create("inter2", &["--parent", "root2"]);
    assert!(ok, "{err}");
    let inter2: serde_json::Value = serde_json::from_str(&inter2).unwrap();
    let inter2_pem = dir.join("inter2.pem");
    std::fs::write(&inter2_pem, inter2["certificate_pem"].as_str().unwrap()).unwrap();
    let text = openssl_ok(&["x509", "-in", &p(&inter2_pem), "-noout", "-text"]);
    assert!(
        text.contains("URI:http://pki.example.test/root2.crl")
            && text.contains("OCSP - URI:http://ocsp.example.test/root2"),
        "{text}"
    );
    assert_eq!(inter2["crl_urls"], serde_json::json!([]));

    let (leaf, serial) = issue_leaf(&node, "edge", "www");

    // What OpenSSL reads from the leaf: the OCSP URL and the CRL distribution point.
    let uri = openssl_ok(&["x509", "-in", &p(&leaf), "-noout", "-ocsp_uri"]);
    let uri = uri.trim();
    assert_eq!(uri, ocsp_url);
    let cdp = openssl_ok(&[
        "x509",
        "-in",
        &p(&leaf),
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    assert!(cdp.contains(&format!("URI:{crl_url}")), "{cdp}");

    // A relying party fetches the CRL from the certificate's URL: DER, signed by the edge CA.
    let crl = dir.join("edge.crl");
    let got = Curl::url(&crl_url)
        .args(&["--cacert", &p(&node.ca), "-o", &p(&crl)])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
    let checked = openssl_ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &p(&crl),
        "-CAfile",
        &p(&chain),
        "-noout",
    ]);
    assert!(checked.contains("verify OK"), "{checked}");

    // OCSP at the certificate's URL. Without a nonce, the same signed response is served again
    // (identical bytes) while the status holds.
    let plain = ocsp_request(dir, "plain", &edge, &leaf, false);
    let first = post_ocsp(&node.ca, uri, &plain);
    let again = post_ocsp(&node.ca, uri, &plain);
    assert_eq!(first, again, "a nonce-less request was signed afresh");
    let (ok, out) = read_response(&plain, &first, &chain);
    assert!(
        ok && out.contains("Response verify OK") && out.contains("Cert Status: good"),
        "{out}"
    );
    // With a nonce, each response is signed for its request.
    let nonced = ocsp_request(dir, "nonced", &edge, &leaf, true);
    let a = post_ocsp(&node.ca, uri, &nonced);
    let nonced2 = ocsp_request(dir, "nonced2", &edge, &leaf, true);
    let b = post_ocsp(&node.ca, uri, &nonced2);
    assert_ne!(a, b);
    let (ok, out) = read_response(&nonced2, &b, &chain);
    assert!(ok && out.contains("Nonce"), "{out}");

    // The GET binding (RFC 6960 §A.1): the same request, base64 then URL-encoded, gets the
    // same reused response, with the Cache-Control of RFC 5019 §6.2.
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&plain).unwrap());
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let (body, headers) = (dir.join("get.resp"), dir.join("get.headers"));
    let got = Curl::url(format!("{uri}/{escaped}"))
        .args(&[
            "--cacert",
            &p(&node.ca),
            "-o",
            &p(&body),
            "-D",
            &p(&headers),
        ])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
    assert_eq!(std::fs::read(&body).unwrap(), first);
    let headers = std::fs::read_to_string(&headers)
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("content-type: application/ocsp-response")
            && headers.contains("public, no-transform, must-revalidate")
            && headers.contains("cache-control: max-age="),
        "{headers}"
    );
    let got = Curl::url(format!("{uri}/not-base64!"))
        .args(&["--cacert", &p(&node.ca), "-o", &p(&body)])
        .run();
    assert!(got.ok && got.status == 200, "{got:?}");
    let (_, out) = read_response(&plain, &std::fs::read(&body).unwrap(), &chain);
    assert!(out.contains("malformedrequest"), "{out}");
    // The responder reads at most 16 KiB, before anyone logs in.
    let big = dir.join("big.req");
    std::fs::write(&big, vec![0x30; 16 * 1024 + 1]).unwrap();
    // (HTTP/1.1: over HTTP/2 the refusal comes with a reset of the stream, which curl may see
    // before the response when it is still sending.)
    let got = Curl::url(&ocsp_url)
        .args(&[
            "--http1.1",
            "--cacert",
            &p(&node.ca),
            "--data-binary",
            &format!("@{}", p(&big)),
        ])
        .run();
    assert!(got.status == 413 && got.body.contains("16384"), "{got:?}");
    // A declared length over the limit is refused at once, before any body arrives (HTTP/1.1:
    // HTTP/2 resets a stream whose length is not what it declares).
    let got = Curl::url(&ocsp_url)
        .args(&[
            "--cacert",
            &p(&node.ca),
            "--http1.1",
            "-H",
            "content-length: 999999999999",
            "--data-binary",
            "x",
        ])
        .run();
    assert!(got.status == 413, "{got:?}");

    // The CA's key is bound to the CA: neither destroyed nor changed.
    let key = made["key"].as_u64().unwrap().to_string();
    let (ok, _, err) = kw(&node, &["key", "delete", "--key", &key]);
    assert!(!ok && err.contains("destroyable"), "{err}");
    let (ok, _, err) = kw(
        &node,
        &[
            "key",
            "set-attribute",
            "--key",
            &key,
            "--name",
            "sign",
            "--value",
            "false",
        ],
    );
    assert!(!ok && err.contains("modifiable"), "{err}");
    // Nor does it sign raw data: a tbsCertificate of one's own making is refused.
    let tbs = dir.join("forged.tbs");
    std::fs::write(&tbs, b"0\x82 a tbsCertificate outside the CA's policy").unwrap();
    let (ok, _, err) = kw(
        &node,
        &[
            "crypto",
            "sign",
            "--key",
            &key,
            "--mechanism",
            "ecdsa-sha256",
            "--in",
            &p(&tbs),
            "--out",
            &p(&dir.join("forged.sig")),
        ],
    );
    assert!(!ok && err.contains("permission_denied"), "{err}");

    // A revocation is answered at once, even to the request whose answer was reused.
    kw_ok(
        &node,
        &[
            "ca",
            "revoke",
            "edge",
            "--serial",
            &serial,
            "--reason",
            "superseded",
        ],
    );
    let after = post_ocsp(&node.ca, uri, &plain);
    let (ok, out) = read_response(&plain, &after, &chain);
    assert!(
        ok && out.contains("Cert Status: revoked") && out.contains("superseded"),
        "{out}"
    );

    // At most 8 certificates per request: 9 serials are a malformedRequest, unsigned.
    let many = dir.join("many.req");
    let mut args = vec!["ocsp".to_owned(), "-issuer".into(), p(&edge)];
    for i in 1..=9 {
        args.extend(["-serial".into(), format!("0x{i:02x}")]);
    }
    args.extend(["-no_nonce".into(), "-reqout".into(), p(&many)]);
    openssl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let refused = post_ocsp(&node.ca, uri, &many);
    let (_, out) = read_response(&many, &refused, &chain);
    assert!(out.contains("malformedrequest"), "{out}");
}
