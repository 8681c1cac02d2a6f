//! Every write goes through the admission step of the one write pipeline, and reads do not:
//! create, update (object and `status`), JSON and merge patch, server-side apply (of an existing
//! and of a new object), delete and deletecollection each ask admission once, with the
//! operation, name and subresource kube-apiserver would give it; a refusal is the client's
//! answer and nothing is stored. Driven in process through the router with a recording
//! admission; storage is the real SQLite store in a temp dir.

use std::sync::{Arc, Mutex};

use apiserver::http::ApiError;
use apiserver::rest::admission::{Admission, Attributes, Operation};
use apiserver::router::RouterConfig;
use futures::future::{BoxFuture, FutureExt};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::in_process::{BASE, InProcess, repo};

/// What admission was asked: operation, name, subresource, user.
type Seen = (Operation, Option<String>, Option<String>, String);

/// Records every request; refuses all of them while `deny` is set.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    deny: Mutex<bool>,
}

impl Admission for Recorder {
    fn admit<'a>(&'a self, a: &'a Attributes<'a>) -> BoxFuture<'a, Result<(), ApiError>> {
        self.seen.lock().unwrap().push((
            a.operation,
            a.name.map(String::from),
            a.subresource.map(String::from),
            a.user.name.clone(),
        ));
        let result = if *self.deny.lock().unwrap() {
            Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: refused by the test admission",
                a.resource,
                a.name.unwrap_or("")
            )))
        } else {
            Ok(())
        };
        std::future::ready(result).boxed()
    }
}

struct Harness {
    server: InProcess,
    recorder: Arc<Recorder>,
}

async fn harness() -> Harness {
    let recorder = Arc::new(Recorder::default());
    let config = RouterConfig {
        admission: recorder.clone(),
        ..RouterConfig::default()
    };
    Harness {
        server: InProcess::with_config(config).await,
        recorder,
    }
}

impl Harness {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = (!body.is_null()).then(|| serde_json::to_vec(&body).unwrap());
        let reply = self
            .server
            .send(method, uri, &[("content-type", content_type)], body)
            .await;
        (
            reply.status,
            serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
        )
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.recorder.seen.lock().unwrap())
    }
}

fn seen(operation: Operation, name: Option<&str>, subresource: Option<&str>) -> Seen {
    (
        operation,
        name.map(String::from),
        subresource.map(String::from),
        "admin".into(),
    )
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn every_write_is_admitted_once_and_reads_are_not() {
    let h = harness().await;
    let (status, created) = h.send(Method::POST, BASE, JSON, repo("a")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let a = format!("{BASE}/a");
    let (status, _) = h.send(Method::PUT, &a, JSON, created.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, current) = h.send(Method::GET, &a, JSON, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let mut with_status = current.clone();
    with_status["status"] = json!({"observedGeneration": 1});
    let (status, _) = h
        .send(Method::PUT, &format!("{a}/status"), JSON, with_status)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .send(
            Method::PATCH,
            &a,
            MERGE,
            json!({"spec": {"interval": "10m"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let patch = json!([{"op": "replace", "path": "/spec/interval", "value": "15m"}]);
    let (status, _) = h.send(Method::PATCH, &a, JSON_PATCH, patch).await;
    assert_eq!(status, StatusCode::OK);
    let apply = format!("{a}?fieldManager=test&force=true");
    let (status, _) = h.send(Method::PATCH, &apply, APPLY, repo("a")).await;
    assert_eq!(status, StatusCode::OK);
    let new = format!("{BASE}/b?fieldManager=test");
    let (status, _) = h.send(Method::PATCH, &new, APPLY, repo("b")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = h.send(Method::GET, BASE, JSON, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .send(Method::DELETE, &format!("{BASE}/b"), JSON, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.send(Method::DELETE, BASE, JSON, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.seen(),
        [
            seen(Operation::Create, Some("a"), None),
            seen(Operation::Update, Some("a"), None),
            seen(Operation::Update, Some("a"), Some("status")),
            seen(Operation::Update, Some("a"), None),
            seen(Operation::Update, Some("a"), None),
            seen(Operation::Update, Some("a"), None),
            seen(Operation::Create, Some("b"), None),
            seen(Operation::Delete, Some("b"), None),
            seen(Operation::Delete, None, None),
        ]
    );
}

#[tokio::test]
async fn a_refusal_is_the_answer_and_nothing_is_stored() {
    let h = harness().await;
    let (_, created) = h.send(Method::POST, BASE, JSON, repo("a")).await;
    *h.recorder.deny.lock().unwrap() = true;
    let a = format!("{BASE}/a");
    let mut changed = created.clone();
    changed["spec"]["interval"] = json!("1h");
    for (method, uri, content_type, body) in [
        (Method::POST, BASE.to_string(), JSON, repo("b")),
        (Method::PUT, a.clone(), JSON, changed),
        (
            Method::PATCH,
            a.clone(),
            MERGE,
            json!({"spec": {"interval": "1h"}}),
        ),
        (
            Method::PATCH,
            format!("{BASE}/c?fieldManager=test"),
            APPLY,
            repo("c"),
        ),
        (Method::DELETE, a.clone(), JSON, Value::Null),
        (Method::DELETE, BASE.to_string(), JSON, Value::Null),
    ] {
        let (status, reply) = h.send(method.clone(), &uri, content_type, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {reply}");
        assert_eq!(reply["reason"], "Forbidden", "{method} {uri}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .ends_with("refused by the test admission"),
            "{reply}"
        );
    }
    *h.recorder.deny.lock().unwrap() = false;
    let (_, list) = h.send(Method::GET, BASE, JSON, Value::Null).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["metadata"], created["metadata"]);
    assert_eq!(items[0]["spec"]["interval"], "5m");
}
