//! Interoperability of the HSM's public API with the `openssl` command-line tool (OpenSSL 3).
//!
//! Every test works in its own temporary directory: a fresh HSM over a SQLite store, plus the
//! files exchanged with `openssl`. The byte layouts checked here are the ones documented in
//! `mechanism.rs`: DER / raw ECDSA signatures, RSA PKCS#1 v1.5 and PSS (salt = hash length),
//! pure Ed25519, RSA-OAEP with MGF1 on the same hash, `aes-cbc-pad` as IV ‖ ciphertext,
//! RFC 3394 AES-KW, RFC 5649 AES-KWP and the PKCS#11 `CKM_RSA_AES_KEY_WRAP` envelope.
//!
//! AES-GCM (`iv12 ‖ ct ‖ tag16`) is not tested against OpenSSL: `openssl enc` does not support
//! AEAD ciphers (it refuses `-aes-256-gcm` with "AEAD ciphers not supported"), so there is no
//! CLI counterpart to compare with.
//!
//! OpenSSL 3.0's `enc` needs an explicit IV for the wrap ciphers: `-iv A6A6A6A6A6A6A6A6` (the
//! RFC 3394 default IV) for `-id-aes*-wrap` and `-iv A65959A6` (the RFC 5649 alternative IV)
//! for `-id-aes*-wrap-pad`; without it it stops with "iv undefined".

use std::path::PathBuf;
use std::process::{Command, Output};

use keyward_hsm::test_util::TestHsm;
use keyward_hsm::{
    AttributeName, EncryptMechanism, KeyClass, KeyHandle, KeySpec, KeyTemplate, Session, SignInput,
    SignMechanism, SignatureEncoding, UnwrapTarget, WrapMechanism,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KW_IV: &str = "A6A6A6A6A6A6A6A6";
const KWP_IV: &str = "A65959A6";

// ----- fixture and helpers -----

/// An HSM in its own temporary folder (which also holds the files exchanged with `openssl`),
/// and the proxy's service session.
struct Fixture {
    hsm: TestHsm,
    me: Session,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let hsm = TestHsm::new();
    let me = hsm.service();
    Ok(Fixture { hsm, me })
}

impl Fixture {
    /// The path of `name` in the test's directory, as a string for `openssl` arguments.
    fn path(&self, name: &str) -> String {
        let p: PathBuf = self.hsm.store.dir().join(name);
        p.to_str().expect("temp paths are UTF-8").to_owned()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read temp file")
    }

    /// Writes SubjectPublicKeyInfo DER as a PEM `PUBLIC KEY` file.
    fn write_spki_pem(&self, name: &str, spki_der: &[u8]) -> String {
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki_der.to_vec()));
        self.write(name, pem.as_bytes())
    }

    /// Creates an RSA-2048 "transport" pair in the HSM whose private key may unwrap, and
    /// returns the private handle and the public key as a PEM file for OpenSSL.
    fn transport_key(&self, label: &str) -> Result<(KeyHandle, String), keyward_hsm::Error> {
        let (private, public) = self.hsm.generate_key_pair(
            &self.me,
            KeySpec::Rsa2048,
            &KeyTemplate::labelled(label).with(AttributeName::Unwrap, true),
            // Key-usage separation: a transport pair wraps and unwraps keys only.
            &KeyTemplate::labelled(label).with(AttributeName::Wrap, true),
        )?;
        let spki = self.hsm.public_key_spki(&self.me, public.handle)?;
        let pem = self.write_spki_pem(&format!("{label}.pub.pem"), &spki);
        Ok((private.handle, pem))
    }

    /// Builds a PKCS#11 `CKM_RSA_AES_KEY_WRAP` envelope of the file `payload` with OpenSSL:
    /// RSA-OAEP(SHA-256, MGF1-SHA-256) of a fresh AES-256 key under `rsa_pub_pem`, followed by
    /// RFC 5649 KWP of the payload under that AES key.
    fn rsa_aes_envelope(&self, rsa_pub_pem: &str, payload: &str, tag: &str) -> Vec<u8> {
        let aes = self.path(&format!("{tag}.ephemeral.bin"));
        openssl_ok(&["rand", "-out", &aes, "32"]);
        let aes_hex = hex::encode(self.read(&format!("{tag}.ephemeral.bin")));
        let rsa_part = self.path(&format!("{tag}.rsa-part.bin"));
        openssl_ok(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            rsa_pub_pem,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            &aes,
            "-out",
            &rsa_part,
        ]);
        let kwp_part = self.path(&format!("{tag}.kwp-part.bin"));
        openssl_ok(&[
            "enc",
            "-id-aes256-wrap-pad",
            "-K",
            &aes_hex,
            "-iv",
            KWP_IV,
            "-in",
            payload,
            "-out",
            &kwp_part,
        ]);
        let mut envelope = self.read(&format!("{tag}.rsa-part.bin"));
        assert_eq!(envelope.len(), 256, "RSA-2048 OAEP ciphertext length");
        envelope.extend(self.read(&format!("{tag}.kwp-part.bin")));
        envelope
    }

    /// Brings a known AES key (`value`, 16 or 32 bytes) into the HSM as a key-encryption key
    /// (wrap, unwrap, extractable) through an RSA-AES envelope built by OpenSSL.
    fn import_kek(&self, value: &[u8], label: &str) -> Result<KeyHandle, keyward_hsm::Error> {
        let (transport, transport_pem) = self.transport_key(&format!("{label}-transport"))?;
        let payload = self.write(&format!("{label}.value.bin"), value);
        let envelope = self.rsa_aes_envelope(&transport_pem, &payload, label);
        let spec = KeySpec::aes_for_len(value.len()).expect("AES key length");
        let kek = self.hsm.unwrap_key(
            &self.me,
            transport,
            WrapMechanism::RsaAes,
            &envelope,
            UnwrapTarget::Secret(spec),
            &KeyTemplate::labelled(label)
                .with(AttributeName::Wrap, true)
                .with(AttributeName::Unwrap, true)
                .with(AttributeName::Extractable, true),
        )?;
        assert_eq!(kek.spec, spec);
        assert_eq!(kek.class, KeyClass::Secret);
        assert!(!kek.attributes.local, "an unwrapped key is not local");
        Ok(kek.handle)
    }
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run the openssl command-line tool")
}

