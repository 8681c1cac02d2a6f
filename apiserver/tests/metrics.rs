//! `/metrics` over real HTTPS against the binary: the Prometheus names and labels that
//! kube-apiserver's and controller-runtime's dashboards (and Flux's) read exist, and the counts
//! move after requests and after a reconcile.

#[path = "common/https.rs"]
mod https;

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use https::{Connection, Protocol, connect};
use serde_json::json;
use test_support::server::{ApiServer, ServerOptions};

const BASE: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";

/// How long a reconcile may take to show on a shared, loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

async fn scrape(c: &mut Connection) -> String {
    let (status, body) = c.call(Method::GET, "/metrics", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body).unwrap()
}

/// The value of the sample `name{...}` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        let wanted = labels
            .iter()
            .all(|(k, v)| set.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        wanted.then(|| value.trim().parse().unwrap())
    })
}

fn list_labels(code: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("verb", "LIST"),
        ("group", "source.toolkit.fluxcd.io"),
        ("version", "v1"),
        ("resource", "ocirepositories"),
        ("subresource", ""),
        ("scope", "namespace"),
        ("component", "apiserver"),
        ("code", code),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metrics_have_kubes_names_and_labels_and_count_requests() {
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    );
    let mut c = connect(&server, Protocol::Http1).await;
    let before = scrape(&mut c).await;
    let listed_before =
        sample(&before, "apiserver_request_total", &list_labels("200")).unwrap_or(0.0);
    for _ in 0..3 {
        let (status, _) = c.call(Method::GET, BASE, &[], None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = c
        .call(Method::GET, &format!("{BASE}/missing"), &[], None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let after = scrape(&mut c).await;
    for family in [
        "# TYPE apiserver_request counter",
        "# TYPE apiserver_request_duration_seconds histogram",
        "# TYPE workqueue_depth gauge",
        "# TYPE workqueue_adds counter",
        "# TYPE source_apiserver_artifact_pulled_bytes counter",
        "# TYPE source_apiserver_artifact_stored_bytes gauge",
    ] {
        assert!(after.contains(family), "{family} missing:\n{after}");
    }
    assert_eq!(
        sample(&after, "apiserver_request_total", &list_labels("200")),
        Some(listed_before + 3.0),
        "{after}"
    );
    let get_404 = [
        ("verb", "GET"),
        ("resource", "ocirepositories"),
        ("scope", "resource"),
        ("code", "404"),
    ];
    assert_eq!(
        sample(&after, "apiserver_request_total", &get_404),
        Some(1.0)
    );
    let duration = [
        ("verb", "LIST"),
        ("resource", "ocirepositories"),
        ("scope", "namespace"),
        ("component", "apiserver"),
    ];
    assert!(
        sample(
            &after,
            "apiserver_request_duration_seconds_count",
            &duration
        )
        .is_some_and(|n| n >= 3.0),
        "{after}"
    );
    // The scrape before this one counted as a non-resource GET of /metrics.
    let scrapes = [
        ("verb", "GET"),
        ("subresource", "/metrics"),
        ("code", "200"),
        ("scope", ""),
    ];
    assert!(sample(&after, "apiserver_request_total", &scrapes).is_some_and(|n| n >= 1.0));
    let stored = after
        .lines()
        .find_map(|l| l.strip_prefix("source_apiserver_artifact_stored_bytes "));
    assert_eq!(stored, Some("0"), "no artifact is stored yet:\n{after}");
    assert_eq!(
        sample(
            &after,
            "source_apiserver_artifact_pulled_bytes_total",
            &[("kind", "OCIRepository")]
        ),
        Some(0.0)
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_moves_the_controller_runtime_and_flux_metrics() {
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    );
    let mut c = connect(&server, Protocol::Http1).await;
    // Nothing listens on port 1: the reconcile fails fast and backs off (result "error").
    let repo = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "unreachable", "namespace": "default"},
        "spec": {"url": "oci://127.0.0.1:1/podinfo", "interval": "5m", "ref": {"tag": "latest"},
                 "insecure": true, "timeout": "5s"}
    });
    let (status, body) = c.call(Method::POST, BASE, &[], Some(&repo)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );

    let object = [
        ("kind", "OCIRepository"),
        ("name", "unreachable"),
        ("namespace", "default"),
    ];
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let text = scrape(&mut c).await;
        if sample(&text, "gotk_reconcile_duration_seconds_count", &object).is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "no reconcile recorded:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for family in [
        "# TYPE controller_runtime_reconcile counter",
        "# TYPE controller_runtime_reconcile_time_seconds histogram",
        "# TYPE gotk_reconcile_duration_seconds histogram",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let controller = [("controller", "ocirepository")];
    assert!(
        sample(
            &text,
            "controller_runtime_reconcile_total",
            &[("controller", "ocirepository"), ("result", "error")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "controller_runtime_reconcile_time_seconds_count",
            &controller
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let queue = [("controller", "ocirepository"), ("name", "ocirepository")];
    assert!(
        sample(&text, "workqueue_adds_total", &queue).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(sample(&text, "workqueue_depth", &queue).is_some(), "{text}");
    server.stop();
}
