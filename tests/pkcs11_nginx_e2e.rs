//! nginx with its default master + worker processes serving TLS with a key held in Keyward,
//! through OpenSSL's PKCS#11 engine (libengine-pkcs11-openssl, libp11) and
//! `libkeyward_pkcs11.so`; and the same nginx setup with SoftHSM2, for comparison.
//!
//! Both work from every worker, provided the workers (which nginx started as root runs as
//! `nobody`) can read what their module reads after fork(): Keyward's configuration and CA
//! file, SoftHSM2's whole token folder (the token's key files). An earlier finding of this
//! project ("SoftHSM2 fails once nginx forks: Object handle invalid") was that permission
//! error: libp11 reports a token its worker cannot read as an invalid object handle.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::pkcs11::{module_path, Node};
use support::{free_port, run, wait_for_port, Running};

const WORKERS: usize = 4;

/// The PKCS#11 engine (Debian's libengine-pkcs11-openssl).
fn engine() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().join("engines-3/pkcs11.so")))
        .find(|p| p.is_file())
        .expect("libengine-pkcs11-openssl is not installed (scripts/test installs it)")
}

/// An openssl.cnf that loads the PKCS#11 engine with `module`.
fn openssl_cnf(dir: &Path, module: &Path) -> PathBuf {
    let path = dir.join("openssl.cnf");
    std::fs::write(
        &path,
        format!(
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
             [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
             dynamic_path = {}\nMODULE_PATH = {}\ninit = 0\n",
            engine().display(),
            module.display()
        ),
    )
    .unwrap();
    path
}

/// nginx, default `master_process on`, `WORKERS` workers, the key from `key_uri` through the
/// engine; answers each request with the worker's pid.
fn start_nginx(
    dir: &Path,
    cert: &Path,
    key_uri: &str,
    env: &[(&str, &Path)],
) -> (Running, SocketAddr) {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let d = dir.display();
    let conf = format!(
        "worker_processes {WORKERS};\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         ssl_engine pkcs11;\nenv SOFTHSM2_CONF;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
         \x20 fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
         \x20 server {{\n    listen {addr} ssl;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_certificate {cert};\n\
         \x20   ssl_certificate_key \"engine:pkcs11:{key_uri}\";\n\
         \x20   location / {{ return 200 \"worker $pid\\n\"; }}\n  }}\n}}\n",
        cert = cert.display(),
    );
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.arg("-p").arg(dir).arg("-e").arg(dir.join("error.log"));
    cmd.arg("-c").arg(dir.join("nginx.conf"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let nginx = Running::spawn(cmd);
    wait_for_port(addr);
    (nginx, addr)
}

/// A self-signed certificate for localhost made by OpenSSL with the key behind `key_uri`.
fn engine_certificate(dir: &Path, key_uri: &str, env: &[(&str, &Path)]) -> PathBuf {
    let cert = dir.join("cert.pem");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-new",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
    ])
    .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    .args([
        "-engine", "pkcs11", "-keyform", "engine", "-key", key_uri, "-out",
    ])
    .arg(&cert);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

/// One HTTPS request with curl trusting `cert`: the worker pid it reports, or curl's error.
fn request(addr: SocketAddr, cert: &Path) -> Result<u32, String> {
    let (ok, out, err) = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &cert.display().to_string(),
            &format!("https://localhost:{}/", addr.port()),
        ],
    );
    match out.trim().strip_prefix("worker ") {
        Some(pid) if ok => pid.parse().map_err(|_| out.clone()),
        _ => Err(format!("{out}{err}")),
    }
}

/// Full handshakes from 8 threads until every worker has answered and at least 200 were
/// made; every one must succeed. Returns the count per worker.
fn every_worker_serves(dir: &Path, addr: SocketAddr, cert: &Path) -> BTreeMap<u32, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut total = 0;
    while (per_worker.len() < WORKERS || total < 200) && Instant::now() < deadline {
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| request(addr, cert))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            total += 1;
            match r {
                Ok(pid) => *per_worker.entry(pid).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}\nerror.log:\n{errors}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert_eq!(
        per_worker.len(),
        WORKERS,
        "every worker served: {per_worker:?}"
    );
    // openssl s_client too, in both TLS versions: the chain verifies.
    for (flag, version) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let ca = cert.display().to_string();
        let out = support::s_client_request(addr, &["-CAfile", &ca, flag]);
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        assert!(out.contains(&format!("Protocol  : {version}")), "{out}");
    }
    per_worker
}

#[test]
fn nginx_workers_sign_through_keyward_and_through_softhsm2() {
    let node = Node::start();
    node.crypto_user("web:web-password");
    node.ec_pair("web:web-password", "nginx-key");
    let module = module_path();
    let dir = node.dir.path().join("nginx-keyward");
    std::fs::create_dir_all(&dir).unwrap();
    let cnf = openssl_cnf(node.dir.path(), &module);
    let uri = "pkcs11:token=keyward;object=nginx-key;type=private;pin-value=web:web-password";
    // Only the master gets KEYWARD_PKCS11_CONF: the module remembers the file across fork(),
    // so workers (whose environment nginx clears) re-initialize without an `env` directive.
    let env = [
        ("OPENSSL_CONF", cnf.as_path()),
        ("KEYWARD_PKCS11_CONF", node.conf.as_path()),
    ];
    let cert = engine_certificate(&dir, uri, &env);
    let (nginx, addr) = start_nginx(&dir, &cert, uri, &env);
    let per_worker = every_worker_serves(&dir, addr, &cert);
    println!("nginx + keyward PKCS#11: per worker {per_worker:?}");
    drop(nginx);

    // The same nginx with SoftHSM2 (loadtest/softhsm-nginx.sh's token setup), its token
    // folder readable by the workers.
    let soft = node.dir.path().join("nginx-softhsm");
    std::fs::create_dir_all(soft.join("tokens")).unwrap();
    let soft_conf = soft.join("softhsm2.conf");
    std::fs::write(
        &soft_conf,
        format!(
            "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            soft.display()
        ),
    )
    .unwrap();
    let softhsm = Path::new("/usr/lib/softhsm/libsofthsm2.so");
    let senv = [("SOFTHSM2_CONF", soft_conf.as_path())];
    let sh = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .envs(senv)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            "kw",
            "--pin",
            "1234",
            "--so-pin",
            "1234",
        ],
    );
    let m = softhsm.display().to_string();
    sh(
        "pkcs11-tool",
        &[
            "--module",
            &m,
            "--token-label",
            "kw",
            "--login",
            "--pin",
            "1234",
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "bench",
            "--id",
            "01",
        ],
    );
    // The workers read the token's files after fork(): let them (SoftHSM2 made them 0600).
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&soft)
        .status()
        .unwrap();
    assert!(chmod.success());
    let scnf = openssl_cnf(&soft, softhsm);
    let suri = "pkcs11:token=kw;object=bench;type=private;pin-value=1234";
    let senv = [
        ("OPENSSL_CONF", scnf.as_path()),
        ("SOFTHSM2_CONF", soft_conf.as_path()),
    ];
    let scert = engine_certificate(&soft, suri, &senv);
    let (snginx, saddr) = start_nginx(&soft, &scert, suri, &senv);
    let per_worker = every_worker_serves(&soft, saddr, &scert);
    println!("nginx + SoftHSM2 PKCS#11: per worker {per_worker:?}");
    drop(snginx);
}
