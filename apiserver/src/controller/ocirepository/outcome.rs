//! The end of an OCIRepository reconcile: Flux's conditions, events and status write for a
//! success ([`OCIRepositoryReconciler::succeed`]) and, in the one error policy, for a failed
//! step ([`OCIRepositoryReconciler::record_failure`]).

use std::collections::BTreeMap;

use openapi::Artifact;
use openapi::conditions::{self, reasons, types};
use openapi::v1::{OCIRepository, OCIRepositoryStatus};

use super::super::backoff::jittered;
use super::super::events::EventType;
use super::super::failure::mark_failed;
use super::super::runtime::{Action, chain};
use super::source::Source;
use super::spec::Spec;
use super::{Error, FailureKind, OCIRepositoryReconciler, Progress, StepFailure, now, object_ref};

/// Conditions cleared by a successful reconcile.
const CLEARED_ON_SUCCESS: [&str; 5] = [
    types::FETCH_FAILED,
    types::STORAGE_OPERATION_FAILED,
    types::ARTIFACT_OUTDATED,
    types::RECONCILING,
    types::STALLED,
];

/// `ArtifactInStorage` and `Ready` True with `message`, the failure conditions cleared.
fn mark_ready(status: &mut OCIRepositoryStatus, message: &str, generation: i64) {
    let (g, ts, c) = (Some(generation), now(), &mut status.conditions);
    for t in CLEARED_ON_SUCCESS {
        conditions::delete(c, t);
    }
    conditions::mark_true(
        c,
        types::ARTIFACT_IN_STORAGE,
        reasons::SUCCEEDED,
        message,
        g,
        ts.clone(),
    );
    conditions::mark_true(c, types::READY, reasons::SUCCEEDED, message, g, ts);
    status.observed_generation = Some(generation);
}

impl OCIRepositoryReconciler {
    /// Success: the new or unchanged artifact in the status, `Ready=True`, the events, one
    /// status write, and the next reconcile at the jittered `spec.interval`.
    pub(super) async fn succeed(
        &self,
        obj: &OCIRepository,
        spec: &Spec,
        mut progress: Progress,
        source: Source,
    ) -> Result<Action, Error> {
        let old = obj.status.clone().unwrap_or_default();
        let generation = obj.metadata.generation.unwrap_or(0);
        let revision = match source {
            Source::UpToDate { revision } => {
                let message = format!("artifact up-to-date with remote revision: '{revision}'");
                self.event(
                    obj,
                    EventType::Trace,
                    reasons::ARTIFACT_UP_TO_DATE,
                    &message,
                    BTreeMap::new(),
                );
                revision
            }
            Source::Stored {
                revision,
                stored,
                written_at,
                annotations,
            } => {
                self.update_latest_link(&stored.path).await;
                let object = object_ref(obj);
                let (ns, name) = (object.namespace.as_str(), object.name.as_str());
                let status = &mut progress.status;
                status.artifact = Some(Artifact {
                    url: self.config.urls.artifact(&stored.path, ns, name, &revision),
                    path: stored.path,
                    revision: revision.clone(),
                    digest: stored.digest,
                    last_update_time: written_at,
                    size: Some(stored.size as i64),
                    metadata: annotations.filter(|a| !a.is_empty()),
                });
                status.url = Some(self.config.urls.latest(ns, name));
                status.observed_ignore = obj.spec.ignore.clone();
                status.observed_layer_selector = obj.spec.layer_selector.clone();
                revision
            }
        };
        let message = format!("stored artifact for digest '{revision}'");
        mark_ready(&mut progress.status, &message, generation);
        self.announce(obj, &old, &progress.status, &revision);
        self.write_status(obj, &mut progress).await?;
        Ok(Action::Requeue(jittered(
            spec.interval,
            self.config.interval_jitter,
        )))
    }

