//! REST semantics driven in process through the router (`oneshot`), for what the kubectl suite
//! does not reach: response shapes (PartialObjectMetadata, Table with includeObject, Table and
//! watch-list frames), dryRun, deletecollection, fieldValidation, YAML, patch-type and option
//! errors, optimistic concurrency, the status subresource, discovery negotiation and OpenAPI
//! caching. Storage is the real SQLite store in a temp dir. Authentication is replaced by a fixed
//! `system:masters` identity (real certificate and token authentication are tested against the
//! binary in `kubectl.rs`).

use std::sync::Arc;

use apiserver::auth::{Authenticator, MastersAuthorizer, UserInfo};
use apiserver::discovery::Documents;
use apiserver::router::{AppState, router};
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[derive(Debug)]
struct Admin;

impl Authenticator for Admin {
    fn authenticate(&self, _: &http::request::Parts) -> Result<Option<UserInfo>, String> {
        Ok(Some(UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..UserInfo::default()
        }))
    }
}

struct Harness {
    app: axum::Router,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

const BASE: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store =
        storage::SqliteStore::open(&dir.path().join("db"), storage::SqliteConfig::default())
            .await
            .unwrap();
    let state = AppState {
        store,
        authenticator: Arc::new(Admin),
        authorizer: Arc::new(MastersAuthorizer),
        documents: Arc::new(Documents::build()),
        shutdown: CancellationToken::new(),
        artifacts: storage::ArtifactStore::open(dir.path()).unwrap(),
    };
    Harness {
        app: router(state),
        _dir: dir,
    }
}

impl Harness {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str, accept: &str) -> Reply {
        self.send(Method::GET, uri, &[("accept", accept)], None)
            .await
    }

    async fn create(&self, object: Value) -> Reply {
        self.send(
            Method::POST,
            BASE,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&object).unwrap()),
        )
        .await
    }
}

fn repo(name: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"url": "oci://registry.example/podinfo", "interval": "5m", "ref": {"tag": "latest"}, "suspend": true}
    })
}

