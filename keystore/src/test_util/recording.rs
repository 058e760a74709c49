//! [`RecordingBackend`]: a backend wrapper that records each batch and can fail them.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Backend, Error, Record, Result, Write};

/// Wraps a backend: every [`Backend::write_batch`] is recorded in a shared [`BatchLog`] (also
/// the ones that fail), and the log can make the next batches fail before they reach the
/// inner backend. Single writes (`insert`, `update`, `delete`) and the anchor pass through
/// and are counted apart.
#[derive(Debug)]
pub struct RecordingBackend<B> {
    inner: B,
    log: BatchLog,
}

/// The shared view of a [`RecordingBackend`]: what was written, and failure injection. Clones
/// share the log.
#[derive(Clone, Debug, Default)]
pub struct BatchLog {
    state: Arc<Mutex<LogState>>,
}

#[derive(Debug, Default)]
struct LogState {
    batches: Vec<Vec<Write>>,
    single_writes: usize,
    fail_batches: usize,
}

impl<B: Backend> RecordingBackend<B> {
    /// Wraps `inner`; returns the wrapper and its log.
    pub fn new(inner: B) -> (Self, BatchLog) {
        let log = BatchLog::default();
        (
            Self {
                inner,
                log: log.clone(),
            },
            log,
        )
    }
}

impl BatchLog {
    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every batch written so far (failed ones included), in order.
    pub fn batches(&self) -> Vec<Vec<Write>> {
        self.state().batches.clone()
    }

    /// Forgets the batches and single writes recorded so far.
    pub fn clear(&self) {
        let mut s = self.state();
        s.batches.clear();
        s.single_writes = 0;
    }

    /// How many `insert`, `update` and `delete` calls (outside batches) were made.
    pub fn single_writes(&self) -> usize {
        self.state().single_writes
    }

    /// Makes the next `n` batches fail with [`Error::Io`] without writing anything.
    pub fn fail_next_batches(&self, n: usize) {
        self.state().fail_batches = n;
    }
}

/// The error an injected batch failure returns.
fn injected() -> Error {
    Error::Io {
        path: "<recording backend>".into(),
        source: std::io::Error::other("injected batch failure"),
    }
}

impl<B: Backend> Backend for RecordingBackend<B> {
    fn get(&self, kind: &str, id: &str) -> Result<Option<Record>> {
        self.inner.get(kind, id)
    }

    fn list(&self, kind: &str) -> Result<Vec<Record>> {
        self.inner.list(kind)
    }

    fn insert(&self, record: &Record) -> Result<()> {
        self.log.state().single_writes += 1;
        self.inner.insert(record)
    }

    fn update(&self, record: &Record) -> Result<()> {
        self.log.state().single_writes += 1;
        self.inner.update(record)
    }

    fn delete(&self, kind: &str, id: &str, version: u64) -> Result<()> {
        self.log.state().single_writes += 1;
        self.inner.delete(kind, id, version)
    }

    fn kinds(&self) -> Result<Vec<String>> {
        self.inner.kinds()
    }

    fn write_batch(&self, writes: &[Write]) -> Result<()> {
        {
            let mut s = self.log.state();
            s.batches.push(writes.to_vec());
            if s.fail_batches > 0 {
                s.fail_batches -= 1;
                return Err(injected());
            }
        }
        self.inner.write_batch(writes)
    }

    fn read_anchor(&self) -> Result<Option<Vec<u8>>> {
        self.inner.read_anchor()
    }

    fn write_anchor(&self, blob: &[u8]) -> Result<()> {
        self.inner.write_anchor(blob)
    }
}
