//! The proxy renews its certificate from an issuing CA without a restart.

use crate::common::*;
use crate::support::pkcs11::Node;
use crate::support::*;

#[test]
fn the_proxy_renews_its_certificate_from_its_own_ca_without_a_restart() {
    let site = Site::new();
    let data = site.data();
    init_hsm(&data, "admin-password-1");
    generate_key(&data, "ec-p256", "web");
    let chain = site.dir.join("web.pem");
    keyward_ok(&[
        "cert",
        "self-signed",
        "--key",
        "web",
        "--dns",
        "www.example.test",
        "--out",
        &p(&chain),
        "--data-dir",
        &p(&data),
    ]);
    let csr = site.dir.join("web.csr");
    web_csr(&data, &csr);
    let (_up, up) = start_upstream();
    let api_port = free_port();
    let url = format!("https://localhost:{api_port}");
    let api_ca = data.join("api-ca.pem");
    let head = format!("[admin]\nenabled = false\n\n[api]\naddress = \"127.0.0.1:{api_port}\"\n\n");
    let tail = format!("[upstream]\nurl = \"http://{up}\"\n");
    let cert = |renew: &str| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\n{renew}\n",
            chain.display()
        )
    };

    // A node serving its API and the proxy (a self-signed certificate at first).
    let config = site.config(&format!("{head}{}{tail}", cert("")));
    let (node, addrs) = start_serve(&config, 1);
    let pw = site.dir.join("ca.pw");
    std::fs::write(&pw, "ca-admin-password\n").unwrap();
    kw_at(
        &url,
        &api_ca,
        "admin",
        "admin-password-1",
        &[
            "user",
            "create",
            "--name",
            "ca-admin",
            "--role",
            "crypto-user",
            "--password-file",
            &p(&pw),
        ],
    );
    let as_ca = |args: &[&str]| kw_at(&url, &api_ca, "ca-admin", "ca-admin-password", args);
    as_ca(&[
        "ca",
        "create",
        "edge",
        "--common-name",
        "Edge CA",
        "--key-type",
        "ec-p256",
        "--allow-dns",
        ".example.test",
    ]);
    let root = site.dir.join("edge.pem");
    as_ca(&["ca", "certificate", "edge", "--out", &p(&root)]);
    // The CA certifies the proxy's key for one day.
    as_ca(&[
        "ca",
        "issue",
        "edge",
        "--csr",
        &p(&csr),
        "--days",
        "1",
        "--fullchain",
        "--force",
        "--out",
        &p(&chain),
    ]);
    let first = serial_of(&std::fs::read_to_string(&chain).unwrap());

    // `renew_ca` added and SIGHUP: one day left is inside the two-day window, so the same
    // process renews the certificate and serves the new one.
    site.config(&format!(
        "{head}{}{tail}",
        cert("renew_ca = \"edge\"\nrenew_before_days = 2\n")
    ));
    let (ok, _, err) = run("kill", &["-HUP", &node.child.id().to_string()]);
    assert!(ok, "{err}");
    let line = node.stderr.wait_for("certificate renewed");
    assert!(line.contains("serial="), "{line}");
    crate::support::wait_for_count(&node.stderr, "configuration reloaded", 2);
    let renewed = std::fs::read_to_string(&chain).unwrap();
    let second = serial_of(&renewed);
    assert_ne!(first, second);
    let served = s_client(addrs[0], "www.example.test", &[]);
    assert_eq!(serial_of(&served), second, "{served}");
    // The new certificate verifies under the CA, for the same name, for longer than a day.
    let leaf = site.dir.join("leaf.pem");
    openssl_ok(&["x509", "-in", &p(&chain), "-out", &p(&leaf)]);
    openssl_ok(&["verify", "-CAfile", &p(&root), &p(&leaf)]);
    let text = openssl_ok(&[
        "x509",
        "-in",
        &p(&leaf),
        "-noout",
        "-text",
        "-checkend",
        "864000",
    ]);
    assert!(text.contains("DNS:www.example.test"), "{text}");
    curl_trusts(addrs[0].port(), &root);
    // Both are in the CA's register; nothing renews again (the new one has 397 days).
    let register = as_ca(&["ca", "certificates", "edge", "--json"]);
    let register: serde_json::Value = serde_json::from_str(&register).unwrap();
    assert_eq!(register.as_array().unwrap().len(), 2, "{register}");
}

/// A remote-mode proxy (no HSM of its own) renews its certificate from the CA on its HSM
/// node: its crypto-user owns the CA and the key, and asks the node to issue.
#[test]
fn a_remote_mode_proxy_renews_its_certificate_from_the_nodes_ca() {
    let node = Node::start();
    node.crypto_user(&format!("{CA_USER}:{CA_PASSWORD}"));
    let dir = node.dir.path();
    kw_ok(
        &node,
        &[
            "ca",
            "create",
            "edge",
            "--common-name",
            "Edge CA",
            "--key-type",
            "ec-p256",
            "--allow-dns",
            ".example.test",
        ],
    );
    let root = dir.join("edge.pem");
    kw_ok(&node, &["ca", "certificate", "edge", "--out", &p(&root)]);
    node.ec_pair(&format!("{CA_USER}:{CA_PASSWORD}"), "web");
    let chain = dir.join("web.pem");
    kw_ok(
        &node,
        &[
            "cert",
            "issue",
            "--ca",
            "edge",
            "--key",
            "web",
            "--dns",
            "www.example.test",
            "--days",
            "1",
            "--out",
            &p(&chain),
        ],
    );
    let first = serial_of(&std::fs::read_to_string(&chain).unwrap());
    let pw = dir.join("fleet.pw");
    std::fs::write(&pw, format!("{CA_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (_up, up) = start_upstream();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[hsm]\nmode = \"remote\"\nservers = [\"{}\"]\nca_file = \"{}\"\nusername = \"{CA_USER}\"\npassword_file = \"{}\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"{}\"\nrenew_ca = \"edge\"\nrenew_before_days = 2\n\n\
             [upstream]\nurl = \"http://{up}\"\n",
            node.url,
            p(&node.ca),
            p(&pw),
            p(&chain),
        ),
    )
    .unwrap();
    let (proxy, addrs) = start_serve(&config, 1);
    let line = proxy.stderr.wait_for("certificate renewed");
    assert!(line.contains("serial="), "{line}");
    proxy.stderr.wait_for("configuration reloaded");
    let second = serial_of(&std::fs::read_to_string(&chain).unwrap());
    assert_ne!(first, second);
    let served = s_client(addrs[0], "www.example.test", &[]);
    assert_eq!(serial_of(&served), second, "{served}");
    curl_trusts(addrs[0].port(), &root);
}
