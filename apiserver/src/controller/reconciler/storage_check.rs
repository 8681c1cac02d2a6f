//! The storage step of a reconcile (`flux-source-controller.md` §2.3): garbage collection by
//! retention, presence and integrity of the current artifact, and the `latest.tar.gz` link.

use std::collections::BTreeMap;

use openapi::Artifact;

use super::super::events::{EventType, ObjectRef};
use super::super::fetch;
use super::{ARTIFACT_KIND, Error, Reconciler, blocking};

impl Reconciler {
    /// Garbage-collects old artifacts and checks the current one. Returns why the artifact is
    /// gone (`None` when it is present and intact).
    pub(super) async fn check_storage(
        &self,
        artifact: &Artifact,
        object: &ObjectRef,
    ) -> Result<Option<&'static str>, Error> {
        let store = self.artifacts.clone();
        let (ns, name) = (object.namespace.clone(), object.name.clone());
        let (path, digest) = (artifact.path.clone(), artifact.digest.clone());
        let (ttl, records) = (self.config.retention_ttl, self.config.retention_records);
        let known_good = self
            .verified
            .lock()
            .contains(&(path.clone(), digest.clone()));
        let (collected, verdict) = blocking(move || {
            let collected = store.garbage_collect(ARTIFACT_KIND, &ns, &name, &path, ttl, records);
            let verdict = if known_good {
                store.path(&path).map(|p| p.is_file().then_some(true))
            } else {
                match store.path(&path) {
                    Ok(p) if !p.is_file() => Ok(None),
                    Ok(_) => store.verify(&path, &digest).map(Some),
                    Err(e) => Err(e),
                }
            };
            (collected, verdict)
        })
        .await?;
        match collected {
            Ok(deleted) if !deleted.is_empty() => self.events.record(
                object,
                EventType::Trace,
                "GarbageCollectionSucceeded",
                &format!("garbage collected {} artifacts", deleted.len()),
                &BTreeMap::new(),
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %fetch::chain(&e), "artifact garbage collection failed")
            }
        }
        let key = (artifact.path.clone(), artifact.digest.clone());
        match verdict {
            Ok(Some(true)) => {
                self.verified.lock().insert(key);
                Ok(None)
            }
            Ok(None) => {
                self.verified.lock().remove(&key);
                Ok(Some("disappeared from storage"))
            }
            Ok(Some(false)) | Err(_) => {
                self.verified.lock().remove(&key);
                self.events.record(
                    object,
                    EventType::Warning,
                    "ArtifactVerificationFailed",
                    &format!("failed to verify integrity of artifact: computed digest doesn't match '{}'", artifact.digest),
                    &BTreeMap::new(),
                );
                let store = self.artifacts.clone();
                let path = artifact.path.clone();
                blocking(move || {
                    if let Ok(p) = store.path(&path) {
                        let _ = std::fs::remove_file(p);
                    }
                })
                .await?;
                Ok(Some("disappeared from storage"))
            }
        }
    }

    /// Points `latest.tar.gz` in the object's directory at the new artifact (best effort, as
    /// Flux's `Symlink`).
    pub(super) async fn update_latest_link(&self, path: &str) {
        let Ok(target) = self.artifacts.path(path) else {
            return;
        };
        let result = blocking(move || -> std::io::Result<()> {
            let dir = target.parent().expect("artifact paths have a directory");
            let file = target.file_name().expect("artifact paths have a file name");
            let tmp = dir.join(format!(".tmp-link-{}", uuid::Uuid::new_v4().simple()));
            std::os::unix::fs::symlink(file, &tmp)?;
            std::fs::rename(&tmp, dir.join("latest.tar.gz"))
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::debug!(error = %e, "updating latest.tar.gz failed");
        }
    }
}
