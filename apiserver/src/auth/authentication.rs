//! Authentication: who made a request (`k8s.io/apiserver/pkg/authentication/authenticator`).
//!
//! [`RequestAuthenticator`] is the async interface the HTTP layer calls, so that the aggregated
//! mode's TokenReview (a network call) and front-proxy headers fit behind it. Authenticators that
//! only look at the request itself implement the simpler synchronous [`Authenticator`], and
//! every one of those is a [`RequestAuthenticator`] too.
//!
//! Standalone mode: client certificates verified by the TLS layer against the client CA (CN is
//! the user, O the groups, as kube-apiserver's x509 authenticator), then an optional static
//! token file ([`AuthenticatorChain`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use futures::future::{BoxFuture, FutureExt};
use http::request::Parts;

/// The group every authenticated user gets, as kube-apiserver's `AuthenticatedGroupAdder`.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Who made a request (`user.Info` upstream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (certificate CN, the token file's user column, `X-Remote-User`, or the
    /// TokenReview's `username`).
    pub name: String,
    /// Groups (certificate O entries, the token file's groups, `X-Remote-Group`, or the
    /// TokenReview's), plus `system:authenticated`.
    pub groups: Vec<String>,
    /// The user's uid when the authenticator knows one (TokenReview); empty otherwise.
    pub uid: String,
    /// Extra attributes (`X-Remote-Extra-<key>`, or the TokenReview's `extra`), keys
    /// lower-cased.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The verified identity of a TLS client certificate, put in the request extensions by the
/// listener after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Subject common name.
    pub common_name: String,
    /// Subject organisation entries.
    pub organizations: Vec<String>,
}

/// Credentials were presented but refused (answered 401 `Unauthorized`; the reason is logged,
/// never sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed: {reason}")]
pub struct AuthenticationError {
    /// Why, e.g. `invalid bearer token`.
    pub reason: String,
}

/// Turns a request into a user, or says it cannot: the interface the HTTP layer calls
/// (`authenticator.Request` upstream). Async, because a TokenReview asks kube-apiserver.
pub trait RequestAuthenticator: Send + Sync + fmt::Debug + 'static {
    /// Resolves to `Ok(Some(user))` when this authenticator recognises the credentials and
    /// `Ok(None)` when the request carries none it understands.
    ///
    /// # Errors
    /// [`AuthenticationError`] when credentials are present but invalid (an unknown token).
    fn authenticate_request<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthenticationError>>;

    /// Removes the credentials this authenticator reads from a request that has been
    /// authenticated, so that handlers never see them (the front-proxy headers whoever sent
    /// them, the bearer token). The default removes nothing.
    fn clear_credentials(&self, _headers: &mut http::HeaderMap) {}
}

/// An authenticator that decides from the request alone, without IO (client certificates, a
/// token file). Every `Authenticator` is a [`RequestAuthenticator`].
pub trait Authenticator: Send + Sync + fmt::Debug + 'static {
    /// `Ok(Some(user))` when this authenticator recognises the credentials, `Ok(None)` when the
    /// request carries none it understands.
    ///
    /// # Errors
    /// A message for 401 when credentials are present but invalid (an unknown token).
    fn authenticate(&self, parts: &Parts) -> Result<Option<UserInfo>, String>;
}

impl<T: Authenticator> RequestAuthenticator for T {
    fn authenticate_request<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthenticationError>> {
        let result = self
            .authenticate(parts)
            .map_err(|reason| AuthenticationError { reason });
        std::future::ready(result).boxed()
    }
}

/// Client certificates already verified by the TLS layer against the client CA.
#[derive(Debug, Default)]
pub struct CertificateAuthenticator;

impl Authenticator for CertificateAuthenticator {
    fn authenticate(&self, parts: &Parts) -> Result<Option<UserInfo>, String> {
        Ok(parts
            .extensions
            .get::<PeerCertificate>()
            .map(|cert| UserInfo {
                name: cert.common_name.clone(),
                groups: with_authenticated(cert.organizations.clone()),
                ..UserInfo::default()
            }))
    }
}

