//! Watch: initial state, resume from a revision, selectors, bookmarks, 410s, slow watchers.

mod support;

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use storage::{
    DeleteOptions, DeleteOutcome, ListOptions, ObjectStore, PropagationPolicy, Retention, Revision,
    SqliteConfig, UpdatePart, WatchEventType, WatchOptions, WriteOptions,
};
use support::*;

const W: WriteOptions = WriteOptions { dry_run: false };

fn from(rv: u64) -> WatchOptions {
    WatchOptions {
        resource_version: Some(Revision(rv)),
        ..Default::default()
    }
}

async fn a_watch_without_resource_version_starts_with_the_current_state(b: Backend) {
    let t = b.open().await;
    t.store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    t.store
        .create(&key("other", "b"), repo("b"), W)
        .await
        .unwrap();
    for (i, opts) in [WatchOptions::default(), from(0)].into_iter().enumerate() {
        let mut w = t.store.watch(&repos(), Some("ns"), opts).await.unwrap();
        let ev = next(&mut w).await;
        assert_eq!(ev.event_type, WatchEventType::Added);
        assert_eq!(ev.object["metadata"]["name"], "a");
        if i == 1 {
            assert_eq!(next(&mut w).await.object["metadata"]["name"], "c0");
        }
        let name = format!("c{i}");
        let c = t
            .store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
        let ev = next(&mut w).await;
        assert_eq!(ev.event_type, WatchEventType::Added);
        assert_eq!(ev.object, c);
    }
}

async fn a_watch_from_a_revision_replays_every_later_change_in_order(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let mut change = v1.clone();
    change["spec"]["url"] = json!("oci://x");
    let v2 = t
        .store
        .update(&k, change, UpdatePart::Main, W)
        .await
        .unwrap();
    t.store.delete(&k, DeleteOptions::default()).await.unwrap();

    let mut w = t.store.watch(&repos(), None, from(rv(&v1))).await.unwrap();
    let ev = next(&mut w).await;
    assert_eq!(
        (ev.event_type, ev.object.clone()),
        (WatchEventType::Modified, v2.clone())
    );
    let ev = next(&mut w).await;
    assert_eq!(ev.event_type, WatchEventType::Deleted);
    assert_eq!(
        rv(&ev.object),
        rv(&v2) + 1,
        "DELETED carries the deletion revision"
    );
    assert_eq!(ev.object["spec"], v2["spec"]);
    // then live changes, with no duplicates
    let v3 = t.store.create(&k, repo("a"), W).await.unwrap();
    let ev = next(&mut w).await;
    assert_eq!((ev.event_type, ev.object), (WatchEventType::Added, v3));

    // from revision 0 of history: everything
    let mut all = t.store.watch(&repos(), None, from(0)).await.unwrap();
    assert_eq!(next(&mut all).await.event_type, WatchEventType::Added);
}

async fn label_selector_watches_see_objects_enter_and_leave(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t.store.create(&k, repo("a"), W).await.unwrap();
    let opts = WatchOptions {
        resource_version: Some(Revision(rv(&v1))),
        label_selector: Some("app=web".into()),
        ..Default::default()
    };
    let mut w = t.store.watch(&repos(), None, opts).await.unwrap();
    let v2 = t
        .store
        .update(
            &k,
            with_labels(v1.clone(), json!({"app": "web"})),
            UpdatePart::Main,
            W,
        )
        .await
        .unwrap();
    let ev = next(&mut w).await;
    assert_eq!(
        (ev.event_type, ev.object),
        (WatchEventType::Added, v2.clone())
    );
    let v3 = t
        .store
        .update(
            &k,
            with_labels(v2.clone(), json!({"app": "web", "x": "y"})),
            UpdatePart::Main,
            W,
        )
        .await
        .unwrap();
    let ev = next(&mut w).await;
    assert_eq!(
        (ev.event_type, ev.object),
        (WatchEventType::Modified, v3.clone())
    );
    let v4 = t
        .store
        .update(
            &k,
            with_labels(v3.clone(), json!({"app": "db"})),
            UpdatePart::Main,
            W,
        )
        .await
        .unwrap();
    let ev = next(&mut w).await;
    assert_eq!(ev.event_type, WatchEventType::Deleted);
    assert_eq!(
        ev.object["metadata"]["labels"]["app"], "web",
        "the old state"
    );
    assert_eq!(rv(&ev.object), rv(&v4));
    // field selector on the name
    let opts = WatchOptions {
        field_selector: Some("metadata.name=b".into()),
        ..from(rv(&v4))
    };
    let mut by_name = t.store.watch(&repos(), None, opts).await.unwrap();
    t.store.create(&key("ns", "c"), repo("c"), W).await.unwrap();
    let b = t.store.create(&key("ns", "b"), repo("b"), W).await.unwrap();
    assert_eq!(next(&mut by_name).await.object, b);
    let bad = WatchOptions {
        field_selector: Some("spec.url=x".into()),
        ..Default::default()
    };
    let err = t
        .store
        .watch(&repos(), None, bad)
        .await
        .err()
        .expect("an unsupported field selector is refused");
    assert!(
        matches!(&err, storage::Error::InvalidFieldSelector { message } if message.contains("spec.url")),
        "{err:?}"
    );
}

