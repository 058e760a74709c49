//! `[listeners.client_auth]`: mutual TLS, and the header that carries the client
//! certificate's subject to the upstream.

use std::path::PathBuf;

use figment::value::magic::RelativePathBuf;
use serde::Deserialize;

use crate::check::{is_header_name, is_reserved_header, Context};
use crate::{yes, Error};

/// `[listeners.client_auth]`: mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientAuthConfig {
    /// `ca_file`: PEM bundle of the CAs that issue client certificates.
    pub ca_file: PathBuf,
    /// `required`: refuse handshakes without a client certificate. Default true.
    pub required: bool,
    /// `subject_header`: request header carrying the verified certificate's subject (RFC 4514
    /// string) to the upstream; a client's own header of that name is removed. Default
    /// `X-Client-Cert-Subject`.
    pub subject_header: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [listeners.client_auth] table")]
pub(crate) struct RawClientAuth {
    ca_file: RelativePathBuf,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default = "default_subject_header")]
    subject_header: String,
}

fn default_subject_header() -> String {
    "X-Client-Cert-Subject".into()
}

impl RawClientAuth {
    /// The listener's client authentication; `cx` is the `client_auth` table,
    /// `request_id_header` the listener's (the subject header must differ from it).
    pub(crate) fn validate(
        self,
        cx: &Context<'_>,
        request_id_header: &str,
    ) -> Result<ClientAuthConfig, Error> {
        if !is_header_name(&self.subject_header)
            || is_reserved_header(&self.subject_header)
            || self.subject_header.eq_ignore_ascii_case(request_id_header)
        {
            return Err(cx.invalid(
                "subject_header",
                "must be a header name of its own (not Host, framing, hop-by-hop or forwarding headers, nor the request id header)",
            ));
        }
        Ok(ClientAuthConfig {
            ca_file: self.ca_file.relative(),
            required: self.required,
            subject_header: self.subject_header,
        })
    }
}
