//! kube-controller-manager as a client: its garbage collector, namespace controller and quota
//! monitor read our resources through client-go's metadata informers. Each request here is sent
//! over real HTTPS to the binary with the exact `Accept` header client-go's metadata client sends
//! (`kubernetes/client-go: metadata/metadata.go`, `Get`/`List`/`Watch`) and the query its
//! reflector sends (`tools/cache/reflector.go`: a list then a watch from its resourceVersion, or
//! the streaming watch-list with `sendInitialEvents=true`). client-go decodes watch frames by
//! their kind, so every frame, bookmarks included, must be a `PartialObjectMetadata`.

#[path = "common/https.rs"]
mod https;

use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};
use https::{Connection, Frames, Protocol, connect, request};
use serde_json::{Value, json};
use test_support::server::{ApiServer, ServerOptions};

/// client-go's metadata `Get` and `Watch` Accept.
const ACCEPT_ONE: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/// client-go's metadata `List` Accept.
const ACCEPT_LIST: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

const BASE: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";

/// How long a frame that is due may take on a shared, loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn server() -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    )
}

fn repo(name: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {
            "name": name, "namespace": "default", "labels": {"app": name},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                 "uid": "4f1c1e1c-0000-4000-8000-000000000001"}]
        },
        "spec": {"url": "oci://registry.example/podinfo", "interval": "5m",
                 "ref": {"tag": "latest"}, "suspend": true}
    })
}

async fn create(c: &mut Connection, name: &str) {
    let (status, body) = c.call(Method::POST, BASE, &[], Some(&repo(name))).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The frame's object is metadata only, for `name` (when given).
fn assert_partial(frame: &Value, event: &str, name: Option<&str>) {
    assert_eq!(frame["type"], event, "{frame}");
    let object = &frame["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata", "{frame}");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1", "{frame}");
    assert!(object.get("spec").is_none(), "{frame}");
    assert!(object.get("status").is_none(), "{frame}");
    if let Some(name) = name {
        assert_eq!(object["metadata"]["name"], name, "{frame}");
        assert!(object["metadata"]["uid"].as_str().is_some(), "{frame}");
        assert_eq!(object["metadata"]["labels"]["app"], name, "{frame}");
        assert_eq!(
            object["metadata"]["ownerReferences"][0]["name"], "owner",
            "{frame}"
        );
    }
}

/// The next frame that is not a periodic bookmark (bookmarks are checked on the way: client-go
/// decodes them by kind too).
async fn next_event(frames: &mut Frames) -> Value {
    loop {
        let frame = frames.next(PATIENCE).await.expect("a watch event");
        if frame["type"] != "BOOKMARK" {
            return frame;
        }
        assert_partial(&frame, "BOOKMARK", None);
    }
}

/// The next event that `wanted` accepts. The controller reconciles the objects meanwhile (its
/// finalizer and status writes are MODIFIED events of their own): every frame skipped on the way
/// must be PartialObjectMetadata too.
async fn next_event_where(frames: &mut Frames, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let frame = next_event(frames).await;
        if wanted(&frame) {
            return frame;
        }
        assert_eq!(frame["object"]["kind"], "PartialObjectMetadata", "{frame}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_get_and_list_answer_partial_object_metadata() {
    let server = server();
    let mut c = connect(&server, Protocol::Http1).await;
    create(&mut c, "a").await;
    create(&mut c, "b").await;

    let (status, body) = c
        .call(
            Method::GET,
            &format!("{BASE}/a"),
            &[("accept", ACCEPT_ONE)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_partial(
        &json!({"type": "GET", "object": json_of(&body)}),
        "GET",
        Some("a"),
    );

    let (status, body) = c
        .call(
            Method::GET,
            &format!("{BASE}?limit=500&resourceVersion=0"),
            &[("accept", ACCEPT_LIST)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = json_of(&body);
    assert_eq!(list["kind"], "PartialObjectMetadataList", "{list}");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1", "{list}");
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    for (item, name) in items.iter().zip(["a", "b"]) {
        assert_partial(&json!({"type": "ITEM", "object": item}), "ITEM", Some(name));
    }

    // v1beta1 keeps its version in the list and its items.
    let (_, body) = c
        .call(
            Method::GET,
            BASE,
            &[(
                "accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1,application/json",
            )],
            None,
        )
        .await;
    let list = json_of(&body);
    assert_eq!(list["kind"], "PartialObjectMetadataList", "{list}");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1beta1", "{list}");
    assert_eq!(list["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_watch_frames_are_partial_object_metadata() {
    let server = server();
    let mut c = connect(&server, Protocol::Http1).await;
    create(&mut c, "before").await;
    // The reflector lists, then watches from the list's resourceVersion.
    let (_, body) = c
        .call(Method::GET, BASE, &[("accept", ACCEPT_LIST)], None)
        .await;
    let rv = json_of(&body)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watcher = connect(&server, Protocol::Http1).await;
    let response = watcher
        .send(request(
            Method::GET,
            &format!(
                "{BASE}?allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=300&watch=true"
            ),
            &[("accept", ACCEPT_ONE)],
            None,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut frames = Frames::new(response.into_body());

    create(&mut c, "w").await;
    let frame = next_event_where(&mut frames, |f| f["type"] == "ADDED").await;
    assert_partial(&frame, "ADDED", Some("w"));

    let patch = json!({"metadata": {"annotations": {"touched": "yes"}}});
    let mut patch_request = request(Method::PATCH, &format!("{BASE}/w"), &[], Some(&patch));
    patch_request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/merge-patch+json".parse().unwrap(),
    );
    assert_eq!(c.send(patch_request).await.status(), StatusCode::OK);
    let frame = next_event_where(&mut frames, |f| {
        f["object"]["metadata"]["annotations"]["touched"] == "yes"
    })
    .await;
    assert_partial(&frame, "MODIFIED", Some("w"));
    assert_eq!(frame["object"]["metadata"]["annotations"]["touched"], "yes");

    let (status, _) = c
        .call(Method::DELETE, &format!("{BASE}/w"), &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let frame = next_event_where(&mut frames, |f| f["type"] == "DELETED").await;
    assert_partial(&frame, "DELETED", Some("w"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_watch_list_streams_initial_events_then_the_end_bookmark() {
    let server = server();
    let mut c = connect(&server, Protocol::Http1).await;
    create(&mut c, "a").await;
    create(&mut c, "b").await;
    // The reflector's streaming list (client-go ≥ 0.35 by default): no resourceVersion yet.
    let mut watcher = connect(&server, Protocol::Http1).await;
    let response = watcher
        .send(request(
            Method::GET,
            &format!("{BASE}?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=300&watch=true"),
            &[("accept", ACCEPT_ONE)],
            None,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut frames = Frames::new(response.into_body());
    let mut added = Vec::new();
    let bookmark = loop {
        let frame = frames.next(PATIENCE).await.expect("initial events");
        if frame["type"] == "BOOKMARK" {
            break frame;
        }
        assert_partial(&frame, "ADDED", None);
        added.push(
            frame["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    };
    added.sort();
    assert_eq!(added, ["a", "b"]);
    assert_partial(&bookmark, "BOOKMARK", None);
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true",
        "{bookmark}"
    );
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty()),
        "{bookmark}"
    );

    create(&mut c, "later").await;
    let frame = next_event(&mut frames).await;
    assert_partial(&frame, "ADDED", Some("later"));
    server.stop();
}