async fn a_watch_from_a_compacted_revision_is_expired(b: Backend) {
    let t = b
        .open_with(Options {
            keep_revisions: Some(3),
            ..Options::default()
        })
        .await;
    for i in 0..10 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    assert_eq!(t.compact().await, t.rev(7));
    let err = t
        .store
        .watch(&repos(), None, from(t.rev(2)))
        .await
        .err()
        .expect("expired");
    assert!(err.is_expired());
    assert_eq!(
        err.to_string(),
        format!("too old resource version: {} ({})", t.rev(2), t.rev(7))
    );
    // at the window's edge it works
    let mut w = t.store.watch(&repos(), None, from(t.rev(7))).await.unwrap();
    assert_eq!(rv(&next(&mut w).await.object), t.rev(8));
}

/// What bounds a slow watcher's memory: the server queues at most `watch_buffer` events for
/// it, delivers exactly those, and then ends the watch with `Expired` instead of growing.
async fn a_slow_watcher_gets_at_most_its_buffer_then_is_ended_with_expired(b: Backend) {
    let t = b
        .open_with(Options {
            watch_buffer: Some(4),
            ..Options::default()
        })
        .await;
    let mut w = t.store.watch(&repos(), None, from(0)).await.unwrap();
    for i in 0..10 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    let mut delivered = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Ok(_)) => delivered += 1,
            Some(Err(e)) => {
                assert!(e.is_expired(), "{e:?}");
                break;
            }
            None => panic!("the stream must end with an error"),
        }
    }
    assert_eq!(delivered, 4);
    assert!(w.next().await.is_none());
}

async fn send_initial_events_ends_with_an_annotated_bookmark(b: Backend) {
    let t = b.open().await;
    t.store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    t.store.create(&key("ns", "b"), repo("b"), W).await.unwrap();
    let opts = WatchOptions {
        bookmarks: true,
        send_initial_events: true,
        ..Default::default()
    };
    let mut w = t.store.watch(&repos(), None, opts).await.unwrap();
    assert_eq!(next(&mut w).await.event_type, WatchEventType::Added);
    assert_eq!(next(&mut w).await.event_type, WatchEventType::Added);
    let bm = next(&mut w).await;
    assert_eq!(bm.event_type, WatchEventType::Bookmark);
    assert_eq!(
        bm.object,
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
               "metadata": {"resourceVersion": t.rev(2).to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}})
    );
}

