//! Validation's context and the checks several tables share.
//!
//! A [`Context`] knows the key path of the table being validated (`listeners[1]`,
//! `upstreams.api.health_check`) and how to find which source set a key, so a table's
//! validation names its keys by their short names and every error still names the full key
//! and the file or environment variable it came from.

use ipnet::IpNet;

use crate::Error;

/// Where validation stands: the table being checked and how to find where a key came from.
pub(crate) struct Context<'a> {
    /// The source (file path or environment variable) of the value at a full key path.
    source_of: &'a dyn Fn(&str) -> String,
    /// The table's key path; empty at the top level.
    table: String,
}

impl<'a> Context<'a> {
    /// The top level of the configuration.
    pub(crate) fn new(source_of: &'a dyn Fn(&str) -> String) -> Self {
        Context {
            source_of,
            table: String::new(),
        }
    }

    /// The top level, from inside any table (for keys that belong to another table).
    pub(crate) fn root(&self) -> Context<'a> {
        Context::new(self.source_of)
    }

    /// The table `name` inside this one: `table("proxy_protocol")`.
    pub(crate) fn table(&self, name: &str) -> Context<'a> {
        Context {
            source_of: self.source_of,
            table: self.key(name),
        }
    }

    /// Element `index` of the array of tables `name`: `item("listeners", 1)` is
    /// `listeners[1]`.
    pub(crate) fn item(&self, name: &str, index: usize) -> Context<'a> {
        self.table(&format!("{name}[{index}]"))
    }

    /// The full path of `key` in this table: `listeners[1].alpn`.
    pub(crate) fn key(&self, key: &str) -> String {
        if self.table.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.table)
        }
    }

    /// The error for `key` of this table.
    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> Error {
        self.invalid_at(self.key(key), message.into())
    }

    /// The error for this table as a whole (`listeners[0].certificates[1]`).
    pub(crate) fn invalid_table(&self, message: impl Into<String>) -> Error {
        self.invalid_at(self.table.clone(), message.into())
    }

    /// `key` must be greater than 0.
    pub(crate) fn positive(&self, key: &str, value: u64) -> Result<(), Error> {
        if value == 0 {
            Err(self.invalid(key, "must be greater than 0"))
        } else {
            Ok(())
        }
    }

    /// `key`'s list of addresses or CIDR blocks (`10.0.0.0/8`, `127.0.0.1`), parsed.
    pub(crate) fn nets(&self, key: &str, list: &[String]) -> Result<Vec<IpNet>, Error> {
        list.iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        self.invalid(key, format!("{c:?} is not an address or CIDR block"))
                    })
            })
            .collect()
    }

    fn invalid_at(&self, key: String, message: String) -> Error {
        Error::Invalid {
            source_name: (self.source_of)(&key),
            key,
            message,
        }
    }
}

/// Whether `name` is a valid HTTP header field name (RFC 9110 §5.1 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the proxy sets or that frame the message: not usable for ids or subjects.
pub(crate) fn is_reserved_header(name: &str) -> bool {
    const RESERVED: [&str; 16] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "expect",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A host name in a route or server name list: lower-cased, `*.` allowed first.
pub(crate) fn check_host_pattern(host: &str) -> Result<String, &'static str> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let bare = h.strip_prefix("*.").unwrap_or(&h);
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || bare.split('.').any(str::is_empty)
    {
        return Err("must be a host name such as www.example.com or *.example.com (no port)");
    }
    Ok(h)
}
