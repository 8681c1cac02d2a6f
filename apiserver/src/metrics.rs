//! Prometheus metrics, served as text at `/metrics` (authorised as kube-apiserver's `/metrics`
//! non-resource URL: `get` on the path). One process-wide registry, as k8s.io/component-base's
//! `legacyregistry` and controller-runtime's `metrics.Registry` are, so the HTTP layer and the
//! controller runtime record into it without being wired to each other.
//!
//! The names and labels are the ones dashboards already read:
//! - `apiserver_request_total` {verb, group, version, resource, subresource, scope, component,
//!   code} and `apiserver_request_duration_seconds` (same labels without code), as
//!   k8s.io/apiserver's `endpoints/metrics` records them: the verb is `CleanVerb`'s (`LIST`,
//!   `WATCH`, `GET`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`), the scope `resource`,
//!   `namespace`, `cluster` or empty for a non-resource path, whose bounded path goes in
//!   `subresource`. The duration runs to the response head (for watches and artifact downloads,
//!   to the first byte). A request cancelled before it answers (the request timeout) counts with
//!   code 504, a handler panic with 500.
//! - controller-runtime's `controller_runtime_reconcile_total` {controller, result},
//!   `controller_runtime_reconcile_time_seconds` {controller}, `workqueue_depth` and
//!   `workqueue_adds_total` {controller, name}, and Flux's `gotk_reconcile_duration_seconds`
//!   {kind, name, namespace} (`fluxcd/pkg: runtime/metrics`), which Flux's Grafana dashboards
//!   chart.
//! - client-go's `leader_election_master_status` {name}: 1 on the replica that leads
//!   ([`leader_status`], `crate::leader`).
//! - artifact bytes: `source_apiserver_artifact_pulled_bytes_total` {kind} (bytes written into
//!   new artifacts by reconciles; [`artifact_pulled`]) and `source_apiserver_artifact_stored_bytes`
//!   (the artifact files on disk, measured at scrape time; [`watch_artifact_store`]).

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::http::request_info::{RequestInfo, Verb};

/// The labels of `apiserver_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
    component: &'static str,
    code: String,
}

/// The labels of `apiserver_request_duration_seconds` (kube's, without `code`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    controller: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaderLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// kube-apiserver's request-duration buckets (seconds).
const REQUEST_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// controller-runtime's reconcile-time buckets (seconds).
const RECONCILE_BUCKETS: [f64; 22] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn reconcile_histogram() -> Histogram {
    let mut buckets = RECONCILE_BUCKETS.to_vec();
    buckets.extend([
        2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0,
    ]);
    buckets.extend([30.0, 40.0, 50.0, 60.0]);
    Histogram::new(buckets)
}