/// Runs `openssl`, insists that it succeeds, returns its stdout.
fn openssl_ok(args: &[&str]) -> Vec<u8> {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs an `openssl` verification. Returns whether the signature verified; panics if OpenSSL
/// failed for any other reason (bad arguments, unreadable key), so that a negative result
/// really is a rejected signature.
fn openssl_verifies(args: &[&str], ok_text: &str, fail_text: &str) -> bool {
    let out = openssl(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.contains(ok_text) {
        return true;
    }
    assert!(
        !out.status.success() && stdout.contains(fail_text),
        "openssl {args:?} neither verified nor rejected the signature ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// `openssl dgst -<hash> -verify` of `sig` over the file `msg`.
fn dgst_verifies(hash: &str, pub_pem: &str, sig: &str, msg: &str, sigopts: &[String]) -> bool {
    let hash_flag = format!("-{hash}");
    let mut args = vec![
        "dgst",
        hash_flag.as_str(),
        "-verify",
        pub_pem,
        "-signature",
        sig,
    ];
    for o in sigopts {
        args.extend(["-sigopt", o.as_str()]);
    }
    args.push(msg);
    openssl_verifies(&args, "Verified OK", "Verification failure")
}

/// `openssl pkeyutl -verify -rawin` (Ed25519) of `sig` over the file `msg`.
fn rawin_verifies(pub_pem: &str, sig: &str, msg: &str) -> bool {
    openssl_verifies(
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", pub_pem, "-rawin", "-in", msg, "-sigfile",
            sig,
        ],
        "Signature Verified Successfully",
        "Signature Verification Failure",
    )
}

/// `-sigopt` values for RSA-PSS with MGF1 on the same hash and salt = hash length.
fn pss_sigopts(hash: &str, salt_len: usize) -> Vec<String> {
    vec![
        "rsa_padding_mode:pss".to_owned(),
        format!("rsa_pss_saltlen:{salt_len}"),
        format!("rsa_mgf1_md:{hash}"),
    ]
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= 0x01;
    v
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

/// Re-encodes a fixed-width `r‖s` ECDSA signature as DER `Ecdsa-Sig-Value` (RFC 3279).
fn raw_ecdsa_to_der(raw: &[u8]) -> Vec<u8> {
    assert_eq!(raw.len() % 2, 0);
    let mut body = Vec::new();
    for half in raw.chunks(raw.len() / 2) {
        let start = half.iter().position(|&b| b != 0).unwrap_or(half.len() - 1);
        let mut int = half[start..].to_vec();
        if int[0] & 0x80 != 0 {
            int.insert(0, 0);
        }
        body.push(0x02);
        der_len(int.len(), &mut body);
        body.extend(int);
    }
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// The DER SPKI OpenSSL derives from a key file (private or, with `pubin`, public).
fn openssl_spki_der(fx: &Fixture, key: &str, pubin: bool, inform_der: bool, tag: &str) -> Vec<u8> {
    let out = fx.path(&format!("{tag}.spki.der"));
    let mut args = vec!["pkey", "-in", key];
    if pubin {
        args.push("-pubin");
    }
    if inform_der {
        args.extend(["-inform", "DER"]);
    }
    args.extend(["-pubout", "-outform", "DER", "-out", &out]);
    openssl_ok(&args);
    fx.read(&format!("{tag}.spki.der"))
}

const MESSAGE: &[u8] = b"Keyward interop: the quick brown fox jumps over the lazy dog\n";

// ----- 1. HSM signatures verify with OpenSSL -----

#[test]
fn hsm_ecdsa_signatures_verify_in_openssl() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let bad_msg = fx.write("bad-msg.bin", &flipped(MESSAGE, 7));
    let cases = [
        (KeySpec::EcP256, SignMechanism::EcdsaSha256, "sha256"),
        (KeySpec::EcP384, SignMechanism::EcdsaSha384, "sha384"),
        (KeySpec::EcP521, SignMechanism::EcdsaSha512, "sha512"),
        (KeySpec::EcP521, SignMechanism::EcdsaSha256, "sha256"),
        (KeySpec::EcP521, SignMechanism::EcdsaSha384, "sha384"),
    ];
    for (i, (spec, mechanism, hash)) in cases.into_iter().enumerate() {
        let label = format!("ec-{i}");
        let (private, public) = fx.hsm.generate_key_pair(
            &fx.me,
            spec,
            &KeyTemplate::labelled(&label).with(AttributeName::Sign, true),
            &KeyTemplate::labelled(&label).with(AttributeName::Verify, true),
        )?;
        let spki = fx.hsm.public_key_spki(&fx.me, public.handle)?;
        assert_eq!(spki, fx.hsm.public_key_spki(&fx.me, private.handle)?);
        let pub_pem = fx.write_spki_pem(&format!("{label}.pub.pem"), &spki);
        // OpenSSL reads the SPKI and writes back the very same bytes (named curve,
        // uncompressed point).
        assert_eq!(
            openssl_spki_der(&fx, &pub_pem, true, false, &label),
            spki,
            "{spec}: SPKI differs from OpenSSL's encoding"
        );

        // DER signature over the message.
        let der = fx.hsm.sign(
            &fx.me,
            private.handle,
            mechanism,
            SignInput::Message(MESSAGE),
            SignatureEncoding::Der,
        )?;
        let sig = fx.write(&format!("{label}.der.sig"), &der);
        assert!(
            dgst_verifies(hash, &pub_pem, &sig, &msg, &[]),
            "{spec} {mechanism}: OpenSSL rejected an HSM DER signature"
        );
        assert!(
            !dgst_verifies(hash, &pub_pem, &sig, &bad_msg, &[]),
            "{spec} {mechanism}: OpenSSL accepted a signature over a different message"
        );

        // Raw r‖s signature, re-encoded as DER for OpenSSL.
        let raw = fx.hsm.sign(
            &fx.me,
            private.handle,
            mechanism,
            SignInput::Message(MESSAGE),
            SignatureEncoding::Raw,
        )?;
        let field = match spec {
            KeySpec::EcP256 => 32,
            KeySpec::EcP384 => 48,
            _ => 66,
        };
        assert_eq!(
            raw.len(),
            2 * field,
            "{spec}: raw signature is 2 × field size"
        );
        let sig = fx.write(&format!("{label}.raw.sig"), &raw_ecdsa_to_der(&raw));
        assert!(
            dgst_verifies(hash, &pub_pem, &sig, &msg, &[]),
            "{spec} {mechanism}: OpenSSL rejected an HSM raw signature"
        );

        // A digest computed by OpenSSL, signed by the HSM.
        let digest = openssl_ok(&["dgst", &format!("-{hash}"), "-binary", &msg]);
        let der = fx.hsm.sign(
            &fx.me,
            private.handle,
            mechanism,
            SignInput::Digest(&digest),
            SignatureEncoding::Der,
        )?;
        let sig = fx.write(&format!("{label}.digest.sig"), &der);
        assert!(
            dgst_verifies(hash, &pub_pem, &sig, &msg, &[]),
            "{spec} {mechanism}: OpenSSL rejected an HSM signature over a precomputed digest"
        );
    }
    Ok(())
}

#[test]
fn hsm_rsa_signatures_verify_in_openssl() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let bad_msg = fx.write("bad-msg.bin", &flipped(MESSAGE, 0));
    let (private, public) = fx.hsm.generate_key_pair(
        &fx.me,
        KeySpec::Rsa2048,
        &KeyTemplate::labelled("rsa").with(AttributeName::Sign, true),
        &KeyTemplate::labelled("rsa").with(AttributeName::Verify, true),
    )?;
    let spki = fx.hsm.public_key_spki(&fx.me, public.handle)?;
    let pub_pem = fx.write_spki_pem("rsa.pub.pem", &spki);
    assert_eq!(openssl_spki_der(&fx, &pub_pem, true, false, "rsa"), spki);
    let text = String::from_utf8(openssl_ok(&[
        "pkey", "-pubin", "-in", &pub_pem, "-text", "-noout",
    ]))?;
    assert!(text.contains("2048 bit"), "not a 2048-bit key: {text}");
    assert!(text.contains("65537"), "exponent is not 65537: {text}");

    let cases: [(SignMechanism, &str, Option<usize>); 6] = [
        (SignMechanism::RsaPkcs1Sha256, "sha256", None),
        (SignMechanism::RsaPkcs1Sha384, "sha384", None),
        (SignMechanism::RsaPkcs1Sha512, "sha512", None),
        (SignMechanism::RsaPssSha256, "sha256", Some(32)),
        (SignMechanism::RsaPssSha384, "sha384", Some(48)),
        (SignMechanism::RsaPssSha512, "sha512", Some(64)),
    ];
    for (mechanism, hash, pss_salt) in cases {
        let sigopts = pss_salt.map(|s| pss_sigopts(hash, s)).unwrap_or_default();
        let signature = fx.hsm.sign(
            &fx.me,
            private.handle,
            mechanism,
            SignInput::Message(MESSAGE),
            SignatureEncoding::Der,
        )?;
        assert_eq!(
            signature.len(),
            256,
            "{mechanism}: modulus-length signature"
        );
        let sig = fx.write(&format!("{mechanism}.sig"), &signature);
        assert!(
            dgst_verifies(hash, &pub_pem, &sig, &msg, &sigopts),
            "{mechanism}: OpenSSL rejected an HSM signature"
        );
        assert!(
            !dgst_verifies(hash, &pub_pem, &sig, &bad_msg, &sigopts),
            "{mechanism}: OpenSSL accepted a signature over a different message"
        );
        if let Some(salt) = pss_salt {
            // The salt really is the hash length: OpenSSL, told to expect another length,
            // rejects the signature.
            let wrong = pss_sigopts(hash, salt + 1);
            assert!(
                !dgst_verifies(hash, &pub_pem, &sig, &msg, &wrong),
                "{mechanism}: OpenSSL accepted a salt length other than {salt}"
            );
        }

        // Also with a digest computed by OpenSSL.
        let digest = openssl_ok(&["dgst", &format!("-{hash}"), "-binary", &msg]);
        let signature = fx.hsm.sign(
            &fx.me,
            private.handle,
            mechanism,
            SignInput::Digest(&digest),
            SignatureEncoding::Der,
        )?;
        let sig = fx.write(&format!("{mechanism}.digest.sig"), &signature);
        assert!(
            dgst_verifies(hash, &pub_pem, &sig, &msg, &sigopts),
            "{mechanism}: OpenSSL rejected an HSM signature over a precomputed digest"
        );
    }
    Ok(())
}

#[test]
fn hsm_ed25519_signatures_verify_in_openssl() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let bad_msg = fx.write("bad-msg.bin", &flipped(MESSAGE, MESSAGE.len() - 1));
    let (private, public) = fx.hsm.generate_key_pair(
        &fx.me,
        KeySpec::Ed25519,
        &KeyTemplate::labelled("ed").with(AttributeName::Sign, true),
        &KeyTemplate::labelled("ed").with(AttributeName::Verify, true),
    )?;
    let spki = fx.hsm.public_key_spki(&fx.me, public.handle)?;
    let pub_pem = fx.write_spki_pem("ed.pub.pem", &spki);
    assert_eq!(openssl_spki_der(&fx, &pub_pem, true, false, "ed"), spki);

    let signature = fx.hsm.sign(
        &fx.me,
        private.handle,
        SignMechanism::Ed25519,
        SignInput::Message(MESSAGE),
        SignatureEncoding::Der,
    )?;
    assert_eq!(signature.len(), 64);
    let sig = fx.write("ed.sig", &signature);
    assert!(
        rawin_verifies(&pub_pem, &sig, &msg),
        "OpenSSL rejected an HSM Ed25519 signature"
    );
    assert!(
        !rawin_verifies(&pub_pem, &sig, &bad_msg),
        "OpenSSL accepted an Ed25519 signature over a different message"
    );
    Ok(())
}

// ----- 2. OpenSSL signatures verify in the HSM -----

/// Generates a key with `openssl genpkey`, imports its public half into the HSM (verify only)
/// and returns (private key PEM path, public key handle).
fn openssl_key_into_hsm(
    fx: &Fixture,
    genpkey: &[&str],
    expected: KeySpec,
    label: &str,
) -> Result<(String, KeyHandle), Box<dyn std::error::Error>> {
    let key = fx.path(&format!("{label}.key.pem"));
    let mut args = vec!["genpkey"];
    args.extend(genpkey);
    args.extend(["-out", &key]);
    openssl_ok(&args);
    let spki = openssl_spki_der(fx, &key, false, false, label);
    let info = fx.hsm.import_public_key(
        &fx.me,
        &spki,
        &KeyTemplate::labelled(label).with(AttributeName::Verify, true),
    )?;
    assert_eq!(info.spec, expected, "{label}: detected key type");
    assert_eq!(info.class, KeyClass::Public);
    assert_eq!(fx.hsm.public_key_spki(&fx.me, info.handle)?, spki);
    Ok((key, info.handle))
}

/// The HSM's verdict on `signature` over `MESSAGE`, over a changed message, and with a changed
/// signature: must be (true, false, false).
fn hsm_verdicts(
    fx: &Fixture,
    handle: KeyHandle,
    mechanism: SignMechanism,
    signature: &[u8],
) -> Result<(bool, bool, bool), keyward_hsm::Error> {
    let verify = |msg: &[u8], sig: &[u8]| {
        fx.hsm.verify(
            &fx.me,
            handle,
            mechanism,
            SignInput::Message(msg),
            sig,
            SignatureEncoding::Der,
        )
    };
    Ok((
        verify(MESSAGE, signature)?,
        verify(&flipped(MESSAGE, 3), signature)?,
        verify(MESSAGE, &flipped(signature, signature.len() / 2))?,
    ))
}

#[test]
fn openssl_ecdsa_signatures_verify_in_hsm() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let cases = [
        (
            "P-256",
            KeySpec::EcP256,
            SignMechanism::EcdsaSha256,
            "sha256",
        ),
        (
            "P-384",
            KeySpec::EcP384,
            SignMechanism::EcdsaSha384,
            "sha384",
        ),
        (
            "P-521",
            KeySpec::EcP521,
            SignMechanism::EcdsaSha512,
            "sha512",
        ),
    ];
    for (curve, spec, mechanism, hash) in cases {
        let label = format!("ossl-{curve}");
        let curve_opt = format!("ec_paramgen_curve:{curve}");
        let (key, handle) = openssl_key_into_hsm(
            &fx,
            &["-algorithm", "EC", "-pkeyopt", &curve_opt],
            spec,
            &label,
        )?;
        let sig = fx.path(&format!("{label}.sig"));
        openssl_ok(&[
            "dgst",
            &format!("-{hash}"),
            "-sign",
            &key,
            "-out",
            &sig,
            &msg,
        ]);
        let signature = fx.read(&format!("{label}.sig"));
        assert_eq!(
            hsm_verdicts(&fx, handle, mechanism, &signature)?,
            (true, false, false),
            "{curve} {mechanism}: HSM verdicts on an OpenSSL signature"
        );
    }
    Ok(())
}

#[test]
fn openssl_rsa_signatures_verify_in_hsm() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let (key, handle) = openssl_key_into_hsm(
        &fx,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        KeySpec::Rsa2048,
        "ossl-rsa",
    )?;
    let cases: [(SignMechanism, &str, Option<usize>); 6] = [
        (SignMechanism::RsaPkcs1Sha256, "sha256", None),
        (SignMechanism::RsaPkcs1Sha384, "sha384", None),
        (SignMechanism::RsaPkcs1Sha512, "sha512", None),
        (SignMechanism::RsaPssSha256, "sha256", Some(32)),
        (SignMechanism::RsaPssSha384, "sha384", Some(48)),
        (SignMechanism::RsaPssSha512, "sha512", Some(64)),
    ];
    for (mechanism, hash, pss_salt) in cases {
        let sig = fx.path(&format!("{mechanism}.sig"));
        let hash_flag = format!("-{hash}");
        let mut args = vec!["dgst", hash_flag.as_str(), "-sign", &key, "-out", &sig];
        let sigopts = pss_salt.map(|s| pss_sigopts(hash, s)).unwrap_or_default();
        for o in &sigopts {
            args.extend(["-sigopt", o.as_str()]);
        }
        args.push(&msg);
        openssl_ok(&args);
        let signature = fx.read(&format!("{mechanism}.sig"));
        assert_eq!(
            hsm_verdicts(&fx, handle, mechanism, &signature)?,
            (true, false, false),
            "{mechanism}: HSM verdicts on an OpenSSL signature"
        );
    }
    Ok(())
}

