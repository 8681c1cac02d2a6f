//! The OCIRepository reconciler, step by step as Flux's source-controller
//! (`flux-source-controller.md` §2.2–§2.7): deletion and the finalizer, suspend, storage check
//! and garbage collection, source (credentials, reference, pull) and artifact, then one status
//! write with Flux's conditions, reasons and messages, and events.
//!
//! Level-triggered: every reconcile reads the latest object from storage; the triggering event
//! is never used.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use openapi::Artifact;
use openapi::conditions::{self, reasons, types};
use openapi::meta::{RECONCILE_REQUEST_ANNOTATION, SOURCE_FINALIZER};
use openapi::v1::{OCIRepository, OCIRepositoryStatus};
use parking_lot::Mutex;
use serde_json::Value;
use storage::{ArtifactStore, ObjectKey, ObjectStore, UpdatePart, WriteOptions};

use super::credentials::ClientCache;
use super::events::{EventRecorder, EventType, ObjectRef};
use super::fetch::{self, FailureKind};
use super::secrets::SecretStore;

/// The storage directory of OCIRepository artifacts (Flux: the lower-cased kind).
pub const ARTIFACT_KIND: &str = "ocirepository";

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
    fn artifact(&self, path: &str, ns: &str, name: &str) -> String {
        match self {
            ArtifactUrls::Advertised(addr) => format!("http://{addr}/{path}"),
            ArtifactUrls::Subresource(base) => format!(
                "{base}/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/ocirepositories/{name}/artifact"
            ),
        }
    }

    fn latest(&self, ns: &str, name: &str) -> String {
        match self {
            ArtifactUrls::Advertised(addr) => {
                format!("http://{addr}/{ARTIFACT_KIND}/{ns}/{name}/latest.tar.gz")
            }
            ArtifactUrls::Subresource(_) => self.artifact("", ns, name),
        }
    }
}

/// Settings of the reconciler (from the server flags).
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
}

/// What to do after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this delay (the jittered `spec.interval`).
    Requeue(Duration),
    /// Nothing until the object changes (suspended, stalled, deleted).
    AwaitChange,
}

/// A reconcile that failed and must be retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step failed; the status says why.
    #[error("{reason}: {message}")]
    Failed {
        /// Flux reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
    /// Reading or writing the object failed.
    #[error("reading or writing the object")]
    Storage(#[from] storage::Error),
    /// A blocking task panicked.
    #[error("blocking task failed: {0}")]
    Task(String),
}

impl Error {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Failed { reason, .. } => reason,
            Error::Storage(_) => "Storage",
            Error::Task(_) => "Task",
        }
    }
}

mod source;
mod storage_check;

/// The OCIRepository reconciler. Shared by the workers behind an `Arc`.
#[derive(Debug)]
pub struct Reconciler {
    store: Arc<dyn ObjectStore>,
    artifacts: ArtifactStore,
    secrets: Arc<SecretStore>,
    events: Arc<dyn EventRecorder>,
    config: ReconcilerConfig,
    clients: Arc<ClientCache>,
    /// `(path, digest)` of artifacts whose digest was checked since start.
    verified: Mutex<HashSet<(String, String)>>,
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("valid time"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _e = span.enter();
        f()
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))
}

/// The outcome of the source and artifact steps.
enum Source {
    UpToDate {
        revision: String,
    },
    Stored {
        revision: String,
        pulled: fetch::Pulled,
    },
}

