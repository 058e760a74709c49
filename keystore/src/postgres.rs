//! PostgreSQL backend: the store of a cluster, shared by every node pointed at one database.
//!
//! Driver: `tokio-postgres` (the async driver the `postgres` and `deadpool` crates build on),
//! pooled by `deadpool-postgres`, which recycles a connection that broke while the database
//! restarted, so a node recovers by itself. The [`Backend`] trait is synchronous (the HSM
//! calls it under its own locks, off the signing path), so the backend owns a small private
//! Tokio runtime that runs the driver, and each call waits for its answer on a channel: it
//! works from any thread, inside another runtime or not (the `postgres` crate's blocking
//! client would panic inside one).
//!
//! Schema (in the connection's `search_path`, `public` unless the URL's `options` say
//! otherwise), versioned by [`SCHEMA_VERSION`] and migrated at open under an advisory lock:
//!
//! - `keyward_schema_migrations (version, applied_at)`: one row per migration applied;
//! - `keyward_records (kind, id, version, blob)`: the encrypted records, `kind` and `id` in
//!   the `C` collation so that listings are in byte order, as SQLite's;
//! - `keyward_anchor (blob)`: the rollback anchor (one row);
//! - `keyward_nodes (node, version, applied_seq, started_at, last_seen)`: the nodes'
//!   heartbeats (not secret; not encrypted: names, versions and times only);
//! - `keyward_expiring (id, blob, expires_at)`: short-lived entries every node must see
//!   (the API's `Idempotency-Key` responses, sealed by the HSM like records).
//!
//! TLS to the database: rustls with aws-lc-rs. `sslmode` comes from the URL (`disable`,
//! `prefer` (libpq's default), `require`); with a CA file and no `sslmode` in the URL, TLS is
//! required. Certificates are always verified, chain and host name (libpq's `verify-full`),
//! against the CA file, or the Mozilla roots without one.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use crate::{Backend, Error, Record, Result, Write};

/// Schema version written by this build; a database whose newest migration is newer is
/// refused ([`Error::Schema`]).
pub const SCHEMA_VERSION: i64 = 4;

/// The migrations, in order: `(version, SQL)`. Applied once each, in one transaction with
/// the row that records them.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE keyward_records (
             kind    text COLLATE \"C\" NOT NULL,
             id      text COLLATE \"C\" NOT NULL,
             version bigint NOT NULL CHECK (version > 0),
             blob    bytea  NOT NULL,
             PRIMARY KEY (kind, id)
         );
         CREATE TABLE keyward_anchor (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             blob      bytea   NOT NULL
         );",
    ),
    (
        2,
        "CREATE TABLE keyward_nodes (
             node        text COLLATE \"C\" PRIMARY KEY,
             version     text        NOT NULL,
             applied_seq bigint      NOT NULL,
             started_at  timestamptz NOT NULL,
             last_seen   timestamptz NOT NULL DEFAULT now()
         );",
    ),
    (
        3,
        "CREATE TABLE keyward_expiring (
             id         text COLLATE \"C\" PRIMARY KEY,
             blob       bytea       NOT NULL,
             expires_at timestamptz NOT NULL
         );
         CREATE INDEX keyward_expiring_expires_at ON keyward_expiring (expires_at);",
    ),
    (
        4,
        "ALTER TABLE keyward_nodes ADD COLUMN store_seq bigint NOT NULL DEFAULT 0;",
    ),
];

/// The advisory lock key that serializes migrations (`pg_advisory_xact_lock`): "keyward" +
/// 1 in ASCII, so that it does not collide with another application's by chance.
const MIGRATION_LOCK: i64 = 0x6b65_7977_6172_6401;
/// The advisory lock key that serializes the nodes' writes ([`Backend::lock_writes`]).
const WRITE_LOCK: i64 = 0x6b65_7977_6172_6402;

/// How long a node waits for another node's write to finish before it gives up
/// ([`Error::Unavailable`]).
const WRITE_LOCK_TIMEOUT: &str = "10s";

/// The `NOTIFY` channel of committed changes.
const CHANGES_CHANNEL: &str = "keyward_changes";

