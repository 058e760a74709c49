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

mod cluster;
mod options;
mod records;
mod schema;

use cluster::CHANGES_CHANNEL;
pub use options::PostgresOptions;
use options::{names_sslmode, tls_config};
use records::*;
pub use schema::SCHEMA_VERSION;

/// How long a call waits for a free pooled connection, or for a new one to be made, before
/// it fails with [`Error::Unavailable`].
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

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
                    Write::Rewrite(r) => rewrite_on(&tx, r).await?,
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

    fn lock_writes(&self) -> Result<Option<crate::WriteLock>> {
        // The cluster methods are inherent methods of the same name in `cluster.rs`.
        PostgresBackend::lock_writes(self)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn put_expiring(&self, id: &str, blob: &[u8], ttl: Duration) -> Result<()> {
        PostgresBackend::put_expiring(self, id, blob, ttl)
    }

    fn get_expiring(&self, id: &str) -> Result<Option<Vec<u8>>> {
        PostgresBackend::get_expiring(self, id)
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
        PostgresBackend::heartbeat(self, beat)
    }

    fn forget_node(&self, node: &str) -> Result<()> {
        PostgresBackend::forget_node(self, node)
    }

    fn nodes(&self) -> Result<Vec<crate::NodeBeat>> {
        PostgresBackend::nodes(self)
    }

    fn ping(&self) -> Result<()> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pooled)?;
            client.simple_query("SELECT 1").await.map_err(sql)?;
            Ok(())
        })
    }

    fn subscribe(&self) -> Result<Option<std::sync::mpsc::Receiver<()>>> {
        PostgresBackend::subscribe(self)
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
