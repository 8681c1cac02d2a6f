//! `WWW-Authenticate` challenges and the token cache (Docker/OCI distribution token flow:
//! distribution `docs/spec/auth/token.md`, go-containerregistry `transport/bearer.go`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How a registry asked to be authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm=…,service=…[,scope=…]`.
    Bearer {
        realm: String,
        service: Option<String>,
        /// Scopes named by the challenge (space separated in the header).
        scopes: Vec<String>,
    },
}

/// Parses a `WWW-Authenticate` value; `None` for unknown schemes or a Bearer without realm.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scopes: get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    } else {
        None
    }
}

/// `k1="v1", k2=v2` with quoted values that may contain commas and `\"` escapes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let key = key.trim().to_owned();
        if !key.is_empty() {
            out.push((key, value.trim().to_owned()));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// Token endpoint response (`token` or `access_token`, `expires_in` seconds, default 60).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

impl TokenResponse {
    /// The bearer token (`access_token` preferred, as ggcr does) and its lifetime.
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .access_token
            .filter(|t| !t.is_empty())
            .or(self.token.filter(|t| !t.is_empty()))?;
        // The spec's minimum and default lifetime is 60 s.
        let secs = self.expires_in.unwrap_or(60).max(60);
        Some((token, Duration::from_secs(secs)))
    }
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    expires_at: Instant,
}

/// Bearer tokens per (registry, scope), reused until 10 s before expiry (or half the lifetime
/// for short-lived tokens); expired entries are dropped on every insert.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<(String, String), CachedToken>,
}

impl TokenCache {
    pub(crate) fn get(&self, registry: &str, scope: &str) -> Option<String> {
        let t = self.tokens.get(&(registry.to_owned(), scope.to_owned()))?;
        (Instant::now() < t.expires_at).then(|| t.token.clone())
    }

    pub(crate) fn put(&mut self, registry: &str, scope: &str, token: String, lifetime: Duration) {
        let margin = Duration::from_secs(10).min(lifetime / 2);
        // Drop expired entries so a long-lived client talking to many repositories stays small.
        let now = Instant::now();
        self.tokens.retain(|_, t| t.expires_at > now);
        self.tokens.insert(
            (registry.to_owned(), scope.to_owned()),
            CachedToken {
                token,
                expires_at: Instant::now() + lifetime - margin,
            },
        );
    }

    pub(crate) fn remove(&mut self, registry: &str, scope: &str) {
        self.tokens.remove(&(registry.to_owned(), scope.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_commas_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:org/app:pull,push",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scopes: vec!["repository:org/app:pull,push".into()],
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn token_lifetime_defaults_and_cache_expires() {
        let r: TokenResponse = serde_json::from_str(r#"{"token":"a","access_token":"b"}"#).unwrap();
        assert_eq!(
            r.into_token().unwrap(),
            ("b".to_owned(), Duration::from_secs(60))
        );
        let mut c = TokenCache::default();
        c.put("r", "s", "t".into(), Duration::from_secs(60));
        assert_eq!(c.get("r", "s").as_deref(), Some("t"));
        assert_eq!(c.get("r", "other"), None);
        c.remove("r", "s");
        assert_eq!(c.get("r", "s"), None);
    }
}
