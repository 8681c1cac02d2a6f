//! The client's error type and its classification helpers.

use std::path::PathBuf;

use crate::digest::Digest;

/// Errors from [`Client`](super::Client) operations, classified so callers can map them to Flux
/// reasons without matching strings (`is_auth`, `is_not_found`, `is_retryable`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`ClientConfig`](super::ClientConfig) is unusable: bad CA or client PEM, bad proxy URL.
    #[error("invalid client configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
    /// The reference has neither tag nor digest where one is needed.
    #[error("reference {reference} has neither a tag nor a digest")]
    MissingVersion {
        /// The reference.
        reference: String,
    },
    /// 401/403 from the registry after offering the configured credentials, or a token
    /// endpoint refused them. Flux reason `AuthenticationFailed`.
    #[error("authentication to {registry} failed: {message}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Status and the registry's error text.
        message: String,
    },
    /// The repository, tag or blob does not exist (404 `NAME_UNKNOWN`, `BLOB_UNKNOWN`...).
    #[error("{reference} not found")]
    NotFound {
        /// What was looked up (reference, or reference plus blob digest).
        reference: String,
    },
    /// 404 `MANIFEST_UNKNOWN`: the repository exists but not this tag/digest.
    #[error("manifest {reference} not found")]
    ManifestUnknown {
        /// The reference.
        reference: String,
    },
    /// Content did not hash to the digest it was requested or announced by.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Request URL.
        url: String,
        /// Requested/announced digest.
        expected: Digest,
        /// Digest of the bytes received.
        actual: Digest,
    },
    /// Content length differed from the descriptor's size.
    #[error("size mismatch for {url}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Request URL.
        url: String,
        /// Expected size in bytes.
        expected: u64,
        /// Bytes received (at least; reading stops once the expected size is exceeded).
        actual: u64,
    },
    /// A manifest, token or error body exceeded its in-memory cap.
    #[error("response from {url} exceeds the {limit_bytes} byte limit")]
    TooLarge {
        /// Request URL.
        url: String,
        /// The cap in bytes.
        limit_bytes: u64,
    },
    /// The request (or a wait for the next body chunk) exceeded `ClientConfig::timeout`.
    #[error("request to {url} timed out")]
    Timeout {
        /// Request URL.
        url: String,
    },
    /// Could not connect (refused, DNS, proxy).
    #[error("cannot connect to {url}")]
    Connect {
        /// Request URL.
        url: String,
        /// Transport error.
        #[source]
        source: reqwest::Error,
    },
    /// TLS handshake or certificate verification failed.
    #[error("tls error talking to {url}: {message}")]
    Tls {
        /// Request URL.
        url: String,
        /// The TLS library's explanation.
        message: String,
    },
    /// Any other transport failure (connection reset mid-body...).
    #[error("request to {url} failed")]
    Transport {
        /// Request URL.
        url: String,
        /// Transport error.
        #[source]
        source: reqwest::Error,
    },
    /// An unexpected HTTP status (after retries for 429/5xx).
    #[error("{url} answered {status}: {body}")]
    Status {
        /// Request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body (at most 4 KiB), usually the registry's error JSON.
        body: String,
    },
    /// A response violated the distribution spec (missing header, bad JSON, bad digest...).
    #[error("invalid response from {url}: {message}")]
    InvalidResponse {
        /// Request URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A docker credential helper failed (other than "credentials not found").
    #[error("credential helper {helper} failed: {message}")]
    CredentialHelper {
        /// Helper program name, e.g. `docker-credential-pass`.
        helper: String,
        /// Exit status and stderr, or why it could not run.
        message: String,
    },
    /// A docker config file could not be read or parsed.
    #[error("docker config {}: {message}", path.as_ref().map_or("<inline>".to_owned(), |p| p.display().to_string()))]
    DockerConfig {
        /// The file, `None` for in-memory JSON.
        path: Option<PathBuf>,
        /// What was wrong.
        message: String,
    },
    /// Reading a local file to upload failed.
    #[error("reading {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The failure is about credentials (401/403, token refused, credential helper failure):
    /// Flux's `AuthenticationFailed`.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Unauthorized { .. } | Error::CredentialHelper { .. }
        )
    }

    /// The repository, manifest or blob does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::ManifestUnknown { .. })
    }

    /// Retrying later may succeed: timeouts, connection failures, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
