//! Routing by Host and path prefix to upstream pools.
//!
//! The rules are those documented on [`keyward_config::RouteConfig`]: an exact host beats a
//! wildcard host (`*.example.com`, exactly one label in place of `*`), which beats a route
//! without a host; among routes of the same host class the longest `path_prefix` wins, and
//! ties go to the route that comes first in the configuration. A prefix matches whole path
//! segments: `/api` matches `/api`, `/api/` and `/api/x` but not `/apix`; a prefix ending in
//! `/` (such as `/` itself) matches every path that starts with it.
//!
//! [`Router::new`] sorts the routes once into that order, so [`Router::route`] is a linear
//! scan that returns the first match and allocates nothing.

use std::sync::Arc;

use keyward_config::RouteConfig;

use crate::metrics::RouteRequests;

/// A matched route: its name (the metrics label) and its pool's name.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) upstream: String,
    /// Its `keyward_http_requests_total` counters.
    pub(crate) requests: Arc<RouteRequests>,
}

impl Route {
    fn new(name: &str, upstream: &str) -> Route {
        Route {
            name: name.to_owned(),
            upstream: upstream.to_owned(),
            requests: Arc::new(RouteRequests::new(name)),
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        (&self.name, &self.upstream) == (&other.name, &other.upstream)
    }
}
impl Eq for Route {}

/// Which hosts a route accepts; the variant order is the precedence order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HostMatch {
    /// Exactly this lower-case host.
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: one non-empty label, then this suffix.
    Wildcard(String),
    /// Any host, and requests without one.
    Any,
}

impl HostMatch {
    fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(h), Some(host)) => h == host,
            (HostMatch::Wildcard(suffix), Some(host)) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            (_, None) => false,
        }
    }
}

/// One route, ready to match.
#[derive(Debug, Clone)]
struct Entry {
    host: HostMatch,
    path_prefix: String,
    route: Route,
}

/// Whether `prefix` matches `path` on whole segments.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// Routes of the configuration, plus a listener's fallback pool.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    /// In precedence order: host class, then longest prefix, then configuration order.
    entries: Vec<Entry>,
    fallback: Option<Route>,
}

impl Router {
    /// Compiles `routes` (as validated by `keyward_config`: hosts lower-case, prefixes
    /// starting with `/`). `fallback`: the pool used when no route matches (route name
    /// `default` in metrics).
    pub(crate) fn new(routes: &[RouteConfig], fallback: Option<String>) -> Router {
        let mut entries: Vec<(usize, Entry)> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let host = match r.host.as_deref().map(|h| h.trim_end_matches('.')) {
                    None => HostMatch::Any,
                    Some(h) => match h.strip_prefix('*') {
                        Some(suffix) => HostMatch::Wildcard(suffix.to_ascii_lowercase()),
                        None => HostMatch::Exact(h.to_ascii_lowercase()),
                    },
                };
                let entry = Entry {
                    host,
                    path_prefix: r.path_prefix.clone(),
                    route: Route::new(&r.name, &r.upstream),
                };
                (i, entry)
            })
            .collect();
        entries.sort_by(|(ia, a), (ib, b)| {
            let class = |h: &HostMatch| match h {
                HostMatch::Exact(_) => 0u8,
                HostMatch::Wildcard(_) => 1,
                HostMatch::Any => 2,
            };
            class(&a.host)
                .cmp(&class(&b.host))
                .then(b.path_prefix.len().cmp(&a.path_prefix.len()))
                .then(ia.cmp(ib))
        });
        Router {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            fallback: fallback.map(|upstream| Route::new("default", &upstream)),
        }
    }

    /// The route for a request, or the fallback, or `None` when neither applies.
    ///
    /// `host`: the name normalised by [`crate::http_layer::authority::normalize`] (lower-case, without
    /// the trailing dot and the port); `None` when the request has no Host. `path`: the
    /// request path, without the query. Allocates nothing.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.entries
            .iter()
            .find(|e| e.host.matches(host) && prefix_matches(&e.path_prefix, path))
            .map(|e| &e.route)
            .or(self.fallback.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds validated routes the way the binary does: through `keyward_config`.
    fn routes(toml_routes: &str) -> Vec<RouteConfig> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyward.toml");
        let pools: String = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|p| format!("[upstreams.{p}]\nservers = [\"http://127.0.0.1:1\"]\n"))
            .collect();
        std::fs::write(
            &file,
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:8443\"\n\
                 [[listeners.certificates]]\nkey_label = \"web\"\nchain_file = \"web.pem\"\n\
                 {pools}{toml_routes}"
            ),
        )
        .unwrap();
        keyward_config::Config::load(&file, Vec::new())
            .unwrap()
            .routes
    }

    #[test]
    fn precedence_table() {
        let r = routes(
            r#"
[[routes]]
upstream = "a"
[[routes]]
upstream = "b"
path_prefix = "/api"
[[routes]]
upstream = "c"
host = "WWW.Example.com"
[[routes]]
upstream = "d"
host = "*.example.com"
path_prefix = "/api"
[[routes]]
upstream = "e"
host = "www.example.com"
path_prefix = "/static/"
[[routes]]
name = "deep"
upstream = "g"
path_prefix = "/api/v2"
"#,
        );
        let router = Router::new(&r, Some("fallback".into()));
        let cases: &[(Option<&str>, &str, &str)] = &[
            // Any host: longest prefix, whole segments (the configuration refuses duplicates).
            (None, "/", "a"),
            (None, "/apix", "a"),
            (None, "/api", "b"),
            (None, "/api/", "b"),
            (None, "/api/x", "b"),
            (None, "/api/v2", "g"),
            (None, "/api/v2/users", "g"),
            (None, "/api/v20", "b"),
            (Some("other.test"), "/api/x", "b"),
            // Exact host beats everything, longest prefix within it.
            (Some("www.example.com"), "/api/v2", "c"),
            (Some("www.example.com"), "/static/x", "e"),
            (Some("www.example.com"), "/static", "c"),
            // Wildcard: one label only; falls through to any-host routes when its path fails.
            (Some("api.example.com"), "/api/x", "d"),
            (Some("api.example.com"), "/other", "a"),
            (Some("a.b.example.com"), "/api", "b"),
            (Some("example.com"), "/api", "b"),
        ];
        for (host, path, want) in cases {
            let got = router.route(*host, path).unwrap();
            assert_eq!(&got.upstream, want, "host {host:?} path {path:?}");
        }
        assert_eq!(router.route(None, "/api/v2").unwrap().name, "deep");
        assert_eq!(router.route(None, "/").unwrap().name, "a:0");
    }

    #[test]
    fn fallback_and_none() {
        let r = routes(
            r#"
[[routes]]
upstream = "a"
host = "*.example.com"
path_prefix = "/only"
"#,
        );
        let with = Router::new(&r, Some("b".into()));
        assert_eq!(
            with.route(Some("x.example.com"), "/only/1"),
            Some(&Route::new("a:0", "a"))
        );
        assert_eq!(
            with.route(Some("x.example.com"), "/else"),
            Some(&Route::new("default", "b"))
        );
        assert_eq!(with.route(None, "/only"), with.fallback.as_ref());
        let without = Router::new(&r, None);
        assert_eq!(without.route(Some("x.example.org"), "/only"), None);
        assert_eq!(Router::new(&[], None).route(Some("a"), "/"), None);
    }

    #[test]
    fn prefix_segments() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api/", "/api"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(!prefix_matches("/api", "/"));
    }
}
