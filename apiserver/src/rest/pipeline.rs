//! The one write pipeline. Create, update, patch and apply differ only in how they make the
//! object to write from the request; from there every write takes the same steps, in
//! kube-apiserver's order (`k8s.io/apiserver/pkg/endpoints/handlers/create.go`, `update.go`,
//! `patch.go`):
//!
//! 1. [`decode`]: the body (already parsed, or patched onto the live object) is decoded once
//!    into the storage version, converted and defaulted (`openapi::decode`), with unknown fields
//!    treated as `fieldValidation` says; its namespace and name are checked against the URL.
//! 2. [`create`] / [`update`]: the part of the object the request may write is taken (a create
//!    drops `status`, a `status` update keeps only `status`);
//! 3. managed fields are recorded (an apply computed them already);
//! 4. admission ([`crate::rest::admission`]);
//! 5. validation (422 with `details.causes[].field`), once;
//! 6. the store (a `generateName` create retries a taken name with a new one);
//! 7. the stored object is rendered in the requested version and shape.

use axum::response::Response;
use http::StatusCode;
use rand::Rng;
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::rest::Call;
use crate::rest::admission::Operation;
use crate::rest::managed_fields;
use crate::rest::options::FieldValidation;
use crate::rest::render::warning;

/// Attempts of a `generateName` create whose generated name is taken.
const GENERATE_NAME_ATTEMPTS: usize = 5;

/// How the body's `metadata.name` must relate to the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// POST: the body names the object (or asks for a generated name).
    FromBody,
    /// PUT: the body's name must equal the URL's; an empty one is filled in.
    MatchUrl,
    /// Server-side apply of a new object: the configuration must name the URL's object.
    MatchUrlStrictly,
    /// JSON and merge patch, apply of an existing object: a patch may not rename.
    Unchanged,
}

/// Who owns the written fields.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ownership<'a> {
    /// Record an `Update` entry for this manager (POST, PUT, JSON and merge patch).
    Record(&'a str),
    /// A server-side apply: the entries are already in the object.
    Applied,
}

/// Step 1: decodes an object sent for `call.version` into a defaulted storage-version object,
/// applying `fieldValidation` to unknown fields (Strict: 400; Warn: `Warning` headers; Ignore:
/// nothing), and checks its namespace and name against the URL.
///
/// # Errors
/// 400 for a malformed object, a namespace or name that contradicts the URL, or an unknown
/// field under Strict; 422 for a value of the wrong type.
pub(crate) fn decode(call: &mut Call, body: Value, names: NameRule) -> Result<Value, ApiError> {
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
    unknown_fields(call, &decoded.unknown_fields)?;
    let mut object = decoded.object;
    check_namespace(call, &mut object)?;
    check_name(call, &mut object, names)?;
    Ok(object)
}

fn unknown_fields(call: &mut Call, fields: &[String]) -> Result<(), ApiError> {
    if fields.is_empty() {
        return Ok(());
    }
    let messages = fields.iter().map(|f| format!("unknown field \"{f}\""));
    match call.options.field_validation {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.collect::<Vec<_>>().join(", ")
        ))),
        FieldValidation::Warn => {
            call.renderer.warnings.extend(messages.map(|m| warning(&m)));
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

/// The body's namespace must be the URL's; an empty one is filled in.
fn check_namespace(call: &Call, object: &mut Value) -> Result<(), ApiError> {
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

fn check_name(call: &Call, object: &mut Value, rule: NameRule) -> Result<(), ApiError> {
    let url_name = call.name();
    let body_name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mismatch = || {
        ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        ))
    };
    match rule {
        NameRule::FromBody => Ok(()),
        NameRule::MatchUrl if body_name.is_empty() => {
            object["metadata"]["name"] = json!(url_name);
            Ok(())
        }
        NameRule::MatchUrl | NameRule::MatchUrlStrictly if body_name != url_name => Err(mismatch()),
        NameRule::Unchanged if object["metadata"]["name"].as_str() != Some(url_name) => {
            Err(ApiError::bad_request(
                "metadata.name: the name of the object may not be changed by a patch",
            ))
        }
        _ => Ok(()),
    }
}

