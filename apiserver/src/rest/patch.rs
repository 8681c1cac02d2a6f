//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and server-side apply
//! (`application/apply-patch+yaml`); strategic merge patch is refused with 415, as for custom
//! resources (reference §3.9). A patch is applied to the live object in the request's version,
//! and the result goes through the write pipeline ([`crate::rest::pipeline`]) like a PUT; a
//! conflict caused by a concurrent writer is retried, one the patch asked for (it set
//! `metadata.resourceVersion`) is returned.

use axum::body::Body;
use axum::response::Response;
use http::Request;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::negotiate;
use crate::rest::managed_fields;
use crate::rest::pipeline::{self, NameRule, Ownership};
use crate::rest::write::manager_of;
use crate::rest::{Call, body_bytes};

const ACCEPTED: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";
/// kube-apiserver's cap on JSON patch operations.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// Attempts when a concurrent writer changes the object between read and write.
const MAX_ATTEMPTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchType {
    Json,
    Merge,
    Apply,
}

fn patch_type(headers: &http::HeaderMap) -> Result<PatchType, ApiError> {
    let content_type = negotiate::content_type(headers).unwrap_or_default();
    match content_type.as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::unsupported_media_type(ACCEPTED)),
    }
}

/// `PATCH .../<name>` and `PATCH .../<name>/status`.
pub(crate) async fn patch(mut call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    let kind = patch_type(request.headers())?;
    check_options(&call, kind)?;
    let manager = manager_of(&call, request.headers());
    let bytes = body_bytes(request).await?;
    let body = parse_patch(kind, &bytes)?;
    let status = call.info.subresource.as_deref() == Some("status");
    let key = call.object_key()?;
    for attempt in 1..=MAX_ATTEMPTS {
        let live = match call.state.store.get(&key).await {
            Ok(live) => live,
            Err(storage::Error::NotFound { .. }) if kind == PatchType::Apply && !status => {
                return apply_create(&mut call, &body, &manager).await;
            }
            Err(e) => return Err(call.storage_error(e)),
        };
        let live_versioned = call.renderer.encode(live.clone())?;
        let live_rv = live_versioned["metadata"]["resourceVersion"].clone();
        let patched = apply_patch(&call, kind, live_versioned, &body, &manager)?;
        let precondition_from_patch = patched["metadata"]["resourceVersion"] != live_rv;
        let mut object = pipeline::decode(&mut call, patched, NameRule::Unchanged)?;
        if object["metadata"]["resourceVersion"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            object["metadata"]["resourceVersion"] = live_rv;
        }
        let ownership = match kind {
            PatchType::Apply => Ownership::Applied,
            PatchType::Json | PatchType::Merge => Ownership::Record(&manager),
        };
        match pipeline::update(&call, &key, live, object, ownership).await {
            Err(e)
                if e.reason == "Conflict" && !precondition_from_patch && attempt < MAX_ATTEMPTS =>
            {
                continue;
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

/// `force` belongs to apply only, and apply needs a `fieldManager`.
fn check_options(call: &Call, kind: PatchType) -> Result<(), ApiError> {
    if kind != PatchType::Apply && call.options.force.is_some() {
        return Err(ApiError::invalid_options(
            "force",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    if kind == PatchType::Apply && call.options.field_manager.is_none() {
        return Err(ApiError::invalid_options(
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    Ok(())
}

/// Parses the patch document: YAML for apply, JSON otherwise, with each type's shape checks.
fn parse_patch(kind: PatchType, bytes: &[u8]) -> Result<Value, ApiError> {
    let body: Value = match kind {
        PatchType::Apply => negotiate::parse_body(negotiate::Format::Yaml, bytes)?,
        _ => negotiate::parse_body(negotiate::Format::Json, bytes)?,
    };
    if kind == PatchType::Apply
        && !(body.is_object() && body.get("metadata").is_none_or(Value::is_object))
    {
        return Err(ApiError::bad_request(
            "an apply configuration must be an object whose metadata is an object",
        ));
    }
    if kind == PatchType::Json {
        let operations = body.as_array().map_or(0, Vec::len);
        if operations > MAX_JSON_PATCH_OPERATIONS {
            return Err(ApiError::invalid_options(
                "patch",
                &format!(
                    "Too many: {operations}: must have at most {MAX_JSON_PATCH_OPERATIONS} items"
                ),
            ));
        }
    }
    Ok(body)
}

/// The live object (in the request's version) with the patch applied.
fn apply_patch(
    call: &Call,
    kind: PatchType,
    live: Value,
    body: &Value,
    manager: &str,
) -> Result<Value, ApiError> {
    match kind {
        PatchType::Json => json_patch(call, live, body),
        PatchType::Merge => {
            let mut doc = live;
            json_patch::merge(&mut doc, body);
            Ok(doc)
        }
        PatchType::Apply => managed_fields::apply(
            Some(&live),
            body,
            manager,
            call.options.force == Some(true),
            call.version,
            call.info.subresource.as_deref(),
        )
        .map_err(|conflicts| conflict_error(call, &conflicts)),
    }
}

fn json_patch(call: &Call, mut doc: Value, body: &Value) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
    json_patch::patch(&mut doc, &patch).map_err(|e| {
        ApiError::invalid(
            call.resource,
            call.name(),
            &[openapi::Cause {
                reason: openapi::CauseReason::FieldValueInvalid,
                message: format!("Invalid value: the JSON patch could not be applied: {e}"),
                field: "patch".into(),
            }],
        )
    })?;
    Ok(doc)
}

/// Server-side apply of a missing object creates it (201).
async fn apply_create(
    call: &mut Call,
    config: &Value,
    manager: &str,
) -> Result<Response, ApiError> {
    let merged = managed_fields::apply(None, config, manager, true, call.version, None)
        .map_err(|conflicts| conflict_error(call, &conflicts))?;
    let object = pipeline::decode(call, merged, NameRule::MatchUrlStrictly)?;
    pipeline::create(call, object, Ownership::Applied).await
}

/// 409 with `FieldManagerConflict` causes, worded as upstream:
/// `Apply failed with 1 conflict: conflict with "kubectl-create" using source.toolkit.fluxcd.io/v1: .spec.interval`.
fn conflict_error(call: &Call, conflicts: &[managed_fields::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager, c.api_version, c.field
            )
        })
        .collect();
    let noun = if conflicts.len() == 1 {
        "conflict"
    } else {
        "conflicts"
    };
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} {noun}: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::conflict(call.resource, call.name(), message);
    if let Some(details) = err.details.as_mut() {
        details["causes"] =
            json!(conflicts
            .iter()
            .map(|c| json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                "field": c.field,
            }))
            .collect::<Vec<_>>());
    }
    err
}
