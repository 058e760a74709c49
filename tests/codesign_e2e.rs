//! Code signing end to end: a key generated in a real node, its certificate made by OpenSSL
//! as an independent CA, `keyward sign-file` (the node signs), and the signature checked by
//! OpenSSL (`openssl cms -verify`, `openssl dgst -verify`) and by `keyward verify-file`.
//!
//! OpenSSL's `cms -verify` checks the signer certificate for the S/MIME signing purpose by
//! default, which refuses a certificate whose extended key usage is code signing only
//! ("unsuitable certificate purpose"; OpenSSL 3.0 has no code-signing purpose). The tests
//! show that refusal once and verify with `-purpose any`, which still checks the chain, the
//! validity and the signature; `keyward verify-file` is the check that requires
//! id-kp-codeSigning.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::pkcs11::Node;
use support::{keyward, keyward_bin, run};

const USER: &str = "signer";
const PASSWORD: &str = "signer-password-1";

/// A node with the crypto-user [`USER`].
fn node() -> Node {
    let node = Node::start();
    node.crypto_user(&format!("{USER}:{PASSWORD}"));
    node
}

/// `keyward ARGS` as [`USER`] on `node`, whatever its outcome.
fn kw(node: &Node, args: &[&str]) -> Output {
    Command::new(keyward_bin())
        .args(args)
        .args(["--server", &node.url, "--ca-cert"])
        .arg(&node.ca)
        .args(["--user", USER, "--password", PASSWORD])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .env_remove("KEYWARD_USER")
        .env_remove("KEYWARD_PASSWORD")
        .env_remove("KEYWARD_CA_CERT")
        .stdin(Stdio::null())
        .output()
        .expect("run keyward")
}

/// A key pair generated in the node (`kind`: `ec --curve p256`, `rsa --bits 2048`, ...)
/// labelled `label`; its public key is written to `DIR/label.pub.pem`. Returns that path.
fn hsm_key(node: &Node, dir: &Path, kind: &[&str], label: &str) -> PathBuf {
    let mut args = vec!["key", "generate-asymmetric-pair"];
    args.extend(kind);
    args.extend([
        "--label",
        label,
        "--private-attr",
        "sign=true",
        "--public-attr",
        "verify=true",
    ]);
    let pair = node.json(USER, PASSWORD, &args);
    let public = pair["public"]["handle"].as_u64().unwrap().to_string();
    let pem = node.kw_ok(USER, PASSWORD, &["key", "public", "--key", &public]);
    assert!(pem.contains("BEGIN PUBLIC KEY"), "{pem}");
    let path = dir.join(format!("{label}.pub.pem"));
    std::fs::write(&path, pem).unwrap();
    path
}

/// `openssl ARGS` in `dir`: (success, stdout, stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out, err) = openssl(dir, args);
    assert!(ok, "openssl {args:?}: {err}");
    out
}

/// An OpenSSL CA in `dir`: the self-signed root `root.pem` (`root.key`) and the intermediate
/// `inter.pem` (`inter.key`) it issued.
fn make_ca(dir: &Path) {
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3",
            "-subj",
            "/CN=Test Code Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    std::fs::write(
        dir.join("inter.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "inter.key",
            "-out",
            "inter.csr",
            "-subj",
            "/CN=Test Code Intermediate",
        ],
    );
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "inter.ext",
            "-out",
            "inter.pem",
        ],
    );
}