#[test]
fn openssl_ed25519_signatures_verify_in_hsm() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let (key, handle) =
        openssl_key_into_hsm(&fx, &["-algorithm", "ed25519"], KeySpec::Ed25519, "ossl-ed")?;
    let sig = fx.path("ed.sig");
    openssl_ok(&[
        "pkeyutl", "-sign", "-inkey", &key, "-rawin", "-in", &msg, "-out", &sig,
    ]);
    let signature = fx.read("ed.sig");
    assert_eq!(signature.len(), 64);
    assert_eq!(
        hsm_verdicts(&fx, handle, SignMechanism::Ed25519, &signature)?,
        (true, false, false),
        "HSM verdicts on an OpenSSL Ed25519 signature"
    );
    Ok(())
}

// ----- 3. OpenSSL keys enter the HSM by RSA-AES unwrap; OpenSSL's RSA-OAEP decrypts there -----

/// Generates a key with OpenSSL, wraps its PKCS#8 DER in an RSA-AES envelope under an HSM
/// transport key, unwraps it in the HSM as a private key with `template`, and checks that the
/// HSM's public key is OpenSSL's. Returns (OpenSSL private key PEM, OpenSSL SPKI PEM, handle).
fn openssl_private_key_into_hsm(
    fx: &Fixture,
    genpkey: &[&str],
    expected: KeySpec,
    label: &str,
    template: &KeyTemplate,
) -> Result<(String, String, KeyHandle), Box<dyn std::error::Error>> {
    let key = fx.path(&format!("{label}.key.pem"));
    let mut args = vec!["genpkey"];
    args.extend(genpkey);
    args.extend(["-out", &key]);
    openssl_ok(&args);
    let pkcs8 = fx.path(&format!("{label}.pkcs8.der"));
    openssl_ok(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER", "-out", &pkcs8,
    ]);
    let openssl_spki = openssl_spki_der(fx, &key, false, false, label);
    let pub_pem = fx.write_spki_pem(&format!("{label}.pub.pem"), &openssl_spki);

    let (transport, transport_pem) = fx.transport_key(&format!("{label}-transport"))?;
    let envelope = fx.rsa_aes_envelope(&transport_pem, &pkcs8, label);
    let info = fx.hsm.unwrap_key(
        &fx.me,
        transport,
        WrapMechanism::RsaAes,
        &envelope,
        UnwrapTarget::Private,
        template,
    )?;
    assert_eq!(info.spec, expected, "{label}: detected key type");
    assert_eq!(info.class, KeyClass::Private);
    assert!(!info.attributes.local);
    assert_eq!(
        fx.hsm.public_key_spki(&fx.me, info.handle)?,
        openssl_spki,
        "{label}: the unwrapped key's public half is not OpenSSL's"
    );

    // A corrupted envelope does not unwrap.
    let last = envelope.len() - 1;
    let err = fx
        .hsm
        .unwrap_key(
            &fx.me,
            transport,
            WrapMechanism::RsaAes,
            &flipped(&envelope, last),
            UnwrapTarget::Private,
            &KeyTemplate::labelled(&format!("{label}-corrupt")),
        )
        .expect_err("a corrupted RSA-AES envelope unwrapped");
    assert!(
        matches!(err, keyward_hsm::Error::InvalidInput { .. }),
        "{err:?}"
    );
    Ok((key, pub_pem, info.handle))
}

