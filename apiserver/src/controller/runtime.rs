//! The generic controller, in the shape of kube-runtime's `Controller` (`kube-rs/kube:
//! kube-runtime/src/controller/mod.rs`, `runner.rs`, `scheduler.rs`): a storage watch feeds a
//! deduplicating [`Queue`]; `--concurrent` workers take due keys, read the latest object,
//! run the kind's [`Reconcile::reconcile`] (a panic is caught and becomes a failed reconcile),
//! hand a failure to the kind's [`Reconcile::error_policy`], and schedule the key again from
//! the [`Action`]: after a delay, after the key's [`Backoff`] delay (750 ms → 15 min), or
//! only when the object changes.
//!
//! One `Controller` runs one kind; several run side by side on one [`TaskTracker`], each with
//! its own queue, workers and watch.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use storage::{ObjectKey, ObjectStore, ResourceKey};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::backoff::{Backoff, BackoffFactory};
use super::queue::Queue;

/// What to do with an object after a reconcile (kube-runtime's `Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this delay (the jittered `spec.interval`); resets the backoff.
    Requeue(Duration),
    /// Nothing until the object changes (suspended, stalled, deleted); resets the backoff.
    AwaitChange,
    /// Retry after the key's next backoff delay (a failed reconcile).
    Backoff,
}

impl Action {
    /// controller-runtime's `result` label for what a reconcile decided: `error` when it failed
    /// and backs off, `requeue_after` when it asked to run again after its interval, `success`
    /// when it waits for a change (a stalled failure too: Flux returns no error for those, so
    /// controller-runtime counts them as successes as well).
    pub fn metric_result(self) -> &'static str {
        match self {
            Action::Backoff => "error",
            Action::Requeue(_) => "requeue_after",
            Action::AwaitChange => "success",
        }
    }
}

/// One kind's reconcile logic: a typed object in, an [`Action`] or a typed failure out, and
/// the one place where a failure becomes conditions, an event and the next requeue.
///
/// Implementations are level-triggered and idempotent: the object given is always the
/// latest stored state, never the event that queued it.
pub trait Reconcile: Send + Sync + std::fmt::Debug + 'static {
    /// The typed object (decoded from the stored JSON, the storage version).
    type Object: DeserializeOwned + Send + Sync + 'static;
    /// A failed reconcile.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The kind, for logs (`OCIRepository`).
    const KIND: &'static str;

    /// The storage collection of the kind.
    fn resource(&self) -> ResourceKey;

    /// Converges `obj` once.
    fn reconcile(
        &self,
        obj: Arc<Self::Object>,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// Records `error` (conditions, event) and decides what happens next: usually
    /// [`Action::Backoff`], [`Action::AwaitChange`] when only a spec change can help.
    fn error_policy(
        &self,
        obj: Arc<Self::Object>,
        error: &Self::Error,
    ) -> impl Future<Output = Action> + Send;

    /// A bounded label for the error (a Flux reason), for logs and metrics.
    fn metric_label(error: &Self::Error) -> &'static str;
}

/// The controller of one kind: watch, queue and workers around one [`Reconcile`].
pub struct Controller<R: Reconcile> {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) kind: Arc<R>,
    pub(super) queue: Queue<ObjectKey>,
    pub(super) backoffs: Mutex<HashMap<ObjectKey, Box<dyn Backoff>>>,
    backoff: BackoffFactory,
    concurrency: usize,
    /// How many times the storage watch ended and was re-listed (for tests and logs).
    pub(super) relists: AtomicU64,
}

