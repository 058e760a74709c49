//! The request's authority (HTTP/2 `:authority`, an absolute-form target's authority, or the
//! `Host` header), normalised once per request before anything routes on it.
//!
//! RFC 9110 §7.2 and §4.2.3: the host is case-insensitive and may end in one `.` (the DNS
//! root); RFC 3986 §3.2.2/§3.2.3 give the shapes of the host (`reg-name`, IPv4, bracketed IPv6)
//! and the port (`*DIGIT`). A proxy that routes by name must compare one canonical form, or
//! `Example.test.` and `example.test` reach different pools, and a malformed name such as
//! `example.test..` or `.` misses its vhost and falls through to a default pool that belongs
//! to someone else. [`normalize`] therefore accepts only:
//!
//! - a DNS-style name: labels of ASCII letters, digits, `-` and `_`, separated by single dots,
//!   at most [`MAX_NAME_BYTES`] bytes once the one optional trailing dot is removed; returned
//!   lower-case, without that dot;
//! - a bracketed IPv6 address (`[::1]`, no zone id), returned as written but lower-case;
//! - then an optional `:port` of one to five digits that fits in a `u16`.
//!
//! Everything else (an empty name, `.` or `..`, an empty label anywhere, user info,
//! percent-encoding, other characters, a name over 253 bytes, an empty or invalid port) is an
//! [`AuthorityError`]; the request is refused with `400`.

use std::fmt;

/// The longest name accepted, in bytes, without the trailing dot (RFC 1035 §2.3.4: 255 bytes
/// on the wire are 253 characters of text).
pub(crate) const MAX_NAME_BYTES: usize = 253;

/// A normalised authority: `name` lower-case without the trailing dot (or a bracketed IPv6
/// address), and the port if one was given; also the text as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostAuthority {
    name: String,
    port: Option<u16>,
    received: String,
}

impl HostAuthority {
    /// The host name to route on: lower-case, no trailing dot, no port.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The port, if the client named one.
    #[cfg(test)]
    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    /// The authority as the client sent it (valid, since it normalised): forwarded upstream
    /// in `Host`, `X-Forwarded-Host` and `Forwarded`, as nginx's `$http_host` is.
    pub(crate) fn received(&self) -> &str {
        &self.received
    }
}

impl fmt::Display for HostAuthority {
    /// The normalised form: `name` or `name:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Why an authority was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthorityError {
    /// No name at all (`""`, `.`, `:443`).
    EmptyName,
    /// Two dots in a row, or a leading dot, or two trailing dots (`a..b`, `.a`, `a..`, `..`).
    EmptyLabel,
    /// A byte outside letters, digits, `-`, `_` and the dots (e.g. `@`, `%`, `*`, a space, or
    /// a colon outside brackets).
    InvalidCharacter,
    /// A name over [`MAX_NAME_BYTES`] bytes.
    TooLong,
    /// A port that is empty, not all digits, or above 65535.
    InvalidPort,
    /// A bracketed literal that is not a plain IPv6 address.
    InvalidIpLiteral,
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyName => "empty host name",
            Self::EmptyLabel => "empty label in the host name",
            Self::InvalidCharacter => "invalid character in the host name",
            Self::TooLong => "host name longer than 253 bytes",
            Self::InvalidPort => "invalid port",
            Self::InvalidIpLiteral => "invalid IPv6 literal",
        })
    }
}

/// Normalises `raw` (the `Host` header value or the URI authority, as received): see the
/// module documentation. Allocates the result's two strings.
///
/// # Errors
/// An [`AuthorityError`] naming the first problem found.
pub(crate) fn normalize(raw: &str) -> Result<HostAuthority, AuthorityError> {
    let (host, port) = split_port(raw)?;
    if let Some(literal) = host.strip_prefix('[') {
        let inner = literal
            .strip_suffix(']')
            .ok_or(AuthorityError::InvalidIpLiteral)?;
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AuthorityError::InvalidIpLiteral);
        }
        return Ok(HostAuthority {
            name: host.to_ascii_lowercase(),
            port,
            received: raw.to_owned(),
        });
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err(AuthorityError::EmptyName);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(AuthorityError::TooLong);
    }
    let mut previous_dot = true; // A leading dot is an empty first label.
    for b in name.bytes() {
        match b {
            b'.' if previous_dot => return Err(AuthorityError::EmptyLabel),
            b'.' => previous_dot = true,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => previous_dot = false,
            _ => return Err(AuthorityError::InvalidCharacter),
        }
    }
    if previous_dot {
        // Only reachable through a second trailing dot (`a..` became `a.`).
        return Err(AuthorityError::EmptyLabel);
    }
    Ok(HostAuthority {
        name: name.to_ascii_lowercase(),
        port,
        received: raw.to_owned(),
    })
}

