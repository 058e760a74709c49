//! Java's SunPKCS11 provider loading `libkeyward_pkcs11.so` against a real node (`keyward hsm
//! serve`) with the crypto-user alice: the single-file program `tests/pkcs11_java/P11.java`
//! logs in through the PKCS11 KeyStore and lists it, generates an EC P-256 pair through the
//! provider, signs with SHA256withECDSA on the token and verifies with the public key (SunEC
//! in Java, aws-lc-rs here); it also encrypts with a key store secret key.
//!
//! SunPKCS11's KeyStore pairs private keys with certificates by CKA_ID; Keyward holds no
//! certificate objects, so a private key is never an entry (SunPKCS11 says "did not find match
//! for private key with CKA_ID ... (ignoring entry)") while a labelled secret key is one.
//!
//! The module is built by `cargo build -p keyward-pkcs11` (scripts/test does). The tests skip,
//! saying why, when no `java` is installed (scripts/test installs openjdk-17-jdk-headless).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::pkcs11::{module_path, Node};

/// The PIN is `username:password` of a crypto-user.
const ALICE_PIN: &str = "alice:alice-password";
/// What one Java run may take (`timeout` kills it after that); compiling P11.java is most of it.
const JAVA_SECONDS: &str = "120";

/// SunPKCS11 `attributes` lines for EC pairs: session objects (`CKA_TOKEN` false), the private
/// key allowed to sign and the public key to verify, said explicitly (the module's defaults
/// when a template names no usage are the same).
const EC_SESSION_ATTRIBUTES: &str = "\
attributes(generate, CKO_PRIVATE_KEY, CKK_EC) = {
  CKA_TOKEN = false
  CKA_SIGN = true
}
attributes(generate, CKO_PUBLIC_KEY, CKK_EC) = {
  CKA_TOKEN = false
  CKA_VERIFY = true
}
";

/// Whether `java` runs here; prints why a test is skipped when it does not.
fn java_available() -> bool {
    let ok = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no java (scripts/test installs openjdk-17-jdk-headless)");
    }
    ok
}

/// A node, the crypto-user alice, the module's configuration and SunPKCS11's.
struct Lab {
    node: Node,
    /// The module's TOML: one token `keyward` on this node (`KEYWARD_PKCS11_CONF`).
    module_conf: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let node = Node::start();
        node.crypto_user(ALICE_PIN);
        Lab {
            module_conf: node.conf.clone(),
            node,
        }
    }

    /// `keyward ARGS --json` (whitespace-separated: lab paths have no spaces) as alice.
    fn alice_json(&self, args: &str) -> serde_json::Value {
        let (user, password) = ALICE_PIN.split_once(':').unwrap();
        let args: Vec<&str> = args.split_whitespace().collect();
        self.node.json(user, password, &args)
    }

    /// Alice's keys as the node lists them: `(handle, class, label, token)`, sorted.
    fn alice_keys(&self) -> Vec<(u64, String, String, bool)> {
        let list = self.alice_json("key list");
        let mut keys: Vec<_> = list
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {list}"))
            .iter()
            .map(|k| {
                let a = &k["attributes"];
                (
                    k["handle"].as_u64().unwrap(),
                    k["class"].as_str().unwrap().to_owned(),
                    a["label"].as_str().unwrap().to_owned(),
                    a["token"].as_bool().unwrap(),
                )
            })
            .collect();
        keys.sort();
        keys
    }

    /// A SunPKCS11 configuration for slot 0 of the module, with `attributes` lines.
    fn sun_conf(&self, name: &str, attributes: &str) -> PathBuf {
        let path = self.node.dir.path().join(name);
        let body = format!(
            "name = Keyward\nlibrary = {}\nslot = 0\n{attributes}",
            module_path().display()
        );
        std::fs::write(&path, body).unwrap();
        path
    }

    /// `java [-Djava.security.debug=pkcs11keystore] P11.java CONF PIN ARGS` with this lab's
    /// module configuration, bounded by `timeout`; returns what it printed.
    fn java(&self, conf: &Path, args: &[&str]) -> Output {
        let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pkcs11_java/P11.java");
        let out = Command::new("timeout")
            .args([
                "-s",
                "KILL",
                JAVA_SECONDS,
                "java",
                "-Djava.security.debug=pkcs11keystore",
            ])
            .arg(program)
            .arg(conf)
            .arg(ALICE_PIN)
            .args(args)
            .env("KEYWARD_PKCS11_CONF", &self.module_conf)
            .output()
            .expect("run timeout java");
        assert_ne!(
            out.status.code(),
            Some(137),
            "java ran past {JAVA_SECONDS} s: {}",
            show(&out)
        );
        out
    }
}

/// stdout and stderr of a run, for failure messages.
fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of the stdout line `name: value`.
fn line(out: &Output, name: &str) -> String {
    let prefix = format!("{name}: ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no line {name:?}: {}", show(out)))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Alice's EC pair `ec1` (CKA_ID ec01) and AES-256 key `aes1` (CKA_ID none), made by the CLI.
fn alice_cli_keys(lab: &Lab) {
    let pair = lab.alice_json(
        "key generate-asymmetric-pair ec --curve p256 --label ec1 \
         --private-attr sign=true --public-attr verify=true",
    );
    for part in ["private", "public"] {
        let handle = &pair[part]["handle"];
        lab.alice_json(&format!(
            "key set-attribute --key {handle} --name id --value ec01"
        ));
    }
    lab.alice_json(
        "key generate-symmetric aes --bits 256 --label aes1 --attr encrypt=true --attr decrypt=true",
    );
}

