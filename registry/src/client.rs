//! A small OCI distribution client over `reqwest` (distribution-spec v1.1): manifests, tags with
//! pagination, streamed and verified blobs, chunked uploads, referrers; Basic and Bearer token
//! auth (Docker token flow), docker config credentials and credential helpers, extra CAs,
//! client certificates (mutual TLS), plain-HTTP registries, proxies, retries.
//!
//! Memory: blob bodies are streamed in both directions; only manifests (≤ 4 MiB), token
//! responses (≤ 1 MiB), tag pages (≤ 16 MiB each) and error bodies (first 4 KiB) are held in
//! memory.
//!
//! Not here: artifact layout (see `artifact`), Kubernetes Secrets (callers turn them into
//! [`Credentials`] / [`ClientIdentity`]), cloud provider logins, signature verification.
//!
//! ```no_run
//! use futures::StreamExt as _;
//! use registry::client::{Client, ClientConfig, Credentials, DockerConfig};
//! use registry::Reference;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig {
//!     credentials: Credentials::DockerConfig(DockerConfig::load_default()?),
//!     ..ClientConfig::default()
//! })?;
//! let reference: Reference = "oci://ghcr.io/org/app:v1.0.0".parse()?;
//! let (manifest, descriptor, _raw) = client.get_manifest(&reference).await?;
//! println!("{reference} is {}", descriptor.digest);
//! for layer in &manifest.as_image().ok_or("not an image manifest")?.layers {
//!     let mut blob = client.get_blob(&reference, layer).await?;
//!     while let Some(chunk) = blob.next().await {
//!         let _bytes = chunk?; // verified: the last item is an error on digest mismatch
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageIndex, Manifest, is_manifest_type, media_types};
use crate::reference::Reference;

mod auth;
mod config;
pub mod docker_config;
mod error;
mod response;
mod roots;
mod tls;
mod transport;
mod upload;
mod verify;

pub use config::{ClientConfig, ClientIdentity, Credentials, ProxyConfig, RetryPolicy};
pub use docker_config::DockerConfig;
pub use error::Error;
use response::{read_capped, status_error, strip_query};
use transport::{Access, Payload, Req, Transport};

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Called with the number of bytes uploaded so far (cumulative) during `push_blob_file`.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// Maximum manifest size held in memory: 4 MiB (the distribution registry's own limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Maximum size of one tags-list or referrers page held in memory: 16 MiB.
pub const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;
/// Upper bound on pages followed by `list_tags`/`referrers` (a loop guard).
const MAX_PAGES: usize = 100_000;
/// The `Docker-Content-Digest` response header.
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A verified blob body: yields chunks, then an error item instead of the end if the total size
/// differs from the descriptor or the digest does not match. Dropping it closes the connection.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl BlobStream {
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

