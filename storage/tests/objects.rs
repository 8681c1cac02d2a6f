//! Create, get, update, status, delete and finalizer semantics.

mod support;

use serde_json::json;
use storage::{
    DeleteOptions, DeleteOutcome, Error, ListOptions, ObjectStore, PropagationPolicy, UpdatePart,
    WriteOptions,
};
use support::*;

const W: WriteOptions = WriteOptions { dry_run: false };

async fn create_sets_system_metadata_and_keeps_the_given_status(b: Backend) {
    let t = b.open().await;
    let mut obj = repo("a");
    obj["status"] = json!({"x": 1});
    obj["metadata"]["generation"] = json!(7);
    obj["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    let stored = t.store.create(&key("ns", "a"), obj, W).await.unwrap();
    let m = &stored["metadata"];
    assert_eq!(m["namespace"], "ns");
    assert_eq!(m["generation"], 1);
    assert_eq!(m["uid"].as_str().unwrap().len(), 36);
    let ts = m["creationTimestamp"].as_str().unwrap();
    assert!(ts.len() == 20 && ts.ends_with('Z'), "{ts}");
    assert!(m.get("deletionTimestamp").is_none());
    assert_eq!(stored["status"], json!({"x": 1}));
    assert_eq!(rv(&stored), t.rev(1));
    assert_eq!(t.store.get(&key("ns", "a")).await.unwrap(), stored);
    assert_eq!(t.revisions().await, 1);
}

async fn create_errors_match_kubernetes(b: Backend) {
    let t = b.open().await;
    t.store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    let err = t
        .store
        .create(&key("ns", "a"), repo("a"), W)
        .await
        .unwrap_err();
    assert!(err.is_already_exists());
    assert_eq!(
        err.to_string(),
        r#"ocirepositories.source.toolkit.fluxcd.io "a" already exists"#
    );

    let mut with_rv = repo("b");
    with_rv["metadata"]["resourceVersion"] = json!("3");
    match t
        .store
        .create(&key("ns", "b"), with_rv, W)
        .await
        .unwrap_err()
    {
        Error::Invalid { field, message } => {
            assert_eq!(field, "metadata.resourceVersion");
            assert_eq!(
                message,
                "resourceVersion should not be set on objects to be created"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut other_ns = repo("c");
    other_ns["metadata"]["namespace"] = json!("elsewhere");
    let err = t
        .store
        .create(&key("ns", "c"), other_ns, W)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "metadata.namespace"),
        "{err:?}"
    );
    let err = t
        .store
        .create(&key("ns", "d"), repo("not-d"), W)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "metadata.name"),
        "{err:?}"
    );
    let err = t
        .store
        .create(&key("ns", ""), repo(""), W)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "metadata.name"),
        "{err:?}"
    );
    // failed writes do not consume revisions
    assert_eq!(t.revisions().await, 1);
}

