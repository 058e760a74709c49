//! Test support for backends and for code above them (feature `test-util`, enabled only
//! through dev-dependencies; no release build contains it).
//!
//! - [`MemoryBackend`]: a [`Backend`](crate::Backend) in process memory, for tests that need
//!   no file (clones share one store, like two connections to one database).
//! - [`conformance`]: the checks every backend must pass, one function per contract of the
//!   [`Backend`](crate::Backend) trait; [`backend_conformance_tests!`](crate::backend_conformance_tests)
//!   turns them into one `#[test]` each for a backend constructor.
//! - [`TestPostgres`]: a real PostgreSQL server for the test process (started on first use,
//!   stopped when the process exits) and fresh databases in it.
//! - [`RecordingBackend`]: wraps a backend, records every batch written through it and can
//!   fail the next batches, to show what a caller writes together and what a failed write
//!   leaves behind.

pub mod conformance;
mod memory;
mod postgres;
mod recording;

pub use memory::MemoryBackend;
pub use postgres::TestPostgres;
pub use recording::{BatchLog, RecordingBackend};
