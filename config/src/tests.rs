use super::*;
use std::path::Path;

const GOOD: &str = r#"
[hsm]
data_dir = "data"

[[listeners]]
address = "127.0.0.1:8443"

[[listeners.certificates]]
key_label = "web"
chain_file = "web.pem"

[upstream]
url = "http://127.0.0.1:8080/"
"#;

fn load(text: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Result<Config, Error>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyward.toml");
    std::fs::write(&file, text).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let res = Config::load(&file, env);
    (dir, res)
}

fn message(text: &str, env: &[(&str, &str)]) -> String {
    let (_d, res) = load(text, env);
    let msg = res.unwrap_err().to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn defaults_and_relative_paths() {
    let (dir, res) = load(GOOD, &[]);
    let c = res.unwrap();
    assert_eq!(c.hsm.data_dir, dir.path().join("data"));
    assert_eq!(
        c.listeners[0].tls_versions,
        vec![TlsVersion::Tls12, TlsVersion::Tls13]
    );
    assert_eq!(c.listeners[0].alpn, vec!["h2", "http/1.1"]);
    assert_eq!(
        c.upstreams["default"].servers[0].url,
        "http://127.0.0.1:8080"
    );
    assert_eq!(c.upstreams["default"].connect_timeout_ms, 5000);
    assert_eq!(
        c.upstreams["default"].servers[0].authority,
        "127.0.0.1:8080"
    );
    assert_eq!(c.listeners[0].kx_groups[0], "X25519MLKEM768");
    assert_eq!(c.listeners[0].mode, ListenerMode::Http);
    assert_eq!(c.admin.address, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(c.session_resumption.ticket_key_rotation_s, 21600);
    assert_eq!(c.listeners[0].forwarded_headers, ForwardedTrust::Replace);
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn environment_overrides_file_and_ignores_client_variables() {
    let (_d, res) = load(
        GOOD,
        &[
            ("KEYWARD_UPSTREAM__URL", "http://10.0.0.1:9000"),
            ("KEYWARD_LOG__FORMAT", "json"),
            ("KEYWARD_PASSWORD", "not config"),
            ("KEYWARD_CONFIG", "x.toml"),
            ("OTHER", "1"),
        ],
    );
    let c = res.unwrap();
    assert_eq!(
        c.upstreams["default"].servers[0].url,
        "http://10.0.0.1:9000"
    );
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn unknown_keys_name_the_key_and_the_source() {
    let msg = message(&format!("{GOOD}\nbogus = 1\n"), &[]);
    assert!(
        msg.contains("keyward.toml") && msg.contains("bogus"),
        "{msg}"
    );
    let msg = message(&GOOD.replace("key_label", "key_labl"), &[]);
    assert!(
        msg.contains("listeners[0].certificates[0].key_labl"),
        "{msg}"
    );
    let msg = message(GOOD, &[("KEYWARD_UPSTREAM__URLL", "http://x")]);
    assert!(
        msg.contains("KEYWARD_UPSTREAM__URLL") && msg.contains("upstream.urll"),
        "{msg}"
    );
}

#[test]
fn invalid_values_name_the_key() {
    let msg = message(&GOOD.replace("127.0.0.1:8443", "nowhere"), &[]);
    assert!(msg.contains("listeners[0].address"), "{msg}");
    let msg = message(
        &GOOD.replace("[upstream]\nurl = \"http://127.0.0.1:8080/\"", ""),
        &[],
    );
    assert!(
        msg.contains("upstream.url") && msg.contains("required"),
        "{msg}"
    );
    let msg = message(&GOOD.replace("http://127.0.0.1:8080/", "ftp://x"), &[]);
    assert!(msg.contains("upstream.url"), "{msg}");
    let msg = message(GOOD, &[("KEYWARD_UPSTREAM__CONNECT_TIMEOUT_MS", "soon")]);
    assert!(
        msg.contains("KEYWARD_UPSTREAM__CONNECT_TIMEOUT_MS"),
        "{msg}"
    );
    let msg = message("[upstream]\nurl = \"http://a\"\n", &[]);
    assert!(msg.contains("listeners"), "{msg}");
    let msg = message(
        &GOOD.replace(
            "\"127.0.0.1:8443\"",
            "\"127.0.0.1:8443\"\ntls_versions = [\"1.1\"]",
        ),
        &[],
    );
    assert!(msg.contains("listeners[0].tls_versions"), "{msg}");
}

#[test]
fn errors_name_the_variable_that_set_the_value_and_stay_on_one_line() {
    let msg = message(GOOD, &[("KEYWARD_UPSTREAM__URL", "ftp://x")]);
    assert!(
        msg.starts_with("environment variable KEYWARD_UPSTREAM__URL: upstream.url"),
        "{msg}"
    );
    let msg = message(&format!("{GOOD}\n[upstream\n"), &[]);
    assert!(msg.contains("keyward.toml"), "{msg}");
    let msg = message(&GOOD.replace("url = ", "bogus = 1\nurl = "), &[]);
    assert!(
        msg.contains("upstream.bogus:") && !msg.contains("bogus.bogus"),
        "{msg}"
    );
    let msg = message(&format!("{GOOD}\n[hsm2]\n"), &[]);
    assert!(!msg.contains("Raw"), "{msg}");
}

#[test]
fn upstream_urls_and_log_levels_are_checked() {
    for bad in [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "http://a/?x=1",
        "http://a/#f",
        "http://u@a",
        "http://",
    ] {
        let msg = message(&GOOD.replace("http://127.0.0.1:8080/", bad), &[]);
        assert!(msg.contains("upstream.url"), "{bad}: {msg}");
    }
    for good in [
        "http://[::1]:8080",
        "http://app.internal",
        "http://a:1/prefix",
        "https://a.example",
    ] {
        let (_d, res) = load(&GOOD.replace("http://127.0.0.1:8080/", good), &[]);
        assert!(res.is_ok(), "{good}");
    }
    for bad in ["warning", "inf", "nonsense", "", "x=loud"] {
        let msg = message(GOOD, &[("KEYWARD_LOG__LEVEL", bad)]);
        assert!(
            msg.contains("log.level") && msg.contains("KEYWARD_LOG__LEVEL"),
            "{bad}: {msg}"
        );
    }
    for good in ["info", "WARN", "keyward_proxy=debug,info", "off"] {
        let (_d, res) = load(GOOD, &[("KEYWARD_LOG__LEVEL", good)]);
        assert!(res.is_ok(), "{good}");
    }
}

#[test]
fn unreadable_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/keyward.toml"), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/keyward.toml"));
}

#[test]
fn the_committed_example_configuration_is_valid() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keyward.example.toml");
    let c = Config::load(&file, Vec::new()).unwrap();
    assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:9443");
    assert_eq!(c.listeners[0].certificates[0].key_label, "web");
    assert!(c.listeners[0].certificates[0].default);
    assert_eq!(
        c.upstreams["default"].servers[0].url,
        "http://127.0.0.1:8080"
    );
}

