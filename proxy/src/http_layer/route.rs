//! Which upstream pool serves a checked request: the listener's [`crate::upstream::route::Router`]
//! picks the route by host and path; the route names the pool.

use std::sync::Arc;

use super::authority::HostAuthority;
use super::handler::Handler;
use super::respond::Unserved;
use crate::upstream::Pool;

impl Handler {
    /// The route's name and its pool; else why not, with the route name for the metrics
    /// (`none` when no route matched).
    pub(super) fn route(
        &self,
        host: Option<&HostAuthority>,
        path: &str,
    ) -> Result<(String, Arc<Pool>), (Unserved, String)> {
        let host_name = host.map(HostAuthority::name);
        let Some(route) = self.st.router.route(host_name, path) else {
            return Err((Unserved::NoRoute, "none".into()));
        };
        let route_name = route.name.clone();
        match self.st.pools.get(&route.upstream) {
            Some(pool) => Ok((route_name, pool)),
            None => Err((Unserved::PoolMissing, route_name)),
        }
    }
}