impl Reconciler {
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
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// Reconciles the object at `key` once.
    ///
    /// # Errors
    /// [`Error`] when the reconcile must be retried with backoff (the status already says
    /// why); stalled objects return `Ok(AwaitChange)`.
    pub async fn reconcile(&self, key: &ObjectKey) -> Result<Action, Error> {
        let raw = match self.store.get(key).await {
            Ok(v) => v,
            Err(storage::Error::NotFound { .. }) => return Ok(Action::AwaitChange),
            Err(e) => return Err(e.into()),
        };
        let obj: OCIRepository = match serde_json::from_value(raw.clone()) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "stored object does not decode as OCIRepository v1");
                return Ok(Action::AwaitChange);
            }
        };
        let object = ObjectRef {
            kind: "OCIRepository",
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        let finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
        if obj.metadata.deletion_timestamp.is_some() {
            return self.finalize(key, raw, &object, &finalizers).await;
        }
        if obj.spec.is_suspended() {
            tracing::debug!("suspended");
            return Ok(Action::AwaitChange);
        }
        if !finalizers.iter().any(|f| f == SOURCE_FINALIZER) {
            let mut raw = raw.clone();
            let list = raw["metadata"]
                .as_object_mut()
                .expect("objects have metadata")
                .entry("finalizers")
                .or_insert_with(|| Value::Array(vec![]));
            if let Some(a) = list.as_array_mut() {
                a.push(Value::String(SOURCE_FINALIZER.into()));
            }
            self.store
                .update(key, raw, UpdatePart::Main, WriteOptions::default())
                .await?;
        }
        self.reconcile_object(key, raw, obj, &object).await
    }

    async fn finalize(
        &self,
        key: &ObjectKey,
        mut raw: Value,
        object: &ObjectRef,
        finalizers: &[String],
    ) -> Result<Action, Error> {
        if !finalizers.iter().any(|f| f == SOURCE_FINALIZER) {
            return Ok(Action::AwaitChange);
        }
        let artifacts = self.artifacts.clone();
        let (ns, name) = (key.namespace.clone(), key.name.clone());
        blocking(move || artifacts.remove_object(ARTIFACT_KIND, &ns, &name)).await??;
        let prefix = format!("{ARTIFACT_KIND}/{}/{}/", key.namespace, key.name);
        self.verified
            .lock()
            .retain(|(p, _)| !p.starts_with(&prefix));
        self.events.record(
            object,
            EventType::Trace,
            "GarbageCollectionSucceeded",
            "garbage collected artifacts for deleted resource",
            &BTreeMap::new(),
        );
        let remaining: Vec<Value> = finalizers
            .iter()
            .filter(|f| *f != SOURCE_FINALIZER)
            .map(|f| Value::String(f.clone()))
            .collect();
        raw["metadata"]["finalizers"] = Value::Array(remaining);
        self.store
            .update(key, raw, UpdatePart::Main, WriteOptions::default())
            .await?;
        Ok(Action::AwaitChange)
    }

    async fn reconcile_object(
        &self,
        key: &ObjectKey,
        raw: Value,
        obj: OCIRepository,
        object: &ObjectRef,
    ) -> Result<Action, Error> {
        let generation = obj.metadata.generation.unwrap_or(0);
        let old = obj.status.clone().unwrap_or_default();
        let mut status = old.clone();
        let ts = now();
        if let Some(requested) = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION))
        {
            status.last_handled_reconcile_at = Some(requested.clone());
        }
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let mut reconciling = "reconciliation in progress".to_owned();
        let mut old = old;
        if old.observed_generation.unwrap_or(-1) != generation {
            reconciling = format!(
                "processing object: new generation {} -> {generation}",
                old.observed_generation.unwrap_or(-1)
            );
            // As Flux: a new generation is marked at once, so `kubectl wait` after a spec change
            // never sees the previous generation's Ready. Not needed on the first reconcile (no
            // Ready yet), which keeps creation to one status write.
            if conditions::get(&old.conditions, types::READY).is_some() {
                let g = Some(generation);
                let c = &mut status.conditions;
                conditions::mark_true(
                    c,
                    types::RECONCILING,
                    reasons::PROGRESSING,
                    &reconciling,
                    g,
                    ts.clone(),
                );
                conditions::mark_unknown(
                    c,
                    types::READY,
                    reasons::PROGRESSING,
                    &reconciling,
                    g,
                    ts.clone(),
                );
                self.write_status(key, raw.clone(), &status).await?;
                old = status.clone();
            }
        }

        // Storage: garbage collection, artifact presence and integrity, URLs.
        if let Some(artifact) = status.artifact.clone() {
            if let Some(missing) = self.check_storage(&artifact, object).await? {
                status.artifact = None;
                status.url = None;
                conditions::delete(&mut status.conditions, types::ARTIFACT_IN_STORAGE);
                reconciling = format!("building artifact: {missing}");
            } else if let Some(a) = status.artifact.as_mut() {
                a.url = self.config.urls.artifact(&a.path, ns, name);
                status.url = Some(self.config.urls.latest(ns, name));
            }
        }

        let interval =
            openapi::parse_go_duration(&obj.spec.interval).unwrap_or(Duration::from_secs(60));
        if obj.spec.verify.is_none()
            || conditions::is_false(&status.conditions, types::SOURCE_VERIFIED)
        {
            conditions::delete(&mut status.conditions, types::SOURCE_VERIFIED);
        }
        let mut verified = None;
        let outcome = self.source(&obj, &status, object, &mut verified).await;
        if let Some(revision) = &verified {
            conditions::mark_true(
                &mut status.conditions,
                types::SOURCE_VERIFIED,
                reasons::SUCCEEDED,
                &format!("verified signature of revision {revision}"),
                Some(generation),
                ts.clone(),
            );
        }
        let url = obj.spec.url.clone();
        let mut result = Ok(Action::Requeue(super::backoff::jittered(
            interval,
            self.config.interval_jitter,
        )));
        let previous_digest = old.artifact.as_ref().map(|a| a.digest.clone());
        let had_failure = conditions::is_true(&old.conditions, types::FETCH_FAILED)
            || conditions::is_true(&old.conditions, types::STORAGE_OPERATION_FAILED)
            || conditions::is_true(&old.conditions, types::STALLED);
        match outcome {
            Ok(source) => {
                let revision = match source {
                    Source::UpToDate { revision } => {
                        self.events.record(
                            object,
                            EventType::Trace,
                            reasons::ARTIFACT_UP_TO_DATE,
                            &format!("artifact up-to-date with remote revision: '{revision}'"),
                            &BTreeMap::new(),
                        );
                        revision
                    }
                    Source::Stored { revision, pulled } => {
                        let path = pulled.stored.path.clone();
                        self.verified
                            .lock()
                            .insert((path.clone(), pulled.stored.digest.clone()));
                        self.update_latest_link(&path).await;
                        status.artifact = Some(Artifact {
                            url: self.config.urls.artifact(&path, ns, name),
                            path,
                            revision: revision.clone(),
                            digest: pulled.stored.digest.clone(),
                            last_update_time: ts.clone(),
                            size: Some(pulled.stored.size as i64),
                            metadata: pulled.annotations.clone(),
                        });
                        status.url = Some(self.config.urls.latest(ns, name));
                        status.observed_ignore = obj.spec.ignore.clone();
                        status.observed_layer_selector = obj.spec.layer_selector.clone();
                        revision
                    }
                };
                let c = &mut status.conditions;
                for t in [
                    types::FETCH_FAILED,
                    types::STORAGE_OPERATION_FAILED,
                    types::ARTIFACT_OUTDATED,
                    types::RECONCILING,
                    types::STALLED,
                ] {
                    conditions::delete(c, t);
                }
                let message = format!("stored artifact for digest '{revision}'");
                let g = Some(generation);
                conditions::mark_true(
                    c,
                    types::ARTIFACT_IN_STORAGE,
                    reasons::SUCCEEDED,
                    &message,
                    g,
                    ts.clone(),
                );
                conditions::mark_true(c, types::READY, reasons::SUCCEEDED, &message, g, ts.clone());
                status.observed_generation = Some(generation);
                let artifact = status.artifact.as_ref().expect("stored above");
                let mut event = format!("stored artifact with revision '{revision}' from '{url}'");
                if let Some(meta) = &artifact.metadata
                    && let (Some(src), Some(rev)) = (
                        meta.get("org.opencontainers.image.source"),
                        meta.get("org.opencontainers.image.revision"),
                    )
                {
                    event.push_str(&format!(", origin source '{src}', origin revision '{rev}'"));
                }
                let annotations = BTreeMap::from([
                    (
                        "source.toolkit.fluxcd.io/revision".to_owned(),
                        revision.clone(),
                    ),
                    (
                        "source.toolkit.fluxcd.io/digest".to_owned(),
                        artifact.digest.clone(),
                    ),
                ]);
                if previous_digest.as_deref() != Some(artifact.digest.as_str()) {
                    self.events.record(
                        object,
                        EventType::Normal,
                        "NewArtifact",
                        &event,
                        &annotations,
                    );
                } else if had_failure {
                    self.events.record(
                        object,
                        EventType::Normal,
                        reasons::SUCCEEDED,
                        &event,
                        &annotations,
                    );
                }
            }
            Err((failure, new_revision)) => {
                let c = &mut status.conditions;
                let g = Some(generation);
                if let Some(rev) = &new_revision {
                    if status.artifact.is_some() {
                        conditions::mark_true(
                            c,
                            types::ARTIFACT_OUTDATED,
                            reasons::NEW_REVISION,
                            &format!("new revision '{rev}' for '{url}'"),
                            g,
                            ts.clone(),
                        );
                    }
                    reconciling = format!("building artifact: new revision '{rev}' for '{url}'");
                }
                self.events.record(
                    object,
                    EventType::Warning,
                    failure.reason,
                    &failure.message,
                    &BTreeMap::new(),
                );
                match failure.kind {
                    FailureKind::Stalled => {
                        conditions::delete(c, types::RECONCILING);
                        conditions::delete(c, types::FETCH_FAILED);
                        conditions::mark_true(
                            c,
                            types::STALLED,
                            failure.reason,
                            &failure.message,
                            g,
                            ts.clone(),
                        );
                        conditions::mark_false(
                            c,
                            types::READY,
                            failure.reason,
                            &failure.message,
                            g,
                            ts.clone(),
                        );
                        status.observed_generation = Some(generation);
                        result = Ok(Action::AwaitChange);
                    }
                    kind => {
                        // Retried with backoff: the failing step's condition, then Reconciling
                        // (ProgressingWithRetry) and Ready=False, as Flux.
                        if kind == FailureKind::Verify {
                            conditions::mark_false(
                                c,
                                types::SOURCE_VERIFIED,
                                failure.reason,
                                &failure.message,
                                g,
                                ts.clone(),
                            );
                        } else {
                            let t = if kind == FailureKind::Fetch {
                                conditions::delete(c, types::STORAGE_OPERATION_FAILED);
                                types::FETCH_FAILED
                            } else {
                                types::STORAGE_OPERATION_FAILED
                            };
                            conditions::delete(c, types::STALLED);
                            conditions::mark_true(
                                c,
                                t,
                                failure.reason,
                                &failure.message,
                                g,
                                ts.clone(),
                            );
                        }
                        conditions::mark_true(
                            c,
                            types::RECONCILING,
                            reasons::PROGRESSING_WITH_RETRY,
                            &reconciling,
                            g,
                            ts.clone(),
                        );
                        conditions::mark_false(
                            c,
                            types::READY,
                            failure.reason,
                            &failure.message,
                            g,
                            ts.clone(),
                        );
                        result = Err(Error::Failed {
                            reason: failure.reason,
                            message: failure.message,
                        });
                    }
                }
            }
        }
        if status != old {
            self.write_status(key, raw, &status).await?;
        }
        result
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        mut raw: Value,
        status: &OCIRepositoryStatus,
    ) -> Result<(), Error> {
        raw["status"] = serde_json::to_value(status).expect("status serializes");
        if let Some(meta) = raw["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        match self
            .store
            .update(key, raw, UpdatePart::Status, WriteOptions::default())
            .await
        {
            Ok(_) | Err(storage::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
