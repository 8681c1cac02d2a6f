//! Front-proxy authentication (`k8s.io/apiserver/pkg/authentication/request/headerrequest`):
//! a request whose client certificate chains to the requestheader CA with the `clientAuth`
//! usage, and whose common name is allowed, names its user in headers: the first non-empty
//! user-name header, every value of every group header, and each `<prefix><key>` header as an
//! extra attribute (key lower-cased and percent-decoded).
//!
//! A certificate that does not verify, or an unlisted name, is an error (401), as upstream. A
//! request without a front-proxy certificate is not this authenticator's: its headers are
//! ignored here and removed by [`crate::auth::delegating::DelegatingAuthenticator`].

use std::collections::BTreeMap;
use std::sync::Arc;

use http::request::Parts;

use crate::auth::trust::AuthenticationTrust;
use crate::auth::x509::PeerChain;
use crate::auth::{Authenticator, UserInfo};

/// Authenticates the front proxy's users.
#[derive(Debug)]
pub struct RequestHeaderAuthenticator {
    trust: Arc<AuthenticationTrust>,
}

impl RequestHeaderAuthenticator {
    /// An authenticator reading the current settings of `trust` on each request.
    pub fn new(trust: Arc<AuthenticationTrust>) -> Self {
        Self { trust }
    }
}

impl Authenticator for RequestHeaderAuthenticator {
    fn authenticate(&self, parts: &Parts) -> Result<Option<UserInfo>, String> {
        let trust = self.trust.current();
        let (Some(config), Some(chain)) = (
            trust.request_header.as_ref(),
            parts.extensions.get::<PeerChain>(),
        ) else {
            return Ok(None);
        };
        config
            .ca
            .verify(chain)
            .map_err(|e| format!("verifying the front-proxy certificate: {e}"))?;
        let common_name = chain.common_name();
        if !config.allowed_names.is_empty() && !config.allowed_names.contains(&common_name) {
            return Err(format!(
                "x509: subject with cn={common_name} is not in the allowed list"
            ));
        }
        let headers = &parts.headers;
        let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).trim().to_string();
        let first = |names: &[http::HeaderName]| {
            names
                .iter()
                .flat_map(|h| headers.get_all(h))
                .map(text)
                .find(|v| !v.is_empty())
        };
        let Some(name) = first(&config.username_headers) else {
            return Ok(None);
        };
        let groups = config
            .group_headers
            .iter()
            .flat_map(|h| headers.get_all(h))
            .map(text)
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (header, value) in headers {
            for prefix in &config.extra_headers_prefixes {
                if let Some(key) = header.as_str().strip_prefix(prefix.as_str()) {
                    let key = percent_decode(key).to_ascii_lowercase();
                    extra.entry(key).or_default().push(text(value));
                }
            }
        }
        Ok(Some(UserInfo {
            name,
            groups,
            uid: first(&config.uid_headers).unwrap_or_default(),
            extra,
        }))
    }
}

/// Go's `url.PathUnescape`, leniently: an invalid escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_percent_decoded() {
        assert_eq!(
            percent_decode("authentication.kubernetes.io%2fcredential-id"),
            "authentication.kubernetes.io/credential-id"
        );
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode("x%41"), "xA");
    }
}
