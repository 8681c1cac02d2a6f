//! The HTTP layer: builds the `reqwest` client (TLS, identity, proxy, timeouts), sends one
//! logical request with authentication (Basic / Bearer token flow, re-auth on 401) and retries
//! (429, 5xx, connect errors, timeouts; `Retry-After`), and classifies failures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use url::Url;

use super::auth::{Challenge, TokenCache, TokenResponse, parse_challenge};
use super::docker_config::Resolved;
use super::response::{
    body_suffix, classify, read_capped, read_error_body, retry_after, strip_query, unauthorized,
};
use super::tls;
use super::{ClientConfig, Credentials, Error, ProgressFn, Result};
use crate::reference::Reference;

/// Cap for token responses held in memory: 1 MiB.
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;

/// What a request needs on the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// A replayable request body.
#[derive(Clone)]
pub(crate) enum Payload {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of `path` from `offset`; `progress` is called with `base + bytes sent`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        progress: Option<(ProgressFn, u64)>,
    },
}

/// One logical request against a repository.
pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Payload,
    pub(crate) reference: &'a Reference,
    pub(crate) access: Access,
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: Method, url: Url, reference: &'a Reference, access: Access) -> Self {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            payload: Payload::Empty,
            reference,
            access,
        }
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn payload(mut self, payload: Payload) -> Self {
        self.payload = payload;
        self
    }
}

pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    tokens: parking_lot::Mutex<TokenCache>,
    challenges: parking_lot::Mutex<HashMap<String, Challenge>>,
    creds: parking_lot::Mutex<HashMap<String, Resolved>>,
    /// With `insecure`: the scheme each registry answered on (`https` or `http`), learnt from
    /// its first response.
    schemes: parking_lot::Mutex<HashMap<String, &'static str>>,
}

