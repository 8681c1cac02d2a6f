//! The OCIRepository kind (`flux-source-controller.md` §2.2–§2.7): one [`Reconcile`]
//! implementation whose reconcile runs small steps in Flux's order — deletion and the
//! finalizer, suspend, the new-generation mark, the storage check (`storage_check`), the
//! spec parsed once (`spec`), then the source steps (`source`: credentials → resolve →
//! verify → pull → archive and store) — and one status write with Flux's conditions and
//! events on success (`outcome`). A failing step returns a typed [`StepFailure`]; the one
//! [`Reconcile::error_policy`] turns it into conditions, a Warning event and the next requeue.
//!
//! Level-triggered: every reconcile gets the latest stored object; the triggering event is
//! never used.
//!
//! Not here: notation (it stalls with a clear message; cosign with public keys, and keyless
//! against a trusted root Secret or the embedded Sigstore public-good root, are verified),
//! cloud provider logins (in-cluster mode).

mod failure;
mod outcome;
mod shared;
mod source;
mod spec;
mod storage_check;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openapi::conditions::{self, types};
use openapi::meta::RECONCILE_REQUEST_ANNOTATION;
use openapi::v1::OCIRepository;
use serde_json::Value;
use storage::{ArtifactStore, ObjectStore, ResourceKey};

use super::events::{EventRecorder, EventType, ObjectRef};
use super::failure::{blocking, now};
use super::registry_access::ClientCache;
use super::runtime::{Action, Reconcile};
use super::secrets::SecretStore;
pub use failure::{Error, FailureKind, Progress, StepFailure};

/// The storage directory of OCIRepository artifacts (Flux: the lower-cased kind).
pub const ARTIFACT_KIND: &str = "ocirepository";

/// The artifact-store path of an object's archive of the manifest `<manifest_hex>` (the
/// lower-case hex of its sha256): Flux's `ocirepository/<namespace>/<name>/<hex>.tar.gz`. The
/// one place that names these files, for the reconciler that writes them and for the
/// `?revision=` download that finds an older one.
pub fn artifact_path(namespace: &str, name: &str, manifest_hex: &str) -> String {
    format!(
        "{ARTIFACT_KIND}/{namespace}/{name}/{}",
        artifact_file_name(manifest_hex)
    )
}

/// The file name part of [`artifact_path`]: `<manifest_hex>.tar.gz`.
pub fn artifact_file_name(manifest_hex: &str) -> String {
    format!("{manifest_hex}.tar.gz")
}

/// Where `status.artifact.url` and `status.url` point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactUrls {
    /// `--artifact-advertise-address host:port`: Flux's layout,
    /// `http://<addr>/ocirepository/<ns>/<name>/<file>`.
    Advertised(String),
    /// The `artifact` subresource of the API server at this base URL (`https://host:port`).
    Subresource(String),
}

impl ArtifactUrls {
    /// `status.artifact.url`: the URL of that revision's file, so a consumer never gets
    /// another revision than the digest it checks. Advertised: the file's path
    /// (`…/<manifest hex>.tar.gz`), served while the file is kept (retention). Subresource:
    /// `…/artifact?revision=<revision>` (query-encoded), 404 once another revision is
    /// current.
    fn artifact(&self, path: &str, ns: &str, name: &str, revision: &str) -> String {
        match self {
            ArtifactUrls::Advertised(addr) => format!("http://{addr}/{path}"),
            ArtifactUrls::Subresource(_) => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("revision", revision)
                    .finish();
                format!("{}?{query}", self.latest(ns, name))
            }
        }
    }

    /// `status.url`: whatever revision is current, as Flux's `latest.tar.gz` link.
    fn latest(&self, ns: &str, name: &str) -> String {
        match self {
            ArtifactUrls::Advertised(addr) => {
                format!("http://{addr}/{ARTIFACT_KIND}/{ns}/{name}/latest.tar.gz")
            }
            ArtifactUrls::Subresource(base) => format!(
                "{base}/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/ocirepositories/{name}/artifact"
            ),
        }
    }
}

/// Settings of the source reconcilers (from the server flags).
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// `--artifact-max-size` and `--artifact-max-files`.
    pub limits: registry::Limits,
    /// `--artifact-retention-ttl` (default 60 s).
    pub retention_ttl: Duration,
    /// `--artifact-retention-records` (default 2).
    pub retention_records: usize,
    /// Where artifact URLs point.
    pub urls: ArtifactUrls,
    /// Scratch space for extraction, inside the data directory.
    pub scratch_dir: PathBuf,
    /// Interval jitter fraction (Flux `--interval-jitter-percentage` 5 → 0.05).
    pub interval_jitter: f64,
    /// The Sigstore trusted root for keyless verification without `trustedRootSecretRef` (and
    /// keyless HelmCharts): the embedded public-good root, refreshed over TUF
    /// (`--sigstore-tuf-mirror`).
    pub sigstore_root: registry::cosign::TrustedRootProvider,
}

/// The OCIRepository reconciler. Shared by the workers behind an `Arc`.
#[derive(Debug)]
pub struct OCIRepositoryReconciler {
    store: Arc<dyn ObjectStore>,
    artifacts: ArtifactStore,
    secrets: Arc<SecretStore>,
    events: Arc<dyn EventRecorder>,
    config: ReconcilerConfig,
    clients: Arc<ClientCache>,
    /// Archives built per [`shared::BuildKey`], shared with the objects that resolve to them.
    shared: shared::SharedBuilds,
}

