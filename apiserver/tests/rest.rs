//! REST semantics driven in process through the router (`oneshot`), for what the kubectl suite
//! does not reach: response shapes (PartialObjectMetadata, Table with includeObject, Table and
//! watch-list frames), dryRun, deletecollection, fieldValidation, YAML, patch-type and option
//! errors, optimistic concurrency, the status subresource, discovery negotiation and OpenAPI
//! caching. Storage is the real SQLite store in a temp dir. Authentication is replaced by a fixed
//! `system:masters` identity (real certificate and token authentication are tested against the
//! binary in `kubectl.rs`).

use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use test_support::in_process::{BASE, InProcess, Reply, repo};

#[tokio::test]
async fn partial_object_metadata_for_get_and_list() {
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
    h.create(repo("a")).await;
    let refused = h
        .get(
            &format!("{BASE}?watch=true&sendInitialEvents=true&timeoutSeconds=1"),
            "application/json",
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (reason, message, fields) = refused.status_object();
    assert_eq!(
        (reason.as_str(), fields),
        ("Invalid", vec!["resourceVersionMatch".to_owned()])
    );
    assert!(
        message.contains("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
        "{message}"
    );
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
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
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
    assert_eq!(
        bad.status_object(),
        (
            "Invalid".to_owned(),
            "dryRun: Unsupported value: \"Server\": supported values: \"All\"".to_owned(),
            vec!["dryRun".to_owned()]
        )
    );
}

/// `DeleteOptions` as `ValidateDeleteOptions` checks them: an unknown `propagationPolicy` and
/// `orphanDependents` together with `propagationPolicy` are 422s naming the field, and the
/// object stays.
#[tokio::test]
async fn delete_options_are_validated_as_kube_validates_them() {
    let h = InProcess::start().await;
    h.create(repo("a")).await;
    for (body, message) in [
        (
            json!({"propagationPolicy": "Sometimes"}),
            "propagationPolicy: Unsupported value: \"Sometimes\": supported values: \"Foreground\", \"Background\", \"Orphan\"",
        ),
        (
            json!({"propagationPolicy": "Orphan", "orphanDependents": true}),
            "propagationPolicy: orphanDependents and deletionPropagation cannot be both set",
        ),
    ] {
        let reply = h
            .send(
                Method::DELETE,
                &format!("{BASE}/a"),
                &[("content-type", "application/json")],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (reason, text, fields) = reply.status_object();
        assert_eq!(
            (reason.as_str(), text.as_str(), fields),
            ("Invalid", message, vec!["propagationPolicy".to_owned()])
        );
    }
    assert_eq!(
        h.get(&format!("{BASE}/a"), "application/json").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deletecollection_honours_the_label_selector() {
    let h = InProcess::start().await;
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

/// Each item of a deletecollection is deleted with the request's `DeleteOptions`, as kube's
/// `DeleteCollection` does: `propagationPolicy: Orphan` holds every item with the `orphan`
/// finalizer, and a later `Background` lets them go.
#[tokio::test]
async fn deletecollection_applies_the_propagation_policy_to_each_item() {
    let h = InProcess::start().await;
    h.create(repo("a")).await;
    h.create(repo("b")).await;
    let delete_all = |policy: &str| {
        let body = serde_json::to_vec(&json!({"kind": "DeleteOptions",
            "apiVersion": "v1", "propagationPolicy": policy}))
        .unwrap();
        h.send(
            Method::DELETE,
            BASE,
            &[("content-type", "application/json")],
            Some(body),
        )
    };
    let held = delete_all("Orphan").await;
    assert_eq!(held.status, StatusCode::OK);
    let held = held.json();
    for item in held["items"].as_array().unwrap() {
        assert_eq!(item["metadata"]["finalizers"], json!(["orphan"]), "{item}");
        assert!(item["metadata"]["deletionTimestamp"].is_string(), "{item}");
    }
    let left = h.get(BASE, "application/json").await.json();
    assert_eq!(left["items"].as_array().unwrap().len(), 2, "both are held");
    let gone = delete_all("Background").await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(gone.json()["items"].as_array().unwrap().len(), 2);
    let left = h.get(BASE, "application/json").await.json();
    assert_eq!(left["items"], json!([]));
}

#[tokio::test]
async fn field_validation_strict_refuses_and_warn_warns() {
    let h = InProcess::start().await;
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
    let (reason, message, _) = strict.status_object();
    assert_eq!(
        (reason.as_str(), message.as_str()),
        (
            "BadRequest",
            "strict decoding error: unknown field \"spec.colour\""
        )
    );
    assert_eq!(
        h.get(&format!("{BASE}/a"), "application/json").await.status,
        StatusCode::NOT_FOUND,
        "a strict refusal stores nothing"
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
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
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
    let (reason, message, _) = smp.status_object();
    assert_eq!(reason, "UnsupportedMediaType");
    assert!(
        message.contains("application/merge-patch+json"),
        "{message}"
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
    let (reason, message, fields) = no_manager.status_object();
    assert_eq!(
        (reason.as_str(), fields),
        ("Invalid", vec!["fieldManager".to_owned()])
    );
    assert!(message.contains("Required value"), "{message}");
    let forced_merge = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a?force=true"),
            &[("content-type", "application/merge-patch+json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(forced_merge.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (reason, message, fields) = forced_merge.status_object();
    assert_eq!(
        (reason.as_str(), fields),
        ("Invalid", vec!["force".to_owned()])
    );
    assert!(
        message.contains("may not be specified for non-apply patch"),
        "{message}"
    );
    let failing_test = h
        .send(
            Method::PATCH,
            &format!("{BASE}/a"),
            &[("content-type", "application/json-patch+json")],
            Some(br#"[{"op":"test","path":"/spec/interval","value":"1h"}]"#.to_vec()),
        )
        .await;
    assert_eq!(failing_test.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (reason, message, fields) = failing_test.status_object();
    assert_eq!(
        (reason.as_str(), fields),
        ("Invalid", vec!["patch".to_owned()])
    );
    assert!(
        message.contains("failed at path '/spec/interval': value did not match"),
        "the cause is the failed test operation: {message}"
    );
    let unchanged = h.get(&format!("{BASE}/a"), "application/json").await.json();
    assert_eq!(unchanged["spec"]["interval"], "5m");
}

#[tokio::test]
async fn optimistic_concurrency_and_no_op_writes() {
    let h = InProcess::start().await;
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
    let (reason, _, fields) = missing.status_object();
    assert_eq!(
        (reason.as_str(), fields),
        ("Invalid", vec!["metadata.resourceVersion".to_owned()])
    );
    let mut changed = created.clone();
    changed["spec"]["interval"] = json!("9m");
    let updated = put(changed.clone()).await.json();
    assert_eq!(updated["metadata"]["generation"], 2);
    let stale = put(changed).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.status_object().0, "Conflict");
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
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
    let mut wrong = repo("a");
    wrong["metadata"]["namespace"] = json!("other");
    let reply = h.create(wrong).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (reason, message, _) = reply.status_object();
    assert_eq!(
        (reason.as_str(), message.as_str()),
        (
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    );
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
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
    let protobuf = h.get(BASE, "application/vnd.kubernetes.protobuf").await;
    assert_eq!(protobuf.status, StatusCode::NOT_ACCEPTABLE);
    let (reason, message, _) = protobuf.status_object();
    assert_eq!(reason, "NotAcceptable");
    assert!(
        message.starts_with("only the following media types are accepted: application/json,"),
        "{message}"
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
    let h = InProcess::start().await;
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
    assert_eq!(refused.status_object().0, "NotAcceptable");
    let core = h.get("/api", "application/json").await;
    assert_eq!(
        (core.status, core.status_object().0.as_str()),
        (StatusCode::NOT_FOUND, "NotFound")
    );
}

#[tokio::test]
async fn openapi_v3_is_addressed_by_hash() {
    let h = InProcess::start().await;
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
    let h = InProcess::start().await;
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
        let (reason, message, _) = reply.status_object();
        assert_eq!(
            (reason.as_str(), message.as_str()),
            (
                "BadRequest",
                "an apply configuration must be an object whose metadata is an object"
            ),
            "{body}"
        );
    }
}

/// Opens a watch of [`BASE`] over a real HTTP/1.1 connection to `addr` and reads until the
/// initial event of object `first` has arrived: the watch is provably open and registered.
async fn open_watch(addr: std::net::SocketAddr, first: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {BASE}?watch=true HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    read_until(&mut stream, &format!("\"name\":\"{first}\"")).await;
    stream
}

/// Reads from `stream` until the bytes read contain `needle` (within 10 s); returns them.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the watch ended before {needle}: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("no {needle} within 10 s"));
    String::from_utf8_lossy(&seen).into_owned()
}

/// A watch client that cuts its connection mid-stream (after its first event, with no event
/// pending) is forgotten by the store at once, not at the next event; the other watch keeps
/// receiving. Over a real loopback connection, so the HTTP server has to notice the close.
#[tokio::test]
async fn a_watch_client_that_disconnects_mid_stream_is_released_and_the_others_keep_going() {
    let h = InProcess::start().await;
    h.create(repo("a")).await;
    let addr = h.serve().await;
    let mut live = open_watch(addr, "a").await;
    assert_eq!(h.store().watchers(), 1);
    for round in 0..10 {
        let gone = open_watch(addr, "a").await;
        assert_eq!(h.store().watchers(), 2, "round {round}");
        drop(gone);
        let released = async {
            while h.store().watchers() != 1 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), released)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {round}: {} watchers registered 10 s after the client went away",
                    h.store().watchers()
                )
            });
    }
    assert_eq!(h.create(repo("b")).await.status, StatusCode::CREATED);
    let frames = read_until(&mut live, "\"name\":\"b\"").await;
    assert!(frames.contains("\"type\":\"ADDED\""), "{frames}");
    drop(live);
}

/// Anonymous resident memory of this process (`RssAnon` in `/proc/self/status`), in bytes:
/// heap and buffers, not the mapped database file.
fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .expect("RssAnon in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

/// Creates `count` objects `<prefix><i>` with a 16 KiB annotation each, from eight writers at
/// once, directly in the store; returns the bytes of annotation written.
async fn write_padded(h: &InProcess, prefix: &str, count: usize) -> u64 {
    use storage::ObjectStore as _;
    const PADDING_BYTES: usize = 16 * 1024;
    let writers = (0..8).map(|w| {
        let store = h.store().clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            for i in (w..count).step_by(8) {
                let name = format!("{prefix}{i}");
                let mut object = repo(&name);
                object["metadata"]["annotations"] =
                    json!({"example.com/padding": "x".repeat(PADDING_BYTES)});
                let resource =
                    storage::ResourceKey::new("source.toolkit.fluxcd.io", "ocirepositories");
                let key = storage::ObjectKey::new(resource, "default", name);
                store
                    .create(&key, object, storage::WriteOptions { dry_run: false })
                    .await
                    .unwrap();
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    (count * PADDING_BYTES) as u64
}

/// A watch client that stops reading (its socket never read after the first event) while
/// 64 MiB of changes are committed: the server keeps at most its per-watcher buffer for it
/// (1,024 events, 16 MiB here), ends that watch with Expired instead of growing, and its
/// anonymous memory grows by less than half the volume sent. Measured from `/proc/self/status`
/// (the server runs in this test's process), after a first round of the same writes without
/// the watch has grown the caches (SQLite's page cache, allocator arenas) to their size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_client_that_stops_reading_costs_bounded_memory_and_is_ended() {
    use tokio::io::AsyncWriteExt as _;
    const OBJECTS: usize = 4096;
    let h = InProcess::start().await;
    let warm_up = rss_anon_bytes();
    write_padded(&h, "warm-", OBJECTS).await;
    let first = h.create(repo("first")).await.json();
    let revision: u64 = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr = h.serve().await;
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    // From just before `first`: its event, not the 64 MiB of warm-up objects.
    let request = format!(
        "GET {BASE}?watch=true&resourceVersion={} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n",
        revision - 1
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    read_until(&mut stalled, "\"name\":\"first\"").await;
    assert_eq!(h.store().watchers(), 1);

    let before = rss_anon_bytes();
    let volume = write_padded(&h, "o", OBJECTS).await;
    let growth = rss_anon_bytes().saturating_sub(before);
    eprintln!(
        "anonymous memory: +{} MiB warming up, then +{} MiB while {} MiB of changes went to a stalled watch",
        before.saturating_sub(warm_up) >> 20,
        growth >> 20,
        volume >> 20
    );
    assert!(
        growth < volume / 2,
        "grew by {growth} bytes for {volume} bytes sent to a client that does not read"
    );
    let ended = async {
        while h.store().watchers() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), ended)
        .await
        .expect("the stalled watch was ended by the store");
    drop(stalled);
}
