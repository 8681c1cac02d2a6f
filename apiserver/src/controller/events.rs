//! Kubernetes-style events about reconciled objects, behind a trait: standalone mode logs them
//! ([`LogRecorder`]); with `--events-addr` they are also posted to Flux's
//! notification-controller ([`NotificationRecorder`], `notification`); the in-cluster mode also
//! writes `events.k8s.io/v1` Events to the cluster ([`KubeRecorder`], `kube`).
//!
//! Reasons and messages follow Flux (`flux-source-controller.md` §2.7): `NewArtifact`
//! ("stored artifact with revision '…' from '…'"), `Succeeded` on recovery, the failure reason
//! (`AuthenticationFailed`, `OCIArtifactPullFailed`, …) as a Warning, and trace events
//! (`ArtifactUpToDate`, `GarbageCollectionSucceeded`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub mod kube;
pub mod notification;
pub use kube::KubeRecorder;
pub use notification::NotificationRecorder;

/// The prefix of the object annotations Flux copies onto its events (RFC-0008): an object
/// annotated `event.toolkit.fluxcd.io/<key>: <value>` has that annotation on every event
/// about it.
pub const EVENT_ANNOTATION_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// `OCIRepository`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid` (empty when unknown).
    pub uid: String,
    /// `metadata.resourceVersion` when the event was recorded (empty when unknown).
    pub resource_version: String,
    /// The object's annotations whose key starts with [`EVENT_ANNOTATION_PREFIX`], keys kept
    /// whole.
    pub annotations: BTreeMap<String, String>,
}

impl ObjectRef {
    /// The reference to an object of `kind` with `metadata` (empty strings for unset fields).
    pub fn new(kind: &'static str, metadata: &ObjectMeta) -> Self {
        let annotations = metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(EVENT_ANNOTATION_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            kind,
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            uid: metadata.uid.clone().unwrap_or_default(),
            resource_version: metadata.resource_version.clone().unwrap_or_default(),
            annotations,
        }
    }
}

/// The annotations of an event about `object`: the object's `event.toolkit.fluxcd.io/*`
/// annotations, then the event's own `annotations` (which win a clash, so a user annotation
/// cannot rewrite the revision).
pub(crate) fn with_object_annotations(
    object: &ObjectRef,
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = object.annotations.clone();
    all.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Event type: Kubernetes `Normal`/`Warning`, plus Flux's `Trace` (recorded, never forwarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something worked.
    Normal,
    /// Something failed.
    Warning,
    /// Detail (Flux `EventTypeTrace`).
    Trace,
}

/// Receives events. Implementations must not block: they are called from async code.
pub trait EventRecorder: Send + Sync + std::fmt::Debug {
    /// Records one event; `annotations` carry e.g. `source.toolkit.fluxcd.io/revision`.
    fn record(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
        annotations: &BTreeMap<String, String>,
    );
}

/// Standalone mode: events go to the log (`info` for Normal, `warn` for Warning, `debug` for
/// Trace), with the object and reason as structured fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogRecorder;

impl EventRecorder for LogRecorder {
    fn record(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
        annotations: &BTreeMap<String, String>,
    ) {
        let revision = annotations
            .get("source.toolkit.fluxcd.io/revision")
            .map(String::as_str)
            .unwrap_or("");
        match event_type {
            EventType::Normal => tracing::info!(
                target: "event",
                object = %object, reason, revision, "{message}"
            ),
            EventType::Warning => tracing::warn!(
                target: "event",
                object = %object, reason, revision, "{message}"
            ),
            EventType::Trace => tracing::debug!(
                target: "event",
                object = %object, reason, revision, "{message}"
            ),
        }
    }
}
