//! Kubernetes object rules that storage enforces on JSON objects: system-managed metadata on
//! create, the main/status split and generation on update, finalizers on delete
//! (`k8s.io/apiserver: pkg/registry/rest/{create,update,delete}.go`,
//! `apiextensions-apiserver: pkg/registry/customresource/{strategy,status_strategy}.go`).

use serde_json::{Map, Value};

use crate::error::{Error, OPTIMISTIC_LOCK_MESSAGE, Result};
use crate::key::{ObjectKey, Revision};
use crate::store::{
    DeleteOptions, FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS, PropagationPolicy,
    UpdatePart,
};

/// Metadata a client may set through a main-resource update.
const USER_METADATA: [&str; 6] = [
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "generateName",
];

/// The current time as Kubernetes writes it: RFC 3339, whole seconds, UTC (`2024-01-02T03:04:05Z`).
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::invalid("<root>", "the object must be a JSON object"))?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| Error::invalid("metadata", "must be an object"))
}

fn metadata(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    metadata(object)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.resourceVersion` of a stored object.
pub(crate) fn resource_version(object: &Value) -> &str {
    meta_str(object, "resourceVersion")
}

/// Sets `metadata.resourceVersion` to `rev` (or removes it for `None`).
pub(crate) fn set_resource_version(object: &mut Value, rev: Option<u64>) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        match rev {
            Some(r) => {
                meta.insert("resourceVersion".into(), Value::String(r.to_string()));
            }
            None => {
                meta.remove("resourceVersion");
            }
        }
    }
}

/// Checks that the object's name and namespace agree with the key, filling empty ones in.
fn check_identity(key: &ObjectKey, meta: &mut Map<String, Value>) -> Result<()> {
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if name.is_empty() {
        if key.name.is_empty() {
            return Err(Error::invalid(
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        meta.insert("name".into(), Value::String(key.name.clone()));
    } else if name != key.name {
        return Err(Error::invalid(
            "metadata.name",
            format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            ),
        ));
    }
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if namespace.is_empty() {
        if !key.namespace.is_empty() {
            meta.insert("namespace".into(), Value::String(key.namespace.clone()));
        }
    } else if namespace != key.namespace {
        return Err(Error::invalid(
            "metadata.namespace",
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Validates a new object and sets its system fields (all but `resourceVersion`).
pub(crate) fn prepare_create(key: &ObjectKey, mut object: Value) -> Result<Value> {
    let meta = metadata_mut(&mut object)?;
    check_identity(key, meta)?;
    if !meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(Error::invalid(
            "metadata.resourceVersion",
            "resourceVersion should not be set on objects to be created",
        ));
    }
    meta.remove("resourceVersion");
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    meta.insert("generation".into(), Value::from(1));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    // `status` is kept as given: the REST layer decides the initial status (it drops the
    // client's and applies the CRD default `observedGeneration: -1`, as kube-apiserver's
    // custom-resource strategy plus structural defaulting do). Storage imposes no API policy.
    Ok(object)
}

/// What an update does to the stored object.
#[derive(Debug)]
pub(crate) enum UpdatePlan {
    /// Nothing changes: return the stored object.
    Unchanged,
    /// Store this (its resourceVersion is set by the writer).
    Write(Value),
    /// The last finalizer of a deleting object was removed: delete; this is the final state.
    Delete(Value),
}

fn finalizers(object: &Value) -> Vec<&str> {
    metadata(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// True when the object has at least one finalizer.
pub(crate) fn has_finalizers(object: &Value) -> bool {
    !finalizers(object).is_empty()
}

/// True when `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(object: &Value) -> bool {
    metadata(object)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

fn non_metadata_equal(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Compare as sets of keys (insertion order is irrelevant).
    let (x, y) = (strip(a), strip(b));
    x.len() == y.len() && x.iter().all(|(k, v)| y.get(k) == Some(v))
}

/// Computes the result of an update of `stored` with `input`.
pub(crate) fn plan_update(
    key: &ObjectKey,
    stored: &Value,
    mut input: Value,
    part: UpdatePart,
) -> Result<UpdatePlan> {
    let input_meta = metadata_mut(&mut input)?;
    check_identity(key, input_meta)?;
    let wanted_rv = input_meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !wanted_rv.is_empty() {
        let wanted: Revision = wanted_rv.parse().map_err(|_| {
            Error::invalid(
                "metadata.resourceVersion",
                format!("Invalid value: \"{wanted_rv}\": must be a decimal integer"),
            )
        })?;
        if wanted.to_string() != resource_version(stored) {
            return Err(Error::conflict(key, OPTIMISTIC_LOCK_MESSAGE));
        }
    }
    let uid = input_meta.get("uid").and_then(Value::as_str).unwrap_or("");
    let stored_uid = meta_str(stored, "uid");
    if !uid.is_empty() && uid != stored_uid {
        return Err(Error::conflict(
            key,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {stored_uid}"
            ),
        ));
    }

    let mut next = stored.clone();
    match part {
        UpdatePart::Status => {
            let status = input.as_object_mut().and_then(|m| m.remove("status"));
            let map = next
                .as_object_mut()
                .expect("stored objects are JSON objects");
            match status {
                Some(s) if !s.is_null() => {
                    map.insert("status".into(), s);
                }
                _ => {
                    map.remove("status");
                }
            }
            // managedFields track the status update too, so they come from the request
            // (`apiextensions-apiserver: customresource/status_strategy.go` PrepareForUpdate).
            let managed = metadata(&input)
                .and_then(|m| m.get("managedFields"))
                .cloned();
            if let (Some(managed), Some(meta)) = (
                managed.filter(|m| !m.is_null()),
                next.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                meta.insert("managedFields".into(), managed);
            }
        }
        UpdatePart::Main => {
            let input_meta = metadata(&input).cloned().unwrap_or_default();
            let mut meta = metadata(stored).cloned().unwrap_or_default();
            for field in USER_METADATA {
                match input_meta.get(field) {
                    Some(v) if !v.is_null() => {
                        meta.insert(field.into(), v.clone());
                    }
                    _ => {
                        meta.remove(field);
                    }
                }
            }
            let spec_changed = !non_metadata_equal(stored, &input_with_type(&input, stored));
            let mut map = input.as_object().cloned().unwrap_or_default();
            map.remove("status");
            for field in ["apiVersion", "kind"] {
                if let (None, Some(v)) = (map.get(field), stored.get(field)) {
                    map.insert(field.into(), v.clone());
                }
            }
            if let Some(status) = stored.get("status") {
                map.insert("status".into(), status.clone());
            }
            if spec_changed {
                let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
                meta.insert("generation".into(), Value::from(generation + 1));
            }
            map.insert("metadata".into(), Value::Object(meta));
            next = Value::Object(map);
            if is_deleting(stored) {
                let old = finalizers(stored);
                let added: Vec<&str> = finalizers(&next)
                    .into_iter()
                    .filter(|f| !old.contains(f))
                    .collect();
                if !added.is_empty() {
                    return Err(Error::invalid(
                        "metadata.finalizers",
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    ));
                }
            }
        }
    }
    if json_equal(&next, stored) {
        return Ok(UpdatePlan::Unchanged);
    }
    if is_deleting(&next) && !has_finalizers(&next) {
        return Ok(UpdatePlan::Delete(next));
    }
    Ok(UpdatePlan::Write(next))
}

/// `input` with `apiVersion`/`kind` taken from `stored` where missing.
fn input_with_type(input: &Value, stored: &Value) -> Value {
    let mut out = input.clone();
    if let Some(map) = out.as_object_mut() {
        for field in ["apiVersion", "kind"] {
            if let (false, Some(v)) = (map.contains_key(field), stored.get(field)) {
                map.insert(field.into(), v.clone());
            }
        }
    }
    out
}

/// Deep equality that ignores object key order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_equal(v, w))
        }
        _ => a == b,
    }
}

