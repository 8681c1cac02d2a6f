use std::sync::Arc;

use serde_json::json;
use storage::{SqliteConfig, SqliteStore};

use super::*;

async fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), SqliteConfig::default())
        .await
        .unwrap();
    (dir, store)
}

fn condition(type_: &str, status: &str, reason: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": reason,
           "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
}

#[test]
fn a_patch_holds_only_what_changed() {
    let old = json!({"observedGeneration": 1, "url": "a",
                     "conditions": [condition("Ready", "True", "Succeeded"),
                                    condition("Reconciling", "True", "Progressing")]});
    let new = json!({"observedGeneration": 2, "url": "a",
                     "conditions": [condition("Ready", "False", "Failed"),
                                    condition("FetchFailed", "True", "Failed")]});
    let patch = StatusPatch::between(&old, &new);
    let mut other = json!({"status": {"observedGeneration": 1, "url": "b", "extra": 1,
        "conditions": [condition("Ready", "True", "Succeeded"),
                       condition("Reconciling", "True", "Progressing"),
                       condition("Custom", "True", "Elsewhere")]}});
    patch.apply(&mut other);
    let status = &other["status"];
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["url"], "b",
        "a field this write did not change is kept"
    );
    assert_eq!(status["extra"], 1);
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Ready", "Custom", "FetchFailed"]);
    assert_eq!(status["conditions"][0]["status"], "False");
    assert!(StatusPatch::between(&new, &new).is_empty());
}

/// A reconcile read the object, another client patched `/status` (a condition and a field the
/// reconcile does not own, and `observedGeneration`, which it does), then the reconcile's write
/// lands: it conflicts, re-reads and applies only its own changes — neither is lost.
#[tokio::test]
async fn a_status_write_racing_another_clients_status_patch_loses_neither() {
    let (_dir, store) = store().await;
    let key = crate::controller::oci_repositories().object("default", "race");
    let created = store
        .create(
            &key,
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                   "metadata": {"name": "race", "namespace": "default"},
                   "spec": {"interval": "1m", "url": "oci://r.example/app"},
                   "status": {"observedGeneration": -1}}),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    // The reconcile has read `created`. Another client now writes the status.
    let mut theirs = created.clone();
    theirs["status"] = json!({"observedGeneration": -1, "url": "http://elsewhere/x",
                              "conditions": [condition("Custom", "True", "Elsewhere")]});
    store
        .update(&key, theirs, UpdatePart::Status, WriteOptions::default())
        .await
        .unwrap();
    // The reconcile's status, computed from `created`.
    let ours = json!({"observedGeneration": 1,
                      "conditions": [condition("Ready", "True", "Succeeded")]});
    let written = write_status(store.as_ref(), &key, &created, &ours)
        .await
        .unwrap()
        .expect("written");
    let stored = store.get(&key).await.unwrap();
    assert_eq!(stored, written);
    let status = &stored["status"];
    assert_eq!(status["observedGeneration"], 1, "the reconcile's change");
    assert_eq!(
        status["url"], "http://elsewhere/x",
        "the other client's change"
    );
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Custom", "Ready"]);
}
