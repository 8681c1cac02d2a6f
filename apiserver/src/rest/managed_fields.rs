//! Field ownership (`metadata.managedFields`, `FieldsV1`) and server-side apply, following the
//! structured-merge-diff rules kube-apiserver applies to custom resources (reference §3.9):
//!
//! - A non-apply write (`Update`) takes ownership of the fields whose value it changed, removing
//!   them from other managers, never conflicting.
//! - An apply (`Apply`) owns exactly the fields in its configuration. A field it sets to a value
//!   other than the live one, while another manager owns it, is a conflict (409, cause
//!   `FieldManagerConflict`) unless `force=true`, which takes the field over. Fields the manager
//!   applied before and no longer applies are removed when nobody else owns them.
//! - Lists and scalars are atomic leaves; maps are merged key by key. (Flux's CRDs declare their
//!   lists atomic, except `status.conditions`, which only the controller writes.)
//! - A write whose body changes `managedFields` itself (Flux's `PatchReplaceFieldsManagers`) is
//!   stored as sent.

use std::collections::BTreeSet;

use openapi::Version;
use serde_json::{Map, Value, json};

/// A field path: `["spec", "ref", "tag"]`.
pub type FieldPath = Vec<String>;
/// A set of owned field paths (leaves).
pub type FieldSet = BTreeSet<FieldPath>;

/// The operation recorded in a managedFields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One conflict of an apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The apiVersion of that manager's entry.
    pub api_version: String,
    /// The field, as upstream prints it: `.spec.interval`.
    pub field: String,
    /// The field's path.
    pub path: FieldPath,
}

const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The leaf paths of the user-owned parts of an object: `metadata` minus system fields, `spec`,
/// `status` (apiVersion and kind are not owned).
pub fn field_set(object: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(meta) = value.as_object() {
                    for (k, v) in meta {
                        if !SYSTEM_METADATA.contains(&k.as_str()) {
                            leaves(v, vec!["metadata".into(), k.clone()], &mut out);
                        }
                    }
                }
            }
            _ => leaves(value, vec![key.clone()], &mut out),
        }
    }
    out
}

fn leaves(value: &Value, path: FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let mut p = path.clone();
                p.push(k.clone());
                leaves(v, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object()?.get(k))
}

/// Paths whose value differs between `old` and `new` (present in `new`).
fn changed(old: Option<&Value>, new: &Value) -> FieldSet {
    field_set(new)
        .into_iter()
        .filter(|p| old.and_then(|o| lookup(o, p)) != lookup(new, p))
        .collect()
}

