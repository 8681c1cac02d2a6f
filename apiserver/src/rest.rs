//! REST semantics for our resources (reference: aggregated-apiserver.md §3): get, list, watch,
//! create, update, patch, delete, deletecollection, the `status` subresource and the `artifact`
//! subresource. Every request body goes decode → convert to v1 → default → validate → storage;
//! every response goes storage → convert to the requested version → requested shape.

mod options;
mod patch;
mod read;
pub mod render;
mod watch;
mod write;

use axum::body::Body;
use axum::response::Response;
use http::Request;

use openapi::{ResourceInfo, Version};

use crate::error::ApiError;
use crate::negotiate::{self, Shape};
use crate::request::RequestInfo;
use crate::router::AppState;

pub(crate) use options::Options;
use render::Renderer;

/// Largest request body accepted (bytes): kube-apiserver's limit is 3 MiB for objects.
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// One request on one of our resources, with everything parsed once.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) state: AppState,
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

    pub(crate) fn name(&self) -> &str {
        self.info.name.as_deref().unwrap_or("")
    }

    pub(crate) fn storage_error(&self, err: storage::Error) -> ApiError {
        crate::error::from_storage(self.resource, self.name(), err)
    }
}

/// Serves one resource request.
///
/// # Errors
/// Any [`ApiError`]; the router renders it as a `Status`.
pub async fn handle(
    state: AppState,
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
    if resource.namespaced && info.name.is_some() && info.namespace.is_none() {
        return Err(ApiError::no_route());
    }
    let options = Options::parse(request.uri().query())?;
    let list = matches!(info.verb.as_str(), "list" | "watch" | "deletecollection");
    let mut output = negotiate::negotiate(request.headers(), list)?;
    if output.shape == Shape::Table && !matches!(info.verb.as_str(), "get" | "list" | "watch") {
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
    match (call.info.verb.as_str(), subresource.as_deref()) {
        ("get", None) => read::get(call).await,
        ("get", Some("status")) => read::get(call).await,
        ("get", Some("artifact")) => read::artifact(call).await,
        ("list", None) => read::list(call).await,
        ("watch", None) => watch::watch(call).await,
        ("create", None) => write::create(call, request).await,
        ("update", None | Some("status")) => write::update(call, request).await,
        ("patch", None | Some("status")) => patch::patch(call, request).await,
        ("delete", None) => write::delete(call, request).await,
        ("deletecollection", None) => write::delete_collection(call, request).await,
        _ => Err(ApiError::method_not_allowed(request.method())),
    }
}

/// The request body, already read into memory by [`handle`].
pub(crate) async fn body_bytes(request: Request<Body>) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY_BYTES))
}
