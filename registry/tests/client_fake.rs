//! The client against an in-process fake registry with knobs for misbehaviour the real registry
//! never shows: wrong blob bytes, throttling with `Retry-After`, `Link` pagination, refused
//! chunked uploads, HEAD without digest, slow answers, and revoked tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use registry::client::{Client, ClientConfig, Credentials, Error, RetryPolicy};
use registry::manifest::{Descriptor, media_types};
use registry::{Digest, Reference};

const BLOB: &[u8] = b"the real blob content";
const EVIL: &[u8] = b"the evil blob content";
const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

#[derive(Clone, Copy, Default)]
struct Knobs {
    /// Serve other bytes of the same length for the blob.
    wrong_blob: bool,
    /// Serve one byte more than announced (no Content-Length).
    long_blob: bool,
    /// Answer this many requests with 429 + `Retry-After: 1` first.
    throttle: usize,
    /// Answer every request with 503.
    unavailable: bool,
    /// Refuse `PATCH` with 405.
    refuse_chunks: bool,
    /// HEAD on manifests answers without `Docker-Content-Digest`.
    head_without_digest: bool,
    /// Wait this long before answering.
    delay: Option<Duration>,
    /// Require `Bearer tok-<generation>`; each successful manifest GET bumps the generation.
    revoke_tokens: bool,
}

#[derive(Default)]
struct Fake {
    knobs: Knobs,
    requests: AtomicUsize,
    token_requests: AtomicUsize,
    generation: AtomicUsize,
    uploads: std::sync::Mutex<HashMap<String, Vec<u8>>>,
    log: std::sync::Mutex<Vec<String>>,
    proxy_authorization: std::sync::Mutex<Option<String>>,
}

async fn serve(knobs: Knobs) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        knobs,
        ..Fake::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), fake)
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = fake.requests.fetch_add(1, Ordering::SeqCst);
    fake.log
        .lock()
        .unwrap()
        .push(format!("{method} {}", uri.path()));
    if let Some(v) = headers
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        *fake.proxy_authorization.lock().unwrap() = Some(v.to_owned());
    }
    let k = fake.knobs;
    if let Some(d) = k.delay {
        tokio::time::sleep(d).await;
    }
    if n < k.throttle {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response();
    }
    if k.unavailable {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let path = uri.path().to_owned();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if path == "/token" {
        fake.token_requests.fetch_add(1, Ordering::SeqCst);
        let token = format!("tok-{}", fake.generation.load(Ordering::SeqCst));
        return axum::Json(serde_json::json!({"token": token, "expires_in": 300})).into_response();
    }
    if k.revoke_tokens {
        let want = format!("Bearer tok-{}", fake.generation.load(Ordering::SeqCst));
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(want.as_str())
        {
            let challenge = format!(r#"Bearer realm="http://{host}/token",service="fake""#);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                "{}",
            )
                .into_response();
        }
    }
    let blob_digest = Digest::sha256_of(BLOB).to_string();
    match (method.as_str(), path.as_str()) {
        ("GET", p) if p == format!("/v2/app/blobs/{blob_digest}") => {
            if k.long_blob {
                let stream = futures::stream::iter([
                    Ok::<_, std::io::Error>(Bytes::from_static(BLOB)),
                    Ok(Bytes::from_static(b"!")),
                ]);
                return Response::new(Body::from_stream(stream));
            }
            let bytes = if k.wrong_blob { EVIL } else { BLOB };
            bytes.into_response()
        }
        ("HEAD", p) if p.starts_with("/v2/app/blobs/") => StatusCode::NOT_FOUND.into_response(),
        ("HEAD" | "GET", "/v2/app/manifests/v1") => {
            let mut h = vec![(header::CONTENT_TYPE, media_types::OCI_MANIFEST.to_owned())];
            if !(method == Method::HEAD && k.head_without_digest) {
                h.push((
                    header::HeaderName::from_static("docker-content-digest"),
                    Digest::sha256_of(MANIFEST).to_string(),
                ));
            }
            if method == Method::GET && k.revoke_tokens {
                fake.generation.fetch_add(1, Ordering::SeqCst);
            }
            let mut resp = (StatusCode::OK, MANIFEST).into_response();
            for (name, value) in h {
                resp.headers_mut().insert(name, value.parse().unwrap());
            }
            if method == Method::HEAD {
                *resp.body_mut() = Body::empty();
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, MANIFEST.len().into());
            }
            resp
        }
        ("GET", "/v2/app/tags/list") => {
            let q = query(&uri);
            let size: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(3);
            let all: Vec<String> = (0..10).map(|i| format!("t{i:02}")).collect();
            let start = q.get("last").map_or(0, |l| {
                all.iter().position(|t| t == l).map_or(all.len(), |i| i + 1)
            });
            let page: Vec<&String> = all.iter().skip(start).take(size).collect();
            let mut resp =
                axum::Json(serde_json::json!({"name": "app", "tags": page})).into_response();
            if start + size < all.len() {
                let link = format!(
                    r#"</v2/app/tags/list?n={size}&last={}>; rel="next""#,
                    page.last().unwrap()
                );
                resp.headers_mut()
                    .insert(header::LINK, link.parse().unwrap());
            }
            resp
        }
        ("GET", p) if p.starts_with("/v2/app/referrers/") => {
            // Two pages; the server ignores `artifactType` so the client must filter.
            let second = query(&uri).contains_key("page");
            let (kind, digest) = if second {
                ("application/vnd.example.sbom", Digest::sha256_of(b"sbom"))
            } else {
                (
                    "application/vnd.dev.cosign.artifact.sig.v1+json",
                    Digest::sha256_of(b"sig"),
                )
            };
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_types::OCI_INDEX,
                "manifests": [{
                    "mediaType": media_types::OCI_MANIFEST,
                    "digest": digest.to_string(),
                    "size": 10,
                    "artifactType": kind,
                }],
            });
            let mut resp = axum::Json(body).into_response();
            if !second {
                let link = format!(r#"<{p}?page=2>; rel="next""#);
                resp.headers_mut()
                    .insert(header::LINK, link.parse().unwrap());
            }
            resp
        }
        ("POST", "/v2/app/blobs/uploads/") => {
            let id = format!("/upload/{n}");
            fake.uploads.lock().unwrap().insert(id.clone(), Vec::new());
            (
                StatusCode::ACCEPTED,
                [(header::LOCATION, format!("{id}?_state=x"))],
            )
                .into_response()
        }
        ("PATCH", p) if p.starts_with("/upload/") => {
            if k.refuse_chunks {
                return StatusCode::METHOD_NOT_ALLOWED.into_response();
            }
            let mut uploads = fake.uploads.lock().unwrap();
            let Some(buf) = uploads.get_mut(p) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            buf.extend_from_slice(&body);
            (
                StatusCode::ACCEPTED,
                [(header::LOCATION, format!("{p}?_state=y"))],
            )
                .into_response()
        }
        ("PUT", p) if p.starts_with("/upload/") => {
            let mut uploads = fake.uploads.lock().unwrap();
            let Some(buf) = uploads.get_mut(p) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            buf.extend_from_slice(&body);
            let want = query(&uri).get("digest").cloned().unwrap_or_default();
            if Digest::sha256_of(buf).to_string() == want {
                StatusCode::CREATED.into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    r#"{"errors":[{"code":"DIGEST_INVALID","message":"digest invalid"}]}"#,
                )
                    .into_response()
            }
        }
        ("DELETE", _) => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#,
        )
            .into_response(),
    }
}

