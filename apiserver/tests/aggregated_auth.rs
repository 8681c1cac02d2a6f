//! The in-cluster mode's delegated authentication and authorisation, end to end over real TLS:
//! the real `source-apiserver` binary, a test front proxy that behaves as kube-aggregator
//! (`test_support::aggregator`), kubectl through that proxy, and a small fake of the Kubernetes
//! API (`test_support::kube_fake`) for TokenReview, SubjectAccessReview and the
//! `extension-apiserver-authentication` ConfigMap. The fake stands in for kube-apiserver only
//! because kube-apiserver cannot run here (no binary, no Docker engine).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::aggregator::{Aggregator, EXTRA_KEY};
use test_support::e2e::eventually;
use test_support::kube_fake::{KubeFake, Policy, authentication_config_map};
use test_support::kubectl::Kubectl;
use test_support::pki::TestCa;
use test_support::server::{ApiServer, ServerOptions};

const GROUP_VERSION: &str = "/apis/source.toolkit.fluxcd.io/v1";
const COLLECTION: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";
const FRONT_PROXY_NAME: &str = "front-proxy-client";

/// A cluster around the server: the fake API, its CAs, the server in-cluster, the proxy.
struct Cluster {
    fake: KubeFake,
    client_ca: TestCa,
    front_proxy_ca: TestCa,
    server: ApiServer,
    aggregator: Aggregator,
}

fn cluster(args: &[&str]) -> Cluster {
    let fake = KubeFake::start();
    let client_ca = TestCa::with_name("cluster client CA");
    let front_proxy_ca = TestCa::with_name("front-proxy CA");
    fake.set_authentication_config_map(&authentication_config_map(
        &client_ca,
        &front_proxy_ca,
        &[FRONT_PROXY_NAME],
    ));
    fake.set_policy(Policy::default().allow("alice", &["*"], &["*"]));
    let mut server_args = vec![
        "--kubeconfig".to_string(),
        fake.kubeconfig().display().to_string(),
    ];
    server_args.extend(args.iter().map(|a| a.to_string()));
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: server_args,
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
        client_ca,
        front_proxy_ca,
        server,
        aggregator,
    }
}

impl Cluster {
    /// A client that talks to the server directly, presenting `identity` if given.
    fn direct(&self, identity: Option<(Vec<u8>, Vec<u8>)>) -> reqwest::blocking::Client {
        let ca = std::fs::read(self.server.ca_cert()).unwrap();
        let mut builder = reqwest::blocking::Client::builder()
            .use_native_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
        if let Some((cert, key)) = identity {
            builder = builder.identity(reqwest::Identity::from_pkcs8_pem(&cert, &key).unwrap());
        }
        builder.build().unwrap()
    }

    fn server_url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    fn proxy_url(&self, path: &str) -> String {
        format!("{}{path}", self.aggregator.url())
    }

    /// The reviews received since the last call.
    fn take_reviews(&self) -> Vec<Value> {
        let reviews = self.fake.reviews();
        self.fake.clear_reviews();
        reviews
    }
}

/// Status code and JSON body (`Value::Null` when not JSON).
fn answer(response: reqwest::blocking::Response) -> (u16, Value) {
    let code = response.status().as_u16();
    let body = response.json().unwrap_or(Value::Null);
    (code, body)
}

fn ocirepository(name: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"url": "oci://127.0.0.1:1/app", "interval": "10m", "ref": {"tag": "v1"}}
    })
}

fn spoofed(request: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
    request
        .header("X-Remote-User", "admin")
        .header("X-Remote-Group", "system:masters")
}

