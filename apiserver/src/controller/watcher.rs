//! The controller's storage watch: what queues an object, and re-listing when the watch ends.
//!
//! Triggers follow Flux's predicates (`GenerationChangedPredicate` or
//! `ReconcileRequestedPredicate`): an object is queued at once when it appears, when its
//! `metadata.generation` changes, when `reconcile.fluxcd.io/requestedAt` changes, or when it
//! starts being deleted; status-only writes (including the controller's own) never trigger.
//!
//! Every watch starts with a list (kube-runtime's `watcher` re-lists the same way): the
//! objects are read in pages of [`LIST_PAGE`] at one pinned revision, as their stored text,
//! and only their metadata is decoded (a 10,000-object store is never held decoded at once);
//! then the watch follows the changes after that revision. So when a watch ends — 410 Expired
//! after the watcher fell behind its buffer, or any other error — the next list queues an
//! object whose trigger changed meanwhile, forgets one deleted meanwhile, and misses no change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use openapi::meta::RECONCILE_REQUEST_ANNOTATION;
use serde::Deserialize;
use serde_json::Value;
use storage::{
    ListOptions, ObjectKey, Revision, WatchEvent, WatchEventType, WatchOptions, WatchStream,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::runtime::{Controller, Reconcile, chain};

/// Objects per page of the list that starts every watch.
const LIST_PAGE: u64 = 500;
/// Delay before listing again after a list or watch could not be started.
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

/// The part of a listed object the watch reads: its metadata's identity and triggers (serde
/// skips the rest of the stored text without building it).
#[derive(Debug, Deserialize)]
struct Listed {
    metadata: ListedMeta,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    uid: Option<String>,
    generation: Option<i64>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    deletion_timestamp: Option<String>,
}

impl ListedMeta {
    fn trigger(mut self) -> Trigger {
        Trigger {
            uid: self.uid,
            generation: self.generation.unwrap_or(0),
            requested_at: self.annotations.remove(RECONCILE_REQUEST_ANNOTATION),
            deleting: self.deletion_timestamp.is_some(),
        }
    }
}

/// The watch's memory: the last trigger seen per object.
#[derive(Debug, Default)]
struct Seen {
    triggers: HashMap<ObjectKey, Trigger>,
}

impl<R: Reconcile> Controller<R> {
    /// Follows storage events and queues due objects until `shutdown`; lists again whenever a
    /// watch ends.
    pub(super) async fn watch(&self, shutdown: CancellationToken) {
        let mut seen = Seen::default();
        while !shutdown.is_cancelled() {
            let Some(revision) = self.list(&mut seen, &shutdown).await else {
                continue;
            };
            let Some(stream) = self.start_watch(revision, &shutdown).await else {
                continue;
            };
            if self.follow(stream, &mut seen, &shutdown).await.is_none() {
                return;
            }
            self.relists.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lists every object in pages at one revision, queues those whose trigger changed and
    /// forgets those gone. The revision listed, or `None` after a failed attempt (retried after
    /// [`REWATCH_DELAY`]) or on shutdown.
    async fn list(&self, seen: &mut Seen, shutdown: &CancellationToken) -> Option<Revision> {
        let resource = self.kind.resource();
        let mut options = ListOptions {
            limit: Some(LIST_PAGE),
            ..ListOptions::default()
        };
        let mut listed = HashSet::new();
        let mut revision = None;
        loop {
            let page = tokio::select! {
                p = self.store.list_raw(&resource, None, &options) => p,
                () = shutdown.cancelled() => return None,
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => return self.retry_later("listing", &error, shutdown).await,
            };
            revision.get_or_insert(page.resource_version);
            for raw in &page.items {
                let Ok(Listed { metadata }) = serde_json::from_str::<Listed>(raw) else {
                    tracing::error!(kind = R::KIND, "a stored object's metadata does not decode");
                    continue;
                };
                let key = resource.object(&metadata.namespace, &metadata.name);
                listed.insert(key.clone());
                self.observe(key, metadata.trigger(), seen);
            }
            match page.continue_token {
                Some(token) => options.continue_token = Some(token),
                None => break,
            }
        }
        self.end_of_list(seen, &listed);
        revision
    }

    /// A watch of the changes after `revision`, or `None` after a failed attempt (retried
    /// after [`REWATCH_DELAY`]) or on shutdown.
    async fn start_watch(
        &self,
        revision: Revision,
        shutdown: &CancellationToken,
    ) -> Option<WatchStream> {
        let options = WatchOptions {
            resource_version: Some(revision),
            bookmarks: true,
            ..WatchOptions::default()
        };
        let resource = self.kind.resource();
        let started = tokio::select! {
            s = self.store.watch(&resource, None, options) => s,
            () = shutdown.cancelled() => return None,
        };
        match started {
            Ok(stream) => Some(stream),
            Err(error) => self.retry_later("watching", &error, shutdown).await,
        }
    }

    /// Logs a failed list or watch and waits [`REWATCH_DELAY`] (or for shutdown).
    async fn retry_later<T>(
        &self,
        what: &str,
        error: &storage::Error,
        shutdown: &CancellationToken,
    ) -> Option<T> {
        tracing::warn!(kind = R::KIND, error = %chain(error), "{what} failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(REWATCH_DELAY) => None,
            () = shutdown.cancelled() => None,
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
                self.observe(key, Trigger::of(&event.object), seen);
            }
            WatchEventType::Bookmark | WatchEventType::Error => {}
        }
    }

    /// Queues `key` at once when its trigger is new.
    fn observe(&self, key: ObjectKey, trigger: Trigger, seen: &mut Seen) {
        if seen.triggers.get(&key) != Some(&trigger) {
            seen.triggers.insert(key.clone(), trigger);
            self.queue.schedule(key, Instant::now());
        }
    }

    /// A list is complete: objects seen before but not `listed` were deleted while no watch
    /// ran.
    fn end_of_list(&self, seen: &mut Seen, listed: &HashSet<ObjectKey>) {
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

    #[test]
    fn a_listed_object_has_the_trigger_of_its_watch_event() {
        for object in [
            serde_json::json!({"metadata": {"name": "a", "namespace": "default", "generation": 3, "uid": "u1"}}),
            serde_json::json!({"metadata": {"name": "a", "namespace": "default", "generation": 1, "uid": "u1",
                "annotations": {"reconcile.fluxcd.io/requestedAt": "now", "other": "x"},
                "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"observedGeneration": 1}}),
            serde_json::json!({"metadata": {"name": "a", "namespace": "default"}}),
        ] {
            let listed: Listed = serde_json::from_str(&object.to_string()).unwrap();
            assert_eq!(listed.metadata.trigger(), Trigger::of(&object), "{object}");
        }
    }
}