/// A certificate for the public key `public` (PEM), issued by `issuer` (`root` or `inter`
/// of [`make_ca`]) with the extended key usage `eku` (`codeSigning` for a code-signing
/// certificate): a throwaway CSR, its key replaced with `-force_pubkey`. Returns
/// `DIR/name.pem`. (The CA is OpenSSL's, independent of Keyward's code.)
fn certificate(dir: &Path, issuer: &str, public: &Path, name: &str, eku: &str) -> PathBuf {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage={eku}\n"
        ),
    )
    .unwrap();
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.throwaway.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-force_pubkey",
            &public.display().to_string(),
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    dir.join(format!("{name}.pem"))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `keyward sign-file --key LABEL --cert CERT --in FILE --out SIG EXTRA...` must succeed.
fn sign(node: &Node, label: &str, cert: &Path, file: &Path, sig: &Path, extra: &[&str]) {
    let mut args = vec![
        "sign-file".to_owned(),
        "--key".into(),
        label.into(),
        "--cert".into(),
        path(cert),
        "--in".into(),
        path(file),
        "--out".into(),
        path(sig),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kw(node, &args);
    assert!(
        out.status.success(),
        "sign-file {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sig.is_file());
}

/// `openssl cms -verify` of the detached DER signature `sig` of `file` against `root.pem`.
fn openssl_cms_verify(dir: &Path, file: &Path, sig: &Path, purpose_any: bool) -> (bool, String) {
    let (file, sig) = (path(file), path(sig));
    let mut args = vec![
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &sig,
        "-content",
        &file,
        "-CAfile",
        "root.pem",
        "-out",
        "/dev/null",
    ];
    if purpose_any {
        args.extend(["-purpose", "any"]);
    }
    let (ok, _, err) = openssl(dir, &args);
    (ok, err)
}

/// `keyward verify-file ARGS` (no server): (exit success, stdout).
fn verify_file(args: &[&str]) -> (bool, String) {
    let mut all = vec!["verify-file"];
    all.extend(args);
    let out = keyward(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A file worth signing: binary, larger than one read buffer.
fn payload(dir: &Path) -> PathBuf {
    let file = dir.join("app.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, bytes).unwrap();
    file
}

/// Signs with `label`'s key in CMS, checks OpenSSL and verify-file accept it, that a changed
/// file is refused by both, and what `cms -print` shows. Returns the `cms -print` text.
fn cms_round_trip(node: &Node, dir: &Path, label: &str, cert: &Path, extra: &[&str]) -> String {
    let file = payload(dir);
    let sig = dir.join(format!("{label}.sig"));
    sign(node, label, cert, &file, &sig, extra);

    let (ok, err) = openssl_cms_verify(dir, &file, &sig, true);
    assert!(ok, "openssl cms -verify -purpose any: {err}");
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&sig),
        "--ca-file",
        &path(&dir.join("root.pem")),
    ]);
    assert!(ok && out.trim() == "valid", "{out}");

    let printed = openssl_ok(
        dir,
        &[
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            &path(&sig),
        ],
    );
    for needle in [
        "signingTime",
        "contentType",
        "messageDigest",
        "UTCTIME",
        "d.signedData",
    ] {
        assert!(printed.contains(needle), "no {needle} in:\n{printed}");
    }
    assert!(
        printed.contains("eContent: <ABSENT>"),
        "not detached:\n{printed}"
    );

    let changed = dir.join("app-changed.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    let (ok, err) = openssl_cms_verify(dir, &changed, &sig, true);
    assert!(!ok, "openssl accepted a changed file");
    assert!(
        err.contains("digest failure") || err.contains("Verification failure"),
        "{err}"
    );
    let (ok, out) = verify_file(&[
        "--in",
        &path(&changed),
        "--sig",
        &path(&sig),
        "--ca-file",
        &path(&dir.join("root.pem")),
    ]);
    assert!(!ok, "verify-file accepted a changed file: {out}");
    assert!(
        out.starts_with("invalid: the message digest does not match"),
        "{out}"
    );
    printed
}

#[test]
fn an_ecdsa_p256_cms_signature_verifies_with_openssl_and_verify_file_and_a_raw_one_with_dgst() {
    let node = node();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir);
    let public = hsm_key(&node, dir, &["ec", "--curve", "p256"], "release-ec");
    let cert = certificate(dir, "root", &public, "release-ec", "codeSigning");

    let printed = cms_round_trip(&node, dir, "release-ec", &cert, &[]);
    assert!(printed.contains("ecdsa-with-SHA256"), "{printed}");
    assert!(printed.contains("sha256"), "{printed}");

    // OpenSSL's default purpose for cms (S/MIME signing) refuses a code-signing-only
    // certificate: the reason the checks above pass `-purpose any`.
    let file = dir.join("app.bin");
    let sig = dir.join("release-ec.sig");
    let (ok, err) = openssl_cms_verify(dir, &file, &sig, false);
    assert!(
        !ok && err.contains("unsuitable certificate purpose"),
        "{err}"
    );

    // Raw: the bare ECDSA signature of the file, as `openssl dgst` checks it.
    let raw = dir.join("app.bin.raw.sig");
    sign(
        &node,
        "release-ec",
        &cert,
        &file,
        &raw,
        &["--format", "raw"],
    );
    let (ok, out, err) = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            &path(&public),
            "-signature",
            &path(&raw),
            &path(&file),
        ],
    );
    assert!(ok && out.contains("Verified OK"), "{out} {err}");
    let (ok, out) = verify_file(&[
        "--format",
        "raw",
        "--cert",
        &path(&cert),
        "--in",
        &path(&file),
        "--sig",
        &path(&raw),
        "--ca-file",
        &path(&dir.join("root.pem")),
    ]);
    assert!(ok && out.trim() == "valid", "{out}");
    // The raw signature is not a CMS one.
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&raw),
        "--ca-file",
        &path(&dir.join("root.pem")),
    ]);
    assert!(
        !ok && out.starts_with("invalid: not a DER CMS signature"),
        "{out}"
    );
}

