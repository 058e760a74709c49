//! One module per command (`keyward <command>`), and what several of them share: the async
//! runtimes, the signals of long-running commands, and reading and writing the files named
//! on the command line.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_client::{Client, Key, KeyFilter, KeyTemplate};

pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod ca;
pub(crate) mod cert;
pub(crate) mod cert_issue;
pub(crate) mod cluster;
pub(crate) mod codesign;
pub(crate) mod crypto;
pub(crate) mod envelope;
pub(crate) mod hsm;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod key_transfer;
pub(crate) mod key_versions;
pub(crate) mod login;
pub(crate) mod operator;
pub(crate) mod quickstart;
pub(crate) mod recover;
pub(crate) mod serve;
pub(crate) mod serve_api;
pub(crate) mod user;

/// The runtime of the commands that serve (proxy, API): `workers` threads, or one per CPU
/// this process may run on (its affinity mask and cgroup quota, as
/// `std::thread::available_parallelism` counts them), shown in `keyward_worker_threads`.
pub(crate) fn server_runtime(
    workers: Option<std::num::NonZeroUsize>,
) -> Result<tokio::runtime::Runtime> {
    server_runtime_with(workers, 0)
}

/// [`server_runtime`] with room for `parked` more blocking threads than tokio's default 512:
/// a remote-mode proxy parks one thread per signature in flight (`block_in_place`), and a
/// worker handed over while its thread waits runs on a blocking thread too, so the pool must
/// never fill up with waiting signers.
pub(crate) fn server_runtime_with(
    workers: Option<std::num::NonZeroUsize>,
    parked: usize,
) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n.get());
    }
    builder.max_blocking_threads(512 + parked);
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let n = rt.metrics().num_workers();
    keyward_proxy::metrics::metrics()
        .worker_threads
        .set(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(rt)
}

/// The runtime of the commands that call the API: one thread.
pub(crate) fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The signals a long-running command handles, caught before it announces anything (call
/// `catch` inside the runtime, first thing): a SIGTERM, SIGINT or SIGHUP that arrives early is
/// handled, never the default action that would kill the process without a drain.
pub(crate) struct Signals {
    pub(crate) hup: tokio::signal::unix::Signal,
    pub(crate) term: tokio::signal::unix::Signal,
    pub(crate) int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn catch() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let kind =
            |k: SignalKind, name: &str| signal(k).with_context(|| format!("cannot handle {name}"));
        Ok(Signals {
            hup: kind(SignalKind::hangup(), "SIGHUP")?,
            term: kind(SignalKind::terminate(), "SIGTERM")?,
            int: kind(SignalKind::interrupt(), "SIGINT")?,
        })
    }
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}

/// Binds `addr` (before anything else is started, so a busy port is reported at once).
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// A password from a file: its text without the trailing line end.
pub(crate) fn read_password_file(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// A secret from a file (`what` names it in errors): its text without the trailing line end,
/// zeroized when dropped.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {what} {}", path.display()))?,
    );
    Ok(zeroize::Zeroizing::new(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// The bytes of `path`, or of stdin when there is none.
pub(crate) fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            Ok(buf)
        }
    }
}

/// Writes `bytes` to `path` (mode 0600), or to stdout when there is none.
pub(crate) fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => {
            // Outputs may be plaintexts or wrapped keys: readable by the owner only.
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            f.write_all(bytes)
                .with_context(|| format!("cannot write {}", p.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// An API key template: `label` and the `--attr NAME=BOOL` values.
pub(crate) fn template(label: &str, attrs: &[(String, bool)]) -> KeyTemplate {
    attrs
        .iter()
        .fold(KeyTemplate::new(label), |t, (n, v)| t.with(n.clone(), *v))
}

/// The handle `key` names: a number is a handle; anything else a label, looked up among the
/// keys of `classes` that `me` owns, else among those shared with the caller (only when `me`
/// owns no key of that label, of any class).
pub(crate) async fn key_handle(
    client: &Client,
    me: Option<&str>,
    key: &str,
    classes: &[&str],
) -> Result<u64> {
    if let Ok(h) = key.parse::<u64>() {
        return Ok(h);
    }
    let mut found = Vec::new();
    for class in classes {
        let page = client
            .list_keys(&KeyFilter {
                label: Some(key.to_owned()),
                class: Some((*class).to_owned()),
                limit: Some(1000),
                ..KeyFilter::default()
            })
            .await?;
        found.extend(page.keys);
    }
    let own: Vec<&Key> = found
        .iter()
        .filter(|k| Some(k.owner.as_str()) == me)
        .collect();
    match (own.as_slice(), found.as_slice()) {
        ([one], _) => Ok(one.handle),
        ([], [one]) => {
            // Another user's key, shared with you: only when no key of yours has that label,
            // so a label meant for your own key never lands on someone else's.
            let mine = client
                .list_keys(&KeyFilter {
                    label: Some(key.to_owned()),
                    limit: Some(1000),
                    ..KeyFilter::default()
                })
                .await?
                .keys
                .into_iter()
                .find(|k| Some(k.owner.as_str()) == me);
            if let Some(k) = mine {
                bail!(
                    "the label {key:?} names your {} key {}, which this operation cannot use, and {}'s {} key {} shared with you; use a handle",
                    k.class,
                    k.handle,
                    one.owner,
                    one.class,
                    one.handle
                );
            }
            Ok(one.handle)
        }
        ([], []) => bail!(
            "no {} key labelled {key:?} that you own or that is shared with you",
            classes.join(" or ")
        ),
        _ => bail!(
            "the label {key:?} names {} keys ({}); use a handle",
            found.len(),
            found
                .iter()
                .map(|k| format!("{} {} of {}", k.handle, k.class, k.owner))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
