//! Client configuration: timeouts, TLS material, credentials, proxy, retries.

use std::fmt;
use std::time::Duration;

use super::DockerConfig;

/// Client settings. `ClientConfig::default()` gives: 60 s timeout, TLS with system roots,
/// anonymous, no explicit proxy (reqwest still honours `HTTPS_PROXY`/`NO_PROXY`), user agent
/// `source-apiserver/<version>`, 3 attempts with 500 ms base backoff, 64 MiB upload chunks.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Bounds every request: the connect, the send until response headers arrive (for a file
    /// upload, plus one second per MiB of the body), and each wait for the next body chunk when
    /// streaming a blob (an idle timeout, so a large download that keeps flowing is never cut
    /// off). Buffered bodies (manifests, tokens, tag pages) are bounded as a whole, and so is a
    /// credential helper run. Exceeding it gives [`Error::Timeout`](super::Error::Timeout). Default 60 s.
    pub timeout: Duration,
    /// An insecure registry, as Flux's `spec.insecure` and Docker's `--insecure-registry`
    /// (go-containerregistry's `name.Insecure`): HTTPS is tried first, and plain HTTP when the
    /// registry cannot be reached over TLS (it answers no TLS handshake, or refuses the
    /// connection); the scheme that answered is kept for the client's life. Without
    /// [`ca_certs_pem`](Self::ca_certs_pem) and [`client_identity`](Self::client_identity), the
    /// server certificate is not verified (Flux's one `InsecureSkipVerify`: `spec.insecure`
    /// without `certSecretRef`); with either, it is. Default `false` (HTTPS, verified).
    pub insecure: bool,
    /// Extra PEM CA certificates (each entry may hold several), trusted in addition to the system
    /// roots. Bad PEM gives [`Error::InvalidConfig`](super::Error::InvalidConfig) from [`Client::new`](super::Client::new).
    pub ca_certs_pem: Vec<Vec<u8>>,
    /// Client certificate for mutual TLS. Default none.
    pub client_identity: Option<ClientIdentity>,
    /// Where credentials come from. Default [`Credentials::Anonymous`].
    pub credentials: Credentials,
    /// Explicit HTTP(S) proxy for all registry traffic (Flux `proxySecretRef`). Default none.
    pub proxy: Option<ProxyConfig>,
    /// `User-Agent` header. Default `source-apiserver/<crate version>`.
    pub user_agent: String,
    /// Retries for 429, 5xx, connect errors and timeouts.
    pub retry: RetryPolicy,
    /// Upload chunk size in bytes: files up to this size go in one monolithic `PUT`, larger ones
    /// in `PATCH` requests of this size (each retried on its own). Must be > 0 (else
    /// [`Error::InvalidConfig`](super::Error::InvalidConfig)). Default 64 MiB, which measured
    /// faster against distribution than small chunks while keeping retries cheap.
    pub upload_chunk_bytes: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(60),
            insecure: false,
            ca_certs_pem: Vec::new(),
            client_identity: None,
            credentials: Credentials::Anonymous,
            proxy: None,
            user_agent: concat!("source-apiserver/", env!("CARGO_PKG_VERSION")).to_owned(),
            retry: RetryPolicy::default(),
            upload_chunk_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Retry policy. Attempt `n` (1-based) waits `min(base_backoff * 2^(n-1), max_backoff)` before
/// the next one, or the server's `Retry-After` (seconds or HTTP date) when given, capped at
/// `max_backoff`. Each HTTP request is retried on its own (an upload chunk is re-read from the
/// file), never a whole multi-request operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; `1` disables retries. Default 3.
    pub max_attempts: u32,
    /// First backoff. Default 500 ms.
    pub base_backoff: Duration,
    /// Upper bound for one wait, including `Retry-After`. Default 10 s.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A client certificate and key for mutual TLS (PEM; the key as PKCS#8, PKCS#1 RSA or SEC1 EC).
/// `Debug` redacts the key.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// An explicit proxy: `address` is a URL such as `http://proxy:3128`; optional Basic
/// credentials. `Debug` redacts the password.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Proxy URL.
    pub address: String,
    /// Proxy user.
    pub username: Option<String>,
    /// Proxy password.
    pub password: Option<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where credentials come from. `Debug` redacts secrets.
#[derive(Clone)]
pub enum Credentials {
    /// No credentials; anonymous tokens are still fetched when a registry asks for Bearer auth.
    Anonymous,
    /// User and password (`--creds user:pass`): sent as Basic auth, or to the token endpoint.
    Basic {
        /// User name.
        username: String,
        /// Password or personal access token.
        password: String,
    },
    /// A registry token (`--creds <token>`, Flux's `RegistryToken`): sent as-is as
    /// `Authorization: Bearer <token>`, without a token exchange.
    Token(String),
    /// Resolved per registry host from a docker config (`auths`, `credHelpers`, `credsStore`).
    DockerConfig(DockerConfig),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::DockerConfig(c) => f.debug_tuple("DockerConfig").field(c).finish(),
        }
    }
}
