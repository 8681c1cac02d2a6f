//! Artifacts from every replica without a shared filesystem: a replica asked for an artifact
//! it does not hold fetches it from the replica that built it, the leader, and serves it only
//! when its sha256 equals `status.artifact.digest` (`docs/high-availability.md`).
//!
//! * The leader record (`crate::leader::LeaderRecord`) carries the leader's
//!   `--peer-advertise-address`: the `http://host:port` of its `--artifact-listen`, which
//!   serves every artifact at `/<status.artifact.path>`.
//! * The file is streamed into the [`ArtifactStore`] (temporary file, fsync, rename) and hashed
//!   while it is written; bytes whose digest differs from `status.artifact.digest` are
//!   dropped before they are renamed into place, so a wrong or truncated answer is never
//!   served. Integrity rests on the digest read from the shared store, not on the peer.
//! * Requests between replicas carry [`PEER_HEADER`]: a replica answers them from its own
//!   disk only, so two replicas never ask each other in a loop.
//! * The leader never fetches (it rebuilds a missing artifact itself: the reconcile's storage
//!   check re-pulls it from the registry); a follower that cannot fetch answers 503 with
//!   `Retry-After` ([`RETRY_AFTER_SECONDS`]).
//! * After a fetch, the object's older files are collected by the retention flags, as the
//!   leader's reconcile does.
//! * Fetches are single-flight per (`status.artifact.path`, `status.artifact.digest`): requests
//!   for an artifact that is already being fetched await that fetch and share its outcome, so
//!   N concurrent downloads of a missing artifact make one request to the leader. Only the
//!   running fetch is shared: once it ends (or every request awaiting it is dropped) the next
//!   request starts afresh, so a failure is never cached (as Go's `singleflight.Group.Do`).
//!
//! Rebuilding from the registry by digest was the alternative; it needs every replica to hold
//! the registry credentials, verify signatures and reproduce the reconcile's archive byte for
//! byte, where a copy from the leader needs one HTTP GET.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::future::{BoxFuture, Shared, WeakShared};
use parking_lot::Mutex;
use storage::{ArtifactStore, ObjectStore, ResourceKey};

use crate::leader::LeaderElector;

/// The header that marks a request from another replica: answered from local disk only.
pub const PEER_HEADER: &str = "x-source-apiserver-peer";

/// `Retry-After` of the 503 a replica answers when it can neither serve nor fetch an
/// artifact (the leader is changing or still rebuilding it).
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// How long one fetch from the leader may take, body included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Why an artifact could not be obtained from the leader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This replica leads: it builds its artifacts itself and never fetches them.
    #[error("this replica is the leader: a missing artifact is rebuilt by its reconcile")]
    Leading,
    /// No replica leads, or the leader advertises no `--peer-advertise-address`.
    #[error("no leader with a peer address to fetch artifacts from")]
    NoPeer,
    /// Reading the leader record failed.
    #[error("reading the leader record")]
    ReadLeader(#[source] Box<storage::Error>),
    /// The request to the leader failed.
    #[error("fetching {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The leader answered with an error status (it does not hold the artifact either).
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: http::StatusCode,
    },
    /// The bytes do not have the expected digest; they were dropped.
    #[error("the artifact from {url} has digest {actual}, not {expected}")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// `status.artifact.digest`.
        expected: String,
        /// What the bytes hashed to.
        actual: String,
    },
    /// Writing the artifact failed (or the path is not an artifact path).
    #[error("storing {path}")]
    Store {
        /// The relative path.
        path: String,
        /// The cause.
        source: Box<storage::Error>,
    },
}

/// Fetches artifacts from the leader for this replica ([`Peers::fetch`]).
#[derive(Debug)]
pub struct Peers {
    leader: LeaderClient,
    store: Arc<dyn ObjectStore>,
    flights: Arc<Mutex<Flights>>,
}

/// What one fetch needs, cheap to clone into a fetch that outlives the request that started it
/// (while another request still awaits it).
#[derive(Clone, Debug)]
struct LeaderClient {
    elector: Arc<LeaderElector>,
    artifacts: ArtifactStore,
    client: reqwest::Client,
    retention_ttl: Duration,
    retention_records: usize,
}

