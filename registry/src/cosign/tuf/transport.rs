//! The HTTP transport tough fetches TUF metadata and targets with: our `reqwest` client
//! (OpenSSL through native-tls, proxies from the environment), a connect timeout so an
//! unreachable mirror fails fast, a size cap per file, and a record of every file fetched so
//! that the files of a load that verified can be written to the cache unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tough::{Transport, TransportError, TransportErrorKind};
use url::Url;

/// What [`Transport::fetch`] returns (tough's `TransportStream`, which it does not export).
type TransportStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// Largest file read from a mirror: 16 MiB (tough's own limits are lower for metadata: 1 MiB for
/// root, timestamp and snapshot, 10 MiB for targets; the Sigstore `trusted_root.json` is ~7 KiB).
pub(super) const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// A mirror's answer that is not a file: an HTTP error status other than 403/404.
#[derive(Debug, thiserror::Error)]
#[error("HTTP status {status}")]
pub(super) struct StatusError {
    /// The response status.
    pub(super) status: reqwest::StatusCode,
}

/// A file larger than [`MAX_FILE_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("file is larger than {MAX_FILE_BYTES} bytes")]
struct TooLarge;

/// Fetches over HTTP(S) and records what it fetched (URL and body), in order.
#[derive(Debug, Clone)]
pub(super) struct RecordingTransport {
    client: reqwest::Client,
    fetched: Arc<parking_lot::Mutex<Vec<(Url, Bytes)>>>,
    /// Whether a fetch failed because the mirror could not be reached ([`is_unreachable`]):
    /// tough ends the root-chain walk silently on any failed fetch, and then reports what
    /// follows (an expired root, a missing timestamp) instead.
    unreachable: Arc<std::sync::atomic::AtomicBool>,
}

impl RecordingTransport {
    /// A transport whose connections give up after `connect_timeout` and whose requests give up
    /// after `request_timeout`.
    pub(super) fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .use_native_tls()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(concat!("source-apiserver-tuf/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            fetched: Arc::default(),
            unreachable: Arc::default(),
        })
    }

    /// Whether a fetch failed because the mirror could not be reached.
    pub(super) fn saw_unreachable(&self) -> bool {
        self.unreachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every file fetched so far, in order.
    pub(super) fn fetched(&self) -> Vec<(Url, Bytes)> {
        self.fetched.lock().clone()
    }

    async fn get(&self, url: &Url) -> Result<Bytes, TransportError> {
        let other = |e: Box<dyn std::error::Error + Send + Sync>| {
            TransportError::new_with_cause(TransportErrorKind::Other, url, e)
        };
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| other(e.into()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            // Object stores answer 403 for a missing key: the end of the root chain.
            return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
        }
        if !status.is_success() {
            return Err(other(StatusError { status }.into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| other(e.into()))? {
            if body.len() + chunk.len() > MAX_FILE_BYTES {
                return Err(other(TooLarge.into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }
}

#[tough::async_trait]
impl Transport for RecordingTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let body = self.get(&url).await.inspect_err(|e| {
            if is_unreachable(e) {
                self.unreachable
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })?;
        self.fetched.lock().push((url, body.clone()));
        Ok(Box::pin(futures::stream::once(std::future::ready(Ok(
            body,
        )))))
    }
}

/// Whether `error` (or one of its causes) says the mirror could not be reached: no connection,
/// DNS failure, a timeout, or a 5xx answer (an unavailable CDN), as opposed to a mirror that
/// answered with files that did not verify.
pub(super) fn is_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(e) = e.downcast_ref::<reqwest::Error>() {
            return e.is_connect() || e.is_timeout() || e.is_request();
        }
        if let Some(e) = e.downcast_ref::<StatusError>() {
            return e.status.is_server_error();
        }
        cause = e.source();
    }
    false
}
