//! Envelope encryption end to end with the real binary and a real node: `keyward crypto
//! encrypt-file` / `decrypt-file` with an AES KEK (aes-kwp) and an RSA KEK (rsa-oaep-sha256)
//! made by `openssl genpkey`, whose envelope openssl (the data key) and Python's
//! `cryptography` (the chunks) open by the documented format; a flipped byte, a cut file and
//! swapped chunks each refused by name with no output left; KEKs without `wrap`/`unwrap`
//! refused; upload to and download from a real S3-compatible server (moto); and a 256 MiB
//! file both ways under 64 MiB of peak RSS.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::moto::Moto;
use support::pkcs11::Node;
use support::*;

const USER: &str = "alice";
const PASSWORD: &str = "alice-password";
const CHUNK: usize = 64 * 1024;
const SEALED_CHUNK: usize = CHUNK + 16;

fn node() -> Node {
    let n = Node::start();
    n.crypto_user(&format!("{USER}:{PASSWORD}"));
    n
}

/// `keyward ARGS` as alice on `n` with `env`, run under `wrapper` (e.g. `/usr/bin/time`)
/// when given; success not required.
fn kw_with(n: &Node, wrapper: &[&str], env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(keyward_bin());
            c
        }
        None => Command::new(keyward_bin()),
    };
    cmd.args(args)
        .args(["--server", &n.url, "--ca-cert"])
        .arg(&n.ca)
        .args(["--user", USER, "--password", PASSWORD])
        .env_remove("KEYWARD_DATA_DIR")
        .env_remove("KEYWARD_SERVER")
        .env_remove("KEYWARD_USER")
        .env_remove("KEYWARD_PASSWORD")
        .env_remove("KEYWARD_CA_CERT")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("run keyward")
}