#[test]
fn openssl_rsa_oaep_ciphertexts_decrypt_in_hsm() -> TestResult {
    let fx = fixture()?;
    let (_key, pub_pem, handle) = openssl_private_key_into_hsm(
        &fx,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        KeySpec::Rsa2048,
        "oaep",
        &KeyTemplate::labelled("oaep").with(AttributeName::Decrypt, true),
    )?;
    let plain = fx.write("plain.bin", MESSAGE);
    let cases = [
        (EncryptMechanism::RsaOaepSha256, "sha256"),
        (EncryptMechanism::RsaOaepSha384, "sha384"),
        (EncryptMechanism::RsaOaepSha512, "sha512"),
    ];
    for (mechanism, hash) in cases {
        let ct = fx.path(&format!("{hash}.ct"));
        openssl_ok(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &pub_pem,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &format!("rsa_oaep_md:{hash}"),
            "-pkeyopt",
            &format!("rsa_mgf1_md:{hash}"),
            "-in",
            &plain,
            "-out",
            &ct,
        ]);
        let ciphertext = fx.read(&format!("{hash}.ct"));
        assert_eq!(ciphertext.len(), 256);
        let out = fx
            .hsm
            .decrypt(&fx.me, handle, mechanism, &ciphertext, b"")?;
        assert_eq!(out.as_slice(), MESSAGE, "{mechanism}");

        // The hash matters: the same ciphertext under another OAEP hash does not decrypt.
        let other = if mechanism == EncryptMechanism::RsaOaepSha256 {
            EncryptMechanism::RsaOaepSha512
        } else {
            EncryptMechanism::RsaOaepSha256
        };
        assert!(
            fx.hsm
                .decrypt(&fx.me, handle, other, &ciphertext, b"")
                .is_err(),
            "a {mechanism} ciphertext decrypted as {other}"
        );
    }
    Ok(())
}