/// Checks a delete's preconditions against the stored object.
pub(crate) fn check_delete_preconditions(
    key: &ObjectKey,
    stored: &Value,
    opts: &DeleteOptions,
) -> Result<()> {
    if let Some(uid) = &opts.precondition_uid {
        let actual = meta_str(stored, "uid");
        if uid != actual {
            return Err(Error::conflict(
                key,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.precondition_resource_version {
        let actual = resource_version(stored);
        if rv != actual {
            return Err(Error::conflict(
                key,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

/// The options a delete collection applies to each object: the request's without its
/// preconditions (see [`crate::ObjectStore::delete_collection`]).
pub(crate) fn collection_delete_options(opts: DeleteOptions) -> DeleteOptions {
    DeleteOptions {
        precondition_uid: None,
        precondition_resource_version: None,
        ..opts
    }
}

/// What a delete does to a stored object.
#[derive(Debug, PartialEq)]
pub(crate) enum DeletePlan {
    /// Already deleting with the same finalizers: nothing to write; the stored object.
    Unchanged,
    /// Finalizers hold it: store this (marked as deleting, finalizers as the options ask).
    Finalize(Value),
    /// No finalizer holds it: remove it now. When the options removed the last
    /// garbage-collection finalizer, this is the object without it, to be stored first (a
    /// MODIFIED event) so that the DELETED event shows its final finalizers, as kube's
    /// `updateForGracefulDeletionAndFinalizers` does before it deletes.
    Remove(Option<Value>),
}

/// Decides a delete as kube-apiserver's generic store does: the garbage-collection
/// finalizers (`orphan`, `foregroundDeletion`) are set from the options
/// (`deletionFinalizersForGarbageCollection`), then an object with any finalizer is marked as
/// deleting and kept, and one without is removed.
pub(crate) fn plan_delete(stored: &Value, opts: &DeleteOptions) -> DeletePlan {
    let mut next = stored.clone();
    let changed = set_gc_finalizers(&mut next, opts);
    if !has_finalizers(&next) {
        return DeletePlan::Remove(changed.then_some(next));
    }
    match mark_deleting(&next) {
        Some(marked) => DeletePlan::Finalize(marked),
        None if changed => DeletePlan::Finalize(next),
        None => DeletePlan::Unchanged,
    }
}

/// Sets `orphan` / `foregroundDeletion` in `metadata.finalizers` as the delete's options and
/// the object's present finalizers decide (kube's `shouldOrphanDependents` and
/// `shouldDeleteDependents`: an explicit option wins, else a present finalizer stays). Returns
/// whether the set of finalizers changed.
fn set_gc_finalizers(object: &mut Value, opts: &DeleteOptions) -> bool {
    let present: Vec<String> = finalizers(object).into_iter().map(String::from).collect();
    let has = |f: &str| present.iter().any(|p| p == f);
    let (orphan, foreground) = match (opts.orphan_dependents, opts.propagation_policy) {
        (Some(true), _) | (_, Some(PropagationPolicy::Orphan)) => (true, false),
        (_, Some(PropagationPolicy::Foreground)) => (false, true),
        (_, Some(PropagationPolicy::Background)) => (false, false),
        (Some(false), None) => (false, has(FINALIZER_DELETE_DEPENDENTS)),
        (None, None) => (
            has(FINALIZER_ORPHAN_DEPENDENTS),
            has(FINALIZER_DELETE_DEPENDENTS) && !has(FINALIZER_ORPHAN_DEPENDENTS),
        ),
    };
    let mut next: Vec<Value> = present
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN_DEPENDENTS && *f != FINALIZER_DELETE_DEPENDENTS)
        .map(|f| Value::String(f.clone()))
        .collect();
    if orphan {
        next.push(FINALIZER_ORPHAN_DEPENDENTS.into());
    }
    if foreground {
        next.push(FINALIZER_DELETE_DEPENDENTS.into());
    }
    let before: std::collections::BTreeSet<&str> = present.iter().map(String::as_str).collect();
    let after: std::collections::BTreeSet<&str> = next.iter().filter_map(Value::as_str).collect();
    if before == after {
        return false;
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if next.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), Value::Array(next));
        }
    }
    true
}

/// The object marked as being deleted (`deletionTimestamp` now, grace period 0), or `None`
/// when it already is.
fn mark_deleting(stored: &Value) -> Option<Value> {
    if is_deleting(stored) {
        return None;
    }
    let mut next = stored.clone();
    let meta = next.get_mut("metadata").and_then(Value::as_object_mut)?;
    meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
    meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
    Some(next)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::key::ResourceKey;

    fn key() -> ObjectKey {
        ResourceKey::new("g", "things").object("ns", "a")
    }

    #[test]
    fn timestamps_have_second_precision_in_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn json_equality_ignores_key_order() {
        assert!(json_equal(
            &json!({"a": 1, "b": [{"x": 1, "y": 2}]}),
            &json!({"b": [{"y": 2, "x": 1}], "a": 1})
        ));
        assert!(!json_equal(&json!({"a": [1, 2]}), &json!({"a": [2, 1]})));
    }

    #[test]
    fn main_update_ignores_status_and_system_fields() {
        let stored = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u", "generation": 1, "resourceVersion": "5"}, "spec": {"x": 1}, "status": {"ok": true}});
        let input = json!({"metadata": {"name": "a", "uid": "", "generation": 9, "labels": {"l": "v"}}, "spec": {"x": 1}, "status": {"ok": false}});
        let UpdatePlan::Write(next) =
            plan_update(&key(), &stored, input, UpdatePart::Main).unwrap()
        else {
            panic!()
        };
        assert_eq!(next["status"], json!({"ok": true}));
        assert_eq!(next["metadata"]["generation"], json!(1));
        assert_eq!(next["metadata"]["uid"], json!("u"));
        assert_eq!(next["metadata"]["labels"], json!({"l": "v"}));
    }
}
