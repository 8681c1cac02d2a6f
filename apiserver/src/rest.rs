//! REST semantics for our resources (reference: aggregated-apiserver.md §3): get, list, watch,
//! create, update, patch, delete, deletecollection, the `status` subresource and the `artifact`
//! subresource; plus the documents beside them (discovery, OpenAPI) and field ownership.
//!
//! Reads go storage → convert to the requested version → requested shape ([`render`]). Every
//! write goes through one pipeline (`rest/pipeline.rs`): decode → convert → default → admit
//! ([`admission`]) → validate → managed fields ([`managed_fields`]) → storage → render; the
//! handlers (`write` for create, update and delete, `patch` for patch and apply) only say
//! how the object to write is made from the body.

pub mod admission;
pub mod discovery;
pub mod managed_fields;
pub mod openapi_protobuf;
mod options;
mod patch;
mod pipeline;
mod read;
pub mod render;
mod watch;
mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::Request;

use openapi::{ResourceInfo, Version};

use crate::auth::UserInfo;
use crate::http::error::ApiError;
use crate::http::negotiate::{self, Shape};
use crate::http::request_info::{RequestInfo, Verb};
use crate::http::state::AppState;
use crate::rest::admission::Admission;

pub(crate) use options::Options;
use render::Renderer;

/// Largest request body accepted (bytes): kube-apiserver's limit is 3 MiB for objects.
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// One request on one of our resources, with everything parsed once.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) state: AppState,
    pub(crate) admission: Arc<dyn Admission>,
    pub(crate) user: UserInfo,
    pub(crate) info: RequestInfo,
    pub(crate) resource: &'static ResourceInfo,
    pub(crate) version: Version,
    pub(crate) options: Options,
    pub(crate) renderer: Renderer,
}

impl Call {
    /// The storage key of the resource.
    pub(crate) fn resource_key(&self) -> storage::ResourceKey {
        storage::ResourceKey {
            group: openapi::GROUP.to_string(),
            resource: self.resource.plural.to_string(),
        }
    }

    /// The storage key of the named object (404 when the path names none).
    pub(crate) fn object_key(&self) -> Result<storage::ObjectKey, ApiError> {
        match (&self.info.namespace, &self.info.name) {
            (Some(namespace), Some(name)) => Ok(storage::ObjectKey {
                resource: self.resource_key(),
                namespace: namespace.clone(),
                name: name.clone(),
            }),
            _ => Err(ApiError::no_route()),
        }
    }

    /// The storage key of the object called `name` in the request's namespace (405 when the
    /// request names no namespace).
    pub(crate) fn key_of(&self, name: &str) -> Result<storage::ObjectKey, ApiError> {
        match &self.info.namespace {
            Some(namespace) => Ok(storage::ObjectKey {
                resource: self.resource_key(),
                namespace: namespace.clone(),
                name: name.to_owned(),
            }),
            None => Err(ApiError::no_route()),
        }
    }

    /// The stored object the path names, with its key.
    ///
    /// # Errors
    /// 404 when the path names no object or it does not exist; storage failures.
    pub(crate) async fn stored(&self) -> Result<(storage::ObjectKey, serde_json::Value), ApiError> {
        let key = self.object_key()?;
        let stored = self
            .state
            .store
            .get(&key)
            .await
            .map_err(|e| self.storage_error(e))?;
        Ok((key, stored))
    }

    /// The store's current revision.
    ///
    /// # Errors
    /// 504 `ResourceVersionTooLarge` when `requested` is newer (client-go waits and retries);
    /// storage failures.
    pub(crate) async fn current_revision_not_older_than(
        &self,
        requested: u64,
    ) -> Result<u64, ApiError> {
        let current = self
            .state
            .store
            .current_revision()
            .await
            .map_err(|e| self.storage_error(e))?
            .0;
        if requested > current {
            return Err(ApiError::resource_version_too_large(requested, current));
        }
        Ok(current)
    }

    /// The name in the path (empty for collections).
    pub(crate) fn name(&self) -> &str {
        self.info.name.as_deref().unwrap_or("")
    }

    /// A storage failure about the object in the path, as the client sees it.
    pub(crate) fn storage_error(&self, err: storage::Error) -> ApiError {
        self.storage_error_for(self.name(), err)
    }