#[test]
fn allowed_and_denied_users_through_the_front_proxy_with_kubes_403_message() {
    let c = cluster(&[]);
    let alice = c.aggregator.client("alice", &["dev"]);
    let (code, body) = answer(alice.get(c.proxy_url(COLLECTION)).send().unwrap());
    assert_eq!(code, 200, "{body}");
    let reviews = c.take_reviews();
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    assert_eq!(
        reviews[0],
        json!({
            "user": "alice",
            "groups": ["dev", "system:authenticated"],
            "extra": {EXTRA_KEY: ["X509SHA256=alice"]},
            "resourceAttributes": {"namespace": "default", "verb": "list",
                "group": "source.toolkit.fluxcd.io", "version": "v1", "resource": "ocirepositories"}
        })
    );

    let bob = c.aggregator.client("bob", &["dev"]);
    let (code, body) = answer(bob.get(c.proxy_url(COLLECTION)).send().unwrap());
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "ocirepositories.source.toolkit.fluxcd.io is forbidden: User \"bob\" cannot list resource \"ocirepositories\" in API group \"source.toolkit.fluxcd.io\" in the namespace \"default\": no RBAC policy matched"
    );

    // kubectl through the proxy: discovery (reviewed as non-resource gets), then the request.
    let kubectl_alice = Kubectl::new(
        None,
        &c.aggregator.kubeconfig(c.server.scratch(), "alice", &[]),
    );
    kubectl_alice
        .run_with(
            &["apply", "-f", "-"],
            Some(&serde_json::to_string(&ocirepository("podinfo")).unwrap()),
            &[],
        )
        .ok();
    let names = kubectl_alice
        .run(&["get", "ocirepositories", "-o", "name"])
        .ok()
        .to_string();
    assert_eq!(
        names.trim(),
        "ocirepository.source.toolkit.fluxcd.io/podinfo"
    );
    let kubectl_bob = Kubectl::new(
        None,
        &c.aggregator.kubeconfig(c.server.scratch(), "bob", &[]),
    );
    let stderr = kubectl_bob
        .run(&["get", "ocirepository", "podinfo"])
        .failed()
        .to_string();
    assert!(
        stderr.contains("Error from server (Forbidden): ocirepositories.source.toolkit.fluxcd.io \"podinfo\" is forbidden: User \"bob\" cannot get resource \"ocirepositories\" in API group \"source.toolkit.fluxcd.io\" in the namespace \"default\": no RBAC policy matched"),
        "{stderr}"
    );
    let discovery: Vec<Value> = c
        .take_reviews()
        .into_iter()
        .filter(|r| r.get("nonResourceAttributes").is_some())
        .collect();
    assert!(
        discovery
            .iter()
            .any(|r| r["nonResourceAttributes"] == json!({"path": "/apis", "verb": "get"})),
        "{discovery:#?}"
    );
    assert_eq!(
        c.fake.unauthorized(),
        0,
        "the server presents its own token"
    );
}

#[test]
fn the_front_proxy_must_prove_its_identity() {
    let c = cluster(&[]);
    // A certificate with the right name from the wrong CA.
    let rogue_ca = TestCa::with_name("rogue CA");
    let rogue = c.direct(Some(rogue_ca.issue_client(FRONT_PROXY_NAME, None::<&str>)));
    let (code, _) = answer(spoofed(rogue.get(c.server_url(COLLECTION))).send().unwrap());
    assert_eq!(code, 401);
    // The right CA, a name not among the allowed names.
    let intruder = c.direct(Some(
        c.front_proxy_ca.issue_client("intruder", None::<&str>),
    ));
    let (code, _) = answer(
        spoofed(intruder.get(c.server_url(COLLECTION)))
            .send()
            .unwrap(),
    );
    assert_eq!(code, 401);
    // The real front-proxy certificate: the headers are believed.
    let proxy = c.direct(Some(
        c.front_proxy_ca
            .issue_client(FRONT_PROXY_NAME, None::<&str>),
    ));
    let (code, _) = answer(spoofed(proxy.get(c.server_url(COLLECTION))).send().unwrap());
    assert_eq!(code, 200, "system:masters from the proxy skips the review");
    assert_eq!(c.take_reviews(), Vec::<Value>::new());
}

/// Since kube 1.32 (feature gate `RemoteRequestHeaderUID`) the aggregator forwards the user's
/// uid in `X-Remote-Uid`; the server believes it from the front proxy only and passes it on
/// in the SubjectAccessReview.
#[test]
fn the_front_proxys_uid_header_reaches_the_review() {
    let c = cluster(&[]);
    let proxy = c.direct(Some(
        c.front_proxy_ca
            .issue_client(FRONT_PROXY_NAME, None::<&str>),
    ));
    let as_alice = |client: &reqwest::blocking::Client| {
        client
            .get(c.server_url(COLLECTION))
            .header("X-Remote-User", "alice")
            .header("X-Remote-Group", "dev")
            .header("X-Remote-Uid", "uid-alice")
            .send()
            .unwrap()
    };
    let (code, body) = answer(as_alice(&proxy));
    assert_eq!(code, 200, "{body}");
    let reviews = c.take_reviews();
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    assert_eq!(reviews[0]["user"], "alice");
    assert_eq!(reviews[0]["uid"], "uid-alice");
    // Without the front proxy's certificate the uid header is removed with the others.
    let (code, _) = answer(as_alice(&c.direct(None)));
    assert_eq!(code, 403);
    let reviews = c.take_reviews();
    assert_eq!(reviews[0]["user"], "system:anonymous");
    assert!(reviews[0].get("uid").is_none(), "{reviews:#?}");
}

