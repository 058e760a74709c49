//! Which upstream pool serves a checked request: the listener's [`crate::upstream::route::Router`]
//! picks the route by host and path; the route names the pool.

use std::sync::{Arc, LazyLock};

use super::authority::HostAuthority;
use super::handler::Handler;
use super::respond::Unserved;
use crate::metrics::RouteRequests;
use crate::upstream::Pool;

/// A request's route (its name and counters) and the pool that serves it.
pub(super) type Routed = (Arc<RouteRequests>, Arc<Pool>);

/// The route label of requests refused before routing or matching no route.
pub(super) static NO_ROUTE: LazyLock<Arc<RouteRequests>> =
    LazyLock::new(|| Arc::new(RouteRequests::new("none")));
/// The route label of a redirect listener's requests.
pub(super) static REDIRECT: LazyLock<Arc<RouteRequests>> =
    LazyLock::new(|| Arc::new(RouteRequests::new("redirect")));

impl Handler {
    /// The route (its name and counters) and its pool; else why not, with the route for the
    /// metrics ([`NO_ROUTE`] when no route matched).
    pub(super) fn route(
        &self,
        host: Option<&HostAuthority>,
        path: &str,
    ) -> Result<Routed, (Unserved, Arc<RouteRequests>)> {
        let host_name = host.map(HostAuthority::name);
        let Some(route) = self.st.router.route(host_name, path) else {
            return Err((Unserved::NoRoute, NO_ROUTE.clone()));
        };
        let requests = route.requests.clone();
        match self.st.pools.get(&route.upstream) {
            Some(pool) => Ok((requests, pool)),
            None => Err((Unserved::PoolMissing, requests)),
        }
    }
}
