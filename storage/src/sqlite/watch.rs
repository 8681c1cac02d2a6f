//! In-process fan-out of committed changes to watchers, and the watch stream itself.
//!
//! The writer publishes every committed change, in revision order, to the [`Hub`]. Each
//! watcher has a bounded channel; a watcher whose channel is full is dropped from the hub and
//! its stream ends with 410 Expired, so a slow client never grows the server's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::key::ResourceKey;
use crate::object::set_resource_version;
use crate::selector::Filter;
use crate::store::{WatchEvent, WatchEventType, WatchStream};

/// One committed change.
#[derive(Debug)]
pub(super) struct Change {
    pub(super) rev: u64,
    pub(super) resource: ResourceKey,
    pub(super) namespace: String,
    /// Added, Modified or Deleted.
    pub(super) kind: WatchEventType,
    /// The new state (for Deleted: the last state with the deletion revision).
    pub(super) object: Arc<Value>,
    /// The previous state (None for Added).
    pub(super) prev: Option<Arc<Value>>,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    resource: ResourceKey,
    namespace: Option<String>,
    tx: mpsc::Sender<Arc<Change>>,
    overflowed: Arc<AtomicBool>,
}

/// The fan-out point between the writer and the watchers.
#[derive(Debug, Default)]
pub(super) struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
    /// The id of the next subscriber.
    next_id: AtomicU64,
    /// Every change with a revision up to this one has been offered to every subscriber.
    published: AtomicU64,
    /// `apiVersion`/`kind` last seen per collection, for bookmarks.
    kinds: Mutex<HashMap<ResourceKey, (Value, Value)>>,
    closed: AtomicBool,
}

/// A watcher's end of the hub. Dropping it (the watch stream ended or its client went away)
/// removes the watcher from the hub at once, so a client that disconnects mid-stream leaves
/// nothing behind.
#[derive(Debug)]
pub(super) struct Subscription {
    rx: mpsc::Receiver<Arc<Change>>,
    overflowed: Arc<AtomicBool>,
    hub: Weak<Hub>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
    }
}

impl Hub {
    pub(super) fn new(revision: u64) -> Self {
        let hub = Hub::default();
        hub.published.store(revision, Ordering::Release);
        hub
    }

