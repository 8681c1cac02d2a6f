//! Watches on etcd watches (`k8s.io/apiserver: pkg/storage/etcd3/watcher.go`).
//!
//! A watch reads the current state first when asked to (ADDED events at one revision), then
//! opens an etcd watch on the collection's prefix from the next revision with previous
//! values. One task per watch turns etcd events into Kubernetes events (selectors applied
//! with the previous state, as upstream's `transform`) and queues them in a bounded channel:
//! a watcher that falls [`super::EtcdConfig::watch_buffer`] events behind is ended with 410
//! Expired. A broken etcd stream (a member died) is reopened from the last delivered revision
//! on another member; a compacted revision ends the watch with 410 Expired.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{
    Client, EventType, GetOptions, WatchOptions as EtcdWatchOptions, WatchRequestSender,
    WatchResponse, WatchResponseStream,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::EtcdStore;
use super::keys::{decode, range_end};
use super::read::{RevisionError, etcd, range_all, revision_error};
use crate::error::{Error, Result};
use crate::key::ResourceKey;
use crate::object::set_resource_version;
use crate::selector::Filter;
use crate::store::{WatchEvent, WatchEventType, WatchOptions, WatchStream};

/// How often a broken etcd watch stream is reopened before the watch ends with an error.
const REOPEN_ATTEMPTS: u32 = 10;

/// One change read from etcd.
struct Change {
    rev: i64,
    kind: WatchEventType,
    object: Value,
    prev: Option<Value>,
}

/// Starts a watch; see [`crate::ObjectStore::watch`].
pub(super) async fn start(
    store: &EtcdStore,
    resource: &ResourceKey,
    namespace: Option<&str>,
    opts: WatchOptions,
) -> Result<WatchStream> {
    let filter = Filter::parse(
        opts.label_selector.as_deref(),
        opts.field_selector.as_deref(),
    )?;
    let prefix = store.keys.collection(resource, namespace);
    let from = opts.resource_version.map_or(0, |r| r.0 as i64);
    let mut initial = VecDeque::new();
    let mut kind = None;
    let start = if from == 0 || opts.send_initial_events {
        let (revision, kvs) = range_all(store, &prefix, 0).await?;
        for kv in kvs {
            let object = decode(&kv, kv.mod_revision())?;
            learn_kind(&mut kind, &object);
            if filter.matches(&object) {
                initial.push_back(WatchEvent {
                    event_type: WatchEventType::Added,
                    object,
                });
            }
        }
        revision
    } else {
        from
    };
    if opts.bookmarks && kind.is_none() {
        kind = sample_kind(store, resource).await?;
    }
    if opts.bookmarks && opts.send_initial_events {
        initial.push_back(bookmark(kind.as_ref(), start, true));
    }
    let (requests, responses) = open(&store.client, &prefix, start).await?;
    let (tx, rx) = mpsc::channel(store.config.watch_buffer.max(1) + 1);
    let pump = Pump {
        client: store.client.clone(),
        prefix,
        requests,
        responses,
        filter,
        kind,
        last: start,
        bookmark_interval: opts.bookmarks.then_some(store.config.bookmark_interval),
        progress_pending: false,
        tx,
    };
    tokio::spawn(pump.run(store.closed.subscribe()));
    // The initial state is not limited by the buffer (as SQLite's is not): it is sent from
    // here, before the queued live events.
    Ok(Box::pin(futures::stream::unfold(
        (initial, rx),
        |(mut initial, mut rx)| async move {
            let item = match initial.pop_front() {
                Some(event) => Ok(event),
                None => rx.recv().await?,
            };
            Some((item, (initial, rx)))
        },
    )))
}

/// The `apiVersion` and `kind` of any one stored object of the collection, for bookmarks.
async fn sample_kind(store: &EtcdStore, resource: &ResourceKey) -> Result<Option<(Value, Value)>> {
    let prefix = store.keys.resource(resource);
    let options = GetOptions::new()
        .with_range(range_end(prefix.as_bytes()))
        .with_limit(1);
    let response = store
        .client
        .kv_client()
        .get(prefix, Some(options))
        .await
        .map_err(etcd("watch"))?;
    let mut kind = None;
    if let Some(kv) = response.kvs().first() {
        learn_kind(&mut kind, &decode(kv, kv.mod_revision())?);
    }
    Ok(kind)
}

fn learn_kind(kind: &mut Option<(Value, Value)>, object: &Value) {
    if let (Some(a), Some(k)) = (object.get("apiVersion"), object.get("kind")) {
        *kind = Some((a.clone(), k.clone()));
    }
}

