//! In-cluster events: every event is written to the cluster as an `events.k8s.io/v1` `Event`
//! (what `kubectl events` and `kubectl describe` show), following client-go's events recorder
//! (`k8s.io/client-go/tools/events`):
//!
//! - `POST /apis/events.k8s.io/v1/namespaces/<ns>/events`, named `<object>.<unix nanos in
//!   hex>`, with `regarding` (`apiVersion`, `kind`, `namespace`, `name`, `uid`,
//!   `resourceVersion`), `reason`, `note` (the message, cut to the API's 1024 bytes), `type`
//!   (`Normal` or `Warning`; Flux's Trace events are `Normal` in the cluster, as Flux's recorder
//!   writes them), `action` `Reconcile`, `eventTime`, `reportingController`
//!   `source-apiserver`, `reportingInstance` the pod's host name, and as `metadata.annotations`
//!   the event's annotations (e.g. `source.toolkit.fluxcd.io/revision`) plus the object's
//!   `event.toolkit.fluxcd.io/*` annotations;
//! - **series**: a repeat of an event already written (same object uid, type, reason, note and
//!   action; not its resourceVersion, which every status write changes) is not a new Event: the
//!   first one's `series` is PATCHed (`count` 2, 3, …, `lastObservedTime` now), as client-go
//!   counts isomorphic events. When that Event is gone (kube-apiserver expires Events after
//!   `--event-ttl`, 1 h), a new one is created. Unlike client-go, which sends a series update at
//!   most every 30 minutes, every repeat is PATCHed at once, so the count is always current.
//!
//! Writing never blocks a reconcile: events are queued (up to [`QUEUE_CAPACITY`], then dropped
//! with a warning) and written in order by one task, aborted when the recorder is dropped.
//! Every event also goes to the recorder this one wraps (the log, or notification-controller).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{EventRecorder, EventType, ObjectRef};
use crate::kube::Client;

/// Events waiting to be written; more are dropped (with a warning).
pub const QUEUE_CAPACITY: usize = 1024;

/// `reportingController` of every Event.
pub const REPORTING_CONTROLLER: &str = "source-apiserver";

/// `action` of every Event (the API requires one; Flux's events are about a reconcile).
pub const ACTION: &str = "Reconcile";

/// Longest `note` the API accepts, in bytes.
const MAX_NOTE_BYTES: usize = 1024;

/// Most series remembered; the memory is emptied when it would grow past this.
const MAX_SERIES: usize = 4096;

/// One event to write.
#[derive(Debug)]
struct Pending {
    object: ObjectRef,
    type_: &'static str,
    reason: String,
    note: String,
    annotations: BTreeMap<String, String>,
}

/// What makes two events the same series.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    kind: &'static str,
    namespace: String,
    name: String,
    uid: String,
    type_: &'static str,
    reason: String,
    note: String,
}

/// The Event written for a series and how often it happened.
#[derive(Clone, Debug)]
struct Series {
    event_name: String,
    count: u32,
}

/// Writes events to the cluster and passes them on to `next`.
#[derive(Debug)]
pub struct KubeRecorder {
    next: Arc<dyn EventRecorder>,
    queue: mpsc::Sender<Pending>,
    worker: tokio::task::JoinHandle<()>,
}

impl Drop for KubeRecorder {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

impl KubeRecorder {
    /// A recorder writing through `client` as `reporting_instance` (the pod name), passing every
    /// event on to `next`. Spawns the writing task: call inside a Tokio runtime.
    pub fn start(client: Client, reporting_instance: String, next: Arc<dyn EventRecorder>) -> Self {
        let (queue, mut pending) = mpsc::channel::<Pending>(QUEUE_CAPACITY);
        let worker = tokio::spawn(async move {
            let mut writer = Writer {
                client,
                instance: reporting_instance,
                series: HashMap::new(),
            };
            while let Some(event) = pending.recv().await {
                writer.write(event).await;
            }
        });
        Self {
            next,
            queue,
            worker,
        }
    }

