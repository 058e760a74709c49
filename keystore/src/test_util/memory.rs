//! [`MemoryBackend`]: the [`Backend`] contract over a `BTreeMap`, for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Backend, Error, Record, Result, Write};

/// A [`Backend`] held in process memory: nothing is durable beyond the process.
///
/// Clones share one store, so a test can hand one to an HSM and open the same records again
/// with another (as two connections open one database file).
#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Default, Clone)]
struct State {
    records: BTreeMap<(String, String), Record>,
    anchor: Option<Vec<u8>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// An empty store with no rollback anchor.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every call changes the state in one step (batches on a copy), so a panic elsewhere
        // cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(kind: &str, id: &str) -> (String, String) {
    (kind.to_owned(), id.to_owned())
}

fn conflict(kind: &str, id: &str, expected: u64) -> Error {
    Error::VersionConflict {
        kind: kind.to_owned(),
        id: id.to_owned(),
        expected,
    }
}

fn insert_in(records: &mut BTreeMap<(String, String), Record>, record: &Record) -> Result<()> {
    let k = key(&record.kind, &record.id);
    if records.contains_key(&k) {
        return Err(Error::Duplicate {
            kind: record.kind.clone(),
            id: record.id.clone(),
        });
    }
    records.insert(k, record.clone());
    Ok(())
}

fn update_in(records: &mut BTreeMap<(String, String), Record>, record: &Record) -> Result<()> {
    let expected = record.version.saturating_sub(1);
    match records.get_mut(&key(&record.kind, &record.id)) {
        Some(stored) if stored.version == expected => {
            *stored = record.clone();
            Ok(())
        }
        _ => Err(conflict(&record.kind, &record.id, expected)),
    }
}

fn rewrite_in(records: &mut BTreeMap<(String, String), Record>, record: &Record) -> Result<()> {
    match records.get_mut(&key(&record.kind, &record.id)) {
        Some(stored) if stored.version == record.version => {
            stored.blob = record.blob.clone();
            Ok(())
        }
        _ => Err(conflict(&record.kind, &record.id, record.version)),
    }
}

fn delete_in(
    records: &mut BTreeMap<(String, String), Record>,
    kind: &str,
    id: &str,
    version: u64,
) -> Result<()> {
    let k = key(kind, id);
    match records.get(&k) {
        Some(stored) if stored.version == version => {
            records.remove(&k);
            Ok(())
        }
        _ => Err(conflict(kind, id, version)),
    }
}

impl Backend for MemoryBackend {
    fn get(&self, kind: &str, id: &str) -> Result<Option<Record>> {
        Ok(self.state().records.get(&key(kind, id)).cloned())
    }

    fn list(&self, kind: &str) -> Result<Vec<Record>> {
        Ok(self
            .state()
            .records
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn insert(&self, record: &Record) -> Result<()> {
        insert_in(&mut self.state().records, record)
    }

    fn update(&self, record: &Record) -> Result<()> {
        update_in(&mut self.state().records, record)
    }

    fn delete(&self, kind: &str, id: &str, version: u64) -> Result<()> {
        delete_in(&mut self.state().records, kind, id, version)
    }

    fn kinds(&self) -> Result<Vec<String>> {
        let mut kinds: Vec<String> = self
            .state()
            .records
            .keys()
            .map(|(k, _)| k.clone())
            .collect();
        kinds.dedup();
        Ok(kinds)
    }

    fn write_batch(&self, writes: &[Write]) -> Result<()> {
        let mut state = self.state();
        let mut records = state.records.clone();
        for w in writes {
            match w {
                Write::Insert(r) => insert_in(&mut records, r)?,
                Write::Update(r) => update_in(&mut records, r)?,
                Write::Delete(k, i, v) => delete_in(&mut records, k, i, *v)?,
                Write::Rewrite(r) => rewrite_in(&mut records, r)?,
            }
        }
        state.records = records;
        Ok(())
    }

    fn read_anchor(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.state().anchor.clone())
    }

    fn write_anchor(&self, blob: &[u8]) -> Result<()> {
        self.state().anchor = Some(blob.to_vec());
        Ok(())
    }
}
