//! Statements on `keyward_records`, shared by single writes and batches.

use super::*;

pub(super) fn version_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn row_to_record(row: &tokio_postgres::Row) -> Record {
    Record {
        kind: row.get(0),
        id: row.get(1),
        version: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
        blob: row.get(3),
    }
}

pub(super) async fn insert_on(
    client: &impl deadpool_postgres::GenericClient,
    r: &Record,
) -> Result<()> {
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

pub(super) async fn update_on(
    client: &impl deadpool_postgres::GenericClient,
    r: &Record,
) -> Result<()> {
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

pub(super) async fn rewrite_on(
    client: &impl deadpool_postgres::GenericClient,
    r: &Record,
) -> Result<()> {
    let n = client
        .execute(
            "UPDATE keyward_records SET blob = $4 WHERE kind = $1 AND id = $2 AND version = $3",
            &[&r.kind, &r.id, &version_sql(r.version), &r.blob],
        )
        .await
        .map_err(sql)?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            kind: r.kind.clone(),
            id: r.id.clone(),
            expected: r.version,
        })
    }
}

pub(super) async fn delete_on(
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