/// The registry client. Cheap to clone: clones share the connection pool, the token cache
/// (per registry and scope, reused until expiry) and resolved credentials.
///
/// A reference without tag or digest means the tag `latest` for reads (as go-containerregistry
/// and Flux do).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Transport>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. No network traffic happens here.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for unparsable CA/client PEM or proxy URL.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Ok(Client {
            inner: Arc::new(Transport::new(config)?),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn url(&self, reference: &Reference, tail: &str) -> Result<Url> {
        let s = format!(
            "{}/v2/{}/{tail}",
            self.inner.base_url(&reference.registry),
            reference.repository
        );
        Url::parse(&s).map_err(|e| Error::InvalidConfig {
            message: format!("cannot build URL {s:?}: {e}"),
        })
    }

    /// Resolves a tag or digest with one `HEAD /v2/<name>/manifests/<ref>` (falls back to GET
    /// when HEAD fails or lacks `Docker-Content-Digest`, `Content-Type` or `Content-Length`).
    /// Returns media type, digest and size of the manifest. No tag and no digest means `latest`.
    ///
    /// # Errors
    /// [`Error::ManifestUnknown`]/[`Error::NotFound`], [`Error::Unauthorized`], transport errors.
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor> {
        let url = self.url(
            reference,
            &format!("manifests/{}", manifest_version(reference)),
        )?;
        let req = Req::new(Method::HEAD, url, reference, Access::Pull)
            .header(ACCEPT, media_types::MANIFEST_ACCEPT);
        let resp = self.inner.send(&req).await?;
        if resp.status().is_success() {
            let h = resp.headers();
            let digest = h
                .get(DOCKER_CONTENT_DIGEST)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok());
            let media_type = h
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
                .filter(|m| is_manifest_type(m));
            let size = h
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let (Some(digest), Some(media_type), Some(size)) = (digest, media_type, size) {
                if let Some(want) = &reference.digest
                    && want.algorithm() == digest.algorithm()
                    && *want != digest
                {
                    return Err(Error::DigestMismatch {
                        url: strip_query(resp.url()),
                        expected: want.clone(),
                        actual: digest,
                    });
                }
                return Ok(Descriptor::new(media_type, digest, size));
            }
        }
        let (_, descriptor, _) = self.get_manifest(reference).await?;
        Ok(descriptor)
    }

    /// Fetches a manifest by tag or digest (at most [`MAX_MANIFEST_BYTES`]). Verifies the bytes
    /// against the reference's digest when set, otherwise against `Docker-Content-Digest` when
    /// sent. Returns the parsed manifest, its descriptor (sha256 digest unless the reference
    /// names a sha512 one) and the raw bytes. No tag and no digest means `latest`.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve), plus [`Error::DigestMismatch`], [`Error::TooLarge`] and
    /// [`Error::InvalidResponse`] for an unparsable or non-manifest document.
    pub async fn get_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Manifest, Descriptor, Bytes)> {
        let url = self.url(
            reference,
            &format!("manifests/{}", manifest_version(reference)),
        )?;
        let url_s = strip_query(&url);
        let req = Req::new(Method::GET, url, reference, Access::Pull)
            .header(ACCEPT, media_types::MANIFEST_ACCEPT);
        let resp = self.inner.send(&req).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, &reference.to_string()).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let header_digest = resp
            .headers()
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes =
            read_capped(resp, MAX_MANIFEST_BYTES, &url_s, self.inner.config.timeout).await?;
        let expected = reference.digest.clone().or(header_digest);
        let actual = match &expected {
            Some(e) => {
                let mut d = e.digester();
                d.update(&bytes);
                d.finish()
            }
            None => Digest::sha256_of(&bytes),
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(Error::DigestMismatch {
                url: url_s,
                expected,
                actual,
            });
        }
        let manifest =
            Manifest::from_bytes(&bytes, &content_type).map_err(|e| Error::InvalidResponse {
                url: url_s.clone(),
                message: e.to_string(),
            })?;
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let media_type = if is_manifest_type(ct) {
            ct.to_owned()
        } else if let Some(m) = manifest.media_type() {
            m.to_owned()
        } else if manifest.as_index().is_some() {
            media_types::OCI_INDEX.to_owned()
        } else {
            media_types::OCI_MANIFEST.to_owned()
        };
        let descriptor = Descriptor::new(media_type, actual, bytes.len() as u64);
        Ok((manifest, descriptor, bytes))
    }

    /// Lists all tags of the reference's repository, following `Link: <…>; rel="next"`
    /// pagination. Tags come in the registry's order (lexical for distribution).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown repository, [`Error::TooLarge`] for a page over
    /// [`MAX_PAGE_BYTES`], auth and transport errors.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>> {
        self.list_tags_paged(reference, None).await
    }

    /// [`list_tags`](Self::list_tags) asking for `page_size` tags per request (`?n=`); the
    /// registry may ignore or cap it.
    ///
    /// # Errors
    /// As [`list_tags`](Self::list_tags).
    pub async fn list_tags_paged(
        &self,
        reference: &Reference,
        page_size: Option<u32>,
    ) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(reference, "tags/list")?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let url_s = url.to_string();
            let req = Req::new(Method::GET, url.clone(), reference, Access::Pull);
            let resp = self.inner.send(&req).await?;
            if !resp.status().is_success() {
                return Err(status_error(resp, &reference.repository_url()).await);
            }
            let next = next_link(resp.headers(), &url);
            let bytes =
                read_capped(resp, MAX_PAGE_BYTES, &url_s, self.inner.config.timeout).await?;
            let page: Page =
                serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
                    url: url_s.clone(),
                    message: format!("invalid tags list: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n != url => url = n,
                _ => return Ok(tags),
            }
        }
        Err(Error::InvalidResponse {
            url: reference.repository_url(),
            message: format!("more than {MAX_PAGES} pages of tags"),
        })
    }

    /// Streams the blob `descriptor` from the reference's repository. The stream verifies size
    /// and digest (see [`BlobStream`]); memory use is bounded by the transport's chunk size.
    /// `Content-Length` disagreeing with `descriptor.size` fails before any chunk.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown blob, [`Error::SizeMismatch`], auth and transport
    /// errors; a digest mismatch comes through the stream.
    pub async fn get_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobStream> {
        let url = self.url(reference, &format!("blobs/{}", descriptor.digest))?;
        let url_s = strip_query(&url);
        let req = Req::new(Method::GET, url, reference, Access::Pull);
        let resp = self.inner.send(&req).await?;
        if !resp.status().is_success() {
            return Err(status_error(
                resp,
                &format!(
                    "blob {} in {}",
                    descriptor.digest,
                    reference.repository_url()
                ),
            )
            .await);
        }
        if let Some(len) = resp.content_length()
            && len != descriptor.size
        {
            return Err(Error::SizeMismatch {
                url: url_s,
                expected: descriptor.size,
                actual: len,
            });
        }
        Ok(BlobStream::new(verify::VerifiedStream::new(
            resp.bytes_stream(),
            descriptor.digest.clone(),
            descriptor.size,
            url_s,
        )))
    }

    /// `HEAD /v2/<name>/blobs/<digest>`: whether the repository has the blob.
    ///
    /// # Errors
    /// Auth and transport errors (404 is `Ok(false)`).
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool> {
        self.blob_exists_for(reference, digest, Access::Pull).await
    }

    async fn blob_exists_for(
        &self,
        reference: &Reference,
        digest: &Digest,
        access: Access,
    ) -> Result<bool> {
        let url = self.url(reference, &format!("blobs/{digest}"))?;
        let resp = self
            .inner
            .send(&Req::new(Method::HEAD, url, reference, access))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(resp, &format!("blob {digest}")).await),
        }
    }

    /// Uploads a file of known `digest` and `size` (bytes), streamed from disk and never held in
    /// memory. Skips it when the repository already has it (then `progress(size)` once).
    /// Otherwise: files up to [`ClientConfig::upload_chunk_bytes`] (64 MiB) go in one monolithic
    /// `PUT`; larger ones in `PATCH` chunks of that size, falling back to one monolithic `PUT` when the registry refuses the first chunk
    /// (4xx other than 401/403/404/429). `progress` gets the cumulative bytes sent.
    ///
    /// # Errors
    /// [`Error::ReadFile`], auth, transport and status errors; a wrong `digest` gives
    /// [`Error::Status`] 400 with the registry's `DIGEST_INVALID`.
    pub async fn push_blob_file(
        &self,
        reference: &Reference,
        path: &Path,
        digest: &Digest,
        size: u64,
        progress: Option<ProgressFn>,
    ) -> Result<()> {
        if self
            .blob_exists_for(reference, digest, Access::Push)
            .await?
        {
            if let Some(p) = &progress {
                p(size);
            }
            return Ok(());
        }
        upload::push_file(self, reference, path, digest, size, progress).await
    }

    /// Uploads an in-memory blob (configs, small layers) with `POST` + monolithic `PUT`, skipping
    /// it when it exists. Returns its sha256 descriptor with an empty `media_type`.
    ///
    /// # Errors
    /// Auth, transport and status errors.
    pub async fn push_blob_bytes(&self, reference: &Reference, bytes: Bytes) -> Result<Descriptor> {
        let descriptor = Descriptor::new("", Digest::sha256_of(&bytes), bytes.len() as u64);
        if !self
            .blob_exists_for(reference, &descriptor.digest, Access::Push)
            .await?
        {
            let location = upload::start(self, reference).await?;
            upload::finish(
                self,
                reference,
                location,
                &descriptor.digest,
                Payload::Bytes(bytes),
            )
            .await?;
        }
        Ok(descriptor)
    }

    /// Cross-repository mount: `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`.
    /// `Ok(true)` when mounted (201); `Ok(false)` when the registry declined (202; the opened
    /// upload session is cancelled) so the caller uploads instead.
    ///
    /// # Errors
    /// Auth, transport and status errors.
    pub async fn mount_blob(
        &self,
        reference: &Reference,
        from_repository: &str,
        digest: &Digest,
    ) -> Result<bool> {
        let mut url = self.url(reference, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from_repository);
        let resp = self
            .inner
            .send(&Req::new(
                Method::POST,
                url.clone(),
                reference,
                Access::Push,
            ))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(loc) = upload::location(&resp, &url) {
                    let _ = self
                        .inner
                        .send(&Req::new(Method::DELETE, loc, reference, Access::Push))
                        .await;
                }
                Ok(false)
            }
            _ => Err(status_error(resp, &format!("blob {digest}")).await),
        }
    }

    /// `PUT /v2/<name>/manifests/<tag or digest>` with `media_type` as `Content-Type` (at most
    /// [`MAX_MANIFEST_BYTES`]). Returns the manifest's sha256 digest.
    ///
    /// # Errors
    /// [`Error::MissingVersion`] (neither tag nor digest), [`Error::TooLarge`],
    /// [`Error::DigestMismatch`] when the reference's digest is not that of `bytes`, auth,
    /// transport and status errors (400 `MANIFEST_BLOB_UNKNOWN` when a blob is missing).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let version = reference.version().ok_or_else(|| Error::MissingVersion {
            reference: reference.to_string(),
        })?;
        let url = self.url(reference, &format!("manifests/{version}"))?;
        let url_s = strip_query(&url);
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::TooLarge {
                url: url_s,
                limit_bytes: MAX_MANIFEST_BYTES,
            });
        }
        let digest = Digest::sha256_of(&bytes);
        if let Some(want) = &reference.digest {
            let mut d = want.digester();
            d.update(&bytes);
            let actual = d.finish();
            if actual != *want {
                return Err(Error::DigestMismatch {
                    url: url_s,
                    expected: want.clone(),
                    actual,
                });
            }
        }
        let req = Req::new(Method::PUT, url, reference, Access::Push)
            .header(CONTENT_TYPE, media_type)
            .payload(Payload::Bytes(bytes));
        let resp = self.inner.send(&req).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, &reference.to_string()).await);
        }
        if let Some(got) = resp
            .headers()
            .get(DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
            && got.algorithm() == "sha256"
            && got != digest
        {
            return Err(Error::InvalidResponse {
                url: url_s,
                message: format!("registry stored manifest as {got}, expected {digest}"),
            });
        }
        Ok(digest)
    }

    /// OCI 1.1 referrers API: `GET /v2/<name>/referrers/<digest>[?artifactType=…]`, following
    /// `Link` pagination. `Ok(None)` when the registry does not implement it (404). Filters by
    /// `artifact_type` client-side too, in case the registry ignores the parameter.
    ///
    /// # Errors
    /// Auth, transport and status errors, [`Error::InvalidResponse`] for a bad index.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<ImageIndex>> {
        let mut url = self.url(reference, &format!("referrers/{digest}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut index: Option<ImageIndex> = None;
        for _ in 0..MAX_PAGES {
            let url_s = url.to_string();
            let req = Req::new(Method::GET, url.clone(), reference, Access::Pull)
                .header(ACCEPT, media_types::OCI_INDEX);
            let resp = self.inner.send(&req).await?;
            if resp.status() == StatusCode::NOT_FOUND && index.is_none() {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(status_error(resp, &format!("referrers of {digest}")).await);
            }
            let next = next_link(resp.headers(), &url);
            let bytes =
                read_capped(resp, MAX_PAGE_BYTES, &url_s, self.inner.config.timeout).await?;
            let page: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
                    url: url_s.clone(),
                    message: format!("invalid referrers index: {e}"),
                })?;
            match &mut index {
                None => index = Some(page),
                Some(i) => i.manifests.extend(page.manifests),
            }
            match next {
                Some(n) if n != url => url = n,
                _ => break,
            }
        }
        Ok(index.map(|mut i| {
            if let Some(t) = artifact_type {
                i.manifests
                    .retain(|d| d.artifact_type.as_deref() == Some(t));
            }
            i
        }))
    }
}