#[test]
fn openssl_ec_and_ed25519_keys_unwrapped_into_hsm_sign_for_openssl() -> TestResult {
    let fx = fixture()?;
    let msg = fx.write("msg.bin", MESSAGE);
    let cases: [(&[&str], KeySpec, SignMechanism, Option<&str>); 4] = [
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeySpec::EcP256,
            SignMechanism::EcdsaSha256,
            Some("sha256"),
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeySpec::EcP384,
            SignMechanism::EcdsaSha384,
            Some("sha384"),
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
            KeySpec::EcP521,
            SignMechanism::EcdsaSha512,
            Some("sha512"),
        ),
        (
            &["-algorithm", "ed25519"],
            KeySpec::Ed25519,
            SignMechanism::Ed25519,
            None,
        ),
    ];
    for (genpkey, spec, mechanism, hash) in cases {
        let label = format!("byok-{spec}");
        let (_key, pub_pem, handle) = openssl_private_key_into_hsm(
            &fx,
            genpkey,
            spec,
            &label,
            &KeyTemplate::labelled(&label).with(AttributeName::Sign, true),
        )?;
        let signature = fx.hsm.sign(
            &fx.me,
            handle,
            mechanism,
            SignInput::Message(MESSAGE),
            SignatureEncoding::Der,
        )?;
        let sig = fx.write(&format!("{label}.sig"), &signature);
        let ok = match hash {
            Some(h) => dgst_verifies(h, &pub_pem, &sig, &msg, &[]),
            None => rawin_verifies(&pub_pem, &sig, &msg),
        };
        assert!(
            ok,
            "{spec}: OpenSSL rejected a signature by its own key inside the HSM"
        );
    }
    Ok(())
}

// ----- HSM RSA encryption and wrapping, opened by OpenSSL -----

