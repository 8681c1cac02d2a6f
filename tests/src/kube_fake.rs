//! A small fake of the Kubernetes API for the in-cluster mode's contract tests. kube-apiserver
//! cannot run here (no binary, no Docker engine), so this fake speaks the three parts of its
//! API that delegated authentication and authorisation use, over TLS with a bearer token:
//!
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews`: tokens added with
//!   [`KubeFake::add_token`] are authenticated; every review is counted.
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: every review's `spec` is
//!   recorded ([`KubeFake::reviews`]) and answered by the [`Policy`] (configurable).
//! - `GET /api/v1/namespaces/kube-system/configmaps?fieldSelector=...` (list and `watch=true`):
//!   the `extension-apiserver-authentication` ConfigMap, changed with
//!   [`KubeFake::set_authentication_config_map`] (watchers get `MODIFIED`).
//! - `GET /api/v1/namespaces` (list and `watch=true`) and `GET /api/v1/namespaces/<name>`:
//!   `default`, `kube-system`, `kube-public` and `kube-node-lease` from the start, more with
//!   [`KubeFake::add_namespace`], marked terminating with [`KubeFake::terminate_namespace`]
//!   (watchers get `ADDED` and `MODIFIED`); each GET of one namespace is counted.
//! - `GET /api/v1/secrets` and `GET /api/v1/serviceaccounts` (cluster-wide list and
//!   `watch=true`, as controller-runtime's cache reads them): objects put with
//!   [`KubeFake::put_secret`] and [`KubeFake::put_service_account`], removed with
//!   [`KubeFake::delete_secret`]; lists and watches are counted ([`KubeFake::lists`],
//!   [`KubeFake::watches`]) so a test can tell a watch cache from a GET per reconcile, which
//!   the fake does not serve.
//! - `POST /apis/events.k8s.io/v1/namespaces/<ns>/events` and `PATCH …/events/<name>` (JSON
//!   merge patch): Events kept in order of creation ([`KubeFake::events`]), 404 for a PATCH of
//!   an Event that does not exist (or was removed with [`KubeFake::expire_events`], as
//!   kube-apiserver's `--event-ttl` does); every PATCH is counted ([`KubeFake::event_patches`]).
//!
//! A request without the fake's token is answered 401 and counted ([`KubeFake::unauthorized`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use crate::https::HttpsServer;
use crate::pki::TestCa;

/// The bearer token the server under test must present.
const CLIENT_TOKEN: &str = "source-apiserver-service-account-token";

/// One allow rule of a [`Policy`].
#[derive(Clone, Debug)]
pub struct Rule {
    /// User name the rule applies to.
    pub user: String,
    /// Verbs, or `*`.
    pub verbs: Vec<String>,
    /// `resource` or `resource/subresource`, or `*`.
    pub resources: Vec<String>,
}

/// How the fake answers SubjectAccessReviews, in the spirit of RBAC: non-resource `get`
/// requests of `system:authenticated` users are allowed (the `system:discovery` role), resource
/// requests by the rules; anything else is denied with `deny_reason`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Allow rules.
    pub rules: Vec<Rule>,
    /// The `status.reason` of an allowing answer.
    pub allow_reason: String,
    /// The `status.reason` of a denying answer.
    pub deny_reason: String,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            allow_reason: "RBAC: allowed by ClusterRoleBinding \"test\"".into(),
            deny_reason: "no RBAC policy matched".into(),
        }
    }
}

impl Policy {
    /// Adds a rule allowing `user` `verbs` on `resources`.
    #[must_use]
    pub fn allow(mut self, user: &str, verbs: &[&str], resources: &[&str]) -> Self {
        self.rules.push(Rule {
            user: user.into(),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
        });
        self
    }

    fn decide(&self, spec: &Value) -> bool {
        let user = spec["user"].as_str().unwrap_or("");
        if let Some(attributes) = spec.get("nonResourceAttributes") {
            let authenticated = spec["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g == "system:authenticated"));
            return authenticated && attributes["verb"] == "get";
        }
        let attributes = &spec["resourceAttributes"];
        let verb = attributes["verb"].as_str().unwrap_or("");
        let mut resource = attributes["resource"].as_str().unwrap_or("").to_string();
        if let Some(sub) = attributes["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        self.rules.iter().any(|rule| {
            rule.user == user
                && rule.verbs.iter().any(|v| v == "*" || v == verb)
                && rule.resources.iter().any(|r| r == "*" || *r == resource)
        })
    }
}

#[derive(Debug, Default)]
struct FakeState {
    tokens: Mutex<HashMap<String, Value>>,
    token_reviews: AtomicUsize,
    reviews: Mutex<Vec<Value>>,
    policy: Mutex<Policy>,
    config_map: Mutex<Option<Value>>,
    revision: AtomicU64,
    watchers: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Value>>>,
    unauthorized: AtomicUsize,
    namespaces: Mutex<BTreeMap<String, Value>>,
    namespace_watchers: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Value>>>,
    namespace_gets: Mutex<HashMap<String, usize>>,
    secrets: Collection,
    service_accounts: Collection,
    events: Mutex<Vec<Value>>,
    event_patches: AtomicUsize,
}

/// A cluster-wide collection of namespaced objects served as list and watch.
#[derive(Debug, Default)]
struct Collection {
    objects: Mutex<BTreeMap<(String, String), Value>>,
    watchers: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Value>>>,
    lists: AtomicUsize,
    watches: AtomicUsize,
}

/// The running fake.
#[derive(Debug)]
pub struct KubeFake {
    server: HttpsServer,
    state: Arc<FakeState>,
    _ca: TestCa,
    kubeconfig: PathBuf,
}

impl KubeFake {
    /// Starts the fake with no ConfigMap, no tokens and the default [`Policy`], and writes a
    /// kubeconfig for it (CA and bearer token) into the fake's temp dir.
    ///
    /// # Panics
    /// On certificate or file failures.
    pub fn start() -> Self {
        let ca = TestCa::with_name("kube-fake CA");
        let (cert, key) = ca.issue_server(&["127.0.0.1", "localhost"]);
        let state = Arc::new(FakeState {
            revision: AtomicU64::new(100),
            ..FakeState::default()
        });
        let router = Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(subject_access_review),
            )
            .route(
                "/api/v1/namespaces/kube-system/configmaps",
                get(config_maps),
            )
            .route("/api/v1/namespaces", get(namespaces))
            .route("/api/v1/namespaces/{name}", get(namespace))
            .route(
                "/apis/events.k8s.io/v1/namespaces/{namespace}/events",
                post(create_event),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}",
                axum::routing::patch(patch_event),
            )
            .route("/api/v1/secrets", get(secrets))
            .route("/api/v1/serviceaccounts", get(service_accounts))
            .with_state(state.clone());
        let server = HttpsServer::start(router, &cert, &key, None);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let kubeconfig = ca.write_pem(
            "kube-fake.kubeconfig",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: sa\nusers:\n- name: sa\n  user:\n    token: {CLIENT_TOKEN}\n",
                server.url(),
                b64(ca.cert_pem())
            )
            .as_bytes(),
        );
        let fake = Self {
            server,
            state,
            _ca: ca,
            kubeconfig,
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            fake.add_namespace(name);
        }
        fake
    }

    /// The kubeconfig the server under test uses (`--kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The fake's URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Makes `token` authenticate as `user` with `groups` (and `uid`).
    pub fn add_token(&self, token: &str, user: &str, uid: &str, groups: &[&str]) {
        self.state.tokens.lock().unwrap().insert(
            token.into(),
            json!({"username": user, "uid": uid, "groups": groups}),
        );
    }

    /// How many TokenReviews were received.
    pub fn token_reviews(&self) -> usize {
        self.state.token_reviews.load(Ordering::SeqCst)
    }

    /// Replaces the SubjectAccessReview policy.
    pub fn set_policy(&self, policy: Policy) {
        *self.state.policy.lock().unwrap() = policy;
    }

    /// Every SubjectAccessReview `spec` received, in order.
    pub fn reviews(&self) -> Vec<Value> {
        self.state.reviews.lock().unwrap().clone()
    }

    /// Forgets the recorded SubjectAccessReviews.
    pub fn clear_reviews(&self) {
        self.state.reviews.lock().unwrap().clear();
    }

    /// Requests refused for lacking the fake's bearer token.
    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.load(Ordering::SeqCst)
    }

    /// How many ConfigMap watches are open now.
    pub fn config_map_watchers(&self) -> usize {
        let mut watchers = self.state.watchers.lock().unwrap();
        watchers.retain(|w| !w.is_closed());
        watchers.len()
    }

    /// Creates or replaces `kube-system/extension-apiserver-authentication` with `data`, as
    /// kube-apiserver's ClusterAuthenticationTrustController writes it; open watches get the
    /// change.
    pub fn set_authentication_config_map(&self, data: &BTreeMap<String, String>) {
        let revision = self.state.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system",
                "resourceVersion": revision.to_string()},
            "data": data,
        });
        let existed = self
            .state
            .config_map
            .lock()
            .unwrap()
            .replace(object.clone())
            .is_some();
        let event = json!({"type": if existed { "MODIFIED" } else { "ADDED" }, "object": object});
        self.state
            .watchers
            .lock()
            .unwrap()
            .retain(|w| w.send(event.clone()).is_ok());
    }
}