/// Steps 2–7 of a create: drops `status`, records ownership, admits, generates a name, validates
/// and stores; answers 201 with the stored object.
///
/// # Errors
/// 403 from admission, 422 when invalid, 409 when the name is taken (after
/// [`GENERATE_NAME_ATTEMPTS`] generated names), and storage failures.
pub(crate) async fn create(
    call: &Call,
    mut object: Value,
    ownership: Ownership<'_>,
) -> Result<Response, ApiError> {
    // Status is dropped on create when the status subresource is enabled; the CRD default
    // (`observedGeneration: -1`) applies again.
    object["status"] = json!({"observedGeneration": -1});
    if let Ownership::Record(manager) = ownership {
        managed_fields::record(
            &mut object,
            None,
            manager,
            managed_fields::Operation::Update,
            call.version,
            None,
        );
    }
    admit(call, Operation::Create, &object, None).await?;
    let prefix = generate_name_prefix(&object);
    if let Some(prefix) = &prefix {
        object["metadata"]["name"] = json!(generated_name(prefix));
    }
    validate(call, &object)?;
    let attempts = if prefix.is_some() {
        GENERATE_NAME_ATTEMPTS
    } else {
        1
    };
    for attempt in 1..=attempts {
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let key = call.key_of(&name)?;
        match call
            .state
            .store
            .create(&key, object.clone(), call.options.write_options())
            .await
        {
            Ok(stored) => return call.renderer.object(stored, StatusCode::CREATED),
            Err(storage::Error::AlreadyExists { .. }) if attempt < attempts => {
                let prefix = prefix.as_deref().unwrap_or_default();
                object["metadata"]["name"] = json!(generated_name(prefix));
            }
            Err(e) => return Err(call.storage_error_for(&name, e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// `metadata.generateName` when the object has no name and asks for one.
fn generate_name_prefix(object: &Value) -> Option<String> {
    let has_name = object["metadata"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    object["metadata"]["generateName"]
        .as_str()
        .filter(|g| !has_name && !g.is_empty())
        .map(String::from)
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

/// Steps 2–7 of an update (PUT, patch, apply) of `current`, the stored object read for it:
/// takes only `status` (and an apply's ownership) for the `status` subresource, records
/// ownership, admits, validates and stores; answers 200 with the stored object.
///
/// # Errors
/// 403 from admission, 422 when invalid, 409 on a stale `resourceVersion`, and storage
/// failures.
pub(crate) async fn update(
    call: &Call,
    key: &storage::ObjectKey,
    current: Value,
    mut object: Value,
    ownership: Ownership<'_>,
) -> Result<Response, ApiError> {
    let status = call.info.subresource.as_deref() == Some("status");
    let part = if status {
        object = status_only(&current, &object, matches!(ownership, Ownership::Applied));
        storage::UpdatePart::Status
    } else {
        storage::UpdatePart::Main
    };
    if let Ownership::Record(manager) = ownership {
        managed_fields::record(
            &mut object,
            Some(&current),
            manager,
            managed_fields::Operation::Update,
            call.version,
            status.then_some("status"),
        );
    }
    admit(call, Operation::Update, &object, Some(&current)).await?;
    validate(call, &object)?;
    let stored = call
        .state
        .store
        .update(key, object, part, call.options.write_options())
        .await
        .map_err(|e| call.storage_error(e))?;
    call.renderer.object(stored, StatusCode::OK)
}

/// A `status` write changes only status: the stored object with the body's `status` and
/// `resourceVersion` (the precondition), and, for an apply, its ownership.
fn status_only(current: &Value, object: &Value, applied: bool) -> Value {
    let mut merged = current.clone();
    merged["status"] = object["status"].clone();
    merged["metadata"]["resourceVersion"] = object["metadata"]["resourceVersion"].clone();
    if applied {
        merged["metadata"]["managedFields"] = object["metadata"]["managedFields"].clone();
    }
    merged
}

/// Step 4: asks admission about a create or update of `object`.
async fn admit(
    call: &Call,
    operation: Operation,
    object: &Value,
    old_object: Option<&Value>,
) -> Result<(), ApiError> {
    let name = object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty());
    call.admission
        .admit(&call.attributes(operation, name, Some(object), old_object))
        .await
}

/// Step 5: 422 when `openapi::validate` finds anything.
fn validate(call: &Call, object: &Value) -> Result<(), ApiError> {
    let causes = openapi::validate(call.resource, object);
    if causes.is_empty() {
        Ok(())
    } else {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        Err(ApiError::invalid(call.resource, name, &causes))
    }
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

    #[test]
    fn a_generated_name_is_asked_for_only_without_a_name() {
        let object = json!({"metadata": {"generateName": "podinfo-"}});
        assert_eq!(generate_name_prefix(&object).as_deref(), Some("podinfo-"));
        let object = json!({"metadata": {"name": "x", "generateName": "podinfo-"}});
        assert_eq!(generate_name_prefix(&object), None);
    }

    #[test]
    fn a_status_write_keeps_everything_but_status_and_the_precondition() {
        let current = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}},
                             "spec": {"url": "old"}, "status": {"x": 1}});
        let body = json!({"metadata": {"resourceVersion": "1", "managedFields": [1]},
                          "spec": {"url": "new"}, "status": {"x": 2}});
        let merged = status_only(&current, &body, false);
        assert_eq!(merged["spec"]["url"], "old");
        assert_eq!(merged["status"]["x"], 2);
        assert_eq!(merged["metadata"]["labels"]["a"], "b");
        assert!(merged["metadata"]["managedFields"].is_null());
        let applied = status_only(&current, &body, true);
        assert_eq!(applied["metadata"]["managedFields"], json!([1]));
    }
}
