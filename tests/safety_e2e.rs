//! What the data directory holds, what tampering does, and how `keyward serve` refuses bad
//! configuration: always through the real binary.

mod support;

use std::path::{Path, PathBuf};

use keyward_hsm::KeyClass;
use support::*;

/// A minimal DER reader for the test: (tag, content, rest).
fn der(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, hdr) = match input[1] {
        l if l < 0x80 => (l as usize, 2),
        0x81 => (input[2] as usize, 3),
        0x82 => (((input[2] as usize) << 8) | input[3] as usize, 4),
        other => panic!("unexpected DER length byte {other:#x}"),
    };
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

/// The secret values inside a PKCS#8 `PrivateKeyInfo` (RFC 5958): for EC the private scalar
/// (RFC 5915), for Ed25519 the seed (RFC 8410), for RSA the private exponent and primes
/// (RFC 8017 A.1.2).
fn secrets_in_pkcs8(pkcs8: &[u8]) -> Vec<Vec<u8>> {
    let (_, seq, _) = der(pkcs8);
    let (_, _version, rest) = der(seq);
    let (_, alg, rest) = der(rest);
    let (_, private_key, _) = der(rest);
    let (_, oid, _) = der(alg);
    let mut out = vec![pkcs8.to_vec()];
    match oid {
        // id-ecPublicKey 1.2.840.10045.2.1
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => {
            let (_, ec, _) = der(private_key);
            let (_, _v, rest) = der(ec);
            let (_, scalar, _) = der(rest);
            out.push(scalar.to_vec());
        }
        // id-Ed25519 1.3.101.112
        [0x2b, 0x65, 0x70] => {
            let (_, seed, _) = der(private_key);
            out.push(seed.to_vec());
        }
        // rsaEncryption 1.2.840.113549.1.1.1
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => {
            let (_, rsa, _) = der(private_key);
            let mut rest = rsa;
            let mut ints = Vec::new();
            while !rest.is_empty() {
                let (_, v, r) = der(rest);
                ints.push(v.to_vec());
                rest = r;
            }
            // version, n, e, d, p, q, dp, dq, qinv
            out.extend(
                ints[3..]
                    .iter()
                    .map(|v| v.iter().copied().skip_while(|b| *b == 0).collect()),
            );
        }
        other => panic!("unexpected key algorithm {other:02x?}"),
    }
    for s in &out {
        assert!(s.len() >= 32, "secret too short to search for");
    }
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    fingerprint(dir).into_keys().map(|p| dir.join(p)).collect()
}

#[test]
fn no_private_key_material_in_any_file_of_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let labels = ["p256", "p384", "rsa", "ed"];
    for (spec, label) in ["ec-p256", "ec-p384", "rsa-2048", "ed25519"]
        .iter()
        .zip(labels)
    {
        generate_key(&data, spec, label);
        self_signed(&data, label, &tmp.path().join(format!("{label}.pem")));
    }
    let hsm = open_hsm(&data);
    let mut secrets = Vec::new();
    for label in labels {
        let key = hsm
            .find_by_label(&me(&hsm), label, KeyClass::Private)
            .unwrap();
        secrets.extend(secrets_in_pkcs8(
            &hsm.test_secret_value(key.handle).unwrap(),
        ));
    }
    drop(hsm);
    assert!(secrets.len() >= 4 * 2);
    let files = files_under(tmp.path());
    assert!(files.iter().any(|f| f.ends_with("keyward.sqlite3")));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "{} holds a PRIVATE KEY marker",
            file.display()
        );
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_slice()),
                "{} holds private key bytes",
                file.display()
            );
        }
    }
}

fn setup_site() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate_key(&data, "ec-p256", "web");
    let cert = tmp.path().join("web.pem");
    self_signed(&data, "web", &cert);
    (tmp, data, cert)
}

