//! A small OCI distribution client over `reqwest` (distribution-spec v1.1): manifests, tags with
//! pagination, streamed and verified blobs, chunked uploads, referrers; Basic and Bearer token
//! auth (Docker token flow), docker config credentials and credential helpers, extra CAs,
//! client certificates (mutual TLS), plain-HTTP registries, proxies, retries.
//!
//! Memory: blob bodies are streamed in both directions; only manifests (≤ 4 MiB), token
//! responses (≤ 1 MiB), tag pages and error bodies (first 4 KiB) are held in memory.

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageIndex, Manifest};
use crate::reference::Reference;

pub mod docker_config;
mod error;

pub use docker_config::DockerConfig;
pub use error::Error;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Called with the number of bytes uploaded so far (cumulative) during `push_blob_file`.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// Maximum manifest size held in memory: 4 MiB (the distribution registry's own limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Client settings. `ClientConfig::default()` gives: 60 s timeout, TLS with system roots,
/// anonymous, no explicit proxy (reqwest still honours `HTTPS_PROXY`/`NO_PROXY`), user agent
/// `source-apiserver/<version>`, 3 attempts with 500 ms base backoff.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Bounds every request: the connect, the wait for response headers, and each wait for the
    /// next body chunk when streaming (an idle timeout, so a large blob that keeps flowing is
    /// never cut off). Buffered bodies (manifests, tokens, tag pages) are bounded as a whole.
    /// Exceeding it gives [`Error::Timeout`]. Default 60 s.
    pub timeout: Duration,
    /// Talk plain HTTP to the registry (like Docker's `--insecure-registry`, Flux
    /// `spec.insecure`). Default `false` (HTTPS).
    pub insecure: bool,
    /// Extra PEM CA certificates (each entry may hold several), trusted in addition to the system
    /// roots. Bad PEM gives [`Error::InvalidConfig`] from [`Client::new`].
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
        }
    }
}

/// Retry policy. Attempt `n` (1-based) waits `min(base_backoff * 2^(n-1), max_backoff)` before
/// the next one, or the server's `Retry-After` (seconds or HTTP date) when given, capped at
/// `max_backoff`. Uploads of request bodies that cannot be replayed (a file chunk already sent)
/// restart from the failed step only.
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
    /// A token (`--creds <token>`): used as an OAuth2 refresh/identity token at the token
    /// endpoint when the registry asks for Bearer auth, or sent directly as `Bearer` when the
    /// token endpoint rejects it.
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

/// A verified blob body: yields chunks, then an error item instead of the end if the total size
/// differs from the descriptor or the digest does not match. Dropping it closes the connection.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl BlobStream {
    #[allow(dead_code, reason = "used by the implementation being written")]
    pub(crate) fn new(inner: impl Stream<Item = Result<Bytes>> + Send + 'static) -> Self {
        BlobStream {
            inner: Box::pin(inner),
        }
    }
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlobStream")
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The registry client. Cheap to clone (shared connection pool and token cache).
#[derive(Clone, Debug)]
pub struct Client {
    config: Arc<ClientConfig>,
}

impl Client {
    /// Builds a client.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for unparsable CA/client PEM or proxy URL.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Ok(Client {
            config: Arc::new(config),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Resolves a tag or digest with one `HEAD /v2/<name>/manifests/<ref>` (falls back to GET
    /// when HEAD is refused or lacks `Docker-Content-Digest`). Returns media type, digest and size.
    ///
    /// # Errors
    /// [`Error::MissingVersion`], [`Error::ManifestUnknown`]/[`Error::NotFound`], auth and
    /// transport errors.
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor> {
        let _ = reference;
        unimplemented!("resolve")
    }

    /// Fetches a manifest by tag or digest (≤ [`MAX_MANIFEST_BYTES`]). Verifies the digest
    /// against the reference's digest when set, otherwise against `Docker-Content-Digest` when
    /// sent. Returns the parsed manifest, its descriptor and the raw bytes.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve), plus [`Error::DigestMismatch`], [`Error::TooLarge`] and
    /// [`Error::InvalidResponse`] for an unparsable manifest.
    pub async fn get_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Manifest, Descriptor, Bytes)> {
        let _ = reference;
        unimplemented!("get_manifest")
    }

    /// Lists all tags of the reference's repository, following `Link` pagination.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown repository, auth and transport errors.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>> {
        let _ = reference;
        unimplemented!("list_tags")
    }

    /// Streams the blob `descriptor` from the reference's repository; the stream verifies size
    /// and digest (see [`BlobStream`]). Memory bounded.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown blob, auth and transport errors; mismatches come
    /// through the stream.
    pub async fn get_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobStream> {
        let _ = (reference, descriptor);
        unimplemented!("get_blob")
    }

    /// `HEAD /v2/<name>/blobs/<digest>`.
    ///
    /// # Errors
    /// Auth and transport errors (404 is `Ok(false)`).
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        let _ = (reference, digest);
        unimplemented!("blob_exists")
    }

    /// Uploads a file of known `digest` and `size` (bytes), streamed from disk. Skips it when
    /// the registry already has it; otherwise chunked `PATCH` upload, falling back to one
    /// monolithic `PUT` when chunked upload is refused. `progress` gets bytes done.
    ///
    /// # Errors
    /// [`Error::ReadFile`], auth, transport and status errors; [`Error::DigestMismatch`] if
    /// the registry computes another digest.
    pub async fn push_blob_file(
        &self,
        reference: &Reference,
        path: &Path,
        digest: &Digest,
        size: u64,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        let _ = (reference, path, digest, size, progress);
        unimplemented!("push_blob_file")
    }

    /// Uploads an in-memory blob (configs, small layers) with one monolithic `POST`+`PUT`,
    /// skipping it when it exists. Returns its descriptor with an empty `media_type`.
    ///
    /// # Errors
    /// Auth, transport and status errors.
    pub async fn push_blob_bytes(&self, reference: &Reference, bytes: Bytes) -> Result<Descriptor> {
        let _ = (reference, bytes);
        unimplemented!("push_blob_bytes")
    }

    /// `PUT /v2/<name>/manifests/<tag or digest>` with `media_type` as `Content-Type`.
    /// Returns the manifest's sha256 digest (checked against `Docker-Content-Digest`).
    ///
    /// # Errors
    /// [`Error::MissingVersion`] (neither tag nor digest), auth, transport and status errors.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let _ = (reference, media_type, bytes);
        unimplemented!("push_manifest")
    }

    /// OCI 1.1 referrers API: `GET /v2/<name>/referrers/<digest>[?artifactType=…]`.
    /// `Ok(None)` when the registry does not implement it (404). Filters by `artifact_type`
    /// client-side too, in case the registry ignores the parameter.
    ///
    /// # Errors
    /// Auth, transport and status errors.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<ImageIndex>> {
        let _ = (reference, digest, artifact_type);
        unimplemented!("referrers")
    }
}