/// Every metric of the process and the registry that encodes them.
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<DurationLabels>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_time: HistogramFamily<ControllerLabels>,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_adds: Family<QueueLabels, Counter>,
    gotk_duration: HistogramFamily<ObjectLabels>,
    pulled_bytes: Family<KindLabels, Counter>,
    leader: Family<LeaderLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            HistogramFamily::new_with_constructor(request_histogram as fn() -> _);
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_time =
            HistogramFamily::new_with_constructor(reconcile_histogram as fn() -> _);
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        let queue_adds = Family::<QueueLabels, Counter>::default();
        let gotk_duration = HistogramFamily::new_with_constructor(reconcile_histogram as fn() -> _);
        let pulled_bytes = Family::<KindLabels, Counter>::default();
        // Counters are registered without `_total`: the text encoder appends it.
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, group, version, resource, scope, component, and HTTP response code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component",
            request_duration.clone(),
        );
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconciles.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_time.clone(),
        );
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            queue_depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            queue_adds.clone(),
        );
        registry.register(
            "gotk_reconcile_duration_seconds",
            "The duration in seconds of a GitOps Toolkit resource reconciliation",
            gotk_duration.clone(),
        );
        registry.register(
            "source_apiserver_artifact_pulled_bytes",
            "Bytes written into new artifacts by reconciles, per kind",
            pulled_bytes.clone(),
        );
        let leader = Family::<LeaderLabels, Gauge>::default();
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease",
            leader.clone(),
        );
        registry.register_collector(Box::new(StoredBytes));
        // The kinds with artifacts report zero before their first pull.
        for kind in ["OCIRepository", "HelmChart"] {
            drop(pulled_bytes.get_or_create(&KindLabels { kind: kind.into() }));
        }
        Self {
            registry,
            requests,
            request_duration,
            reconciles,
            reconcile_time,
            queue_depth,
            queue_adds,
            gotk_duration,
            pulled_bytes,
            leader,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The artifact root whose files `source_apiserver_artifact_stored_bytes` sums.
static ARTIFACT_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Makes `source_apiserver_artifact_stored_bytes` report the files under `root` (the artifact
/// store's directory). Only the first call counts; before it the gauge is not reported.
pub fn watch_artifact_store(root: &Path) {
    let _ = ARTIFACT_ROOT.set(root.to_path_buf());
}

/// Sums the artifact files at scrape time (temp files of unfinished pulls and the
/// `latest.tar.gz` links excluded), so the figure is never stale.
#[derive(Debug)]
struct StoredBytes;

impl prometheus_client::collector::Collector for StoredBytes {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(root) = ARTIFACT_ROOT.get() else {
            return Ok(());
        };
        let gauge = ConstGauge::new(directory_bytes(root) as i64);
        let metric = encoder.encode_descriptor(
            "source_apiserver_artifact_stored_bytes",
            "Bytes of artifact files in the artifact store",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match entry.file_type() {
                Ok(t) if t.is_dir() => directory_bytes(&entry.path()),
                Ok(t) if t.is_file() && !name.starts_with(".tmp-") => {
                    entry.metadata().map(|m| m.len()).unwrap_or(0)
                }
                _ => 0,
            }
        })
        .sum()
}

/// The whole registry in the Prometheus text format.
pub fn encode() -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &METRICS.registry)
        .expect("writing to a String");
    text
}

