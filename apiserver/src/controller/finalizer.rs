//! Flux's finalizer (`finalizers.fluxcd.io`) on a stored object, kind-neutral: added before a
//! source kind stores anything, removed once its artifacts are gone (`kube-rs/kube:
//! kube-runtime/src/finalizer.rs` for the idea). Both write the object as read, so a
//! concurrent change is a 409 and the reconcile retries.

use serde_json::Value;
use storage::{ObjectKey, ObjectStore, UpdatePart, WriteOptions};

use openapi::meta::SOURCE_FINALIZER;

/// Whether the stored object `read` carries the finalizer.
pub(crate) fn has(read: &Value) -> bool {
    read["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == SOURCE_FINALIZER))
}

/// Adds the finalizer when missing; returns the object as stored.
///
/// # Errors
/// The store's error (409 on a concurrent change).
pub(crate) async fn ensure(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    mut read: Value,
) -> Result<Value, storage::Error> {
    if has(&read) {
        return Ok(read);
    }
    let list = read["metadata"]
        .as_object_mut()
        .expect("objects have metadata")
        .entry("finalizers")
        .or_insert_with(|| Value::Array(vec![]));
    if let Some(a) = list.as_array_mut() {
        a.push(Value::String(SOURCE_FINALIZER.into()));
    }
    store
        .update(key, read, UpdatePart::Main, WriteOptions::default())
        .await
}

/// Removes the finalizer (the object's deletion then completes).
///
/// # Errors
/// The store's error (409 on a concurrent change).
pub(crate) async fn remove(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    mut read: Value,
) -> Result<(), storage::Error> {
    if let Some(list) = read["metadata"]["finalizers"].as_array_mut() {
        list.retain(|f| f != SOURCE_FINALIZER);
    }
    store
        .update(key, read, UpdatePart::Main, WriteOptions::default())
        .await
        .map(drop)
}
