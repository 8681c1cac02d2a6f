//! Artifact downloads over plain HTTP (`--artifact-listen`), laid out as Flux's
//! source-controller file server (`flux-source-controller.md` §3.1):
//! `GET /<kind>/<namespace>/<name>/<file>` streams `<data-dir>/artifacts/<kind>/<namespace>/<name>/<file>`
//! (including the `latest.tar.gz` link). No TLS and no authentication, as in Flux: bind it to an
//! address only trusted consumers reach. Anything that is not such a path is 404.
//!
//! With several replicas ([`crate::artifacts::peer`]), a replica asked for an object's current
//! artifact (or `latest.tar.gz`) that it does not hold fetches it from the leader first.
//!
//! [`open`] and [`response`] are shared with the `artifact` subresource.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use storage::ArtifactStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::artifacts::peer::{self, Peers};

/// Opens a stored artifact by its relative path after checking its content against `expected`
/// (`status.artifact.digest`), or, when `None`, the digest recorded when it was written
/// ([`ArtifactStore::open_verified`]): bytes that do not match are never served. Returns the
/// file, its size and its digest. File IO runs on the blocking pool.
///
/// # Errors
/// The store's error: an invalid path, a missing file ([`storage::Error::is_artifact_missing`]),
/// or a digest that does not match (503); [`storage::Error::Closed`] if the task failed.
pub async fn open(
    store: &ArtifactStore,
    relative: &str,
    expected: Option<&str>,
) -> Result<(tokio::fs::File, u64, String), storage::Error> {
    let store = store.clone();
    let relative = relative.to_owned();
    let expected = expected.map(str::to_owned);
    let artifact =
        tokio::task::spawn_blocking(move || store.open_verified(&relative, expected.as_deref()))
            .await
            .map_err(|_| storage::Error::Closed)??;
    let file = tokio::fs::File::from_std(artifact.file);
    Ok((file, artifact.size, artifact.digest))
}

/// A streaming `200` response: `Content-Type: application/gzip`, `Content-Length`, and, when
/// known, `ETag: "<digest>"`.
pub fn response(file: tokio::fs::File, size: u64, digest: Option<&str>) -> Response {
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/gzip")
        .header(header::CONTENT_LENGTH, size);
    if let Some(d) = digest {
        builder = builder.header(header::ETAG, format!("\"{d}\""));
    }
    builder.body(body).expect("valid response")
}

/// The listener's state: the files, and in a replicated deployment the peers to fetch a
/// missing artifact from.
#[derive(Clone, Debug)]
struct ListenerState {
    store: ArtifactStore,
    peers: Option<Arc<Peers>>,
}

async fn serve_file(
    State(state): State<ListenerState>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    // A request from another replica is answered from this disk only (no fetch loops).
    let peers = state
        .peers
        .as_ref()
        .filter(|_| !headers.contains_key(peer::PEER_HEADER));
    let latest = path.ends_with("/latest.tar.gz");
    if peers.is_none() || !latest {
        match open(&state.store, &path, None).await {
            Ok((file, size, digest)) => return response(file, size, Some(&digest)),
            Err(e) if peers.is_some() && e.is_artifact_missing() => {}
            Err(e) if e.status_code() == 503 => {
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            }
            Err(_) => return not_found(),
        }
    }
    match peers {
        Some(peers) => serve_replicated(&state.store, peers, &path, latest).await,
        None => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

/// In a replicated deployment: `path` is the object's current artifact (or its
/// `latest.tar.gz`), served from this disk when it holds it with `status.artifact.digest`,
/// else fetched from the leader ([`Peers::fetch`]); 503 with `Retry-After` when neither works.
async fn serve_replicated(
    store: &ArtifactStore,
    peers: &Peers,
    path: &str,
    latest: bool,
) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    let [kind, namespace, name, _] = parts[..] else {
        return not_found();
    };
    let Some((current, digest)) = peers.current(kind, namespace, name).await else {
        return not_found();
    };
    if !latest && current != path {
        return not_found();
    }
    let opened = match open(store, &current, Some(&digest)).await {
        Err(e) if e.is_artifact_missing() => match peers.fetch(&current, &digest).await {
            Ok(()) => open(store, &current, Some(&digest)).await,
            Err(error) => {
                tracing::warn!(%error, path = %current, "artifact not held and not fetched");
                Err(e)
            }
        },
        other => other,
    };
    match opened {
        Ok((file, size, _)) => response(file, size, Some(&digest)),
        Err(e) => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                http::HeaderValue::from(peer::RETRY_AFTER_SECONDS),
            );
            response
        }
    }
}

/// The plain-HTTP router over `store`; with `peers` (several replicas), a missing current
/// artifact is fetched from the leader ([`serve_replicated`]).
pub fn router(store: ArtifactStore, peers: Option<Arc<Peers>>) -> Router {
    Router::new()
        .route("/{*path}", get(serve_file))
        .route("/", get(|| async { "ok" }))
        .with_state(ListenerState { store, peers })
}

/// Serves `listener` until `shutdown` is cancelled ([`router`]).
pub async fn serve(
    listener: TcpListener,
    store: ArtifactStore,
    peers: Option<Arc<Peers>>,
    shutdown: CancellationToken,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "serving artifacts over plain HTTP");
    if let Err(error) = axum::serve(listener, router(store, peers))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "artifact listener failed");
    }
}
