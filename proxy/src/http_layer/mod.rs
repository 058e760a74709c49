//! HTTP.

pub(crate) mod authority;
pub(crate) mod h1guard;
pub(crate) mod h2;
pub(crate) mod handler;
pub(crate) mod headers;
pub(crate) mod respond;