#[test]
fn hsm_rsa_oaep_and_rsa_aes_output_opens_in_openssl() -> TestResult {
    let fx = fixture()?;
    // An OpenSSL RSA key; the HSM gets only its public half, for encrypt and wrap.
    let key = fx.path("ossl.key.pem");
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &key,
    ]);
    let spki = openssl_spki_der(&fx, &key, false, false, "ossl");
    let public = fx.hsm.import_public_key(
        &fx.me,
        &spki,
        &KeyTemplate::labelled("ossl")
            .with(AttributeName::Encrypt, true)
            .with(AttributeName::Wrap, true),
    )?;
    let oaep_decrypt = |ct_file: &str, hash: &str| -> Vec<u8> {
        let md = format!("rsa_oaep_md:{hash}");
        let mgf = format!("rsa_mgf1_md:{hash}");
        openssl_ok(&[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            &key,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &md,
            "-pkeyopt",
            &mgf,
            "-in",
            ct_file,
        ])
    };

    // RSA-OAEP encryption by the HSM.
    for (mechanism, hash) in [
        (EncryptMechanism::RsaOaepSha256, "sha256"),
        (EncryptMechanism::RsaOaepSha384, "sha384"),
        (EncryptMechanism::RsaOaepSha512, "sha512"),
    ] {
        let ct = fx
            .hsm
            .encrypt(&fx.me, public.handle, mechanism, MESSAGE, b"")?;
        assert_eq!(ct.len(), 256);
        let ct_file = fx.write(&format!("{hash}.ct"), &ct);
        assert_eq!(oaep_decrypt(&ct_file, hash), MESSAGE, "{mechanism}");
    }

    // A secret key wrapped with rsa-oaep (SHA-256): OpenSSL recovers the AES key, and the key
    // decrypts an HSM aes-cbc-pad ciphertext.
    let aes = fx.hsm.generate_secret_key(
        &fx.me,
        KeySpec::Aes256,
        &KeyTemplate::labelled("aes")
            .with(AttributeName::Encrypt, true)
            .with(AttributeName::Extractable, true),
    )?;
    let wrapped = fx
        .hsm
        .wrap_key(&fx.me, public.handle, WrapMechanism::RsaOaep, aes.handle)?;
    let wrapped_file = fx.write("aes.rsa-oaep", &wrapped);
    let aes_value = oaep_decrypt(&wrapped_file, "sha256");
    assert_eq!(aes_value.len(), 32);
    assert_eq!(
        openssl_cbc_decrypt(&fx, &aes_value, aes.handle, "rsa-oaep")?,
        MESSAGE
    );

    // A private key wrapped with rsa-aes: OpenSSL opens the envelope (OAEP, then KWP) and
    // reads the PKCS#8 inside; its public key is the HSM's.
    let (ec_private, ec_public) = fx.hsm.generate_key_pair(
        &fx.me,
        KeySpec::EcP384,
        &KeyTemplate::labelled("exported").with(AttributeName::Extractable, true),
        &KeyTemplate::labelled("exported"),
    )?;
    let envelope = fx.hsm.wrap_key(
        &fx.me,
        public.handle,
        WrapMechanism::RsaAes,
        ec_private.handle,
    )?;
    let (rsa_part, kwp_part) = envelope.split_at(256);
    let rsa_file = fx.write("env.rsa-part", rsa_part);
    let kwp_file = fx.write("env.kwp-part", kwp_part);
    let ephemeral = oaep_decrypt(&rsa_file, "sha256");
    assert_eq!(ephemeral.len(), 32, "the envelope's AES key is AES-256");
    let pkcs8 = fx.path("exported.pkcs8.der");
    openssl_ok(&[
        "enc",
        "-d",
        "-id-aes256-wrap-pad",
        "-K",
        &hex::encode(&ephemeral),
        "-iv",
        KWP_IV,
        "-in",
        &kwp_file,
        "-out",
        &pkcs8,
    ]);
    assert_eq!(
        openssl_spki_der(&fx, &pkcs8, false, true, "exported"),
        fx.hsm.public_key_spki(&fx.me, ec_public.handle)?,
        "the PKCS#8 in the HSM's RSA-AES envelope is not the HSM's key"
    );
    Ok(())
}

// ----- 4. AES key wrap (RFC 3394 / RFC 5649) both ways -----

/// HSM `aes-cbc-pad` encryption of `MESSAGE` under `handle`, decrypted by `openssl enc` with
/// the key value `key`.
fn openssl_cbc_decrypt(
    fx: &Fixture,
    key: &[u8],
    handle: KeyHandle,
    tag: &str,
) -> Result<Vec<u8>, keyward_hsm::Error> {
    let out = fx
        .hsm
        .encrypt(&fx.me, handle, EncryptMechanism::AesCbcPad, MESSAGE, b"")?;
    assert_eq!(
        out.len(),
        16 + (MESSAGE.len() / 16 + 1) * 16,
        "IV ‖ PKCS#7-padded ciphertext"
    );
    let (iv, ct) = out.split_at(16);
    let ct_file = fx.write(&format!("{tag}.cbc"), ct);
    let cipher = format!("-aes-{}-cbc", key.len() * 8);
    Ok(openssl_ok(&[
        "enc",
        "-d",
        &cipher,
        "-K",
        &hex::encode(key),
        "-iv",
        &hex::encode(iv),
        "-in",
        &ct_file,
    ]))
}

/// `openssl enc -aes-*-cbc` of `MESSAGE` with `key` and a fresh IV, decrypted by the HSM.
fn hsm_cbc_decrypt(
    fx: &Fixture,
    key: &[u8],
    handle: KeyHandle,
    tag: &str,
) -> Result<Vec<u8>, keyward_hsm::Error> {
    let iv = fx.hsm.random(&fx.me, 16)?;
    let plain = fx.write(&format!("{tag}.plain"), MESSAGE);
    let cipher = format!("-aes-{}-cbc", key.len() * 8);
    let ct = openssl_ok(&[
        "enc",
        &cipher,
        "-K",
        &hex::encode(key),
        "-iv",
        &hex::encode(&iv),
        "-in",
        &plain,
    ]);
    let mut input = iv;
    input.extend(ct);
    Ok(fx
        .hsm
        .decrypt(&fx.me, handle, EncryptMechanism::AesCbcPad, &input, b"")?
        .to_vec())
}

/// The `openssl enc` wrap cipher and IV for a KEK length and mechanism.
fn wrap_cipher(kek_len: usize, mechanism: WrapMechanism) -> (String, &'static str) {
    let bits = kek_len * 8;
    match mechanism {
        WrapMechanism::AesKw => (format!("-id-aes{bits}-wrap"), KW_IV),
        _ => (format!("-id-aes{bits}-wrap-pad"), KWP_IV),
    }
}

