//! HTTP.

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