/// `true` when one path is a prefix of the other (they overlap).
fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Encodes a set as `FieldsV1`: `{"f:spec":{"f:url":{}}}`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for key in path {
            node = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("built as objects");
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1`. `.` markers are dropped; list keys (`k:`, `v:`, `i:`) make their list an
/// atomic leaf.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(value: &Value, path: FieldPath, out: &mut FieldSet) {
        let Some(map) = value.as_object() else { return };
        let mut any = false;
        for (k, v) in map {
            if let Some(name) = k.strip_prefix("f:") {
                any = true;
                let mut p = path.clone();
                p.push(name.to_string());
                walk(v, p, out);
            } else if k != "." {
                any = true;
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
        if !any && !path.is_empty() {
            out.insert(path);
        }
    }
    let mut out = FieldSet::new();
    walk(value, vec![], &mut out);
    out
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn same_entry(
    entry: &Value,
    manager: &str,
    operation: Operation,
    subresource: Option<&str>,
) -> bool {
    entry["manager"] == manager
        && entry["operation"] == operation.as_str()
        && entry["subresource"].as_str() == subresource
}

/// Records a write by `manager` into `object.metadata.managedFields`, given the live object
/// (`None` on create). Fields changed by this write move to this manager's entry.
pub fn record(
    object: &mut Value,
    live: Option<&Value>,
    manager: &str,
    operation: Operation,
    version: Version,
    subresource: Option<&str>,
) {
    let live_entries = live.map(entries).unwrap_or_default();
    let sent = &object["metadata"]["managedFields"];
    if live.is_some() && !sent.is_null() && *sent != Value::Array(live_entries.clone()) {
        return; // the client rewrote managedFields itself
    }
    let owned = match operation {
        Operation::Update => changed(live, object),
        Operation::Apply => unreachable!("apply records through `apply`"),
    };
    let updated = transfer(
        live_entries,
        &owned,
        &owned,
        (manager, operation, subresource),
        version,
        object,
    );
    set_entries(object, updated);
}

fn set_entries(object: &mut Value, entries: Vec<Value>) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return; // not an object: validation refuses it later
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Gives `owned` to (manager, operation, subresource) and takes `taken` away from every other
/// entry (fields owned with the same value stay shared); drops paths that no longer exist in
/// `object` and entries left empty.
fn transfer(
    entries: Vec<Value>,
    owned: &FieldSet,
    taken: &FieldSet,
    (manager, operation, subresource): (&str, Operation, Option<&str>),
    version: Version,
    object: &Value,
) -> Vec<Value> {
    let present = field_set(object);
    let exists = |p: &FieldPath| present.iter().any(|q| overlaps(p, q));
    let mut out = Vec::new();
    let mut mine = FieldSet::new();
    // The manager's previous entry: its time is kept when its fields do not change, as
    // kube-apiserver's managed-fields updater does, so a no-op write stays a no-op.
    let mut previous: Option<(FieldSet, Value)> = None;
    for entry in entries {
        let mut set = from_fields_v1(&entry["fieldsV1"]);
        if same_entry(&entry, manager, operation, subresource) {
            if operation == Operation::Update {
                mine.extend(set.iter().cloned());
            }
            previous = Some((set, entry["time"].clone()));
            continue;
        }
        set.retain(|p| exists(p) && !taken.iter().any(|o| overlaps(o, p)));
        if set.is_empty() {
            continue;
        }
        let mut entry = entry;
        entry["fieldsV1"] = to_fields_v1(&set);
        out.push(entry);
    }
    mine.extend(owned.iter().cloned());
    mine.retain(|p| exists(p));
    // An apply entry stays even when empty: the manager still applied an (empty) configuration.
    if !mine.is_empty() || operation == Operation::Apply {
        let time = match previous {
            Some((set, time)) if set == mine && time.is_string() => time,
            _ => json!(now()),
        };
        let mut entry = json!({
            "manager": manager,
            "operation": operation.as_str(),
            "apiVersion": version.api_version(),
            "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&mine),
        });
        if let Some(sub) = subresource {
            entry["subresource"] = json!(sub);
        }
        out.push(entry);
    }
    out
}

/// Server-side apply of `config` (the applied configuration, in `version`, as JSON) by
/// `manager` onto `live` (the live object in the same version; `None` when it does not exist).
/// Returns the merged object with managedFields updated.
///
/// # Errors
/// The conflicts, when `force` is false and another manager owns a field this apply changes.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    version: Version,
    subresource: Option<&str>,
) -> Result<Value, Vec<Conflict>> {
    let mut config = config.clone();
    if let Some(meta) = config["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    let applied = field_set(&config);
    let live_entries = live.map(entries).unwrap_or_default();
    let mut conflicts = Vec::new();
    let mut previous = FieldSet::new();
    for entry in &live_entries {
        let set = from_fields_v1(&entry["fieldsV1"]);
        if same_entry(entry, manager, Operation::Apply, subresource) {
            previous = set;
            continue;
        }
        for path in &set {
            for mine in applied.iter().filter(|a| overlaps(a, path)) {
                let live_value = live.and_then(|l| lookup(l, mine));
                if live_value != lookup(&config, mine) {
                    conflicts.push(Conflict {
                        manager: entry["manager"].as_str().unwrap_or("").to_string(),
                        api_version: entry["apiVersion"].as_str().unwrap_or("").to_string(),
                        field: format!(".{}", mine.join(".")),
                        path: mine.clone(),
                    });
                }
            }
        }
    }
    conflicts.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    // Fields this manager applied before and dropped now go, unless someone else owns them.
    let others: FieldSet = live_entries
        .iter()
        .filter(|e| !same_entry(e, manager, Operation::Apply, subresource))
        .flat_map(|e| from_fields_v1(&e["fieldsV1"]))
        .collect();
    for dropped in previous.difference(&applied) {
        if !others.iter().any(|o| overlaps(o, dropped)) {
            remove(&mut merged, dropped);
        }
    }
    merge(&mut merged, &config);
    let taken: FieldSet = conflicts.iter().map(|c| c.path.clone()).collect();
    let updated = transfer(
        live_entries,
        &applied,
        &taken,
        (manager, Operation::Apply, subresource),
        version,
        &merged,
    );
    set_entries(&mut merged, updated);
    Ok(merged)
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        match node.get_mut(key) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

/// Deep merge: maps key by key, everything else replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(spec: Value) -> Value {
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
               "metadata": {"name": "x", "namespace": "d", "labels": {"a": "1"}}, "spec": spec})
    }

    #[test]
    fn fields_v1_round_trips() {
        let set = field_set(&obj(json!({"url": "oci://r/x", "ref": {"tag": "1"}})));
        let encoded = to_fields_v1(&set);
        assert_eq!(
            encoded,
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:ref": {"f:tag": {}}, "f:url": {}}})
        );
        assert_eq!(from_fields_v1(&encoded), set);
    }

    #[test]
    fn a_write_that_changes_no_owned_field_keeps_the_entry_time() {
        let mut live = obj(json!({"url": "oci://r/x", "interval": "5m"}));
        live["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Update",
            "apiVersion": "source.toolkit.fluxcd.io/v1", "time": "2000-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:interval": {}}}}]);
        let mut same = live.clone();
        record(
            &mut same,
            Some(&live),
            "m",
            Operation::Update,
            Version::V1,
            None,
        );
        assert_eq!(same, live, "a no-op write must leave the object as it was");
        let mut changed = live.clone();
        changed["spec"]["url"] = json!("oci://r/y");
        record(
            &mut changed,
            Some(&live),
            "m",
            Operation::Update,
            Version::V1,
            None,
        );
        let entry = &changed["metadata"]["managedFields"][0];
        assert_ne!(entry["time"], "2000-01-01T00:00:00Z");
        assert_eq!(
            entry["fieldsV1"],
            json!({"f:spec": {"f:interval": {}, "f:url": {}}})
        );
    }

    #[test]
    fn an_update_records_only_what_it_changed() {
        let live = obj(json!({"url": "oci://r/x", "interval": "5m"}));
        let mut new = live.clone();
        new["spec"]["interval"] = json!("10m");
        record(
            &mut new,
            Some(&live),
            "kubectl-edit",
            Operation::Update,
            Version::V1,
            None,
        );
        let entries = new["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["manager"], "kubectl-edit");
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({"f:spec": {"f:interval": {}}})
        );
    }

    #[test]
    fn apply_conflicts_with_another_owner_unless_forced() {
        let mut live = obj(json!({"url": "oci://r/x", "interval": "5m"}));
        record(
            &mut live,
            None,
            "kubectl-create",
            Operation::Update,
            Version::V1,
            None,
        );
        let config = obj(json!({"url": "oci://r/x", "interval": "1m"}));
        let conflicts = apply(Some(&live), &config, "flux", false, Version::V1, None).unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, "kubectl-create");
        assert_eq!(conflicts[0].field, ".spec.interval");
        let merged = apply(Some(&live), &config, "flux", true, Version::V1, None).unwrap();
        assert_eq!(merged["spec"]["interval"], "1m");
        let managers: Vec<_> = merged["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_string(),
                    from_fields_v1(&e["fieldsV1"]),
                )
            })
            .collect();
        let flux = &managers.iter().find(|(m, _)| m == "flux").unwrap().1;
        assert!(flux.contains(&vec!["spec".to_string(), "interval".to_string()]));
        let create = &managers
            .iter()
            .find(|(m, _)| m == "kubectl-create")
            .unwrap()
            .1;
        assert!(!create.contains(&vec!["spec".to_string(), "interval".to_string()]));
    }

    #[test]
    fn applying_the_same_value_is_not_a_conflict() {
        let mut live = obj(json!({"url": "oci://r/x"}));
        record(
            &mut live,
            None,
            "kubectl-create",
            Operation::Update,
            Version::V1,
            None,
        );
        let merged = apply(
            Some(&live),
            &obj(json!({"url": "oci://r/x"})),
            "flux",
            false,
            Version::V1,
            None,
        );
        assert!(merged.is_ok());
    }

    #[test]
    fn a_field_dropped_from_the_configuration_is_removed() {
        let first = obj(json!({"url": "oci://r/x", "suspend": true}));
        let live = apply(None, &first, "flux", false, Version::V1, None).unwrap();
        assert_eq!(live["spec"]["suspend"], true);
        let second = obj(json!({"url": "oci://r/x"}));
        let merged = apply(Some(&live), &second, "flux", false, Version::V1, None).unwrap();
        assert!(merged["spec"].get("suspend").is_none(), "{merged}");
    }

    #[test]
    fn a_client_rewriting_managed_fields_is_taken_as_is() {
        let mut live = obj(json!({"url": "oci://r/x"}));
        record(&mut live, None, "a", Operation::Update, Version::V1, None);
        let mut new = live.clone();
        new["metadata"]["managedFields"] = json!([{"manager": "b", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {}}]);
        record(
            &mut new,
            Some(&live),
            "kubectl-patch",
            Operation::Update,
            Version::V1,
            None,
        );
        assert_eq!(new["metadata"]["managedFields"][0]["manager"], "b");
    }
}
