//! The controller's storage watch: what queues an object, and re-listing when the watch ends.
//!
//! Triggers follow Flux's predicates (`GenerationChangedPredicate` or
//! `ReconcileRequestedPredicate`): an object is queued at once when it appears, when its
//! `metadata.generation` changes, when `reconcile.fluxcd.io/requestedAt` changes, or when it
//! starts being deleted; status-only writes (including the controller's own) never trigger.
//!
//! Every watch starts from the current state (`sendInitialEvents`: the objects as ADDED, then
//! a bookmark marking the end of the list), so when a watch ends — 410 Expired after the
//! watcher fell behind its buffer, or any other error — the next one is a re-list: an object
//! whose trigger changed meanwhile is queued, one deleted meanwhile is forgotten, and no change
//! is missed (kube-runtime's `watcher` re-lists the same way).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use openapi::meta::RECONCILE_REQUEST_ANNOTATION;
use serde_json::Value;
use storage::{ObjectKey, WatchEvent, WatchEventType, WatchOptions, WatchStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::runtime::{Controller, Reconcile, chain};

/// The annotation of the bookmark that ends the initial list of a watch.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";
/// Delay before watching again after the watch could not be started.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// What makes an object due: a new object (another uid, so one deleted and created again while
/// no watch ran is not mistaken for the old one), a new generation, a new reconcile request or
/// the start of deletion, never status changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Trigger {
    uid: Option<String>,
    generation: i64,
    requested_at: Option<String>,
    deleting: bool,
}

impl Trigger {
    pub(super) fn of(object: &Value) -> Self {
        let meta = &object["metadata"];
        Self {
            uid: meta["uid"].as_str().map(str::to_owned),
            generation: meta["generation"].as_i64().unwrap_or(0),
            requested_at: meta["annotations"][RECONCILE_REQUEST_ANNOTATION]
                .as_str()
                .map(str::to_owned),
            deleting: !meta["deletionTimestamp"].is_null(),
        }
    }
}

/// The watch's memory: the last trigger seen per object, and the keys listed by the current
/// watch until its initial list ends.
#[derive(Debug, Default)]
struct Seen {
    triggers: HashMap<ObjectKey, Trigger>,
    listing: Option<HashSet<ObjectKey>>,
}

impl<R: Reconcile> Controller<R> {
    /// Follows storage events and queues due objects until `shutdown`; re-lists whenever a
    /// watch ends.
    pub(super) async fn watch(&self, shutdown: CancellationToken) {
        let mut seen = Seen::default();
        while !shutdown.is_cancelled() {
            let Some(stream) = self.start_watch(&shutdown).await else {
                continue;
            };
            seen.listing = Some(HashSet::new());
            if self.follow(stream, &mut seen, &shutdown).await.is_none() {
                return;
            }
            self.relists.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A new watch from the current state, or `None` after a failed attempt (retried after
    /// [`REWATCH_DELAY`]) or on shutdown.
    async fn start_watch(&self, shutdown: &CancellationToken) -> Option<WatchStream> {
        let options = WatchOptions {
            bookmarks: true,
            send_initial_events: true,
            ..WatchOptions::default()
        };
        let resource = self.kind.resource();
        let started = tokio::select! {
            s = self.store.watch(&resource, None, options) => s,
            () = shutdown.cancelled() => return None,
        };
        match started {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(kind = R::KIND, error = %chain(&error), "watching failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(REWATCH_DELAY) => None,
                    () = shutdown.cancelled() => None,
                }
            }
        }
    }

    /// Handles the events of one watch. `Some(())` when the watch ended (re-list), `None` on
    /// shutdown.
    async fn follow(
        &self,
        mut stream: WatchStream,
        seen: &mut Seen,
        shutdown: &CancellationToken,
    ) -> Option<()> {
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                () = shutdown.cancelled() => return None,
            };
            match event {
                Some(Ok(event)) => self.handle(event, seen),
                Some(Err(error)) => {
                    tracing::info!(kind = R::KIND, error = %chain(&error), "watch ended; re-listing");
                    return Some(());
                }
                None => return Some(()),
            }
        }
    }

    fn handle(&self, event: WatchEvent, seen: &mut Seen) {
        let meta = &event.object["metadata"];
        if event.event_type == WatchEventType::Bookmark {
            if meta["annotations"][INITIAL_EVENTS_END] == "true" {
                self.end_of_list(seen);
            }
            return;
        }
        let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
            return;
        };
        let key = self.kind.resource().object(ns, name);
        match event.event_type {
            WatchEventType::Deleted => {
                seen.triggers.remove(&key);
                self.forget(&key);
            }
            WatchEventType::Added | WatchEventType::Modified => {
                if let Some(listed) = seen.listing.as_mut() {
                    listed.insert(key.clone());
                }
                let trigger = Trigger::of(&event.object);
                if seen.triggers.get(&key) != Some(&trigger) {
                    seen.triggers.insert(key.clone(), trigger);
                    self.queue.schedule(key, Instant::now());
                }
            }
            WatchEventType::Bookmark | WatchEventType::Error => {}
        }
    }

    /// The initial list of a watch is complete: objects seen before but not listed were
    /// deleted while no watch ran.
    fn end_of_list(&self, seen: &mut Seen) {
        let Some(listed) = seen.listing.take() else {
            return;
        };
        let gone: Vec<ObjectKey> = seen
            .triggers
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            seen.triggers.remove(&key);
            self.forget(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generation_requests_and_deletion_trigger() {
        let base = serde_json::json!({
            "metadata": {"name": "a", "namespace": "default", "generation": 1, "uid": "u1"},
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
        let mut deleting = base.clone();
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        assert_ne!(Trigger::of(&deleting), t);
        let mut recreated = base;
        recreated["metadata"]["uid"] = "another-uid".into();
        assert_ne!(
            Trigger::of(&recreated),
            t,
            "a new object with the same name"
        );
    }
}
