//! Routing by Host and path prefix. (Stub: being built.)

use keyward_config::RouteConfig;

/// A matched route: its name (the metrics label) and its pool's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) upstream: String,
}

/// Routes of the configuration, plus a listener's fallback pool.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    routes: Vec<RouteConfig>,
    fallback: Option<Route>,
}

impl Router {
    /// `fallback`: the pool used when no route matches (named `default` in metrics).
    pub(crate) fn new(routes: &[RouteConfig], fallback: Option<String>) -> Router {
        Router {
            routes: routes.to_vec(),
            fallback: fallback.map(|upstream| Route {
                name: "default".into(),
                upstream,
            }),
        }
    }

    /// `host`: lower-case, without port. `path`: the request path.
    pub(crate) fn route(&self, _host: Option<&str>, _path: &str) -> Option<&Route> {
        let _ = &self.routes;
        self.fallback.as_ref()
    }
}