#[test]
fn remote_headers_without_the_front_proxy_certificate_are_ignored() {
    let c = cluster(&[]);
    // No certificate: anonymous, whatever the headers say.
    let anonymous = c.direct(None);
    let (code, body) = answer(
        spoofed(anonymous.get(c.server_url(COLLECTION)))
            .send()
            .unwrap(),
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("User \"system:anonymous\" cannot list resource"),
        "{body}"
    );
    // A user's client certificate: the user is its CN.
    let carol = c.direct(Some(c.client_ca.issue_client("carol", "ops")));
    let (code, _) = answer(spoofed(carol.get(c.server_url(COLLECTION))).send().unwrap());
    assert_eq!(code, 403);
    // A bearer token: the user is the TokenReview's.
    c.fake.add_token("dave-token", "dave", "uid-dave", &["ops"]);
    let (code, _) = answer(
        spoofed(anonymous.get(c.server_url(COLLECTION)))
            .bearer_auth("dave-token")
            .send()
            .unwrap(),
    );
    assert_eq!(code, 403);
    let users: Vec<(Value, Value)> = c
        .take_reviews()
        .into_iter()
        .map(|r| (r["user"].clone(), r["groups"].clone()))
        .collect();
    assert_eq!(
        users,
        vec![
            (json!("system:anonymous"), json!(["system:unauthenticated"])),
            (json!("carol"), json!(["ops", "system:authenticated"])),
            (json!("dave"), json!(["ops", "system:authenticated"])),
        ]
    );
}

