//! The HTTP surface in one function: [`router`] takes the state and returns the whole `Router`,
//! so tests drive it with `oneshot` and `main` only binds.
//!
//! Layers, outermost first: a trace span per request → authentication → request info →
//! authorisation → handler. `/healthz`, `/livez` and `/readyz` need no credentials.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Authorizer, UserInfo};
use crate::discovery::Documents;
use crate::error::ApiError;
use crate::request::RequestInfo;

/// Shared state: cheap `Arc` clones.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The object store.
    pub store: Arc<dyn storage::ObjectStore>,
    /// Who is calling.
    pub authenticator: Arc<dyn Authenticator>,
    /// What they may do.
    pub authorizer: Arc<dyn Authorizer>,
    /// Discovery and OpenAPI documents, built once.
    pub documents: Arc<Documents>,
    /// Cancelled when the server shuts down: watches end, new requests get 503.
    pub shutdown: CancellationToken,
    /// Stored artifact files (the `artifact` subresource).
    pub artifacts: storage::ArtifactStore,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let health = Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .with_state(state.clone());
    let api = Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_and_authorize,
        ))
        .with_state(state);
    health
        .merge(api)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_status,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    user = tracing::field::Empty,
                    verb = tracing::field::Empty,
                )
            }),
        )
}

/// A handler panic is a bug: answer 500 with a `Status` (and log it) instead of dropping the
/// connection.
fn panic_status(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal("the request handler panicked", &detail).into_response()
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        ApiError::unavailable("shutting down").into_response()
    } else {
        "ok".into_response()
    }
}

/// Authenticates (401 when no authenticator recognises the request), parses the request info and
/// authorises it (403 naming the verb and resource). Discovery, OpenAPI and `/version` are open
/// to every authenticated user, as Kubernetes' `system:discovery` role grants.
async fn authenticate_and_authorize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let user = match state.authenticator.authenticate(&parts) {
        Ok(Some(user)) => user,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(reason) => {
            tracing::debug!(%reason, "authentication failed");
            return ApiError::unauthorized().into_response();
        }
    };
    let info = RequestInfo::parse(&parts.method, parts.uri.path(), parts.uri.query());
    let span = tracing::Span::current();
    span.record("user", user.name.as_str());
    span.record("verb", info.verb.as_str());
    let open_path = !info.is_resource_request && is_discovery_path(&info.path);
    if !open_path && !state.authorizer.authorize(&user, &info) {
        return ApiError::forbidden(forbidden_message(&user, &info)).into_response();
    }
    parts.extensions.insert(user);
    parts.extensions.insert(info);
    next.run(Request::from_parts(parts, body)).await
}

fn is_discovery_path(path: &str) -> bool {
    path == "/api"
        || path == "/apis"
        || path == "/version"
        || path.starts_with("/api/")
        || path.starts_with("/openapi/")
        || (path.starts_with("/apis/") && path.trim_matches('/').split('/').count() <= 3)
}

/// kube-apiserver's wording (`k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`).
fn forbidden_message(user: &UserInfo, info: &RequestInfo) -> String {
    if !info.is_resource_request {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name, info.verb, info.path
        );
    }
    let group_resource = format!("{}.{}", info.resource, info.api_group);
    let subject = match &info.name {
        Some(name) => format!("{group_resource} \"{name}\" is forbidden"),
        None => format!("{group_resource} is forbidden"),
    };
    let scope = match &info.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    format!(
        "{subject}: User \"{}\" cannot {} resource \"{}\" in API group \"{}\"{scope}",
        user.name,
        info.verb,
        info.resource_with_subresource(),
        info.api_group
    )
}

async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError::unavailable("the server is shutting down").into_response();
    }
    let info = request
        .extensions()
        .get::<RequestInfo>()
        .cloned()
        .unwrap_or_default();
    let result = if info.is_resource_request && info.api_group == openapi::GROUP {
        crate::rest::handle(state, info, request).await
    } else {
        crate::discovery::handle(&state, &info, request).await
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let user = UserInfo {
            name: "bob".into(),
            groups: vec![],
        };
        let info = RequestInfo::parse(
            &http::Method::GET,
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/podinfo",
            None,
        );
        assert_eq!(
            forbidden_message(&user, &info),
            "ocirepositories.source.toolkit.fluxcd.io \"podinfo\" is forbidden: User \"bob\" cannot get resource \"ocirepositories\" in API group \"source.toolkit.fluxcd.io\" in the namespace \"default\""
        );
        let info = RequestInfo::parse(
            &http::Method::GET,
            "/apis/source.toolkit.fluxcd.io/v1/ocirepositories",
            None,
        );
        assert_eq!(
            forbidden_message(&user, &info),
            "ocirepositories.source.toolkit.fluxcd.io is forbidden: User \"bob\" cannot list resource \"ocirepositories\" in API group \"source.toolkit.fluxcd.io\" at the cluster scope"
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
}
