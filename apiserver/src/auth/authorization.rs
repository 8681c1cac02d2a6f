//! Authorisation: may this user do what the request asks (`k8s.io/apiserver/pkg/authorization`).
//!
//! [`Authorizer`] is async, because the in-cluster mode's SubjectAccessReview asks
//! kube-apiserver. Standalone mode uses [`StandaloneAuthorizer`]; the in-cluster mode
//! [`DelegatingAuthorizer`] (`system:masters`, the always-allowed paths, then
//! [`SubjectAccessReviewAuthorizer`](crate::auth::subject_access_review::SubjectAccessReviewAuthorizer)).

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

/// A decision and the reason the authoriser gave (a SubjectAccessReview's `status.reason`),
/// which a 403 appends to kube-apiserver's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The decision.
    pub decision: Decision,
    /// Why; empty when the authoriser gives no reason.
    pub reason: String,
}

impl From<Decision> for Authorization {
    fn from(decision: Decision) -> Self {
        Self {
            decision,
            reason: String::new(),
        }
    }
}

/// Decides whether a user may do what a request asks.
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// Resolves to the decision about `request` by `user`.
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        request: &'a RequestInfo,
    ) -> BoxFuture<'a, Authorization>;
}

fn is_master(user: &UserInfo) -> bool {
    user.groups
        .iter()
        .any(|g| g == crate::auth::pki::MASTERS_GROUP)
}

/// Allows members of `system:masters` everything and has no opinion about anyone else.
#[derive(Debug, Default)]
pub struct MastersAuthorizer;

impl Authorizer for MastersAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        _request: &'a RequestInfo,
    ) -> BoxFuture<'a, Authorization> {
        let decision = if is_master(user) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        };
        std::future::ready(decision.into()).boxed()
    }
}

/// Standalone mode: `system:masters` may do everything, and every authenticated user may read
/// discovery, OpenAPI and `/version`, as Kubernetes' `system:discovery` role grants.
#[derive(Debug, Default)]
pub struct StandaloneAuthorizer;

impl Authorizer for StandaloneAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        request: &'a RequestInfo,
    ) -> BoxFuture<'a, Authorization> {
        let open = !request.is_resource_request && is_discovery_path(&request.path);
        let decision = if open || is_master(user) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        };
        std::future::ready(decision.into()).boxed()
    }
}

fn is_discovery_path(path: &str) -> bool {
    path == "/api"
        || path == "/apis"
        || path == "/version"
        || path.starts_with("/api/")
        || path.starts_with("/openapi/")
        || (path.starts_with("/apis/") && path.trim_matches('/').split('/').count() <= 3)
}

/// The in-cluster union (`NewDelegatingAuthorizationOptions`): members of `system:masters` and
/// non-resource requests to an always-allowed path (`--authorization-always-allow-paths`; a
/// trailing `*` matches a prefix) are allowed without a review; everything else asks `reviewer`.
#[derive(Debug)]
pub struct DelegatingAuthorizer {
    always_allow_paths: Vec<String>,
    reviewer: Box<dyn Authorizer>,
}

impl DelegatingAuthorizer {
    /// The union with `always_allow_paths` and `reviewer`.
    pub fn new(always_allow_paths: Vec<String>, reviewer: Box<dyn Authorizer>) -> Self {
        Self {
            always_allow_paths,
            reviewer,
        }
    }

    fn is_always_allowed(&self, request: &RequestInfo) -> bool {
        !request.is_resource_request
            && self
                .always_allow_paths
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => request.path.starts_with(prefix),
                    None => request.path == *pattern,
                })
    }
}

impl Authorizer for DelegatingAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        request: &'a RequestInfo,
    ) -> BoxFuture<'a, Authorization> {
        if is_master(user) || self.is_always_allowed(request) {
            return std::future::ready(Decision::Allow.into()).boxed();
        }
        self.reviewer.authorize(user, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    #[tokio::test]
    async fn only_masters_are_allowed() {
        let info = RequestInfo::default();
        let admin = user("admin", &[crate::auth::pki::MASTERS_GROUP]);
        let bob = user("bob", &["dev"]);
        assert_eq!(
            MastersAuthorizer.authorize(&admin, &info).await.decision,
            Decision::Allow
        );
        assert_eq!(
            MastersAuthorizer.authorize(&bob, &info).await.decision,
            Decision::NoOpinion
        );
    }

    #[test]
    fn discovery_paths_are_recognised() {
        for p in [
            "/api",
            "/apis",
            "/apis/source.toolkit.fluxcd.io",
            "/apis/source.toolkit.fluxcd.io/v1",
            "/openapi/v2",
            "/openapi/v3/apis/source.toolkit.fluxcd.io/v1",
            "/version",
        ] {
            assert!(is_discovery_path(p), "{p}");
        }
        assert!(!is_discovery_path("/metrics"));
    }

    #[derive(Debug)]
    struct Refuse;

    impl Authorizer for Refuse {
        fn authorize<'a>(
            &'a self,
            _: &'a UserInfo,
            _: &'a RequestInfo,
        ) -> BoxFuture<'a, Authorization> {
            std::future::ready(Authorization {
                decision: Decision::Deny,
                reason: "no".into(),
            })
            .boxed()
        }
    }

    #[tokio::test]
    async fn masters_and_always_allowed_paths_skip_the_review() {
        let authorizer =
            DelegatingAuthorizer::new(vec!["/healthz".into(), "/debug/*".into()], Box::new(Refuse));
        let get = |path: &str| RequestInfo::parse(&http::Method::GET, path, None);
        let bob = user("bob", &[]);
        let decide = |u: &UserInfo, path: &str| {
            let info = get(path);
            let u = u.clone();
            let a = &authorizer;
            async move { a.authorize(&u, &info).await.decision }
        };
        assert_eq!(decide(&bob, "/healthz").await, Decision::Allow);
        assert_eq!(decide(&bob, "/debug/pprof").await, Decision::Allow);
        assert_eq!(decide(&bob, "/healthz/etcd").await, Decision::Deny);
        assert_eq!(decide(&bob, "/apis").await, Decision::Deny);
        let admin = user("admin", &[crate::auth::pki::MASTERS_GROUP]);
        assert_eq!(
            decide(&admin, "/apis/source.toolkit.fluxcd.io/v1/ocirepositories").await,
            Decision::Allow
        );
    }
}