impl KubeFake {
    /// Creates namespace `name` (Active); open namespace watches get `ADDED`.
    pub fn add_namespace(&self, name: &str) {
        let event = self.put_namespace(name, false);
        self.announce_namespace(event);
    }

    /// Creates namespace `name` (Active) without telling the open watches, as when a watch lags
    /// behind the API: only a GET of the namespace finds it.
    pub fn add_namespace_unannounced(&self, name: &str) {
        self.put_namespace(name, false);
    }

    /// Marks namespace `name` terminating, as kube-apiserver does on its deletion
    /// (`deletionTimestamp` set, `status.phase: Terminating`); open watches get `MODIFIED`.
    pub fn terminate_namespace(&self, name: &str) {
        let event = self.put_namespace(name, true);
        self.announce_namespace(event);
    }

    /// How many namespace watches are open now.
    pub fn namespace_watchers(&self) -> usize {
        let mut watchers = self.state.namespace_watchers.lock().unwrap();
        watchers.retain(|w| !w.is_closed());
        watchers.len()
    }

    /// How many GETs of namespace `name` were served.
    pub fn namespace_gets(&self, name: &str) -> usize {
        let gets = self.state.namespace_gets.lock().unwrap();
        gets.get(name).copied().unwrap_or(0)
    }

    fn put_namespace(&self, name: &str, terminating: bool) -> Value {
        let revision = self.state.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let mut object = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "resourceVersion": revision.to_string(),
                "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": if terminating { "Terminating" } else { "Active" }},
        });
        if terminating {
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        let existed = self
            .state
            .namespaces
            .lock()
            .unwrap()
            .insert(name.into(), object.clone())
            .is_some();
        json!({"type": if existed { "MODIFIED" } else { "ADDED" }, "object": object})
    }

    fn announce_namespace(&self, event: Value) {
        self.state
            .namespace_watchers
            .lock()
            .unwrap()
            .retain(|w| w.send(event.clone()).is_ok());
    }
}

