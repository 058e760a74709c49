//! Property tests: random inputs to every public operation of [`Hsm`].
//!
//! Each test builds one HSM holding a key of every [`KeySpec`] (RSA keys are generated once
//! per test binary and imported by `unwrap_key` under an ECDH-derived AES key whose value the
//! test computes itself), then runs a modest number of random cases against it. For every
//! call the tests check:
//!
//! - no panic;
//! - the outcome (`Ok`, or the error's [`Error::code`]) is the one the documented rules
//!   predict; an error has a non-empty code and message;
//! - a refused call changes no key: `list_keys` of the owner and of an admin are equal before
//!   and after (the audit trail grows by design and is not compared);
//! - successful results are right: signatures verify (also outside the HSM, with aws-lc-rs),
//!   ciphertexts decrypt to the plaintext, wrapped keys unwrap to the same key check value,
//!   derived keys equal the value computed outside;
//! - at the end, the store reopens to the same token keys.

mod common;

mod attributes;
mod derive;
mod directed;
mod encrypt;
mod keys;
mod lookups;
mod regressions;
mod sign;
mod users;
mod wrap;