/// Splits `host[:port]`; the host keeps its brackets. A colon inside brackets is part of the
/// IPv6 literal; any other colon but the last is left in the host (and refused there).
fn split_port(raw: &str) -> Result<(&str, Option<u16>), AuthorityError> {
    let colon = match raw.rfind(':') {
        Some(i) if !raw[i..].contains(']') => i,
        _ => return Ok((raw, None)),
    };
    let (host, digits) = (&raw[..colon], &raw[colon + 1..]);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthorityError::InvalidPort);
    }
    let port = digits
        .parse::<u16>()
        .map_err(|_| AuthorityError::InvalidPort)?;
    Ok((host, Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> (String, Option<u16>) {
        let a = normalize(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        (a.name().to_owned(), a.port())
    }

    #[test]
    fn names_are_lower_cased_with_one_trailing_dot_and_the_port_split_off() {
        assert_eq!(ok("Example.TEST"), ("example.test".into(), None));
        assert_eq!(ok("example.test."), ("example.test".into(), None));
        assert_eq!(
            ok("example.test.:8443"),
            ("example.test".into(), Some(8443))
        );
        assert_eq!(ok("localhost:0"), ("localhost".into(), Some(0)));
        assert_eq!(ok("a_b-c.test:65535"), ("a_b-c.test".into(), Some(65535)));
        assert_eq!(ok("127.0.0.1:443"), ("127.0.0.1".into(), Some(443)));
        assert_eq!(ok("[::1]"), ("[::1]".into(), None));
        assert_eq!(
            ok("[2001:DB8::1]:8443"),
            ("[2001:db8::1]".into(), Some(8443))
        );
        assert_eq!(
            normalize("WWW.Example.test.:8443").unwrap().to_string(),
            "www.example.test:8443"
        );
        let longest = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        assert_eq!(longest.len(), MAX_NAME_BYTES);
        assert_eq!(ok(&format!("{longest}.")).0, longest);
    }

    #[test]
    fn empty_labels_bad_characters_long_names_and_bad_ports_are_refused() {
        use AuthorityError::*;
        let cases: &[(&str, AuthorityError)] = &[
            ("", EmptyName),
            (".", EmptyName),
            (":443", EmptyName),
            (".:443", EmptyName),
            ("..", EmptyLabel),
            ("...", EmptyLabel),
            ("example.test..", EmptyLabel),
            ("example.test..:443", EmptyLabel),
            (".example.test", EmptyLabel),
            ("example..test", EmptyLabel),
            ("user@example.test", InvalidCharacter),
            ("exa mple.test", InvalidCharacter),
            ("ex%41mple.test", InvalidCharacter),
            ("*.example.test", InvalidCharacter),
            ("exämple.test", InvalidCharacter),
            ("::1", InvalidCharacter),
            ("a:b:443", InvalidCharacter),
            ("example.test:", InvalidPort),
            ("example.test:65536", InvalidPort),
            ("example.test:+443", InvalidPort),
            ("example.test:000443", InvalidPort),
            ("example.test:https", InvalidPort),
            ("[::1", InvalidIpLiteral),
            ("[fe80::1%25eth0]", InvalidIpLiteral),
            ("[v1.fe]", InvalidIpLiteral),
            ("[127.0.0.1]", InvalidIpLiteral),
            ("[::1]x", InvalidIpLiteral),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(*want), "{raw:?}");
        }
        let too_long = format!("{}.{}", "a".repeat(127), "b".repeat(126));
        assert_eq!(normalize(&too_long), Err(TooLong));
    }

    /// A label of the accepted alphabet, mixed case.
    fn label() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_-]{1,12}"
    }

    proptest! {
        /// Valid names come back lower-case, without the trailing dot, port split off.
        #[test]
        fn valid_names_normalise_to_their_lower_case_form(
            labels in prop::collection::vec(label(), 1..6),
            trailing_dot in any::<bool>(),
            port in prop::option::of(any::<u16>()),
        ) {
            let name = labels.join(".");
            let mut raw = name.clone();
            if trailing_dot {
                raw.push('.');
            }
            if let Some(p) = port {
                raw.push_str(&format!(":{p}"));
            }
            let a = normalize(&raw).unwrap();
            prop_assert_eq!(a.name(), name.to_ascii_lowercase());
            prop_assert_eq!(a.port(), port);
        }

        /// An empty label anywhere (leading dot, doubled dot, two trailing dots) is refused,
        /// whatever the rest of the name.
        #[test]
        fn an_empty_label_anywhere_is_refused(
            labels in prop::collection::vec(label(), 0..5),
            at in any::<prop::sample::Index>(),
            port in prop::option::of(any::<u16>()),
        ) {
            let mut parts = labels.clone();
            parts.insert(at.index(labels.len() + 1), String::new());
            let mut raw = parts.join(".");
            if raw.ends_with('.') || raw.is_empty() {
                // An empty last label is a trailing dot: add a second one.
                raw.push('.');
            }
            if let Some(p) = port {
                raw.push_str(&format!(":{p}"));
            }
            let r = normalize(&raw);
            prop_assert!(
                matches!(r, Err(AuthorityError::EmptyLabel | AuthorityError::EmptyName)),
                "{:?} gave {:?}", raw, r
            );
        }

        /// Whatever the input: no panic, and an accepted name is canonical (normalising it
        /// again gives itself), lower-case, within the length limit, without empty labels.
        #[test]
        fn accepted_names_are_canonical(raw in "[a-zA-Z0-9._:@%\\[\\] -]{0,40}") {
            if let Ok(a) = normalize(&raw) {
                let again = normalize(&a.to_string()).unwrap();
                prop_assert_eq!((again.name(), again.port()), (a.name(), a.port()));
                prop_assert_eq!(a.received(), raw.as_str());
                prop_assert!(a.name().len() <= MAX_NAME_BYTES);
                prop_assert!(!a.name().bytes().any(|b| b.is_ascii_uppercase()));
                if !a.name().starts_with('[') {
                    prop_assert!(a.name().split('.').all(|l| !l.is_empty()));
                }
            }
        }

        /// Case never changes the verdict or the result.
        #[test]
        fn case_does_not_matter(raw in "[a-zA-Z0-9.:]{0,30}") {
            let key = |r: Result<HostAuthority, AuthorityError>| r.map(|a| (a.name, a.port));
            prop_assert_eq!(key(normalize(&raw)), key(normalize(&raw.to_ascii_uppercase())));
        }
    }
}