impl KubeFake {
    /// Creates or replaces the Secret `namespace/name` of `type_` with `data` (sent base64, as
    /// kube-apiserver does); open Secret watches get `ADDED` or `MODIFIED`.
    pub fn put_secret(&self, namespace: &str, name: &str, type_: &str, data: &[(&str, &[u8])]) {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String(b64(v))))
            .collect();
        let object = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": namespace, "name": name}, "type": type_, "data": data});
        self.put(&self.state.secrets, object);
    }

    /// Deletes the Secret `namespace/name`; open Secret watches get `DELETED`.
    pub fn delete_secret(&self, namespace: &str, name: &str) {
        let removed = (self.state.secrets.objects.lock().unwrap())
            .remove(&(namespace.to_string(), name.to_string()));
        if let Some(mut object) = removed {
            let revision = self.state.revision.fetch_add(1, Ordering::SeqCst) + 1;
            object["metadata"]["resourceVersion"] = json!(revision.to_string());
            announce(
                &self.state.secrets,
                json!({"type": "DELETED", "object": object}),
            );
        }
    }

    /// Creates or replaces the ServiceAccount `namespace/name` listing `image_pull_secrets`;
    /// open ServiceAccount watches get `ADDED` or `MODIFIED`.
    pub fn put_service_account(&self, namespace: &str, name: &str, image_pull_secrets: &[&str]) {
        let pulls: Vec<Value> = image_pull_secrets
            .iter()
            .map(|n| json!({"name": n}))
            .collect();
        let object = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"namespace": namespace, "name": name}, "imagePullSecrets": pulls});
        self.put(&self.state.service_accounts, object);
    }

    /// How many lists of `resource` (`secrets` or `serviceaccounts`) were served.
    pub fn lists(&self, resource: &str) -> usize {
        self.collection(resource).lists.load(Ordering::SeqCst)
    }

    /// How many watches of `resource` (`secrets` or `serviceaccounts`) were started.
    pub fn watches(&self, resource: &str) -> usize {
        self.collection(resource).watches.load(Ordering::SeqCst)
    }

    fn collection(&self, resource: &str) -> &Collection {
        match resource {
            "secrets" => &self.state.secrets,
            "serviceaccounts" => &self.state.service_accounts,
            other => panic!("the fake has no collection {other}"),
        }
    }

    fn put(&self, collection: &Collection, mut object: Value) {
        let revision = self.state.revision.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        object["metadata"]["uid"] = json!(format!("uid-{revision}"));
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap()
                .to_string(),
            object["metadata"]["name"].as_str().unwrap().to_string(),
        );
        let existed = (collection.objects.lock().unwrap())
            .insert(key, object.clone())
            .is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        announce(collection, json!({"type": kind, "object": object}));
    }
}

