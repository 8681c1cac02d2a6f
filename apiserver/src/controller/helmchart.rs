//! The HelmChart kind with an OCI `HelmRepository` source (`flux-source-controller.md` §1.4,
//! §4.2): a second [`Reconcile`] implementation on the generic controller. A reconcile runs
//! small steps in Flux's order — deletion and the finalizer, suspend, the new-generation mark,
//! the storage check, then the source steps (`source`: the HelmRepository → credentials →
//! resolve the version → verify → pull the chart layer; `build`: check the archive, merge
//! values files, store `<chart>-<version>.tgz`) — and one status write (`outcome`). Failures
//! are the shared [`StepFailure`]s; the error policy is the shared one
//! ([`super::failure::mark_failed`]).
//!
//! Unlike Flux, a version re-pushed with new content makes a new artifact: the chart's
//! manifest digest is kept in `status.artifact.metadata` and compared on every reconcile.
//!
//! Not here: GitRepository and Bucket sources, HTTP (`type: default`) HelmRepositories,
//! notation, chart dependencies. Keyless verification uses the embedded Sigstore public-good
//! root (HelmChart names no trusted root).

mod build;
mod outcome;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use openapi::conditions::{self, types};
use openapi::meta::RECONCILE_REQUEST_ANNOTATION;
use openapi::v1::{HelmChart, HelmChartStatus};
use serde_json::Value;
use storage::{ArtifactStore, ObjectStore, ResourceKey};

use super::events::{EventRecorder, EventType, ObjectRef};
use super::failure::{self, StepFailure, blocking};
use super::ocirepository::{ArtifactUrls, ReconcilerConfig};
use super::registry_access::ClientCache;
use super::runtime::{Action, Reconcile, chain};
use super::secrets::SecretStore;

/// The storage directory of HelmChart artifacts (Flux: the lower-cased kind).
pub const ARTIFACT_KIND: &str = "helmchart";

/// Where a failed HelmChart reconcile had got to.
type Progress = failure::Progress<HelmChartStatus>;

/// A failed HelmChart reconcile.
pub type Error = failure::Error<HelmChartStatus>;

/// Settings of the HelmChart reconciler.
#[derive(Clone, Debug)]
pub struct HelmChartConfig {
    /// Retention, URLs, scratch space and jitter, shared with OCIRepository.
    pub base: ReconcilerConfig,
    /// `--helm-chart-max-size`: the chart archive (the layer), in bytes; Flux's 10 MiB.
    pub max_chart_bytes: u64,
    /// `--helm-chart-file-max-size`: one file inside the chart, in bytes; Flux's 5 MiB.
    pub max_file_bytes: u64,
}

/// `status.artifact.url` of a HelmChart artifact: Flux's layout
/// `http://<addr>/helmchart/<ns>/<name>/<file>` behind `--artifact-advertise-address`, else the
/// `helmcharts/<name>/artifact` subresource.
pub fn artifact_url(urls: &ArtifactUrls, path: &str, ns: &str, name: &str) -> String {
    match urls {
        ArtifactUrls::Advertised(addr) => format!("http://{addr}/{path}"),
        ArtifactUrls::Subresource(base) => format!(
            "{base}/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/helmcharts/{name}/artifact"
        ),
    }
}

/// `status.url` of a HelmChart: whatever chart is current, as Flux's `latest.tar.gz` link
/// (`http://<addr>/helmchart/<ns>/<name>/latest.tar.gz` behind `--artifact-advertise-address`,
/// else the `helmcharts/<name>/artifact` subresource, which serves the current artifact).
pub fn latest_url(urls: &ArtifactUrls, ns: &str, name: &str) -> String {
    match urls {
        ArtifactUrls::Advertised(addr) => {
            format!("http://{addr}/{ARTIFACT_KIND}/{ns}/{name}/latest.tar.gz")
        }
        ArtifactUrls::Subresource(_) => artifact_url(urls, "", ns, name),
    }
}

/// The HelmChart reconciler. Shared by the workers behind an `Arc`.
#[derive(Debug)]
pub struct HelmChartReconciler {
    store: Arc<dyn ObjectStore>,
    artifacts: ArtifactStore,
    secrets: Arc<SecretStore>,
    events: Arc<dyn EventRecorder>,
    config: HelmChartConfig,
    clients: Arc<ClientCache>,
}

fn object_ref(obj: &HelmChart) -> ObjectRef {
    ObjectRef::new(HelmChartReconciler::KIND, &obj.metadata)
}

fn key(obj: &HelmChart) -> storage::ObjectKey {
    let object = object_ref(obj);
    super::helm_charts().object(object.namespace, object.name)
}

impl Reconcile for HelmChartReconciler {
    type Object = HelmChart;
    type Error = Error;
    const KIND: &'static str = "HelmChart";

    fn resource(&self) -> ResourceKey {
        super::helm_charts()
    }

    async fn reconcile(&self, obj: Arc<HelmChart>) -> Result<Action, Error> {
        let read = serde_json::to_value(&*obj).expect("objects serialize");
        if obj.metadata.deletion_timestamp.is_some() {
            return self.finalize(&obj, read).await;
        }
        if obj.spec.suspend == Some(true) {
            return Ok(Action::AwaitChange);
        }
        let read = super::finalizer::ensure(self.store.as_ref(), &key(&obj), read).await?;
        let mut progress = self.start(&obj, read).await?;
        self.check_storage(&obj, &mut progress).await?;
        if obj.spec.verify.is_none() {
            conditions::delete(&mut progress.status.conditions, types::SOURCE_VERIFIED);
        }
        match self.source(&obj, &mut progress.status).await {
            Ok(outcome) => self.succeed(&obj, progress, outcome).await,
            Err(failure) => Err(Error::Failed {
                failure,
                progress: Box::new(progress),
            }),
        }
    }