    /// A storage failure about the object called `name`, as the client sees it.
    pub(crate) fn storage_error_for(&self, name: &str, err: storage::Error) -> ApiError {
        crate::http::error::from_storage(self.resource, name, err)
    }

    /// What admission is told about this request's write.
    pub(crate) fn attributes<'a>(
        &'a self,
        operation: admission::Operation,
        name: Option<&'a str>,
        object: Option<&'a serde_json::Value>,
        old_object: Option<&'a serde_json::Value>,
    ) -> admission::Attributes<'a> {
        admission::Attributes {
            operation,
            resource: self.resource.plural,
            subresource: self.info.subresource.as_deref(),
            namespace: self.info.namespace.as_deref(),
            name,
            object,
            old_object,
            user: &self.user,
            dry_run: self.options.dry_run,
        }
    }
}

/// Serves one resource request.
///
/// # Errors
/// Any [`ApiError`]; the router renders it as a `Status`.
pub async fn handle(
    state: AppState,
    admission: Arc<dyn Admission>,
    user: UserInfo,
    info: RequestInfo,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    // Read the body first, whatever happens next: answering while a client is still sending
    // makes the server close the connection under it.
    let (parts, body) = request.into_parts();
    let body = if matches!(
        parts.method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE
    ) {
        axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::too_large(MAX_BODY_BYTES))?
    } else {
        bytes::Bytes::new()
    };
    let request = Request::from_parts(parts, Body::from(body));
    let version: Version = info.api_version.parse().map_err(|_| ApiError::no_route())?;
    let resource = openapi::resource_by_plural(&info.resource).ok_or_else(ApiError::no_route)?;
    let subresource = info.subresource.as_deref();
    match subresource {
        None | Some("status") => {}
        Some("artifact") if resource.has_artifact => {}
        _ => return Err(ApiError::no_route()),
    }
    // A namespaced object is named with its namespace. A collection request (a list or watch
    // across namespaces) may carry a name from a `metadata.name` field selector: that is a
    // filter, not a path to one object.
    if resource.namespaced
        && info.name.is_some()
        && info.namespace.is_none()
        && !info.verb.is_collection()
    {
        return Err(ApiError::no_route());
    }
    let options = Options::parse(request.uri().query())?;
    let answer = match info.verb {
        Verb::Watch => negotiate::Answer::Watch,
        _ if info.verb.is_collection() => negotiate::Answer::List,
        _ => negotiate::Answer::Object,
    };
    let mut output = negotiate::negotiate(request.headers(), answer)?;
    if output.shape == Shape::Table && !info.verb.is_read() {
        // Tables describe reads; writes answer with the object, as kube-apiserver does.
        output.shape = Shape::Object;
    }
    let mut warnings = Vec::new();
    if version.is_deprecated() {
        warnings.push(render::warning(&format!(
            "{} {} is deprecated, upgrade to v1",
            version.api_version(),
            resource.kind
        )));
    }
    let renderer = Renderer {
        resource,
        version,
        output,
        include_object: options.include_object,
        warnings,
    };
    let call = Call {
        state,
        admission,
        user,
        info,
        resource,
        version,
        options,
        renderer,
    };
    route(call, request).await
}

async fn route(call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    let subresource = call.info.subresource.clone();
    match (&call.info.verb, subresource.as_deref()) {
        (Verb::Get, None | Some("status")) => read::get(call).await,
        (Verb::Get, Some("artifact")) => read::artifact(call).await,
        (Verb::List, None) => read::list(call).await,
        (Verb::Watch, None) => watch::watch(call).await,
        (Verb::Create, None) => write::create(call, request).await,
        (Verb::Update, None | Some("status")) => write::update(call, request).await,
        (Verb::Patch, None | Some("status")) => patch::patch(call, request).await,
        (Verb::Delete, None) => write::delete(call, request).await,
        (Verb::DeleteCollection, None) => write::delete_collection(call, request).await,
        _ => Err(ApiError::method_not_allowed(request.method())),
    }
}

/// Parses a `resourceVersion` query parameter (400 when it is not a number).
pub(crate) fn parse_resource_version(rv: &str) -> Result<u64, ApiError> {
    rv.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
}

/// The request body, already read into memory by [`handle`].
pub(crate) async fn body_bytes(request: Request<Body>) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY_BYTES))
}
