//! The one error type of the HTTP layer. Every failure becomes a Kubernetes `Status` object
//! (`apiVersion: v1`, `kind: Status`) with the reason and code kube-apiserver uses
//! (`k8s.io/apimachinery/pkg/api/errors`), rendered by the single [`IntoResponse`] impl.
//! Internal details are logged, never sent.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use openapi::{Cause, ResourceInfo};

/// A failed request, as the `Status` the client receives.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: StatusCode,
    /// `Status.reason` (`NotFound`, `Invalid`, ...).
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the error is about one object (boxed: errors travel in `Result`s).
    pub details: Option<Box<Value>>,
    /// `Retry-After` seconds (set on 504 ResourceVersionTooLarge).
    pub retry_after_seconds: Option<u64>,
    /// A continue token for 410 Expired on lists.
    pub continue_token: Option<String>,
}

/// `group/resource` as Kubernetes prints a GroupResource: `ocirepositories.source.toolkit.fluxcd.io`.
pub fn group_resource(resource: &ResourceInfo) -> String {
    format!("{}.{}", resource.plural, openapi::GROUP)
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after_seconds: None,
            continue_token: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// 404 for a named object: `ocirepositories.source.toolkit.fluxcd.io "x" not found`.
    pub fn not_found(resource: &ResourceInfo, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", group_resource(resource)),
        )
        .with_details(json!({"name": name, "group": openapi::GROUP, "kind": resource.plural}))
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &ResourceInfo, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", group_resource(resource)),
        )
        .with_details(json!({"name": name, "group": openapi::GROUP, "kind": resource.plural}))
    }

    /// 409 Conflict with a message already in Kubernetes' words.
    pub fn conflict(resource: &ResourceInfo, name: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
            .with_details(json!({"name": name, "group": openapi::GROUP, "kind": resource.plural}))
    }

    /// 422 Invalid: `OCIRepository.source.toolkit.fluxcd.io "x" is invalid: [spec.url: Required value, ...]`.
    pub fn invalid(resource: &ResourceInfo, name: &str, causes: &[Cause]) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{}.{} \"{name}\" is invalid: {joined}",
                resource.kind,
                openapi::GROUP
            ),
        )
        .with_details(json!({
            "name": name,
            "group": openapi::GROUP,
            "kind": resource.kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason.as_str(),
                "message": c.message,
                "field": c.field,
            })).collect::<Vec<_>>(),
        }))
    }

    /// 422 Invalid about request options rather than an object (e.g. `dryRun`, `fieldManager`).
    pub fn invalid_options(field: &str, message: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{field}: {message}"),
        )
        .with_details(json!({"causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]}))
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401 Unauthorized (message `Unauthorized`, as kube-apiserver).
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with kube-apiserver's message, naming the user, verb and resource.
    pub fn forbidden(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(accepted: &str) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("only the following media types are accepted: {accepted}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(accepted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    }

    /// 413 RequestEntityTooLarge (kube-apiserver's wording).
    pub fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit_bytes}"),
        )
    }

    /// 410 Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 504 Timeout for a resourceVersion newer than the store (client-go relists on it).
    pub fn resource_version_too_large(requested: u64, current: u64) -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }));
        e.retry_after_seconds = Some(1);
        e
    }

    /// 504 Timeout for a request that ran past the server's request timeout, worded as
    /// kube-apiserver's timeout filter (`k8s.io/apiserver/pkg/server/filters/timeout.go`).
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        )
        .with_details(json!({}))
    }

    /// 500 InternalError. The detail is logged here and not sent.
    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {context}"),
        )
    }

    /// 503 ServiceUnavailable (shutting down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = (**details).clone();
        }
        if let Some(token) = &self.continue_token {
            status["metadata"] = json!({"continue": token});
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = (self.code, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Maps a storage failure to the Kubernetes error clients expect.
pub fn from_storage(resource: &ResourceInfo, name: &str, err: storage::Error) -> ApiError {
    use storage::Error as E;
    match err {
        E::NotFound { .. } => ApiError::not_found(resource, name),
        E::AlreadyExists { .. } => ApiError::already_exists(resource, name),
        conflict @ E::Conflict { .. } => ApiError::conflict(resource, name, conflict.to_string()),
        E::Expired { message } => ApiError::expired(message),
        E::InvalidSelector { message }
        | E::InvalidFieldSelector { message }
        | E::InvalidContinue { message } => ApiError::bad_request(message),
        E::Invalid { field, message } => ApiError::invalid(
            resource,
            name,
            &[Cause {
                reason: openapi::CauseReason::FieldValueInvalid,
                message,
                field,
            }],
        ),
        other => ApiError::internal("storage failed", &other),
    }
}
