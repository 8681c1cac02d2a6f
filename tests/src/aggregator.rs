//! A test front proxy that behaves as kube-aggregator does for an APIService
//! (`kube-aggregator/pkg/apiserver/handler_proxy.go`, client-go's `SetAuthProxyHeaders`): it
//! authenticates the user itself (a client certificate from its user CA: CN = user, O =
//! groups, plus `system:authenticated`), drops the `Authorization` header and any `X-Remote-*`
//! headers the client sent, and forwards the request over TLS with its own front-proxy client
//! certificate, `X-Remote-User`, one `X-Remote-Group` per group and `X-Remote-Extra-<key>`
//! (key percent-encoded). Responses, watches included, stream back unchanged. A request
//! without a user certificate is answered 401 here, as kube-apiserver would.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::TryStreamExt;

use crate::https::{ClientIdentity, HttpsServer};
use crate::pki::TestCa;

/// Extra attributes the proxy adds for every user (as kube-apiserver adds a credential id).
pub const EXTRA_KEY: &str = "authentication.kubernetes.io/credential-id";

#[derive(Clone, Debug)]
struct Forward {
    client: reqwest::Client,
    backend: String,
}

/// The running front proxy.
#[derive(Debug)]
pub struct Aggregator {
    server: HttpsServer,
    ca: TestCa,
}

impl Aggregator {
    /// Starts a proxy forwarding to `backend` (`https://127.0.0.1:<port>`), trusting
    /// `backend_ca` (PEM file) for its serving certificate and presenting `proxy_identity`
    /// (`(cert_pem, key_pem)`, the front-proxy client certificate).
    ///
    /// # Panics
    /// On certificate failures.
    pub fn start(backend: &str, backend_ca: &Path, proxy_identity: (Vec<u8>, Vec<u8>)) -> Self {
        let ca = TestCa::with_name("aggregator CA");
        let (cert, key) = ca.issue_server(&["127.0.0.1", "localhost"]);
        let client = reqwest::Client::builder()
            .use_native_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(backend_ca).unwrap()).unwrap(),
            )
            .identity(
                reqwest::Identity::from_pkcs8_pem(&proxy_identity.0, &proxy_identity.1).unwrap(),
            )
            .build()
            .unwrap();
        let router = Router::new().fallback(forward).with_state(Forward {
            client,
            backend: backend.trim_end_matches('/').to_string(),
        });
        let server = HttpsServer::start(router, &cert, &key, Some(ca.cert_pem()));
        Self { server, ca }
    }

    /// The proxy's URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Writes a kubeconfig for `user` in `groups` (a client certificate from the proxy's user
    /// CA) into `dir` and returns its path.
    ///
    /// # Panics
    /// On file failures.
    pub fn kubeconfig(&self, dir: &Path, user: &str, groups: &[&str]) -> PathBuf {
        let (cert, key) = self.ca.issue_client(user, groups);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let path = dir.join(format!("{user}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: aggregator\nclusters:\n- name: aggregator\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: aggregator\n  context:\n    cluster: aggregator\n    user: {user}\n    namespace: default\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
                self.url(),
                b64(self.ca.cert_pem()),
                b64(&cert),
                b64(&key)
            ),
        )
        .unwrap();
        path
    }

    /// A blocking HTTP client that authenticates to the proxy as `user` in `groups`.
    ///
    /// # Panics
    /// On certificate failures.
    pub fn client(&self, user: &str, groups: &[&str]) -> reqwest::blocking::Client {
        let (cert, key) = self.ca.issue_client(user, groups);
        reqwest::blocking::Client::builder()
            .use_native_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.cert_pem()).unwrap())
            .identity(reqwest::Identity::from_pkcs8_pem(&cert, &key).unwrap())
            .build()
            .unwrap()
    }
}

async fn forward(State(forward): State<Forward>, request: Request) -> Response {
    let Some(user) = request.extensions().get::<ClientIdentity>().cloned() else {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    };
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut outgoing = forward
        .client
        .request(parts.method.clone(), format!("{}{path}", forward.backend));
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        let dropped = lower == "authorization"
            || lower == "host"
            || lower == "connection"
            || lower.starts_with("x-remote-");
        if !dropped {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing = outgoing.header("X-Remote-User", &user.common_name);
    for group in user
        .organizations
        .iter()
        .map(String::as_str)
        .chain(["system:authenticated"])
    {
        outgoing = outgoing.header("X-Remote-Group", group);
    }
    let key = EXTRA_KEY.replace('/', "%2F");
    outgoing = outgoing.header(
        format!("X-Remote-Extra-{key}"),
        format!("X509SHA256={}", user.common_name),
    );
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let response = match outgoing.body(body).send().await {
        Ok(response) => response,
        Err(error) => {
            return (StatusCode::BAD_GATEWAY, format!("proxy error: {error}")).into_response();
        }
    };
    let mut builder = Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        if name != "transfer-encoding" && name != "connection" {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
    }
    let stream = response.bytes_stream().map_err(std::io::Error::other);
    builder.body(Body::from_stream(stream)).unwrap()
}