/// One fetch from the leader; its error is shared by every request that awaited it.
type Fetch = BoxFuture<'static, Result<(), Arc<Error>>>;

/// A [`Fetch`] awaited by every request for the same artifact.
type Flight = Shared<Fetch>;

/// The fetches running, per (path, digest). The map holds them weakly: a fetch whose every
/// request was dropped is dropped too (its partial file is discarded by the digest check).
#[derive(Default)]
struct Flights {
    next_id: u64,
    running: HashMap<(String, String), (u64, WeakShared<Fetch>)>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("running", &self.running.len())
            .finish()
    }
}

/// What a write of the fetched bytes ended with.
enum Chunk {
    Data(Bytes),
    Failed,
}

impl Peers {
    /// Fetches through `elector`'s leader record into `artifacts`, reading `status.artifact`
    /// from `store`; fetched objects keep `retention_records` files younger than
    /// `retention_ttl` (`--artifact-retention-*`).
    ///
    /// # Panics
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(
        elector: Arc<LeaderElector>,
        artifacts: ArtifactStore,
        store: Arc<dyn ObjectStore>,
        retention_ttl: Duration,
        retention_records: usize,
    ) -> Arc<Self> {
        // OpenSSL with the system roots, as the other server clients (an `https`
        // `--peer-advertise-address` verifies against them); reqwest's default here is rustls
        // with no roots.
        let client = reqwest::Client::builder()
            .use_native_tls()
            .connect_timeout(Duration::from_secs(5))
            .timeout(FETCH_TIMEOUT)
            .build()
            .expect("building the peer HTTP client");
        Arc::new(Self {
            leader: LeaderClient {
                elector,
                artifacts,
                client,
                retention_ttl,
                retention_records,
            },
            store,
            flights: Arc::default(),
        })
    }

