//! [`Peers::fetch`] against an in-process leader whose answers are knobs: the right bytes, wrong
//! bytes, an error status, an error only the first time; it counts the requests it gets. The
//! leader record comes from a fixed lock (no etcd needed here; the real lock is tested in
//! `storage/tests/leader_lock.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use sha2::{Digest as _, Sha256};
use storage::BoxFuture;
use storage::etcd::lease::Acquire;

use super::{Error, PEER_HEADER, Peers};
use crate::leader::{ElectionConfig, LeaderElector, LeaderRecord, LeaseLock};

/// Someone else leads, at `record`'s peer address.
#[derive(Debug)]
struct OtherLeader(Vec<u8>);

impl LeaseLock for OtherLeader {
    fn try_acquire<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, storage::Result<Acquire>> {
        Box::pin(async move { Ok(Acquire::Held(self.0.clone())) })
    }
    fn renew(&self) -> BoxFuture<'_, storage::Result<bool>> {
        Box::pin(async { Ok(false) })
    }
    fn released(&self) -> BoxFuture<'_, storage::Result<()>> {
        Box::pin(std::future::pending())
    }
    fn holder(&self) -> BoxFuture<'_, storage::Result<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(Some(self.0.clone())) })
    }
    fn release(&self) -> BoxFuture<'_, storage::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

const GOOD: &[u8] = b"the leader's artifact bytes";

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A leader's artifact listener: `good.tar.gz` is [`GOOD`], `bad.tar.gz` other bytes,
/// `flaky.tar.gz` a 503 to the first request and [`GOOD`] afterwards, anything else 404; every
/// request must carry [`PEER_HEADER`] (else 400).
async fn leader() -> String {
    counting_leader().await.0
}

/// [`leader`], and the number of requests it has answered.
async fn counting_leader() -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = Router::new().route(
        "/{*path}",
        get(
            move |headers: HeaderMap, Path(path): Path<String>| async move {
                let earlier = counted.fetch_add(1, Ordering::SeqCst);
                if !headers.contains_key(PEER_HEADER) {
                    return (StatusCode::BAD_REQUEST, Vec::new());
                }
                match path.rsplit('/').next() {
                    Some("good.tar.gz") => (StatusCode::OK, GOOD.to_vec()),
                    Some("bad.tar.gz") => (StatusCode::OK, b"tampered".to_vec()),
                    Some("flaky.tar.gz") if earlier == 0 => {
                        (StatusCode::SERVICE_UNAVAILABLE, Vec::new())
                    }
                    Some("flaky.tar.gz") => (StatusCode::OK, GOOD.to_vec()),
                    _ => (StatusCode::NOT_FOUND, Vec::new()),
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), requests)
}

async fn follower(
    dir: &std::path::Path,
    peer: Option<String>,
) -> (Arc<Peers>, storage::ArtifactStore) {
    let record = LeaderRecord {
        holder_identity: "leader".into(),
        lease_duration_seconds: 15,
        acquire_time: "2026-01-01T00:00:00Z".into(),
        peer_address: peer,
    };
    let elector = LeaderElector::new(
        Arc::new(OtherLeader(serde_json::to_vec(&record).unwrap())),
        ElectionConfig {
            name: "test".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            identity: "follower".into(),
            peer_address: None,
        },
    );
    let store = storage::SqliteStore::open(&dir.join("db"), storage::SqliteConfig::default())
        .await
        .unwrap();
    let artifacts = storage::ArtifactStore::open(dir).unwrap();
    let peers = Peers::new(
        elector,
        artifacts.clone(),
        store,
        Duration::from_secs(60),
        2,
    );
    (peers, artifacts)
}

#[tokio::test]
async fn a_follower_keeps_the_leaders_bytes_only_when_they_match_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (peers, artifacts) = follower(dir.path(), Some(leader().await)).await;

    let good = "ocirepository/default/podinfo/good.tar.gz";
    peers.fetch(good, &digest(GOOD)).await.unwrap();
    let stored = artifacts.open_verified(good, Some(&digest(GOOD))).unwrap();
    assert_eq!(stored.size, GOOD.len() as u64);

    // Bytes that do not hash to status.artifact.digest are dropped before they are visible.
    let bad = "ocirepository/default/podinfo/bad.tar.gz";
    match peers
        .fetch(bad, &digest(GOOD))
        .await
        .as_ref()
        .map_err(|e| &**e)
    {
        Err(Error::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, &digest(GOOD));
            assert_eq!(actual, &digest(b"tampered"));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(
        artifacts.open_read(bad).is_err(),
        "the wrong bytes were kept"
    );
    let leftovers: Vec<_> =
        std::fs::read_dir(artifacts.root().join("ocirepository/default/podinfo"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "good.tar.gz")
            .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The leader does not hold it either: an error, nothing stored.
    let missing = "ocirepository/default/podinfo/missing.tar.gz";
    assert!(matches!(
        peers.fetch(missing, &digest(GOOD)).await.as_ref().map_err(|e| &**e),
        Err(Error::Status { status, .. }) if *status == StatusCode::NOT_FOUND
    ));
}

#[tokio::test]
async fn concurrent_fetches_of_one_artifact_make_one_request_to_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = counting_leader().await;
    let (peers, artifacts) = follower(dir.path(), Some(url)).await;
    let good = "ocirepository/default/podinfo/good.tar.gz";

    // join_all polls every fetch once before any can finish (the first one's request is on
    // the wire): all 16 are in flight together.
    let expected = digest(GOOD);
    let fetches = (0..16).map(|_| peers.fetch(good, &expected));
    for fetched in futures::future::join_all(fetches).await {
        fetched.unwrap();
    }
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "16 concurrent requests for one missing artifact fetch it once"
    );
    assert!(artifacts.open_verified(good, Some(&expected)).is_ok());

    // Held now: a later request fetches nothing.
    peers.fetch(good, &expected).await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_fetch_is_shared_by_its_waiters_and_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = counting_leader().await;
    let (peers, artifacts) = follower(dir.path(), Some(url)).await;
    let flaky = "ocirepository/default/podinfo/flaky.tar.gz";
    let expected = digest(GOOD);

    let fetches = (0..8).map(|_| peers.fetch(flaky, &expected));
    for fetched in futures::future::join_all(fetches).await {
        assert!(
            matches!(fetched.as_ref().map_err(|e| &**e),
                Err(Error::Status { status, .. }) if *status == StatusCode::SERVICE_UNAVAILABLE),
            "{fetched:?}"
        );
    }
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "one request for 8 waiters"
    );
    assert!(artifacts.open_read(flaky).is_err());

    // The failure is not remembered: the next request asks the leader again, and succeeds.
    peers.fetch(flaky, &expected).await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert!(artifacts.open_verified(flaky, Some(&expected)).is_ok());
}

#[tokio::test]
async fn without_a_peer_address_nothing_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let (peers, _) = follower(dir.path(), None).await;
    let fetched = peers
        .fetch("ocirepository/default/podinfo/good.tar.gz", &digest(GOOD))
        .await;
    assert!(
        matches!(fetched.as_ref().map_err(|e| &**e), Err(Error::NoPeer)),
        "{fetched:?}"
    );
}
