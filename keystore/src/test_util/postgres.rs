//! A real, throwaway PostgreSQL server for tests: `initdb` into a temporary folder, started
//! with `pg_ctl` on a free loopback port, one shared per test process (or one a test owns, to
//! stop and start it), stopped (by its PID, through `pg_ctl stop`) and removed when the test
//! process exits, however it exits.
//!
//! The server is run by a small shell script that the test process feeds on standard input:
//! when the process ends, the pipe closes, and the script stops the server and deletes its
//! folder. As root (CI), `initdb` and the server run as the `postgres` user. The binaries are
//! looked up on `PATH`, then in `/usr/lib/postgresql/<newest>/bin` (Debian).

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::PostgresOptions;

/// A PostgreSQL server of the test process: the shared one, or one a test owns (to stop and
/// start it).
pub struct TestPostgres {
    port: u16,
    bin: PathBuf,
    /// The superuser's password when the server asks for one.
    password: Option<String>,
    /// The script's commands (`stop`, `start`); closing it stops the server for good.
    control: Mutex<Option<Control>>,
    child: Mutex<Child>,
}

/// The script's standard input and output.
type Control = (ChildStdin, BufReader<std::process::ChildStdout>);

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Closing stdin makes the script stop the server and delete its folder; wait for it.
        drop(
            self.control
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let _ = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .wait();
    }
}

static SERVER: OnceLock<TestPostgres> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

const SCRIPT: &str = r#"
set -eu
bin=$1; port=$2; password=${3:-}; tls_dir=${4:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/keyward-pg.XXXXXX")
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; as() { runuser -u postgres -- "$@"; }; else as() { "$@"; }; fi
cleanup() { as "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
auth="-A trust"
if [ -n "$password" ]; then
  printf '%s\n' "$password" >"$dir/pw"; [ "$(id -u)" = 0 ] && chown postgres "$dir/pw"
  auth="--auth-local=trust --auth-host=scram-sha-256 --pwfile=$dir/pw"
fi
as "$bin/initdb" -D "$dir/data" -U postgres $auth --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
ssl=""
if [ -n "$tls_dir" ]; then
  cp "$tls_dir/server.crt" "$tls_dir/server.key" "$dir/"
  [ "$(id -u)" = 0 ] && chown postgres "$dir/server.crt" "$dir/server.key"
  chmod 600 "$dir/server.key"
  ssl="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
fi
start() {
  as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 $ssl" start >/dev/null \
    || { cat "$dir/log" >&2; exit 1; }
}
start
echo "ready $dir"
while read -r cmd; do
  case $cmd in
    stop) as "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; echo stopped ;;
    start) start; echo started ;;
  esac
done
"#;

fn find_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
            .collect::<Vec<_>>()
    });
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file());
    let mut debian: Vec<_> = debian.collect();
    debian.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    on_path.chain(debian.into_iter().rev()).next().expect(
        "PostgreSQL server binaries (initdb, pg_ctl): install postgresql (scripts/test does)",
    )
}

/// One line from the script; `pg_ctl -w -t 60` bounds the wait (it prints a line or exits).
fn read_reply(stdout: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the PostgreSQL script's output");
    line
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestPostgres {
    /// The process's server, started on first use.
    ///
    /// # Panics
    /// If the binaries are missing or the server does not start (its log is printed).
    pub fn shared() -> &'static TestPostgres {
        SERVER.get_or_init(Self::own)
    }

    /// A server of the caller's own (stopped and removed when dropped), to stop and start.
    ///
    /// # Panics
    /// As [`shared`](Self::shared).
    pub fn own() -> TestPostgres {
        Self::own_with(None, None)
    }

    /// [`own`](Self::own), with password authentication (SCRAM) for TCP connections, the
    /// superuser `postgres` having `password`, and/or TLS from `tls_dir`'s `server.crt` and
    /// `server.key` (PEM).
    ///
    /// # Panics
    /// As [`shared`](Self::shared).
    pub fn own_with(password: Option<&str>, tls_dir: Option<&std::path::Path>) -> TestPostgres {
        let bin = find_bin();
        let port = free_port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("keyward-test-postgres")
            .arg(&bin)
            .arg(port.to_string())
            .arg(password.unwrap_or(""))
            .arg(
                tls_dir
                    .map(|d| d.as_os_str().to_owned())
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sh for PostgreSQL");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stdin = child.stdin.take().expect("piped stdin");
        let line = read_reply(&mut stdout);
        assert!(
            line.starts_with("ready "),
            "PostgreSQL did not start (its log is above)"
        );
        TestPostgres {
            port,
            bin,
            password: password.map(str::to_owned),
            control: Mutex::new(Some((stdin, stdout))),
            child: Mutex::new(child),
        }
    }

    fn command(&self, command: &str, reply: &str) {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let (stdin, stdout) = control.as_mut().expect("the server is running");
        std::io::Write::write_all(stdin, format!("{command}\n").as_bytes())
            .and_then(|()| std::io::Write::flush(stdin))
            .expect("send a command to the PostgreSQL script");
        let line = read_reply(stdout);
        assert_eq!(
            line.trim(),
            reply,
            "PostgreSQL {command} failed (its log is above)"
        );
    }

    /// Stops the server (`pg_ctl stop -m fast`: connections are closed) and waits until it is
    /// down.
    pub fn stop(&self) {
        self.command("stop", "stopped");
    }

    /// Starts the stopped server again on the same port and waits until it accepts
    /// connections.
    pub fn start(&self) {
        self.command("start", "started");
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` as the superuser `postgres` (trust authentication).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs one SQL statement as the superuser in database `postgres` with `psql`.
    ///
    /// # Panics
    /// If `psql` fails.
    pub fn psql(&self, database: &str, statement: &str) -> String {
        let psql = {
            let beside = self.bin.join("psql");
            if beside.is_file() {
                beside
            } else {
                PathBuf::from("psql")
            }
        };
        let out = Command::new(psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", database, "-c", statement])
            .env("PGPASSWORD", self.password.as_deref().unwrap_or(""))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {statement}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A new, empty database; returns its name.
    pub fn new_database(&self) -> String {
        let name = format!(
            "keyward_test_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Options for a new, empty database (a pool of 4 connections).
    pub fn new_store_options(&self) -> PostgresOptions {
        let mut options = PostgresOptions::new(self.url(&self.new_database()));
        options.pool_size = 4;
        options
    }
}