impl Transport {
    pub(crate) fn new(config: ClientConfig) -> Result<Self> {
        let invalid = |message: String| Error::InvalidConfig { message };
        if config.upload_chunk_bytes == 0 {
            return Err(invalid("upload_chunk_bytes must be greater than 0".into()));
        }
        let mut b = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .http1_only()
            .use_preconfigured_tls(tls::client_tls(&config)?);
        if let Some(p) = &config.proxy {
            let bad = |e: String| invalid(format!("invalid proxy address {:?}: {e}", p.address));
            let mut url = Url::parse(&p.address).map_err(|e| bad(e.to_string()))?;
            if let Some(user) = &p.username {
                // Credentials travel in the proxy URL; reqwest sends them as
                // `Proxy-Authorization` (plain-HTTP targets) or on `CONNECT` (HTTPS targets).
                url.set_username(user)
                    .map_err(|()| bad("cannot carry a user name".into()))?;
                url.set_password(p.password.as_deref())
                    .map_err(|()| bad("cannot carry a password".into()))?;
            }
            let proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| bad(e.to_string()))?;
            b = b.proxy(proxy);
        }
        let http = b
            .build()
            .map_err(|e| invalid(format!("cannot build HTTP client: {e}")))?;
        Ok(Transport {
            http,
            config,
            tokens: parking_lot::Mutex::new(TokenCache::default()),
            challenges: parking_lot::Mutex::new(HashMap::new()),
            creds: parking_lot::Mutex::new(HashMap::new()),
            schemes: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// `https://<host>`, or `http://<host>` for an `insecure` registry that answered only plain
    /// HTTP; Docker Hub's API host for `docker.io`.
    pub(crate) fn base_url(&self, registry: &str) -> String {
        let scheme = self
            .schemes
            .lock()
            .get(registry)
            .copied()
            .unwrap_or("https");
        let host = if registry == "docker.io" || registry == "index.docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    /// Credentials for a repository, resolved once per client (helpers run once).
    async fn credentials(&self, registry: &str, repository: &str) -> Result<Resolved> {
        let key = format!("{registry}/{repository}");
        if let Some(c) = self.creds.lock().get(&key) {
            return Ok(c.clone());
        }
        let resolved = match &self.config.credentials {
            Credentials::Anonymous => Resolved::Anonymous,
            Credentials::Basic { username, password } => Resolved::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            Credentials::Token(t) => Resolved::RegistryToken(t.clone()),
            Credentials::DockerConfig(dc) => {
                dc.resolve(registry, repository, self.config.timeout)
                    .await?
            }
        };
        self.creds.lock().insert(key, resolved.clone());
        Ok(resolved)
    }

    /// Sends `req`, authenticating and retrying as needed. Returns the final response whatever
    /// its status, except that a 401 after authenticating becomes [`Error::Unauthorized`].
    pub(crate) async fn send(&self, req: &Req<'_>) -> Result<Response> {
        let registry = req.reference.registry.as_str();
        let scope = scope_for(&req.reference.repository, req.access);
        let creds = self
            .credentials(registry, &req.reference.repository)
            .await?;
        let mut reauthenticated = false;
        let mut attempt = 1;
        let mut url = req.url.clone();
        if let Some(scheme) = self.schemes.lock().get(registry) {
            let _ = url.set_scheme(scheme);
        }
        loop {
            let auth = match self.authorization(registry, &scope, &creds).await {
                Ok(a) => a,
                Err(e) if e.is_retryable() && attempt < self.config.retry.max_attempts => {
                    self.backoff(attempt, None, &e.to_string()).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let result = self.execute(req, &url, auth).await;
            if result.is_ok() {
                self.schemes.lock().entry(registry.to_owned()).or_insert(
                    if url.scheme() == "http" {
                        "http"
                    } else {
                        "https"
                    },
                );
            }
            match result {
                Err(e) if self.falls_back_to_http(registry, &url, &e) => {
                    tracing::debug!(error = %e, "insecure registry: trying plain HTTP");
                    let _ = url.set_scheme("http");
                }
                Err(e) if e.is_retryable() && attempt < self.config.retry.max_attempts => {
                    self.backoff(attempt, None, &e.to_string()).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    let known = self.challenges.lock().get(registry).cloned();
                    let retry = match &challenge {
                        None => false,
                        // A first challenge, or a changed one: authenticate and try again.
                        Some(c) if known.as_ref() != Some(c) && !reauthenticated => true,
                        // Same challenge: a cached token may have expired or lack scope.
                        Some(Challenge::Bearer { .. }) => !reauthenticated,
                        Some(Challenge::Basic) => false,
                    };
                    if let Some(c) = challenge {
                        self.challenges.lock().insert(registry.to_owned(), c);
                    }
                    let can_basic =
                        !matches!(creds, Resolved::Anonymous | Resolved::IdentityToken(_));
                    let is_basic =
                        matches!(self.challenges.lock().get(registry), Some(Challenge::Basic));
                    if !retry || (is_basic && !can_basic) {
                        return Err(unauthorized(registry, resp, &creds).await);
                    }
                    self.tokens.lock().remove(registry, &scope);
                    reauthenticated = true;
                }
                Ok(resp)
                    if is_retryable_status(resp.status())
                        && attempt < self.config.retry.max_attempts =>
                {
                    let after = retry_after(resp.headers());
                    self.backoff(
                        attempt,
                        after,
                        &format!("{} answered {}", strip_query(&url), resp.status()),
                    )
                    .await;
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    /// Whether a failed HTTPS request to an `insecure` registry whose scheme is not known yet
    /// is tried again over plain HTTP, as go-containerregistry does for `name.Insecure`
    /// references (HTTPS first, then HTTP): when it could not connect, or the TLS handshake
    /// failed for another reason than the certificate (the peer does not speak TLS).
    fn falls_back_to_http(&self, registry: &str, url: &Url, e: &Error) -> bool {
        let unknown = !self.schemes.lock().contains_key(registry);
        let not_tls = match e {
            Error::Connect { .. } => true,
            Error::Tls { message, .. } => !message.contains("certificate"),
            _ => false,
        };
        self.config.insecure && unknown && url.scheme() == "https" && not_tls
    }

    async fn backoff(&self, attempt: u32, retry_after: Option<Duration>, why: &str) {
        let policy = &self.config.retry;
        let exp = policy
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let delay = retry_after.unwrap_or(exp).min(policy.max_backoff);
        tracing::warn!(
            attempt,
            delay_ms = delay.as_millis() as u64,
            reason = why,
            "retrying registry request"
        );
        tokio::time::sleep(delay).await;
    }

    /// The `Authorization` value for a request, fetching a token when the registry wants Bearer.
    async fn authorization(
        &self,
        registry: &str,
        scope: &str,
        creds: &Resolved,
    ) -> Result<Option<HeaderValue>> {
        let challenge = self.challenges.lock().get(registry).cloned();
        let value = match (challenge, creds) {
            (_, Resolved::RegistryToken(t)) => Some(format!("Bearer {t}")),
            (None, _) => None,
            (Some(Challenge::Basic), Resolved::Basic { username, password }) => {
                Some(format!("Basic {}", basic(username, password)))
            }
            (Some(Challenge::Basic), _) => None,
            (Some(Challenge::Bearer { realm, service, .. }), _) => {
                let cached = self.tokens.lock().get(registry, scope);
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let (token, lifetime) = self
                            .fetch_token(registry, &realm, service.as_deref(), scope, creds)
                            .await?;
                        self.tokens
                            .lock()
                            .put(registry, scope, token.clone(), lifetime);
                        token
                    }
                };
                Some(format!("Bearer {token}"))
            }
        };
        Ok(value.and_then(|v| {
            let mut h = HeaderValue::from_str(&v).ok()?;
            h.set_sensitive(true);
            Some(h)
        }))
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: &Resolved,
    ) -> Result<(String, Duration)> {
        let mut url = Url::parse(realm).map_err(|e| Error::InvalidResponse {
            url: realm.to_owned(),
            message: format!("token realm is not a URL: {e}"),
        })?;
        let request = match creds {
            Resolved::IdentityToken(refresh) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "source-apiserver"),
                    ("scope", scope),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.http
                    .post(url.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let mut b = self.http.get(url.clone());
                if let Resolved::Basic { username, password } = creds {
                    b = b.basic_auth(username, Some(password));
                }
                b
            }
        };
        let url_s = strip_query(&url);
        let resp = tokio::time::timeout(self.config.timeout, request.send())
            .await
            .map_err(|_| Error::Timeout { url: url_s.clone() })?
            .map_err(|e| classify(&url_s, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = read_error_body(resp).await;
            return Err(Error::Unauthorized {
                registry: registry.to_owned(),
                message: format!(
                    "token endpoint {url_s} answered {status}{}",
                    body_suffix(&body)
                ),
            });
        }
        if !status.is_success() {
            let body = read_error_body(resp).await;
            return Err(Error::Status {
                url: url_s,
                status: status.as_u16(),
                body,
            });
        }
        let bytes = read_capped(resp, MAX_TOKEN_BYTES, &url_s, self.config.timeout).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
                url: url_s.clone(),
                message: format!("invalid token response: {e}"),
            })?;
        parsed.into_token().ok_or_else(|| Error::InvalidResponse {
            url: url_s,
            message: "token response has neither token nor access_token".into(),
        })
    }

    async fn execute(
        &self,
        req: &Req<'_>,
        url: &Url,
        auth: Option<HeaderValue>,
    ) -> Result<Response> {
        let url_s = strip_query(url);
        let mut b = self
            .http
            .request(req.method.clone(), url.clone())
            .headers(req.headers.clone());
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b = match &req.payload {
            Payload::Empty => {
                if req.method == Method::PUT
                    || req.method == Method::POST
                    || req.method == Method::PATCH
                {
                    b.header(header::CONTENT_LENGTH, "0")
                } else {
                    b
                }
            }
            Payload::Bytes(bytes) => b
                .header(header::CONTENT_LENGTH, bytes.len())
                .body(bytes.clone()),
            Payload::File {
                path,
                offset,
                len,
                progress,
            } => {
                let mut file =
                    tokio::fs::File::open(path)
                        .await
                        .map_err(|source| Error::ReadFile {
                            path: path.clone(),
                            source,
                        })?;
                file.seek(std::io::SeekFrom::Start(*offset))
                    .await
                    .map_err(|source| Error::ReadFile {
                        path: path.clone(),
                        source,
                    })?;
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(*len), 64 * 1024);
                let progress = progress.clone();
                let mut sent = 0u64;
                let stream = stream.inspect(move |chunk| {
                    if let (Ok(c), Some((f, base))) = (chunk, &progress) {
                        sent += c.len() as u64;
                        f(base + sent);
                    }
                });
                b.header(header::CONTENT_LENGTH, *len)
                    .body(reqwest::Body::wrap_stream(stream))
            }
        };
        tracing::debug!(method = %req.method, url = %url_s, "registry request");
        tokio::time::timeout(request_timeout(self.config.timeout, &req.payload), b.send())
            .await
            .map_err(|_| Error::Timeout { url: url_s.clone() })?
            .map_err(|e| classify(&url_s, e))
    }
}

/// The bound on one request: `timeout`, plus one second per MiB of a file body so that a large
/// upload on a slow link (down to 1 MiB/s) is not cut off.
fn request_timeout(timeout: Duration, payload: &Payload) -> Duration {
    match payload {
        Payload::File { len, .. } => timeout + Duration::from_secs(len / (1024 * 1024)),
        _ => timeout,
    }
}

/// `repository:<repo>:pull` or `repository:<repo>:pull,push`.
pub(crate) fn scope_for(repository: &str, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{repository}:pull"),
        Access::Push => format!("repository:{repository}:pull,push"),
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}
