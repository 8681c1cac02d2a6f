//! The in-process server of the REST suites (`apiserver/tests/rest.rs`, `admission.rs`,
//! `watch_disconnect.rs`): the real router ([`apiserver::router::router_with`]) over the real
//! SQLite store and artifact store in a temp dir, driven with `tower`'s `oneshot`, or served on
//! a loopback port over plain HTTP when a test needs a real connection to cut. Authentication is
//! replaced by a fixed `system:masters` identity (real certificate and token authentication are
//! tested against the binary in the kubectl and e2e suites).
//!
//! Needs the `in-process` feature (it links the `apiserver` library).

use std::net::SocketAddr;
use std::sync::Arc;

use apiserver::auth::{Authenticator, MastersAuthorizer, UserInfo};
use apiserver::discovery::Documents;
use apiserver::router::{AppState, RouterConfig, router_with};
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use storage::{SqliteConfig, SqliteStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The collection URL of OCIRepositories in namespace `default` (API version `v1`).
pub const BASE: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";

/// Authenticates every request as `admin` in `system:masters`.
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

/// The router over a fresh store; the temp dir (database and artifacts) is removed on drop.
#[derive(Debug)]
pub struct InProcess {
    app: axum::Router,
    store: Arc<SqliteStore>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

/// A whole response: status, headers and the body read to its end.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON; the message holds the body.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Status` reason and message of an error reply, and the field of each of its
    /// `details.causes` (empty when there are none).
    ///
    /// # Panics
    /// When the body is not a `Status` object.
    pub fn status_object(&self) -> (String, String, Vec<String>) {
        let status = self.json();
        assert_eq!(status["kind"], "Status", "{status}");
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let fields = status["details"]["causes"]
            .as_array()
            .map(|causes| causes.iter().map(|c| text(&c["field"])).collect())
            .unwrap_or_default();
        (text(&status["reason"]), text(&status["message"]), fields)
    }
}

impl InProcess {
    /// The router with the default configuration (no admission, 60 s request timeout).
    pub async fn start() -> Self {
        Self::with_config(RouterConfig::default()).await
    }

    /// The router with `config` (e.g. a recording admission).
    ///
    /// # Panics
    /// When the store cannot be opened in a temp dir.
    pub async fn with_config(config: RouterConfig) -> Self {
        Self::with_store_config(config, SqliteConfig::default()).await
    }

    /// The router with `config` over a store opened with `store_config` (e.g. another
    /// per-watcher buffer).
    ///
    /// # Panics
    /// When the store cannot be opened in a temp dir.
    pub async fn with_store_config(config: RouterConfig, store_config: SqliteConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("db"), store_config)
            .await
            .expect("opening the store");
        let shutdown = CancellationToken::new();
        let state = AppState {
            store: store.clone(),
            authenticator: Arc::new(Admin),
            authorizer: Arc::new(MastersAuthorizer),
            documents: Arc::new(Documents::build()),
            shutdown: shutdown.clone(),
            artifacts: storage::ArtifactStore::open(dir.path()).expect("artifact store"),
            peers: None,
        };
        Self {
            app: router_with(state, config),
            store,
            shutdown,
            _dir: dir,
        }
    }

    /// The store behind the router (to count its watchers, or write behind the API's back).
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Sends one request through the router and reads the whole response.
    ///
    /// # Panics
    /// When the router or the body fails (it never should: errors are `Status` replies).
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let (status, headers, body) = self.open(method, uri, headers, body).await;
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("reading the body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends one request and returns the response with its body unread (a watch stream).
    ///
    /// # Panics
    /// When the router fails.
    pub async fn open(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (StatusCode, HeaderMap, Body) {
        let mut request = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("a valid request");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body)
    }

    /// `GET uri` with `Accept: accept`.
    pub async fn get(&self, uri: &str, accept: &str) -> Reply {
        self.send(Method::GET, uri, &[("accept", accept)], None)
            .await
    }

    /// `POST` of `object` (JSON) to [`BASE`].
    pub async fn create(&self, object: Value) -> Reply {
        self.send(
            Method::POST,
            BASE,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&object).expect("JSON")),
        )
        .await
    }

    /// Serves the router over plain HTTP on a free loopback port until the harness drops;
    /// returns the address.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (app, stop) = (self.app.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        addr
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A suspended `v1` OCIRepository `name` in `default` with label `app=<name>` (suspended, so
/// nothing would reconcile it even with a controller running).
pub fn repo(name: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"url": "oci://registry.example/podinfo", "interval": "5m", "ref": {"tag": "latest"}, "suspend": true}
    })
}
