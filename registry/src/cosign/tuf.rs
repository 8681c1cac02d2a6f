//! The Sigstore trusted root kept fresh over TUF: [`TrustedRootProvider`] holds the freshest
//! *verified* `trusted_root.json` for keyless verification without `trustedRootSecretRef`, and
//! refreshes it from a TUF repository (by default the public-good one,
//! `https://tuf-repo-cdn.sigstore.dev`) with the `tough` client (awslabs; TUF 1.0 client
//! workflow: root chain, timestamp, snapshot, targets, delegations, hashes and lengths, expiry,
//! rollback checks), as sigstore-go and sigstore-python do.
//!
//! Fallback rule:
//! - verification always reads [`TrustedRootProvider::current`], which never waits on the
//!   network: the embedded public-good root ([`TrustedRoot::public_good`]) until something
//!   fresher verified;
//! - a refresh whose metadata and target verify replaces it (and the cache); so does, at start,
//!   a cache that still verifies offline (signatures, hashes and expiry checked again);
//! - an unreachable mirror (no connection, DNS failure, timeout, 5xx) is never an error: it is
//!   logged as a warning once per outage, and the previous root is kept;
//! - a mirror that answers with metadata or a target that does not verify (bad signature,
//!   expired, rolled back, hash mismatch, unusable `trusted_root.json`) is logged as an error,
//!   and the previous root is kept.
//!
//! The cache (`cache_dir`, one directory per mirror and initial root) holds the newest verified
//! root metadata, a copy of the files of the last load that verified and tough's datastore, so
//! the next start verifies offline and then only updates.

mod cache;
mod transport;

pub use cache::CacheError;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tough::{
    ExpirationEnforcement, FilesystemTransport, IntoVec as _, Repository, RepositoryLoader,
    TargetName, Transport,
};
use url::Url;

use super::keyless::{TrustedRoot, TrustedRootError};
use cache::Cache;
use transport::RecordingTransport;

/// The public-good Sigstore TUF repository (metadata at its root, targets under `targets/`).
pub const PUBLIC_GOOD_TUF_MIRROR: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The public-good TUF repository's root metadata the chain of trust starts from: `root.json`
/// version 15 (expires 2026-11-20; an expired starting root is fine, the client walks
/// `16.root.json`, `17.root.json`, … to the newest), SHA-256
/// `73747011d0857ada15479a16c4cae0f3ed03aac698b523b97e1de314ac9d9ca8`, as shipped in the
/// sigstore-python 4.5.1 wheel (PyPI) under
/// `sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/root.json`, embedded on 2026-11-26.
/// How to update it: `docs/signing.md`.
pub const PUBLIC_GOOD_TUF_ROOT: &[u8] = include_bytes!("tuf/public_good_root.json");

/// The TUF target holding the Sigstore trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// How often the server refreshes: every 24 h (and `sourcectl` at most once per 24 h).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Connect timeout towards a mirror: 3 s, so that without a network the refresh fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Timeout of one request to a mirror: 30 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to refresh: validated plain data.
#[derive(Debug, Clone)]
pub struct TufConfig {
    /// The TUF repository: metadata at `<mirror>/`, targets at `<mirror>/targets/`.
    pub mirror: Url,
    /// The root metadata (`root.json`) trust starts from: [`PUBLIC_GOOD_TUF_ROOT`] by default.
    pub initial_root: Vec<u8>,
    /// The cache directory (created when missing); each mirror and initial root gets its own
    /// subdirectory.
    pub cache_dir: PathBuf,
    /// Connect timeout, [`CONNECT_TIMEOUT`] by default.
    pub connect_timeout: Duration,
    /// Timeout of one request, [`REQUEST_TIMEOUT`] by default.
    pub request_timeout: Duration,
}

