//! `list artifacts` follows `Link` pagination across more than 200 tags. Debian's distribution
//! 2.8 ignores `?n=`, so a small front end of the test's own serves the tag list in pages of at
//! most `n` (as distribution 3 and most hosted registries do) and redirects every other request
//! to the real registry.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{push, sourcectl, testdata};
use test_support::registry::RegistryBuilder;

#[derive(Clone)]
struct Front {
    upstream: String,
    tags: Arc<Vec<String>>,
    pages_served: Arc<Mutex<Vec<String>>>,
}

async fn tags_page(
    State(front): State<Front>,
    Path(repo): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let n: usize = q
        .get("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
        .min(50);
    let start = q.get("last").map_or(0, |last| {
        front
            .tags
            .iter()
            .position(|t| t == last)
            .map_or(0, |i| i + 1)
    });
    let page: Vec<&String> = front.tags.iter().skip(start).take(n).collect();
    front
        .pages_served
        .lock()
        .unwrap()
        .push(format!("n={n} last={:?}", q.get("last")));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if start + n < front.tags.len() {
        let last = page.last().unwrap();
        let link = format!("</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\"");
        headers.insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    }
    let body = serde_json::json!({ "name": repo, "tags": page }).to_string();
    (StatusCode::OK, headers, body).into_response()
}

async fn redirect(State(front): State<Front>, uri: Uri) -> Response {
    let location = format!(
        "{}{}",
        front.upstream,
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// Starts the front end on a loopback port; returns its `host:port`.
fn start_front(front: Front) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route("/v2/{*rest}", get(dispatch).head(redirect))
                .with_state(front);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr.to_string()
}

/// `/v2/<repo>/tags/list` pages, everything else redirects.
async fn dispatch(
    state: State<Front>,
    Path(rest): Path<String>,
    query: Query<HashMap<String, String>>,
    uri: Uri,
) -> Response {
    match rest.strip_suffix("/tags/list") {
        Some(repo) => tags_page(state, Path(repo.to_owned()), query).await,
        None => redirect(state, uri).await,
    }
}

#[test]
fn list_follows_link_pagination_over_more_than_200_tags() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v0.0.0", registry.oci_url("paged/app"));
    push(&url, &testdata("podinfo-kustomize"), &[]);
    let mut tags: Vec<String> = (0..250)
        .map(|i| format!("v1.{}.{}", i / 10, i % 10))
        .collect();
    let run = sourcectl(&[
        "tag",
        "artifact",
        &url,
        "--tag",
        &tags.join(","),
        "--insecure-registry",
    ])
    .ok();
    assert_eq!(run.stderr.matches("✔ artifact tagged as").count(), 250);
    tags.push("v0.0.0".into());
    tags.sort();

    let front = Front {
        upstream: registry.url(),
        tags: Arc::new(tags),
        pages_served: Arc::default(),
    };
    let pages = front.pages_served.clone();
    let host = start_front(front);
    let run = sourcectl(&[
        "list",
        "artifacts",
        &format!("oci://{host}/paged/app"),
        "--filter-semver",
        ">=1.20.0",
        "--insecure-registry",
    ])
    .ok();
    let rows: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 50, "v1.20.0 … v1.24.9:\n{}", run.stdout);
    assert!(
        rows[0].starts_with(&format!("{host}/paged/app:v1.24.9\t")),
        "{}",
        rows[0]
    );
    let pages = pages.lock().unwrap().clone();
    assert_eq!(pages.len(), 6, "251 tags in pages of 50: {pages:?}");
    assert!(pages[1].contains("last=Some"), "{pages:?}");
}
