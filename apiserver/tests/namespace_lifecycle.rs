//! The in-cluster mode's NamespaceLifecycle admission, end to end: the real `source-apiserver`
//! binary in-cluster, the test front proxy (`test_support::aggregator`) in front of it, and the
//! small fake of the Kubernetes API (`test_support::kube_fake`) that serves the cluster's
//! namespaces (list, watch and get) besides authentication and authorisation. The fake stands in
//! for kube-apiserver only because kube-apiserver cannot run here (no binary, no Docker engine).

use std::path::Path;

use serde_json::{Value, json};
use test_support::aggregator::Aggregator;
use test_support::e2e::eventually;
use test_support::kube_fake::{KubeFake, Policy, authentication_config_map};
use test_support::pki::TestCa;
use test_support::server::{ApiServer, ServerOptions};

const FRONT_PROXY_NAME: &str = "front-proxy-client";
const ADMIN: &str = "admin";

struct Cluster {
    fake: KubeFake,
    _server: ApiServer,
    aggregator: Aggregator,
}

/// The fake with namespace `team-a`, the server in-cluster against it, and the proxy.
fn cluster() -> Cluster {
    let fake = KubeFake::start();
    let client_ca = TestCa::with_name("cluster client CA");
    let front_proxy_ca = TestCa::with_name("front-proxy CA");
    fake.set_authentication_config_map(&authentication_config_map(
        &client_ca,
        &front_proxy_ca,
        &[FRONT_PROXY_NAME],
    ));
    fake.set_policy(Policy::default().allow(ADMIN, &["*"], &["*"]));
    fake.add_namespace("team-a");
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: vec![
                "--kubeconfig".to_string(),
                fake.kubeconfig().display().to_string(),
            ],
            ..Default::default()
        },
    );
    let aggregator = Aggregator::start(
        &server.url(),
        &server.ca_cert(),
        front_proxy_ca.issue_client(FRONT_PROXY_NAME, None::<&str>),
    );
    Cluster {
        fake,
        _server: server,
        aggregator,
    }
}

fn collection(namespace: &str) -> String {
    format!("/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/ocirepositories")
}

fn ocirepository(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "oci://127.0.0.1:1/app", "interval": "10m", "ref": {"tag": "v1"}}
    })
}

/// Status code and JSON body (`Value::Null` when not JSON).
fn answer(response: reqwest::blocking::Response) -> (u16, Value) {
    let code = response.status().as_u16();
    let body = response.json().unwrap_or(Value::Null);
    (code, body)
}

impl Cluster {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.aggregator.url())
    }

    fn admin(&self) -> reqwest::blocking::Client {
        self.aggregator.client(ADMIN, &["system:masters"])
    }

    fn create(&self, namespace: &str, name: &str) -> (u16, Value) {
        let request = self
            .admin()
            .post(self.url(&collection(namespace)))
            .json(&ocirepository(namespace, name));
        answer(request.send().unwrap())
    }
}

#[test]
fn creates_are_refused_in_missing_and_terminating_namespaces_as_kube_does() {
    let c = cluster();
    let (code, body) = c.create("team-a", "app");
    assert_eq!(code, 201, "{body}");

    let (code, body) = c.create("missing", "app");
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["message"], "namespaces \"missing\" not found");
    assert_eq!(
        body["details"],
        json!({"name": "missing", "kind": "namespaces"})
    );

    c.fake.terminate_namespace("team-a");
    // Until the watch brings the change, creates still succeed: each attempt takes a new name.
    let mut attempt = 0;
    let (code, body) = eventually(
        "creates in the terminating namespace to be refused",
        || {
            attempt += 1;
            Some(c.create("team-a", &format!("late-{attempt}"))).filter(|(code, _)| *code != 201)
        },
        || "still created".into(),
    );
    let late = format!("late-{attempt}");
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        format!(
            "ocirepositories.source.toolkit.fluxcd.io \"{late}\" is forbidden: unable to create new content in namespace team-a because it is being terminated"
        )
    );
    assert_eq!(
        body["details"]["causes"],
        json!([{"reason": "NamespaceTerminating", "field": "metadata.namespace",
            "message": "namespace team-a is being terminated"}])
    );

    // The object created before is still updated, and kube-controller-manager's deletecollection
    // empties the namespace.
    let patch = c
        .admin()
        .patch(c.url(&format!("{}/app", collection("team-a"))))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"updated":"yes"}}}"#);
    let (code, body) = answer(patch.send().unwrap());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["labels"]["updated"], "yes");
    let (code, body) = answer(
        c.admin()
            .delete(c.url(&collection("team-a")))
            .send()
            .unwrap(),
    );
    assert_eq!(code, 200, "{body}");
    eventually(
        "the terminating namespace to be empty",
        || {
            let (code, body) = answer(c.admin().get(c.url(&collection("team-a"))).send().unwrap());
            (code == 200 && body["items"] == json!([])).then_some(())
        },
        || {
            let (_, body) = answer(c.admin().get(c.url(&collection("team-a"))).send().unwrap());
            body.to_string()
        },
    );
}

#[test]
fn a_namespace_newer_than_the_watch_is_found_by_a_live_get() {
    let c = cluster();
    eventually(
        "the server to watch namespaces",
        || (c.fake.namespace_watchers() == 1).then_some(()),
        || format!("{} watches", c.fake.namespace_watchers()),
    );
    let (code, body) = c.create("team-a", "app");
    assert_eq!(code, 201, "{body}");
    c.fake.add_namespace_unannounced("team-b");
    let (code, body) = c.create("team-b", "app");
    assert_eq!(code, 201, "{body}");
    assert_eq!(c.fake.namespace_gets("team-b"), 1);
    assert_eq!(
        c.fake.namespace_gets("team-a"),
        0,
        "team-a comes from the watched cache"
    );
}
