//! List: ordering, selectors, limit/continue paging at a pinned revision, 410 on compaction.

mod support;

use serde_json::json;
use storage::{DeleteOptions, Error, ListOptions, UpdatePart, WriteOptions};
use support::*;

const W: WriteOptions = WriteOptions { dry_run: false };

fn names(items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

async fn seed(t: &Subject) {
    for (ns, name, labels) in [
        ("b", "one", json!({"app": "web", "tier": "front"})),
        ("a", "two", json!({"app": "db"})),
        ("a", "one", json!({"app": "web"})),
        ("c", "three", json!({})),
    ] {
        t.store
            .create(&key(ns, name), with_labels(repo(name), labels), W)
            .await
            .unwrap();
    }
}

async fn lists_are_sorted_by_namespace_and_name_and_scoped(b: Backend) {
    let t = b.open().await;
    seed(&t).await;
    let all = t
        .store
        .list(&repos(), None, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(names(&all.items), ["a/one", "a/two", "b/one", "c/three"]);
    assert_eq!(all.resource_version.0, t.rev(4));
    assert_eq!(all.continue_token, None);
    assert_eq!(all.remaining_item_count, None);
    let a = t
        .store
        .list(&repos(), Some("a"), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(names(&a.items), ["a/one", "a/two"]);
    let other = storage::ResourceKey::new("source.toolkit.fluxcd.io", "helmcharts");
    assert!(
        t.store
            .list(&other, None, &ListOptions::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn label_and_field_selectors_filter_lists(b: Backend) {
    let t = b.open().await;
    seed(&t).await;
    let list = |l: Option<&str>, f: Option<&str>| {
        let opts = ListOptions {
            label_selector: l.map(Into::into),
            field_selector: f.map(Into::into),
            ..Default::default()
        };
        let store = t.store.clone();
        async move { store.list(&repos(), None, &opts).await }
    };
    assert_eq!(
        names(&list(Some("app=web"), None).await.unwrap().items),
        ["a/one", "b/one"]
    );
    assert_eq!(
        names(&list(Some("app!=web"), None).await.unwrap().items),
        ["a/two", "c/three"]
    );
    assert_eq!(
        names(
            &list(Some("app in (db,web),tier"), None)
                .await
                .unwrap()
                .items
        ),
        ["b/one"]
    );
    assert_eq!(
        names(&list(Some("app notin (web)"), None).await.unwrap().items),
        ["a/two", "c/three"]
    );
    assert_eq!(
        names(&list(Some("!app"), None).await.unwrap().items),
        ["c/three"]
    );
    assert_eq!(
        names(&list(None, Some("metadata.name=one")).await.unwrap().items),
        ["a/one", "b/one"]
    );
    assert_eq!(
        names(
            &list(Some("app=web"), Some("metadata.namespace!=a"))
                .await
                .unwrap()
                .items
        ),
        ["b/one"]
    );
    let err = list(None, Some("spec.url=x")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidFieldSelector { .. }));
    assert_eq!(err.to_string(), "field label not supported: spec.url");
    assert_eq!(err.status_code(), 400);
    let err = list(Some("app in web"), None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidSelector { .. }), "{err:?}");
}

async fn pages_form_one_consistent_snapshot(b: Backend) {
    let t = b.open().await;
    for i in 0..10 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    let first = t
        .store
        .list(
            &repos(),
            None,
            &ListOptions {
                limit: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&first.items), ["ns/o0", "ns/o1", "ns/o2", "ns/o3"]);
    assert_eq!(first.remaining_item_count, Some(6));
    let snapshot = first.resource_version;
    // change the collection between pages
    t.store
        .delete(&key("ns", "o5"), DeleteOptions::default())
        .await
        .unwrap();
    t.store
        .create(&key("ns", "o45"), repo("o45"), W)
        .await
        .unwrap();
    let mut o6 = t.store.get(&key("ns", "o6")).await.unwrap();
    let o6_before = o6.clone();
    o6["spec"]["url"] = json!("oci://changed");
    t.store
        .update(&key("ns", "o6"), o6, UpdatePart::Main, W)
        .await
        .unwrap();

    let mut token = first.continue_token.clone();
    let mut rest = Vec::new();
    while let Some(tok) = token {
        let page = t
            .store
            .list(
                &repos(),
                None,
                &ListOptions {
                    limit: Some(4),
                    continue_token: Some(tok),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.resource_version, snapshot);
        rest.extend(page.items);
        token = page.continue_token;
    }
    assert_eq!(
        names(&rest),
        ["ns/o4", "ns/o5", "ns/o6", "ns/o7", "ns/o8", "ns/o9"]
    );
    assert_eq!(rest[2], o6_before, "o6 as it was at the snapshot");
    // a fresh list sees the changes
    let now = t
        .store
        .list(&repos(), None, &ListOptions::default())
        .await
        .unwrap();
    assert!(names(&now.items).contains(&"ns/o45".to_string()));
    assert!(!names(&now.items).contains(&"ns/o5".to_string()));
}

async fn a_selector_page_continues_only_when_more_items_match(b: Backend) {
    let t = b.open().await;
    for i in 0..6 {
        let name = format!("o{i}");
        let app = if i % 2 == 0 { "web" } else { "db" };
        t.store
            .create(
                &key("ns", &name),
                with_labels(repo(&name), json!({"app": app})),
                W,
            )
            .await
            .unwrap();
    }
    let opts = ListOptions {
        label_selector: Some("app=web".into()),
        limit: Some(2),
        ..Default::default()
    };
    let first = t.store.list(&repos(), None, &opts).await.unwrap();
    assert_eq!(names(&first.items), ["ns/o0", "ns/o2"]);
    assert!(first.continue_token.is_some());
    assert_eq!(
        first.remaining_item_count, None,
        "not counted with a selector, as upstream"
    );
    let second = t
        .store
        .list(
            &repos(),
            None,
            &ListOptions {
                continue_token: first.continue_token,
                ..opts.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["ns/o4"]);
    assert_eq!(second.continue_token, None);
}

async fn a_compacted_continue_token_is_expired_and_a_garbled_one_invalid(b: Backend) {
    let t = b
        .open_with(Options {
            keep_revisions: Some(2),
            ..Options::default()
        })
        .await;
    for i in 0..5 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    let first = t
        .store
        .list(
            &repos(),
            None,
            &ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for i in 5..10 {
        let name = format!("o{i}");
        t.store
            .create(&key("ns", &name), repo(&name), W)
            .await
            .unwrap();
    }
    assert_eq!(t.compact().await, t.rev(8));
    let err = t
        .store
        .list(
            &repos(),
            None,
            &ListOptions {
                limit: Some(2),
                continue_token: first.continue_token,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_expired(), "{err:?}");
    assert_eq!(err.status_code(), 410);
    assert!(
        err.to_string()
            .starts_with("The provided continue parameter is too old")
    );

    for garbage in ["!!!", "eyJ4IjoxfQ", "abc"] {
        let err = t
            .store
            .list(
                &repos(),
                None,
                &ListOptions {
                    continue_token: Some(garbage.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidContinue { .. }),
            "{garbage}: {err:?}"
        );
    }
}

async fn two_thousand_objects_written_concurrently_list_in_one_sorted_page(b: Backend) {
    let t = b.open().await;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..2000).step_by(16) {
                let name = format!("o{i:05}");
                store
                    .create(&key("ns", &name), repo(&name), W)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let page = t
        .store
        .list(&repos(), None, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2000);
    assert_eq!(page.continue_token, None, "one page holds them all");
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0]["metadata"]["name"].as_str() < w[1]["metadata"]["name"].as_str())
    );
}

async fn a_paged_selector_list_uses_labels_as_of_the_snapshot(b: Backend) {
    let t = b.open().await;
    for i in 0..4 {
        let name = format!("o{i}");
        t.store
            .create(
                &key("ns", &name),
                with_labels(repo(&name), json!({"app": "web"})),
                W,
            )
            .await
            .unwrap();
    }
    let opts = ListOptions {
        label_selector: Some("app=web".into()),
        limit: Some(1),
        ..Default::default()
    };
    let first = t.store.list(&repos(), None, &opts).await.unwrap();
    assert_eq!(names(&first.items), ["ns/o0"]);
    // o2 stops matching now, and o1 is deleted; the snapshot still has both matching
    let o2 = t.store.get(&key("ns", "o2")).await.unwrap();
    t.store
        .update(
            &key("ns", "o2"),
            with_labels(o2, json!({"app": "db"})),
            UpdatePart::Main,
            W,
        )
        .await
        .unwrap();
    t.store
        .delete(&key("ns", "o1"), DeleteOptions::default())
        .await
        .unwrap();
    let mut token = first.continue_token;
    let mut rest = Vec::new();
    while let Some(tok) = token {
        let page = t
            .store
            .list(
                &repos(),
                None,
                &ListOptions {
                    continue_token: Some(tok),
                    ..opts.clone()
                },
            )
            .await
            .unwrap();
        rest.extend(page.items);
        token = page.continue_token;
    }
    assert_eq!(names(&rest), ["ns/o1", "ns/o2", "ns/o3"]);
    assert_eq!(rest[1]["metadata"]["labels"]["app"], "web");
}

async fn list_raw_is_the_same_page_as_stored_text(b: Backend) {
    let t = b.open().await;
    for name in ["a", "b", "c"] {
        t.store
            .create(&key("ns", name), repo(name), W)
            .await
            .unwrap();
    }
    let opts = ListOptions {
        limit: Some(2),
        ..Default::default()
    };
    let decoded = t.store.list(&repos(), Some("ns"), &opts).await.unwrap();
    let raw = t.store.list_raw(&repos(), Some("ns"), &opts).await.unwrap();
    assert_eq!(raw.resource_version, decoded.resource_version);
    assert_eq!(raw.remaining_item_count, Some(1));
    assert_eq!(raw.remaining_item_count, decoded.remaining_item_count);
    let reparsed: Vec<serde_json::Value> = raw
        .items
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    assert_eq!(reparsed, decoded.items);
    // The continue token of either form reads the rest of the same snapshot.
    let rest = t
        .store
        .list_raw(
            &repos(),
            Some("ns"),
            &ListOptions {
                continue_token: raw.continue_token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.items[0].contains("\"name\":\"c\""));
}

on_both_backends!(
    lists_are_sorted_by_namespace_and_name_and_scoped,
    label_and_field_selectors_filter_lists,
    pages_form_one_consistent_snapshot,
    a_selector_page_continues_only_when_more_items_match,
    two_thousand_objects_written_concurrently_list_in_one_sorted_page,
    a_paged_selector_list_uses_labels_as_of_the_snapshot,
    list_raw_is_the_same_page_as_stored_text,
    a_compacted_continue_token_is_expired_and_a_garbled_one_invalid,
);