#[test]
fn a_certificate_names_its_key_by_label_or_by_reference_file_but_not_both() {
    let (dir, res) = load(
        &GOOD.replace("key_label = \"web\"", "key_file = \"web.ref.pem\""),
        &[],
    );
    let c = res.unwrap();
    assert_eq!(
        c.listeners[0].certificates[0].key_file,
        Some(dir.path().join("web.ref.pem"))
    );
    let msg = message(
        &GOOD.replace(
            "key_label = \"web\"",
            "key_label = \"web\"\nkey_file = \"x.pem\"",
        ),
        &[],
    );
    assert!(
        msg.contains("exactly one of key_label and key_file"),
        "{msg}"
    );
    let msg = message(&GOOD.replace("key_label = \"web\"\n", ""), &[]);
    assert!(
        msg.contains("exactly one of key_label and key_file"),
        "{msg}"
    );
}

#[test]
fn renewal_from_a_ca_needs_a_key_label_and_a_sane_window() {
    let (_d, res) = load(
        &GOOD.replace(
            "chain_file = \"web.pem\"",
            "chain_file = \"web.pem\"\nrenew_ca = \"edge\"",
        ),
        &[],
    );
    let c = res.unwrap();
    assert_eq!(
        c.listeners[0].certificates[0].renew_ca.as_deref(),
        Some("edge")
    );
    assert_eq!(c.listeners[0].certificates[0].renew_before_days, 30);
    let (_d, res) = load(GOOD, &[]);
    assert_eq!(res.unwrap().listeners[0].certificates[0].renew_ca, None);
    let msg = message(
        &GOOD.replace(
            "key_label = \"web\"",
            "key_file = \"web.ref.pem\"\nrenew_ca = \"edge\"",
        ),
        &[],
    );
    assert!(
        msg.contains("renew_ca") && msg.contains("needs key_label"),
        "{msg}"
    );
    let msg = message(
        &GOOD.replace(
            "chain_file = \"web.pem\"",
            "chain_file = \"web.pem\"\nrenew_before_days = 5",
        ),
        &[],
    );
    assert!(
        msg.contains("renew_before_days") && msg.contains("needs renew_ca"),
        "{msg}"
    );
    let msg = message(
        &GOOD.replace(
            "chain_file = \"web.pem\"",
            "chain_file = \"web.pem\"\nrenew_ca = \"edge\"\nrenew_before_days = 0",
        ),
        &[],
    );
    assert!(
        msg.contains("renew_before_days") && msg.contains("1 to 3650"),
        "{msg}"
    );
}