fn object_ref(obj: &OCIRepository) -> ObjectRef {
    ObjectRef::new(OCIRepositoryReconciler::KIND, &obj.metadata)
}

impl Reconcile for OCIRepositoryReconciler {
    type Object = OCIRepository;
    type Error = Error;
    const KIND: &'static str = "OCIRepository";

    fn resource(&self) -> ResourceKey {
        super::oci_repositories()
    }

    async fn reconcile(&self, obj: Arc<OCIRepository>) -> Result<Action, Error> {
        let read = serde_json::to_value(&*obj).expect("objects serialize");
        if obj.metadata.deletion_timestamp.is_some() {
            return self.finalize(&obj, read).await;
        }
        let read = super::finalizer::ensure(self.store.as_ref(), &key(&obj), read).await?;
        if obj.spec.is_suspended() {
            tracing::debug!("suspended");
            return self.suspended(&obj, read).await;
        }
        let mut progress = self.start(&obj, read).await?;
        self.check_storage(&obj, &mut progress).await?;
        let fail = |failure, progress| Error::Failed {
            failure,
            progress: Box::new(progress),
        };
        let spec = match spec::Spec::parse(&obj) {
            Ok(spec) => spec,
            Err(failure) => return Err(fail(failure, progress)),
        };
        if spec.verify.is_none()
            || conditions::is_false(&progress.status.conditions, types::SOURCE_VERIFIED)
        {
            conditions::delete(&mut progress.status.conditions, types::SOURCE_VERIFIED);
        }
        match self.source(&obj, &spec, &mut progress).await {
            Ok(source) => self.succeed(&obj, &spec, progress, source).await,
            Err(failure) => Err(fail(failure, progress)),
        }
    }

    async fn error_policy(&self, obj: Arc<OCIRepository>, error: &Error) -> Action {
        let Error::Failed { failure, progress } = error else {
            return Action::Backoff;
        };
        self.record_failure(&obj, failure, progress).await
    }

    fn metric_label(error: &Error) -> &'static str {
        error.metric_label()
    }
}

impl OCIRepositoryReconciler {
    /// A reconciler over the object store, the artifact store, Secrets and an event sink.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        artifacts: ArtifactStore,
        secrets: Arc<SecretStore>,
        events: Arc<dyn EventRecorder>,
        config: ReconcilerConfig,
    ) -> Self {
        Self {
            store,
            artifacts,
            secrets,
            events,
            config,
            clients: Arc::new(ClientCache::default()),
            shared: shared::SharedBuilds::default(),
        }
    }

    /// Deletion: the artifacts are removed, then the finalizer.
    async fn finalize(&self, obj: &OCIRepository, read: Value) -> Result<Action, Error> {
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

    /// A suspended object, as Flux's: it has its finalizer (added before), and its status
    /// records the generation and the reconcile request seen; nothing else changes.
    async fn suspended(&self, obj: &OCIRepository, read: Value) -> Result<Action, Error> {
        let mut status = obj.status.clone().unwrap_or_default();
        status.observed_generation = obj.metadata.generation;
        if let Some(requested) = requested_at(obj) {
            status.last_handled_reconcile_at = Some(requested.clone());
        }
        let mut progress = Progress {
            read,
            status,
            reconciling: String::new(),
        };
        self.write_status(obj, &mut progress).await?;
        Ok(Action::AwaitChange)
    }

    /// The starting status: the handled reconcile request and, for a new generation of an
    /// object whose `Ready` describes an older generation, `Reconciling`/`Ready=Unknown`
    /// written at once (as Flux), so `kubectl wait` after a spec change never sees the
    /// previous generation's Ready. Unlike Flux, a retry of a generation whose `Ready` already
    /// says why it failed does not flap it back to `Unknown` (one status write less per retry).
    async fn start(&self, obj: &OCIRepository, read: Value) -> Result<Progress, Error> {
        let generation = obj.metadata.generation.unwrap_or(0);
        let mut status = obj.status.clone().unwrap_or_default();
        if let Some(requested) = requested_at(obj) {
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
            super::failure::mark_progressing(&mut progress, generation);
            self.write_status(obj, &mut progress).await?;
        }
        Ok(progress)
    }

    /// Writes `progress.status` over `progress.read` (conflict-safe, see
    /// [`super::status`]); `progress.read` becomes the stored object.
    async fn write_status(
        &self,
        obj: &OCIRepository,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let status = serde_json::to_value(&progress.status).expect("status serializes");
        let written =
            super::status::write_status(self.store.as_ref(), &key(obj), &progress.read, &status)
                .await?;
        if let Some(stored) = written {
            progress.read = stored;
        }
        Ok(())
    }
}

/// The `reconcile.fluxcd.io/requestedAt` annotation, if set.
fn requested_at(obj: &OCIRepository) -> Option<&String> {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION))
}

fn key(obj: &OCIRepository) -> storage::ObjectKey {
    let object = object_ref(obj);
    super::oci_repositories().object(object.namespace, object.name)
}

#[cfg(test)]
mod tests;