fn config_text(data: &Path, cert: &Path, address: &str, label: &str, upstream: &str) -> String {
    format!(
        "[hsm]\ndata_dir = \"{}\"\n\n[[listeners]]\naddress = \"{address}\"\n\n[[listeners.certificates]]\nkey_label = \"{label}\"\nchain_file = \"{}\"\n\n{upstream}",
        data.display(),
        cert.display()
    )
}

/// Runs `keyward serve` expecting it to refuse: exit ≠ 0, exactly one stderr line containing
/// every `needles`, nothing written anywhere under `root`.
fn refuses(root: &Path, config: &str, needles: &[&str]) {
    let file = root.join("bad.toml");
    std::fs::write(&file, config).unwrap();
    let before = fingerprint(root);
    let out = keyward(&["serve", "--config", &file.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve accepted: {config}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{stderr:?} does not name {n:?}");
    }
    assert_eq!(fingerprint(root), before, "serve wrote something");
}

#[test]
fn bad_configuration_is_one_line_naming_the_cause_and_writes_nothing() {
    let (tmp, data, cert) = setup_site();
    let root = tmp.path();
    let up = "[upstream]\nurl = \"http://127.0.0.1:9\"\n";
    let good = config_text(&data, &cert, "127.0.0.1:0", "web", up);

    refuses(
        root,
        &format!("{good}\nbogus = 1\n"),
        &["bogus", "bad.toml"],
    );
    refuses(
        root,
        &good.replace("key_label", "key_lable"),
        &["listeners[0].certificates[0].key_lable"],
    );
    refuses(
        root,
        &config_text(&data, &cert, "127.0.0.1:0", "web", ""),
        &["upstream.url", "required"],
    );
    refuses(
        root,
        &good.replace("127.0.0.1:0", "127.0.0.1:99999"),
        &["listeners[0].address"],
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    refuses(
        root,
        &config_text(&data, &cert, &busy_addr, "web", up),
        &["cannot listen on", &busy_addr],
    );
    refuses(
        root,
        &config_text(&data, &cert, "127.0.0.1:0", "missing", up),
        &["\"missing\""],
    );
    let nowhere = root.join("nowhere.pem");
    refuses(
        root,
        &config_text(&data, &nowhere, "127.0.0.1:0", "web", up),
        &[&nowhere.display().to_string()],
    );
    let unreadable = root.join("garbage.pem");
    std::fs::write(&unreadable, "not a certificate").unwrap();
    refuses(
        root,
        &config_text(&data, &unreadable, "127.0.0.1:0", "web", up),
        &["garbage.pem"],
    );
    // A certificate that belongs to another key.
    generate_key(&data, "ec-p256", "other");
    refuses(
        root,
        &config_text(&data, &cert, "127.0.0.1:0", "other", up),
        &["do", "not", "belong", "\"other\""],
    );
    let no_data = root.join("no-such-data");
    refuses(
        root,
        &config_text(&no_data, &cert, "127.0.0.1:0", "web", up),
        &["no-such-data"],
    );
    assert!(!no_data.exists());
    drop(busy);
}

#[test]
fn a_flipped_byte_in_a_key_record_stops_serve_by_name_and_changes_nothing() {
    let (tmp, data, cert) = setup_site();
    let hsm = open_hsm(&data);
    let key = hsm
        .find_by_label(&me(&hsm), "web", KeyClass::Private)
        .unwrap();
    drop(hsm);
    {
        let db = rusqlite::Connection::open(data.join("keyward.sqlite3")).unwrap();
        let id = key.handle.to_string();
        let mut blob: Vec<u8> = db
            .query_row(
                "SELECT blob FROM records WHERE kind = 'key' AND id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        let i = blob.len() - 20;
        blob[i] ^= 0x01;
        db.execute(
            "UPDATE records SET blob = ?1 WHERE kind = 'key' AND id = ?2",
            rusqlite::params![blob, id],
        )
        .unwrap();
    }
    let config = config_text(
        &data,
        &cert,
        "127.0.0.1:0",
        "web",
        "[upstream]\nurl = \"http://127.0.0.1:9\"\n",
    );
    refuses(
        tmp.path(),
        &config,
        &[&format!("key/{}", key.handle), "failed authentication"],
    );
    // Listing keys refuses too: the store is refused loudly everywhere.
    let out = keyward(&["key", "list", "--data-dir", &data.display().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("key/{}", key.handle)));
}

#[test]
fn quickstart_serves_the_demo_upstream_and_reuses_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("qs");
    let start = || {
        let mut cmd = std::process::Command::new(keyward_bin());
        cmd.args([
            "quickstart",
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data);
        let p = Running::spawn(cmd);
        let line = p.stdout.wait_for("curl --cacert");
        (p, line)
    };
    let (mut p, line) = start();
    let curl_cmd = &line[line.find("curl --cacert").unwrap()..];
    let args: Vec<&str> = curl_cmd.split_whitespace().collect();
    assert_eq!(args.len(), 4, "{line}");
    let got = Curl::url(args[3]).args(&["--cacert", args[2]]).run();
    assert!(got.ok, "{}", got.stderr);
    let body = got.body;
    assert!(
        body.starts_with("Hello from the Keyward demo upstream!"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    let cert_before = std::fs::read(args[2]).unwrap();
    // The quickstart also serves the HSM API; its admin password is in admin.password.
    let api_line = p.stderr.wait_for("serving the HSM API");
    let api_port: u16 = api_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap()
        .port();
    let admin_pw = std::fs::read_to_string(data.join("admin.password")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(data.join("admin.password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let login = format!(r#"{{"username":"admin","password":"{admin_pw}"}}"#);
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
    let (status, v) = curl_json(
        &data.join("api-ca.pem"),
        api,
        "POST",
        "/v1/auth/login",
        None,
        Some(&login),
    );
    assert!(v.get("token").is_some(), "{status}: {v}");
    assert!(p.terminate().success());

    let (_p, line2) = start();
    let handle = |l: &str| {
        l.split("handle ")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(handle(&line), handle(&line2), "the key was not reused");
    assert_eq!(
        std::fs::read(args[2]).unwrap(),
        cert_before,
        "the certificate was not reused"
    );
    let out = keyward_ok(&[
        "key",
        "list",
        "--json",
        "--data-dir",
        &data.display().to_string(),
    ]);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    let quickstart_keys = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["attributes"]["label"] == "quickstart")
        .count();
    assert_eq!(quickstart_keys, 2, "one quickstart pair only: {out}");
    let private = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["class"] == "private" && k["attributes"]["label"] == "quickstart")
        .unwrap();
    assert_eq!(private["attributes"]["extractable"], false);
}

/// Runs the CLI with `args` and checks that it fails with exit status 1 and one line on stderr
/// that contains `needle`, and that no file under `root` changed.
fn one_line_failure(root: &Path, args: &[&str], needle: &str) {
    let before = fingerprint(root);
    let out = keyward(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(fingerprint(root), before, "{args:?} changed files");
}

#[test]
fn cert_commands_refuse_bad_input_without_changing_anything() {
    let (tmp, data, cert) = setup_site();
    let data_s = data.display().to_string();
    let root = tmp.path();
    let cert_s = cert.display().to_string();
    let new_out = root.join("new.pem").display().to_string();
    one_line_failure(
        root,
        &[
            "cert",
            "self-signed",
            "--key",
            "web",
            "--dns",
            "x",
            "--days",
            "3000000",
            "--out",
            &new_out,
            "--data-dir",
            &data_s,
        ],
        "--days",
    );
    one_line_failure(
        root,
        &[
            "cert",
            "self-signed",
            "--key",
            "web",
            "--dns",
            "x",
            "--out",
            &cert_s,
            "--data-dir",
            &data_s,
        ],
        "--force",
    );
    let master = data.join("master.key").display().to_string();
    one_line_failure(
        root,
        &[
            "cert",
            "csr",
            "--key",
            "web",
            "--dns",
            "x",
            "--out",
            &master,
            "--force",
            "--data-dir",
            &data_s,
        ],
        "HSM's own files",
    );
    one_line_failure(
        root,
        &[
            "cert",
            "csr",
            "--key",
            "web",
            "--dns",
            "bad name",
            "--out",
            &new_out,
            "--data-dir",
            &data_s,
        ],
        "not a valid DNS name",
    );
}

#[test]
fn key_generate_refuses_bad_input_without_changing_anything() {
    let (tmp, data, _cert) = setup_site();
    let data_s = data.display().to_string();
    let root = tmp.path();
    // A refused generation changes no key; the refusal itself is audited (the audit chain
    // grows), as an HSM must record denied attempts.
    let keys_before = keyward_ok(&["key", "list", "--json", "--data-dir", &data_s]);
    let out = keyward(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "web",
        "--data-dir",
        &data_s,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("you already own"));
    assert_eq!(
        keyward_ok(&["key", "list", "--json", "--data-dir", &data_s]),
        keys_before
    );
    let fresh = root.join("fresh").display().to_string();
    one_line_failure(
        root,
        &[
            "key",
            "generate",
            "--type",
            "ec-p256",
            "--label",
            "",
            "--data-dir",
            &fresh,
        ],
        "label",
    );
    assert!(!root.join("fresh").exists());
}

#[test]
fn a_first_use_makes_an_existing_folder_the_owners_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // An existing folder that a first use populates becomes the owner's alone.
    let shared = root.join("shared");
    std::fs::create_dir(&shared).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    generate_key(&shared, "ed25519", "k");
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(shared.join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn a_reference_file_for_another_key_is_refused() {
    let (tmp, data, cert) = setup_site();
    let hsm = open_hsm(&data);
    let key = hsm
        .find_by_label(&me(&hsm), "web", KeyClass::Private)
        .unwrap();
    drop(hsm);
    let forged = keyward_hsm::KeyReference {
        v: 1,
        label: "web".into(),
        handle: key.handle.0,
        spec: "ec-p256".into(),
        spki_sha256: keyward_hsm::spki_sha256(b"some other key"),
    };
    let reference = tmp.path().join("web.ref.pem");
    std::fs::write(&reference, forged.to_pem()).unwrap();
    let config = format!(
        "[hsm]\ndata_dir = \"{}\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[[listeners.certificates]]\nkey_file = \"{}\"\nchain_file = \"{}\"\n\n[upstream]\nurl = \"http://127.0.0.1:9\"\n",
        data.display(),
        reference.display(),
        cert.display()
    );
    refuses(tmp.path(), &config, &["web.ref.pem", "another public key"]);
}

#[test]
fn a_master_key_that_group_may_read_stops_every_start_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, data, cert) = setup_site();
    let key = data.join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let fix = format!("chmod 600 {}", key.display());
    let up = "[upstream]\nurl = \"http://127.0.0.1:9\"\n";
    let config = config_text(&data, &cert, "127.0.0.1:0", "web", up);
    refuses(tmp.path(), &config, &[&key.display().to_string(), &fix]);
    let data_s = data.display().to_string();
    let before = fingerprint(tmp.path());
    for args in [
        &[
            "hsm",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_s,
        ][..],
        &["key", "list", "--data-dir", &data_s],
    ] {
        let out = keyward(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} accepted: {stderr}");
        assert!(
            stderr.contains(&format!("master key file {}", key.display())) && stderr.contains(&fix),
            "{args:?}: {stderr}"
        );
    }
    // A data directory that others may write is refused the same way.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    refuses(
        tmp.path(),
        &config,
        &[&data.display().to_string(), &format!("chmod 700 {data_s}")],
    );
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(fingerprint(tmp.path()), before, "refusing wrote something");
}

#[test]
fn init_into_an_open_folder_makes_it_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    init_hsm(&data, "correct horse battery");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
}
