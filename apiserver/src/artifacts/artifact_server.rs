//! Artifact downloads over plain HTTP (`--artifact-listen`), laid out as Flux's
//! source-controller file server (`flux-source-controller.md` §3.1):
//! `GET /<kind>/<namespace>/<name>/<file>` streams `<data-dir>/artifacts/<kind>/<namespace>/<name>/<file>`
//! (including the `latest.tar.gz` link). No TLS and no authentication, as in Flux: bind it to an
//! address only trusted consumers reach. Anything that is not such a path is 404.
//!
//! [`open`] and [`response`] are shared with the `artifact` subresource.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use storage::ArtifactStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

async fn serve_file(State(store): State<ArtifactStore>, Path(path): Path<String>) -> Response {
    match open(&store, &path, None).await {
        Ok((file, size, digest)) => response(file, size, Some(&digest)),
        Err(e) if e.status_code() == 503 => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        Err(_) => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}

/// The plain-HTTP router over `store`.
pub fn router(store: ArtifactStore) -> Router {
    Router::new()
        .route("/{*path}", get(serve_file))
        .route("/", get(|| async { "ok" }))
        .with_state(store)
}

/// Serves `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, store: ArtifactStore, shutdown: CancellationToken) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "serving artifacts over plain HTTP");
    if let Err(error) = axum::serve(listener, router(store))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "artifact listener failed");
    }
}
