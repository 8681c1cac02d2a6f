//! `?watch=true`: newline-delimited JSON frames, flushed per event (reference §3.7), in the shape
//! negotiated (object, single-row `Table` with column definitions on the first frame only, or
//! `PartialObjectMetadata`). A watch ends at `timeoutSeconds` (default: a random 30–60 min, as
//! kube-apiserver's `MinRequestTimeout`), at shutdown, or with an `ERROR` frame (410 Expired).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::header;
use rand::Rng;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::negotiate::Shape;
use crate::rest::render::{Renderer, partial};
use crate::rest::{Call, parse_resource_version};

/// Starts a watch.
pub(crate) async fn watch(call: Call) -> Result<Response, ApiError> {
    let watch_options = watch_options(&call).await?;
    let events = call
        .state
        .store
        .watch(
            &call.resource_key(),
            call.info.namespace.as_deref(),
            watch_options,
        )
        .await
        .map_err(|e| call.storage_error(e))?;
    let timeout = call
        .options
        .timeout
        .unwrap_or_else(|| Duration::from_secs(rand::rng().random_range(1800..3600)));
    let shutdown = call.state.shutdown.clone();
    let stop = async move {
        tokio::select! {
            () = tokio::time::sleep(timeout) => {}
            () = shutdown.cancelled() => {}
        }
    };
    let frames = frames(call.renderer.clone(), events.take_until(Box::pin(stop)));
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(frames))
        .expect("static response");
    call.renderer.add_warnings(response.headers_mut());
    Ok(response)
}

/// Checks the watch's query (`resourceVersion`, `resourceVersionMatch`, `sendInitialEvents`)
/// and turns it into the store's options.
async fn watch_options(call: &Call) -> Result<storage::WatchOptions, ApiError> {
    let o = &call.options;
    if o.resource_version_match.is_some() && o.send_initial_events.is_none() {
        return Err(ApiError::invalid_options(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let send_initial_events = o.send_initial_events == Some(true);
    if o.send_initial_events.is_some()
        && o.resource_version_match.as_deref() != Some("NotOlderThan")
    {
        return Err(ApiError::invalid_options(
            "resourceVersionMatch",
            "Invalid value: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let requested = match o.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(parse_resource_version(rv)?),
    };
    if let Some(rv) = requested {
        call.current_revision_not_older_than(rv).await?;
    }
    Ok(storage::WatchOptions {
        // With sendInitialEvents the client wants the current state first, whatever rv it has.
        resource_version: if send_initial_events {
            None
        } else {
            requested.map(storage::Revision)
        },
        label_selector: o.label_selector.clone(),
        field_selector: o.field_selector.clone(),
        bookmarks: o.allow_watch_bookmarks || send_initial_events,
        send_initial_events,
    })
}

/// The response body: one JSON line per event, ending after an `ERROR` frame.
fn frames(
    renderer: Renderer,
    events: impl futures::Stream<Item = Result<storage::WatchEvent, storage::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static {
    let mut first_table = true;
    let frames = events.map(move |event| {
        let frame = match event {
            Ok(event) => frame(&renderer, event, &mut first_table),
            Err(err) => {
                let api = crate::http::error::from_storage(renderer.resource, "", err);
                json!({"type": "ERROR", "object": api.to_status()})
            }
        };
        let mut line = serde_json::to_vec(&frame).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    // An ERROR frame is the last one: stop after it.
    frames.scan(false, |done, chunk| {
        if *done {
            return futures::future::ready(None);
        }
        if let Ok(bytes) = &chunk
            && bytes.starts_with(b"{\"type\":\"ERROR\"")
        {
            *done = true;
        }
        futures::future::ready(Some(chunk))
    })
}

fn frame(renderer: &Renderer, event: storage::WatchEvent, first_table: &mut bool) -> Value {
    use storage::WatchEventType as T;
    let kind = match event.event_type {
        T::Added => "ADDED",
        T::Modified => "MODIFIED",
        T::Deleted => "DELETED",
        T::Bookmark => "BOOKMARK",
        T::Error => "ERROR",
    };
    if event.event_type == T::Error {
        return json!({"type": kind, "object": event.object});
    }
    let bookmark = event.event_type == T::Bookmark;
    let object = match renderer.output.shape {
        Shape::Object if bookmark => {
            let mut o = event.object;
            o["apiVersion"] = json!(renderer.version.api_version());
            o["kind"] = json!(renderer.resource.kind);
            o
        }
        Shape::Object => match renderer.encode(event.object) {
            Ok(o) => o,
            Err(e) => return json!({"type": "ERROR", "object": e.to_status()}),
        },
        Shape::PartialMetadata => partial(event.object, renderer.output.meta_version),
        Shape::Table => {
            let rv = event.object["metadata"]["resourceVersion"].clone();
            let rows = if bookmark {
                vec![]
            } else {
                match renderer.row(event.object) {
                    Ok(row) => vec![row],
                    Err(e) => return json!({"type": "ERROR", "object": e.to_status()}),
                }
            };
            let mut table = json!({
                "kind": "Table",
                "apiVersion": renderer.output.meta_version.api_version(),
                "metadata": {"resourceVersion": rv},
                "rows": rows,
            });
            if *first_table && !bookmark {
                table["columnDefinitions"] = renderer.columns();
                *first_table = false;
            } else {
                table["columnDefinitions"] = json!(null);
            }
            table
        }
    };
    json!({"type": kind, "object": object})
}