const POOLS: &str = r#"
[[listeners]]
address = "127.0.0.1:8443"
hsts = "max-age=63072000"
forwarded_headers = "append"
[listeners.proxy_protocol]
trusted_cidrs = ["10.0.0.0/8", "127.0.0.1"]
[listeners.client_auth]
ca_file = "clients.pem"
[[listeners.certificates]]
key_label = "web"
chain_file = "web.pem"
ocsp_file = "web.ocsp"

[[listeners]]
address = "127.0.0.1:8444"
mode = "tcp"
upstream = "db"
[[listeners.certificates]]
key_label = "web"
chain_file = "web.pem"

[[listeners]]
address = "127.0.0.1:8080"
mode = "redirect"
redirect_https_port = 8443

[upstreams.api]
servers = ["http://10.0.0.1:8080", "https://api.internal/v1"]
balance = "least_requests"
[upstreams.api.health_check]
path = "/healthz"
interval_ms = 1000
rise = 1
fall = 2

[upstreams.web]
servers = ["http://[::1]:8081"]

[upstreams.db]
servers = ["tcp://10.0.0.9:5432"]

[[routes]]
host = "*.Example.com"
path_prefix = "/api"
upstream = "api"

[[routes]]
name = "site"
upstream = "web"
"#;

#[test]
fn pools_routes_and_listener_modes() {
    let (dir, res) = load(POOLS, &[]);
    let c = res.unwrap();
    assert_eq!(c.listeners.len(), 3);
    assert_eq!(c.listeners[1].mode, ListenerMode::Tcp);
    assert!(c.listeners[1].alpn.is_empty());
    assert_eq!(c.listeners[2].mode, ListenerMode::Redirect);
    let l = &c.listeners[0];
    assert_eq!(l.hsts.as_deref(), Some("max-age=63072000"));
    assert_eq!(l.forwarded_headers, ForwardedTrust::Append);
    let pp = l.proxy_protocol.as_ref().unwrap();
    assert!(pp.trusted_cidrs[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
    let ca = l.client_auth.as_ref().unwrap();
    assert_eq!(ca.ca_file, dir.path().join("clients.pem"));
    assert!(ca.required);
    assert_eq!(ca.subject_header, "X-Client-Cert-Subject");
    assert_eq!(
        l.certificates[0].ocsp_file,
        Some(dir.path().join("web.ocsp"))
    );
    let api = &c.upstreams["api"];
    assert_eq!(api.balance, Balance::LeastRequests);
    assert_eq!(api.servers[1].scheme, UpstreamScheme::Https);
    assert_eq!(api.servers[1].authority, "api.internal:443");
    assert_eq!(api.servers[1].prefix, "/v1");
    assert_eq!(api.health_check.as_ref().unwrap().fall, 2);
    assert_eq!(c.upstreams["web"].servers[0].host, "::1");
    assert_eq!(c.upstreams["db"].servers[0].scheme, UpstreamScheme::Tcp);
    assert_eq!(c.routes[0].host.as_deref(), Some("*.example.com"));
    assert_eq!(c.routes[0].name, "api:0");
    assert_eq!(c.routes[1].name, "site");
    assert_eq!(c.routes[1].path_prefix, "/");
}

#[test]
fn bad_pools_routes_and_listener_settings_name_the_key() {
    for (from, to, key) in [
        ("upstream = \"api\"", "upstream = \"nope\"", "routes[0].upstream"),
        ("upstream = \"db\"", "upstream = \"web\"", "listeners[1].upstream"),
        ("tcp://10.0.0.9:5432", "tcp://10.0.0.9", "upstreams.db.servers[0]"),
        ("tcp://10.0.0.9:5432", "tcp://10.0.0.9:5432/x", "upstreams.db.servers[0]"),
        ("\"http://[::1]:8081\"", "\"http://[::1]:8081\", \"tcp://a:1\"", "upstreams.web.servers"),
        ("path = \"/healthz\"", "path = \"healthz\"", "upstreams.api.health_check.path"),
        ("fall = 2", "fall = 0", "upstreams.api.health_check.fall"),
        ("\"127.0.0.1\"]", "\"10.0.0.300\"]", "listeners[0].proxy_protocol.trusted_cidrs"),
        ("hsts = \"max-age=63072000\"", "hsts = \"\"", "listeners[0].hsts"),
        ("host = \"*.Example.com\"", "host = \"a.com:443\"", "routes[0].host"),
        ("path_prefix = \"/api\"", "path_prefix = \"api\"", "routes[0].path_prefix"),
        ("address = \"127.0.0.1:8444\"", "address = \"127.0.0.1:8443\"", "listeners[1].address"),
        ("balance = \"least_requests\"", "balance = \"random\"", "upstreams.api.balance"),
        (
            "mode = \"tcp\"",
            "mode = \"tcp\"\ntrusted_proxies = [\"10.0.0.1\"]",
            "listeners[1].trusted_proxies",
        ),
        ("mode = \"redirect\"", "mode = \"redirect\"\n[[listeners.certificates]]\nkey_label = \"x\"\nchain_file = \"x\"", "listeners[2].certificates"),
    ] {
        assert!(POOLS.contains(from), "{from}");
        let msg = message(&POOLS.replacen(from, to, 1), &[]);
        assert!(msg.contains(key), "{to}: {msg}");
    }
    let msg = message(
        &GOOD.replace(
            "address = \"127.0.0.1:8443\"",
            "address = \"127.0.0.1:8443\"\nkx_groups = [\"X448\"]",
        ),
        &[],
    );
    assert!(
        msg.contains("listeners[0].kx_groups") && msg.contains("X25519MLKEM768"),
        "{msg}"
    );
    let msg = message(
        &GOOD.replace(
            "address = \"127.0.0.1:8443\"",
            "address = \"127.0.0.1:8443\"\ncipher_suites = [\"RC4\"]",
        ),
        &[],
    );
    assert!(msg.contains("listeners[0].cipher_suites"), "{msg}");
    let msg = message(
        &GOOD.replace(
            "address = \"127.0.0.1:8443\"",
            "address = \"127.0.0.1:8443\"\nmax_header_bytes = 100",
        ),
        &[],
    );
    assert!(msg.contains("listeners[0].max_header_bytes"), "{msg}");
    let msg = message(
        &format!("{GOOD}\n[upstreams.default]\nservers = [\"http://b\"]\n"),
        &[],
    );
    assert!(msg.contains("upstream"), "{msg}");
}

#[test]
fn the_admin_listener_can_be_moved_or_turned_off() {
    let (_d, res) = load(GOOD, &[("KEYWARD_ADMIN__ADDRESS", "127.0.0.1:9999")]);
    assert_eq!(
        res.unwrap().admin.address,
        Some("127.0.0.1:9999".parse().unwrap())
    );
    let (_d, res) = load(GOOD, &[("KEYWARD_ADMIN__ENABLED", "false")]);
    assert_eq!(res.unwrap().admin.address, None);
}

#[test]
fn api_limits_default_like_the_proxy_and_are_validated() {
    let (_d, res) = load(GOOD, &[]);
    assert_eq!(res.unwrap().api, None);
    let text = format!("{GOOD}\n[api]\naddress = \"127.0.0.1:9200\"\n");
    let (_d, res) = load(&text, &[]);
    let api = res.unwrap().api.unwrap();
    assert_eq!(api.address, "127.0.0.1:9200".parse().unwrap());
    assert_eq!(api.limits, ApiLimits::default());
    assert_eq!(api.limits.handshake_timeout_ms, 10_000);
    assert_eq!(api.limits.client_header_timeout_ms, 30_000);
    assert_eq!(api.limits.client_body_timeout_ms, 60_000);
    assert_eq!(api.limits.idle_timeout_ms, 60_000);
    assert_eq!(api.limits.max_connections, 1024);
    let text = format!(
        "{GOOD}\n[api]\naddress = \"127.0.0.1:9200\"\nhandshake_timeout_ms = 1\nclient_header_timeout_ms = 2\nclient_body_timeout_ms = 3\nidle_timeout_ms = 4\nmax_connections = 5\n"
    );
    let (_d, res) = load(&text, &[("KEYWARD_API__IDLE_TIMEOUT_MS", "40")]);
    let limits = res.unwrap().api.unwrap().limits;
    assert_eq!(
        (
            limits.handshake_timeout_ms,
            limits.client_header_timeout_ms,
            limits.client_body_timeout_ms,
            limits.idle_timeout_ms,
            limits.max_connections
        ),
        (1, 2, 3, 40, 5)
    );
    for key in [
        "handshake_timeout_ms",
        "client_header_timeout_ms",
        "client_body_timeout_ms",
        "idle_timeout_ms",
        "max_connections",
    ] {
        let text = format!("{GOOD}\n[api]\naddress = \"127.0.0.1:9200\"\n{key} = 0\n");
        let msg = message(&text, &[]);
        assert!(
            msg.contains(&format!("api.{key}")) && msg.contains("greater than 0"),
            "{msg}"
        );
    }
    let text = format!("{GOOD}\n[api]\naddress = \"127.0.0.1:9200\"\nheader_timeout = 5\n");
    assert!(message(&text, &[]).contains("header_timeout"));
}

#[test]
fn backlog_and_worker_threads_default_and_are_validated() {
    let (_d, res) = load(GOOD, &[]);
    let c = res.unwrap();
    assert_eq!(c.listeners[0].backlog, DEFAULT_BACKLOG);
    assert_eq!(c.runtime.worker_threads, None);
    assert_eq!(c.session_resumption.tls13_tickets, 1);
    let msg = message(
        &format!("{GOOD}\n[session_resumption]\ntls13_tickets = 5\n"),
        &[],
    );
    assert!(msg.contains("session_resumption.tls13_tickets"), "{msg}");
    let with_backlog = GOOD.replace(
        "address = \"127.0.0.1:8443\"",
        "address = \"127.0.0.1:8443\"\nbacklog = 512",
    );
    let (_d, res) = load(&with_backlog, &[("KEYWARD_RUNTIME__WORKER_THREADS", "6")]);
    let c = res.unwrap();
    assert_eq!(c.runtime.worker_threads.map(|n| n.get()), Some(6));
    assert_eq!(c.listeners[0].backlog, 512);
    let zero = GOOD.replace("[upstream]", "[runtime]\nworker_threads = 0\n\n[upstream]");
    assert_eq!(load(&zero, &[]).1.unwrap().runtime.worker_threads, None);
    let msg = message(
        &GOOD.replace(
            "[upstream]",
            "[runtime]\nworker_threads = 5000\n\n[upstream]",
        ),
        &[],
    );
    assert!(
        msg.contains("runtime.worker_threads") && msg.contains("1024"),
        "{msg}"
    );
    let msg = message(
        &GOOD.replace(
            "address = \"127.0.0.1:8443\"",
            "address = \"127.0.0.1:8443\"\nbacklog = 0",
        ),
        &[],
    );
    assert!(msg.contains("listeners[0].backlog"), "{msg}");
    let msg = message(
        &GOOD.replace(
            "address = \"127.0.0.1:8443\"",
            "address = \"127.0.0.1:8443\"\nbacklog = 70000",
        ),
        &[],
    );
    assert!(
        msg.contains("listeners[0].backlog") && msg.contains("65535"),
        "{msg}"
    );
}

#[test]
fn a_postgres_store_is_read_from_the_file_or_the_environment_and_validated() {
    let (_d, res) = load(GOOD, &[]);
    assert_eq!(res.unwrap().hsm.store, None);
    let with_store = GOOD.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nstore = \"postgres://kw@db/keyward\"\nstore_password_file = \"db.pw\"\nstore_pool_size = 3",
    );
    let (d, res) = load(&with_store, &[]);
    let store = res.unwrap().hsm.store.unwrap();
    assert_eq!(store.url, "postgres://kw@db/keyward");
    assert_eq!(store.password_file, Some(d.path().join("db.pw")));
    assert_eq!(store.pool_size, 3);
    assert_eq!(store.ca_file, None);

    // The environment sets it; the password variable is not configuration (never an
    // unknown-key error, never in the settings).
    let (_d, res) = load(
        GOOD,
        &[
            ("KEYWARD_HSM__STORE", "postgresql://kw:secret@db/keyward"),
            ("KEYWARD_HSM__STORE_PASSWORD", "hunter2"),
        ],
    );
    let config = res.unwrap();
    let store = config.hsm.store.as_ref().unwrap();
    assert_eq!(store.pool_size, 8);
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("secret") && !debug.contains("hunter2"),
        "{debug}"
    );

    for (bad, key) in [
        ("store = \"mysql://db/keyward\"", "hsm.store"),
        (
            "store = \"postgres://db/k\"\nstore_pool_size = 0",
            "hsm.store_pool_size",
        ),
        ("store_ca_file = \"ca.pem\"", "hsm.store_ca_file"),
    ] {
        let msg = message(
            &GOOD.replace(
                "data_dir = \"data\"",
                &format!("data_dir = \"data\"\n{bad}"),
            ),
            &[],
        );
        assert!(msg.contains(key), "{bad}: {msg}");
    }
}

