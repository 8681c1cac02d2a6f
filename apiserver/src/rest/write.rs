//! create, update (main and `status`), delete and deletecollection, with kube-apiserver's
//! rules (reference §3.2–§3.5, §3.10): namespace and name checks, `generateName`, status dropped
//! on create, resourceVersion required on update, managedFields kept, `dryRun=All`.

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use rand::Rng;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::managed_fields::{self, Operation};
use crate::negotiate;
use crate::rest::options::FieldValidation;
use crate::rest::render::warning;
use crate::rest::{Call, body_bytes};

/// Decodes a body sent for `call.version` into a defaulted v1 object, applying
/// `fieldValidation` to unknown fields (Strict: 400; Warn: `Warning` headers; Ignore: nothing).
pub(crate) fn decode(call: &mut Call, body: Value) -> Result<Value, ApiError> {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or(call.name())
        .to_string();
    let decoded = openapi::decode(call.resource, call.version, body).map_err(|e| {
        let causes = e.causes();
        if e.is_bad_request() || causes.is_empty() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::invalid(call.resource, &name, &causes)
        }
    })?;
    if !decoded.unknown_fields.is_empty() {
        let messages: Vec<String> = decoded
            .unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match call.options.field_validation {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    messages.join(", ")
                )));
            }
            FieldValidation::Warn => call
                .renderer
                .warnings
                .extend(messages.iter().map(|m| warning(m))),
            FieldValidation::Ignore => {}
        }
    }
    Ok(decoded.object)
}

/// Parses the body by `Content-Type` and decodes it.
pub(crate) async fn read_object(
    call: &mut Call,
    request: Request<Body>,
) -> Result<Value, ApiError> {
    let format = negotiate::body_format(request.headers())?;
    let bytes = body_bytes(request).await?;
    let body = negotiate::parse_body(format, &bytes)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    decode(call, body)
}

/// 422 when `openapi::validate` finds anything.
pub(crate) fn validate(call: &Call, object: &Value) -> Result<(), ApiError> {
    let causes = openapi::validate(call.resource, object);
    if causes.is_empty() {
        Ok(())
    } else {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        Err(ApiError::invalid(call.resource, name, &causes))
    }
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

/// Checks the body's namespace against the URL's and fills it in when empty.
pub(crate) fn check_namespace(call: &Call, object: &mut Value) -> Result<(), ApiError> {
    let url_ns = call.info.namespace.clone().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            object["metadata"]["namespace"] = json!(url_ns);
            Ok(())
        }
    }
}

/// `POST <collection>`.
pub(crate) async fn create(mut call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    if call.info.namespace.is_none() {
        return Err(ApiError::method_not_allowed(request.method()));
    }
    let manager = manager_of(&call, request.headers());
    let mut object = read_object(&mut call, request).await?;
    check_namespace(&call, &mut object)?;
    let has_name = object["metadata"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let generate = object["metadata"]["generateName"]
        .as_str()
        .filter(|g| !g.is_empty())
        .map(String::from);
    // Status is dropped on create when the status subresource is enabled; the CRD default
    // (`observedGeneration: -1`) applies again.
    object["status"] = json!({"observedGeneration": -1});
    managed_fields::record(
        &mut object,
        None,
        &manager,
        Operation::Update,
        call.version,
        None,
    );
    let attempts = if !has_name && generate.is_some() {
        5
    } else {
        1
    };
    for attempt in 1..=attempts {
        if !has_name && let Some(prefix) = &generate {
            object["metadata"]["name"] = json!(generated_name(prefix));
        }
        validate(&call, &object)?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        call.info.name = Some(name);
        let key = call.object_key()?;
        match call
            .state
            .store
            .create(&key, object.clone(), call.options.write_options())
            .await
        {
            Ok(stored) => return call.renderer.object(stored, StatusCode::CREATED),
            Err(storage::Error::AlreadyExists { .. }) if attempt < attempts => continue,
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// `generateName` + 5 random characters from Kubernetes' alphabet (no vowels, no confusables).
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let keep = prefix.len().min(253 - 5);
    format!("{}{suffix}", &prefix[..keep])
}

/// `PUT .../<name>` and `PUT .../<name>/status`.
pub(crate) async fn update(mut call: Call, request: Request<Body>) -> Result<Response, ApiError> {
    let manager = manager_of(&call, request.headers());
    let mut object = read_object(&mut call, request).await?;
    check_namespace(&call, &mut object)?;
    let url_name = call.name().to_string();
    match object["metadata"]["name"].as_str() {
        Some(n) if n == url_name => {}
        Some(n) if !n.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({url_name})"
            )));
        }
        _ => object["metadata"]["name"] = json!(url_name),
    }
    if object["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            call.resource,
            &url_name,
            &[openapi::Cause {
                reason: openapi::CauseReason::FieldValueInvalid,
                message: "Invalid value: 0x0: must be specified for an update".into(),
                field: "metadata.resourceVersion".into(),
            }],
        ));
    }
    let key = call.object_key()?;
    let current = call
        .state
        .store
        .get(&key)
        .await
        .map_err(|e| call.storage_error(e))?;
    let status = call.info.subresource.as_deref() == Some("status");
    store_update(
        &call,
        &key,
        current,
        object,
        &manager,
        Operation::Update,
        status,
    )
    .await
}

/// Validates, records managed fields and writes an update; shared by PUT and PATCH.
pub(crate) async fn store_update(
    call: &Call,
    key: &storage::ObjectKey,
    current: Value,
    mut object: Value,
    manager: &str,
    operation: Operation,
    status: bool,
) -> Result<Response, ApiError> {
    let (part, subresource) = if status {
        // Only status is taken from the body; validate what will be stored.
        let mut merged = current.clone();
        merged["status"] = object["status"].clone();
        merged["metadata"]["resourceVersion"] = object["metadata"]["resourceVersion"].clone();
        object = merged;
        (storage::UpdatePart::Status, Some("status"))
    } else {
        (storage::UpdatePart::Main, None)
    };
    validate(call, &object)?;
    managed_fields::record(
        &mut object,
        Some(&current),
        manager,
        operation,
        call.version,
        subresource,
    );
    let stored = call
        .state
        .store
        .update(key, object, part, call.options.write_options())
        .await
        .map_err(|e| call.storage_error(e))?;
    call.renderer.object(stored, StatusCode::OK)
}

/// The `DeleteOptions` body kubectl and client-go send (all optional).
fn delete_options(call: &Call, body: &[u8]) -> Result<storage::DeleteOptions, ApiError> {
    let mut options = storage::DeleteOptions {
        dry_run: call.options.dry_run,
        precondition_uid: None,
        precondition_resource_version: None,
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
    if let Some(policy) = value["propagationPolicy"].as_str()
        && !matches!(policy, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid_options(
            "propagationPolicy",
            &format!(
                "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ),
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

/// `DELETE <collection>`: deletes every object matching the selectors; answers with the list of
/// affected objects.
pub(crate) async fn delete_collection(
    call: Call,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let body = body_bytes(request).await?;
    let options = delete_options(&call, &body)?;
    let items = call
        .state
        .store
        .delete_collection(
            &call.resource_key(),
            call.info.namespace.as_deref(),
            &call.options.list_options(),
            storage::WriteOptions {
                dry_run: options.dry_run,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_the_prefix_and_add_five_characters() {
        let name = generated_name("podinfo-");
        assert!(name.starts_with("podinfo-"));
        assert_eq!(name.len(), "podinfo-".len() + 5);
        assert_ne!(generated_name("x-"), generated_name("x-"));
    }
}
