//! The test token server (Docker token flow): `GET /token` with HTTP Basic or anonymous,
//! `POST /token` with `grant_type=password|refresh_token`; RS256 JWTs carrying an `x5c` chain
//! that the registry verifies against `auth.token.rootcertbundle`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::x509::X509;
use serde_json::json;

use super::{TOKEN_ISSUER, TOKEN_SERVICE, TokenAuth};

/// The in-process token server: a thread running a current-thread tokio runtime with axum.
#[derive(Debug)]
pub(super) struct TokenServer {
    addr: SocketAddr,
    pub(super) issued: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct TokenState {
    auth: TokenAuth,
    x5c: String,
    key: PKey<openssl::pkey::Private>,
    issued: Arc<AtomicUsize>,
}

impl TokenServer {
    pub(super) fn start(auth: TokenAuth, cert_pem: &[u8], key_pem: &[u8]) -> Self {
        let cert = X509::from_pem(cert_pem).expect("signing cert");
        let x5c = STANDARD.encode(cert.to_der().expect("der"));
        let key = PKey::private_key_from_pem(key_pem).expect("signing key");
        let issued = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(TokenState {
            auth,
            x5c,
            key,
            issued: issued.clone(),
        });
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("token server bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = Router::new()
                    .route("/token", get(token_get).post(token_post))
                    .with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        TokenServer {
            addr,
            issued,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub(super) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Who {
    User(String),
    Anonymous,
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"errors": [{"code": "UNAUTHORIZED", "message": message}]})),
    )
        .into_response()
}

async fn token_get(
    State(state): State<Arc<TokenState>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let who = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Who::Anonymous,
        Some(value) => {
            let decoded = value
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|s| s.split_once(':')) {
                Some((u, p)) if u == state.auth.username && p == state.auth.password => {
                    Who::User(u.to_owned())
                }
                _ => return unauthorized("invalid username or password"),
            }
        }
    };
    let scopes: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let service = query
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str())
        .unwrap_or(TOKEN_SERVICE);
    issue(&state, who, service, &scopes, false)
}

async fn token_post(State(state): State<Arc<TokenState>>, body: String) -> Response {
    let form: Vec<(String, String)> = url_decode_form(&body);
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let who = match get("grant_type").as_deref() {
        Some("refresh_token") => match (&state.auth.refresh_token, get("refresh_token")) {
            (Some(want), Some(got)) if *want == got => Who::User(state.auth.username.clone()),
            _ => return unauthorized("invalid refresh token"),
        },
        Some("password") => match (get("username"), get("password")) {
            (Some(u), Some(p)) if u == state.auth.username && p == state.auth.password => {
                Who::User(u)
            }
            _ => return unauthorized("invalid username or password"),
        },
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
    };
    let scopes: Vec<String> = get("scope")
        .map(|s| s.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    let service = get("service").unwrap_or_else(|| TOKEN_SERVICE.to_owned());
    issue(&state, who, &service, &scopes, true)
}

fn url_decode_form(body: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn issue(
    state: &TokenState,
    who: Who,
    service: &str,
    scopes: &[String],
    with_refresh: bool,
) -> Response {
    let mut access = Vec::new();
    for scope in scopes {
        let Some((kind_name, actions)) = scope.rsplit_once(':') else {
            continue;
        };
        let Some((kind, name)) = kind_name.split_once(':') else {
            continue;
        };
        let requested: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
        let granted: Vec<&str> = match who {
            Who::User(_) if state.auth.grants.is_empty() => requested,
            Who::User(_) => {
                let allowed: Vec<&String> = state
                    .auth
                    .grants
                    .iter()
                    .filter(|(repo, _)| kind == "repository" && repo == name)
                    .flat_map(|(_, actions)| actions)
                    .collect();
                requested
                    .into_iter()
                    .filter(|a| {
                        allowed
                            .iter()
                            .any(|g| g.as_str() == *a || g.as_str() == "*")
                    })
                    .collect()
            }
            Who::Anonymous if state.auth.anonymous_pull => {
                requested.into_iter().filter(|a| *a == "pull").collect()
            }
            Who::Anonymous => Vec::new(),
        };
        if !granted.is_empty() {
            access.push(json!({"type": kind, "name": name, "actions": granted}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let subject = match &who {
        Who::User(u) => u.clone(),
        Who::Anonymous => String::new(),
    };
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [state.x5c]});
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": service,
        "exp": now + state.auth.expires_in_secs,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("token-{n}-{now}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), &state.key).expect("signer");
    signer.update(signing_input.as_bytes()).expect("sign");
    let signature = URL_SAFE_NO_PAD.encode(signer.sign_to_vec().expect("sign"));
    let token = format!("{signing_input}.{signature}");
    let mut body: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    body.insert("token", json!(token));
    body.insert("access_token", json!(token));
    body.insert("expires_in", json!(state.auth.expires_in_secs));
    if with_refresh && let Some(r) = &state.auth.refresh_token {
        body.insert("refresh_token", json!(r));
    }
    axum::Json(body).into_response()
}
