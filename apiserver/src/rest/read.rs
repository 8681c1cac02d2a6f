//! get, list and the artifact download.

use axum::response::Response;
use http::StatusCode;

use crate::http::error::ApiError;
use crate::rest::{Call, parse_resource_version};

/// `GET .../<name>` and `GET .../<name>/status`.
pub(crate) async fn get(call: Call) -> Result<Response, ApiError> {
    let (_, stored) = call.stored().await?;
    call.renderer.object(stored, StatusCode::OK)
}

/// `GET <collection>`: namespaced or across all namespaces.
pub(crate) async fn list(call: Call) -> Result<Response, ApiError> {
    let o = &call.options;
    if o.send_initial_events.is_some() {
        return Err(ApiError::invalid_options(
            "sendInitialEvents",
            "Forbidden: sendInitialEvents is forbidden for list",
        ));
    }
    if o.resource_version_match.is_some() && o.resource_version.is_none() {
        return Err(ApiError::invalid_options(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    let store = &call.state.store;
    if let Some(rv) = &o.resource_version {
        let requested = parse_resource_version(rv)?;
        let current = call.current_revision_not_older_than(requested).await?;
        if o.resource_version_match.as_deref() == Some("Exact") && requested != current {
            return Err(ApiError::expired(
                "The resourceVersion for the provided list is too old.",
            ));
        }
    }
    let expired = |e| {
        let mut err = call.storage_error(e);
        if err.code == StatusCode::GONE {
            err.message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into();
        }
        err
    };
    let (resource, namespace, options) = (
        call.resource_key(),
        call.info.namespace.as_deref(),
        o.list_options(),
    );
    // Rendering thousands of objects is CPU work: keep it off the async workers. Where the
    // answer can be built from stored text, the objects are never decoded whole.
    let renderer = call.renderer.clone();
    let rendered = if renderer.renders_raw() {
        let page = store
            .list_raw(&resource, namespace, &options)
            .await
            .map_err(expired)?;
        tokio::task::spawn_blocking(move || renderer.list_raw(page)).await
    } else {
        let page = store
            .list(&resource, namespace, &options)
            .await
            .map_err(expired)?;
        tokio::task::spawn_blocking(move || renderer.list(page)).await
    };
    rendered.map_err(|e| ApiError::internal("rendering a list", &e))?
}

/// `GET .../<name>/artifact`: streams the stored artifact tarball with `Content-Type:
/// application/gzip`, `Content-Length` and `ETag` = the artifact digest (quoted). 404 with a
/// `Status` while the object has no artifact or its file is missing, and with `?revision=`
/// when that revision is neither the current `status.artifact.revision` nor an older one whose
/// file retention still keeps ([`kept_revision`]; the URL in `status.artifact.url` names its
/// revision, so a consumer never gets another one than the digest it checks).
pub(crate) async fn artifact(call: Call) -> Result<Response, ApiError> {
    let (_, stored) = call.stored().await?;
    let no_artifact = || {
        let mut err = ApiError::not_found(call.resource, call.name());
        err.message = format!(
            "{} \"{}\" has no artifact yet",
            crate::http::error::group_resource(call.resource),
            call.name()
        );
        err
    };
    let artifact = &stored["status"]["artifact"];
    let (Some(path), Some(digest)) = (artifact["path"].as_str(), artifact["digest"].as_str())
    else {
        return Err(no_artifact());
    };
    if let Some(wanted) = &call.options.revision
        && artifact["revision"].as_str() != Some(wanted.as_str())
    {
        if let Some(response) = kept_revision(&call, wanted).await {
            return Ok(response);
        }
        let mut err = no_artifact();
        err.message = format!(
            "{} \"{}\" has no artifact of revision '{wanted}' (gone, or not yet stored): read status.artifact again",
            crate::http::error::group_resource(call.resource),
            call.name()
        );
        return Err(err);
    }
    let artifacts = &call.state.artifacts;
    let mut opened = crate::artifacts::artifact_server::open(artifacts, path, Some(digest)).await;
    if let Some(peers) = &call.state.peers {
        // Several replicas: fetch a missing artifact from the leader; whatever fails is a 503
        // with Retry-After (the artifact exists, this replica cannot serve it yet).
        if matches!(&opened, Err(e) if e.is_artifact_missing()) {
            if let Err(error) = peers.fetch(path, digest).await {
                tracing::warn!(%error, %path, "artifact not held and not fetched");
            }
            opened = crate::artifacts::artifact_server::open(artifacts, path, Some(digest)).await;
        }
        if let Err(e) = &opened {
            let mut err = ApiError::unavailable(format!(
                "the artifact of {} \"{}\" is not available on this replica yet: {e}",
                crate::http::error::group_resource(call.resource),
                call.name()
            ));
            err.retry_after_seconds = Some(crate::artifacts::peer::RETRY_AFTER_SECONDS);
            return Err(err);
        }
    }
    match opened {
        Ok((file, size, _)) => Ok(crate::artifacts::artifact_server::response(
            file,
            size,
            Some(digest),
        )),
        Err(e) if e.is_artifact_missing() => Err(no_artifact()),
        Err(e) if e.status_code() == 503 => Err(ApiError::unavailable(format!(
            "the stored artifact of {} \"{}\" does not match its digest {digest}; it is not served until the reconcile rebuilds it",
            crate::http::error::group_resource(call.resource),
            call.name()
        ))),
        Err(e) => Err(call.storage_error(e)),
    }
}

/// An older OCIRepository revision (`<tag>@sha256:<hex>` or `sha256:<hex>`) served while
/// retention keeps its file `ocirepository/<ns>/<name>/<hex>.tar.gz`, as Flux's file server
/// serves a file while it exists; the file is checked against the digest recorded when it was
/// written, which is its `ETag`. `None` (then 404) for other kinds (a HelmChart revision is a
/// chart version, which several files may carry), for a revision naming no kept file, and on a
/// replica that does not hold it (only the current artifact is fetched from the leader).
/// For an image index the file is named after the platform's manifest, not the index digest in
/// the revision, so only the current revision of an index is served.
async fn kept_revision(call: &Call, wanted: &str) -> Option<Response> {
    if call.resource.plural != "ocirepositories" {
        return None;
    }
    let hex = wanted
        .rsplit_once("@sha256:")
        .map(|(_, hex)| hex)
        .or_else(|| wanted.strip_prefix("sha256:"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let namespace = call.info.namespace.as_deref()?;
    let path = crate::controller::ocirepository::artifact_path(namespace, call.name(), hex);
    let artifacts = &call.state.artifacts;
    let (file, size, digest) = crate::artifacts::artifact_server::open(artifacts, &path, None)
        .await
        .ok()?;
    Some(crate::artifacts::artifact_server::response(
        file,
        size,
        Some(&digest),
    ))
}