    /// `status.artifact` (path, digest) of the object whose artifact directory is
    /// `<kind>/<namespace>/<name>` (`ocirepository`, `helmchart`), `None` when the object or
    /// its artifact does not exist.
    pub async fn current(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<(String, String)> {
        let resource = match kind {
            crate::controller::ocirepository::ARTIFACT_KIND => "ocirepositories",
            crate::controller::helmchart::ARTIFACT_KIND => "helmcharts",
            _ => return None,
        };
        let key = ResourceKey::new(openapi::GROUP, resource).object(namespace, name);
        let object = self.store.get(&key).await.ok()?;
        let artifact = &object["status"]["artifact"];
        Some((
            artifact["path"].as_str()?.to_owned(),
            artifact["digest"].as_str()?.to_owned(),
        ))
    }

    /// Fetches `relative` (`status.artifact.path`) from the leader into the artifact store,
    /// keeping it only when its sha256 equals `expected` (`status.artifact.digest`). A fetch of
    /// the same path and digest already running is awaited instead of started again; when the
    /// file is already in place, nothing is fetched.
    ///
    /// # Errors
    /// [`Error`], shared by every request that awaited the same fetch: this replica leads, no
    /// leader or peer address, the request failed or answered an error, the digest differs,
    /// or the file could not be written. The next call after a failure fetches again.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the fetch to the other requests awaiting it; when none is
    /// left the fetch stops and its partial file is removed, never renamed into place.
    pub async fn fetch(&self, relative: &str, expected: &str) -> Result<(), Arc<Error>> {
        self.join(relative, expected).await
    }

    /// The running fetch of (`relative`, `expected`), or a new one registered in the map.
    fn join(&self, relative: &str, expected: &str) -> Flight {
        let key = (relative.to_owned(), expected.to_owned());
        let mut flights = self.flights.lock();
        if let Some(flight) = flights.running.get(&key).and_then(|(_, f)| f.upgrade()) {
            return flight;
        }
        flights.running.retain(|_, (_, f)| f.upgrade().is_some());
        let id = flights.next_id;
        flights.next_id += 1;
        let (leader, registry, done) = (self.leader.clone(), self.flights.clone(), key.clone());
        let flight = async move {
            let result = leader.fetch_once(&done.0, &done.1).await.map_err(Arc::new);
            let mut flights = registry.lock();
            if flights.running.get(&done).is_some_and(|(i, _)| *i == id) {
                flights.running.remove(&done);
            }
            result
        }
        .boxed()
        .shared();
        let weak = flight.downgrade().expect("a new flight has not completed");
        flights.running.insert(key, (id, weak));
        flight
    }
}

impl LeaderClient {
    /// One fetch of [`Peers::fetch`], not shared; skipped when the file is already in place
    /// (renamed there by a fetch that just ended, or built by this replica).
    async fn fetch_once(&self, relative: &str, expected: &str) -> Result<(), Error> {
        let held = self
            .artifacts
            .path(relative)
            .map_err(|source| Error::Store {
                path: relative.to_owned(),
                source: Box::new(source),
            })?;
        if held.exists() {
            return Ok(());
        }
        if self.elector.is_leader() {
            return Err(Error::Leading);
        }
        let leader = self
            .elector
            .leader()
            .await
            .map_err(|e| Error::ReadLeader(Box::new(e)))?;
        let peer = leader
            .filter(|l| l.holder_identity != self.elector.config().identity)
            .and_then(|l| l.peer_address)
            .ok_or(Error::NoPeer)?;
        let url = format!("{}/{relative}", peer.trim_end_matches('/'));
        let fetch = |source| Error::Fetch {
            url: url.clone(),
            source,
        };
        let response = self
            .client
            .get(&url)
            .header(PEER_HEADER, "1")
            .send()
            .await
            .map_err(fetch)?;
        if !response.status().is_success() {
            return Err(Error::Status {
                url,
                status: response.status(),
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let writer = self.write(relative, expected, &url, rx);
        let mut body = response.bytes_stream();
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => Chunk::Data(c),
                Err(e) => {
                    failure = Some(fetch(e));
                    Chunk::Failed
                }
            };
            let failed = matches!(chunk, Chunk::Failed);
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let written = writer.await;
        if let Some(failure) = failure {
            return Err(failure);
        }
        written?;
        tracing::info!(path = %relative, digest = %expected, %peer, "artifact fetched from the leader");
        Ok(())
    }

    /// The blocking half of [`LeaderClient::fetch_once`]: writes the chunks into a temporary file, checks
    /// the digest, renames it into place and collects older files.
    fn write(
        &self,
        relative: &str,
        expected: &str,
        url: &str,
        mut rx: tokio::sync::mpsc::Receiver<Chunk>,
    ) -> impl Future<Output = Result<(), Error>> + use<> {
        let (artifacts, relative, expected, url) = (
            self.artifacts.clone(),
            relative.to_owned(),
            expected.to_owned(),
            url.to_owned(),
        );
        let (ttl, records) = (self.retention_ttl, self.retention_records);
        let task = tokio::task::spawn_blocking(move || {
            let store = |source| Error::Store {
                path: relative.clone(),
                source: Box::new(source),
            };
            let parts: Vec<&str> = relative.split('/').collect();
            let [kind, namespace, name, file] = parts[..] else {
                return Err(store(storage::Error::InvalidPath {
                    value: relative.clone(),
                    reason: "must be <kind>/<namespace>/<name>/<file>",
                }));
            };
            let mut writer = artifacts
                .create(kind, namespace, name, file)
                .map_err(store)?;
            while let Some(chunk) = rx.blocking_recv() {
                let Chunk::Data(bytes) = chunk else {
                    return Ok(()); // the caller reports the fetch error; the writer drops
                };
                writer.write_all(&bytes).map_err(|source| {
                    store(storage::Error::Io {
                        operation: "writing a fetched artifact",
                        path: relative.clone().into(),
                        source,
                    })
                })?;
            }
            let actual = writer.digest();
            if !actual.eq_ignore_ascii_case(&expected) {
                return Err(Error::DigestMismatch {
                    url,
                    expected,
                    actual,
                });
            }
            let stored = writer.finish().map_err(store)?;
            if let Err(error) =
                artifacts.garbage_collect(kind, namespace, name, &stored.path, ttl, records)
            {
                tracing::warn!(%error, "collecting older artifacts after a fetch");
            }
            Ok(())
        });
        async move {
            task.await.map_err(|_| Error::Store {
                path: String::new(),
                source: Box::new(storage::Error::Closed),
            })?
        }
    }
}

#[cfg(test)]
mod tests;
