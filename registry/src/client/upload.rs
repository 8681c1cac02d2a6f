//! Blob uploads (distribution spec "Pushing blobs"): open a session with `POST`, send the file
//! monolithically or in `PATCH` chunks, close with `PUT ?digest=`.

use std::path::Path;

use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::response::status_error;
use super::transport::{Access, Payload, Req};
use super::{Client, Error, ProgressFn, Result};
use crate::digest::Digest;
use crate::reference::Reference;

/// The upload session URL from `Location`, resolved against the URL that answered (which
/// has the scheme an `insecure` registry was reached with).
pub(crate) fn location(resp: &Response, _request: &Url) -> Option<Url> {
    let loc = resp.headers().get(LOCATION)?.to_str().ok()?;
    resp.url().join(loc).ok()
}

/// `POST /v2/<name>/blobs/uploads/` → the session URL (202 + `Location`).
pub(crate) async fn start(client: &Client, reference: &Reference) -> Result<Url> {
    let url = client.url(reference, "blobs/uploads/")?;
    let resp = client
        .inner
        .send(&Req::new(
            Method::POST,
            url.clone(),
            reference,
            Access::Push,
        ))
        .await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(status_error(resp, &format!("upload to {}", reference.repository_url())).await);
    }
    location(&resp, &url).ok_or_else(|| Error::InvalidResponse {
        url: url.to_string(),
        message: "upload session without Location header".into(),
    })
}

/// `PUT <session>?digest=<d>` with the remaining `payload`; expects 201.
pub(crate) async fn finish(
    client: &Client,
    reference: &Reference,
    mut session: Url,
    digest: &Digest,
    payload: Payload,
) -> Result<()> {
    session
        .query_pairs_mut()
        .append_pair("digest", digest.as_str());
    let req = Req::new(Method::PUT, session, reference, Access::Push)
        .header(CONTENT_TYPE, "application/octet-stream")
        .payload(payload);
    let resp = client.inner.send(&req).await?;
    if !resp.status().is_success() {
        return Err(status_error(resp, &format!("blob {digest}")).await);
    }
    Ok(())
}

/// Uploads `size` bytes of `path` (see [`Client::push_blob_file`]).
pub(crate) async fn push_file(
    client: &Client,
    reference: &Reference,
    path: &Path,
    digest: &Digest,
    size: u64,
    progress: Option<ProgressFn>,
) -> Result<()> {
    let file = |offset: u64, len: u64| Payload::File {
        path: path.to_owned(),
        offset,
        len,
        progress: progress.clone().map(|p| (p, offset)),
    };
    let chunk_bytes = client.inner.config.upload_chunk_bytes;
    let mut session = start(client, reference).await?;
    if size <= chunk_bytes {
        return finish(client, reference, session, digest, file(0, size)).await;
    }
    let mut offset = 0;
    while offset < size {
        let len = chunk_bytes.min(size - offset);
        let req = Req::new(Method::PATCH, session.clone(), reference, Access::Push)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, &format!("{offset}-{}", offset + len - 1))
            .payload(file(offset, len));
        let resp = client.inner.send(&req).await?;
        let status = resp.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            session = location(&resp, &session).unwrap_or(session);
            offset += len;
            continue;
        }
        let refused = status.is_client_error()
            && !matches!(
                status,
                StatusCode::UNAUTHORIZED
                    | StatusCode::FORBIDDEN
                    | StatusCode::NOT_FOUND
                    | StatusCode::TOO_MANY_REQUESTS
            );
        if offset == 0 && refused {
            tracing::debug!(%status, "chunked upload refused, falling back to a monolithic PUT");
            let _ = client
                .inner
                .send(&Req::new(
                    Method::DELETE,
                    session.clone(),
                    reference,
                    Access::Push,
                ))
                .await;
            let fresh = start(client, reference).await?;
            return finish(client, reference, fresh, digest, file(0, size)).await;
        }
        return Err(status_error(resp, &format!("blob {digest}")).await);
    }
    finish(client, reference, session, digest, Payload::Empty).await
}