impl KubeFake {
    /// Every `events.k8s.io/v1` Event written, in order of creation, as last patched.
    pub fn events(&self) -> Vec<Value> {
        self.state.events.lock().unwrap().clone()
    }

    /// How many Event PATCHes were received (including those answered 404).
    pub fn event_patches(&self) -> usize {
        self.state.event_patches.load(Ordering::SeqCst)
    }

    /// Removes every Event, as their TTL does; a later PATCH of one is answered 404.
    pub fn expire_events(&self) {
        self.state.events.lock().unwrap().clear();
    }
}

fn announce(collection: &Collection, event: Value) {
    (collection.watchers.lock().unwrap()).retain(|w| w.send(event.clone()).is_ok());
}

/// The ConfigMap data kube-apiserver publishes for a cluster whose client CA is `client_ca`
/// and front-proxy CA `front_proxy_ca`, allowing `allowed_names`.
pub fn authentication_config_map(
    client_ca: &TestCa,
    front_proxy_ca: &TestCa,
    allowed_names: &[&str],
) -> BTreeMap<String, String> {
    let text = |pem: &[u8]| String::from_utf8(pem.to_vec()).unwrap();
    BTreeMap::from([
        ("client-ca-file".into(), text(client_ca.cert_pem())),
        (
            "requestheader-client-ca-file".into(),
            text(front_proxy_ca.cert_pem()),
        ),
        (
            "requestheader-allowed-names".into(),
            serde_json::to_string(allowed_names).unwrap(),
        ),
        (
            "requestheader-username-headers".into(),
            "[\"X-Remote-User\"]".into(),
        ),
        (
            "requestheader-group-headers".into(),
            "[\"X-Remote-Group\"]".into(),
        ),
        (
            "requestheader-extra-headers-prefix".into(),
            "[\"X-Remote-Extra-\"]".into(),
        ),
    ])
}

fn authorized(state: &FakeState, headers: &HeaderMap) -> bool {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {CLIENT_TOKEN}"));
    if !ok {
        state.unauthorized.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        ),
    )
        .into_response()
}

async fn token_review(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::Json(mut review): axum::Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    state.token_reviews.fetch_add(1, Ordering::SeqCst);
    let token = review["spec"]["token"].as_str().unwrap_or("").to_string();
    let user = state.tokens.lock().unwrap().get(&token).cloned();
    review["status"] = match user {
        Some(user) => json!({"authenticated": true, "user": user}),
        None => json!({"authenticated": false, "error": "token not found"}),
    };
    axum::Json(review).into_response()
}

async fn subject_access_review(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::Json(mut review): axum::Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let spec = review["spec"].clone();
    state.reviews.lock().unwrap().push(spec.clone());
    let policy = state.policy.lock().unwrap().clone();
    review["status"] = if policy.decide(&spec) {
        json!({"allowed": true, "reason": policy.allow_reason})
    } else {
        json!({"allowed": false, "reason": policy.deny_reason})
    };
    axum::Json(review).into_response()
}

async fn config_maps(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let wanted = query.get("fieldSelector").map(String::as_str)
        == Some("metadata.name=extension-apiserver-authentication");
    assert!(
        wanted,
        "the fake serves only the authentication ConfigMap: {query:?}"
    );
    let current = state.config_map.lock().unwrap().clone();
    let revision = state.revision.load(Ordering::SeqCst);
    if query.get("watch").map(String::as_str) != Some("true") {
        return axum::Json(json!({
            "apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": revision.to_string()},
            "items": current.into_iter().collect::<Vec<_>>(),
        }))
        .into_response();
    }
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if let Some(object) = current
        && from < revision
    {
        let _ = sender.send(json!({"type": "MODIFIED", "object": object}));
    }
    state.watchers.lock().unwrap().push(sender);
    watch_response(receiver)
}

