use super::*;

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
    assert_eq!(c.upstream.url, "http://127.0.0.1:8080");
    assert_eq!(c.upstream.connect_timeout_ms, 5000);
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
    assert_eq!(c.upstream.url, "http://10.0.0.1:9000");
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
    let msg = message(GOOD, &[("KEYWARD_UPSTREAM__URL", "https://x")]);
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
    assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:8443");
    assert_eq!(c.listeners[0].certificates[0].key_label, "web");
    assert!(c.listeners[0].certificates[0].default);
    assert_eq!(c.upstream.url, "http://127.0.0.1:8080");
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
