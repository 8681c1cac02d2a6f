//! The OCIRepository reconciler in process, against real SQLite and artifact storage.

use std::io::Write as _;

use parking_lot::Mutex;

use openapi::conditions::reasons;
use serde_json::json;
use storage::{SqliteConfig, SqliteStore};

use super::*;

/// Records events for assertions.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<(String, String)>>);

impl EventRecorder for Recorded {
    fn record(
        &self,
        _: &ObjectRef,
        _: EventType,
        reason: &str,
        message: &str,
        _: &BTreeMap<String, String>,
    ) {
        self.0.lock().push((reason.to_owned(), message.to_owned()));
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    reconciler: OCIRepositoryReconciler,
    events: Arc<Recorded>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), SqliteConfig::default())
        .await
        .unwrap();
    let artifacts = ArtifactStore::open(dir.path()).unwrap();
    let events = Arc::new(Recorded::default());
    let reconciler = OCIRepositoryReconciler::new(
        store,
        artifacts,
        Arc::new(SecretStore::new(dir.path().join("secrets"))),
        events.clone(),
        ReconcilerConfig {
            limits: registry::Limits::default(),
            retention_ttl: Duration::from_secs(60),
            retention_records: 2,
            urls: ArtifactUrls::Subresource("https://127.0.0.1:1".into()),
            scratch_dir: dir.path().join("tmp"),
            interval_jitter: 0.0,
            sigstore_root: registry::cosign::TrustedRootProvider::embedded(),
        },
    );
    Fixture {
        _dir: dir,
        reconciler,
        events,
    }
}

/// An object whose status points at a stored artifact with `content`.
fn with_artifact(f: &Fixture, content: &[u8]) -> (OCIRepository, Progress) {
    let mut w = f
        .reconciler
        .artifacts
        .create(ARTIFACT_KIND, "default", "app", "0123.tar.gz")
        .unwrap();
    w.write_all(content).unwrap();
    let stored = w.finish().unwrap();
    let obj: OCIRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "app", "namespace": "default", "generation": 1},
        "spec": {"url": "oci://r.example/app", "interval": "1m"},
        "status": {"observedGeneration": 1, "artifact": {
            "path": stored.path, "url": "", "revision": "latest@sha256:0123",
            "digest": stored.digest, "size": stored.size,
            "lastUpdateTime": "2026-01-01T00:00:00Z"},
            "conditions": [{"type": "ArtifactInStorage", "status": "True",
                "reason": reasons::SUCCEEDED, "message": "stored",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .unwrap();
    let progress = Progress {
        read: serde_json::to_value(&obj).unwrap(),
        status: obj.status.clone().unwrap(),
        reconciling: "reconciliation in progress".into(),
    };
    (obj, progress)
}

#[tokio::test]
async fn an_intact_artifact_is_kept_with_its_urls() {
    let f = fixture().await;
    let (obj, mut progress) = with_artifact(&f, b"artifact bytes");
    f.reconciler
        .check_storage(&obj, &mut progress)
        .await
        .unwrap();
    let artifact = progress.status.artifact.expect("kept");
    assert!(
        artifact.url.ends_with(
            "/namespaces/default/ocirepositories/app/artifact?revision=latest%40sha256%3A0123"
        ),
        "the URL names the revision: {}",
        artifact.url
    );
    assert!(
        progress
            .status
            .url
            .is_some_and(|u| u.ends_with("/ocirepositories/app/artifact"))
    );
    assert!(f.events.0.lock().is_empty());
}

/// A stored artifact rewritten on disk with the same size but other bytes: the storage check
/// compares its sha256 with `status.artifact.digest`, removes it and makes the reconcile
/// rebuild it (Flux's `VerifyArtifact`), even after an earlier check had passed.
#[tokio::test]
async fn a_corrupted_artifact_is_detected_and_rebuilt() {
    let f = fixture().await;
    let (obj, progress) = with_artifact(&f, b"artifact bytes");
    let mut first = progress.clone();
    f.reconciler.check_storage(&obj, &mut first).await.unwrap();
    assert!(first.status.artifact.is_some(), "intact at first");

    let file = f
        .reconciler
        .artifacts
        .path("ocirepository/default/app/0123.tar.gz")
        .unwrap();
    std::fs::write(&file, b"ARTIFACT BYTES").unwrap();
    let mut second = progress.clone();
    f.reconciler.check_storage(&obj, &mut second).await.unwrap();
    assert_eq!(
        second.status.artifact, None,
        "dropped so this reconcile rebuilds it"
    );
    assert_eq!(second.status.url, None);
    assert!(conditions::get(&second.status.conditions, types::ARTIFACT_IN_STORAGE).is_none());
    assert_eq!(
        second.reconciling,
        "building artifact: disappeared from storage"
    );
    assert!(!file.exists(), "the corrupt file is never served again");
    let events = f.events.0.lock().clone();
    assert!(
        events
            .iter()
            .any(|(reason, message)| reason == "ArtifactVerificationFailed"
                && message.contains("computed digest doesn't match")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_deleted_artifact_is_rebuilt() {
    let f = fixture().await;
    let (obj, mut progress) = with_artifact(&f, b"artifact bytes");
    let file = f
        .reconciler
        .artifacts
        .path("ocirepository/default/app/0123.tar.gz")
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    f.reconciler
        .check_storage(&obj, &mut progress)
        .await
        .unwrap();
    assert_eq!(progress.status.artifact, None);
    assert_eq!(
        progress.reconciling,
        "building artifact: disappeared from storage"
    );
}