fn client_with(retry: RetryPolicy, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        insecure: true,
        retry,
        timeout,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn client() -> Client {
    client_with(
        RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        },
        Duration::from_secs(10),
    )
}

fn app(host: &str) -> Reference {
    format!("{host}/app:v1").parse().unwrap()
}

async fn read_blob(client: &Client, r: &Reference) -> Result<Vec<u8>, Error> {
    let d = Descriptor::new(
        "application/octet-stream",
        Digest::sha256_of(BLOB),
        BLOB.len() as u64,
    );
    let mut s = client.get_blob(r, &d).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

#[tokio::test]
async fn blob_verification_catches_bad_bytes() {
    for (knobs, want) in [
        (Knobs::default(), "ok"),
        (
            Knobs {
                wrong_blob: true,
                ..Knobs::default()
            },
            "digest",
        ),
        (
            Knobs {
                long_blob: true,
                ..Knobs::default()
            },
            "size",
        ),
    ] {
        let (host, _) = serve(knobs).await;
        let got = read_blob(&client(), &app(&host)).await;
        match (want, got) {
            ("ok", Ok(bytes)) => assert_eq!(bytes, BLOB),
            (
                "digest",
                Err(Error::DigestMismatch {
                    expected, actual, ..
                }),
            ) => {
                assert_eq!(expected, Digest::sha256_of(BLOB));
                assert_eq!(actual, Digest::sha256_of(EVIL));
            }
            (
                "size",
                Err(Error::SizeMismatch {
                    expected, actual, ..
                }),
            ) => {
                assert_eq!(
                    (expected, actual),
                    (BLOB.len() as u64, BLOB.len() as u64 + 1)
                );
            }
            (want, got) => panic!("want {want}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn throttling_is_retried_after_the_servers_delay() {
    let (host, fake) = serve(Knobs {
        throttle: 2,
        ..Knobs::default()
    })
    .await;
    let started = std::time::Instant::now();
    let d = client().resolve(&app(&host)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(d.digest, Digest::sha256_of(MANIFEST));
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
    // Two 429s with `Retry-After: 1`: the client waited the server's delay twice, not its own
    // 10 ms backoff.
    assert!(took >= Duration::from_secs(2), "retried after {took:?}");

    // With a single attempt, 429 surfaces as a retryable status error.
    let (host, _) = serve(Knobs {
        throttle: 5,
        ..Knobs::default()
    })
    .await;
    let once = client_with(
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        Duration::from_secs(10),
    );
    let err = once.resolve(&app(&host)).await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 429, .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_max_attempts() {
    let (host, fake) = serve(Knobs {
        unavailable: true,
        ..Knobs::default()
    })
    .await;
    let err = client().list_tags(&app(&host)).await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 503, .. }), "{err:?}");
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn every_request_is_bounded_by_the_timeout() {
    let (host, _) = serve(Knobs {
        delay: Some(Duration::from_secs(30)),
        ..Knobs::default()
    })
    .await;
    let c = client_with(
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        Duration::from_millis(300),
    );
    let err = c.resolve(&app(&host)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn tags_follow_link_pagination() {
    let (host, fake) = serve(Knobs::default()).await;
    let tags = client().list_tags(&app(&host)).await.unwrap();
    assert_eq!(
        tags,
        (0..10).map(|i| format!("t{i:02}")).collect::<Vec<_>>()
    );
    assert_eq!(fake.requests.load(Ordering::SeqCst), 4);
    let tags = client()
        .list_tags_paged(&app(&host), Some(4))
        .await
        .unwrap();
    assert_eq!(tags.len(), 10);
}

#[tokio::test]
async fn head_without_digest_falls_back_to_get() {
    let (host, fake) = serve(Knobs {
        head_without_digest: true,
        ..Knobs::default()
    })
    .await;
    let d = client().resolve(&app(&host)).await.unwrap();
    assert_eq!(d.digest, Digest::sha256_of(MANIFEST));
    assert_eq!(d.size, MANIFEST.len() as u64);
    assert_eq!(
        *fake.log.lock().unwrap(),
        ["HEAD /v2/app/manifests/v1", "GET /v2/app/manifests/v1"]
    );
}

#[tokio::test]
async fn uploads_are_chunked_or_monolithic_when_chunks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 13) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let digest = Digest::sha256_of(&data);
    for refuse_chunks in [false, true] {
        let (host, fake) = serve(Knobs {
            refuse_chunks,
            ..Knobs::default()
        })
        .await;
        Client::new(ClientConfig {
            insecure: true,
            upload_chunk_bytes: 8 * 1024 * 1024,
            ..ClientConfig::default()
        })
        .unwrap()
        .push_blob_file(&app(&host), &path, &digest, data.len() as u64, None)
        .await
        .unwrap();
        let log = fake.log.lock().unwrap().clone();
        let patches = log.iter().filter(|l| l.starts_with("PATCH")).count();
        let posts = log.iter().filter(|l| l.starts_with("POST")).count();
        if refuse_chunks {
            assert_eq!((patches, posts), (1, 2), "{log:?}");
        } else {
            assert_eq!((patches, posts), (2, 1), "{log:?}");
        }
        assert!(log.last().unwrap().starts_with("PUT /upload/"), "{log:?}");
    }
}

#[tokio::test]
async fn a_revoked_token_is_replaced_on_401() {
    let (host, fake) = serve(Knobs {
        revoke_tokens: true,
        ..Knobs::default()
    })
    .await;
    let c = Client::new(ClientConfig {
        insecure: true,
        credentials: Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        },
        ..ClientConfig::default()
    })
    .unwrap();
    // Each manifest GET revokes the token it was made with; the next call must re-authenticate.
    for round in 1..=3 {
        c.get_manifest(&app(&host)).await.unwrap();
        assert_eq!(fake.token_requests.load(Ordering::SeqCst), round);
    }
}

#[tokio::test]
async fn requests_go_through_the_configured_proxy_with_its_credentials() {
    use base64::Engine as _;
    // The fake answers proxied (absolute-form) requests for any host, so it stands in for a proxy.
    let (host, fake) = serve(Knobs::default()).await;
    let c = Client::new(ClientConfig {
        insecure: true,
        proxy: Some(registry::client::ProxyConfig {
            address: format!("http://{host}"),
            username: Some("proxyuser".into()),
            password: Some("proxypass".into()),
        }),
        ..ClientConfig::default()
    })
    .unwrap();
    let r: Reference = "registry.invalid:5000/app:v1".parse().unwrap();
    assert_eq!(
        c.resolve(&r).await.unwrap().digest,
        Digest::sha256_of(MANIFEST)
    );
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("proxyuser:proxypass")
    );
    assert_eq!(
        fake.proxy_authorization.lock().unwrap().as_deref(),
        Some(want.as_str())
    );

    let bad = Client::new(ClientConfig {
        proxy: Some(registry::client::ProxyConfig {
            address: "::not a url::".into(),
            username: None,
            password: None,
        }),
        ..ClientConfig::default()
    })
    .unwrap_err();
    assert!(matches!(bad, Error::InvalidConfig { .. }), "{bad:?}");
}

#[tokio::test]
async fn referrers_are_paged_and_filtered_by_artifact_type() {
    let (host, _) = serve(Knobs::default()).await;
    let subject = Digest::sha256_of(MANIFEST);
    let all = client()
        .referrers(&app(&host), &subject, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.manifests.len(), 2);
    let sboms = client()
        .referrers(&app(&host), &subject, Some("application/vnd.example.sbom"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sboms.manifests.len(), 1);
    assert_eq!(sboms.manifests[0].digest, Digest::sha256_of(b"sbom"));
}
