//! The NamespaceLifecycle admission of the in-cluster mode (k8s.io/apiserver
//! `plugin/pkg/admission/namespace/lifecycle`): a create in a namespace that does not exist is
//! refused 404 NotFound, and a create in a terminating namespace 403 Forbidden with the
//! `NamespaceTerminating` cause. Updates and deletes are admitted, so kube-controller-manager
//! can empty a terminating namespace (deletecollection per resource).
//!
//! Namespaces are read from the cache of [`crate::kube::namespaces`]; a name the cache has not
//! seen is looked up live before the create is refused, as upstream does, because the
//! namespace may be newer than the cache.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use http::StatusCode;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::http::error::ApiError;
use crate::kube::Client;
use crate::kube::namespaces::{NamespaceCache, Phase};
use crate::rest::admission::{Admission, Attributes, Operation};

/// Refuses creates in missing or terminating namespaces.
#[derive(Debug)]
pub struct NamespaceLifecycle {
    cache: Arc<NamespaceCache>,
    client: Client,
}

impl NamespaceLifecycle {
    /// The admission and the task that keeps its namespace cache current until `shutdown`
    /// ([`crate::kube::reflector::Reflector::run`]); the caller spawns the task.
    pub fn start(
        client: Client,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let cache = Arc::new(NamespaceCache::new());
        let task = cache.clone().run(client.clone(), shutdown);
        (Self { cache, client }, task)
    }

    async fn check(&self, attributes: &Attributes<'_>) -> Result<(), ApiError> {
        if attributes.operation != Operation::Create {
            return Ok(());
        }
        let Some(namespace) = attributes.namespace else {
            return Ok(());
        };
        let phase = match Phase::cached(&self.cache, namespace) {
            Some(phase) => phase,
            None => self.live_phase(namespace).await?,
        };
        match phase {
            Phase::Active => Ok(()),
            Phase::Terminating => Err(terminating(attributes, namespace)),
        }
    }

    /// `GET /api/v1/namespaces/<name>`: its phase, 404 NotFound when it does not exist, 500
    /// when the cluster cannot answer.
    async fn live_phase(&self, name: &str) -> Result<Phase, ApiError> {
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        match self
            .client
            .get::<Namespace>(&format!("/api/v1/namespaces/{encoded}"))
            .await
        {
            Ok(namespace) => Ok(Phase::of(&namespace)),
            Err(error) if error.code() == Some(404) => Err(namespace_not_found(name)),
            Err(error) => Err(ApiError::internal("looking up the namespace", &error)),
        }
    }
}

impl Admission for NamespaceLifecycle {
    fn admit<'a>(&'a self, attributes: &'a Attributes<'a>) -> BoxFuture<'a, Result<(), ApiError>> {
        self.check(attributes).boxed()
    }
}

/// kube's `NewNotFound(v1.Resource("namespaces"), name)`.
fn namespace_not_found(name: &str) -> ApiError {
    ApiError {
        code: StatusCode::NOT_FOUND,
        reason: "NotFound",
        message: format!("namespaces \"{name}\" not found"),
        details: Some(Box::new(json!({"name": name, "kind": "namespaces"}))),
        retry_after_seconds: None,
        continue_token: None,
    }
}

/// kube's `admission.NewForbidden` with the `NamespaceTerminating` cause: the object is named
/// by its name, else its `generateName`, else `Unknown`.
fn terminating(attributes: &Attributes<'_>, namespace: &str) -> ApiError {
    let metadata = attributes.object.map(|o| &o["metadata"]);
    let name = attributes
        .name
        .filter(|n| !n.is_empty())
        .or_else(|| {
            metadata
                .and_then(|m| m["name"].as_str())
                .filter(|n| !n.is_empty())
        })
        .or_else(|| {
            metadata
                .and_then(|m| m["generateName"].as_str())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or("Unknown");
    let resource = format!("{}.{}", attributes.resource, openapi::GROUP);
    ApiError {
        code: StatusCode::FORBIDDEN,
        reason: "Forbidden",
        message: format!(
            "{resource} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
        ),
        details: Some(Box::new(json!({
            "name": name,
            "group": openapi::GROUP,
            "kind": attributes.resource,
            "causes": [{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {namespace} is being terminated"),
                "field": "metadata.namespace",
            }],
        }))),
        retry_after_seconds: None,
        continue_token: None,
    }
}
