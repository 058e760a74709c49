//! The HSM on a PostgreSQL store (`--store postgres://…`, `[hsm] store`) and clusters of
//! nodes sharing one, through the real binary and the SDK, against a real PostgreSQL server
//! that the test process starts (`keyward_keystore::test_util::TestPostgres`), one database
//! per test. One module per subject; `common` starts clusters and runs the CLI and SDK.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod keyless;
mod nodes;
mod outage;
mod proxies;
mod sdk;
mod store;
