//! The upstream layer: pools of servers, balancing, passive and active health, retries,
//! upstream TLS and layer-4 connects.
//!
//! Where things are: [`route`] maps a request's host and path to a pool (the HTTP layer asks
//! it in `crate::http_layer::route`); [`pool`] sends a request ([`Pool::send_counted`]) and
//! opens layer-4 connections; [`balance`] picks a server; [`health`] ejects failing servers
//! and runs active checks; [`server`] is one server's address and counters; [`connect`]
//! makes the client connections (TCP, TLS) and tells a stale pooled connection.
//!
//! A [`Pool`] is built from one `[upstreams.NAME]` table. HTTP pools own one hyper-util
//! legacy [`Client`](hyper_util::client::legacy::Client) (HTTP/1.1 keep-alive, idle connections per server capped by
//! `pool_max_idle_per_host` and never reused once idle for `pool_idle_timeout_ms`) whose
//! connector ([`connect`]) speaks plain TCP to `http://` servers and TLS (rustls, aws-lc-rs)
//! to `https://` servers, the whole connect (TCP and TLS handshake) bounded by
//! `connect_timeout_ms`; plus a second client without idle connections, for requests that
//! must go out on a new connection.
//!
//! A server receives requests while it is *healthy*: not passively ejected and not failing its
//! active health check. Every state is an atomic, so the request path takes no lock:
//!
//! - **Balancing** among healthy servers: `round_robin` takes the next one of a shared atomic
//!   counter; `least_requests` picks two distinct servers at random and takes the one with
//!   fewer requests in flight ("power of two choices").
//! - **Passive ejection**: `max_fails` consecutive failures (connect error, response timeout)
//!   eject a server for `fail_timeout_ms`; one success resets the count. A server whose
//!   window has passed is tried again, and its next failure ejects it again at once, since
//!   the failures are still consecutive.
//! - **Active checks** ([`Pools::start_health_checks`]): every `interval_ms`, `GET
//!   {prefix}{path}` with `Host` set to the server's authority; a healthy server becomes
//!   unhealthy after `fall` consecutive failed checks, an unhealthy one healthy after `rise`
//!   consecutive passes.
//! - **Retries**: a request whose connection to a server could not be established (refused,
//!   connect timeout, TLS handshake failure) is sent to another healthy server, up to
//!   `retries` times, if its method is idempotent (RFC 9110 §9.2.2).
//! - **Stale pooled connections** ([`connect::stale`]): a request that failed on a pooled
//!   connection the server had closed (it was handed back unwritten, or, for an idempotent
//!   method, it was written but not one response byte came back on that connection, reused
//!   or not) is sent once more, to the same server on a new connection. That does not count against `retries` and is not a
//!   failure of the server (nginx does the same for its cached connections). Anything else
//!   that reached a server is never re-sent.
//!
//! `keyward_upstream_healthy{pool,server}` is 1 while a server is healthy and 0 otherwise;
//! `keyward_upstream_request_duration_seconds{pool}` observes each request from sending to
//! its response headers; `keyward_upstream_retries_total{pool,reason}` counts the requests
//! sent again (`connect`, `unsent`, `closed_idle`).

mod balance;
mod connect;
mod health;
mod pool;
pub(crate) mod route;
mod server;

pub(crate) use health::HealthChecks;
pub(crate) use pool::{Pool, Pools, UpstreamError, UpstreamRequest};
pub(crate) use server::InFlight;

#[cfg(test)]
mod tests;