#[test]
fn an_rsa_pkcs1_cms_signature_and_a_raw_one_verify_with_openssl() {
    let node = node();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir);
    let public = hsm_key(&node, dir, &["rsa", "--bits", "2048"], "release-rsa");
    let cert = certificate(dir, "root", &public, "release-rsa", "codeSigning");

    let printed = cms_round_trip(&node, dir, "release-rsa", &cert, &[]);
    assert!(printed.contains("sha256WithRSAEncryption"), "{printed}");

    let file = dir.join("app.bin");
    let raw = dir.join("app.bin.raw.sig");
    sign(
        &node,
        "release-rsa",
        &cert,
        &file,
        &raw,
        &["--format", "raw"],
    );
    assert_eq!(
        std::fs::metadata(&raw).unwrap().len(),
        256,
        "an RSA-2048 signature"
    );
    let (ok, out, err) = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            &path(&public),
            "-signature",
            &path(&raw),
            &path(&file),
        ],
    );
    assert!(ok && out.contains("Verified OK"), "{out} {err}");
}

#[test]
fn an_rsa_pss_cms_signature_names_the_hsm_salt_length_and_verifies_with_openssl() {
    let node = node();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir);
    let public = hsm_key(&node, dir, &["rsa", "--bits", "2048"], "release-pss");
    let cert = certificate(dir, "root", &public, "release-pss", "codeSigning");

    let printed = cms_round_trip(
        &node,
        dir,
        "release-pss",
        &cert,
        &["--mechanism", "rsa-pss-sha256"],
    );
    assert!(printed.contains("rsassaPss"), "{printed}");
    // RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt length 32 (0x20): the HSM's.
    assert!(printed.contains("mgf1"), "{printed}");
    assert!(
        printed
            .lines()
            .any(|l| l.contains("INTEGER") && l.trim_end().ends_with(":20")),
        "no salt length 0x20 in:\n{printed}"
    );

    // Raw PSS: openssl dgst with the same parameters.
    let file = dir.join("app.bin");
    let raw = dir.join("app.bin.pss.sig");
    sign(
        &node,
        "release-pss",
        &cert,
        &file,
        &raw,
        &["--format", "raw", "--mechanism", "rsa-pss-sha256"],
    );
    let (ok, out, err) = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
            &path(&public),
            "-signature",
            &path(&raw),
            &path(&file),
        ],
    );
    assert!(ok && out.contains("Verified OK"), "{out} {err}");

    // A mechanism of another key type is refused.
    let out = kw(
        &node,
        &[
            "sign-file",
            "--key",
            "release-pss",
            "--cert",
            &path(&cert),
            "--in",
            &path(&file),
            "--out",
            &path(&dir.join("never.sig")),
            "--mechanism",
            "ecdsa-sha256",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not fit an RSA key"),
        "{err}"
    );
}

#[test]
fn a_certificate_of_another_key_is_refused_before_signing() {
    let node = node();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir);
    hsm_key(&node, dir, &["ec", "--curve", "p256"], "mine");
    let other = hsm_key(&node, dir, &["ec", "--curve", "p256"], "other");
    let cert = certificate(dir, "root", &other, "other", "codeSigning");
    let file = payload(dir);
    let sig = dir.join("never.sig");
    let out = kw(
        &node,
        &[
            "sign-file",
            "--key",
            "mine",
            "--cert",
            &path(&cert),
            "--in",
            &path(&file),
            "--out",
            &path(&sig),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "signed with a certificate of another key"
    );
    assert!(
        err.contains("the certificate's public key is not the public key of HSM key"),
        "{err}"
    );
    assert!(!sig.exists(), "a signature was written");

    // CMS without a certificate is a usage error caught before connecting.
    let out = kw(
        &node,
        &[
            "sign-file",
            "--key",
            "mine",
            "--in",
            &path(&file),
            "--out",
            &path(&sig),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--format cms needs --cert"),
        "{err}"
    );
}

#[test]
fn a_signer_under_an_intermediate_verifies_to_the_root_and_a_server_certificate_does_not() {
    let node = node();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir);
    let public = hsm_key(&node, dir, &["ec", "--curve", "p256"], "release-chain");
    let cert = certificate(dir, "inter", &public, "release-chain", "codeSigning");
    let inter = dir.join("inter.pem");

    let printed = cms_round_trip(
        &node,
        dir,
        "release-chain",
        &cert,
        &["--chain", &path(&inter)],
    );
    assert!(
        printed.contains("Test Code Intermediate"),
        "the chain is in the signature:\n{printed}"
    );

    // Without the intermediate in the signature, verify-file needs it as --untrusted.
    let file = dir.join("app.bin");
    let bare = dir.join("bare.sig");
    sign(&node, "release-chain", &cert, &file, &bare, &[]);
    let root = path(&dir.join("root.pem"));
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&bare),
        "--ca-file",
        &root,
    ]);
    assert!(
        !ok && out.starts_with("invalid: the signer certificate is not trusted"),
        "{out}"
    );
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&bare),
        "--ca-file",
        &root,
        "--untrusted",
        &path(&inter),
    ]);
    assert!(ok && out.trim() == "valid", "{out}");

    // A certificate for TLS servers is not one for code signing.
    let server = certificate(dir, "root", &public, "release-server", "serverAuth");
    let sig = dir.join("server.sig");
    sign(&node, "release-chain", &server, &file, &sig, &[]);
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&sig),
        "--ca-file",
        &root,
    ]);
    assert!(
        !ok && out.starts_with("invalid: the signer certificate is not for code signing"),
        "{out}"
    );
    assert!(out.contains("id-kp-codeSigning"), "{out}");
}

