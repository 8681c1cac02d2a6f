//! The end of a HelmChart reconcile: Flux's conditions, events and status for a stored or
//! up-to-date chart ([`HelmChartReconciler::succeed`]; `ArtifactInStorage`/`Ready` with reason
//! `ChartPullSucceeded` or `ChartPackageSucceeded`), and the shared error policy's status
//! write for a failed step ([`HelmChartReconciler::record_failure`]).

use openapi::Artifact;
use openapi::conditions::{self, reasons, types};
use openapi::v1::HelmChart;

use super::super::backoff::jittered;
use super::super::events::EventType;
use super::super::failure::{FailureKind, StepFailure, blocking, mark_failed, now};
use super::super::runtime::{Action, chain};
use super::source::Outcome;
use super::{Error, HelmChartReconciler, Progress, artifact_url, latest_url, object_ref};

/// Conditions cleared by a successful reconcile.
const CLEARED_ON_SUCCESS: [&str; 6] = [
    types::FETCH_FAILED,
    types::BUILD_FAILED,
    types::STORAGE_OPERATION_FAILED,
    types::ARTIFACT_OUTDATED,
    types::RECONCILING,
    types::STALLED,
];

impl HelmChartReconciler {
    /// Success: the artifact in the status, `ArtifactInStorage` and `Ready` True, an event
    /// for a new artifact, one status write, and the next reconcile at the jittered
    /// `spec.interval`.
    pub(super) async fn succeed(
        &self,
        obj: &HelmChart,
        mut progress: Progress,
        outcome: Outcome,
    ) -> Result<Action, Error> {
        let generation = obj.metadata.generation.unwrap_or(0);
        let interval = openapi::duration::parse_go_duration(&obj.spec.interval)
            .unwrap_or(std::time::Duration::from_secs(600));
        let status = &mut progress.status;
        let previous = status.artifact.as_ref().map(|a| a.digest.clone());
        let (reason, message) = match outcome {
            Outcome::UpToDate { revision } => {
                let same = conditions::get(&status.conditions, types::ARTIFACT_IN_STORAGE)
                    .filter(|c| c.status == "True")
                    .map(|c| (c.reason.clone(), c.message.clone()));
                let reason = match same.as_ref().map(|s| s.0.as_str()) {
                    Some(reasons::CHART_PACKAGE_SUCCEEDED) => reasons::CHART_PACKAGE_SUCCEEDED,
                    _ => reasons::CHART_PULL_SUCCEEDED,
                };
                let message = same.map_or_else(
                    || format!("artifact up-to-date with remote revision: '{revision}'"),
                    |s| s.1,
                );
                (reason, message)
            }
            Outcome::Stored(built) => {
                let object = object_ref(obj);
                self.update_latest_link(&built.stored.path).await;
                let url = artifact_url(
                    &self.config.base.urls,
                    &built.stored.path,
                    &object.namespace,
                    &object.name,
                );
                status.artifact = Some(Artifact {
                    url,
                    path: built.stored.path,
                    revision: built.revision.clone(),
                    digest: built.stored.digest,
                    last_update_time: now(),
                    size: Some(built.stored.size as i64),
                    metadata: Some(built.metadata),
                });
                status.url = Some(latest_url(
                    &self.config.base.urls,
                    &object.namespace,
                    &object.name,
                ));
                status.observed_chart_name = Some(obj.spec.chart.clone());
                status.observed_values_files =
                    match (&built.merged, obj.spec.ignore_missing_values_files) {
                        (Some(found), Some(true)) => Some(found.clone()),
                        _ => None,
                    };
                match &built.merged {
                    Some(files) => (
                        reasons::CHART_PACKAGE_SUCCEEDED,
                        format!(
                            "packaged '{}' chart with version '{}' and merged values files [{}]",
                            built.name,
                            built.revision,
                            files.join(" ")
                        ),
                    ),
                    None => (
                        reasons::CHART_PULL_SUCCEEDED,
                        format!(
                            "pulled '{}' chart with version '{}'",
                            built.name, built.revision
                        ),
                    ),
                }
            }
        };
        let had_failure = [
            types::FETCH_FAILED,
            types::BUILD_FAILED,
            types::STORAGE_OPERATION_FAILED,
        ]
        .iter()
        .any(|t| conditions::is_true(&status.conditions, t));
        let (g, ts, c) = (Some(generation), now(), &mut status.conditions);
        for t in CLEARED_ON_SUCCESS {
            conditions::delete(c, t);
        }
        conditions::mark_true(
            c,
            types::ARTIFACT_IN_STORAGE,
            reason,
            &message,
            g,
            ts.clone(),
        );
        conditions::mark_true(c, types::READY, reason, &message, g, ts);
        status.observed_generation = Some(generation);
        let current = status.artifact.as_ref().map(|a| a.digest.clone());
        if current != previous || had_failure {
            self.event(obj, EventType::Normal, reason, &message);
        }
        self.write_status(obj, &mut progress).await?;
        Ok(Action::Requeue(jittered(
            interval,
            self.config.base.interval_jitter,
        )))
    }

    /// Points `latest.tar.gz` at the new chart (best effort, as Flux's `Symlink`):
    /// [`storage::ArtifactStore::update_latest_link`].
    async fn update_latest_link(&self, path: &str) {
        let (store, path) = (self.artifacts.clone(), path.to_owned());
        let linked = blocking(move || store.update_latest_link(&path)).await;
        if let Ok(Err(e)) = linked {
            tracing::debug!(error = %chain(&e), "updating latest.tar.gz failed");
        }
    }

    /// The error policy of a failed step: its conditions, a Warning event, the status write,
    /// then backoff — or nothing until the spec changes for a stalled object.
    pub(super) async fn record_failure(
        &self,
        obj: &HelmChart,
        failure: &StepFailure,
        progress: &Progress,
    ) -> Action {
        let mut progress = progress.clone();
        let generation = obj.metadata.generation.unwrap_or(0);
        let url = format!("{}/{}", obj.spec.source_ref.name, obj.spec.chart);
        mark_failed(&mut progress, failure, &url, generation);
        self.event(obj, EventType::Warning, failure.reason, &failure.message);
        if let Err(error) = self.write_status(obj, &mut progress).await {
            tracing::warn!(error = %chain(&error), "writing the failed status failed");
        }
        match failure.kind {
            FailureKind::Stalled => Action::AwaitChange,
            _ => Action::Backoff,
        }
    }
}