const REMOTE: &str = "data_dir = \"data\"\nmode = \"remote\"\nservers = [\"https://hsm-0:9200\", \"https://hsm-1:9200\"]\nca_file = \"hsm-ca.pem\"\nusername = \"proxy\"\npassword_file = \"proxy.pw\"";

#[test]
fn remote_mode_reads_its_nodes_and_credentials_with_defaults() {
    assert_eq!(load(GOOD, &[]).1.unwrap().hsm.remote, None);
    let text = GOOD.replace("data_dir = \"data\"", REMOTE);
    let (d, res) = load(&text, &[("KEYWARD_HSM__PASSWORD", "hunter2")]);
    let config = res.unwrap();
    let remote = config.hsm.remote.as_ref().unwrap();
    assert_eq!(remote.servers, ["https://hsm-0:9200", "https://hsm-1:9200"]);
    assert_eq!(remote.ca_file, d.path().join("hsm-ca.pem"));
    assert_eq!(remote.username, "proxy");
    assert_eq!(remote.password_file, Some(d.path().join("proxy.pw")));
    assert_eq!(remote.max_in_flight_signs, 256);
    assert_eq!(remote.sign_timeout_ms, 3000);
    // The password variable is read at start, never configuration.
    assert!(!format!("{config:?}").contains("hunter2"));

    let tuned = text.replace(
        "username = \"proxy\"",
        "username = \"proxy\"\nmax_in_flight_signs = 8\nsign_timeout_ms = 250",
    );
    let remote = load(&tuned, &[]).1.unwrap().hsm.remote.unwrap();
    assert_eq!(
        (remote.max_in_flight_signs, remote.sign_timeout_ms),
        (8, 250)
    );
}

