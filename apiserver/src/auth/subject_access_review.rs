//! Authorisation by SubjectAccessReview (`k8s.io/apiserver/plugin/pkg/authorizer/webhook`):
//! the user and the request's attributes are posted to kube-apiserver's
//! `/apis/authorization.k8s.io/v1/subjectaccessreviews`. Resource requests carry verb, group,
//! version, resource, subresource, namespace and name; other paths carry path and verb.
//! Answers are cached under the review's spec, allowing ones for
//! `--authorization-webhook-cache-authorized-ttl` and denying ones for
//! `--authorization-webhook-cache-unauthorized-ttl` (10 s each). A failed call is not cached
//! and refuses the request (upstream's NoOpinion).

use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};

use crate::auth::UserInfo;
use crate::auth::authorization::{Authorization, Authorizer, Decision};
use crate::auth::ttl_cache::TtlCache;
use crate::http::RequestInfo;
use crate::kube::Client;

/// The API path of SubjectAccessReviews.
const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// Cache lifetimes of answers.
#[derive(Clone, Copy, Debug)]
pub struct CacheTtls {
    /// For allowing answers.
    pub authorized: Duration,
    /// For denying answers.
    pub unauthorized: Duration,
}

/// Asks kube-apiserver.
#[derive(Debug)]
pub struct SubjectAccessReviewAuthorizer {
    client: Client,
    ttls: CacheTtls,
    cache: TtlCache<String, Authorization>,
}

impl SubjectAccessReviewAuthorizer {
    /// Reviews with `client`, caching answers for `ttls`.
    pub fn new(client: Client, ttls: CacheTtls) -> Self {
        Self {
            client,
            ttls,
            cache: TtlCache::default(),
        }
    }

    async fn review(&self, spec: SubjectAccessReviewSpec) -> Authorization {
        let key = serde_json::to_string(&spec).unwrap_or_default();
        if let Some(answer) = self.cache.get(&key) {
            return answer;
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let answer: SubjectAccessReview =
            match self.client.create(SUBJECT_ACCESS_REVIEWS, &review).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(%error, "SubjectAccessReview failed");
                    return Authorization {
                        decision: Decision::NoOpinion,
                        reason: "the SubjectAccessReview failed".into(),
                    };
                }
            };
        let status = answer.status.unwrap_or_default();
        let decision = if status.allowed {
            Decision::Allow
        } else if status.denied == Some(true) {
            Decision::Deny
        } else {
            Decision::NoOpinion
        };
        let mut reason = status.reason.unwrap_or_default();
        if let Some(error) = status.evaluation_error.filter(|e| !e.is_empty()) {
            tracing::debug!(%error, "SubjectAccessReview evaluation error");
            if reason.is_empty() {
                reason = error;
            }
        }
        let authorization = Authorization { decision, reason };
        let ttl = if decision.is_allowed() {
            self.ttls.authorized
        } else {
            self.ttls.unauthorized
        };
        self.cache.insert(key, authorization.clone(), ttl);
        authorization
    }
}

/// The review's spec for `user` doing `request` (`webhook.go` `resourceAttributesFrom`).
pub fn review_spec(user: &UserInfo, request: &RequestInfo) -> SubjectAccessReviewSpec {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut spec = SubjectAccessReviewSpec {
        user: some(&user.name),
        uid: some(&user.uid),
        groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        ..Default::default()
    };
    if request.is_resource_request {
        spec.resource_attributes = Some(ResourceAttributes {
            namespace: request.namespace.clone(),
            verb: Some(request.verb.as_str().to_string()),
            group: some(&request.api_group),
            version: some(&request.api_version),
            resource: some(&request.resource),
            subresource: request.subresource.clone(),
            name: request.name.clone(),
            ..Default::default()
        });
    } else {
        spec.non_resource_attributes = Some(NonResourceAttributes {
            path: Some(request.path.clone()),
            verb: Some(request.verb.as_str().to_string()),
        });
    }
    spec
}

impl Authorizer for SubjectAccessReviewAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        request: &'a RequestInfo,
    ) -> BoxFuture<'a, Authorization> {
        self.review(review_spec(user, request)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_and_non_resource_attributes() {
        let user = UserInfo {
            name: "alice".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            uid: "42".into(),
            extra: [("scopes".to_string(), vec!["a".to_string()])].into(),
        };
        let info = RequestInfo::parse(
            &http::Method::PUT,
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/ns/ocirepositories/app/status",
            None,
        );
        let spec = serde_json::to_value(review_spec(&user, &info)).unwrap();
        assert_eq!(
            spec,
            serde_json::json!({
                "user": "alice", "uid": "42", "groups": ["dev", "system:authenticated"],
                "extra": {"scopes": ["a"]},
                "resourceAttributes": {"namespace": "ns", "verb": "update",
                    "group": "source.toolkit.fluxcd.io", "version": "v1",
                    "resource": "ocirepositories", "subresource": "status", "name": "app"}
            })
        );
        let info = RequestInfo::parse(&http::Method::GET, "/openapi/v2", None);
        let spec = serde_json::to_value(review_spec(&user, &info)).unwrap();
        assert_eq!(
            spec["nonResourceAttributes"],
            serde_json::json!({"path": "/openapi/v2", "verb": "get"})
        );
    }
}
