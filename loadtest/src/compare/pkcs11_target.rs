//! The nginx-keyward target: nginx (Debian) with its default master + worker processes (one
//! worker, pinned like every target), the key in a Keyward HSM node, reached through
//! OpenSSL's PKCS#11 engine (libengine-pkcs11-openssl) and `libkeyward_pkcs11.so`. The node
//! (`keyward hsm serve` on the keys imported for the keyward-hsm target) runs pinned to the
//! same CPU, and its CPU time counts as the target's: the comparison with nginx + SoftHSM2,
//! which signs inside nginx, is then work for work.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use super::procs::{free_port, Server};
use super::targets::{
    engine_openssl_cnf, keyward, nginx_head, start_nginx, Binaries, KeyFiles, Material, Started,
    BENCH_PASSWORD, BENCH_USER, IDLE_TIMEOUT_S,
};

/// Starts the node, then nginx.
///
/// # Errors
/// Either does not start listening.
#[allow(
    clippy::too_many_arguments,
    reason = "the same inputs as every target's start"
)]
pub(super) fn start(
    m: &Material,
    bins: &Binaries,
    files: &KeyFiles,
    dir: &Path,
    name: &str,
    cpu: usize,
    addr: SocketAddr,
    upstream_port: u16,
) -> anyhow::Result<Started> {
    let node_port = free_port()?;
    let mut node_cmd = keyward(&bins.keyward);
    node_cmd
        .args([
            "hsm",
            "serve",
            "--listen",
            &format!("127.0.0.1:{node_port}"),
        ])
        .arg("--data-dir")
        .arg(&m.keyward_data)
        .env("KEYWARD_LOG", "warn");
    let mut node = Server::start(
        &format!("{name}: HSM node"),
        cpu,
        &mut node_cmd,
        &dir.join("hsm-node.log"),
    )?;
    node.wait_listening(SocketAddr::from(([127, 0, 0, 1], node_port)), false)?;
    let conf = dir.join("keyward-pkcs11.toml");
    fs::write(
        &conf,
        format!(
            "[[token]]\nlabel = \"keyward\"\nservers = [\"https://localhost:{node_port}\"]\n\
             ca_file = {:?}\n",
            m.keyward_data.join("api-ca.pem").display().to_string()
        ),
    )?;
    let openssl_cnf = engine_openssl_cnf(&dir.join("openssl-pkcs11.cnf"), &bins.pkcs11_module)?;
    let key_uri = format!(
        "pkcs11:token=keyward;object={};type=private;pin-value={BENCH_USER}:{BENCH_PASSWORD}",
        files.label
    );
    let conf_text = format!(
        "{head}    keepalive_timeout {IDLE_TIMEOUT_S}s;\n    keepalive_requests 1000000;\n\
         \x20   upstream plain {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}\n\
         \x20   server {{\n        listen {addr} ssl;\n\
         \x20       ssl_protocols TLSv1.2 TLSv1.3;\n\
         \x20       ssl_certificate {cert};\n        ssl_certificate_key \"engine:pkcs11:{key_uri}\";\n\
         \x20       location / {{ proxy_pass http://plain; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n\
         \x20   }}\n}}\n",
        head = nginx_head(dir, true)?,
        cert = files.cert_pem.display(),
    );
    let env = [
        ("OPENSSL_CONF".to_owned(), openssl_cnf),
        ("KEYWARD_PKCS11_CONF".to_owned(), conf),
    ];
    let server = start_nginx(name, dir, &conf_text, cpu, addr.port(), true, &env)?;
    Ok(Started {
        server,
        addr,
        admin: None,
        sidecar: Some(node),
    })
}