/// How long a watch from a compacted revision waits for etcd's cancel naming the compact
/// revision.
const COMPACTED_ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Opens an etcd watch of `prefix` for every change after `after`.
///
/// # Errors
/// [`Error::Expired`] when `after` is compacted: etcd creates the watch and then cancels it
/// with the compact revision, so a read at `after + 1` tells first whether to wait for that.
async fn open(
    client: &Client,
    prefix: &str,
    after: i64,
) -> Result<(WatchRequestSender, WatchResponseStream)> {
    let end = range_end(prefix.as_bytes());
    let check = GetOptions::new()
        .with_range(end.clone())
        .with_revision(after + 1)
        .with_count_only();
    let compacted = match client.kv_client().get(prefix, Some(check)).await {
        Ok(_) => false,
        Err(e) => match revision_error(&e) {
            Some(RevisionError::Compacted) => true,
            Some(RevisionError::Future) => false,
            None => return Err(etcd("watch")(e)),
        },
    };
    let options = EtcdWatchOptions::new()
        .with_range(end)
        .with_start_revision(after + 1)
        .with_prev_key();
    let stream = client
        .watch_client()
        .watch(prefix, Some(options))
        .await
        .map_err(etcd("watch"))?;
    let (requests, mut responses) = stream.split();
    let ended = || Error::Etcd {
        operation: "watch",
        source: etcd_client::Error::WatchError("the watch stream ended".into()),
    };
    loop {
        let message = if compacted {
            match tokio::time::timeout(COMPACTED_ANSWER_WAIT, responses.message()).await {
                Ok(message) => message,
                Err(_) => return Err(too_old(after, after + 2)),
            }
        } else {
            responses.message().await
        };
        match message.map_err(etcd("watch"))? {
            Some(r) if r.compact_revision() > 0 => {
                return Err(too_old(after, r.compact_revision()));
            }
            Some(r) if r.canceled() => {
                return Err(Error::Etcd {
                    operation: "watch",
                    source: etcd_client::Error::WatchError(r.cancel_reason().to_owned()),
                });
            }
            Some(r) if r.created() && !compacted => return Ok((requests, responses)),
            Some(_) => {}
            None => return Err(ended()),
        }
    }
}

/// 410 Expired for a watch from `after` when etcd keeps history from `compacted` on: the
/// oldest resumable `resourceVersion` is `compacted - 1`.
fn too_old(after: i64, compacted: i64) -> Error {
    Error::too_old(after.max(0) as u64, (compacted - 1).max(0) as u64)
}

/// The bookmark object: `apiVersion`, `kind` (when known) and `metadata.resourceVersion`.
fn bookmark(kind: Option<&(Value, Value)>, rev: i64, initial_end: bool) -> WatchEvent {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let mut object = serde_json::Map::new();
    if let Some((api_version, kind)) = kind {
        object.insert("apiVersion".into(), api_version.clone());
        object.insert("kind".into(), kind.clone());
    }
    object.insert("metadata".into(), meta);
    WatchEvent {
        event_type: WatchEventType::Bookmark,
        object: Value::Object(object),
    }
}

/// Turns a change into the event a watcher with `filter` sees, if any: an object that
/// starts matching is ADDED, one that stops matching DELETED (with its old state at the
/// change's revision), as SQLite's watch and upstream's `transform` do.
fn transform(filter: &Filter, change: Change) -> Option<WatchEvent> {
    let event = |event_type, object| Some(WatchEvent { event_type, object });
    if filter.is_empty() {
        return event(change.kind, change.object);
    }
    let now = filter.matches(&change.object);
    if change.kind != WatchEventType::Modified {
        return if now {
            event(change.kind, change.object)
        } else {
            None
        };
    }
    let before = change.prev.as_ref().is_some_and(|p| filter.matches(p));
    match (before, now) {
        (true, true) => event(WatchEventType::Modified, change.object),
        (false, true) => event(WatchEventType::Added, change.object),
        (true, false) => {
            let mut old = change.prev.unwrap_or(Value::Null);
            set_resource_version(&mut old, Some(change.rev as u64));
            event(WatchEventType::Deleted, old)
        }
        (false, false) => None,
    }
}

/// Reads the changes of one etcd watch response.
fn changes(response: &WatchResponse) -> Result<Vec<Change>> {
    let mut out = Vec::with_capacity(response.events().len());
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        let rev = kv.mod_revision();
        let prev = event
            .prev_kv()
            .map(|p| decode(p, p.mod_revision()))
            .transpose()?;
        let change = match event.event_type() {
            EventType::Put => Change {
                rev,
                kind: if kv.create_revision() == rev {
                    WatchEventType::Added
                } else {
                    WatchEventType::Modified
                },
                object: decode(kv, rev)?,
                prev,
            },
            EventType::Delete => {
                let Some(mut object) = prev.clone() else {
                    tracing::warn!(key = %String::from_utf8_lossy(kv.key()), rev, "etcd delete event without the previous value");
                    continue;
                };
                set_resource_version(&mut object, Some(rev as u64));
                Change {
                    rev,
                    kind: WatchEventType::Deleted,
                    object,
                    prev,
                }
            }
        };
        out.push(change);
    }
    Ok(out)
}