/// The manifest path element: digest, else tag, else `latest`.
fn manifest_version(reference: &Reference) -> String {
    reference.version().unwrap_or_else(|| "latest".to_owned())
}

/// The `rel="next"` target of a `Link` header, resolved against `base`.
fn next_link(headers: &reqwest::header::HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let part = part.trim();
            let Some(rest) = part.strip_prefix('<') else {
                continue;
            };
            let Some((target, params)) = rest.split_once('>') else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                matches!(
                    p.trim().replace(' ', "").as_str(),
                    "rel=\"next\"" | "rel=next"
                )
            });
            if is_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn next_link_resolves_relative_targets() {
        let base = Url::parse("http://r:5000/v2/a/tags/list?n=2").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "http://r:5000/v2/a/tags/list?last=b&n=2"
        );
        assert_eq!(next_link(&HeaderMap::new(), &base), None);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = ClientConfig {
            credentials: Credentials::Basic {
                username: "u".into(),
                password: "hunter2".into(),
            },
            client_identity: Some(ClientIdentity {
                cert_pem: b"c".to_vec(),
                key_pem: b"KEYDATA".to_vec(),
            }),
            proxy: Some(ProxyConfig {
                address: "http://p".into(),
                username: Some("pu".into()),
                password: Some("proxypass".into()),
            }),
            ..ClientConfig::default()
        };
        let s = format!("{c:?}");
        assert!(
            !s.contains("hunter2") && !s.contains("KEYDATA") && !s.contains("proxypass"),
            "{s}"
        );
        assert!(!format!("{:?}", Credentials::Token("tok123".into())).contains("tok123"));
    }

    #[test]
    fn client_futures_are_send_so_they_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Client>();
        let client = Client::new(ClientConfig::default()).unwrap();
        let r: Reference = "example.com/a:b".parse().unwrap();
        let d = Descriptor::new("x", Digest::sha256_of(b""), 0);
        assert_send(&client.resolve(&r));
        assert_send(&client.get_manifest(&r));
        assert_send(&client.list_tags(&r));
        assert_send(&client.get_blob(&r, &d));
        assert_send(&client.push_blob_file(&r, Path::new("x"), &d.digest, 0, None));
        assert_send(&client.push_blob_bytes(&r, Bytes::new()));
        assert_send(&client.push_manifest(&r, "x", Bytes::new()));
        assert_send(&client.referrers(&r, &d.digest, None));
    }

    #[test]
    fn bad_ca_pem_is_invalid_config() {
        let c = ClientConfig {
            ca_certs_pem: vec![b"not pem".to_vec()],
            ..ClientConfig::default()
        };
        assert!(matches!(Client::new(c), Err(Error::InvalidConfig { .. })));
        let c = ClientConfig {
            upload_chunk_bytes: 0,
            ..ClientConfig::default()
        };
        assert!(matches!(Client::new(c), Err(Error::InvalidConfig { .. })));
    }
}
