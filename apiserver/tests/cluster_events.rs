//! In-cluster events, end to end: the real `source-apiserver` binary in-cluster behind the test
//! front proxy, writing `events.k8s.io/v1` Events to the small fake of the Kubernetes API
//! (`test_support::kube_fake`; kube-apiserver cannot run here, no binary, no Docker engine),
//! with client-go's series for repeats, and the same events posted to a notification-controller
//! stand-in (`test_support::notification`) with the object's uid and annotations.

use std::path::Path;

use serde_json::Value;
use test_support::e2e::{apply, eventually, jsonpath};
use test_support::in_cluster::InCluster;
use test_support::notification::NotificationReceiver;

const MANIFEST: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: unreachable
  namespace: default
  annotations:
    event.toolkit.fluxcd.io/team: blue
    unrelated.example.com/note: not-copied
spec:
  interval: 1s
  timeout: 2s
  url: oci://127.0.0.1:1/app
  ref:
    tag: v1
";

/// The Warning Events about `name`.
fn warnings(c: &InCluster, name: &str) -> Vec<Value> {
    c.fake
        .events()
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name && e["type"] == "Warning")
        .collect()
}

#[test]
fn repeated_failures_are_one_event_with_a_counted_series() {
    let receiver = NotificationReceiver::start(0);
    let c = InCluster::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        &["--events-addr", &receiver.url()],
    );
    apply(&c.kubectl, MANIFEST);
    let uid = eventually(
        "the object's uid",
        || Some(jsonpath(&c.kubectl, "unreachable", "{.metadata.uid}")).filter(|u| !u.is_empty()),
        String::new,
    );
    // The pull fails at every attempt with the same reason and message: one Event, counted.
    let event = eventually(
        "a Warning event with a series of at least 3",
        || {
            warnings(&c, "unreachable")
                .into_iter()
                .find(|e| e["series"]["count"].as_u64() >= Some(3))
        },
        || format!("{:#?}", c.fake.events()),
    );
    let same: Vec<Value> = warnings(&c, "unreachable")
        .into_iter()
        .filter(|e| e["reason"] == event["reason"] && e["note"] == event["note"])
        .collect();
    assert_eq!(
        same.len(),
        1,
        "repeats are counted, not multiplied: {same:#?}"
    );
    assert_eq!(event["apiVersion"], "events.k8s.io/v1");
    assert_eq!(event["reason"], "OCIArtifactPullFailed", "{event:#}");
    assert!(
        event["note"].as_str().unwrap().starts_with("failed to "),
        "Flux's message: {event:#}"
    );
    assert_eq!(event["reportingController"], "source-apiserver");
    assert!(!event["reportingInstance"].as_str().unwrap().is_empty());
    assert_eq!(event["action"], "Reconcile");
    assert_eq!(event["metadata"]["namespace"], "default");
    assert!(
        event["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("unreachable."),
        "{event:#}"
    );
    let regarding = &event["regarding"];
    assert_eq!(regarding["apiVersion"], "source.toolkit.fluxcd.io/v1");
    assert_eq!(regarding["kind"], "OCIRepository");
    assert_eq!(regarding["uid"], uid.as_str());
    assert!(regarding["resourceVersion"].as_str().is_some(), "{event:#}");
    assert_eq!(
        event["metadata"]["annotations"]["event.toolkit.fluxcd.io/team"],
        "blue"
    );
    assert!(
        event["metadata"]["annotations"]
            .get("unrelated.example.com/note")
            .is_none()
    );
    let last = event["series"]["lastObservedTime"].as_str().unwrap();
    assert!(
        last > event["eventTime"].as_str().unwrap(),
        "{last} after the first"
    );

    // notification-controller gets Flux's body with the uid and the object's annotation.
    let posted = eventually(
        "the failure at notification-controller",
        || {
            receiver
                .events()
                .into_iter()
                .find(|e| e["reason"] == "OCIArtifactPullFailed")
        },
        || format!("{:?}", receiver.rejected()),
    );
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    assert_eq!(posted["involvedObject"]["uid"], uid.as_str());
    assert_eq!(posted["metadata"]["event.toolkit.fluxcd.io/team"], "blue");
    assert!(
        posted["metadata"]
            .get("unrelated.example.com/note")
            .is_none()
    );

    // Once the Event has expired, the next repeat creates a new one.
    let patches = c.fake.event_patches();
    c.fake.expire_events();
    eventually(
        "a new Event after the old one expired",
        || (!warnings(&c, "unreachable").is_empty()).then_some(()),
        || format!("{} patches since", c.fake.event_patches() - patches),
    );
}
