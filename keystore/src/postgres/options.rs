//! Where the database is and how to reach it: the URL (never shown with its password), the
//! password, the CA file and the TLS configuration.

use super::*;

/// Where the cluster's database is and how to log in to it.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// A libpq connection URL, `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=…]`. A password
    /// in it works but is discouraged: use [`password`](Self::password).
    pub url: String,
    /// The password, read from a file or the environment by the caller (never logged).
    pub password: Option<Zeroizing<String>>,
    /// PEM file of the CA certificate(s) that issued the database server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool (at least 1).
    pub pool_size: usize,
}

impl PostgresOptions {
    /// Options for `url`, with no password, no CA file and a pool of 8 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            ca_file: None,
            pool_size: 8,
        }
    }

    /// The URL without its password (for messages and logs).
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &self.redacted_url())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

pub(super) fn tls_config(options: &PostgresOptions) -> Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject as _;
            let file_error = |source| Error::File {
                action: "read the database CA file",
                path: path.display().to_string(),
                source,
            };
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| file_error(std::io::Error::other(e.to_string())))?;
            if certs.is_empty() {
                return Err(file_error(std::io::Error::other(
                    "no CERTIFICATE block in the file",
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| file_error(std::io::Error::other(e.to_string())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(format!("TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Whether the URL names an `sslmode` itself.
pub(super) fn names_sslmode(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://kw:s3cret@db.example:5432/keyward?sslmode=require"),
            "postgres://kw:***@db.example:5432/keyward?sslmode=require"
        );
        assert_eq!(
            redact("postgres://kw@db/keyward"),
            "postgres://kw@db/keyward"
        );
        assert_eq!(redact("host=db user=kw"), "host=db user=kw");
        let mut options = PostgresOptions::new("postgres://kw:s3cret@db/keyward");
        options.password = Some(Zeroizing::new("other-secret".into()));
        let debug = format!("{options:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("other-secret"),
            "{debug}"
        );
    }

    #[test]
    fn a_ca_file_means_tls_unless_the_url_says_otherwise() {
        assert!(names_sslmode("postgres://h/db?sslmode=disable"));
        assert!(names_sslmode(
            "postgres://h/db?application_name=x&sslmode=require"
        ));
        assert!(!names_sslmode("postgres://h/db?application_name=sslmode"));
        assert!(!names_sslmode("postgres://h/db"));
    }
}
