//! create, update (main and `status`), delete and deletecollection, with kube-apiserver's
//! rules (reference §3.2–§3.5, §3.10): namespace and name checks, `generateName`, status dropped
//! on create, resourceVersion required on update, managedFields kept, `dryRun=All`. Creates and
//! updates go through [`crate::rest::pipeline`]; deletes are admitted like every write.

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use serde_json::Value;

use crate::http::error::ApiError;
use crate::http::negotiate;
use crate::rest::admission::Operation;
use crate::rest::pipeline::{self, NameRule, Ownership};
use crate::rest::{Call, body_bytes};

/// Parses the body by `Content-Type` and decodes it (pipeline step 1).
async fn read_object(
    call: &mut Call,
    request: Request<Body>,
    names: NameRule,
) -> Result<Value, ApiError> {
    let format = negotiate::body_format(request.headers())?;
    let bytes = body_bytes(request).await?;
    let body = negotiate::parse_body(format, &bytes)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    pipeline::decode(call, body, names)
}

/// The field manager: `?fieldManager=` or the `User-Agent` up to its first `/`, as upstream.
pub(crate) fn manager_of(call: &Call, headers: &http::HeaderMap) -> String {
    call.options.field_manager.clone().unwrap_or_else(|| {
        headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect()
    })
}

/// `POST <collection>`.
pub(crate) async fn create(mut call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    if call.info.namespace.is_none() {
        return Err(ApiError::method_not_allowed(request.method()));
    }
    let manager = manager_of(&call, request.headers());
    let object = read_object(&mut call, request, NameRule::FromBody).await?;
    pipeline::create(&call, object, Ownership::Record(&manager)).await
}

/// `PUT .../<name>` and `PUT .../<name>/status`.
pub(crate) async fn update(mut call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    let manager = manager_of(&call, request.headers());
    let object = read_object(&mut call, request, NameRule::MatchUrl).await?;
    if object["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            call.resource,
            call.name(),
            &[openapi::Cause {
                reason: openapi::CauseReason::FieldValueInvalid,
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        ));
    }
    let (key, current) = call.stored().await?;
    pipeline::update(&call, &key, current, object, Ownership::Record(&manager)).await
}

/// The `DeleteOptions` body kubectl and client-go send (all optional).
fn delete_options(call: &Call, body: &[u8]) -> Result<storage::DeleteOptions, ApiError> {
    let mut options = storage::DeleteOptions {
        dry_run: call.options.dry_run,
        ..Default::default()
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(options);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
    if let Some(dry) = value["dryRun"].as_array() {
        for d in dry {
            if d != "All" {
                return Err(ApiError::invalid_options(
                    "dryRun",
                    &format!("Unsupported value: {d}: supported values: \"All\""),
                ));
            }
            options.dry_run = true;
        }
    }
    if let Some(policy) = value["propagationPolicy"].as_str() {
        options.propagation_policy = Some(match policy {
            "Orphan" => storage::PropagationPolicy::Orphan,
            "Background" => storage::PropagationPolicy::Background,
            "Foreground" => storage::PropagationPolicy::Foreground,
            _ => {
                return Err(ApiError::invalid_options(
                    "propagationPolicy",
                    &format!(
                        "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                ));
            }
        });
    }
    options.orphan_dependents = value["orphanDependents"].as_bool();
    if options.orphan_dependents.is_some() && options.propagation_policy.is_some() {
        // ValidateDeleteOptions in k8s.io/apimachinery/pkg/apis/meta/v1/validation.
        return Err(ApiError::invalid_options(
            "propagationPolicy",
            "orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    options.precondition_uid = value["preconditions"]["uid"].as_str().map(String::from);
    options.precondition_resource_version = value["preconditions"]["resourceVersion"]
        .as_str()
        .map(String::from);
    Ok(options)
}

/// `DELETE .../<name>`: 200 with the deleted object, or with the object marked for deletion
/// when finalizers hold it.
pub(crate) async fn delete(call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    let key = call.object_key()?;
    let body = body_bytes(request).await?;
    let options = delete_options(&call, &body)?;
    let attributes = call.attributes(Operation::Delete, Some(call.name()), None, None);
    call.admission.admit(&attributes).await?;
    let outcome = call
        .state
        .store
        .delete(&key, options)
        .await
        .map_err(|e| call.storage_error(e))?;
    let (storage::DeleteOutcome::Deleted(object) | storage::DeleteOutcome::Finalizing(object)) =
        outcome;
    call.renderer.object(object, StatusCode::OK)
}

/// `DELETE <collection>`: deletes every object matching the selectors, each with the request's
/// `DeleteOptions` (`propagationPolicy`, `orphanDependents`, `dryRun`; preconditions are not
/// applied to the items); answers with the list of affected objects.
pub(crate) async fn delete_collection(
    call: Call,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let body = body_bytes(request).await?;
    let options = delete_options(&call, &body)?;
    let attributes = call.attributes(Operation::Delete, None, None, None);
    call.admission.admit(&attributes).await?;
    let items = call
        .state
        .store
        .delete_collection(
            &call.resource_key(),
            call.info.namespace.as_deref(),
            &call.options.list_options(),
            options,
        )
        .await
        .map_err(|e| call.storage_error(e))?;
    let resource_version = call
        .state
        .store
        .current_revision()
        .await
        .map_err(|e| call.storage_error(e))?;
    call.renderer.list(storage::ListPage {
        items,
        resource_version,
        continue_token: None,
        remaining_item_count: None,
    })
}