#[tokio::test]
async fn partial_object_metadata_for_get_and_list() {
    let h = harness().await;
    assert_eq!(h.create(repo("a")).await.status, StatusCode::CREATED);
    let one = h
        .get(
            &format!("{BASE}/a"),
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .await
        .json();
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(one["metadata"]["name"], "a");
    assert!(one.get("spec").is_none());
    let list = h.get(BASE, "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json").await.json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
}

#[tokio::test]
async fn tables_follow_include_object() {
    let h = harness().await;
    h.create(repo("a")).await;
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let table = h.get(BASE, table_accept).await.json();
    assert_eq!(table["kind"], "Table");
    let names: Vec<_> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Name", "URL", "Ready", "Status", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "a");
    assert_eq!(
        table["rows"][0]["cells"][1],
        "oci://registry.example/podinfo"
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let full = h
        .get(&format!("{BASE}?includeObject=Object"), table_accept)
        .await
        .json();
    assert_eq!(full["rows"][0]["object"]["kind"], "OCIRepository");
    let none = h
        .get(&format!("{BASE}?includeObject=None"), table_accept)
        .await
        .json();
    assert!(none["rows"][0].get("object").is_none());
}

fn frames(reply: &Reply) -> Vec<Value> {
    reply
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn table_watch_frames_carry_columns_only_first() {
    let h = harness().await;
    h.create(repo("a")).await;
    h.create(repo("b")).await;
    let reply = h
        .get(
            &format!("{BASE}?watch=true&resourceVersion=0&timeoutSeconds=1"),
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .await;
    let frames = frames(&reply);
    assert_eq!(frames.len(), 2, "{}", reply.text());
    assert_eq!(frames[0]["type"], "ADDED");
    assert_eq!(frames[0]["object"]["kind"], "Table");
    assert!(frames[0]["object"]["columnDefinitions"].is_array());
    assert!(frames[1]["object"]["columnDefinitions"].is_null());
    assert_eq!(frames[1]["object"]["rows"][0]["cells"][0], "b");
}

#[tokio::test]
async fn send_initial_events_ends_with_the_marked_bookmark() {
    let h = harness().await;
    h.create(repo("a")).await;
    let refused = h
        .get(
            &format!("{BASE}?watch=true&sendInitialEvents=true&timeoutSeconds=1"),
            "application/json",
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = h
        .get(&format!("{BASE}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"), "application/json")
        .await;
    let frames = frames(&reply);
    assert_eq!(frames[0]["type"], "ADDED");
    assert_eq!(frames[0]["object"]["metadata"]["name"], "a");
    let bookmark = frames
        .iter()
        .find(|f| f["type"] == "BOOKMARK")
        .expect("a bookmark");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(bookmark["object"]["kind"], "OCIRepository");
    assert_eq!(
        bookmark["object"]["apiVersion"],
        "source.toolkit.fluxcd.io/v1"
    );
}

#[tokio::test]
async fn a_watch_from_the_future_is_refused_with_504() {
    let h = harness().await;
    let reply = h
        .get(
            &format!("{BASE}?watch=true&resourceVersion=999999"),
            "application/json",
        )
        .await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.json()["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let h = harness().await;
    let reply = h
        .send(
            Method::POST,
            &format!("{BASE}?dryRun=All"),
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&repo("a")).unwrap()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json()["metadata"]["name"], "a");
    assert_eq!(
        h.get(&format!("{BASE}/a"), "application/json").await.status,
        StatusCode::NOT_FOUND
    );
    let bad = h
        .send(
            Method::POST,
            &format!("{BASE}?dryRun=Server"),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn deletecollection_honours_the_label_selector() {
    let h = harness().await;
    h.create(repo("a")).await;
    h.create(repo("b")).await;
    let reply = h
        .send(
            Method::DELETE,
            &format!("{BASE}?labelSelector=app%3Da"),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let deleted = reply.json();
    assert_eq!(deleted["kind"], "OCIRepositoryList");
    assert_eq!(deleted["items"].as_array().unwrap().len(), 1);
    let left = h.get(BASE, "application/json").await.json();
    let names: Vec<_> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("b")]);
}

#[tokio::test]
async fn field_validation_strict_refuses_and_warn_warns() {
    let h = harness().await;
    let mut object = repo("a");
    object["spec"]["colour"] = json!("blue");
    let body = serde_json::to_vec(&object).unwrap();
    let strict = h
        .send(
            Method::POST,
            &format!("{BASE}?fieldValidation=Strict"),
            &[("content-type", "application/json")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    assert!(
        strict.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.colour\"")
    );
    let warn = h
        .send(
            Method::POST,
            BASE,
            &[("content-type", "application/json")],
            Some(body),
        )
        .await;
    assert_eq!(warn.status, StatusCode::CREATED);
    let warning = warn.headers.get(header::WARNING).unwrap().to_str().unwrap();
    assert_eq!(warning, "299 - \"unknown field \\\"spec.colour\\\"\"");
    assert!(
        warn.json()["spec"].get("colour").is_none(),
        "unknown fields are pruned"
    );
}

#[tokio::test]
async fn yaml_in_and_out() {
    let h = harness().await;
    let yaml = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: y\nspec:\n  url: oci://registry.example/y\n  interval: 1m\n";
    let created = h
        .send(
            Method::POST,
            BASE,
            &[("content-type", "application/yaml")],
            Some(yaml.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let out = h.get(&format!("{BASE}/y"), "application/yaml").await;
    assert_eq!(out.headers[header::CONTENT_TYPE], "application/yaml");
    assert!(
        out.text().contains("url: oci://registry.example/y"),
        "{}",
        out.text()
    );
}

#[tokio::test]
async fn patch_types_and_options_are_checked() {
    let h = harness().await;
    h.create(repo("a")).await;
    let smp = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a"),
            &[("content-type", "application/strategic-merge-patch+json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(smp.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        smp.json()["message"]
            .as_str()
            .unwrap()
            .contains("application/merge-patch+json")
    );
    let no_manager = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a"),
            &[("content-type", "application/apply-patch+yaml")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(no_manager.status, StatusCode::UNPROCESSABLE_ENTITY);
    let forced_merge = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a?force=true"),
            &[("content-type", "application/merge-patch+json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(forced_merge.status, StatusCode::UNPROCESSABLE_ENTITY);
    let failing_test = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a"),
            &[("content-type", "application/json-patch+json")],
            Some(br#"[{"op":"test","path":"/spec/interval","value":"1h"}]"#.to_vec()),
        )
        .await;
    assert_eq!(failing_test.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn optimistic_concurrency_and_no_op_writes() {
    let h = harness().await;
    let created = h.create(repo("a")).await.json();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut without_rv = created.clone();
    without_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let uri = format!("{BASE}/a");
    let put = |body: Value| {
        h.send(
            Method::PUT,
            &uri,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
    };
    let missing = put(without_rv).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.json()["details"]["causes"][0]["field"],
        "metadata.resourceVersion"
    );
    let mut changed = created.clone();
    changed["spec"]["interval"] = json!("9m");
    let updated = put(changed.clone()).await.json();
    assert_eq!(updated["metadata"]["generation"], 2);
    let stale = put(changed).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(
        stale.json()["message"],
        "Operation cannot be fulfilled on ocirepositories.source.toolkit.fluxcd.io \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let noop = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a"),
            &[("content-type", "application/merge-patch+json")],
            Some(br#"{"spec":{"interval":"9m"}}"#.to_vec()),
        )
        .await
        .json();
    assert_eq!(
        noop["metadata"]["resourceVersion"],
        updated["metadata"]["resourceVersion"]
    );
    assert_ne!(noop["metadata"]["resourceVersion"].as_str().unwrap(), rv);
}

#[tokio::test]
async fn the_status_subresource_changes_only_status() {
    let h = harness().await;
    let created = h.create(repo("a")).await.json();
    let mut body = created.clone();
    body["spec"]["interval"] = json!("1h");
    body["status"] = json!({"observedGeneration": 1, "url": "http://example/artifact.tar.gz"});
    let reply = h
        .send(
            Method::PUT,
            &format!("{BASE}/a/status"),
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let stored = reply.json();
    assert_eq!(stored["status"]["url"], "http://example/artifact.tar.gz");
    assert_eq!(stored["spec"]["interval"], "5m");
    assert_eq!(stored["metadata"]["generation"], 1);
    // A main-resource write ignores status.
    let mut main = stored.clone();
    main["status"] = json!({"url": "changed"});
    let after = h
        .send(
            Method::PUT,
            &format!("{BASE}/a"),
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&main).unwrap()),
        )
        .await
        .json();
    assert_eq!(after["status"]["url"], "http://example/artifact.tar.gz");
}

#[tokio::test]
async fn create_checks_namespace_and_generates_names() {
    let h = harness().await;
    let mut wrong = repo("a");
    wrong["metadata"]["namespace"] = json!("other");
    let reply = h.create(wrong).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let mut generated = repo("ignored");
    generated["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    generated["metadata"]["generateName"] = json!("podinfo-");
    let created = h.create(generated).await.json();
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("podinfo-") && name.len() == "podinfo-".len() + 5,
        "{name}"
    );
    assert_eq!(created["status"]["observedGeneration"], -1);
}

#[tokio::test]
async fn v1beta2_answers_carry_the_deprecation_warning() {
    let h = harness().await;
    h.create(repo("a")).await;
    let reply = h
        .get(
            "/apis/source.toolkit.fluxcd.io/v1beta2/namespaces/default/ocirepositories/a",
            "application/json",
        )
        .await;
    assert_eq!(
        reply.json()["apiVersion"],
        "source.toolkit.fluxcd.io/v1beta2"
    );
    assert_eq!(
        reply.headers[header::WARNING],
        "299 - \"source.toolkit.fluxcd.io/v1beta2 OCIRepository is deprecated, upgrade to v1\""
    );
}

#[tokio::test]
async fn protobuf_only_is_not_acceptable_and_bodies_have_a_limit() {
    let h = harness().await;
    assert_eq!(
        h.get(BASE, "application/vnd.kubernetes.protobuf")
            .await
            .status,
        StatusCode::NOT_ACCEPTABLE
    );
    let big = vec![b' '; 4 * 1024 * 1024];
    let reply = h
        .send(
            Method::POST,
            BASE,
            &[("content-type", "application/json")],
            Some(big),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn discovery_negotiates_aggregated_and_legacy_forms() {
    let h = harness().await;
    let v2 = h
        .get(
            "/apis",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .await;
    assert_eq!(
        v2.headers[header::CONTENT_TYPE],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(v2.json()["kind"], "APIGroupDiscoveryList");
    let etag = v2.headers[header::ETAG].to_str().unwrap().to_string();
    let cached = h
        .send(
            Method::GET,
            "/apis",
            &[
                (
                    "accept",
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                ),
                ("if-none-match", &etag),
            ],
            None,
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    let legacy = h.get("/apis", "application/json").await.json();
    assert_eq!(legacy["kind"], "APIGroupList");
    let refused = h
        .get(
            "/apis",
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList",
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        h.get("/api", "application/json").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn openapi_v3_is_addressed_by_hash() {
    let h = harness().await;
    let root = h.get("/openapi/v3", "application/json").await.json();
    let url = root["paths"]["apis/source.toolkit.fluxcd.io/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = h.get(&url, "application/json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.headers[header::CACHE_CONTROL], "public, immutable");
    let stale = h
        .get(
            "/openapi/v3/apis/source.toolkit.fluxcd.io/v1?hash=OLD",
            "application/json",
        )
        .await;
    assert_eq!(stale.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(stale.headers[header::LOCATION].to_str().unwrap(), url);
    let protobuf = h
        .get(
            "/openapi/v2",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )
        .await;
    assert_eq!(
        protobuf.headers[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let json_doc = h.get("/openapi/v2", "application/json").await;
    assert_ne!(
        protobuf.headers[header::ETAG],
        json_doc.headers[header::ETAG]
    );
}

#[tokio::test]
async fn a_malformed_apply_configuration_is_a_bad_request() {
    let h = harness().await;
    h.create(repo("a")).await;
    for body in [r#"{"metadata": []}"#, "[]", r#"{"metadata": "x"}"#] {
        let reply = h
            .send(
                Method::PATCH,
                &format!("{BASE}/a?fieldManager=t"),
                &[("content-type", "application/apply-patch+yaml")],
                Some(body.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
    }
}
