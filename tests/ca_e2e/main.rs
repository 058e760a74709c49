//! The issuing CA end to end against a real node (`keyward hsm serve`), every artefact checked
//! by OpenSSL: a root and an intermediate whose keys stay in the HSM, a TLS server certificate
//! issued from an OpenSSL CSR (`openssl verify`), the profile's refusals (a name outside the
//! policy, a 1024-bit RSA key, a bad CSR signature), a proxy key certified from its CSR and
//! served by `keyward serve` to curl, revocation into the CRL (`openssl crl`, `openssl verify
//! -crl_check`), the OCSP responder (`openssl ocsp`: `revoked`, `good`, signature OK), and a
//! proxy renewing its certificate from the CA in its own HSM while it serves; certificates
//! pointing at the CRL and the OCSP responder, which a relying party then uses.
//!
//! Files: `issuing.rs` (CAs, issuance, refusals, the proxy serving a CA certificate),
//! `revocation.rs` (CRL, OCSP, sub-CAs held to their parent), `renewal.rs` (the proxy renews
//! its certificate, local and remote mode), `pointers.rs` (CRL and OCSP URLs in certificates,
//! the responder's reuse and bounds); `common.rs` the shared helpers.

#[path = "../support/mod.rs"]
mod support;

mod common;
mod issuing;
mod pointers;
mod renewal;
mod revocation;