fn kw(n: &Node, args: &[&str]) -> Output {
    kw_with(n, &[], &[], args)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `keyward crypto encrypt-file --key KEY --mechanism MECHANISM --in INPUT` followed by `rest`
/// (`--out FILE` or `--upload URL`, and any flags).
fn encrypt_file(n: &Node, key: &str, mechanism: &str, input: &Path, rest: &[&str]) -> Output {
    let mut args = vec![
        "crypto",
        "encrypt-file",
        "--key",
        key,
        "--mechanism",
        mechanism,
        "--in",
        p(input),
    ];
    args.extend_from_slice(rest);
    kw(n, &args)
}

/// An AES-256 key of alice's with the given `wrap` and `unwrap`.
fn aes_kek(n: &Node, label: &str, wrap: bool, unwrap: bool) -> u64 {
    n.json(
        USER,
        PASSWORD,
        &[
            "key",
            "generate-symmetric",
            "aes",
            "--bits",
            "256",
            "--label",
            label,
            "--attr",
            &format!("wrap={wrap}"),
            "--attr",
            &format!("unwrap={unwrap}"),
        ],
    )["handle"]
        .as_u64()
        .unwrap()
}

/// `len` bytes that differ from chunk to chunk, written to `dir/name`.
fn content(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// The files of `dir`, sorted: what a failed decrypt must not add to.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// decrypt-file of `sealed` to `dir/out` fails with a message containing each of `want`,
/// leaving `dir` as it was.
fn refused(n: &Node, dir: &Path, sealed: &[u8], want: &[&str]) {
    let input = dir.join("tampered.kwenv");
    std::fs::write(&input, sealed).unwrap();
    let before = listing(dir);
    let out = dir.join("out.bin");
    let err = failed(&kw(
        n,
        &[
            "crypto",
            "decrypt-file",
            "--in",
            p(&input),
            "--out",
            p(&out),
        ],
    ));
    for w in want {
        assert!(err.contains(w), "{w:?} not in {err}");
    }
    assert!(!out.exists(), "no output after: {err}");
    assert_eq!(listing(dir), before, "no partial file left");
}

#[test]
fn an_aes_kek_round_trips_and_each_tampering_fails_with_no_output() {
    let n = node();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    aes_kek(&n, "files", true, true);
    let (plain, bytes) = content(d, "plain.bin", 4 * CHUNK + 1000);
    let sealed = d.join("plain.kwenv");
    let said = ok(&encrypt_file(
        &n,
        "files",
        "aes-kwp",
        &plain,
        &["--out", p(&sealed)],
    ));
    assert!(said.contains("in 5 chunks"), "{said}");
    let env = std::fs::read(&sealed).unwrap();
    let header = 34 + "files".len() + 48;
    assert_eq!(env.len(), header + bytes.len() + 5 * 16);
    assert_eq!(&env[..6], b"KWENV\n");
    let back = d.join("back.bin");
    let said = ok(&kw(
        &n,
        &[
            "crypto",
            "decrypt-file",
            "--in",
            p(&sealed),
            "--out",
            p(&back),
            "--json",
        ],
    ));
    let info: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(info["chunks"], 5);
    assert_eq!(info["kek_label"], "files");
    assert_eq!(std::fs::read(&back).unwrap(), bytes);

    let mut flipped = env.clone();
    flipped[header + 3 * SEALED_CHUNK + 100] ^= 0x01;
    refused(
        &n,
        d,
        &flipped,
        &["chunk 3 (at byte", "failed authentication"],
    );
    refused(
        &n,
        d,
        &env[..header + 2 * SEALED_CHUNK],
        &["file is truncated: the last chunk is missing"],
    );
    let mut swapped = env.clone();
    let (a, b) = (header + SEALED_CHUNK, header + 2 * SEALED_CHUNK);
    swapped[a..b].copy_from_slice(&env[b..b + SEALED_CHUNK]);
    swapped[b..b + SEALED_CHUNK].copy_from_slice(&env[a..b]);
    refused(
        &n,
        d,
        &swapped,
        &["chunk 1 (at byte", "failed authentication"],
    );
    refused(&n, d, b"plain text", &["not a Keyward envelope"]);
}

#[test]
fn kek_without_wrap_or_unwrap_is_refused() {
    let n = node();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    aes_kek(&n, "no-wrap", false, true);
    aes_kek(&n, "no-unwrap", true, false);
    let (plain, _) = content(d, "plain.bin", 1000);
    let encrypt =
        |key: &str, out: &Path| encrypt_file(&n, key, "aes-kwp", &plain, &["--out", p(out)]);
    let refused_out = d.join("refused.kwenv");
    let err = failed(&encrypt("no-wrap", &refused_out));
    assert!(err.contains("attribute_violation"), "{err}");
    assert!(!refused_out.exists());
    let sealed = d.join("sealed.kwenv");
    ok(&encrypt("no-unwrap", &sealed));
    let out = d.join("out.bin");
    let err = failed(&kw(
        &n,
        &[
            "crypto",
            "decrypt-file",
            "--in",
            p(&sealed),
            "--out",
            p(&out),
        ],
    ));
    assert!(err.contains("attribute_violation"), "{err}");
    assert!(!out.exists());
}

/// `openssl ARGS` in `dir`; must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A python with `cryptography`: the PKCS#11 tests' venv, else the machine's python3.
fn python() -> PathBuf {
    let venv = Path::new(keyward_bin())
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("pkcs11-venv/bin/python");
    for candidate in [venv, PathBuf::from("python3")] {
        let has = Command::new(&candidate)
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if has {
            return candidate;
        }
    }
    panic!("no python with cryptography: scripts/test makes target/pkcs11-venv");
}

#[test]
fn an_openssl_rsa_kek_and_an_independent_opening_by_openssl_and_python() {
    let n = node();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
            "kek.pem",
        ],
    );
    openssl(
        d,
        &["pkey", "-in", "kek.pem", "-pubout", "-out", "kek.pub.pem"],
    );
    let import = |file: &str, attr: &str| {
        n.json(
            USER,
            PASSWORD,
            &[
                "key",
                "import",
                "pem",
                "--in",
                p(&d.join(file)),
                "--label",
                "rsa-kek",
                "--attr",
                attr,
            ],
        )["handle"]
            .as_u64()
            .unwrap()
            .to_string()
    };
    let private = import("kek.pem", "unwrap=true");
    let public = import("kek.pub.pem", "wrap=true");
    let (plain, bytes) = content(d, "plain.bin", 2 * CHUNK + 333);
    let sealed = d.join("plain.kwenv");
    ok(&encrypt_file(
        &n,
        &public,
        "rsa-oaep-sha256",
        &plain,
        &["--out", p(&sealed)],
    ));
    // The imported public key is linked to no private key: the envelope names the public one.
    let back = d.join("back.bin");
    let err = failed(&kw(
        &n,
        &[
            "crypto",
            "decrypt-file",
            "--in",
            p(&sealed),
            "--out",
            p(&back),
        ],
    ));
    assert!(err.contains("name the private key"), "{err}");
    ok(&kw(
        &n,
        &[
            "crypto",
            "decrypt-file",
            "--in",
            p(&sealed),
            "--out",
            p(&back),
            "--key",
            &private,
        ],
    ));
    assert_eq!(std::fs::read(&back).unwrap(), bytes);

    // Independently: the wrapped key from the header, unwrapped by openssl, opens the chunks
    // in Python.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envelope_open.py");
    let py = |args: &[&str]| {
        let out = Command::new(python())
            .arg(&script)
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    py(&["wrapped", p(&sealed), "wrapped.bin"]);
    assert_eq!(std::fs::metadata(d.join("wrapped.bin")).unwrap().len(), 384);
    openssl(
        d,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            "kek.pem",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            "wrapped.bin",
            "-out",
            "datakey.bin",
        ],
    );
    let said = py(&["open", p(&sealed), "datakey.bin", "python.bin"]);
    assert_eq!(said.trim(), "3 chunks");
    assert_eq!(std::fs::read(d.join("python.bin")).unwrap(), bytes);
}