impl TufConfig {
    /// `mirror` trusted from the public-good root, cached under `cache_dir`, default timeouts.
    #[must_use]
    pub fn new(mirror: Url, cache_dir: PathBuf) -> Self {
        Self {
            mirror,
            initial_root: PUBLIC_GOOD_TUF_ROOT.to_vec(),
            cache_dir,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same with another initial `root.json` (a private Sigstore deployment, tests).
    #[must_use]
    pub fn with_initial_root(mut self, root: Vec<u8>) -> Self {
        self.initial_root = root;
        self
    }
}

/// Why a refresh (or a load of the cache) did not produce a new trusted root. The previous root
/// stays in use in every case.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The mirror URL cannot serve as a base URL.
    #[error("invalid TUF mirror URL {mirror}")]
    MirrorUrl {
        /// The mirror.
        mirror: Url,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client for TUF mirror {mirror}")]
    BuildClient {
        /// The mirror.
        mirror: Url,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The mirror could not be reached (see [`RefreshError::is_unreachable`]).
    #[error("TUF mirror {mirror} is unreachable")]
    Unreachable {
        /// The mirror.
        mirror: Url,
        /// tough's error, with the transport error as its cause.
        #[source]
        source: Box<tough::error::Error>,
    },
    /// The metadata did not verify: signatures, thresholds, expiry, versions, lengths.
    #[error("TUF metadata from {mirror} did not verify")]
    LoadRepository {
        /// The mirror, or the cache directory's `file:` URL.
        mirror: Url,
        /// tough's error.
        #[source]
        source: Box<tough::error::Error>,
    },
    /// The targets metadata does not list `trusted_root.json`.
    #[error("the TUF repository {mirror} lists no target {TRUSTED_ROOT_TARGET}")]
    MissingTarget {
        /// The mirror.
        mirror: Url,
    },
    /// The target could not be read or does not match its hashes or length.
    #[error("TUF target {TRUSTED_ROOT_TARGET} from {mirror} did not verify")]
    ReadTarget {
        /// The mirror.
        mirror: Url,
        /// tough's error.
        #[source]
        source: Box<tough::error::Error>,
    },
    /// The target verified but is not a trusted root this verifier can use.
    #[error("TUF target {TRUSTED_ROOT_TARGET} from {mirror} is not a usable trusted root")]
    ParseTarget {
        /// The mirror.
        mirror: Url,
        /// Why.
        #[source]
        source: TrustedRootError,
    },
    /// The cache could not be written.
    #[error("cannot update the TUF cache")]
    WriteCache {
        /// The file that failed.
        #[source]
        source: CacheError,
    },
}

impl RefreshError {
    /// Whether the mirror could not be reached (no connection, DNS failure, timeout, 5xx), as
    /// opposed to answering with something that did not verify.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RefreshError::Unreachable { .. })
    }
}

/// Where the current trusted root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOrigin {
    /// The root embedded in this build ([`TrustedRoot::public_good`]).
    Embedded,
    /// The cache, verified offline at start.
    Cache,
    /// A refresh from the mirror in this process.
    Mirror,
}

/// The freshest verified Sigstore trusted root, shared by every verification (cheap to clone
/// and to read), refreshed over TUF when configured. See the module docs for the fallback rule.
#[derive(Debug, Clone)]
pub struct TrustedRootProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: RwLock<(Arc<TrustedRoot>, RootOrigin)>,
    tuf: Option<Tuf>,
    /// Whether the current outage has been warned about.
    warned_unreachable: AtomicBool,
}

#[derive(Debug)]
struct Tuf {
    config: TufConfig,
    cache: Cache,
    metadata_url: Url,
    targets_url: Url,
}

/// A verified trusted root and what to cache with it.
struct Loaded {
    root: TrustedRoot,
    repository: Repository,
}

impl TrustedRootProvider {
    /// The embedded public-good root, never refreshed.
    #[must_use]
    pub fn embedded() -> Self {
        Self::with(None)
    }

    /// The embedded public-good root until a refresh from `config.mirror` (or a load of the
    /// cache) verifies a newer one. Nothing happens until [`Self::load_cache`],
    /// [`Self::refresh`] or [`Self::run`] is called.
    ///
    /// # Errors
    /// [`RefreshError::MirrorUrl`] when the mirror URL cannot be a base URL (`data:`, …).
    pub fn new(config: TufConfig) -> Result<Self, RefreshError> {
        let mut metadata_url = config.mirror.clone();
        if metadata_url.cannot_be_a_base() {
            return Err(RefreshError::MirrorUrl {
                mirror: config.mirror,
            });
        }
        if !metadata_url.path().ends_with('/') {
            let path = format!("{}/", metadata_url.path());
            metadata_url.set_path(&path);
        }
        let targets_url = metadata_url.join("targets/").expect("a base URL joins");
        let cache = Cache::new(&config.cache_dir, &config.mirror, &config.initial_root);
        Ok(Self::with(Some(Tuf {
            config,
            cache,
            metadata_url,
            targets_url,
        })))
    }