async fn get_of_a_missing_object_is_not_found(b: Backend) {
    let t = b.open().await;
    let err = t.store.get(&key("ns", "x")).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.status_code(), 404);
    assert_eq!(
        err.to_string(),
        r#"ocirepositories.source.toolkit.fluxcd.io "x" not found"#
    );
    let err = t
        .store
        .update(&key("ns", "x"), repo("x"), UpdatePart::Main, W)
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let err = t
        .store
        .delete(&key("ns", "x"), DeleteOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

async fn update_with_a_stale_resource_version_conflicts(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let mut change = v1.clone();
    change["spec"]["url"] = json!("oci://example.com/other");
    let v2 = t
        .store
        .update(&k, change.clone(), UpdatePart::Main, W)
        .await
        .unwrap();
    assert!(rv(&v2) > rv(&v1));
    // v1's resourceVersion is stale now
    change["spec"]["url"] = json!("oci://example.com/third");
    let err = t
        .store
        .update(&k, change.clone(), UpdatePart::Main, W)
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(err.status_code(), 409);
    assert_eq!(
        err.to_string(),
        r#"Operation cannot be fulfilled on ocirepositories.source.toolkit.fluxcd.io "a": the object has been modified; please apply your changes to the latest version and try again"#
    );
    // an empty resourceVersion is unconditional
    change["metadata"]["resourceVersion"] = json!("");
    let v3 = t
        .store
        .update(&k, change, UpdatePart::Main, W)
        .await
        .unwrap();
    assert_eq!(v3["spec"]["url"], "oci://example.com/third");
    // a different uid is a precondition failure
    let mut wrong_uid = v3.clone();
    wrong_uid["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let err = t
        .store
        .update(&k, wrong_uid, UpdatePart::Main, W)
        .await
        .unwrap_err();
    assert!(
        err.is_conflict() && err.to_string().contains("Precondition failed: UID"),
        "{err}"
    );
    // an unparsable resourceVersion is invalid
    let mut bad = v3.clone();
    bad["metadata"]["resourceVersion"] = json!("abc");
    let err = t
        .store
        .update(&k, bad, UpdatePart::Main, W)
        .await
        .unwrap_err();
    assert!(err.is_invalid(), "{err:?}");
}

async fn generation_bumps_only_on_spec_changes(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    // metadata-only change: new resourceVersion, same generation
    let labelled = with_labels(v1.clone(), json!({"team": "a"}));
    let v2 = t
        .store
        .update(&k, labelled, UpdatePart::Main, W)
        .await
        .unwrap();
    assert_eq!(v2["metadata"]["generation"], 1);
    assert_eq!(v2["metadata"]["labels"], json!({"team": "a"}));
    assert!(rv(&v2) > rv(&v1));
    // status change: generation unchanged
    let mut st = v2.clone();
    st["status"] = json!({"observedGeneration": 1});
    let v3 = t.store.update(&k, st, UpdatePart::Status, W).await.unwrap();
    assert_eq!(v3["metadata"]["generation"], 1);
    assert_eq!(v3["status"], json!({"observedGeneration": 1}));
    // spec change: generation + 1, status kept
    let mut sp = v3.clone();
    sp["spec"]["interval"] = json!("10m");
    sp["status"] = json!({"ignored": true});
    let v4 = t.store.update(&k, sp, UpdatePart::Main, W).await.unwrap();
    assert_eq!(v4["metadata"]["generation"], 2);
    assert_eq!(v4["status"], json!({"observedGeneration": 1}));
    assert_eq!(v4["metadata"]["uid"], v1["metadata"]["uid"]);
    assert_eq!(
        v4["metadata"]["creationTimestamp"],
        v1["metadata"]["creationTimestamp"]
    );
}

async fn status_updates_never_touch_spec_or_metadata(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let mut st = v1.clone();
    st["spec"]["url"] = json!("oci://changed");
    st["metadata"]["labels"] = json!({"x": "y"});
    st["status"] = json!({"ready": true});
    let v2 = t.store.update(&k, st, UpdatePart::Status, W).await.unwrap();
    assert_eq!(v2["spec"], v1["spec"]);
    assert!(v2["metadata"].get("labels").is_none());
    assert_eq!(v2["status"], json!({"ready": true}));
    // managedFields come from a status update's request, when given
    let mut st = v2.clone();
    st["metadata"]["managedFields"] =
        json!([{"manager": "controller", "operation": "Update", "subresource": "status"}]);
    let v3 = t.store.update(&k, st, UpdatePart::Status, W).await.unwrap();
    assert_eq!(v3["metadata"]["managedFields"][0]["manager"], "controller");
    let mut st = v3.clone();
    st["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    st["status"] = json!({"ready": false});
    let v4 = t.store.update(&k, st, UpdatePart::Status, W).await.unwrap();
    assert_eq!(
        v4["metadata"]["managedFields"],
        v3["metadata"]["managedFields"]
    );
    // a stale status update conflicts too
    let mut stale = v1.clone();
    stale["status"] = json!({"ready": false});
    assert!(
        t.store
            .update(&k, stale, UpdatePart::Status, W)
            .await
            .unwrap_err()
            .is_conflict()
    );
}

async fn a_write_that_changes_nothing_keeps_the_resource_version(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let same = t
        .store
        .update(&k, v1.clone(), UpdatePart::Main, W)
        .await
        .unwrap();
    assert_eq!(same, v1);
    // key order does not matter
    let reordered: serde_json::Value = serde_json::from_str(
        &serde_json::to_string(&json!({"spec": v1["spec"], "metadata": v1["metadata"], "kind": v1["kind"], "apiVersion": v1["apiVersion"]})).unwrap(),
    )
    .unwrap();
    assert_eq!(
        rv(&t
            .store
            .update(&k, reordered, UpdatePart::Main, W)
            .await
            .unwrap()),
        rv(&v1)
    );
    assert_eq!(
        rv(&t
            .store
            .update(&k, v1.clone(), UpdatePart::Status, W)
            .await
            .unwrap()),
        rv(&v1)
    );
    assert_eq!(t.store.current_revision().await.unwrap().0, rv(&v1));
}

async fn delete_without_finalizers_removes_the_object(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let DeleteOutcome::Deleted(last) = t.store.delete(&k, DeleteOptions::default()).await.unwrap()
    else {
        panic!("expected Deleted")
    };
    assert_eq!(last["spec"], v1["spec"]);
    assert_eq!(rv(&last), rv(&v1) + 1, "the deletion revision");
    assert!(t.store.get(&k).await.unwrap_err().is_not_found());
    // the name can be reused
    t.store.create(&k, repo("a"), W).await.unwrap();
}

async fn delete_preconditions_conflict_on_mismatch(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let wrong_uid = DeleteOptions {
        precondition_uid: Some("nope".into()),
        ..Default::default()
    };
    let err = t.store.delete(&k, wrong_uid).await.unwrap_err();
    assert!(err.is_conflict());
    assert!(
        err.to_string()
            .contains("Precondition failed: UID in precondition: nope"),
        "{err}"
    );
    let wrong_rv = DeleteOptions {
        precondition_resource_version: Some("999".into()),
        ..Default::default()
    };
    assert!(
        t.store
            .delete(&k, wrong_rv)
            .await
            .unwrap_err()
            .is_conflict()
    );
    let right = DeleteOptions {
        precondition_uid: Some(v1["metadata"]["uid"].as_str().unwrap().into()),
        precondition_resource_version: Some(rv(&v1).to_string()),
        ..Default::default()
    };
    assert!(matches!(
        t.store.delete(&k, right).await.unwrap(),
        DeleteOutcome::Deleted(_)
    ));
}

async fn finalizers_keep_a_deleted_object_until_the_last_one_is_removed(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    t.store
        .create(&k, with_finalizer(repo("a"), "example.com/f"), W)
        .await
        .unwrap();
    let DeleteOutcome::Finalizing(marked) =
        t.store.delete(&k, DeleteOptions::default()).await.unwrap()
    else {
        panic!("expected Finalizing")
    };
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(marked["metadata"]["generation"], 1);
    // deleting again changes nothing
    let DeleteOutcome::Finalizing(again) =
        t.store.delete(&k, DeleteOptions::default()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(rv(&again), rv(&marked));
    // the deletionTimestamp cannot be cleared by an update
    let mut cleared = marked.clone();
    cleared["metadata"]["deletionTimestamp"] = serde_json::Value::Null;
    cleared["metadata"]["labels"] = json!({"a": "b"});
    let updated = t
        .store
        .update(&k, cleared, UpdatePart::Main, W)
        .await
        .unwrap();
    assert_eq!(
        updated["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    // no new finalizers while deleting
    let mut more = updated.clone();
    more["metadata"]["finalizers"] = json!(["example.com/f", "example.com/g"]);
    let err = t
        .store
        .update(&k, more, UpdatePart::Main, W)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "metadata.finalizers"),
        "{err:?}"
    );
    // removing the last finalizer deletes it
    let mut done = updated.clone();
    done["metadata"]["finalizers"] = json!([]);
    let last = t.store.update(&k, done, UpdatePart::Main, W).await.unwrap();
    assert_eq!(rv(&last), rv(&updated) + 1);
    assert!(t.store.get(&k).await.unwrap_err().is_not_found());
}

fn policy(p: PropagationPolicy) -> DeleteOptions {
    DeleteOptions {
        propagation_policy: Some(p),
        ..Default::default()
    }
}

/// kube-apiserver's generic store keeps the garbage collector's choice as a finalizer
/// (`deletionFinalizersForGarbageCollection`): Foreground and Orphan hold the object,
/// Background lets it go, and a later delete's explicit policy replaces an earlier one.
async fn propagation_policies_become_the_garbage_collectors_finalizers(b: Backend) {
    let t = b.open().await;
    let finalizers = |o: &serde_json::Value| o["metadata"]["finalizers"].clone();
    // Foreground: held by foregroundDeletion, marked as deleting, next to other finalizers
    let k = key("ns", "fg");
    t.store
        .create(&k, with_finalizer(repo("fg"), "example.com/f"), W)
        .await
        .unwrap();
    let DeleteOutcome::Finalizing(fg) = t
        .store
        .delete(&k, policy(PropagationPolicy::Foreground))
        .await
        .unwrap()
    else {
        panic!("Foreground holds the object")
    };
    assert_eq!(
        finalizers(&fg),
        json!(["example.com/f", "foregroundDeletion"])
    );
    assert!(fg["metadata"]["deletionTimestamp"].is_string());
    // a second delete with Orphan swaps the finalizer, keeping the deletionTimestamp
    let DeleteOutcome::Finalizing(orphan) = t
        .store
        .delete(&k, policy(PropagationPolicy::Orphan))
        .await
        .unwrap()
    else {
        panic!("Orphan holds the object")
    };
    assert_eq!(finalizers(&orphan), json!(["example.com/f", "orphan"]));
    assert_eq!(
        orphan["metadata"]["deletionTimestamp"],
        fg["metadata"]["deletionTimestamp"]
    );
    assert!(rv(&orphan) > rv(&fg));
    // no policy: the finalizers stay as they are
    let DeleteOutcome::Finalizing(same) =
        t.store.delete(&k, DeleteOptions::default()).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(rv(&same), rv(&orphan));
    // the garbage collector removes its finalizer by update; the object's own one still holds
    let mut gc_done = same.clone();
    gc_done["metadata"]["finalizers"] = json!(["example.com/f"]);
    t.store
        .update(&k, gc_done, UpdatePart::Main, W)
        .await
        .unwrap();
    assert_eq!(
        finalizers(&t.store.get(&k).await.unwrap()),
        json!(["example.com/f"])
    );

    // Orphan on an object without finalizers: held by orphan alone
    let k = key("ns", "or");
    t.store.create(&k, repo("or"), W).await.unwrap();
    let DeleteOutcome::Finalizing(held) = t
        .store
        .delete(&k, policy(PropagationPolicy::Orphan))
        .await
        .unwrap()
    else {
        panic!("Orphan holds an object without finalizers")
    };
    assert_eq!(finalizers(&held), json!(["orphan"]));
    // Background afterwards drops the orphan finalizer, and nothing holds it any more
    assert!(matches!(
        t.store
            .delete(&k, policy(PropagationPolicy::Background))
            .await
            .unwrap(),
        DeleteOutcome::Deleted(_)
    ));
    assert!(t.store.get(&k).await.unwrap_err().is_not_found());

    // the deprecated orphanDependents: true is Orphan; Background deletes at once
    let k = key("ns", "legacy");
    t.store.create(&k, repo("legacy"), W).await.unwrap();
    let legacy = DeleteOptions {
        orphan_dependents: Some(true),
        ..Default::default()
    };
    let DeleteOutcome::Finalizing(held) = t.store.delete(&k, legacy).await.unwrap() else {
        panic!("orphanDependents holds the object")
    };
    assert_eq!(finalizers(&held), json!(["orphan"]));
    let k = key("ns", "bg");
    t.store.create(&k, repo("bg"), W).await.unwrap();
    assert!(matches!(
        t.store
            .delete(&k, policy(PropagationPolicy::Background))
            .await
            .unwrap(),
        DeleteOutcome::Deleted(_)
    ));
}

async fn delete_collection_respects_selectors_and_finalizers(b: Backend) {
    let t = b.open().await;
    for (ns, name, team) in [
        ("a", "x", "red"),
        ("a", "y", "blue"),
        ("b", "z", "red"),
        ("b", "w", "red"),
    ] {
        let mut obj = with_labels(repo(name), json!({"team": team}));
        if name == "w" {
            obj = with_finalizer(obj, "example.com/f");
        }
        t.store.create(&key(ns, name), obj, W).await.unwrap();
    }
    let opts = ListOptions {
        label_selector: Some("team=red".into()),
        ..Default::default()
    };
    let affected = t
        .store
        .delete_collection(&repos(), None, &opts, DeleteOptions::default())
        .await
        .unwrap();
    let names: Vec<_> = affected
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["x", "w", "z"]);
    let left = t
        .store
        .list(&repos(), None, &ListOptions::default())
        .await
        .unwrap();
    let names: Vec<_> = left
        .items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["y", "w"], "w stays, finalizing");
    assert!(left.items[1]["metadata"]["deletionTimestamp"].is_string());
    // namespace-scoped, dry run
    let dry = t
        .store
        .delete_collection(
            &repos(),
            Some("a"),
            &ListOptions::default(),
            DeleteOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dry.len(), 1);
    assert!(t.store.get(&key("a", "y")).await.is_ok());
    let bad = ListOptions {
        field_selector: Some("spec.url=x".into()),
        ..Default::default()
    };
    let err = t
        .store
        .delete_collection(&repos(), None, &bad, DeleteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidFieldSelector { .. }));
    // a propagation policy applies to each object, as kube's DeleteCollection deletes each
    // with the request's options; preconditions are not applied to the items
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        precondition_uid: Some("not-any-items-uid".into()),
        ..Default::default()
    };
    let held = t
        .store
        .delete_collection(&repos(), Some("a"), &ListOptions::default(), orphan)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["metadata"]["finalizers"], json!(["orphan"]));
    assert!(held[0]["metadata"]["deletionTimestamp"].is_string());
    let background = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let gone = t
        .store
        .delete_collection(&repos(), Some("a"), &ListOptions::default(), background)
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert!(
        gone[0]["metadata"].get("finalizers").is_none(),
        "{}",
        gone[0]
    );
    assert!(
        t.store
            .get(&key("a", "y"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn dry_run_writes_change_nothing(b: Backend) {
    let t = b.open().await;
    let dry = WriteOptions { dry_run: true };
    let k = key("ns", "a");
    let created = t.store.create(&k, repo("a"), dry).await.unwrap();
    assert!(created["metadata"].get("resourceVersion").is_none());
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(t.store.get(&k).await.unwrap_err().is_not_found());
    assert_eq!(t.revisions().await, 0);

    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let mut change = v1.clone();
    change["spec"]["url"] = json!("oci://dry");
    let would = t
        .store
        .update(&k, change, UpdatePart::Main, dry)
        .await
        .unwrap();
    assert_eq!(would["spec"]["url"], "oci://dry");
    assert_eq!(would["metadata"]["generation"], 2);
    assert_eq!(t.store.get(&k).await.unwrap(), v1);
    let out = t
        .store
        .delete(
            &k,
            DeleteOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(out, DeleteOutcome::Deleted(_)));
    assert_eq!(t.store.get(&k).await.unwrap(), v1);
    assert_eq!(t.store.current_revision().await.unwrap().0, rv(&v1));
}

async fn data_and_revisions_survive_a_reopen(b: Backend) {
    let t = b.open().await;
    let v = t.store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    t.close().await;
    assert!(matches!(
        t.store.get(&key("ns", "a")).await.unwrap_err(),
        Error::Closed
    ));
    // SQLite: the same file opened again; etcd: another client, as another replica
    let reopened = t.reopen().await;
    assert_eq!(reopened.get(&key("ns", "a")).await.unwrap(), v);
    let v2 = reopened
        .create(&key("ns", "b"), repo("b"), W)
        .await
        .unwrap();
    assert!(rv(&v2) > rv(&v));
}

async fn concurrent_writers_get_distinct_increasing_revisions(b: Backend) {
    let t = b.open().await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for j in 0..10 {
                let name = format!("o-{i}-{j}");
                let v = store
                    .create(&key("ns", &name), repo(&name), W)
                    .await
                    .unwrap();
                revs.push(rv(&v));
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let revs = task.await.unwrap();
        assert!(revs.windows(2).all(|w| w[0] < w[1]));
        all.extend(revs);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (t.rev(1)..=t.rev(320)).collect::<Vec<_>>());
}

async fn the_store_is_usable_as_a_trait_object(b: Backend) {
    let t = b.open().await;
    let dynamic: std::sync::Arc<dyn ObjectStore> = t.store.clone();
    dynamic.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    assert_eq!(dynamic.current_revision().await.unwrap().0, t.rev(1));
}

#[tokio::test]
async fn a_database_without_the_labels_column_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
             INSERT INTO meta (k, v) VALUES ('revision', 1), ('compacted', 0);
             CREATE TABLE objects (id INTEGER PRIMARY KEY, grp TEXT NOT NULL, res TEXT NOT NULL,
                 ns TEXT NOT NULL, name TEXT NOT NULL, rev INTEGER NOT NULL, value TEXT NOT NULL,
                 UNIQUE (grp, res, ns, name));",
        )
        .unwrap();
        let mut obj = with_labels(repo("a"), json!({"app": "web"}));
        obj["metadata"]["namespace"] = json!("ns");
        obj["metadata"]["resourceVersion"] = json!("1");
        conn.execute(
            "INSERT INTO objects (grp, res, ns, name, rev, value) VALUES (?1, ?2, 'ns', 'a', 1, ?3)",
            rusqlite::params![repos().group, repos().resource, obj.to_string()],
        )
        .unwrap();
    }
    let store = storage::SqliteStore::open(&path, Default::default())
        .await
        .unwrap();
    let opts = ListOptions {
        label_selector: Some("app=web".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list(&repos(), None, &opts).await.unwrap().items.len(),
        1
    );
    let v = store.create(&key("ns", "b"), repo("b"), W).await.unwrap();
    assert_eq!(rv(&v), 2);
}

async fn dropping_the_store_without_close_ends_watches(b: Backend) {
    use futures::StreamExt as _;
    let t = b.open().await;
    let mut w = t
        .store
        .watch(&repos(), None, storage::WatchOptions::default())
        .await
        .unwrap();
    drop(t);
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), w.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Err(Error::Closed))), "{end:?}");
}

