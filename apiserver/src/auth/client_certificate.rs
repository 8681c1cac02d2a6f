//! The in-cluster mode's client-certificate authenticator (`k8s.io/apiserver/pkg/authentication/
//! request/x509`): the presented [`PeerChain`] verified against the client CA that
//! [`AuthenticationTrust`] holds now (flags or the `extension-apiserver-authentication`
//! ConfigMap, reloaded), user = CN and groups = O.

use std::sync::Arc;

use crate::auth::trust::AuthenticationTrust;
use crate::auth::x509::PeerChain;

/// Client certificates against the current client CA (user = CN, groups = O), as upstream's
/// x509 authenticator: a certificate that does not verify is an error (401).
#[derive(Debug)]
pub struct X509Authenticator {
    trust: Arc<AuthenticationTrust>,
}

impl X509Authenticator {
    /// An authenticator reading the current client CA of `trust` on each request.
    pub fn new(trust: Arc<AuthenticationTrust>) -> Self {
        Self { trust }
    }
}

impl crate::auth::Authenticator for X509Authenticator {
    fn authenticate(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<crate::auth::UserInfo>, String> {
        let trust = self.trust.current();
        let (Some(ca), Some(chain)) = (&trust.client_ca, parts.extensions.get::<PeerChain>())
        else {
            return Ok(None);
        };
        ca.verify(chain)
            .map_err(|e| format!("verifying the client certificate: {e}"))?;
        Ok(Some(crate::auth::UserInfo {
            name: chain.common_name(),
            groups: chain.organizations(),
            ..Default::default()
        }))
    }
}
