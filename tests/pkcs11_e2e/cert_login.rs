//! `C_Login` by client certificate: a token configured with `client_cert_file` and
//! `client_key_file` reports `CKF_PROTECTED_AUTHENTICATION_PATH`, and pkcs11-tool's `--login`
//! without a PIN logs in as the certificate's user (the node's mutual TLS, `--client-ca`).

use crate::common::*;

#[test]
fn pkcs11_tool_logs_in_with_a_client_certificate() {
    let lab = Lab::with_client_ca();
    lab.alice_cli_ec("cert-ec");
    let conf_for = |name: &str| {
        let (cert, key) = lab.node().client_certificate(name);
        let base = std::fs::read_to_string(&lab.conf).unwrap();
        lab.file(
            &format!("{name}.toml"),
            format!(
                "{base}client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
                p(&cert),
                p(&key)
            )
            .as_bytes(),
        )
    };
    let alice = conf_for("alice");
    let info = lab.tool_with_conf(&alice, &["-L"]).ok("pkcs11-tool -L");
    assert!(
        info.contains("PIN pad present") || info.contains("protected"),
        "{info}"
    );
    // No PIN: the certificate logs in; alice's key is there and signs.
    let msg = lab.file("msg", b"signed by a certificate's user");
    let digest = lab.file("msg.sha256", &sha256(b"signed by a certificate's user"));
    let (sig, pubkey) = (lab.path("sig.der"), lab.path("pub.der"));
    let sign = [
        "--token-label",
        TOKEN,
        "--login",
        "--sign",
        "--label",
        "cert-ec",
        "-m",
        "ECDSA",
        "--signature-format",
        "openssl",
        "-i",
        &p(&digest),
        "-o",
        &sig,
    ];
    lab.tool_with_conf(&alice, &sign)
        .ok("pkcs11-tool --sign by certificate");
    let read = [
        "--token-label",
        TOKEN,
        "--login",
        "--read-object",
        "--type",
        "pubkey",
        "--label",
        "cert-ec",
        "-o",
        &pubkey,
    ];
    lab.tool_with_conf(&alice, &read)
        .ok("pkcs11-tool --read-object by certificate");
    let pem = der_to_pem(&pubkey);
    openssl_verifies(&format!(
        "dgst -sha256 -verify {pem} -signature {sig} {}",
        p(&msg)
    ));
    // A certificate of a name that is no user: no login.
    let mallory = conf_for("mallory");
    let out = lab.tool_with_conf(
        &mallory,
        &["--token-label", TOKEN, "--login", "--list-objects"],
    );
    assert!(out.all().contains("CKR_PIN_INCORRECT"), "{}", out.all());
}
