//! Revocation into CRLs and OCSP; sub-CAs held to their parent and revocable by it.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::support::*;

#[test]
fn revocation_reaches_the_crl_and_ocsp() {
    let (node, root, inter, chain) = node_with_cas();
    let dir = node.dir.path();
    let (bad, bad_serial) = issue_leaf(&node, "issuing", "bad");
    let (good, _) = issue_leaf(&node, "issuing", "good");

    let out = kw_ok(
        &node,
        &[
            "ca",
            "revoke",
            "issuing",
            "--serial",
            &bad_serial,
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(out.contains("revoked serial"), "{out}");
    let (ok, _, err) = kw(&node, &["ca", "revoke", "issuing", "--serial", &bad_serial]);
    assert!(!ok && err.contains("already revoked"), "{err}");

    // The CRL: signed by the intermediate, lists the serial with its reason.
    let crl = dir.join("crl.pem");
    kw_ok(&node, &["ca", "crl", "issuing", "--out", &p(&crl)]);
    let checked = openssl_ok(&["crl", "-in", &p(&crl), "-CAfile", &p(&chain), "-noout"]);
    assert!(checked.contains("verify OK"), "{checked}");
    let text = openssl_ok(&["crl", "-in", &p(&crl), "-noout", "-text"]);
    assert!(text.to_ascii_lowercase().contains(&bad_serial), "{text}");
    assert!(
        text.contains("Key Compromise") && text.contains("Next Update"),
        "{text}"
    );
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    // With the CRL, the revoked leaf fails and the other verifies.
    let with_crl = |leaf: &Path| {
        run(
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                &p(&root),
                "-untrusted",
                &p(&inter),
                "-CRLfile",
                &p(&crl),
                &p(leaf),
            ],
        )
    };
    let (ok, out, err) = with_crl(&bad);
    assert!(
        !ok && format!("{out}{err}").contains("certificate revoked"),
        "{out}{err}"
    );
    let (ok, out, err) = with_crl(&good);
    assert!(ok, "{out}{err}");

    // OCSP: a request made by openssl, posted to the responder, the response checked by openssl.
    let ocsp = |leaf: &Path, name: &str| -> String {
        let req = dir.join(format!("{name}.ocsp-req"));
        let resp = dir.join(format!("{name}.ocsp-resp"));
        openssl_ok(&[
            "ocsp",
            "-issuer",
            &p(&inter),
            "-cert",
            &p(leaf),
            "-reqout",
            &p(&req),
        ]);
        let got = Curl::url(format!("{}/v1/ca/issuing/ocsp", node.url))
            .args(&[
                "--cacert",
                &p(&node.ca),
                "-H",
                "content-type: application/ocsp-request",
                "--data-binary",
                &format!("@{}", p(&req)),
                "-o",
                &p(&resp),
            ])
            .run();
        assert!(got.ok && got.status == 200, "{got:?}");
        // -reqin (and no -cert, which would make a new request): openssl also checks that the
        // response echoes the request's nonce.
        openssl_ok(&[
            "ocsp",
            "-reqin",
            &p(&req),
            "-respin",
            &p(&resp),
            "-CAfile",
            &p(&chain),
            "-resp_text",
        ])
    };
    let out = ocsp(&bad, "bad");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(
        out.contains("Cert Status: revoked") && out.contains("keyCompromise"),
        "{out}"
    );
    assert!(
        out.contains("Responder Id:") && out.contains("Nonce"),
        "{out}"
    );
    let out = ocsp(&good, "good");
    assert!(
        out.contains("Response verify OK") && out.contains("Cert Status: good"),
        "{out}"
    );
    // A serial the CA never issued.
    let req = dir.join("foreign.ocsp-req");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &p(&inter),
        "-serial",
        "0x7a11ce",
        "-reqout",
        &p(&req),
    ]);
    let resp = dir.join("foreign.ocsp-resp");
    let got = Curl::url(format!("{}/v1/ca/issuing/ocsp", node.url))
        .args(&[
            "--cacert",
            &p(&node.ca),
            "--data-binary",
            &format!("@{}", p(&req)),
            "-o",
            &p(&resp),
        ])
        .run();
    assert!(got.ok, "{got:?}");
    let out = openssl_ok(&[
        "ocsp",
        "-reqin",
        &p(&req),
        "-respin",
        &p(&resp),
        "-CAfile",
        &p(&chain),
        "-resp_text",
    ]);
    assert!(out.contains("Cert Status: unknown"), "{out}");
    // A body that is not an OCSP request.
    let junk = Curl::url(format!("{}/v1/ca/issuing/ocsp", node.url))
        .args(&["--cacert", &p(&node.ca), "--data-binary", "not der"])
        .run();
    assert!(junk.ok && junk.status == 200, "{junk:?}");

    let audit = node.kw_ok(
        "admin",
        crate::support::pkcs11::ADMIN_PASSWORD,
        &["audit", "list", "--json", "--limit", "1000"],
    );
    assert!(
        audit.contains("ca.revoke") && audit.contains("ca.crl"),
        "{audit}"
    );
}

