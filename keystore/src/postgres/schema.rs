//! The schema: its versioned migrations, applied at open in one transaction under an
//! advisory lock.

use super::*;

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
impl PostgresBackend {
    /// Applies the migrations this database lacks, in one transaction under an advisory
    /// lock (two nodes starting at once migrate once). `create`: make the version table if
    /// missing; else a database without one is [`Error::NotFound`].
    pub(super) fn migrate(&self, create: bool) -> Result<()> {
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