#[test]
fn bearer_tokens_are_reviewed_once_per_ttl() {
    let c = cluster(&[]);
    c.fake
        .add_token("erin-token", "erin", "uid-erin", &["readers"]);
    c.fake
        .set_policy(Policy::default().allow("erin", &["list", "watch"], &["ocirepositories"]));
    let client = c.direct(None);
    for _ in 0..3 {
        let (code, body) = answer(
            client
                .get(c.server_url(COLLECTION))
                .bearer_auth("erin-token")
                .send()
                .unwrap(),
        );
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(c.fake.token_reviews(), 1);
    let reviews = c.take_reviews();
    assert_eq!(reviews.len(), 1, "the allowing answer is cached too");
    assert_eq!(reviews[0]["uid"], "uid-erin");
    assert_eq!(
        reviews[0]["groups"],
        json!(["readers", "system:authenticated"])
    );
    // An unknown token is 401, and its refusal is cached as well.
    for _ in 0..2 {
        let (code, _) = answer(
            client
                .get(c.server_url(COLLECTION))
                .bearer_auth("forged")
                .send()
                .unwrap(),
        );
        assert_eq!(code, 401);
    }
    assert_eq!(c.fake.token_reviews(), 2);
}

#[test]
fn every_verb_and_both_subresources_reach_the_review_with_their_attributes() {
    let c = cluster(&[]);
    let alice = c.aggregator.client("alice", &[]);
    let named = format!("{COLLECTION}/app");
    let url = |path: &str| c.proxy_url(path);
    let send =
        |request: reqwest::blocking::RequestBuilder| request.send().unwrap().status().as_u16();
    assert_eq!(
        send(alice.post(url(COLLECTION)).json(&ocirepository("app"))),
        201
    );
    assert_eq!(send(alice.get(url(&named))), 200);
    assert_eq!(send(alice.get(url(COLLECTION))), 200);
    let watch = alice
        .get(url(&format!("{COLLECTION}?watch=true&timeoutSeconds=1")))
        .send()
        .unwrap();
    assert_eq!(watch.status().as_u16(), 200);
    drop(watch);
    let current: Value = alice.get(url(&named)).send().unwrap().json().unwrap();
    assert_eq!(send(alice.put(url(&named)).json(&current)), 200);
    assert_eq!(
        send(
            alice
                .patch(url(&named))
                .header("content-type", "application/merge-patch+json")
                .body(r#"{"metadata":{"labels":{"a":"b"}}}"#)
        ),
        200
    );
    assert_eq!(send(alice.get(url(&format!("{named}/status")))), 200);
    let current: Value = alice.get(url(&named)).send().unwrap().json().unwrap();
    assert_eq!(
        send(alice.put(url(&format!("{named}/status"))).json(&current)),
        200
    );
    // No artifact yet: authorised, then not found (or unavailable).
    assert_ne!(send(alice.get(url(&format!("{named}/artifact")))), 403);
    assert_eq!(send(alice.delete(url(&named))), 200);
    assert_eq!(send(alice.delete(url(COLLECTION))), 200);

    let attributes: Vec<Value> = c
        .take_reviews()
        .into_iter()
        .map(|r| r["resourceAttributes"].clone())
        .collect();
    let want = |verb: &str, name: Option<&str>, sub: Option<&str>| {
        let mut a = json!({"namespace": "default", "verb": verb,
            "group": "source.toolkit.fluxcd.io", "version": "v1", "resource": "ocirepositories"});
        if let Some(sub) = sub {
            a["subresource"] = json!(sub);
        }
        if let Some(name) = name {
            a["name"] = json!(name);
        }
        a
    };
    let expected = vec![
        want("create", None, None),
        want("get", Some("app"), None),
        want("list", None, None),
        want("watch", None, None),
        want("update", Some("app"), None),
        want("patch", Some("app"), None),
        want("get", Some("app"), Some("status")),
        want("update", Some("app"), Some("status")),
        want("get", Some("app"), Some("artifact")),
        want("delete", Some("app"), None),
        want("deletecollection", None, None),
    ];
    for want in &expected {
        assert!(
            attributes.contains(want),
            "missing {want}\nin {attributes:#?}"
        );
    }
    assert_eq!(
        attributes.len(),
        expected.len(),
        "one review per distinct request (the repeated get is cached): {attributes:#?}"
    );
}

#[test]
fn decisions_are_cached_for_their_ttls_also_through_a_watch() {
    let ttl = Duration::from_secs(2);
    let c = cluster(&[
        "--authorization-webhook-cache-authorized-ttl=2s",
        "--authorization-webhook-cache-unauthorized-ttl=2s",
    ]);
    let alice = c.aggregator.client("alice", &[]);
    let bob = c.aggregator.client("bob", &[]);
    let watch_url = c.proxy_url(&format!("{COLLECTION}?watch=true"));
    let started = Instant::now();
    // A watch that stays open and sees an object created after it started.
    let mut watch = alice.get(&watch_url).send().unwrap();
    assert_eq!(watch.status().as_u16(), 200);
    let created = alice
        .post(c.proxy_url(COLLECTION))
        .json(&ocirepository("watched"))
        .send()
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut watch), &mut line).unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "watched");
    drop(watch);
    let again = alice.get(watch_url.replace("watch=true", "watch=true&timeoutSeconds=1"));
    assert_eq!(again.send().unwrap().status().as_u16(), 200);
    for _ in 0..2 {
        assert_eq!(bob.get(&watch_url).send().unwrap().status().as_u16(), 403);
    }
    let watches = |reviews: &[Value], user: &str| {
        reviews
            .iter()
            .filter(|r| r["user"] == user && r["resourceAttributes"]["verb"] == "watch")
            .count()
    };
    let reviews = c.fake.reviews();
    if started.elapsed() < ttl {
        assert_eq!(watches(&reviews, "alice"), 1, "{reviews:#?}");
        assert_eq!(watches(&reviews, "bob"), 1, "{reviews:#?}");
    }
    // After the TTL, the same requests are reviewed again.
    eventually(
        "a second review of bob's watch after the deny TTL",
        || {
            let _ = bob.get(&watch_url).send().unwrap();
            (watches(&c.fake.reviews(), "bob") == 2).then_some(())
        },
        || format!("{:#?}", c.fake.reviews()),
    );
    assert!(started.elapsed() >= ttl);
}

#[test]
fn a_changed_config_map_is_reloaded() {
    let c = cluster(&[]);
    let alice = c.aggregator.client("alice", &[]);
    let list = || answer(alice.get(c.proxy_url(GROUP_VERSION)).send().unwrap()).0;
    assert_eq!(list(), 200);
    eventually(
        "the server's ConfigMap watch",
        || (c.fake.config_map_watchers() > 0).then_some(()),
        String::new,
    );
    // kube-apiserver now allows only another proxy name: this proxy is refused.
    c.fake
        .set_authentication_config_map(&authentication_config_map(
            &c.client_ca,
            &c.front_proxy_ca,
            &["another-front-proxy"],
        ));
    eventually(
        "the new allowed names",
        || (list() == 401).then_some(()),
        || c.server.log(),
    );
    c.fake
        .set_authentication_config_map(&authentication_config_map(
            &c.client_ca,
            &c.front_proxy_ca,
            &[FRONT_PROXY_NAME],
        ));
    eventually(
        "the restored allowed names",
        || (list() == 200).then_some(()),
        || c.server.log(),
    );
    let log = c.server.log();
    assert!(
        log.contains("delegating authentication and authorisation to the cluster"),
        "{log}"
    );
    assert!(
        log.contains("reloaded the extension-apiserver-authentication ConfigMap"),
        "{log}"
    );
}