    /// The progress update before a pull (Flux's deferred "building artifact" patch):
    /// `ArtifactOutdated` when an artifact of another revision is stored, `Reconciling` and
    /// `Ready=Unknown` saying which revision is being built, written at once. A retry whose
    /// `Ready=False` already says why the last pull failed writes nothing (Ready stays False;
    /// the failure's status write follows).
    pub(super) async fn mark_building(
        &self,
        obj: &OCIRepository,
        progress: &mut Progress,
        revision: &str,
        reference: &str,
    ) {
        let stored = progress.status.artifact.as_ref();
        if stored.is_some_and(|a| a.has_revision(revision)) {
            return; // Only the ignore rules or layer selector changed: no new revision.
        }
        let message = format!("new revision '{revision}' for '{reference}'");
        progress.reconciling = format!("building artifact: {message}");
        let generation = obj.metadata.generation;
        let retry = conditions::get(&progress.status.conditions, types::READY)
            .is_some_and(|r| r.status == "False" && r.observed_generation == generation);
        if retry {
            return;
        }
        let (ts, status) = (now(), &mut progress.status);
        let c = &mut status.conditions;
        if status.artifact.is_some() {
            let r = reasons::NEW_REVISION;
            conditions::mark_true(
                c,
                types::ARTIFACT_OUTDATED,
                r,
                &message,
                generation,
                ts.clone(),
            );
        }
        let (r, m) = (reasons::PROGRESSING, &progress.reconciling);
        conditions::mark_true(c, types::RECONCILING, r, m, generation, ts.clone());
        conditions::mark_unknown(c, types::READY, r, m, generation, ts);
        if let Err(error) = self.write_status(obj, progress).await {
            tracing::warn!(error = %chain(&error), "writing the progress status failed");
        }
    }

    /// `NewArtifact` for a new digest, `Succeeded` when recovering from a failure.
    fn announce(
        &self,
        obj: &OCIRepository,
        old: &OCIRepositoryStatus,
        status: &OCIRepositoryStatus,
        revision: &str,
    ) {
        let artifact = status
            .artifact
            .as_ref()
            .expect("a ready status has an artifact");
        let mut message = format!(
            "stored artifact with revision '{revision}' from '{}'",
            obj.spec.url
        );
        if let Some(meta) = &artifact.metadata
            && let (Some(src), Some(rev)) = (
                meta.get("org.opencontainers.image.source"),
                meta.get("org.opencontainers.image.revision"),
            )
        {
            message.push_str(&format!(", origin source '{src}', origin revision '{rev}'"));
        }
        let annotations = BTreeMap::from([
            (
                "source.toolkit.fluxcd.io/revision".to_owned(),
                revision.to_owned(),
            ),
            (
                "source.toolkit.fluxcd.io/digest".to_owned(),
                artifact.digest.clone(),
            ),
        ]);
        let had_failure = [
            types::FETCH_FAILED,
            types::STORAGE_OPERATION_FAILED,
            types::STALLED,
        ]
        .iter()
        .any(|t| conditions::is_true(&old.conditions, t));
        let previous = old.artifact.as_ref().map(|a| a.digest.as_str());
        if previous != Some(artifact.digest.as_str()) {
            self.event(obj, EventType::Normal, "NewArtifact", &message, annotations);
        } else if had_failure {
            self.event(
                obj,
                EventType::Normal,
                reasons::SUCCEEDED,
                &message,
                annotations,
            );
        }
    }

    /// The error policy of a failed step: its conditions, a Warning event, the status write,
    /// then backoff — or nothing until the spec changes for a stalled object.
    pub(super) async fn record_failure(
        &self,
        obj: &OCIRepository,
        failure: &StepFailure,
        progress: &Progress,
    ) -> Action {
        let mut progress = progress.clone();
        let generation = obj.metadata.generation.unwrap_or(0);
        mark_failed(&mut progress, failure, &obj.spec.url, generation);
        self.event(
            obj,
            EventType::Warning,
            failure.reason,
            &failure.message,
            BTreeMap::new(),
        );
        if let Err(error) = self.write_status(obj, &mut progress).await {
            tracing::warn!(error = %chain(&error), "writing the failed status failed");
        }
        match failure.kind {
            FailureKind::Stalled => Action::AwaitChange,
            _ => Action::Backoff,
        }
    }

    fn event(
        &self,
        obj: &OCIRepository,
        event_type: EventType,
        reason: &str,
        message: &str,
        annotations: BTreeMap<String, String>,
    ) {
        self.events
            .record(&object_ref(obj), event_type, reason, message, &annotations);
    }
}
