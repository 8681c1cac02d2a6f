//! Bearer tokens checked by a TokenReview (`k8s.io/apiserver/plugin/pkg/authenticator/token/
//! webhook`): `Authorization: Bearer <token>` is posted to kube-apiserver's
//! `/apis/authentication.k8s.io/v1/tokenreviews`, and the answer, authenticated or not, is
//! cached for the TTL (`--authentication-token-webhook-cache-ttl`, 10 s) under the token's
//! SHA-256, never the token itself. A token the review refuses is an error (401, "invalid bearer
//! token"); a failed call is not cached.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use http::request::Parts;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use sha2::{Digest, Sha256};

use crate::auth::ttl_cache::TtlCache;
use crate::auth::{AuthenticationError, RequestAuthenticator, UserInfo};
use crate::kube::Client;

/// The API path of TokenReviews.
const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// Authenticates bearer tokens by TokenReview.
#[derive(Debug)]
pub struct TokenReviewAuthenticator {
    client: Client,
    ttl: Duration,
    cache: TtlCache<[u8; 32], Option<UserInfo>>,
}

impl TokenReviewAuthenticator {
    /// Reviews tokens with `client` and caches answers for `ttl`.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: TtlCache::default(),
        }
    }

    async fn review(&self, token: &str) -> Result<Option<UserInfo>, AuthenticationError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer: TokenReview =
            self.client
                .create(TOKEN_REVIEWS, &review)
                .await
                .map_err(|e| AuthenticationError {
                    reason: format!("TokenReview failed: {e}"),
                })?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let user = status.user.unwrap_or_default();
        Ok(Some(UserInfo {
            name: user.username.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            extra: user
                .extra
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        }))
    }
}

impl RequestAuthenticator for TokenReviewAuthenticator {
    fn authenticate_request<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthenticationError>> {
        async move {
            let Some(token) = bearer_token(parts) else {
                return Ok(None);
            };
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let answer = match self.cache.get(&key) {
                Some(answer) => answer,
                None => {
                    let answer = self.review(token).await?;
                    self.cache.insert(key, answer.clone(), self.ttl);
                    answer
                }
            };
            match answer {
                Some(user) => Ok(Some(user)),
                None => Err(AuthenticationError {
                    reason: "invalid bearer token".into(),
                }),
            }
        }
        .boxed()
    }

    fn clear_credentials(&self, headers: &mut http::HeaderMap) {
        headers.remove(http::header::AUTHORIZATION);
    }
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
