//! Logging: one `tracing` subscriber on stderr, set up once per process (by `main`, or by
//! `keyward serve` from its configuration file's `[log]`).

/// Sets up logging at `level` (`KEYWARD_LOG` overrides it with an `EnvFilter` directive), as
/// JSON lines when `json`; colours only on a terminal.
pub(crate) fn init(level: &str, json: bool) {
    let mut filter = std::env::var("KEYWARD_LOG").unwrap_or_else(|_| level.to_owned());
    // rustls warns once per handshake about client mistakes (e.g. an IP address sent as SNI):
    // a log line per handshake on the hot path, and log spam any client can cause. Quiet it
    // unless the operator asks for rustls explicitly.
    if !filter.contains("rustls") {
        filter.push_str(",rustls=error");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
