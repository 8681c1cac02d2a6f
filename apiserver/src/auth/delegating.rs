//! The in-cluster authentication chain (`k8s.io/apiserver/pkg/authentication/
//! authenticatorfactory/delegating.go`): front-proxy request headers, then client certificates,
//! then TokenReview bearer tokens; the first that recognises the request wins. When none does,
//! an error of any of them is a 401, and a request with no credentials at all is
//! `system:anonymous` in `system:unauthenticated`, for authorisation to decide. Every
//! authenticated user gets `system:authenticated` (`AuthenticatedGroupAdder`).
//!
//! After authentication the front-proxy headers (the flags' and the ConfigMap's) and the
//! `Authorization` header are removed, whoever sent them: handlers never see a credential or a
//! header that only the proxy may set.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use http::request::Parts;

use crate::auth::trust::AuthenticationTrust;
use crate::auth::{AUTHENTICATED_GROUP, AuthenticationError, RequestAuthenticator, UserInfo};

/// The anonymous user's name.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The anonymous user's group.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The union of the in-cluster authenticators, with anonymous access.
#[derive(Debug)]
pub struct DelegatingAuthenticator {
    authenticators: Vec<Box<dyn RequestAuthenticator>>,
    trust: Arc<AuthenticationTrust>,
}

impl DelegatingAuthenticator {
    /// Tries `authenticators` in order; `trust` names the front-proxy headers to remove.
    pub fn new(
        authenticators: Vec<Box<dyn RequestAuthenticator>>,
        trust: Arc<AuthenticationTrust>,
    ) -> Self {
        Self {
            authenticators,
            trust,
        }
    }
}

impl RequestAuthenticator for DelegatingAuthenticator {
    fn authenticate_request<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthenticationError>> {
        async move {
            let mut first_error = None;
            for authenticator in &self.authenticators {
                match authenticator.authenticate_request(parts).await {
                    Ok(Some(user)) => return Ok(Some(with_authenticated_group(user))),
                    Ok(None) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            match first_error {
                Some(error) => Err(error),
                None => Ok(Some(UserInfo {
                    name: ANONYMOUS_USER.into(),
                    groups: vec![UNAUTHENTICATED_GROUP.into()],
                    ..UserInfo::default()
                })),
            }
        }
        .boxed()
    }

    fn clear_credentials(&self, headers: &mut http::HeaderMap) {
        for authenticator in &self.authenticators {
            authenticator.clear_credentials(headers);
        }
        headers.remove(http::header::AUTHORIZATION);
        let (names, prefixes) = self.trust.header_names();
        for name in names {
            headers.remove(name);
        }
        let prefixed: Vec<http::HeaderName> = headers
            .keys()
            .filter(|k| prefixes.iter().any(|p| k.as_str().starts_with(p.as_str())))
            .cloned()
            .collect();
        for name in prefixed {
            headers.remove(name);
        }
    }
}

/// `AuthenticatedGroupAdder`: adds `system:authenticated` unless the user is anonymous or
/// already in it or in `system:unauthenticated`.
fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    let skip = user.name == ANONYMOUS_USER
        || user
            .groups
            .iter()
            .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP);
    if !skip {
        user.groups.push(AUTHENTICATED_GROUP.into());
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RequestHeaderFlags;

    fn trust() -> Arc<AuthenticationTrust> {
        let flags = RequestHeaderFlags {
            client_ca_file: None,
            allowed_names: vec![],
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            uid_headers: vec!["X-Remote-Uid".into()],
            extra_headers_prefix: vec!["X-Remote-Extra-".into()],
        };
        Arc::new(AuthenticationTrust::new(None, &flags).unwrap())
    }

    #[tokio::test]
    async fn no_credentials_is_anonymous_and_spoofed_headers_are_removed() {
        let authenticator = DelegatingAuthenticator::new(vec![], trust());
        let request = http::Request::builder()
            .uri("/apis")
            .header("X-Remote-User", "admin")
            .header("X-Remote-Group", "system:masters")
            .header("X-Remote-Extra-Scopes", "all")
            .header("Authorization", "Bearer secret")
            .header("Accept", "application/json")
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        let user = authenticator
            .authenticate_request(&parts)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.name, ANONYMOUS_USER);
        assert_eq!(user.groups, vec![UNAUTHENTICATED_GROUP]);
        authenticator.clear_credentials(&mut parts.headers);
        let left: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn authenticated_users_get_the_authenticated_group_once() {
        let user = with_authenticated_group(UserInfo {
            name: "alice".into(),
            groups: vec!["dev".into()],
            ..UserInfo::default()
        });
        assert_eq!(user.groups, vec!["dev", AUTHENTICATED_GROUP]);
        let again = with_authenticated_group(user.clone());
        assert_eq!(again.groups, user.groups);
    }
}