/// `GET /metrics`: the text format, `Content-Type` as Prometheus' client libraries send it.
pub async fn serve() -> Response {
    let mut response = encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Records one finished reconcile of `kind` `namespace/name` that took `elapsed`, with
/// controller-runtime's `result` (`success`, `error`, `requeue`, `requeue_after`).
pub fn reconciled(
    kind: &str,
    namespace: &str,
    name: &str,
    result: &'static str,
    elapsed: Duration,
) {
    let controller = kind.to_ascii_lowercase();
    METRICS
        .reconciles
        .get_or_create(&ReconcileLabels {
            controller: controller.clone(),
            result,
        })
        .inc();
    METRICS
        .reconcile_time
        .get_or_create(&ControllerLabels { controller })
        .observe(elapsed.as_secs_f64());
    METRICS
        .gotk_duration
        .get_or_create(&ObjectLabels {
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
}

/// Counts `bytes` written into a new artifact of `kind` (`OCIRepository`, `HelmChart`).
pub fn artifact_pulled(kind: &str, bytes: u64) {
    METRICS
        .pulled_bytes
        .get_or_create(&KindLabels {
            kind: kind.to_owned(),
        })
        .inc_by(bytes);
}

/// Sets client-go's `leader_election_master_status{name}`: 1 while this replica leads the
/// election `name`, 0 otherwise (`crate::leader`).
pub fn leader_status(name: &str, leading: bool) {
    METRICS
        .leader
        .get_or_create(&LeaderLabels {
            name: name.to_owned(),
        })
        .set(i64::from(leading));
}

/// A work queue's two series (`workqueue_depth`, `workqueue_adds_total`), resolved once.
#[derive(Clone, Debug)]
pub struct QueueMetrics {
    depth: Gauge,
    adds: Counter,
}

impl QueueMetrics {
    /// The series of the queue of `controller` (the lower-cased kind, controller-runtime's
    /// controller name, which is also its queue's `name`).
    pub fn new(controller: &str) -> Self {
        let labels = QueueLabels {
            controller: controller.to_owned(),
            name: controller.to_owned(),
        };
        Self {
            depth: METRICS.queue_depth.get_or_create(&labels).clone(),
            adds: METRICS.queue_adds.get_or_create(&labels).clone(),
        }
    }

    /// A key was added (it was not waiting already).
    pub fn added(&self) {
        self.adds.inc();
    }

    /// The number of keys waiting now.
    pub fn depth(&self, waiting: usize) {
        self.depth.set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }
}

/// The request being measured; recorded once, when it answers or when it is dropped unanswered.
struct InFlight {
    labels: Option<DurationLabels>,
    started: Instant,
}

impl InFlight {
    fn finish(&mut self, code: u16) {
        let Some(labels) = self.labels.take() else {
            return;
        };
        METRICS
            .request_duration
            .get_or_create(&labels)
            .observe(self.started.elapsed().as_secs_f64());
        let DurationLabels {
            verb,
            group,
            version,
            resource,
            subresource,
            scope,
            component,
        } = labels;
        METRICS
            .requests
            .get_or_create(&RequestLabels {
                verb,
                group,
                version,
                resource,
                subresource,
                scope,
                component,
                code: code.to_string(),
            })
            .inc();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Unanswered: a panic unwinding (500) or the request timeout cancelling the handler (504).
        self.finish(if std::thread::panicking() { 500 } else { 504 });
    }
}

/// The layer that counts and times every request. It runs inside the request-timeout layer
/// (whose parsed [`RequestInfo`] it reads) and outside authentication, so refusals count too.
pub async fn observe_request(request: Request, next: Next) -> Response {
    let labels = request
        .extensions()
        .get::<RequestInfo>()
        .map(|info| duration_labels(info, &request));
    let mut in_flight = InFlight {
        labels,
        started: Instant::now(),
    };
    let response = next.run(request).await;
    in_flight.finish(response.status().as_u16());
    response
}

/// Paths outside our resources that keep their own `subresource` label; every other
/// non-resource path is `other`, so a scan of random paths cannot grow the series.
fn bounded_path(path: &str) -> &str {
    static KNOWN: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut known: Vec<String> = [
            "/",
            "/api",
            "/apis",
            "/healthz",
            "/livez",
            "/readyz",
            "/metrics",
            "/version",
            "/openapi/v2",
            "/openapi/v3",
        ]
        .map(String::from)
        .to_vec();
        let group = openapi::GROUP;
        known.push(format!("/apis/{group}"));
        for version in ["v1", "v1beta2"] {
            known.push(format!("/apis/{group}/{version}"));
            known.push(format!("/openapi/v3/apis/{group}/{version}"));
        }
        known
    });
    KNOWN
        .iter()
        .find(|k| k.as_str() == path)
        .map_or("other", String::as_str)
}

fn duration_labels(info: &RequestInfo, request: &Request) -> DurationLabels {
    let apply = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let verb = match &info.verb {
        Verb::List => "LIST".to_owned(),
        Verb::Watch => "WATCH".to_owned(),
        Verb::Patch if apply => "APPLY".to_owned(),
        // Methods outside HTTP's own are one bounded value, as kube's `cleanVerb` does.
        _ => match request.method().as_str() {
            m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "CONNECT") => {
                m.to_owned()
            }
            _ => "other".to_owned(),
        },
    };
    if !info.is_resource_request {
        return DurationLabels {
            verb,
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: bounded_path(request.uri().path()).to_owned(),
            scope: "",
            component: "apiserver",
        };
    }
    // Only our group's resources are served: anything else is one bounded "other".
    let ours = info.api_group == openapi::GROUP
        && openapi::resource_by_plural(&info.resource).is_some()
        && matches!(info.api_version.as_str(), "v1" | "v1beta2");
    let scope = if info.name.is_some() || info.verb == Verb::Create {
        "resource"
    } else if info.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    let (group, version, resource) = if ours {
        (
            info.api_group.clone(),
            info.api_version.clone(),
            info.resource.clone(),
        )
    } else {
        ("other".to_owned(), "other".to_owned(), "other".to_owned())
    };
    let subresource = match info.subresource.as_deref() {
        Some(s @ ("status" | "artifact")) => s.to_owned(),
        Some(_) => "other".to_owned(),
        None => String::new(),
    };
    DurationLabels {
        verb,
        group,
        version,
        resource,
        subresource,
        scope,
        component: "apiserver",
    }
}
