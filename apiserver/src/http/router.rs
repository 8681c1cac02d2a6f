//! The HTTP surface in one function: [`router`] takes the state and returns the whole `Router`,
//! so tests drive it with `oneshot` and `main` only binds.
//!
//! Middleware is composed here and only here, outermost first: a trace span per request →
//! panic guard → request timeout ([`crate::http::timeout`]; not for watches or artifact
//! downloads) → request metrics ([`crate::metrics::observe_request`]) → authentication →
//! request info → authorisation ([`crate::http::filters`]) → handler. `/healthz`, `/livez` and
//! `/readyz` sit behind the span, panic guard, timeout and metrics only: they need no
//! credentials. `/metrics` is authorised as any non-resource path.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::UserInfo;
use crate::http::error::ApiError;
use crate::http::filters;
use crate::http::request_info::RequestInfo;
use crate::http::timeout;
use crate::rest::admission::{Admission, NoAdmission};

pub use crate::http::state::AppState;

/// What the router adds to the shared state.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// The timeout of non-long-running requests (kube-apiserver's `--request-timeout`);
    /// defaults to [`timeout::DEFAULT_REQUEST_TIMEOUT`] (60 s).
    pub request_timeout: Duration,
    /// The admission step of every write; defaults to [`NoAdmission`] (standalone mode).
    pub admission: Arc<dyn Admission>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            request_timeout: timeout::DEFAULT_REQUEST_TIMEOUT,
            admission: Arc::new(NoAdmission),
        }
    }
}

/// Builds the router with the default [`RouterConfig`].
pub fn router(state: AppState) -> Router {
    router_with(state, RouterConfig::default())
}

/// Builds the router.
pub fn router_with(state: AppState, config: RouterConfig) -> Router {
    let outer = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::custom(panic_status))
        .layer(from_fn_with_state(config.request_timeout, timeout::limit))
        .layer(from_fn(crate::metrics::observe_request));
    let guarded = ServiceBuilder::new()
        .layer(from_fn_with_state(
            state.authenticator.clone(),
            filters::authenticate,
        ))
        .layer(from_fn(filters::request_info))
        .layer(from_fn_with_state(
            state.authorizer.clone(),
            filters::authorize,
        ));
    let health = Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .with_state(state.clone());
    let admission = config.admission;
    let api = Router::new()
        .route("/metrics", get(crate::metrics::serve))
        .fallback(
            move |State(state): State<AppState>,
                  user: UserInfo,
                  info: RequestInfo,
                  request: Request| {
                dispatch(state, admission.clone(), user, info, request)
            },
        )
        .layer(guarded)
        .with_state(state);
    health.merge(api).layer(outer)
}

/// One span per request; the filters record the user and request attributes once known.
fn request_span(request: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        user = tracing::field::Empty,
        verb = tracing::field::Empty,
        resource = tracing::field::Empty,
        namespace = tracing::field::Empty,
        name = tracing::field::Empty,
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

/// Sends our resources to [`crate::rest`] and everything else to [`crate::rest::discovery`].
async fn dispatch(
    state: AppState,
    admission: Arc<dyn Admission>,
    user: UserInfo,
    info: RequestInfo,
    request: Request,
) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError::unavailable("the server is shutting down").into_response();
    }
    let result = if info.is_resource_request && info.api_group == openapi::GROUP {
        crate::rest::handle(state, admission, user, info, request).await
    } else {
        crate::rest::discovery::handle(&state.documents, &info, request).await
    };
    result.unwrap_or_else(IntoResponse::into_response)
}
