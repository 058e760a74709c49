//! The TLS keys of a `[[listeners]]` table: `tls_versions`, `cipher_suites` and `kx_groups`.
//!
//! Cipher suites and key-exchange groups are parsed once, here, into [`CipherSuite`] and
//! [`KxGroup`]: values named exactly as rustls's aws-lc-rs provider names them (their `Debug`
//! form), so the proxy picks rustls's suite or group by comparing names.

use std::fmt;

use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(expecting = "\"1.2\" or \"1.3\"")]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "1.3")]
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

/// Cipher suite names rustls's aws-lc-rs provider knows.
pub const CIPHER_SUITES: [&str; 9] = [
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Key-exchange groups offered by default, preferred first.
pub const DEFAULT_KX_GROUPS: [&str; 4] = ["X25519MLKEM768", "X25519", "secp256r1", "secp384r1"];

/// An enum whose variants are spelled as rustls spells them, with `ALL`, `name()`, `Display`,
/// and equality with the name as a string (`listener.kx_groups[0] == "X25519"`, and
/// `format!("{:?}", rustls_suite) == suite` in the proxy).
macro_rules! rustls_named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)+ }
    ) => {
        $(#[$meta])*
        #[allow(
            non_camel_case_types,
            clippy::upper_case_acronyms,
            reason = "spelled as rustls and the IANA registries spell them, as in the configuration"
        )]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the names are listed in the error messages.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name as written in the configuration and as rustls's `Debug` prints it.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }

            /// The value named `name` (exact spelling), if any.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.name() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.name()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.name()
            }
        }
    };
}

rustls_named! {
    /// A TLS cipher suite of rustls's aws-lc-rs provider (`cipher_suites`).
    pub enum CipherSuite {
        /// TLS 1.3, AES-128-GCM, SHA-256 (RFC 8446 §B.4).
        TLS13_AES_128_GCM_SHA256,
        /// TLS 1.3, AES-256-GCM, SHA-384 (RFC 8446 §B.4).
        TLS13_AES_256_GCM_SHA384,
        /// TLS 1.3, ChaCha20-Poly1305, SHA-256 (RFC 8446 §B.4).
        TLS13_CHACHA20_POLY1305_SHA256,
        /// TLS 1.2, ECDHE with ECDSA, AES-128-GCM (RFC 5289).
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        /// TLS 1.2, ECDHE with ECDSA, AES-256-GCM (RFC 5289).
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        /// TLS 1.2, ECDHE with ECDSA, ChaCha20-Poly1305 (RFC 7905).
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        /// TLS 1.2, ECDHE with RSA, AES-128-GCM (RFC 5289).
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        /// TLS 1.2, ECDHE with RSA, AES-256-GCM (RFC 5289).
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        /// TLS 1.2, ECDHE with RSA, ChaCha20-Poly1305 (RFC 7905).
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    }
}

rustls_named! {
    /// A key-exchange group of rustls's aws-lc-rs provider (`kx_groups`).
    pub enum KxGroup {
        /// X25519 combined with ML-KEM-768 (post-quantum hybrid).
        X25519MLKEM768,
        /// X25519 (RFC 7748).
        X25519,
        /// NIST P-256.
        secp256r1,
        /// NIST P-384.
        secp384r1,
    }
}

/// `tls_versions`: at least one; `cx` is the listener's table.
pub(crate) fn check_versions(cx: &Context<'_>, versions: &[TlsVersion]) -> Result<(), Error> {
    if versions.is_empty() {
        return Err(cx.invalid("tls_versions", "must name at least one version"));
    }
    Ok(())
}

/// `cipher_suites`, each a name in [`CIPHER_SUITES`]; `cx` is the listener's table.
pub(crate) fn parse_cipher_suites(
    cx: &Context<'_>,
    names: &[String],
) -> Result<Vec<CipherSuite>, Error> {
    names
        .iter()
        .map(|s| {
            CipherSuite::from_name(s).ok_or_else(|| {
                cx.invalid(
                    "cipher_suites",
                    format!(
                        "unknown cipher suite {s:?} (known: {})",
                        CIPHER_SUITES.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// `kx_groups`: at least one, each a name in [`DEFAULT_KX_GROUPS`]; `cx` is the listener's
/// table.
pub(crate) fn parse_kx_groups(cx: &Context<'_>, names: &[String]) -> Result<Vec<KxGroup>, Error> {
    if names.is_empty() {
        return Err(cx.invalid("kx_groups", "must name at least one group"));
    }
    names
        .iter()
        .map(|g| {
            KxGroup::from_name(g).ok_or_else(|| {
                cx.invalid(
                    "kx_groups",
                    format!(
                        "unknown group {g:?} (known: {})",
                        DEFAULT_KX_GROUPS.join(", ")
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_have_the_names_the_messages_list() {
        let suites: Vec<&str> = CipherSuite::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(suites, CIPHER_SUITES);
        let groups: Vec<&str> = KxGroup::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(groups, DEFAULT_KX_GROUPS);
        for s in CipherSuite::ALL {
            assert_eq!(format!("{s:?}"), s.name());
            assert_eq!(CipherSuite::from_name(&s.to_string()), Some(*s));
        }
        assert_eq!(KxGroup::from_name("x25519"), None);
        // The proxy's comparison: rustls's name (a `String` from `Debug`) against the value.
        let rustls_name: String = "secp256r1".to_owned();
        assert!(rustls_name == KxGroup::secp256r1);
        assert!(KxGroup::ALL[0] == "X25519MLKEM768");
    }
}