#[test]
fn upload_to_and_download_from_s3() {
    let n = node();
    let moto = Moto::start("envelopes");
    let env = moto.env();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    aes_kek(&n, "files", true, true);
    let (plain, bytes) = content(d, "plain.bin", 20 * 1024 * 1024 + 5);
    let url = "s3://envelopes/2026/plain.kwenv";
    let said = ok(&kw_with(
        &n,
        &[],
        &env,
        &[
            "crypto",
            "encrypt-file",
            "--key",
            "files",
            "--mechanism",
            "aes-kwp",
            "--in",
            p(&plain),
            "--upload",
            url,
        ],
    ));
    assert!(said.contains(url), "{said}");
    let back = d.join("back.bin");
    ok(&kw_with(
        &n,
        &[],
        &env,
        &[
            "crypto",
            "decrypt-file",
            "--download",
            url,
            "--out",
            p(&back),
        ],
    ));
    assert!(std::fs::read(&back).unwrap() == bytes, "round trip via S3");
    let err = failed(&kw_with(
        &n,
        &[],
        &env,
        &[
            "crypto",
            "decrypt-file",
            "--download",
            "s3://envelopes/missing.kwenv",
            "--out",
            p(&d.join("missing.bin")),
        ],
    ));
    assert!(
        err.contains("cannot read s3://envelopes/missing.kwenv"),
        "{err}"
    );
    assert!(!d.join("missing.bin").exists());
    let err = failed(&kw_with(
        &n,
        &[],
        &env,
        &[
            "crypto",
            "encrypt-file",
            "--key",
            "files",
            "--mechanism",
            "aes-kwp",
            "--in",
            p(&plain),
            "--upload",
            "s3://envelopes",
        ],
    ));
    assert!(err.contains("s3://BUCKET/KEY"), "{err}");
}