#[test]
fn remote_mode_names_each_missing_or_misplaced_key() {
    let remote = GOOD.replace("data_dir = \"data\"", REMOTE);
    for (from, to, key) in [
        ("mode = \"remote\"", "mode = \"keyless\"", "hsm.mode"),
        (
            "servers = [\"https://hsm-0:9200\", \"https://hsm-1:9200\"]",
            "servers = []",
            "hsm.servers",
        ),
        (
            "servers = [\"https://hsm-0:9200\", \"https://hsm-1:9200\"]",
            "servers = [\"http://hsm-0:9200\"]",
            "hsm.servers",
        ),
        ("ca_file = \"hsm-ca.pem\"", "", "hsm.ca_file"),
        ("username = \"proxy\"", "", "hsm.username"),
        (
            "username = \"proxy\"",
            "username = \"proxy\"\nmax_in_flight_signs = 0",
            "hsm.max_in_flight_signs",
        ),
        (
            "username = \"proxy\"",
            "username = \"proxy\"\nmax_in_flight_signs = 4097",
            "hsm.max_in_flight_signs",
        ),
        (
            "username = \"proxy\"",
            "username = \"proxy\"\nsign_timeout_ms = 0",
            "hsm.sign_timeout_ms",
        ),
        (
            "username = \"proxy\"",
            "username = \"proxy\"\nstore = \"postgres://db/k\"",
            "hsm.store",
        ),
    ] {
        let msg = message(&remote.replace(from, to), &[]);
        assert!(msg.contains(key), "{to}: {msg}");
    }
    // Remote keys without remote mode are a mistake, not ignored.
    let msg = message(
        &GOOD.replace(
            "data_dir = \"data\"",
            "data_dir = \"data\"\nservers = [\"https://h:9200\"]",
        ),
        &[],
    );
    assert!(
        msg.contains("hsm.servers") && msg.contains("remote"),
        "{msg}"
    );
    // A remote-mode proxy has no HSM in process to serve an API from.
    let msg = message(
        &format!("{remote}\n[api]\naddress = \"127.0.0.1:9200\"\n"),
        &[],
    );
    assert!(msg.contains("api") && msg.contains("remote"), "{msg}");
}