/// Static bearer tokens from a CSV file in kube-apiserver's `--token-auth-file` format:
/// `token,user,uid[,"group1,group2"]`.
pub struct TokenFileAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

impl fmt::Debug for TokenFileAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFileAuthenticator")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// A malformed token file.
#[derive(Debug, thiserror::Error)]
#[error("token file {path}: line {line}: {message}")]
pub struct TokenFileError {
    /// The file.
    pub path: String,
    /// 1-based line number (0 when the file could not be read).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl TokenFileAuthenticator {
    /// Reads the file. Blank lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// [`TokenFileError`] when the file cannot be read or a line has fewer than 3 columns.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokenFileError {
            path: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, message)| TokenFileError {
            path: path.display().to_string(),
            line,
            message,
        })
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut tokens = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let columns = split_csv(line);
            if columns.len() < 3 || columns[0].is_empty() || columns[1].is_empty() {
                return Err((index + 1, "want token,user,uid[,groups]".into()));
            }
            let groups = columns
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                columns[0].clone(),
                UserInfo {
                    name: columns[1].clone(),
                    groups: with_authenticated(groups),
                    uid: columns[2].clone(),
                    ..UserInfo::default()
                },
            );
        }
        Ok(Self { tokens })
    }
}

/// Splits one CSV line, honouring double quotes (the groups column is quoted).
fn split_csv(line: &str) -> Vec<String> {
    let mut columns = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => columns.push(String::new()),
            c => columns.last_mut().expect("never empty").push(c),
        }
    }
    columns.into_iter().map(|c| c.trim().to_string()).collect()
}

impl Authenticator for TokenFileAuthenticator {
    fn authenticate(&self, parts: &Parts) -> Result<Option<UserInfo>, String> {
        let Some(header) = parts.headers.get(http::header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        match token.and_then(|t| self.tokens.get(t)) {
            Some(user) => Ok(Some(user.clone())),
            None => Err("invalid bearer token".into()),
        }
    }
}

/// Tries each authenticator in order; the first that recognises the request wins, and the
/// first refusal ends the search (`union.New` upstream with `FailOnError`).
#[derive(Debug, Default)]
pub struct AuthenticatorChain(pub Vec<Box<dyn RequestAuthenticator>>);

impl RequestAuthenticator for AuthenticatorChain {
    fn authenticate_request<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthenticationError>> {
        async move {
            for authenticator in &self.0 {
                if let Some(user) = authenticator.authenticate_request(parts).await? {
                    return Ok(Some(user));
                }
            }
            Ok(None)
        }
        .boxed()
    }
}

pub(crate) fn with_authenticated(mut groups: Vec<String>) -> Vec<String> {
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.to_string());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with(header: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().uri("/apis");
        if let Some(h) = header {
            builder = builder.header("authorization", h);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn token_file_lines_give_users_and_groups() {
        let auth = TokenFileAuthenticator::parse(
            "# comment\nsecret1,alice,1,\"dev,ops\"\nsecret2,bob,2\n",
        )
        .unwrap();
        let alice = auth
            .authenticate(&parts_with(Some("Bearer secret1")))
            .unwrap()
            .unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, vec!["dev", "ops", AUTHENTICATED_GROUP]);
        let bob = auth
            .authenticate(&parts_with(Some("Bearer secret2")))
            .unwrap()
            .unwrap();
        assert_eq!(bob.groups, vec![AUTHENTICATED_GROUP]);
    }

    #[test]
    fn an_unknown_token_is_an_error_and_no_token_is_no_opinion() {
        let auth = TokenFileAuthenticator::parse("secret1,alice,1\n").unwrap();
        assert!(auth.authenticate(&parts_with(Some("Bearer nope"))).is_err());
        assert_eq!(auth.authenticate(&parts_with(None)).unwrap(), None);
    }

    #[test]
    fn a_short_line_is_refused_with_its_number() {
        let err = TokenFileAuthenticator::parse("a,b,c\nonly-token\n").unwrap_err();
        assert_eq!(err.0, 2);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let auth = TokenFileAuthenticator::parse("topsecret,alice,1\n").unwrap();
        assert!(!format!("{auth:?}").contains("topsecret"));
    }
}
