//! Authorisation: may this user do what the request asks (`k8s.io/apiserver/pkg/authorization`).
//!
//! [`Authorizer`] is async, because the aggregated mode's SubjectAccessReview asks
//! kube-apiserver. Standalone mode uses [`MastersAuthorizer`].

use std::fmt;

use futures::future::{BoxFuture, FutureExt};

use crate::auth::UserInfo;
use crate::http::RequestInfo;

/// An authoriser's answer (`authorizer.Decision` upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request is refused (403).
    Deny,
    /// This authoriser has no opinion; the request is refused unless another one allows it.
    NoOpinion,
}

impl Decision {
    /// `true` only for [`Decision::Allow`].
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Decides whether a user may do what a request asks.
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// Resolves to the decision about `request` by `user`.
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        request: &'a RequestInfo,
    ) -> BoxFuture<'a, Decision>;
}

/// Allows members of `system:masters` everything and has no opinion about anyone else
/// (standalone mode; SubjectAccessReview comes with the aggregated mode).
#[derive(Debug, Default)]
pub struct MastersAuthorizer;

impl Authorizer for MastersAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        _request: &'a RequestInfo,
    ) -> BoxFuture<'a, Decision> {
        let decision = if user
            .groups
            .iter()
            .any(|g| g == crate::auth::pki::MASTERS_GROUP)
        {
            Decision::Allow
        } else {
            Decision::NoOpinion
        };
        std::future::ready(decision).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_masters_are_allowed() {
        let info = RequestInfo::default();
        let admin = UserInfo {
            name: "admin".into(),
            groups: vec![crate::auth::pki::MASTERS_GROUP.into()],
        };
        let bob = UserInfo {
            name: "bob".into(),
            groups: vec!["dev".into()],
        };
        assert_eq!(
            MastersAuthorizer.authorize(&admin, &info).await,
            Decision::Allow
        );
        assert_eq!(
            MastersAuthorizer.authorize(&bob, &info).await,
            Decision::NoOpinion
        );
    }
}