impl<R: Reconcile> std::fmt::Debug for Controller<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("kind", &R::KIND)
            .field("queued", &self.queue.len())
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl<R: Reconcile> Controller<R> {
    /// A controller running `concurrency` workers (`--concurrent`, default 16; at least 1) with
    /// the per-key `backoff` policy.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        kind: R,
        concurrency: usize,
        backoff: BackoffFactory,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            kind: Arc::new(kind),
            queue: Queue::with_metrics(crate::metrics::QueueMetrics::new(
                &R::KIND.to_ascii_lowercase(),
            )),
            backoffs: Mutex::new(HashMap::new()),
            backoff,
            concurrency: concurrency.max(1),
            relists: AtomicU64::new(0),
        })
    }

    /// Spawns the watch task and the workers on `tracker`. They stop when `shutdown` is
    /// cancelled: the watch at once, each worker after its running reconcile (graceful
    /// shutdown: the caller waits on the tracker).
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

    /// How many times the storage watch ended and the controller re-listed.
    pub fn relists(&self) -> u64 {
        self.relists.load(Ordering::Relaxed)
    }

    /// Queues `key` for a reconcile now, for a change this controller's own watch does not
    /// see: another kind's object mapped to this kind's keys, as Flux's `Watches(...,
    /// EnqueueRequestsFromMapFunc)` does (a HelmRepository change to the HelmCharts naming
    /// it). A key already queued keeps the earlier deadline; a running key runs again after.
    pub fn enqueue(&self, key: ObjectKey) {
        self.queue.schedule(key, Instant::now());
    }

    async fn work(&self, worker: usize, shutdown: CancellationToken) {
        loop {
            let key = tokio::select! {
                k = self.queue.next() => k,
                () = shutdown.cancelled() => return,
            };
            let span = tracing::info_span!(
                "reconcile",
                kind = R::KIND,
                worker,
                object = %format_args!("{}/{}", key.namespace, key.name)
            );
            let started = std::time::Instant::now();
            let action = self.reconcile_key(&key).instrument(span.clone()).await;
            crate::metrics::reconciled(
                R::KIND,
                &key.namespace,
                &key.name,
                action.metric_result(),
                started.elapsed(),
            );
            let _entered = span.enter();
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                ?action,
                "reconciled"
            );
            self.schedule(&key, action);
            self.queue.done(&key);
        }
    }

    /// Reads the latest object and reconciles it, catching panics. Never fails: every outcome
    /// is an [`Action`].
    async fn reconcile_key(&self, key: &ObjectKey) -> Action {
        let raw = match self.store.get(key).await {
            Ok(raw) => raw,
            Err(storage::Error::NotFound { .. }) => return Action::AwaitChange,
            Err(error) => {
                tracing::warn!(error = %chain(&error), "reading the object failed");
                return Action::Backoff;
            }
        };
        let obj: Arc<R::Object> = match serde_json::from_value(raw) {
            Ok(obj) => Arc::new(obj),
            Err(error) => {
                tracing::error!(%error, kind = R::KIND, "the stored object does not decode");
                return Action::AwaitChange;
            }
        };
        let outcome = AssertUnwindSafe(self.kind.reconcile(obj.clone()))
            .catch_unwind()
            .await;
        match outcome {
            Ok(Ok(action)) => action,
            Ok(Err(error)) => {
                tracing::warn!(
                    reason = R::metric_label(&error),
                    error = %chain(&error),
                    "reconcile failed"
                );
                AssertUnwindSafe(self.kind.error_policy(obj, &error))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| self.panicked(key, "error policy", &*panic))
            }
            Err(panic) => self.panicked(key, "reconcile", &*panic),
        }
    }

    /// Logs a caught panic with the object reference; the key is retried with backoff.
    fn panicked(&self, key: &ObjectKey, what: &str, panic: &(dyn std::any::Any + Send)) -> Action {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        tracing::error!(
            kind = R::KIND,
            namespace = %key.namespace,
            name = %key.name,
            panic = %message,
            "{what} panicked; retrying with backoff"
        );
        Action::Backoff
    }

    /// Queues `key` again according to `action`, resetting or advancing its backoff.
    fn schedule(&self, key: &ObjectKey, action: Action) {
        let now = Instant::now();
        match action {
            Action::Requeue(after) => {
                self.reset_backoff(key);
                self.queue.schedule(key.clone(), now + after);
            }
            Action::AwaitChange => self.reset_backoff(key),
            Action::Backoff => {
                let delay = self
                    .backoffs
                    .lock()
                    .entry(key.clone())
                    .or_insert_with(|| (self.backoff)())
                    .next_delay();
                tracing::debug!(retry_in_ms = delay.as_millis() as u64, "retrying");
                self.queue.schedule(key.clone(), now + delay);
            }
        }
    }

    fn reset_backoff(&self, key: &ObjectKey) {
        if let Some(b) = self.backoffs.lock().get_mut(key) {
            b.reset();
        }
    }

    /// Forgets everything about a deleted object.
    pub(super) fn forget(&self, key: &ObjectKey) {
        self.queue.forget(key);
        self.backoffs.lock().remove(key);
    }
}

/// An error chain as one line: `outer: cause: cause` (a cause already in the text is skipped).
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

#[cfg(test)]
mod tests;