/// How long a call waits for a free pooled connection, or for a new one to be made, before
/// it fails with [`Error::Unavailable`].
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the cluster's database is and how to log in to it.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// A libpq connection URL, `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=…]`. A password
    /// in it works but is discouraged: use [`password`](Self::password).
    pub url: String,
    /// The password, read from a file or the environment by the caller (never logged).
    pub password: Option<Zeroizing<String>>,
    /// PEM file of the CA certificate(s) that issued the database server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool (at least 1).
    pub pool_size: usize,
}

impl PostgresOptions {
    /// Options for `url`, with no password, no CA file and a pool of 8 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            ca_file: None,
            pool_size: 8,
        }
    }

    /// The URL without its password (for messages and logs).
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &self.redacted_url())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The cluster store on PostgreSQL.
pub struct PostgresBackend {
    pool: Pool,
    /// The driver's runtime; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    url: String,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// What a lost connection or an unreachable database becomes.
fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        reason: what.to_string(),
    }
}

/// A statement's error: [`Error::Postgres`] when the server answered, else unavailable
/// (with the cause: "error connecting to server: Connection refused (os error 111)").
fn sql(e: tokio_postgres::Error) -> Error {
    if e.as_db_error().is_some() {
        Error::Postgres(e)
    } else {
        unavailable(describe(&e))
    }
}

/// What the driver says, with its causes ("db error" alone names none): the server's SQLSTATE
/// and message for an error it sent, else each `source()` in turn.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn pooled(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => sql(e),
        other => unavailable(other),
    }
}

fn tls_config(options: &PostgresOptions) -> Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject as _;
            let file_error = |source| Error::File {
                action: "read the database CA file",
                path: path.display().to_string(),
                source,
            };
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| file_error(std::io::Error::other(e.to_string())))?;
            if certs.is_empty() {
                return Err(file_error(std::io::Error::other(
                    "no CERTIFICATE block in the file",
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| file_error(std::io::Error::other(e.to_string())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(format!("TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Whether the URL names an `sslmode` itself.
fn names_sslmode(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")))
}

impl PostgresBackend {
    /// Connects and prepares a store in the database: applies the migrations (creating the
    /// tables the first time).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the database already holds a Keyward store with records or
    /// an anchor; [`Error::Schema`] if its schema is newer than this build's;
    /// [`Error::Unavailable`] if the database cannot be reached; [`Error::Postgres`] if it
    /// refuses a statement (e.g. no permission to create tables).
    pub fn create(options: &PostgresOptions) -> Result<Self> {
        let backend = Self::connect(options)?;
        backend.migrate(true)?;
        let exists = backend.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM keyward_records)
                         OR EXISTS (SELECT 1 FROM keyward_anchor)",
                    &[],
                )
                .await
                .map_err(sql)?;
            Ok(row.get::<_, bool>(0))
        })?;
        if exists {
            return Err(Error::AlreadyExists {
                path: backend.url.clone(),
            });
        }
        Ok(backend)
    }

    /// Connects to a database that holds a Keyward store, applying the migrations it lacks.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the database holds no Keyward store (create one with
    /// [`create`](Self::create)); the others as [`create`](Self::create).
    pub fn open(options: &PostgresOptions) -> Result<Self> {
        let backend = Self::connect(options)?;
        backend.migrate(false)?;
        Ok(backend)
    }

    fn connect(options: &PostgresOptions) -> Result<Self> {
        let url = options.redacted_url();
        let mut config: tokio_postgres::Config =
            options.url.parse().map_err(|e| Error::Config {
                reason: format!("store URL {url}: {e}"),
            })?;
        if let Some(password) = &options.password {
            config.password(password.as_bytes());
        }
        if options.ca_file.is_some() && !names_sslmode(&options.url) {
            config.ssl_mode(SslMode::Require);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        config.application_name("keyward");
        let tls = tls_config(options)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keyward-store")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                path: "the store's runtime".into(),
                source,
            })?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| Error::Config {
                reason: format!("store pool: {e}"),
            })?;
        let backend = Self {
            pool,
            runtime: Some(runtime),
            handle,
            config,
            tls,
            url,
        };
        // Fail here, with the reason, rather than at the first read.
        backend.run(|pool| async move {
            drop(pool.get().await.map_err(pooled)?);
            Ok(())
        })?;
        Ok(backend)
    }

    /// Runs `f` on the driver's runtime and waits for its result.
    fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.pool.clone());
        self.handle.spawn(async move {
            // The caller waits on the other end for as long as this runs.
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(unavailable("the store's runtime stopped")))
    }

    /// Applies the migrations this database lacks, in one transaction under an advisory
    /// lock (two nodes starting at once migrate once). `create`: make the version table if
    /// missing; else a database without one is [`Error::NotFound`].
    fn migrate(&self, create: bool) -> Result<()> {
        let url = self.url.clone();
        self.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pooled)?;
            let tx = client.transaction().await.map_err(sql)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(sql)?;
            let present: bool = tx
                .query_one(
                    "SELECT to_regclass('keyward_schema_migrations') IS NOT NULL",
                    &[],
                )
                .await
                .map_err(sql)?
                .get(0);
            if !present {
                if !create {
                    return Err(Error::NotFound {
                        path: format!("{url} (no Keyward store in this database)"),
                    });
                }
                tx.batch_execute(
                    "CREATE TABLE keyward_schema_migrations (
                         version    bigint PRIMARY KEY,
                         applied_at timestamptz NOT NULL DEFAULT now()
                     )",
                )
                .await
                .map_err(sql)?;
            }
            let found: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM keyward_schema_migrations",
                    &[],
                )
                .await
                .map_err(sql)?
                .get(0);
            if found > SCHEMA_VERSION {
                return Err(Error::Schema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
                tx.batch_execute(statements).await.map_err(sql)?;
                tx.execute(
                    "INSERT INTO keyward_schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await
                .map_err(sql)?;
            }
            tx.commit().await.map_err(sql)?;
            Ok(())
        })
    }
}