/// (a) OpenSSL wraps a random AES key under a KEK it shares with the HSM; the HSM unwraps it
/// and the key value is proven right by aes-cbc-pad in both directions.
fn openssl_wrapped_aes_key_unwraps_in_hsm(
    kek_len: usize,
    mechanism: WrapMechanism,
    target_len: usize,
) -> TestResult {
    let fx = fixture()?;
    let kek_value = fx.hsm.random(&fx.me, kek_len)?;
    let kek = fx.import_kek(&kek_value, "kek")?;

    let target_value = fx.hsm.random(&fx.me, target_len)?;
    let target_file = fx.write("target.bin", &target_value);
    let wrapped_file = fx.path("target.wrapped");
    let (cipher, iv) = wrap_cipher(kek_len, mechanism);
    openssl_ok(&[
        "enc",
        &cipher,
        "-K",
        &hex::encode(&kek_value),
        "-iv",
        iv,
        "-in",
        &target_file,
        "-out",
        &wrapped_file,
    ]);
    let wrapped = fx.read("target.wrapped");
    let expected_len = match mechanism {
        WrapMechanism::AesKw => target_len + 8,
        _ => target_len.div_ceil(8) * 8 + 8,
    };
    assert_eq!(wrapped.len(), expected_len, "{cipher} output length");

    let spec = KeySpec::aes_for_len(target_len).expect("AES target length");
    let template = KeyTemplate::labelled("unwrapped")
        .with(AttributeName::Encrypt, true)
        .with(AttributeName::Decrypt, true);
    let info = fx.hsm.unwrap_key(
        &fx.me,
        kek,
        mechanism,
        &wrapped,
        UnwrapTarget::Secret(spec),
        &template,
    )?;
    assert_eq!(info.spec, spec);
    assert_eq!(
        openssl_cbc_decrypt(&fx, &target_value, info.handle, "hsm-to-openssl")?,
        MESSAGE,
        "{mechanism}: the unwrapped key does not encrypt like the key OpenSSL wrapped"
    );
    assert_eq!(
        hsm_cbc_decrypt(&fx, &target_value, info.handle, "openssl-to-hsm")?,
        MESSAGE,
        "{mechanism}: the unwrapped key does not decrypt like the key OpenSSL wrapped"
    );

    // Integrity: a changed byte of OpenSSL's wrapping is refused.
    let err = fx
        .hsm
        .unwrap_key(
            &fx.me,
            kek,
            mechanism,
            &flipped(&wrapped, 0),
            UnwrapTarget::Secret(spec),
            &KeyTemplate::labelled("corrupt"),
        )
        .expect_err("a corrupted wrapping unwrapped");
    assert!(
        matches!(err, keyward_hsm::Error::InvalidInput { .. }),
        "{err:?}"
    );
    Ok(())
}

/// (b) The HSM wraps an extractable AES key it generated; OpenSSL unwraps it with the KEK and
/// uses the recovered value to decrypt an HSM aes-cbc-pad ciphertext.
fn hsm_wrapped_aes_key_unwraps_in_openssl(
    kek_len: usize,
    mechanism: WrapMechanism,
    target_spec: KeySpec,
) -> TestResult {
    let fx = fixture()?;
    let kek_value = fx.hsm.random(&fx.me, kek_len)?;
    let kek = fx.import_kek(&kek_value, "kek")?;
    let target = fx.hsm.generate_secret_key(
        &fx.me,
        target_spec,
        &KeyTemplate::labelled("target")
            .with(AttributeName::Encrypt, true)
            .with(AttributeName::Decrypt, true)
            .with(AttributeName::Extractable, true),
    )?;
    let wrapped = fx.hsm.wrap_key(&fx.me, kek, mechanism, target.handle)?;
    let target_len = target_spec.secret_len().expect("secret spec");
    let expected_len = match mechanism {
        WrapMechanism::AesKw => target_len + 8,
        _ => target_len.div_ceil(8) * 8 + 8,
    };
    assert_eq!(wrapped.len(), expected_len, "{mechanism} output length");
    let wrapped_file = fx.write("target.wrapped", &wrapped);
    let (cipher, iv) = wrap_cipher(kek_len, mechanism);
    let recovered = openssl_ok(&[
        "enc",
        "-d",
        &cipher,
        "-K",
        &hex::encode(&kek_value),
        "-iv",
        iv,
        "-in",
        &wrapped_file,
    ]);
    assert_eq!(
        recovered.len(),
        target_len,
        "{cipher}: recovered key length"
    );
    assert_eq!(
        openssl_cbc_decrypt(&fx, &recovered, target.handle, "hsm-to-openssl")?,
        MESSAGE,
        "{mechanism}: OpenSSL's unwrapped key does not decrypt the HSM's ciphertext"
    );
    assert_eq!(
        hsm_cbc_decrypt(&fx, &recovered, target.handle, "openssl-to-hsm")?,
        MESSAGE,
        "{mechanism}: the HSM does not decrypt what OpenSSL's unwrapped key encrypted"
    );

    // OpenSSL checks the integrity value too: a changed byte does not unwrap.
    let bad_file = fx.write("target.bad", &flipped(&wrapped, wrapped.len() - 1));
    let out = openssl(&[
        "enc",
        "-d",
        &cipher,
        "-K",
        &hex::encode(&kek_value),
        "-iv",
        iv,
        "-in",
        &bad_file,
    ]);
    assert!(
        !out.status.success(),
        "OpenSSL unwrapped a corrupted {mechanism} wrapping"
    );
    Ok(())
}

#[test]
fn openssl_kwp_wrapped_key_unwraps_in_hsm_aes256_kek() -> TestResult {
    openssl_wrapped_aes_key_unwraps_in_hsm(32, WrapMechanism::AesKwp, 32)
}

#[test]
fn openssl_kwp_wrapped_key_unwraps_in_hsm_aes128_kek() -> TestResult {
    openssl_wrapped_aes_key_unwraps_in_hsm(16, WrapMechanism::AesKwp, 32)
}

#[test]
fn openssl_kwp_wrapped_aes192_key_unwraps_in_hsm() -> TestResult {
    // 24 bytes: a length that is a multiple of 8 but not of 16.
    openssl_wrapped_aes_key_unwraps_in_hsm(32, WrapMechanism::AesKwp, 24)
}

#[test]
fn openssl_kw_wrapped_key_unwraps_in_hsm_aes256_kek() -> TestResult {
    openssl_wrapped_aes_key_unwraps_in_hsm(32, WrapMechanism::AesKw, 32)
}

#[test]
fn openssl_kw_wrapped_aes128_key_unwraps_in_hsm() -> TestResult {
    openssl_wrapped_aes_key_unwraps_in_hsm(32, WrapMechanism::AesKw, 16)
}

#[test]
fn hsm_kwp_wrapped_key_unwraps_in_openssl_aes256_kek() -> TestResult {
    hsm_wrapped_aes_key_unwraps_in_openssl(32, WrapMechanism::AesKwp, KeySpec::Aes256)
}