#[test]
fn sunpkcs11_lists_the_key_store_and_signs_with_an_ec_session_key() {
    if !java_available() {
        return;
    }
    let lab = Lab::new();
    alice_cli_keys(&lab);
    let before = lab.alice_keys();
    assert_eq!(before.len(), 3, "{before:?}");

    let conf = lab.sun_conf("sunpkcs11.cfg", EC_SESSION_ATTRIBUTES);
    let out = lab.java(&conf, &["sign"]);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(line(&out, "provider"), "SunPKCS11-Keyward");
    // The secret key is an entry; the private key is found (by its CKA_ID) but has no
    // certificate, so SunPKCS11 leaves it out.
    assert_eq!(line(&out, "keystore aliases"), "1", "{}", show(&out));
    assert_eq!(line(&out, "keystore entry"), "aes1 secret-key");
    assert!(
        stderr.contains("did not find match for private key with CKA_ID [0xec01] (ignoring entry)"),
        "{}",
        show(&out)
    );

    let private = line(&out, "generated private");
    assert!(
        private.starts_with("SunPKCS11-Keyward EC private key, 256 bits"),
        "{private}"
    );
    assert!(
        private.contains("session object, sensitive, unextractable"),
        "{private}"
    );
    assert_eq!(
        line(&out, "generated public"),
        "sun.security.pkcs11.P11Key$P11ECPublicKey"
    );
    assert_eq!(line(&out, "signature provider"), "SunPKCS11-Keyward");
    assert_eq!(line(&out, "verified by token"), "true");
    assert_eq!(line(&out, "public key field bits"), "256");
    assert_eq!(line(&out, "signature verified"), "true");
    assert_eq!(line(&out, "changed message verified"), "false");

    // A third verifier, outside Java: the SPKI's uncompressed point and the DER signature.
    let spki = unhex(&line(&out, "public key spki"));
    assert_eq!(spki.len(), 91, "a P-256 SubjectPublicKeyInfo");
    let point = &spki[spki.len() - 65..];
    let sig = unhex(&line(&out, "signature der"));
    let message = line(&out, "message");
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    );
    key.verify(message.as_bytes(), &sig)
        .expect("aws-lc-rs verifies SunPKCS11's signature");
    assert!(key.verify(b"another message", &sig).is_err());

    // Session objects: the pair did not outlive the Java process on the node.
    assert_eq!(lab.alice_keys(), before);
}

/// PKCS#11 v2.40 §4.4 (common storage object attributes): CKA_TOKEN defaults to CK_FALSE.
/// SunPKCS11 with no `attributes` lines sends C_GenerateKeyPair templates without CKA_TOKEN
/// (public: CKA_EC_PARAMS only; private: empty), so the pair must be session objects that end
/// with the process.
#[test]
fn sunpkcs11_default_templates_make_session_keys() {
    if !java_available() {
        return;
    }
    let lab = Lab::new();
    let before = lab.alice_keys();
    let conf = lab.sun_conf("sunpkcs11-defaults.cfg", "");
    let out = lab.java(&conf, &["generate"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(line(&out, "keystore aliases"), "0");
    let private = line(&out, "generated private");
    assert!(
        private.starts_with("SunPKCS11-Keyward EC private key, 256 bits"),
        "{private}"
    );
    assert!(
        private.contains("session object"),
        "a template without CKA_TOKEN made a token object: {private}"
    );
    assert_eq!(
        lab.alice_keys(),
        before,
        "SunPKCS11's pair was stored on the node"
    );
}

/// The key store's AES key through SunPKCS11's Cipher, with an IV chosen by the application
/// (PKCS#11 v2.40: CK_GCM_PARAMS.pIv and CKM_AES_CBC_PAD's parameter are inputs).
/// SunPKCS11's native layer frees the CK_MECHANISM copy when C_EncryptInit/C_DecryptInit
/// return, so a module must not touch the parameter after the Init call.
#[test]
fn sunpkcs11_encrypts_and_decrypts_with_a_key_store_aes_key() {
    if !java_available() {
        return;
    }
    let lab = Lab::new();
    alice_cli_keys(&lab);
    let conf = lab.sun_conf("sunpkcs11.cfg", "");
    let out = lab.java(&conf, &["aes", "aes1"]);
    // JDK 17's P11KeyStore takes CKA_VALUE_LEN (bytes) for a bit length: "32 bits".
    let key = line(&out, "secret key");
    assert!(
        key.contains("AES secret key") && key.contains("token object"),
        "{key}"
    );
    // 33 bytes of plaintext: GCM adds the 16-byte tag, CBC pads to 48.
    assert_eq!(line(&out, "AES/GCM/NoPadding ciphertext bytes"), "49");
    assert_eq!(
        line(&out, "AES/GCM/NoPadding round trip"),
        "true",
        "{}",
        show(&out)
    );
    assert_eq!(line(&out, "AES/CBC/PKCS5Padding ciphertext bytes"), "48");
    assert_eq!(
        line(&out, "AES/CBC/PKCS5Padding round trip"),
        "true",
        "{}",
        show(&out)
    );
    assert!(out.status.success(), "{}", show(&out));
}
