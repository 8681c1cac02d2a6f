//! Status writes that never overwrite someone else's change (Flux's `patch.Helper` idea, with
//! kube-apiserver's optimistic concurrency).
//!
//! A reconcile computes the new status from the object it read. The write carries that
//! object's `resourceVersion`; when someone else changed the object meanwhile (409 Conflict),
//! the latest object is read again and only what this reconcile changed — top-level status
//! fields, and conditions by type — is applied onto it, then written with the new
//! `resourceVersion`. A field or condition the reconcile did not touch keeps the other
//! writer's value.

use serde_json::{Map, Value};
use storage::{ObjectKey, ObjectStore, UpdatePart, WriteOptions};

/// Attempts of a status write before the conflict is returned (each after a fresh read).
const STATUS_WRITE_ATTEMPTS: usize = 5;

/// What a reconcile changed in a status: top-level fields and conditions by type, each set to
/// its new value or removed (`None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StatusPatch {
    fields: Vec<(String, Option<Value>)>,
    conditions: Vec<(String, Option<Value>)>,
}

impl StatusPatch {
    /// The changes from `old` to `new` (status objects; `null` is an empty status).
    pub(crate) fn between(old: &Value, new: &Value) -> Self {
        let empty = Map::new();
        let (old, new) = (
            old.as_object().unwrap_or(&empty),
            new.as_object().unwrap_or(&empty),
        );
        let mut patch = Self::default();
        for key in old
            .keys()
            .chain(new.keys().filter(|k| !old.contains_key(*k)))
        {
            if key == "conditions" || old.get(key) == new.get(key) {
                continue;
            }
            patch.fields.push((key.clone(), new.get(key).cloned()));
        }
        let (old_c, new_c) = (
            by_type(old.get("conditions")),
            by_type(new.get("conditions")),
        );
        for type_ in old_c.iter().chain(new_c.iter()).map(|(t, _)| t) {
            let now = new_c.iter().find(|(t, _)| t == type_).map(|(_, c)| *c);
            let before = old_c.iter().find(|(t, _)| t == type_).map(|(_, c)| *c);
            if before != now && !patch.conditions.iter().any(|(t, _)| t == type_) {
                patch.conditions.push((type_.clone(), now.cloned()));
            }
        }
        patch
    }

    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.conditions.is_empty()
    }

    /// Applies the changes to the object `target` (its `status` is created when missing).
    pub(crate) fn apply(&self, target: &mut Value) {
        if !target["status"].is_object() {
            target["status"] = Value::Object(Map::new());
        }
        let status = target["status"]
            .as_object_mut()
            .expect("made an object above");
        for (key, value) in &self.fields {
            match value {
                Some(v) => status.insert(key.clone(), v.clone()),
                None => status.remove(key),
            };
        }
        if self.conditions.is_empty() {
            return;
        }
        let list = status
            .entry("conditions")
            .or_insert_with(|| Value::Array(vec![]));
        if !list.is_array() {
            *list = Value::Array(vec![]);
        }
        let list = list.as_array_mut().expect("made an array above");
        for (type_, value) in &self.conditions {
            let at = list.iter().position(|c| c["type"] == type_.as_str());
            match (at, value) {
                (Some(i), Some(v)) => list[i] = v.clone(),
                (None, Some(v)) => list.push(v.clone()),
                (Some(i), None) => {
                    list.remove(i);
                }
                (None, None) => {}
            }
        }
    }
}

fn by_type(conditions: Option<&Value>) -> Vec<(String, &Value)> {
    conditions
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| Some((c["type"].as_str()?.to_owned(), c)))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `status` as the new status of `read` (the object as the reconcile read it, with its
/// `resourceVersion`), retrying on conflict as the module docs say. Returns the stored object,
/// or `None` when nothing changed or the object is gone (deleted, or replaced by an object
/// with another uid).
///
/// # Errors
/// The storage error of the last attempt ([`storage::Error::Conflict`] after
/// [`STATUS_WRITE_ATTEMPTS`] conflicts in a row).
pub(crate) async fn write_status(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    read: &Value,
    status: &Value,
) -> Result<Option<Value>, storage::Error> {
    let patch = StatusPatch::between(&read["status"], status);
    if patch.is_empty() {
        return Ok(None);
    }
    let mut current = read.clone();
    for attempt in 1..=STATUS_WRITE_ATTEMPTS {
        let mut next = current.clone();
        patch.apply(&mut next);
        match store
            .update(key, next, UpdatePart::Status, WriteOptions::default())
            .await
        {
            Ok(stored) => return Ok(Some(stored)),
            Err(storage::Error::NotFound { .. }) => return Ok(None),
            Err(e) if e.is_conflict() && attempt < STATUS_WRITE_ATTEMPTS => {
                tracing::debug!(attempt, "status write conflicted; re-reading");
                let latest = match store.get(key).await {
                    Ok(latest) => latest,
                    Err(storage::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                if latest["metadata"]["uid"] != read["metadata"]["uid"] {
                    return Ok(None);
                }
                current = latest;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests;