/// What a first review found: intermediates are in their parent's register and revocable (and
/// a revoked one issues nothing more), a sub-CA inherits its parent's name policy (in the HSM
/// by its settings, with its key elsewhere by name constraints), `removeFromCRL` is refused,
/// a huge validity is refused without leaving a key behind, another user's CA answers
/// `permission_denied` without naming its key, and refusals are audited.
#[test]
fn sub_cas_are_held_to_their_parent_and_revocable_and_refusals_are_audited() {
    let (node, root, inter, _chain) = node_with_cas();
    let dir = node.dir.path();
    // The intermediate is in the root's register.
    let register = kw_ok(&node, &["ca", "certificates", "root", "--json"]);
    let register: serde_json::Value = serde_json::from_str(&register).unwrap();
    assert_eq!(register[0]["profile"], "intermediate", "{register}");
    let inter_serial = register[0]["serial"].as_str().unwrap().to_owned();

    // A sub-CA under the intermediate inherits `allow-dns .example.test`.
    // (The root has path length 1, so the intermediate has 0: make another tree.)
    kw_ok(
        &node,
        &[
            "ca",
            "create",
            "top",
            "--common-name",
            "Top",
            "--path-len",
            "2",
            "--allow-dns",
            "www.example.test",
        ],
    );
    kw_ok(
        &node,
        &[
            "ca",
            "create",
            "sub",
            "--parent",
            "top",
            "--common-name",
            "Sub",
        ],
    );
    let other = p256_csr(dir, "other", "www.google.com");
    issue_refused(
        &node,
        "sub",
        &other,
        "outside the names this CA may issue (www.example.test)",
    );
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "create",
            "wide",
            "--parent",
            "top",
            "--common-name",
            "Wide",
            "--allow-dns",
            ".google.com",
        ],
    );
    assert!(!ok && err.contains("outside the parent CA's"), "{err}");
    // An external sub-CA (key outside the HSM) gets name constraints from the policy.
    let ext = p256_csr(dir, "ext", "ext.example.test");
    let ext_pem = dir.join("ext.pem");
    kw_ok(
        &node,
        &[
            "ca",
            "issue",
            "top",
            "--profile",
            "intermediate",
            "--csr",
            &p(&ext),
            "--common-name",
            "External Sub",
            "--out",
            &p(&ext_pem),
        ],
    );
    let text = openssl_ok(&["x509", "-in", &p(&ext_pem), "-noout", "-text"]);
    assert!(
        text.contains("Permitted:") && text.contains("DNS:www.example.test"),
        "{text}"
    );
    assert!(
        text.contains("Excluded:") && text.contains("IP:0.0.0.0/0.0.0.0"),
        "{text}"
    );

    // removeFromCRL is for delta CRLs: refused.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "revoke",
            "root",
            "--serial",
            &inter_serial,
            "--reason",
            "removeFromCRL",
        ],
    );
    assert!(!ok && err.contains("unknown revocation reason"), "{err}");
    // The root revokes the intermediate: its CRL lists it, and the intermediate issues no more.
    kw_ok(
        &node,
        &[
            "ca",
            "revoke",
            "root",
            "--serial",
            &inter_serial,
            "--reason",
            "cACompromise",
        ],
    );
    let crl = dir.join("root.crl");
    kw_ok(&node, &["ca", "crl", "root", "--out", &p(&crl)]);
    let (ok, out, err) = run(
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            &p(&root),
            "-CRLfile",
            &p(&crl),
            &p(&inter),
        ],
    );
    assert!(
        !ok && format!("{out}{err}").contains("certificate revoked"),
        "{out}{err}"
    );
    let csr = p256_csr(dir, "late", "late.example.test");
    issue_refused(&node, "issuing", &csr, "certificate was revoked by CA root");

    // A huge validity is refused before a key is made: the name stays usable.
    let (ok, _, err) = kw(
        &node,
        &[
            "ca",
            "create",
            "big",
            "--common-name",
            "Big",
            "--days",
            "3000000",
        ],
    );
    assert!(
        !ok && err.contains("validity_days must be 1 to 36500"),
        "{err}"
    );
    kw_ok(&node, &["ca", "create", "big", "--common-name", "Big"]);

    // Another crypto-user: permission denied, no key handle in the message; CAs not listed.
    node.crypto_user("bob:bob-password-1");
    let bob = |args: &[&str]| {
        let out = Command::new(keyward_bin())
            .args(args)
            .args(["--server", &node.url, "--ca-cert"])
            .arg(&node.ca)
            .args(["--user", "bob", "--password", "bob-password-1"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = bob(&[
        "ca",
        "issue",
        "big",
        "--csr",
        &p(&csr),
        "--out",
        &p(&dir.join("bob.pem")),
    ]);
    assert!(
        !ok && err.contains("permission_denied") && !err.contains("handle"),
        "{err}"
    );
    let (ok, out, err) = bob(&["ca", "list", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]");

    // Refused requests are audited.
    let audit = node.kw_ok(
        "admin",
        crate::support::pkcs11::ADMIN_PASSWORD,
        &["audit", "list", "--json", "--limit", "1000"],
    );
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "ca.issue" && e["outcome"] == "denied")
        .count();
    assert!(refused >= 3, "{audit}");
}
