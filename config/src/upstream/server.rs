//! One server of an upstream pool: the URLs in `[upstream] url` and `[upstreams.NAME] servers`.

/// The scheme of an upstream server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// `http://`: HTTP/1.1 over TCP.
    Http,
    /// `https://`: HTTP/1.1 over TLS.
    Https,
    /// `tcp://`: a byte stream (for `tcp` listeners).
    Tcp,
}

/// One server of a pool, parsed from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamServer {
    /// The URL as configured, without a trailing `/`.
    pub url: String,
    /// `http`, `https` or `tcp`.
    pub scheme: UpstreamScheme,
    /// `host:port` (port filled in: 80, 443).
    pub authority: String,
    /// The host alone (no brackets for IPv6), for TLS server names.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path prefix prepended to request paths (`""` when none).
    pub prefix: String,
}

/// Parses an upstream server URL: `http://HOST[:PORT][/PREFIX]`, `https://...`, or
/// `tcp://HOST:PORT`; no user info, query or fragment.
pub(crate) fn parse_server(url: &str) -> Result<UpstreamServer, &'static str> {
    let url = url.trim_end_matches('/');
    let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
        (UpstreamScheme::Http, r, Some(80))
    } else if let Some(r) = url.strip_prefix("https://") {
        (UpstreamScheme::Https, r, Some(443))
    } else if let Some(r) = url.strip_prefix("tcp://") {
        (UpstreamScheme::Tcp, r, None)
    } else {
        return Err("must start with http://, https:// or tcp://");
    };
    if url.contains('?') || url.contains('#') {
        return Err("must not have a query or a fragment");
    }
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host: SCHEME://HOST[:PORT][/PREFIX]");
    }
    if scheme == UpstreamScheme::Tcp && !prefix.is_empty() {
        return Err("a tcp:// server has no path: tcp://HOST:PORT");
    }
    if prefix
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err("the path prefix must not contain spaces or control characters");
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("must name a host: SCHEME://HOST[:PORT][/PREFIX]");
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err("the port must be 1 to 65535"),
        },
        None => default_port.ok_or("a tcp:// server needs a port: tcp://HOST:PORT")?,
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(UpstreamServer {
        url: url.to_owned(),
        scheme,
        authority,
        host: host.to_owned(),
        port,
        prefix: prefix.to_owned(),
    })
}

/// `HOST[:PORT]` or `[IPV6][:PORT]` → the host (no brackets) and the port's text, if any.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [ in an IPv6 address")?;
        match after {
            "" => Ok((h, None)),
            p => Ok((h, Some(p.strip_prefix(':').ok_or("bad port")?))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => Ok((h, Some(p))),
            None => Ok((authority, None)),
        }
    }
}