/// Peak RSS in KiB of `keyward ARGS` (GNU time's `%M`, from the kernel's `wait4` rusage).
fn peak_rss_kib(n: &Node, dir: &Path, args: &[&str]) -> u64 {
    let report = dir.join("rss.txt");
    let out = kw_with(
        n,
        &["/usr/bin/time", "-f", "%M", "-o", p(&report)],
        &[],
        args,
    );
    ok(&out);
    std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_256_mib_file_is_encrypted_and_decrypted_in_bounded_memory() {
    assert!(
        Path::new("/usr/bin/time").exists(),
        "GNU time measures the peak RSS"
    );
    let n = node();
    aes_kek(&n, "files", true, true);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = d.join("big.bin");
    let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&plain).unwrap());
        for i in 0..256u32 {
            f.write_all(&i.to_be_bytes()).unwrap();
            f.write_all(&block[4..]).unwrap();
        }
    }
    let sealed = d.join("big.kwenv");
    let enc = peak_rss_kib(
        &n,
        d,
        &[
            "crypto",
            "encrypt-file",
            "--key",
            "files",
            "--mechanism",
            "aes-kwp",
            "--in",
            p(&plain),
            "--out",
            p(&sealed),
        ],
    );
    let back = d.join("back.bin");
    let dec = peak_rss_kib(
        &n,
        d,
        &[
            "crypto",
            "decrypt-file",
            "--in",
            p(&sealed),
            "--out",
            p(&back),
        ],
    );
    println!("peak RSS: encrypt {enc} KiB, decrypt {dec} KiB");
    assert!(enc < 64 * 1024, "encrypt peak RSS {enc} KiB");
    assert!(dec < 64 * 1024, "decrypt peak RSS {dec} KiB");
    assert_eq!(
        std::fs::metadata(&sealed).unwrap().len(),
        (34 + 5 + 48 + 256 * 1024 * 1024 + 16 * 4096) as u64
    );
    // Compare a megabyte at a time.
    use std::io::Read;
    let (mut a, mut b) = (
        std::fs::File::open(&plain).unwrap(),
        std::fs::File::open(&back).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for _ in 0..256 {
        a.read_exact(&mut x).unwrap();
        b.read_exact(&mut y).unwrap();
        assert!(x == y);
    }
    assert_eq!(b.read(&mut y).unwrap(), 0, "nothing more");
}

/// What a review found: `--out` never replaces a device, FIFO or symbolic link (the rename
/// would put plaintext there), an existing file only with `--force`, never the input; and an
/// interrupted decrypt (SIGINT) leaves no partial plaintext.
#[test]
fn outputs_are_new_or_regular_files_and_an_interrupted_run_leaves_nothing() {
    let n = node();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    aes_kek(&n, "files", true, true);
    let (plain, _) = content(d, "plain.bin", CHUNK + 7);
    let sealed = d.join("plain.kwenv");
    let enc = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "crypto",
            "encrypt-file",
            "--key",
            "files",
            "--mechanism",
            "aes-kwp",
            "--in",
            p(&plain),
            "--out",
            p(out),
        ];
        args.extend_from_slice(extra);
        kw(&n, &args)
    };
    ok(&enc(&sealed, &[]));
    let err = failed(&enc(&sealed, &[]));
    assert!(err.contains("exists; pass --force"), "{err}");
    ok(&enc(&sealed, &["--force"]));
    let err = failed(&enc(&plain, &["--force"]));
    assert!(err.contains("is the input file"), "{err}");
    let link = d.join("link");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let fifo = d.join("fifo");
    let (made, _, e) = support::run("mkfifo", &[p(&fifo)]);
    assert!(made, "{e}");
    for special in [&link, &fifo] {
        let out = kw(
            &n,
            &[
                "crypto",
                "decrypt-file",
                "--in",
                p(&sealed),
                "--out",
                p(special),
                "--force",
            ],
        );
        let err = failed(&out);
        assert!(err.contains("is not a regular file"), "{err}");
    }
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // A big decrypt interrupted by SIGINT: an error, and nothing left beside --out.
    let (big, _) = content(d, "big.bin", 64 * 1024 * 1024);
    let big_sealed = d.join("big.kwenv");
    ok(&encrypt_file(
        &n,
        "files",
        "aes-kwp",
        &big,
        &["--out", p(&big_sealed)],
    ));
    let before = listing(d);
    let out = d.join("big.back");
    let mut child = Command::new(keyward_bin())
        .args([
            "crypto",
            "decrypt-file",
            "--in",
            p(&big_sealed),
            "--out",
            p(&out),
        ])
        .args(["--server", &n.url, "--ca-cert"])
        .arg(&n.ca)
        .args(["--user", USER, "--password", PASSWORD])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the temporary file exists (the decrypt is under way).
    let started = std::time::Instant::now();
    while !listing(d).iter().any(|f| f.ends_with(".partial")) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no temporary file: {:?}",
            listing(d)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the decrypt ended before it was interrupted"
        );
        std::thread::yield_now();
    }
    let (sent, _, e) = support::run("kill", &["-INT", &child.id().to_string()]);
    assert!(sent, "{e}");
    let done = child.wait_with_output().unwrap();
    // 64 MiB takes seconds to decrypt here; SIGINT comes within milliseconds of the start.
    assert!(!done.status.success(), "the decrypt ended before SIGINT");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(listing(d), before, "something was left behind");
}
