//! `keyward serve` proxies on a cluster store: shared ticket keys (resumption across proxies) and keys made elsewhere picked up on SIGHUP.

use std::path::Path;

use crate::common::*;
use crate::support::*;

#[test]
fn proxies_on_the_cluster_resume_each_others_sessions_and_load_a_key_made_through_the_api() {
    let (_db, url) = new_store();
    let site = Site::new();
    let data = site.data();
    init_ok(&data, &url);
    keyward_ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "web",
        "--data-dir",
        &p(&data),
        "--store",
        &url,
    ]);
    let cert = site.dir.join("web.pem");
    cluster_self_signed(&data, &url, "web", &cert);
    let (_up, up) = start_upstream();
    let config = site.dir.join("keyward.toml");
    let write_config = |label: &str, chain: &Path| {
        std::fs::write(
            &config,
            format!(
                "[hsm]\ndata_dir = \"data\"\nstore = \"{url}\"\n\n[admin]\nenabled = false\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
                 [[listeners.certificates]]\nkey_label = \"{label}\"\nchain_file = \"{}\"\n\n\
                 [upstream]\nurl = \"http://{up}\"\n",
                chain.display()
            ),
        )
        .unwrap();
    };
    write_config("web", &cert);
    let (proxy_a, a) = start_serve(&config, 1);
    let (proxy_b, b) = start_serve(&config, 1);
    let (a, b) = (a[0], b[0]);
    // On a cluster store every proxy is a full node (no reader nodes), and both serve.
    assert!(
        proxy_b
            .stderr
            .all()
            .iter()
            .all(|l| !l.contains("reader node")),
        "{:?}",
        proxy_b.stderr.all()
    );
    assert!(!data.join("keyward.sqlite3").exists());
    for addr in [a, b] {
        let out = Curl::https(addr, "/", &cert).run();
        assert_eq!(out.status, 200, "{addr}: {out:?}");
    }

    // Session tickets are sealed with keys in the shared store: either proxy resumes the
    // other's sessions, TLS 1.3 and TLS 1.2.
    for (version, extra) in [("TLSv1.3", &[][..]), ("TLSv1.2", &["-tls1_2"][..])] {
        for (from, to) in [(a, b), (b, a)] {
            let file = site.dir.join(format!("{version}-{}.pem", from.port()));
            new_session(from, &file, version, extra);
            let line = resume(to, &file, extra);
            assert!(
                line.starts_with(&format!("Reused, {version}")),
                "a {version} session from {from} on {to}: {line}"
            );
        }
    }

    // A key generated through an HSM node's API (by a crypto-user, shared with the proxy's
    // service user), then a certificate for it: both proxies serve it after SIGHUP.
    let (_node, node_addr) = start_hsm_serve(&data, &["--store", &url]);
    let api = format!("https://localhost:{}", node_addr.port());
    let ca = data.join("api-ca.pem");
    create_crypto_user(&api, &ca, &site.dir, "alice", "alice-password");
    let private = alice_pair(&api, &ca, "api-web").to_string();
    remote_ok(
        &api,
        &ca,
        "alice",
        "alice-password",
        &["key", "share", "--key", &private, "--with", "keyward-proxy"],
    );
    let api_cert = site.dir.join("api-web.pem");
    cluster_self_signed(&data, &url, "api-web", &api_cert);
    write_config("api-web", &api_cert);
    let expected = served_certificate(&std::fs::read_to_string(&api_cert).unwrap());
    for (proxy, addr) in [(&proxy_a, a), (&proxy_b, b)] {
        let (ok, _, err) = run("kill", &["-HUP", &proxy.child.id().to_string()]);
        assert!(ok, "{err}");
        eventually(
            std::time::Duration::from_secs(10),
            "the reloaded certificate is served",
            || served_certificate(&s_client(addr, "localhost", &[])) == expected,
        );
    }
}