async fn namespaces(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        let revision = state.revision.load(Ordering::SeqCst);
        let items: Vec<Value> = state.namespaces.lock().unwrap().values().cloned().collect();
        return axum::Json(json!({
            "apiVersion": "v1", "kind": "NamespaceList",
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        }))
        .into_response();
    }
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Value>();
    // Changes after `from` are replayed (as MODIFIED), as a watch from a resourceVersion does.
    let namespaces = state.namespaces.lock().unwrap();
    for object in namespaces.values() {
        let version: u64 = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version > from {
            let _ = sender.send(json!({"type": "MODIFIED", "object": object}));
        }
    }
    state.namespace_watchers.lock().unwrap().push(sender);
    drop(namespaces);
    watch_response(receiver)
}

async fn namespace(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    *state
        .namespace_gets
        .lock()
        .unwrap()
        .entry(name.clone())
        .or_default() += 1;
    match state.namespaces.lock().unwrap().get(&name).cloned() {
        Some(object) => axum::Json(object).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("namespaces \"{name}\" not found"), "reason": "NotFound",
                "details": {"name": name, "kind": "namespaces"}, "code": 404}),
            ),
        )
            .into_response(),
    }
}

async fn create_event(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::extract::Path(namespace): axum::extract::Path<String>,
    axum::Json(mut event): axum::Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    assert_eq!(event["metadata"]["namespace"], json!(namespace), "{event}");
    let revision = state.revision.fetch_add(1, Ordering::SeqCst) + 1;
    event["metadata"]["resourceVersion"] = json!(revision.to_string());
    state.events.lock().unwrap().push(event.clone());
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

async fn patch_event(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    body: String,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    state.event_patches.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/merge-patch+json")
    );
    let patch: Value = serde_json::from_str(&body).unwrap();
    let mut events = state.events.lock().unwrap();
    let found = events.iter_mut().find(|e| {
        e["metadata"]["namespace"] == json!(namespace) && e["metadata"]["name"] == json!(name)
    });
    match found {
        Some(event) => {
            merge_patch(event, &patch);
            axum::Json(event.clone()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("events.events.k8s.io \"{name}\" not found"),
                "reason": "NotFound", "code": 404}),
            ),
        )
            .into_response(),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in patch {
        if value.is_null() {
            target.as_object_mut().unwrap().remove(key);
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}

async fn secrets(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(&state, &state.secrets, "SecretList", &headers, &query)
}

async fn service_accounts(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list_or_watch(
        &state,
        &state.service_accounts,
        "ServiceAccountList",
        &headers,
        &query,
    )
}

/// A list of `collection`, or a watch replaying the objects changed after `resourceVersion`
/// (as `MODIFIED`) and then streaming changes.
fn list_or_watch(
    state: &FakeState,
    collection: &Collection,
    list_kind: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Response {
    if !authorized(state, headers) {
        return unauthorized();
    }
    let objects = collection.objects.lock().unwrap();
    if query.get("watch").map(String::as_str) != Some("true") {
        collection.lists.fetch_add(1, Ordering::SeqCst);
        let revision = state.revision.load(Ordering::SeqCst);
        return axum::Json(json!({
            "apiVersion": "v1", "kind": list_kind,
            "metadata": {"resourceVersion": revision.to_string()},
            "items": objects.values().cloned().collect::<Vec<_>>(),
        }))
        .into_response();
    }
    collection.watches.fetch_add(1, Ordering::SeqCst);
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Value>();
    for object in objects.values() {
        let version: u64 = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version > from {
            let _ = sender.send(json!({"type": "MODIFIED", "object": object}));
        }
    }
    collection.watchers.lock().unwrap().push(sender);
    drop(objects);
    watch_response(receiver)
}

/// A line-delimited watch answer streaming the events sent to `receiver`.
fn watch_response(receiver: tokio::sync::mpsc::UnboundedReceiver<Value>) -> Response {
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        let line = format!("{event}\n");
        Some((Ok::<_, std::io::Error>(line), receiver))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