/// The cluster write lock ([`Backend::lock_writes`]): a transaction on a pooled connection
/// holding `pg_advisory_xact_lock`; dropping it commits that transaction, which releases the
/// lock, and returns the connection to the pool.
struct ClusterWriteLock {
    client: Option<deadpool_postgres::Object>,
    handle: tokio::runtime::Handle,
}

impl Drop for ClusterWriteLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.handle.spawn(async move {
                if client.batch_execute("COMMIT").await.is_err() {
                    // Never hand back a connection in an unknown transaction state: closing it
                    // releases the lock too.
                    drop(deadpool_postgres::Object::take(client));
                }
            });
        }
    }
}

/// Listens for [`CHANGES_CHANNEL`] on a connection of its own, reconnecting after 1 s when it
/// drops, and sends `()` to `tx` for each notification and after each (re)connection; ends
/// when the receiver is gone.
async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    tx: std::sync::mpsc::Sender<()>,
) {
    loop {
        if let Ok((client, mut connection)) = config.connect(tls.clone()).await {
            let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                // Drives the connection; its notifications go to `ntx`.
                while let Some(Ok(message)) =
                    std::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    if let tokio_postgres::AsyncMessage::Notification(_) = message {
                        let _ = ntx.send(());
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
                .await
                .is_ok()
            {
                // Changes made while this listener was not connected were not notified.
                if tx.send(()).is_err() {
                    driver.abort();
                    return;
                }
                while nrx.recv().await.is_some() {
                    if tx.send(()).is_err() {
                        driver.abort();
                        return;
                    }
                }
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn version_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn row_to_record(row: &tokio_postgres::Row) -> Record {
    Record {
        kind: row.get(0),
        id: row.get(1),
        version: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
        blob: row.get(3),
    }
}

async fn insert_on(client: &impl deadpool_postgres::GenericClient, r: &Record) -> Result<()> {
    let res = client
        .execute(
            "INSERT INTO keyward_records (kind, id, version, blob) VALUES ($1, $2, $3, $4)",
            &[&r.kind, &r.id, &version_sql(r.version), &r.blob],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(Error::Duplicate {
            kind: r.kind.clone(),
            id: r.id.clone(),
        }),
        Err(e) => Err(sql(e)),
    }
}

async fn update_on(client: &impl deadpool_postgres::GenericClient, r: &Record) -> Result<()> {
    let expected = r.version.saturating_sub(1);
    let n = client
        .execute(
            "UPDATE keyward_records SET version = $3, blob = $4
              WHERE kind = $1 AND id = $2 AND version = $5",
            &[
                &r.kind,
                &r.id,
                &version_sql(r.version),
                &r.blob,
                &version_sql(expected),
            ],
        )
        .await
        .map_err(sql)?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            kind: r.kind.clone(),
            id: r.id.clone(),
            expected,
        })
    }
}

async fn delete_on(
    client: &impl deadpool_postgres::GenericClient,
    kind: &str,
    id: &str,
    version: u64,
) -> Result<()> {
    let n = client
        .execute(
            "DELETE FROM keyward_records WHERE kind = $1 AND id = $2 AND version = $3",
            &[&kind, &id, &version_sql(version)],
        )
        .await
        .map_err(sql)?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            kind: kind.to_owned(),
            id: id.to_owned(),
            expected: version,
        })
    }
}