async fn racing_creates_of_one_name_commit_exactly_once(b: Backend) {
    let t = b.open().await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = t.store.clone();
            tokio::spawn(async move { store.create(&key("ns", "same"), repo("same"), W).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => assert!(e.is_already_exists(), "{e:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(t.revisions().await, 1);
}

async fn racing_updates_from_one_resource_version_let_exactly_one_win(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = t.store.clone();
            let mut change = v1.clone();
            change["spec"]["url"] = json!(format!("oci://example.com/{i}"));
            let k = k.clone();
            tokio::spawn(async move { store.update(&k, change, UpdatePart::Main, W).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => {
                won += 1;
                assert_eq!(v["metadata"]["generation"], 2);
            }
            Err(e) => assert!(e.is_conflict(), "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(t.revisions().await, 2);
}

#[tokio::test]
async fn a_second_store_on_the_same_database_is_refused_until_the_first_closes() {
    let t = open().await;
    let path = t.dir.path().join("db.sqlite");
    let err = storage::SqliteStore::open(&path, Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    t.store.close().await.unwrap();
    storage::SqliteStore::open(&path, Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dropped_store_can_be_reopened_at_once() {
    let t = open().await;
    let path = t.dir.path().join("db.sqlite");
    let store = t.store.clone();
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = format!("o{i}");
                store.create(&key("ns", &name), repo(&name), W).await
            })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    drop(store);
    let TestStore { dir, store } = t;
    drop(store);
    let reopened = storage::SqliteStore::open(&path, Default::default())
        .await
        .unwrap();
    assert_eq!(reopened.current_revision().await.unwrap().0, 50);
    drop(dir);
}

on_both_backends!(
    create_sets_system_metadata_and_keeps_the_given_status,
    create_errors_match_kubernetes,
    get_of_a_missing_object_is_not_found,
    update_with_a_stale_resource_version_conflicts,
    generation_bumps_only_on_spec_changes,
    status_updates_never_touch_spec_or_metadata,
    a_write_that_changes_nothing_keeps_the_resource_version,
    delete_without_finalizers_removes_the_object,
    delete_preconditions_conflict_on_mismatch,
    finalizers_keep_a_deleted_object_until_the_last_one_is_removed,
    propagation_policies_become_the_garbage_collectors_finalizers,
    delete_collection_respects_selectors_and_finalizers,
    dry_run_writes_change_nothing,
    data_and_revisions_survive_a_reopen,
    concurrent_writers_get_distinct_increasing_revisions,
    the_store_is_usable_as_a_trait_object,
    racing_creates_of_one_name_commit_exactly_once,
    racing_updates_from_one_resource_version_let_exactly_one_win,
    dropping_the_store_without_close_ends_watches,
);
