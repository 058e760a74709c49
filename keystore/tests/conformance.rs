//! The backend conformance suite (`keyward_keystore::test_util::conformance`) run against
//! every backend of this crate.

use std::path::Path;

mod sqlite {
    use super::Path;
    keyward_keystore::backend_conformance_tests!(|dir: &Path| {
        keyward_keystore::SqliteBackend::create(&dir.join("keyward.sqlite3")).unwrap()
    });
}

mod memory {
    use super::Path;
    keyward_keystore::backend_conformance_tests!(|_: &Path| {
        keyward_keystore::test_util::MemoryBackend::new()
    });
}

mod postgres {
    use super::Path;
    use keyward_keystore::test_util::TestPostgres;
    // A fresh database per check on the test process's own PostgreSQL server.
    keyward_keystore::backend_conformance_tests!(|_: &Path| {
        keyward_keystore::PostgresBackend::create(&TestPostgres::shared().new_store_options())
            .unwrap()
    });
}
