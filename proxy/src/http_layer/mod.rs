//! The HTTP layer: one decrypted client connection's requests, from the first byte to the
//! upstream's response. (Named `http_layer`, not `http`, so as not to shadow the `http`
//! crate.)
//!
//! - serving a connection: [`h1guard`] inspects HTTP/1.1 framing under hyper (smuggling
//!   guard: [`h1guard::head`] and [`h1guard::chunked`]); [`h2`] serves HTTP/2 streams;
//! - one request, in [`handler`]: [`check`] (refusals), [`route`] (route and pool),
//!   [`rewrite`] (headers), [`forward`] (to [`crate::upstream`] and back);
//! - [`respond`]: every status the proxy chooses, and how refusals are counted and logged;
//! - helpers: [`authority`] (Host normalisation), [`headers`], [`body`].

pub(crate) mod authority;
mod body;
mod check;
mod forward;
pub(crate) mod h1guard;
pub(crate) mod h2;
pub(crate) mod handler;
mod headers;
pub(crate) mod respond;
mod rewrite;
mod route;
