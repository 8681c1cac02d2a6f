//! The storage step of a reconcile (`flux-source-controller.md` §2.3): garbage collection by
//! retention, the presence and integrity of the current artifact, its URLs, and the
//! `latest.tar.gz` link (made by the artifact store).
//!
//! Integrity is Flux's `Storage.VerifyArtifact`: the file's size and sha256 must equal
//! `status.artifact.size` and `status.artifact.digest`. A file that is missing, of another size
//! or another digest is removed and rebuilt by this reconcile. Hashing a large artifact on
//! every reconcile is costly, so [`ArtifactStore::verify`] hashes a file again only when its
//! identity (inode, size, modification and change times) changed — any write to it, a
//! replacement or a truncation changes it.

use std::collections::BTreeMap;

use openapi::Artifact;
use openapi::conditions::{self, types};
use openapi::v1::OCIRepository;
use storage::ArtifactStore;

use super::super::events::EventType;
use super::super::runtime::chain;
use super::{ARTIFACT_KIND, Error, OCIRepositoryReconciler, Progress, blocking, object_ref};

/// The verdict on the current artifact.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Present with the recorded size and digest.
    Intact,
    /// No file.
    Missing,
    /// A file of another size or digest (or unreadable): removed.
    Corrupt(String),
}

/// Checks the file of `artifact` (blocking): its size against `status.artifact.size`, then its
/// sha256 through [`ArtifactStore::verify`], which hashes a file again only when its identity
/// (inode, size, modification and change times) changed. A corrupt file is removed.
fn verify(store: &ArtifactStore, artifact: &Artifact) -> Verdict {
    let path = match store.path(&artifact.path) {
        Ok(p) => p,
        Err(e) => return Verdict::Corrupt(chain(&e)),
    };
    let size = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::Missing,
        Err(e) => return Verdict::Corrupt(e.to_string()),
    };
    let problem = match artifact.size {
        Some(expected) if expected as u64 != size => {
            Some(format!("size {size} differs from {expected} bytes"))
        }
        _ => match store.verify(&artifact.path, &artifact.digest) {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "computed digest doesn't match '{}'",
                artifact.digest
            )),
            Err(e) => Some(chain(&e)),
        },
    };
    match problem {
        None => Verdict::Intact,
        Some(problem) => {
            let _ = std::fs::remove_file(&path);
            Verdict::Corrupt(problem)
        }
    }
}

impl OCIRepositoryReconciler {
    /// Garbage-collects old artifacts and checks the current one. A missing or corrupt
    /// artifact is dropped from `progress.status` so this reconcile rebuilds it; an intact one
    /// gets its URLs for the current settings.
    pub(super) async fn check_storage(
        &self,
        obj: &OCIRepository,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let Some(artifact) = progress.status.artifact.clone() else {
            return Ok(());
        };
        self.collect_garbage(obj, &artifact).await?;
        let store = self.artifacts.clone();
        let checked = artifact.clone();
        let verdict = blocking(move || verify(&store, &checked)).await?;
        let object = object_ref(obj);
        let status = &mut progress.status;
        let gone = match verdict {
            Verdict::Intact => {
                let urls = &self.config.urls;
                let (ns, name) = (object.namespace.as_str(), object.name.as_str());
                if let Some(a) = status.artifact.as_mut() {
                    a.url = urls.artifact(&a.path, ns, name, &a.revision);
                }
                status.url = Some(urls.latest(ns, name));
                return Ok(());
            }
            Verdict::Missing => "disappeared from storage",
            Verdict::Corrupt(problem) => {
                let message = format!("failed to verify integrity of artifact: {problem}");
                let events = &self.events;
                events.record(
                    &object,
                    EventType::Warning,
                    "ArtifactVerificationFailed",
                    &message,
                    &BTreeMap::new(),
                );
                "disappeared from storage"
            }
        };
        status.artifact = None;
        status.url = None;
        conditions::delete(&mut status.conditions, types::ARTIFACT_IN_STORAGE);
        progress.reconciling = format!("building artifact: {gone}");
        Ok(())
    }

    async fn collect_garbage(&self, obj: &OCIRepository, artifact: &Artifact) -> Result<(), Error> {
        let object = object_ref(obj);
        let (store, ns, name) = (
            self.artifacts.clone(),
            object.namespace.clone(),
            object.name.clone(),
        );
        let keep = artifact.path.clone();
        let (ttl, records) = (self.config.retention_ttl, self.config.retention_records);
        let collected =
            blocking(move || store.garbage_collect(ARTIFACT_KIND, &ns, &name, &keep, ttl, records))
                .await?;
        match collected {
            Ok(deleted) if !deleted.is_empty() => {
                let message = format!("garbage collected {} artifacts", deleted.len());
                self.events.record(
                    &object,
                    EventType::Trace,
                    "GarbageCollectionSucceeded",
                    &message,
                    &BTreeMap::new(),
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %chain(&e), "artifact garbage collection failed"),
        }
        Ok(())
    }

    /// Points `latest.tar.gz` in the object's directory at the new artifact (best effort, as
    /// Flux's `Symlink`): [`ArtifactStore::update_latest_link`].
    pub(super) async fn update_latest_link(&self, path: &str) {
        let (store, path) = (self.artifacts.clone(), path.to_owned());
        if let Ok(Err(e)) = blocking(move || store.update_latest_link(&path)).await {
            tracing::debug!(error = %chain(&e), "updating latest.tar.gz failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(store: &ArtifactStore, content: &[u8]) -> Artifact {
        let mut w = store
            .create(ARTIFACT_KIND, "default", "app", "abc.tar.gz")
            .unwrap();
        std::io::Write::write_all(&mut w, content).unwrap();
        let s = w.finish().unwrap();
        Artifact {
            path: s.path,
            url: String::new(),
            revision: "latest@sha256:abc".into(),
            digest: s.digest,
            last_update_time: super::super::now(),
            size: Some(s.size as i64),
            metadata: None,
        }
    }

    #[test]
    fn a_missing_or_corrupt_artifact_is_detected_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let artifact = stored(&store, b"the artifact");
        assert_eq!(verify(&store, &artifact), Verdict::Intact);
        assert_eq!(verify(&store, &artifact), Verdict::Intact, "from the cache");
        let file = store.path(&artifact.path).unwrap();

        // Same size, other bytes: only the digest can tell, even after a cached verdict.
        std::fs::write(&file, b"THE ARTIFACT").unwrap();
        let verdict = verify(&store, &artifact);
        assert!(
            matches!(&verdict, Verdict::Corrupt(m) if m.contains("computed digest doesn't match")),
            "{verdict:?}"
        );
        assert!(!file.exists(), "a corrupt artifact is removed");

        // Truncated: the size tells at once.
        let artifact = stored(&store, b"the artifact");
        std::fs::write(&file, b"the").unwrap();
        let verdict = verify(&store, &artifact);
        assert!(
            matches!(&verdict, Verdict::Corrupt(m) if m.contains("size 3 differs from 12 bytes")),
            "{verdict:?}"
        );
        assert_eq!(verify(&store, &artifact), Verdict::Missing);
    }
}
