//! Events to Flux's notification-controller (`--events-addr`), in the format and with the
//! retries of Flux's recorder (fluxcd/pkg `runtime/events/recorder.go`):
//!
//! - one `POST <events-addr>` per Normal or Warning event, `Content-Type: application/json`,
//!   the body an `event.toolkit.fluxcd.io` `Event`: `involvedObject` (`kind`, `namespace`,
//!   `name`, `uid`, `apiVersion`), `severity` (`info` for Normal, `error` for Warning),
//!   `timestamp` (RFC 3339, seconds), `message`, `reason`, `metadata` (the event's annotations,
//!   e.g. `source.toolkit.fluxcd.io/revision` and `source.toolkit.fluxcd.io/digest`, plus the
//!   object's `event.toolkit.fluxcd.io/*` annotations (RFC-0008), the event's winning a clash),
//!   `reportingController` (`source-controller`, so Alerts written for Flux match) and
//!   `reportingInstance` (the host name);
//! - Trace events are never posted (Flux keeps them as Kubernetes events only);
//! - go-retryablehttp's defaults as Flux configures them: each attempt bounded by 5 s, at most
//!   4 retries after the first attempt, waiting 1 s, 2 s, 4 s, 8 s (or a 503's `Retry-After`, at
//!   most 30 s), on connection errors, timeouts and 5xx other than 501; a 429 (the
//!   notification-controller's answer to a duplicate) is not retried.
//!
//! Unlike Flux, posting never blocks a reconcile: events are queued (up to
//! [`QUEUE_CAPACITY`], then dropped with a warning) and posted in order by one task, which the
//! recorder aborts when dropped. Every event is also logged, as in standalone mode.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use super::{EventRecorder, EventType, LogRecorder, ObjectRef};

/// Events waiting to be posted; more are dropped (with a warning).
pub const QUEUE_CAPACITY: usize = 1024;

/// Flux's `reportingController` for source kinds.
const REPORTING_CONTROLLER: &str = "source-controller";

/// The body Flux's notification-controller accepts (`event.toolkit.fluxcd.io` `Event`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    involved_object: InvolvedObject,
    severity: &'static str,
    timestamp: String,
    message: String,
    reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    reporting_controller: &'static str,
    reporting_instance: String,
}

/// `corev1.ObjectReference` as Flux fills it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InvolvedObject {
    kind: &'static str,
    namespace: String,
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    api_version: &'static str,
}

/// The retry schedule of go-retryablehttp as Flux's recorder uses it.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt (4).
    pub max_retries: u32,
    /// First wait, doubled per retry (1 s).
    pub min_wait: Duration,
    /// Longest wait (30 s).
    pub max_wait: Duration,
    /// Bound on one attempt (5 s).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// Logs every event and posts the Normal and Warning ones to `--events-addr`.
#[derive(Debug)]
pub struct NotificationRecorder {
    log: LogRecorder,
    queue: mpsc::Sender<Event>,
    instance: String,
    worker: tokio::task::JoinHandle<()>,
}

impl Drop for NotificationRecorder {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

impl NotificationRecorder {
    /// A recorder posting to `address` (an `http://` or `https://` URL, e.g.
    /// `http://notification-controller.flux-system.svc.cluster.local./`). Spawns the posting
    /// task: call inside a Tokio runtime.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (the TLS backend failed to initialise).
    pub fn start(address: url::Url, retry: RetryPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .use_native_tls()
            .timeout(retry.attempt_timeout)
            .build()?;
        let (queue, mut events) = mpsc::channel::<Event>(QUEUE_CAPACITY);
        let worker = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                post(&client, &address, &retry, &event).await;
            }
        });
        Ok(Self {
            log: LogRecorder,
            queue,
            instance: hostname(),
            worker,
        })
    }
}

impl EventRecorder for NotificationRecorder {
    fn record(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
        annotations: &BTreeMap<String, String>,
    ) {
        self.log
            .record(object, event_type, reason, message, annotations);
        let severity = match event_type {
            EventType::Normal => "info",
            EventType::Warning => "error",
            EventType::Trace => return,
        };
        let event = Event {
            involved_object: InvolvedObject {
                kind: object.kind,
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                uid: object.uid.clone(),
                api_version: "source.toolkit.fluxcd.io/v1",
            },
            severity,
            timestamp: jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                .expect("now is a valid time")
                .to_string(),
            message: message.to_owned(),
            reason: reason.to_owned(),
            metadata: super::with_object_annotations(object, annotations),
            reporting_controller: REPORTING_CONTROLLER,
            reporting_instance: self.instance.clone(),
        };
        if self.queue.try_send(event).is_err() {
            tracing::warn!(%object, reason, "event queue to notification-controller full: event dropped");
        }
    }
}

/// Posts one event with go-retryablehttp's retries; failures are logged.
async fn post(client: &reqwest::Client, address: &url::Url, retry: &RetryPolicy, event: &Event) {
    let mut attempt = 0;
    loop {
        let sent = client.post(address.clone()).json(event).send().await;
        let (retryable, retry_after, why) = match &sent {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => {
                let status = resp.status();
                let retryable = status.is_server_error() && status.as_u16() != 501;
                let after = (status.as_u16() == 503)
                    .then(|| resp.headers().get(reqwest::header::RETRY_AFTER))
                    .flatten()
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(Duration::from_secs);
                (retryable, after, format!("{address} answered {status}"))
            }
            Err(e) => (!e.is_builder(), None, super::super::runtime::chain(e)),
        };
        if !retryable || attempt >= retry.max_retries {
            tracing::warn!(reason = %event.reason, error = %why, "unable to record event");
            return;
        }
        let wait = retry_after
            .unwrap_or_else(|| retry.min_wait.saturating_mul(2u32.saturating_pow(attempt)))
            .min(retry.max_wait);
        tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %why, "retrying event post");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// The host name (Flux's `reportingInstance`; the pod name in a pod), from the kernel;
/// `source-apiserver` if unknown.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "source-apiserver".to_owned())
}