    fn with(tuf: Option<Tuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: RwLock::new((Arc::new(TrustedRoot::public_good()), RootOrigin::Embedded)),
                tuf,
                warned_unreachable: AtomicBool::new(false),
            }),
        }
    }

    /// The trusted root to verify with now. Never waits on the network.
    #[must_use]
    pub fn current(&self) -> Arc<TrustedRoot> {
        self.inner.current.read().0.clone()
    }

    /// Where [`Self::current`] came from.
    #[must_use]
    pub fn origin(&self) -> RootOrigin {
        self.inner.current.read().1
    }

    /// Whether a refresh is configured and none was attempted within `interval` (by any
    /// process sharing the cache directory).
    #[must_use]
    pub fn refresh_due(&self, interval: Duration) -> bool {
        let Some(tuf) = &self.inner.tuf else {
            return false;
        };
        tuf.cache
            .last_attempt()
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .is_none_or(|age| age >= interval)
    }

    /// Loads the trusted root from the cache, verifying the cached metadata and target offline
    /// (signatures, hashes, expiry). Returns whether it was taken; `Ok(false)` when there is no
    /// cache or no refresh is configured.
    ///
    /// # Errors
    /// [`RefreshError::LoadRepository`], [`RefreshError::ReadTarget`] or
    /// [`RefreshError::ParseTarget`] when the cache no longer verifies (for example, its
    /// timestamp expired); the current root is kept.
    pub async fn load_cache(&self) -> Result<bool, RefreshError> {
        let Some(tuf) = &self.inner.tuf else {
            return Ok(false);
        };
        let (Some(root), (metadata, targets)) = (tuf.cache.root(), tuf.cache.mirror()) else {
            return Ok(false);
        };
        let file_url = |dir: &PathBuf| {
            std::path::absolute(dir)
                .ok()
                .and_then(|dir| Url::from_directory_path(dir).ok())
                .ok_or_else(|| RefreshError::MirrorUrl {
                    mirror: tuf.config.mirror.clone(),
                })
        };
        let (metadata, targets) = (file_url(&metadata)?, file_url(&targets)?);
        let loaded = load(tuf, &root, metadata, targets, FilesystemTransport).await?;
        self.replace(loaded.root, RootOrigin::Cache);
        Ok(true)
    }

    /// Refreshes from the mirror: walks the root chain from the cached root (else the initial
    /// one), verifies timestamp, snapshot and targets, reads and verifies
    /// `trusted_root.json`, and on success makes it current and writes the cache. Records the
    /// attempt in the cache (see [`Self::refresh_due`]). No-op when no refresh is configured.
    ///
    /// # Errors
    /// [`RefreshError::Unreachable`] when the mirror cannot be reached; the other variants when
    /// what it served did not verify or the cache could not be written. The current root is
    /// kept in every case.
    pub async fn refresh(&self) -> Result<(), RefreshError> {
        let Some(tuf) = &self.inner.tuf else {
            return Ok(());
        };
        let (config, mirror) = (&tuf.config, &tuf.config.mirror);
        if let Err(error) = tuf.cache.record_attempt() {
            tracing::debug!(error = %error, "cannot record the TUF refresh attempt");
        }
        let transport = RecordingTransport::new(config.connect_timeout, config.request_timeout)
            .map_err(|source| RefreshError::BuildClient {
                mirror: mirror.clone(),
                source,
            })?;
        let start = tuf
            .cache
            .root()
            .unwrap_or_else(|| config.initial_root.clone());
        let (metadata, targets) = (tuf.metadata_url.clone(), tuf.targets_url.clone());
        let loaded = load(tuf, &start, metadata, targets, transport.clone())
            .await
            .map_err(|e| match e {
                RefreshError::LoadRepository { mirror, source }
                | RefreshError::ReadTarget { mirror, source }
                    if transport.saw_unreachable() =>
                {
                    RefreshError::Unreachable { mirror, source }
                }
                e => e,
            })?;
        let version = loaded.repository.root().signed.version.get();
        let fetched = transport.fetched();
        let final_root = fetched
            .iter()
            .find(|(url, _)| {
                url.as_str() == format!("{}{version}.root.json", tuf.metadata_url).as_str()
            })
            .map_or(start, |(_, body)| body.to_vec());
        let cache = tuf.cache.clone();
        let (metadata, targets) = (tuf.metadata_url.clone(), tuf.targets_url.clone());
        tokio::task::spawn_blocking(move || {
            cache.store(&metadata, &targets, &fetched, &final_root)
        })
        .await
        .expect("the cache write does not panic")
        .map_err(|source| RefreshError::WriteCache { source })?;
        self.replace(loaded.root, RootOrigin::Mirror);
        Ok(())
    }

    /// [`Self::refresh`], logged by the fallback rule: success at info, an unreachable mirror
    /// as a warning once per outage (then at debug), anything else as an error.
    pub async fn refresh_logged(&self) {
        let Some(tuf) = &self.inner.tuf else {
            return;
        };
        let mirror = tuf.config.mirror.as_str();
        match self.refresh().await {
            Ok(()) => {
                self.inner
                    .warned_unreachable
                    .store(false, Ordering::Relaxed);
                tracing::info!(mirror, "Sigstore trusted root refreshed over TUF");
            }
            Err(e) if e.is_unreachable() => {
                let error = report(&e);
                if self.inner.warned_unreachable.swap(true, Ordering::Relaxed) {
                    tracing::debug!(mirror, error, "TUF mirror still unreachable");
                } else {
                    tracing::warn!(
                        mirror,
                        error,
                        origin = ?self.origin(),
                        "TUF mirror unreachable: keyless verification keeps the current Sigstore trusted root"
                    );
                }
            }
            Err(e) => tracing::error!(
                mirror,
                error = report(&e),
                origin = ?self.origin(),
                "TUF refresh refused: keyless verification keeps the current Sigstore trusted root"
            ),
        }
    }

    /// The server's refresher: loads the cache, refreshes, then refreshes every `interval`
    /// until `stop` is cancelled. Verification never waits on it.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        if self.inner.tuf.is_none() {
            return;
        }
        match self.load_cache().await {
            Ok(true) => tracing::info!("Sigstore trusted root loaded from the TUF cache"),
            Ok(false) => {}
            Err(e) => tracing::info!(error = report(&e), "TUF cache not used"),
        }
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.refresh_logged() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    fn replace(&self, root: TrustedRoot, origin: RootOrigin) {
        *self.inner.current.write() = (Arc::new(root), origin);
    }
}