    async fn error_policy(&self, obj: Arc<HelmChart>, error: &Error) -> Action {
        let Error::Failed { failure, progress } = error else {
            return Action::Backoff;
        };
        self.record_failure(&obj, failure, progress).await
    }

    fn metric_label(error: &Error) -> &'static str {
        error.metric_label()
    }
}

impl HelmChartReconciler {
    /// A reconciler over the object store (HelmCharts and their HelmRepositories), the
    /// artifact store, Secrets and an event sink.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        artifacts: ArtifactStore,
        secrets: Arc<SecretStore>,
        events: Arc<dyn EventRecorder>,
        config: HelmChartConfig,
    ) -> Self {
        Self {
            store,
            artifacts,
            secrets,
            events,
            config,
            clients: Arc::new(ClientCache::default()),
        }
    }

    /// Deletion: the artifacts are removed, then the finalizer.
    async fn finalize(&self, obj: &HelmChart, read: Value) -> Result<Action, Error> {
        if !super::finalizer::has(&read) {
            return Ok(Action::AwaitChange);
        }
        let object = object_ref(obj);
        let (artifacts, ns, name) = (
            self.artifacts.clone(),
            object.namespace.clone(),
            object.name.clone(),
        );
        blocking(move || artifacts.remove_object(ARTIFACT_KIND, &ns, &name)).await??;
        self.events.record(
            &object,
            EventType::Trace,
            "GarbageCollectionSucceeded",
            "garbage collected artifacts for deleted resource",
            &BTreeMap::new(),
        );
        super::finalizer::remove(self.store.as_ref(), &key(obj), read).await?;
        Ok(Action::AwaitChange)
    }

    /// The starting status: the handled reconcile request and, for a new generation,
    /// `Reconciling`/`Ready=Unknown` written at once when `Ready` describes an older one.
    async fn start(&self, obj: &HelmChart, read: Value) -> Result<Progress, Error> {
        let generation = obj.metadata.generation.unwrap_or(0);
        let mut status = obj.status.clone().unwrap_or_default();
        let annotations = obj.metadata.annotations.as_ref();
        if let Some(requested) = annotations.and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION)) {
            status.last_handled_reconcile_at = Some(requested.clone());
        }
        let observed = status.observed_generation.unwrap_or(-1);
        let mut progress = Progress {
            read,
            status,
            reconciling: "reconciliation in progress".to_owned(),
        };
        if observed == generation {
            return Ok(progress);
        }
        progress.reconciling =
            format!("processing object: new generation {observed} -> {generation}");
        let ready = conditions::get(&progress.status.conditions, types::READY);
        if ready.is_some_and(|r| r.observed_generation != Some(generation)) {
            failure::mark_progressing(&mut progress, generation);
            self.write_status(obj, &mut progress).await?;
        }
        Ok(progress)
    }

    /// Garbage collection by retention, then the current artifact's size and digest: a
    /// missing or corrupt file is dropped from the status so this reconcile rebuilds it.
    async fn check_storage(&self, obj: &HelmChart, progress: &mut Progress) -> Result<(), Error> {
        let Some(artifact) = progress.status.artifact.clone() else {
            return Ok(());
        };
        let object = object_ref(obj);
        let (store, ns, name) = (
            self.artifacts.clone(),
            object.namespace.clone(),
            object.name.clone(),
        );
        let (ttl, records) = (
            self.config.base.retention_ttl,
            self.config.base.retention_records,
        );
        let checked = artifact.clone();
        let intact = blocking(move || {
            if let Err(e) =
                store.garbage_collect(ARTIFACT_KIND, &ns, &name, &checked.path, ttl, records)
            {
                tracing::warn!(error = %chain(&e), "artifact garbage collection failed");
            }
            let size_ok = store
                .path(&checked.path)
                .ok()
                .and_then(|p| std::fs::metadata(p).ok())
                .is_some_and(|m| checked.size.is_none_or(|s| s as u64 == m.len()));
            size_ok
                && store
                    .verify(&checked.path, &checked.digest)
                    .unwrap_or(false)
        })
        .await?;
        let status = &mut progress.status;
        if intact {
            let urls = &self.config.base.urls;
            let (ns, name) = (object.namespace.as_str(), object.name.as_str());
            if let Some(a) = status.artifact.as_mut() {
                a.url = artifact_url(urls, &a.path, ns, name);
                status.url = Some(latest_url(urls, ns, name));
            }
            return Ok(());
        }
        status.artifact = None;
        status.url = None;
        conditions::delete(&mut status.conditions, types::ARTIFACT_IN_STORAGE);
        progress.reconciling = "building artifact: disappeared from storage".to_owned();
        Ok(())
    }

    /// Writes `progress.status` over `progress.read` (conflict-safe, see [`super::status`]).
    async fn write_status(&self, obj: &HelmChart, progress: &mut Progress) -> Result<(), Error> {
        let status = serde_json::to_value(&progress.status).expect("status serializes");
        let written =
            super::status::write_status(self.store.as_ref(), &key(obj), &progress.read, &status)
                .await?;
        if let Some(stored) = written {
            progress.read = stored;
        }
        Ok(())
    }

    fn event(&self, obj: &HelmChart, kind: EventType, reason: &str, message: &str) {
        self.events
            .record(&object_ref(obj), kind, reason, message, &BTreeMap::new());
    }
}

/// The chart's `StepFailure` for a registry client error during `what`.
fn registry_failure(what: &str, e: &registry::client::Error) -> StepFailure {
    failure::client_failure(openapi::conditions::reasons::CHART_PULL_ERROR, what, e)
}

#[cfg(test)]
mod tests;
