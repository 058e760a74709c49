//! What several nodes on one database need beyond records: the write lock, change
//! notifications, heartbeats and short-lived shared entries.

use super::*;

/// The advisory lock key that serializes the nodes' writes ([`Backend::lock_writes`]).
const WRITE_LOCK: i64 = 0x6b65_7977_6172_6402;

/// How long a node waits for another node's write to finish before it gives up
/// ([`Error::Unavailable`]).
const WRITE_LOCK_TIMEOUT: &str = "10s";

/// The `NOTIFY` channel of committed changes.
pub(super) const CHANGES_CHANNEL: &str = "keyward_changes";

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

impl PostgresBackend {
    /// A transaction-level advisory lock on one pooled connection, waited for at most 10 s
    /// (`lock_timeout`).
    pub(super) fn lock_writes(&self) -> Result<Option<crate::WriteLock>> {
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

    pub(super) fn put_expiring(&self, id: &str, blob: &[u8], ttl: Duration) -> Result<()> {
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

    pub(super) fn get_expiring(&self, id: &str) -> Result<Option<Vec<u8>>> {
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

    pub(super) fn heartbeat(&self, beat: &crate::NodeBeat) -> Result<()> {
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

    pub(super) fn forget_node(&self, node: &str) -> Result<()> {
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

    pub(super) fn nodes(&self) -> Result<Vec<crate::NodeBeat>> {
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

    pub(super) fn subscribe(&self) -> Result<Option<std::sync::mpsc::Receiver<()>>> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle
            .spawn(listen(self.config.clone(), self.tls.clone(), tx));
        Ok(Some(rx))
    }
}
