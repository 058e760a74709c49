//! `[[routes]]`: which pool a request goes to, by Host and path prefix.

use serde::Deserialize;

use crate::check::{check_host_pattern, Context};
use crate::upstream::{is_tcp_pool, Pools};
use crate::Error;

/// `[[routes]]`: requests whose Host and path match go to `upstream`.
///
/// Matching: exact host before wildcard host (`*.example.com`, one label) before any host
/// (no `host`); within those, the longest `path_prefix` wins; ties go to the first in the
/// file. A prefix matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteConfig {
    /// `name`: the `route` label in metrics and logs. Default `upstream` + `:` + index.
    pub name: String,
    /// `host`: exact (`www.example.com`) or wildcard (`*.example.com`); absent = any.
    pub host: Option<String>,
    /// `path_prefix`: default `/`.
    pub path_prefix: String,
    /// `upstream`: the pool's name.
    pub upstream: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[routes]] table")]
pub(crate) struct RawRoute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default = "default_path_prefix")]
    path_prefix: String,
    upstream: String,
}

fn default_path_prefix() -> String {
    "/".into()
}

/// The `[[routes]]` in file order; `cx` is the top level, `pools` the validated pools.
pub(crate) fn validate_routes(
    cx: &Context<'_>,
    raw: Vec<RawRoute>,
    pools: &Pools,
) -> Result<Vec<RouteConfig>, Error> {
    let mut routes: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let table = cx.item("routes", i);
        let route = r.validate(&table, i, pools)?;
        if routes
            .iter()
            .any(|o| o.host == route.host && o.path_prefix == route.path_prefix)
        {
            return Err(table.invalid(
                "path_prefix",
                "another route has the same host and path_prefix",
            ));
        }
        routes.push(route);
    }
    Ok(routes)
}

impl RawRoute {
    /// Route `index`; `cx` is its table.
    fn validate(self, cx: &Context<'_>, index: usize, pools: &Pools) -> Result<RouteConfig, Error> {
        if !pools.contains_key(&self.upstream) {
            return Err(cx.invalid("upstream", "names no [upstreams.NAME] pool"));
        }
        if is_tcp_pool(pools, &self.upstream) {
            return Err(cx.invalid("upstream", "names a tcp:// pool; routes need an HTTP pool"));
        }
        let host = match self.host {
            Some(h) => Some(check_host_pattern(&h).map_err(|m| cx.invalid("host", m))?),
            None => None,
        };
        if !self.path_prefix.starts_with('/')
            || self.path_prefix.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(cx.invalid("path_prefix", "must start with / and have no spaces"));
        }
        Ok(RouteConfig {
            name: self
                .name
                .unwrap_or_else(|| format!("{}:{index}", self.upstream)),
            host,
            path_prefix: self.path_prefix,
            upstream: self.upstream,
        })
    }
}
