//! The request filters between the timeout and the handler, each its own middleware
//! (`k8s.io/apiserver/pkg/endpoints/filters`): [`authenticate`] puts the [`UserInfo`] in the
//! request, [`request_info`] the parsed [`RequestInfo`], and [`authorize`] refuses what the user
//! may not do. Handlers and later filters take both as extractors; a missing one is a server
//! fault (the layer is not installed), rendered as a `Status`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::auth::{Authorizer, RequestAuthenticator, UserInfo};
use crate::http::error::ApiError;
use crate::http::request_info::RequestInfo;

/// Authenticates the request: 401 when no authenticator recognises it or credentials are
/// refused (the reason is logged at debug, never sent). Records `user` on the request span, and
/// removes the credentials the authenticators read (front-proxy headers, bearer token) before
/// the request goes on.
pub async fn authenticate(
    State(authenticator): State<Arc<dyn RequestAuthenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let user = match authenticator.authenticate_request(&parts).await {
        Ok(Some(user)) => user,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(error) => {
            tracing::debug!(%error, "authentication failed");
            return ApiError::unauthorized().into_response();
        }
    };
    tracing::Span::current().record("user", user.name.as_str());
    authenticator.clear_credentials(&mut parts.headers);
    parts.extensions.insert(user);
    next.run(Request::from_parts(parts, body)).await
}

/// Parses the request's attributes once ([`RequestInfo::parse`]; the timeout layer may have
/// parsed them already, and left them in the request's extensions) and records them on the
/// request span.
pub async fn request_info(mut request: Request, next: Next) -> Response {
    let info = match request.extensions_mut().remove::<RequestInfo>() {
        Some(info) => info,
        None => RequestInfo::parse(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        ),
    };
    let span = tracing::Span::current();
    span.record("verb", info.verb.as_str());
    if info.is_resource_request {
        span.record("resource", info.resource_with_subresource().as_str());
    }
    if let Some(namespace) = &info.namespace {
        span.record("namespace", namespace.as_str());
    }
    if let Some(name) = &info.name {
        span.record("name", name.as_str());
    }
    request.extensions_mut().insert(info);
    next.run(request).await
}

/// Authorises the request: 403 with kube-apiserver's message, and the authoriser's reason
/// after it, unless the authoriser allows it.
pub async fn authorize(
    State(authorizer): State<Arc<dyn Authorizer>>,
    user: UserInfo,
    info: RequestInfo,
    request: Request,
    next: Next,
) -> Response {
    let authorization = authorizer.authorize(&user, &info).await;
    if !authorization.decision.is_allowed() {
        let mut message = forbidden_message(&user, &info);
        if !authorization.reason.is_empty() {
            message = format!("{message}: {}", authorization.reason);
        }
        return ApiError::forbidden(message).into_response();
    }
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for UserInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        extension(parts, "no authenticated user")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        extension(parts, "no request info")
    }
}

/// What an earlier filter put in the request; 500 when that filter is not installed.
fn extension<T: Clone + Send + Sync + 'static>(
    parts: &Parts,
    missing: &'static str,
) -> Result<T, ApiError> {
    parts
        .extensions
        .get::<T>()
        .cloned()
        .ok_or_else(|| ApiError::internal(missing, &"the filter that adds it is not installed"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let user = UserInfo {
            name: "bob".into(),
            ..UserInfo::default()
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
        let info = RequestInfo::parse(&http::Method::POST, "/metrics", None);
        assert_eq!(
            forbidden_message(&user, &info),
            "forbidden: User \"bob\" cannot post path \"/metrics\""
        );
    }
}
