//! The in-process controllers (DESIGN.md §3, "Reconcile path"), in the shape of kube-runtime:
//!
//! - [`runtime`]: the generic [`Controller`] — watch, deduplicating [`queue`], per-key
//!   [`backoff`] (750 ms → 15 min), `--concurrent` workers, panics caught, graceful shutdown —
//!   around one kind's [`Reconcile`] implementation; any number run side by side;
//! - `watcher`: what queues an object (Flux's predicates) and the re-list when the storage
//!   watch ends;
//! - `status`: status writes carrying the `resourceVersion` they read, retried on conflict
//!   without overwriting anyone else's change;
//! - one module per kind: [`ocirepository`], [`helmchart`], [`helmrepository`] (a stall for the
//!   unsupported HTTP type, nothing for `type: oci`); `failure` is their one error policy and
//!   `finalizer` Flux's finalizer;
//! - `registry_access`: what every kind that pulls from a registry shares — clients configured
//!   from the object's Secrets (cached), cosign keys and trusted roots;
//! - [`events`] and [`secrets`]: the event sink and standalone mode's Secrets.

pub mod backoff;
pub mod events;
pub mod failure;
mod finalizer;
pub mod helmchart;
pub mod helmrepository;
pub mod ocirepository;
pub mod queue;
mod registry_access;
pub mod runtime;
pub mod secrets;
pub(crate) mod status;
mod watcher;

use storage::ResourceKey;

pub use backoff::{Backoff, BackoffFactory, ExponentialBackoff};
pub use events::{EventRecorder, LogRecorder};
pub use helmchart::{HelmChartConfig, HelmChartReconciler};
pub use helmrepository::HelmRepositoryReconciler;
pub use ocirepository::{ArtifactUrls, OCIRepositoryReconciler, ReconcilerConfig};
pub use runtime::{Action, Controller, Reconcile};
pub use secrets::SecretStore;

/// The storage collection of HelmCharts.
pub fn helm_charts() -> ResourceKey {
    ResourceKey::new(openapi::GROUP, "helmcharts")
}

/// The storage collection of HelmRepositories.
pub fn helm_repositories() -> ResourceKey {
    ResourceKey::new(openapi::GROUP, "helmrepositories")
}

/// The storage collection of OCIRepositories.
pub fn oci_repositories() -> ResourceKey {
    ResourceKey::new(openapi::GROUP, "ocirepositories")
}
