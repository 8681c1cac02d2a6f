//! Kubernetes-style events about reconciled objects, behind a trait: standalone mode logs them
//! ([`LogRecorder`]); with `--events-addr` they are also posted to Flux's
//! notification-controller ([`NotificationRecorder`], `notification`); the in-cluster mode will
//! write `events.k8s.io/v1` Events.
//!
//! Reasons and messages follow Flux (`flux-source-controller.md` §2.7): `NewArtifact`
//! ("stored artifact with revision '…' from '…'"), `Succeeded` on recovery, the failure reason
//! (`AuthenticationFailed`, `OCIArtifactPullFailed`, …) as a Warning, and trace events
//! (`ArtifactUpToDate`, `GarbageCollectionSucceeded`).

use std::collections::BTreeMap;

pub mod notification;
pub use notification::NotificationRecorder;

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// `OCIRepository`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
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