/// The task that moves one etcd watch into one watch stream.
struct Pump {
    client: Client,
    prefix: String,
    requests: WatchRequestSender,
    responses: WatchResponseStream,
    filter: Filter,
    kind: Option<(Value, Value)>,
    /// Every change up to this revision has been queued.
    last: i64,
    bookmark_interval: Option<Duration>,
    /// A progress request is out; its answer becomes the next bookmark.
    progress_pending: bool,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

/// Why a pump stopped.
enum Stop {
    /// The consumer dropped the stream.
    Dropped,
    /// The stream ends with this error.
    Fail(Error),
}

impl Pump {
    async fn run(mut self, mut closed: tokio::sync::watch::Receiver<bool>) {
        let mut next_bookmark = self
            .bookmark_interval
            .map(|i| tokio::time::Instant::now() + i);
        let stop = loop {
            let bookmark_due = async {
                match next_bookmark {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                biased;
                () = super::closing(&mut closed) => Err(Stop::Fail(Error::Closed)),
                () = self.tx.closed() => Err(Stop::Dropped),
                message = self.responses.message() => self.handle(message).await,
                () = bookmark_due => {
                    let interval = self.bookmark_interval.unwrap_or(Duration::from_secs(60));
                    next_bookmark = Some(tokio::time::Instant::now() + interval);
                    self.request_progress().await;
                    Ok(())
                }
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        if let Stop::Fail(error) = stop {
            // The channel keeps one slot free for the final error.
            let _ = self.tx.try_send(Err(error));
        }
    }

    async fn request_progress(&mut self) {
        if self.progress_pending {
            return;
        }
        match self.requests.request_progress().await {
            Ok(()) => self.progress_pending = true,
            Err(error) => tracing::debug!(%error, "etcd watch progress request failed"),
        }
    }

    /// Handles one answer of the etcd stream.
    async fn handle(
        &mut self,
        message: std::result::Result<Option<WatchResponse>, etcd_client::Error>,
    ) -> std::result::Result<(), Stop> {
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return self.reopen(None).await,
            Err(error) => return self.reopen(Some(error)).await,
        };
        if response.compact_revision() > 0 {
            return Err(Stop::Fail(too_old(self.last, response.compact_revision())));
        }
        if response.canceled() {
            return self.reopen(None).await;
        }
        if response.events().is_empty() {
            let revision = response.header().map_or(0, |h| h.revision());
            if self.progress_pending && !response.created() {
                self.progress_pending = false;
                self.last = self.last.max(revision);
                let event = bookmark(self.kind.as_ref(), self.last, false);
                // A bookmark is only a hint: skip it rather than overflow.
                if self.tx.capacity() > 1 {
                    let _ = self.tx.try_send(Ok(event));
                }
            }
            return Ok(());
        }
        for change in changes(&response).map_err(Stop::Fail)? {
            self.last = self.last.max(change.rev);
            learn_kind(&mut self.kind, &change.object);
            if let Some(event) = transform(&self.filter, change) {
                self.queue(event)?;
            }
        }
        Ok(())
    }

    /// Queues an event, or ends the watch with 410 when the watcher is a full buffer behind.
    fn queue(&self, event: WatchEvent) -> std::result::Result<(), Stop> {
        if self.tx.capacity() <= 1 {
            return Err(Stop::Fail(Error::Expired {
                message: format!(
                    "too old resource version: {} ({}): the watcher fell too far behind",
                    event.object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default(),
                    self.last
                ),
            }));
        }
        self.tx.try_send(Ok(event)).map_err(|_| Stop::Dropped)
    }

    /// Reopens a broken etcd watch from the last queued revision (another member answers if
    /// one died), or ends the watch.
    async fn reopen(&mut self, cause: Option<etcd_client::Error>) -> std::result::Result<(), Stop> {
        if let Some(error) = &cause {
            tracing::debug!(%error, last = self.last, "etcd watch stream broke; reopening");
        }
        let mut last_error = cause;
        for attempt in 0..REOPEN_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            match open(&self.client, &self.prefix, self.last).await {
                Ok((requests, responses)) => {
                    (self.requests, self.responses) = (requests, responses);
                    self.progress_pending = false;
                    return Ok(());
                }
                Err(error @ Error::Expired { .. }) => return Err(Stop::Fail(error)),
                Err(Error::Etcd { source, .. }) => last_error = Some(source),
                Err(other) => return Err(Stop::Fail(other)),
            }
        }
        Err(Stop::Fail(Error::Etcd {
            operation: "watch",
            source: last_error
                .unwrap_or_else(|| etcd_client::Error::WatchError("the watch stream ended".into())),
        }))
    }
}