async fn bookmarks_arrive_every_interval_on_a_paused_clock(b: Backend) {
    let t = b.open().await;
    let v = t.store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    let opts = WatchOptions {
        bookmarks: true,
        ..from(rv(&v))
    };
    let started = tokio::time::Instant::now();
    let mut w = t.store.watch(&repos(), None, opts).await.unwrap();
    // a change in another collection moves the bookmark revision too
    let other = storage::ResourceKey::new("source.toolkit.fluxcd.io", "helmcharts");
    t.store
        .create(&other.object("ns", "h"), repo("h"), W)
        .await
        .unwrap();
    tokio::time::pause();
    // A bookmark promises only that every change up to its revision was delivered. On a
    // 3-member etcd cluster the watch may sit on a follower that has not applied the other
    // collection's create yet, so an early bookmark may still carry the earlier revision;
    // later ones must reach it and never pass it. SQLite reaches it on the first.
    let real_start = std::time::Instant::now();
    let mut bookmarks = 0;
    loop {
        let bm = w.next().await.unwrap().unwrap();
        bookmarks += 1;
        assert_eq!(bm.event_type, WatchEventType::Bookmark);
        assert!(started.elapsed() >= Duration::from_secs(60) * bookmarks);
        assert_eq!(bm.object["kind"], "OCIRepository");
        let at: u64 = bm.object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(at == t.rev(1) || at == t.rev(2), "bookmark at {at}");
        if at == t.rev(2) {
            break;
        }
        assert_eq!(b, Backend::Etcd, "SQLite's first bookmark is current");
        assert!(
            real_start.elapsed() < Duration::from_secs(10),
            "bookmarks stayed at {at} for {bookmarks} intervals"
        );
    }
    tokio::time::resume();
    let b = t.store.create(&key("ns", "b"), repo("b"), W).await.unwrap();
    // A bookmark may still be on its way (a progress request sent while the clock was paused);
    // it carries the last revision delivered, never the change that follows it.
    let mut change = next(&mut w).await;
    while change.event_type == WatchEventType::Bookmark {
        assert_eq!(
            change.object["metadata"]["resourceVersion"],
            t.rev(2).to_string()
        );
        change = next(&mut w).await;
    }
    assert_eq!(change.object, b);
}

async fn closing_the_store_ends_watches(b: Backend) {
    let t = b.open().await;
    let mut w = t
        .store
        .watch(&repos(), None, WatchOptions::default())
        .await
        .unwrap();
    t.close().await;
    let end = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Err(storage::Error::Closed))), "{end:?}");
}

async fn many_watchers_each_see_every_change_in_order(b: Backend) {
    let t = b.open().await;
    let mut watchers = Vec::new();
    for _ in 0..20 {
        watchers.push(t.store.watch(&repos(), None, from(0)).await.unwrap());
    }
    for i in 0..50 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    for w in &mut watchers {
        for expected in 1..=50 {
            assert_eq!(rv(&next(w).await.object), t.rev(expected));
        }
    }
}

#[tokio::test]
async fn duration_retention_keeps_recent_history() {
    let t = open_with(SqliteConfig {
        retention: Retention::Duration(Duration::from_secs(3600)),
        ..Default::default()
    })
    .await;
    for i in 0..5 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    assert_eq!(t.store.compact().await.unwrap(), Revision(0));
    let mut w = t.store.watch(&repos(), None, from(1)).await.unwrap();
    assert_eq!(rv(&next(&mut w).await.object), 2);
}

async fn finalizer_deletion_is_modified_then_deleted_and_other_namespaces_stay_out(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    let v1 = t
        .store
        .create(&k, with_finalizer(repo("a"), "example.com/f"), W)
        .await
        .unwrap();
    let mut w = t
        .store
        .watch(&repos(), Some("ns"), from(rv(&v1)))
        .await
        .unwrap();
    t.store
        .create(&key("other", "x"), repo("x"), W)
        .await
        .unwrap();
    t.store.delete(&k, DeleteOptions::default()).await.unwrap();
    let ev = next(&mut w).await;
    assert_eq!(ev.event_type, WatchEventType::Modified);
    assert!(ev.object["metadata"]["deletionTimestamp"].is_string());
    let mut done = ev.object.clone();
    done["metadata"]["finalizers"] = json!([]);
    let last = t.store.update(&k, done, UpdatePart::Main, W).await.unwrap();
    let ev = next(&mut w).await;
    assert_eq!(ev.event_type, WatchEventType::Deleted);
    match t.backend() {
        Backend::Sqlite => assert_eq!(ev.object, last),
        // etcd's DELETED event carries the state stored before the deleting update (as on
        // kube-apiserver); the update returned the final state
        Backend::Etcd => {
            assert_eq!(rv(&ev.object), rv(&last));
            assert_eq!(ev.object["metadata"]["uid"], last["metadata"]["uid"]);
            assert_eq!(ev.object["spec"], last["spec"]);
        }
    }
}