#[test]
fn hsm_kwp_wrapped_key_unwraps_in_openssl_aes128_kek() -> TestResult {
    hsm_wrapped_aes_key_unwraps_in_openssl(16, WrapMechanism::AesKwp, KeySpec::Aes256)
}

#[test]
fn hsm_kwp_wrapped_aes192_key_unwraps_in_openssl() -> TestResult {
    hsm_wrapped_aes_key_unwraps_in_openssl(32, WrapMechanism::AesKwp, KeySpec::Aes192)
}

#[test]
fn hsm_kw_wrapped_key_unwraps_in_openssl_aes256_kek() -> TestResult {
    hsm_wrapped_aes_key_unwraps_in_openssl(32, WrapMechanism::AesKw, KeySpec::Aes256)
}

#[test]
fn hsm_kw_wrapped_aes128_key_unwraps_in_openssl() -> TestResult {
    hsm_wrapped_aes_key_unwraps_in_openssl(32, WrapMechanism::AesKw, KeySpec::Aes128)
}

/// KWP of lengths that are not a multiple of 8 (where RFC 5649 padding matters), both ways,
/// with generic secrets checked by HMAC-SHA-256 against `openssl dgst -mac HMAC`.
#[test]
fn kwp_of_unaligned_generic_secrets_matches_openssl() -> TestResult {
    let fx = fixture()?;
    let kek_value = fx.hsm.random(&fx.me, 32)?;
    let kek = fx.import_kek(&kek_value, "kek")?;
    let msg = fx.write("msg.bin", MESSAGE);
    let openssl_hmac = |key: &[u8]| {
        let macopt = format!("hexkey:{}", hex::encode(key));
        openssl_ok(&[
            "dgst", "-sha256", "-mac", "HMAC", "-macopt", &macopt, "-binary", &msg,
        ])
    };
    for len in [1u16, 7, 20, 37, 65] {
        let spec = KeySpec::GenericSecret { bytes: len };

        // OpenSSL → HSM.
        let value = fx.hsm.random(&fx.me, usize::from(len))?;
        let value_file = fx.write(&format!("in-{len}.bin"), &value);
        let wrapped_file = fx.path(&format!("in-{len}.wrapped"));
        openssl_ok(&[
            "enc",
            "-id-aes256-wrap-pad",
            "-K",
            &hex::encode(&kek_value),
            "-iv",
            KWP_IV,
            "-in",
            &value_file,
            "-out",
            &wrapped_file,
        ]);
        let wrapped = fx.read(&format!("in-{len}.wrapped"));
        let info = fx.hsm.unwrap_key(
            &fx.me,
            kek,
            WrapMechanism::AesKwp,
            &wrapped,
            UnwrapTarget::Secret(spec),
            &KeyTemplate::labelled(&format!("in-{len}")).with(AttributeName::Sign, true),
        )?;
        let mac = fx.hsm.sign(
            &fx.me,
            info.handle,
            SignMechanism::HmacSha256,
            SignInput::Message(MESSAGE),
            SignatureEncoding::Der,
        )?;
        assert_eq!(
            mac,
            openssl_hmac(&value),
            "{len}-byte secret unwrapped from OpenSSL"
        );

        // HSM → OpenSSL.
        let generated = fx.hsm.generate_secret_key(
            &fx.me,
            spec,
            &KeyTemplate::labelled(&format!("out-{len}"))
                .with(AttributeName::Sign, true)
                .with(AttributeName::Extractable, true),
        )?;
        let wrapped = fx
            .hsm
            .wrap_key(&fx.me, kek, WrapMechanism::AesKwp, generated.handle)?;
        assert_eq!(wrapped.len(), usize::from(len).div_ceil(8) * 8 + 8);
        let wrapped_file = fx.write(&format!("out-{len}.wrapped"), &wrapped);
        let recovered = openssl_ok(&[
            "enc",
            "-d",
            "-id-aes256-wrap-pad",
            "-K",
            &hex::encode(&kek_value),
            "-iv",
            KWP_IV,
            "-in",
            &wrapped_file,
        ]);
        assert_eq!(recovered.len(), usize::from(len));
        let mac = fx.hsm.sign(
            &fx.me,
            generated.handle,
            SignMechanism::HmacSha256,
            SignInput::Message(MESSAGE),
            SignatureEncoding::Der,
        )?;
        assert_eq!(
            mac,
            openssl_hmac(&recovered),
            "{len}-byte secret unwrapped by OpenSSL"
        );
    }
    Ok(())
}

/// Keys wrapped by the HSM under a KEK round-trip through OpenSSL: OpenSSL unwraps and
/// re-wraps; the HSM accepts OpenSSL's wrapping, and the KWP bytes of both are identical
/// (AES-KW and AES-KWP are deterministic).
#[test]
fn kw_and_kwp_wrappings_are_byte_identical_to_openssl() -> TestResult {
    let fx = fixture()?;
    let kek_value = fx.hsm.random(&fx.me, 32)?;
    let kek = fx.import_kek(&kek_value, "kek")?;
    let target = fx.hsm.generate_secret_key(
        &fx.me,
        KeySpec::Aes256,
        &KeyTemplate::labelled("target").with(AttributeName::Extractable, true),
    )?;
    for mechanism in [WrapMechanism::AesKw, WrapMechanism::AesKwp] {
        let wrapped = fx.hsm.wrap_key(&fx.me, kek, mechanism, target.handle)?;
        let (cipher, iv) = wrap_cipher(32, mechanism);
        let wrapped_file = fx.write(&format!("{mechanism}.wrapped"), &wrapped);
        let plain_file = fx.path(&format!("{mechanism}.plain"));
        openssl_ok(&[
            "enc",
            "-d",
            &cipher,
            "-K",
            &hex::encode(&kek_value),
            "-iv",
            iv,
            "-in",
            &wrapped_file,
            "-out",
            &plain_file,
        ]);
        let rewrapped = openssl_ok(&[
            "enc",
            &cipher,
            "-K",
            &hex::encode(&kek_value),
            "-iv",
            iv,
            "-in",
            &plain_file,
        ]);
        assert_eq!(
            rewrapped, wrapped,
            "{mechanism}: OpenSSL wraps the same key differently"
        );
    }
    Ok(())
}