    /// A recorder named after this host (the pod name in a pod), as [`KubeRecorder::start`].
    pub fn start_here(client: Client, next: Arc<dyn EventRecorder>) -> Self {
        Self::start(client, super::notification::hostname(), next)
    }
}

impl EventRecorder for KubeRecorder {
    fn record(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
        annotations: &BTreeMap<String, String>,
    ) {
        self.next
            .record(object, event_type, reason, message, annotations);
        let pending = Pending {
            object: object.clone(),
            type_: match event_type {
                EventType::Warning => "Warning",
                EventType::Normal | EventType::Trace => "Normal",
            },
            reason: reason.to_owned(),
            note: truncate(message, MAX_NOTE_BYTES).to_owned(),
            annotations: super::with_object_annotations(object, annotations),
        };
        if self.queue.try_send(pending).is_err() {
            tracing::warn!(%object, reason, "event queue to the Kubernetes API full: event dropped");
        }
    }
}

/// The writing task's state: the client and the series written so far.
struct Writer {
    client: Client,
    instance: String,
    series: HashMap<SeriesKey, Series>,
}

impl Writer {
    /// Creates the Event, or counts a repeat on the Event of its series; failures are logged.
    async fn write(&mut self, event: Pending) {
        let key = SeriesKey {
            kind: event.object.kind,
            namespace: event.object.namespace.clone(),
            name: event.object.name.clone(),
            uid: event.object.uid.clone(),
            type_: event.type_,
            reason: event.reason.clone(),
            note: event.note.clone(),
        };
        let collection = format!(
            "/apis/events.k8s.io/v1/namespaces/{}/events",
            event.object.namespace
        );
        if let Some(series) = self.series.get_mut(&key) {
            series.count += 1;
            let patch =
                json!({"series": {"count": series.count, "lastObservedTime": micro_time()}});
            let path = format!("{collection}/{}", series.event_name);
            match self.client.merge_patch::<Value>(&path, &patch).await {
                Ok(_) => return,
                Err(e) if e.code() == Some(404) => {
                    self.series.remove(&key);
                }
                Err(error) => {
                    tracing::warn!(%error, object = %event.object, reason = %event.reason, "unable to update event series");
                    return;
                }
            }
        }
        let body = self.body(&event);
        let event_name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
        match self.client.create::<_, Value>(&collection, &body).await {
            Ok(_) => {
                if self.series.len() >= MAX_SERIES {
                    self.series.clear();
                }
                self.series.insert(
                    key,
                    Series {
                        event_name,
                        count: 1,
                    },
                );
            }
            Err(error) => {
                tracing::warn!(%error, object = %event.object, reason = %event.reason, "unable to record event");
            }
        }
    }

    /// The `events.k8s.io/v1` Event for `event`.
    fn body(&self, event: &Pending) -> Value {
        let now = jiff::Timestamp::now();
        let object = &event.object;
        let mut regarding = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": object.kind,
            "namespace": object.namespace,
            "name": object.name,
        });
        for (field, value) in [
            ("uid", &object.uid),
            ("resourceVersion", &object.resource_version),
        ] {
            if !value.is_empty() {
                regarding[field] = json!(value);
            }
        }
        let mut metadata = json!({
            "name": format!("{}.{:x}", object.name, now.as_nanosecond()),
            "namespace": object.namespace,
        });
        if !event.annotations.is_empty() {
            metadata["annotations"] = json!(event.annotations);
        }
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": metadata,
            "eventTime": micro_time_of(now),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": ACTION,
            "reason": event.reason,
            "note": event.note,
            "type": event.type_,
            "regarding": regarding,
        })
    }
}

/// `metav1.MicroTime` of now: RFC 3339 in UTC with six fraction digits.
fn micro_time() -> String {
    micro_time_of(jiff::Timestamp::now())
}

fn micro_time_of(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate(&"x".repeat(2000), MAX_NOTE_BYTES).len(), 1024);
    }

    #[test]
    fn micro_time_has_six_fraction_digits_in_utc() {
        let t: jiff::Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(micro_time_of(t), "2026-01-02T03:04:05.123456Z");
    }
}
