//! The PKCS#11 v2.40 module `libkeyward_pkcs11.so` (crate `pkcs11/`) loaded by real clients
//! against a real node (`keyward hsm serve`) with crypto-users alice, bob and carol: OpenSC's
//! `pkcs11-tool` with signatures checked by `openssl` (`tool`, `tool_crypt`), python-pkcs11 and
//! a ctypes binding for every mechanism, the CKR codes of the contract, other users' keys and
//! fork() (`python`, which runs the Python files beside this one).
//!
//! The module must be built first (`cargo build -p keyward-pkcs11`, which scripts/test does):
//! it is a cdylib that `cargo test` does not build for this test. Each test starts its own
//! node in a temporary folder; the module reads that node from `KEYWARD_PKCS11_CONF`.

#[path = "../support/mod.rs"]
mod support;

mod cert_login;
mod common;
mod python;
mod tool;
mod tool_crypt;
