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

/// Opens a stored artifact by its relative path; `None` when the path is invalid or the file is
/// missing. File IO runs on the blocking pool.
pub async fn open(store: &ArtifactStore, relative: &str) -> Option<(tokio::fs::File, u64)> {
    let store = store.clone();
    let relative = relative.to_owned();
    let (file, size) = tokio::task::spawn_blocking(move || store.open_read(&relative))
        .await
        .ok()?
        .ok()?;
    Some((tokio::fs::File::from_std(file), size))
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
    match open(&store, &path).await {
        Some((file, size)) => response(file, size, None),
        None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
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