/// A Background delete that drops the garbage collector's last finalizer stores the object
/// without it first (MODIFIED), then deletes it (DELETED without the finalizer), as
/// kube-apiserver's generic store does; a resourceVersion precondition is checked once.
async fn a_background_delete_dropping_the_orphan_finalizer_is_modified_then_deleted(b: Backend) {
    let t = b.open().await;
    let k = key("ns", "a");
    t.store.create(&k, repo("a"), W).await.unwrap();
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    let DeleteOutcome::Finalizing(held) = t.store.delete(&k, orphan).await.unwrap() else {
        panic!("Orphan holds the object")
    };
    let mut w = t
        .store
        .watch(&repos(), Some("ns"), from(rv(&held)))
        .await
        .unwrap();
    let background = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        precondition_resource_version: Some(rv(&held).to_string()),
        ..Default::default()
    };
    let DeleteOutcome::Deleted(last) = t.store.delete(&k, background).await.unwrap() else {
        panic!("nothing holds the object any more")
    };
    assert!(last["metadata"].get("finalizers").is_none(), "{last}");
    let modified = next(&mut w).await;
    assert_eq!(modified.event_type, WatchEventType::Modified);
    assert!(modified.object["metadata"].get("finalizers").is_none());
    let deleted = next(&mut w).await;
    assert_eq!(deleted.event_type, WatchEventType::Deleted);
    assert!(deleted.object["metadata"].get("finalizers").is_none());
    assert!(deleted.object["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(rv(&deleted.object), rv(&last));
    assert!(rv(&last) > rv(&modified.object));
}

/// A Background delete collection drops the garbage collector's finalizer the same way, per
/// object: MODIFIED without it, then DELETED without it, as kube-apiserver's deletecollection
/// (one Delete per item) does.
async fn a_background_delete_collection_dropping_the_orphan_finalizer_is_modified_then_deleted(
    b: Backend,
) {
    let t = b.open().await;
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    for name in ["a", "b"] {
        t.store
            .create(&key("ns", name), repo(name), W)
            .await
            .unwrap();
    }
    let held = t
        .store
        .delete_collection(&repos(), Some("ns"), &ListOptions::default(), orphan)
        .await
        .unwrap();
    let since = held.iter().map(rv).max().unwrap();
    let mut w = t
        .store
        .watch(&repos(), Some("ns"), from(since))
        .await
        .unwrap();
    let background = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let last = t
        .store
        .delete_collection(&repos(), Some("ns"), &ListOptions::default(), background)
        .await
        .unwrap();
    assert_eq!(last.len(), 2);
    for object in &last {
        assert!(object["metadata"].get("finalizers").is_none(), "{object}");
    }
    let mut modified = Vec::new();
    let mut deleted = Vec::new();
    for _ in 0..4 {
        let ev = next(&mut w).await;
        let name = ev.object["metadata"]["name"].as_str().unwrap().to_owned();
        assert!(
            ev.object["metadata"].get("finalizers").is_none(),
            "{:?}",
            ev.object
        );
        match ev.event_type {
            WatchEventType::Modified => {
                assert!(
                    !deleted.contains(&name),
                    "{name} modified after it was deleted"
                );
                modified.push(name);
            }
            WatchEventType::Deleted => {
                assert!(
                    modified.contains(&name),
                    "{name} deleted before it was modified"
                );
                assert!(ev.object["metadata"]["deletionTimestamp"].is_string());
                let returned = last.iter().find(|o| o["metadata"]["name"] == name).unwrap();
                assert_eq!(rv(&ev.object), rv(returned));
                deleted.push(name);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    modified.sort();
    deleted.sort();
    assert_eq!(modified, ["a", "b"]);
    assert_eq!(deleted, ["a", "b"]);
}

on_both_backends!(
    a_watch_without_resource_version_starts_with_the_current_state,
    a_watch_from_a_revision_replays_every_later_change_in_order,
    label_selector_watches_see_objects_enter_and_leave,
    send_initial_events_ends_with_an_annotated_bookmark,
    bookmarks_arrive_every_interval_on_a_paused_clock,
    closing_the_store_ends_watches,
    many_watchers_each_see_every_change_in_order,
    finalizer_deletion_is_modified_then_deleted_and_other_namespaces_stay_out,
    a_watch_from_a_compacted_revision_is_expired,
    a_slow_watcher_gets_at_most_its_buffer_then_is_ended_with_expired,
    a_background_delete_dropping_the_orphan_finalizer_is_modified_then_deleted,
    a_background_delete_collection_dropping_the_orphan_finalizer_is_modified_then_deleted,
);
