//! The in-process OCIRepository controller (DESIGN.md §3, "Reconcile path"): storage watch
//! events feed a deduplicating [`queue::Queue`]; `--concurrent` workers take due keys, run the
//! [`reconciler::Reconciler`] and requeue at the jittered `spec.interval` on success or after
//! the key's [`backoff::Backoff`] delay (750 ms → 15 min) on error.
//!
//! Triggers follow Flux's predicates (`GenerationChangedPredicate` or
//! `ReconcileRequestedPredicate`): an object is queued at once when it appears, when its
//! `metadata.generation` changes, when `reconcile.fluxcd.io/requestedAt` changes, or when it
//! starts being deleted; status-only writes (including the controller's own) never trigger.
//!
//! Not here: HelmChart reconciliation, notation and keyless verification without a
//! `trustedRootSecretRef` (they stall with a clear message; cosign with public keys, and keyless
//! against a trusted root Secret, are verified), cloud provider logins (in-cluster mode).

pub mod backoff;
mod credentials;
pub mod events;
mod fetch;
pub mod queue;
pub mod reconciler;
pub mod secrets;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use openapi::meta::RECONCILE_REQUEST_ANNOTATION;
use parking_lot::Mutex;
use serde_json::Value;
use storage::{ObjectKey, ObjectStore, ResourceKey, WatchEventType, WatchOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

pub use backoff::{Backoff, BackoffFactory, ExponentialBackoff};
pub use events::{EventRecorder, LogRecorder};
pub use reconciler::{Action, ArtifactUrls, Reconciler, ReconcilerConfig};
pub use secrets::SecretStore;

/// The storage collection of OCIRepositories.
pub fn oci_repositories() -> ResourceKey {
    ResourceKey::new(openapi::GROUP, "ocirepositories")
}

/// What makes an object due: Flux reconciles on a new generation, a new reconcile request or
/// the start of deletion, never on status changes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Trigger {
    generation: i64,
    requested_at: Option<String>,
    deleting: bool,
}

impl Trigger {
    fn of(object: &Value) -> Self {
        let meta = &object["metadata"];
        Self {
            generation: meta["generation"].as_i64().unwrap_or(0),
            requested_at: meta["annotations"][RECONCILE_REQUEST_ANNOTATION]
                .as_str()
                .map(str::to_owned),
            deleting: !meta["deletionTimestamp"].is_null(),
        }
    }
}

/// The controller: watch, queue and workers around one [`Reconciler`].
pub struct Controller {
    store: Arc<dyn ObjectStore>,
    reconciler: Arc<Reconciler>,
    queue: queue::Queue<ObjectKey>,
    backoffs: Mutex<HashMap<ObjectKey, Box<dyn Backoff>>>,
    backoff: BackoffFactory,
    concurrency: usize,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("queued", &self.queue.len())
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller running `concurrency` workers (`--concurrent`, default 4; at least 1) with
    /// the per-key `backoff` policy.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        reconciler: Reconciler,
        concurrency: usize,
        backoff: BackoffFactory,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            reconciler: Arc::new(reconciler),
            queue: queue::Queue::new(),
            backoffs: Mutex::new(HashMap::new()),
            backoff,
            concurrency: concurrency.max(1),
        })
    }

    /// Spawns the watch task and the workers on `tracker`. They stop when `shutdown` is
    /// cancelled: the watch at once, each worker after its running reconcile.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        let this = self.clone();
        let token = shutdown.clone();
        tracker.spawn(async move { this.watch(token).await });
        for worker in 0..self.concurrency {
            let this = self.clone();
            let token = shutdown.clone();
            tracker.spawn(async move { this.work(worker, token).await });
        }
    }

    /// Follows storage events and queues due objects. Re-watches from the current state after
    /// an error (a restart re-lists: objects whose trigger did not change are not re-queued).
    async fn watch(&self, shutdown: CancellationToken) {
        let resource = oci_repositories();
        let mut seen: HashMap<ObjectKey, Trigger> = HashMap::new();
        while !shutdown.is_cancelled() {
            let stream = tokio::select! {
                s = self.store.watch(&resource, None, WatchOptions::default()) => s,
                () = shutdown.cancelled() => return,
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, "watching ocirepositories failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
            };
            loop {
                let event = tokio::select! {
                    e = stream.next() => e,
                    () = shutdown.cancelled() => return,
                };
                let event = match event {
                    Some(Ok(e)) => e,
                    Some(Err(error)) => {
                        tracing::info!(%error, "ocirepositories watch ended; re-watching");
                        break;
                    }
                    None => break,
                };
                let meta = &event.object["metadata"];
                let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str())
                else {
                    continue;
                };
                let key = resource.object(ns, name);
                match event.event_type {
                    WatchEventType::Deleted => {
                        seen.remove(&key);
                        self.queue.forget(&key);
                        self.backoffs.lock().remove(&key);
                    }
                    WatchEventType::Added | WatchEventType::Modified => {
                        let trigger = Trigger::of(&event.object);
                        if seen.get(&key) != Some(&trigger) {
                            seen.insert(key.clone(), trigger);
                            self.queue.schedule(key, Instant::now());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    async fn work(&self, worker: usize, shutdown: CancellationToken) {
        loop {
            let key = tokio::select! {
                k = self.queue.next() => k,
                () = shutdown.cancelled() => return,
            };
            let span = tracing::info_span!(
                "reconcile",
                worker,
                object = %format_args!("{}/{}", key.namespace, key.name)
            );
            let started = std::time::Instant::now();
            let result = self
                .reconciler
                .reconcile(&key)
                .instrument(span.clone())
                .await;
            let _e = span.enter();
            match result {
                Ok(action) => {
                    if let Some(b) = self.backoffs.lock().get_mut(&key) {
                        b.reset();
                    }
                    tracing::debug!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        ?action,
                        "reconciled"
                    );
                    if let Action::Requeue(after) = action {
                        self.queue.schedule(key.clone(), Instant::now() + after);
                    }
                }
                Err(error) => {
                    let delay = self
                        .backoffs
                        .lock()
                        .entry(key.clone())
                        .or_insert_with(|| (self.backoff)())
                        .next_delay();
                    tracing::warn!(
                        reason = error.metric_label(),
                        error = %fetch::chain(&error),
                        retry_in_ms = delay.as_millis() as u64,
                        "reconcile failed"
                    );
                    self.queue.schedule(key.clone(), Instant::now() + delay);
                }
            }
            self.queue.done(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generation_requests_and_deletion_trigger() {
        let base = serde_json::json!({
            "metadata": {"name": "a", "namespace": "default", "generation": 1},
            "spec": {"interval": "1m"},
        });
        let t = Trigger::of(&base);
        let mut status_only = base.clone();
        status_only["status"] = serde_json::json!({"observedGeneration": 1});
        status_only["metadata"]["resourceVersion"] = "9".into();
        status_only["metadata"]["finalizers"] = serde_json::json!(["finalizers.fluxcd.io"]);
        assert_eq!(Trigger::of(&status_only), t);
        let mut new_generation = base.clone();
        new_generation["metadata"]["generation"] = 2.into();
        assert_ne!(Trigger::of(&new_generation), t);
        let mut requested = base.clone();
        requested["metadata"]["annotations"] =
            serde_json::json!({"reconcile.fluxcd.io/requestedAt": "now"});
        assert_ne!(Trigger::of(&requested), t);
        let mut deleting = base;
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        assert_ne!(Trigger::of(&deleting), t);
    }
}
