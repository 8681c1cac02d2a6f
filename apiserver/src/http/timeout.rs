//! The request timeout for non-long-running requests, as kube-apiserver's
//! `WithTimeoutForNonLongRunningRequests` (`k8s.io/apiserver/pkg/server/filters/timeout.go`,
//! `--request-timeout`, default 60 s): a request still unanswered after the timeout is answered
//! 504 with a `Timeout` `Status` and its handler is dropped. Long-running requests are exempt:
//! watches (they end on their own `timeoutSeconds`) and artifact downloads (a large file on a
//! slow link may take longer).
//!
//! The timeout covers producing the response head; a streamed body (a list, an artifact) is not
//! cut once its head is sent.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::request_info::{RequestInfo, Verb};

/// kube-apiserver's default `--request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `true` for the requests the timeout does not apply to: watches and `artifact` downloads
/// (upstream's `LongRunningRequestCheck` for `watch` and streaming subresources).
pub fn is_long_running(info: &RequestInfo) -> bool {
    info.verb == Verb::Watch
        || (info.is_resource_request && info.subresource.as_deref() == Some("artifact"))
}

/// Middleware: runs the rest of the stack under `timeout` unless the request is long-running.
/// Use with `axum::middleware::from_fn_with_state(timeout, limit)`. The parsed [`RequestInfo`]
/// is left in the request's extensions, so the request-info layer does not parse it again.
pub async fn limit(State(timeout): State<Duration>, mut request: Request, next: Next) -> Response {
    let info = RequestInfo::parse(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let long_running = is_long_running(&info);
    request.extensions_mut().insert(info);
    if long_running {
        return next.run(request).await;
    }
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_seconds = timeout.as_secs_f64(), "request timed out");
            ApiError::timeout().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);
    const COLLECTION: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";

    /// Every path answers only after `delay`.
    fn slow_app(delay: Duration) -> Router {
        let slow = move || async move {
            tokio::time::sleep(delay).await;
            "done"
        };
        Router::new()
            .route(COLLECTION, get(slow))
            .route(&format!("{COLLECTION}/{{name}}"), get(slow))
            .route(&format!("{COLLECTION}/{{name}}/artifact"), get(slow))
            .layer(axum::middleware::from_fn_with_state(LIMIT, limit))
    }

    async fn send(app: Router, uri: &str) -> (StatusCode, Vec<u8>) {
        let request = http::Request::get(uri).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_request_is_answered_504_with_a_timeout_status() {
        let started = tokio::time::Instant::now();
        let (status, body) = send(slow_app(LIMIT * 2), &format!("{COLLECTION}/podinfo")).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(started.elapsed(), LIMIT);
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            status,
            serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Timeout: request did not complete within requested timeout - context deadline exceeded",
                "reason": "Timeout",
                "details": {},
                "code": 504,
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_within_the_timeout_is_answered() {
        let (status, body) = send(slow_app(LIMIT / 2), COLLECTION).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"done");
    }

    #[tokio::test(start_paused = true)]
    async fn watches_and_artifact_downloads_are_not_cut() {
        for uri in [
            format!("{COLLECTION}?watch=true"),
            format!("{COLLECTION}/podinfo/artifact"),
        ] {
            let started = tokio::time::Instant::now();
            let (status, body) = send(slow_app(LIMIT * 3), &uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(body, b"done", "{uri}");
            assert_eq!(started.elapsed(), LIMIT * 3, "{uri}");
        }
    }
}