/// One TUF load (tough, expiry enforced, the cache's datastore) and the verified
/// `trusted_root.json` target.
async fn load<T: Transport + Send + Sync + 'static>(
    tuf: &Tuf,
    root: &[u8],
    metadata: Url,
    targets: Url,
    transport: T,
) -> Result<Loaded, RefreshError> {
    let mirror = || tuf.config.mirror.clone();
    let datastore = tuf
        .cache
        .datastore()
        .map_err(|source| RefreshError::WriteCache { source })?;
    let repository = RepositoryLoader::new(&root, metadata, targets)
        .transport(transport)
        .datastore(datastore)
        .expiration_enforcement(ExpirationEnforcement::Safe)
        .load()
        .await
        .map_err(|source| {
            let source = Box::new(source);
            if transport::is_unreachable(&*source) {
                RefreshError::Unreachable {
                    mirror: mirror(),
                    source,
                }
            } else {
                RefreshError::LoadRepository {
                    mirror: mirror(),
                    source,
                }
            }
        })?;
    let read_error = |source| RefreshError::ReadTarget {
        mirror: mirror(),
        source: Box::new(source),
    };
    let name = TargetName::new(TRUSTED_ROOT_TARGET).map_err(read_error)?;
    let stream = repository
        .read_target(&name)
        .await
        .map_err(read_error)?
        .ok_or_else(|| RefreshError::MissingTarget { mirror: mirror() })?;
    let bytes = stream.into_vec().await.map_err(read_error)?;
    let root = TrustedRoot::from_json(&bytes).map_err(|source| RefreshError::ParseTarget {
        mirror: mirror(),
        source,
    })?;
    Ok(Loaded { root, repository })
}

/// `error` and its causes, `: `-separated, for one log field.
fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_public_good_tuf_root_is_version_15_and_signed_by_its_threshold() {
        let root: tough::schema::Signed<tough::schema::Root> =
            serde_json::from_slice(PUBLIC_GOOD_TUF_ROOT).unwrap();
        assert_eq!(root.signed.version.get(), 15);
        root.signed.verify_role(&root).unwrap();
    }

    #[test]
    fn the_mirror_url_gets_a_trailing_slash_and_targets_under_it() {
        let config = TufConfig::new(
            "https://tuf.test/sigstore".parse().unwrap(),
            PathBuf::from("/tmp/c"),
        );
        let provider = TrustedRootProvider::new(config).unwrap();
        let tuf = provider.inner.tuf.as_ref().unwrap();
        assert_eq!(tuf.metadata_url.as_str(), "https://tuf.test/sigstore/");
        assert_eq!(
            tuf.targets_url.as_str(),
            "https://tuf.test/sigstore/targets/"
        );
        assert_eq!(provider.origin(), RootOrigin::Embedded);
    }

    #[test]
    fn an_embedded_provider_never_refreshes() {
        let provider = TrustedRootProvider::embedded();
        assert!(!provider.refresh_due(Duration::ZERO));
        assert_eq!(provider.origin(), RootOrigin::Embedded);
    }
}
