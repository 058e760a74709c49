//! CAs, issuance from CSRs and for HSM keys, the refusals, a proxy serving a CA certificate.

use crate::common::*;
use crate::support::*;

#[test]
fn root_intermediate_and_leaf_verify_with_openssl_and_refusals_are_clear() {
    let (node, root, inter, chain) = node_with_cas();
    let dir = node.dir.path();

    // The CA keys are HSM keys that cannot be extracted.
    let keys = kw_ok(
        &node,
        &["key", "list", "--json", "--filter", "attr.label=ca-root"],
    );
    assert!(
        keys.contains("\"extractable\": false") || keys.contains("\"extractable\":false"),
        "{keys}"
    );
    // The intermediate verifies under the root, with its path length and name constraints.
    openssl_ok(&["verify", "-CAfile", &p(&root), &p(&inter)]);
    let text = openssl_ok(&["x509", "-in", &p(&inter), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(
        text.contains("Permitted:") && text.contains("DNS:example.test"),
        "{text}"
    );

    // A TLS server certificate from an OpenSSL CSR.
    let csr = p256_csr(dir, "www", "www.example.test");
    let leaf = dir.join("www.pem");
    let out = kw_ok(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--out",
            &p(&leaf),
            "--json",
        ],
    );
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(issued["status"], "valid");
    let verify = openssl_ok(&[
        "verify",
        "-CAfile",
        &p(&root),
        "-untrusted",
        &p(&inter),
        &p(&leaf),
    ]);
    assert!(verify.contains(": OK"), "{verify}");
    let text = openssl_ok(&["x509", "-in", &p(&leaf), "-noout", "-text"]);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("DNS:www.example.test"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    // The CA chain file is the intermediate then the root.
    let chain_text = std::fs::read_to_string(&chain).unwrap();
    assert_eq!(chain_text.matches("BEGIN CERTIFICATE").count(), 2);

    // A name outside the CA's policy.
    let evil = p256_csr(dir, "evil", "www.evil.test");
    issue_refused(
        &node,
        "issuing",
        &evil,
        "www.evil.test is outside the names this CA may issue",
    );
    // A 1024-bit RSA key.
    let weak = openssl_csr(dir, "weak", &["rsa:1024"], "weak.example.test");
    issue_refused(&node, "issuing", &weak, "1024-bit RSA key is refused");
    // A CSR whose signature does not verify: the last byte of its signature flipped.
    let der = openssl_ok(&[
        "req",
        "-in",
        &p(&csr),
        "-outform",
        "DER",
        "-out",
        &p(&dir.join("www.csr.der")),
    ]);
    drop(der);
    let mut bytes = std::fs::read(dir.join("www.csr.der")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad = dir.join("bad.csr");
    std::fs::write(
        &bad,
        pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", bytes)),
    )
    .unwrap();
    issue_refused(&node, "issuing", &bad, "signature does not verify");
    // A validity beyond the profile's limit.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--days",
            "800",
            "--out",
            &p(&dir.join("long.pem")),
        ],
    );
    assert!(!ok && err.contains("validity of 800 days"), "{err}");
    // Nothing refused reached the register.
    let register = kw_ok(&node, &["ca", "certificates", "issuing", "--json"]);
    let register: serde_json::Value = serde_json::from_str(&register).unwrap();
    assert_eq!(register.as_array().unwrap().len(), 1, "{register}");

    // The root has path length 1: an intermediate under the intermediate is refused.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "create",
            "deeper",
            "--parent",
            "issuing",
            "--common-name",
            "Deeper",
        ],
    );
    assert!(!ok && err.contains("path length 0"), "{err}");

    // Every issuance is audited.
    let audit = node.kw_ok(
        "admin",
        crate::support::pkcs11::ADMIN_PASSWORD,
        &["audit", "list", "--json", "--limit", "1000"],
    );
    assert!(
        audit.contains("ca.create") && audit.contains("ca.issue"),
        "{audit}"
    );
}

#[test]
fn a_proxy_serves_a_certificate_from_the_ca_and_curl_trusts_the_root() {
    let (node, root, _inter, _chain) = node_with_cas();
    let site = Site::new();
    let (_up, up_addr) = start_upstream();
    // The proxy's key in its own HSM; its CSR goes to the CA, the full chain comes back.
    generate_key(&site.data(), "ec-p256", "web");
    let csr = site.dir.join("web.csr");
    web_csr(&site.data(), &csr);
    let chain = site.dir.join("web.pem");
    kw_ok(
        &node,
        &[
            "ca",
            "issue",
            "issuing",
            "--csr",
            &p(&csr),
            "--fullchain",
            "--out",
            &p(&chain),
        ],
    );
    let config = site.config(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n\n[upstream]\nurl = \"http://{up_addr}\"\n",
        chain.display()
    ));
    let (_p, addrs) = start_serve(&config, 1);
    curl_trusts(addrs[0].port(), &root);

    // `keyward cert issue` certifies a key on the node in one step.
    let dir = node.dir.path();
    node.ec_pair(&format!("{CA_USER}:{CA_PASSWORD}"), "app");
    let app = dir.join("app.pem");
    kw_ok(
        &node,
        &[
            "cert",
            "issue",
            "--ca",
            "issuing",
            "--key",
            "app",
            "--dns",
            "app.example.test",
            "--out",
            &p(&app),
        ],
    );
    let app_text = std::fs::read_to_string(&app).unwrap();
    assert_eq!(
        app_text.matches("BEGIN CERTIFICATE").count(),
        3,
        "leaf, intermediate, root"
    );
    let leaf_only = dir.join("app-leaf.pem");
    openssl_ok(&["x509", "-in", &p(&app), "-out", &p(&leaf_only)]);
    openssl_ok(&[
        "verify",
        "-CAfile",
        &p(&root),
        "-untrusted",
        &p(&app),
        &p(&leaf_only),
    ]);
}