    /// Registers a watcher of `resource` in `namespace` with a buffer of `capacity` changes.
    pub(super) fn subscribe(
        self: &Arc<Self>,
        resource: &ResourceKey,
        namespace: Option<&str>,
        capacity: usize,
    ) -> Result<Subscription> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subs = self.subscribers.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        subs.push(Subscriber {
            id,
            resource: resource.clone(),
            namespace: namespace.map(str::to_owned),
            tx,
            overflowed: overflowed.clone(),
        });
        Ok(Subscription {
            rx,
            overflowed,
            hub: Arc::downgrade(self),
            id,
        })
    }

    /// Forgets the watcher `id` (its stream was dropped).
    fn unsubscribe(&self, id: u64) {
        self.subscribers.lock().retain(|s| s.id != id);
    }

    /// The number of registered watchers.
    pub(super) fn watchers(&self) -> usize {
        self.subscribers.lock().len()
    }

    /// Offers committed changes (in revision order) to every interested watcher.
    pub(super) fn publish(&self, changes: &[Arc<Change>], revision: u64) {
        let mut subs = self.subscribers.lock();
        {
            let mut kinds = self.kinds.lock();
            for c in changes {
                if let (Some(a), Some(k)) = (c.object.get("apiVersion"), c.object.get("kind")) {
                    kinds.insert(c.resource.clone(), (a.clone(), k.clone()));
                }
            }
        }
        for change in changes {
            subs.retain(|s| {
                if s.resource != change.resource
                    || s.namespace
                        .as_deref()
                        .is_some_and(|ns| ns != change.namespace)
                {
                    // Forget watchers whose stream was dropped.
                    return !s.tx.is_closed();
                }
                match s.tx.try_send(change.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.overflowed.store(true, Ordering::Release);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
        self.published.fetch_max(revision, Ordering::AcqRel);
    }

    /// Remembers a collection's `apiVersion`/`kind` (from a stored object).
    pub(super) fn learn_kind(&self, resource: &ResourceKey, object: &Value) {
        if let (Some(a), Some(k)) = (object.get("apiVersion"), object.get("kind")) {
            self.kinds
                .lock()
                .entry(resource.clone())
                .or_insert_with(|| (a.clone(), k.clone()));
        }
    }

    fn kind_of(&self, resource: &ResourceKey) -> Option<(Value, Value)> {
        self.kinds.lock().get(resource).cloned()
    }

    /// Ends every watch (their streams yield `Err(Closed)`).
    pub(super) fn close(&self) {
        let mut subs = self.subscribers.lock();
        self.closed.store(true, Ordering::Release);
        subs.clear();
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

/// Everything a watch stream needs.
pub(super) struct WatchSetup {
    pub(super) hub: Arc<Hub>,
    pub(super) subscription: Subscription,
    pub(super) resource: ResourceKey,
    pub(super) filter: Filter,
    /// Events to send first (initial state or history), already filtered and transformed.
    pub(super) initial: VecDeque<WatchEvent>,
    /// Revision of the snapshot `initial` came from; live changes at or below it are dropped.
    pub(super) start_revision: u64,
    pub(super) bookmark_interval: Option<Duration>,
}

struct WatchState {
    setup: WatchSetup,
    last_revision: u64,
    next_bookmark: Option<tokio::time::Instant>,
    done: bool,
}

/// The bookmark object: `apiVersion`, `kind` (when known) and `metadata.resourceVersion`.
pub(super) fn bookmark(
    hub: &Hub,
    resource: &ResourceKey,
    rev: u64,
    initial_end: bool,
) -> WatchEvent {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let mut object = serde_json::Map::new();
    if let Some((api_version, kind)) = hub.kind_of(resource) {
        object.insert("apiVersion".into(), api_version);
        object.insert("kind".into(), kind);
    }
    object.insert("metadata".into(), meta);
    WatchEvent {
        event_type: WatchEventType::Bookmark,
        object: Value::Object(object),
    }
}

/// Turns a change into the event a watcher with `filter` sees, if any
/// (`k8s.io/apiserver: pkg/storage/etcd3/watcher.go` `transform`).
pub(super) fn transform(filter: &Filter, change: &Change) -> Option<WatchEvent> {
    let object = change.object.as_ref();
    if filter.is_empty() {
        return Some(WatchEvent {
            event_type: change.kind,
            object: object.clone(),
        });
    }
    let now = filter.matches(object);
    match change.kind {
        WatchEventType::Modified => {
            let before = change.prev.as_deref().is_some_and(|p| filter.matches(p));
            match (before, now) {
                (true, true) => Some(WatchEvent {
                    event_type: WatchEventType::Modified,
                    object: object.clone(),
                }),
                (false, true) => Some(WatchEvent {
                    event_type: WatchEventType::Added,
                    object: object.clone(),
                }),
                (true, false) => {
                    let mut old = change.prev.as_deref().cloned().unwrap_or(Value::Null);
                    set_resource_version(&mut old, Some(change.rev));
                    Some(WatchEvent {
                        event_type: WatchEventType::Deleted,
                        object: old,
                    })
                }
                (false, false) => None,
            }
        }
        kind => now.then(|| WatchEvent {
            event_type: kind,
            object: object.clone(),
        }),
    }
}

impl WatchState {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        if self.done {
            return None;
        }
        if let Some(ev) = self.setup.initial.pop_front() {
            return Some(Ok(ev));
        }
        loop {
            let received = match self.next_bookmark {
                Some(deadline) => {
                    tokio::select! {
                        biased;
                        c = self.setup.subscription.rx.recv() => Some(c),
                        _ = tokio::time::sleep_until(deadline) => None,
                    }
                }
                None => Some(self.setup.subscription.rx.recv().await),
            };
            match received {
                Some(Some(change)) => {
                    if change.rev <= self.last_revision {
                        continue;
                    }
                    self.last_revision = change.rev;
                    if let Some(ev) = transform(&self.setup.filter, &change) {
                        return Some(Ok(ev));
                    }
                }
                Some(None) => {
                    self.done = true;
                    if self.setup.subscription.overflowed.load(Ordering::Acquire) {
                        return Some(Err(Error::Expired {
                            message: format!(
                                "too old resource version: {} ({}): the watcher fell too far behind",
                                self.last_revision,
                                self.setup.hub.published()
                            ),
                        }));
                    }
                    return Some(Err(Error::Closed));
                }
                None => {
                    // Bookmark time. Only when nothing is pending for us, so the bookmark's
                    // revision never skips a change we have yet to deliver.
                    let published = self.setup.hub.published();
                    let interval = self
                        .setup
                        .bookmark_interval
                        .unwrap_or(Duration::from_secs(60));
                    self.next_bookmark = Some(tokio::time::Instant::now() + interval);
                    if !self.setup.subscription.rx.is_empty() {
                        continue;
                    }
                    self.last_revision = self.last_revision.max(published);
                    return Some(Ok(bookmark(
                        &self.setup.hub,
                        &self.setup.resource,
                        self.last_revision,
                        false,
                    )));
                }
            }
        }
    }
}

/// Builds the stream for a prepared watch.
pub(super) fn stream(setup: WatchSetup) -> WatchStream {
    let next_bookmark = setup
        .bookmark_interval
        .map(|i| tokio::time::Instant::now() + i);
    let state = WatchState {
        last_revision: setup.start_revision,
        setup,
        next_bookmark,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    }))
}