impl Backend for PostgresBackend {
    fn get(&self, kind: &str, id: &str) -> Result<Option<Record>> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let row = client
                .query_opt(
                    "SELECT kind, id, version, blob FROM keyward_records
                      WHERE kind = $1 AND id = $2",
                    &[&kind, &id],
                )
                .await
                .map_err(sql)?;
            Ok(row.as_ref().map(row_to_record))
        })
    }

    fn list(&self, kind: &str) -> Result<Vec<Record>> {
        let kind = kind.to_owned();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let rows = client
                .query(
                    "SELECT kind, id, version, blob FROM keyward_records
                      WHERE kind = $1 ORDER BY id",
                    &[&kind],
                )
                .await
                .map_err(sql)?;
            Ok(rows.iter().map(row_to_record).collect())
        })
    }

    fn insert(&self, record: &Record) -> Result<()> {
        self.write_batch(&[Write::Insert(record.clone())])
    }

    fn update(&self, record: &Record) -> Result<()> {
        self.write_batch(&[Write::Update(record.clone())])
    }

    fn delete(&self, kind: &str, id: &str, version: u64) -> Result<()> {
        self.write_batch(&[Write::Delete(kind.to_owned(), id.to_owned(), version)])
    }

    fn kinds(&self) -> Result<Vec<String>> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let rows = client
                .query(
                    "SELECT DISTINCT kind FROM keyward_records ORDER BY kind",
                    &[],
                )
                .await
                .map_err(sql)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn write_batch(&self, writes: &[Write]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let writes = writes.to_vec();
        self.run(|pool| async move {
            let mut client = pool.get().await.map_err(pooled)?;
            let tx = client.transaction().await.map_err(sql)?;
            for w in &writes {
                match w {
                    Write::Insert(r) => insert_on(&tx, r).await?,
                    Write::Update(r) => update_on(&tx, r).await?,
                    Write::Delete(k, i, v) => delete_on(&tx, k, i, *v).await?,
                }
            }
            // Delivered to the other nodes' listeners when (and only if) this commits.
            tx.execute("SELECT pg_notify($1, '')", &[&CHANGES_CHANNEL])
                .await
                .map_err(sql)?;
            // An error above drops `tx`, which rolls back.
            tx.commit().await.map_err(sql)
        })
    }

    fn read_anchor(&self) -> Result<Option<Vec<u8>>> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let row = client
                .query_opt("SELECT blob FROM keyward_anchor", &[])
                .await
                .map_err(sql)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// A transaction-level advisory lock on one pooled connection, waited for at most 10 s
    /// (`lock_timeout`).
    fn lock_writes(&self) -> Result<Option<crate::WriteLock>> {
        let handle = self.handle.clone();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL lock_timeout = '{WRITE_LOCK_TIMEOUT}'"
                ))
                .await
                .map_err(sql)?;
            let taken = client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .await;
            match taken {
                Ok(_) => Ok(Some(Box::new(ClusterWriteLock {
                    client: Some(client),
                    handle,
                }) as crate::WriteLock)),
                Err(e) => {
                    // Closing the connection ends its transaction.
                    drop(deadpool_postgres::Object::take(client));
                    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        Err(unavailable(format!(
                            "another node held the cluster's write lock for more than {WRITE_LOCK_TIMEOUT}"
                        )))
                    } else {
                        Err(sql(e))
                    }
                }
            }
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn put_expiring(&self, id: &str, blob: &[u8], ttl: Duration) -> Result<()> {
        let (id, blob) = (id.to_owned(), blob.to_vec());
        let ttl_s = ttl.as_secs_f64();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client
                .batch_execute("DELETE FROM keyward_expiring WHERE expires_at < now()")
                .await
                .map_err(sql)?;
            client
                .execute(
                    "INSERT INTO keyward_expiring (id, blob, expires_at)
                     VALUES ($1, $2, now() + make_interval(secs => $3))
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &blob, &ttl_s],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }

    fn get_expiring(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let row = client
                .query_opt(
                    "SELECT blob FROM keyward_expiring WHERE id = $1 AND expires_at > now()",
                    &[&id],
                )
                .await
                .map_err(sql)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn version_of(&self, kind: &str, id: &str) -> Result<Option<u64>> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let row = client
                .query_opt(
                    "SELECT version FROM keyward_records WHERE kind = $1 AND id = $2",
                    &[&kind, &id],
                )
                .await
                .map_err(sql)?;
            Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
        })
    }

    fn heartbeat(&self, beat: &crate::NodeBeat) -> Result<()> {
        let beat = beat.clone();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client
                .execute(
                    "INSERT INTO keyward_nodes
                         (node, version, applied_seq, started_at, last_seen, store_seq)
                     VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), now(), $5)
                     ON CONFLICT (node) DO UPDATE SET version = EXCLUDED.version,
                         applied_seq = EXCLUDED.applied_seq, started_at = EXCLUDED.started_at,
                         last_seen = now(), store_seq = EXCLUDED.store_seq",
                    &[
                        &beat.node,
                        &beat.version,
                        &version_sql(beat.applied_seq),
                        &(beat.started_unix_ms as f64),
                        &version_sql(beat.store_seq),
                    ],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }

    fn forget_node(&self, node: &str) -> Result<()> {
        let node = node.to_owned();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client
                .execute("DELETE FROM keyward_nodes WHERE node = $1", &[&node])
                .await
                .map_err(sql)?;
            Ok(())
        })
    }

    fn nodes(&self) -> Result<Vec<crate::NodeBeat>> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            let rows = client
                .query(
                    "SELECT node, version, applied_seq,
                            (extract(epoch FROM started_at) * 1000)::bigint,
                            greatest((extract(epoch FROM now() - last_seen) * 1000)::bigint, 0),
                            store_seq
                       FROM keyward_nodes ORDER BY node",
                    &[],
                )
                .await
                .map_err(sql)?;
            let ms = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(rows
                .iter()
                .map(|r| crate::NodeBeat {
                    node: r.get(0),
                    version: r.get(1),
                    applied_seq: ms(r.get(2)),
                    started_unix_ms: ms(r.get(3)),
                    seen_ms_ago: ms(r.get(4)),
                    store_seq: ms(r.get(5)),
                })
                .collect())
        })
    }

    fn ping(&self) -> Result<()> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client.simple_query("SELECT 1").await.map_err(sql)?;
            Ok(())
        })
    }

    fn subscribe(&self) -> Result<Option<std::sync::mpsc::Receiver<()>>> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle
            .spawn(listen(self.config.clone(), self.tls.clone(), tx));
        Ok(Some(rx))
    }

    fn write_anchor(&self, blob: &[u8]) -> Result<()> {
        let blob = blob.to_vec();
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client
                .execute(
                    "INSERT INTO keyward_anchor (singleton, blob) VALUES (true, $1)
                     ON CONFLICT (singleton) DO UPDATE SET blob = EXCLUDED.blob",
                    &[&blob],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://kw:s3cret@db.example:5432/keyward?sslmode=require"),
            "postgres://kw:***@db.example:5432/keyward?sslmode=require"
        );
        assert_eq!(
            redact("postgres://kw@db/keyward"),
            "postgres://kw@db/keyward"
        );
        assert_eq!(redact("host=db user=kw"), "host=db user=kw");
        let mut options = PostgresOptions::new("postgres://kw:s3cret@db/keyward");
        options.password = Some(Zeroizing::new("other-secret".into()));
        let debug = format!("{options:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("other-secret"),
            "{debug}"
        );
    }

    #[test]
    fn a_ca_file_means_tls_unless_the_url_says_otherwise() {
        assert!(names_sslmode("postgres://h/db?sslmode=disable"));
        assert!(names_sslmode(
            "postgres://h/db?application_name=x&sslmode=require"
        ));
        assert!(!names_sslmode("postgres://h/db?application_name=sslmode"));
        assert!(!names_sslmode("postgres://h/db"));
    }
}