/// Ed25519 (RFC 8419): OpenSSL 3.0 neither makes nor verifies Ed25519 CMS signatures (its
/// CMS code hands the digest algorithm to the pure-EdDSA signer: `eddsa_digest_signverify_init:
/// invalid digest`), so `verify-file` checks these and OpenSSL only parses them.
#[test]
fn an_ed25519_cms_signature_verifies_with_verify_file_and_a_raw_one_is_refused() {
    let node = node();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir);
    let public = hsm_key(&node, dir, &["ed25519"], "release-ed");
    let cert = certificate(dir, "root", &public, "release-ed", "codeSigning");
    let file = payload(dir);
    let sig = dir.join("release-ed.sig");
    sign(&node, "release-ed", &cert, &file, &sig, &[]);
    let root = path(&dir.join("root.pem"));
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&sig),
        "--ca-file",
        &root,
    ]);
    assert!(ok && out.trim() == "valid", "{out}");
    let printed = openssl_ok(
        dir,
        &[
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            &path(&sig),
        ],
    );
    assert!(printed.contains("ED25519"), "{printed}");
    assert!(
        printed.contains("sha512"),
        "RFC 8419 §3.1: a SHA-512 digest:\n{printed}"
    );
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(0);
    std::fs::write(&file, bytes).unwrap();
    let (ok, out) = verify_file(&[
        "--in",
        &path(&file),
        "--sig",
        &path(&sig),
        "--ca-file",
        &root,
    ]);
    assert!(
        !ok && out.starts_with("invalid: the message digest does not match"),
        "{out}"
    );

    let raw = dir.join("never.sig");
    let out = kw(
        &node,
        &[
            "sign-file",
            "--key",
            "release-ed",
            "--cert",
            &path(&cert),
            "--in",
            &path(&file),
            "--out",
            &path(&raw),
            "--format",
            "raw",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("use a CMS signature"),
        "{err}"
    );
    assert!(!raw.exists());
}

/// The signer certificates from Keyward's own issuing CA (profile `code-signing`, for the HSM
/// key itself): for ECDSA P-256, RSA PKCS#1 v1.5 and RSA-PSS, OpenSSL verifies the CMS
/// signature against the CA's root, and a changed file fails (`cms_round_trip`).
#[test]
fn certificates_from_keywards_own_ca_sign_files_that_openssl_verifies() {
    let node = node();
    let dir = node.dir.path();
    let out = kw(
        &node,
        &[
            "ca",
            "create",
            "code",
            "--common-name",
            "Keyward Code Signing CA",
            "--key-type",
            "ec-p384",
            "--max-days",
            "1095",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kw(
        &node,
        &[
            "ca",
            "certificate",
            "code",
            "--out",
            &path(&dir.join("root.pem")),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (kind, label, extra) in [
        (&["ec", "--curve", "p256"][..], "ca-signed-ec", &[][..]),
        (&["rsa", "--bits", "2048"][..], "ca-signed-rsa", &[][..]),
        (
            &["rsa", "--bits", "2048"][..],
            "ca-signed-pss",
            &["--mechanism", "rsa-pss-sha256"][..],
        ),
    ] {
        hsm_key(&node, dir, kind, label);
        let cert = dir.join(format!("{label}.pem"));
        let out = kw(
            &node,
            &[
                "ca",
                "issue",
                "code",
                "--profile",
                "code-signing",
                "--key",
                label,
                "--common-name",
                label,
                "--out",
                &path(&cert),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = openssl_ok(dir, &["x509", "-in", &path(&cert), "-noout", "-text"]);
        assert!(text.contains("Code Signing"), "{text}");
        let printed = cms_round_trip(&node, dir, label, &cert, extra);
        if label == "ca-signed-pss" {
            assert!(printed.contains("rsassaPss"), "{printed}");
        }
    }
}
