//! Storage benchmark (run by hand, not in CI):
//!
//! ```sh
//! cargo bench -p storage --bench storage            # data in the system temp dir
//! STORAGE_BENCH_DIR=/var/lib/x cargo bench -p storage --bench storage
//! ```
//!
//! Reports creates/s with 1 and 16 concurrent writers (`synchronous=FULL`, group commit), get
//! latency p50/p99, the time to list 10,000 objects (one page, and pages of 500), and watch
//! delivery latency p50/p99 (from the write call to the event reaching a watcher); and the
//! same durable 16-writer creates on etcd (a 3-member cluster of Debian's `etcd-server`
//! started on loopback, its data on the same file system), beside SQLite's, in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use storage::{
    EtcdConfig, EtcdStore, ListOptions, ObjectStore, ResourceKey, SqliteConfig, SqliteStore,
    WatchOptions, WriteOptions,
};

#[path = "../../tests/src/etcd.rs"]
#[allow(dead_code, unreachable_pub)]
mod etcd_cluster;

const TOTAL: usize = 10_000;

fn object(name: &str) -> Value {
    // A realistic OCIRepository with a reconciled status (~1.3 KB of JSON).
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "podinfo", "team": "platform"},
                     "annotations": {"note": "benchmark object"}, "finalizers": ["finalizers.fluxcd.io"]},
        "spec": {"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "interval": "5m",
                 "ref": {"semver": ">=6.0.0"}, "provider": "generic", "timeout": "60s"},
        "status": {"observedGeneration": 1, "url": format!("http://source-apiserver/ocirepository/default/{name}/latest.tar.gz"),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                   "message": "stored artifact for digest '6.7.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'",
                                   "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1}],
                   "artifact": {"path": format!("ocirepository/default/{name}/0123456789abcdef.tar.gz"),
                                "url": "http://source-apiserver/x.tar.gz", "revision": "6.7.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                "lastUpdateTime": "2024-01-01T00:00:00Z", "size": 12345}}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn creates<S: ObjectStore + ?Sized>(
    store: &Arc<S>,
    repos: &ResourceKey,
    writers: usize,
    count: usize,
    prefix: &str,
) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let repos = repos.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(writers) {
                let name = format!("{prefix}-{i:05}");
                store
                    .create(
                        &repos.object("default", &name),
                        object(&name),
                        WriteOptions::default(),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// 16-writer creates on a 3-member etcd cluster whose data is under `base` (every create is
/// a raft commit, fsynced by a quorum of members before it is acknowledged).
async fn etcd_creates(base: &std::path::Path, repos: &ResourceKey) -> f64 {
    let cluster = etcd_cluster::EtcdCluster::start_in(3, base);
    let store = EtcdStore::open(EtcdConfig {
        compaction_interval: Duration::ZERO,
        ..EtcdConfig::new(cluster.endpoints())
    })
    .await
    .unwrap();
    let rate = creates(&store, repos, 16, 4_000, "sixteen").await;
    store.close().await.unwrap();
    rate
}

#[tokio::main]
async fn main() {
    let base = std::env::var_os("STORAGE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), SqliteConfig::default())
        .await
        .unwrap();
    let repos = ResourceKey::new("source.toolkit.fluxcd.io", "ocirepositories");
    println!(
        "storage benchmark in {} (synchronous=FULL, WAL)",
        dir.path().display()
    );

    let one = if std::env::var_os("QUICK").is_some() {
        creates(&store, &repos, 64, 1_000, "one").await
    } else {
        creates(&store, &repos, 1, 1_000, "one").await
    };
    println!("creates/s, 1 writer:   {one:.0}");
    let sixteen = creates(&store, &repos, 16, 4_000, "sixteen").await;
    println!("creates/s, 16 writers: {sixteen:.0}");
    let etcd_sixteen = etcd_creates(&base, &repos).await;
    println!(
        "creates/s, 16 writers, durable: SQLite {sixteen:.0}, etcd (3 members) {etcd_sixteen:.0}"
    );
    let sixtyfour = creates(&store, &repos, 64, 5_000, "sixtyfour").await;
    println!("creates/s, 64 writers: {sixtyfour:.0}");
    let count = store
        .list(&repos, None, &ListOptions::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(count, TOTAL);

    let mut gets = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        let name = format!("sixteen-{:05}", (i * 7919) % 4_000);
        let start = Instant::now();
        store.get(&repos.object("default", &name)).await.unwrap();
        gets.push(start.elapsed());
    }
    gets.sort();
    println!(
        "get latency: p50 {} p99 {}",
        ms(percentile(&gets, 0.5)),
        ms(percentile(&gets, 0.99))
    );

    {
        let page = store
            .list(&repos, None, &ListOptions::default())
            .await
            .unwrap();
        let texts: Vec<String> = page
            .items
            .iter()
            .map(|v| serde_json::to_string(v).unwrap())
            .collect();
        let start = Instant::now();
        let parsed: Vec<Value> = texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        println!(
            "  (decoding those 10,000 objects into serde_json::Value on one thread: {})",
            ms(start.elapsed())
        );
        let start = Instant::now();
        let cloned: Vec<Value> = parsed.to_vec();
        println!("  (cloning 10,000 decoded Values: {})", ms(start.elapsed()));
        drop(cloned);
        let start = Instant::now();
        let opts = ListOptions {
            field_selector: Some("metadata.name=none".into()),
            ..Default::default()
        };
        store.list(&repos, None, &opts).await.unwrap();
        println!(
            "  (scanning 10,000 rows, no match, no decoding: {})",
            ms(start.elapsed())
        );
    }
    let mut lists = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let page = store
            .list(&repos, None, &ListOptions::default())
            .await
            .unwrap();
        lists.push(start.elapsed());
        assert_eq!(page.items.len(), TOTAL);
    }
    lists.sort();
    println!(
        "list 10,000 objects, one page: median {} (min {})",
        ms(lists[2]),
        ms(lists[0])
    );
    let mut raw_lists = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let page = store
            .list_raw(&repos, None, &ListOptions::default())
            .await
            .unwrap();
        raw_lists.push(start.elapsed());
        assert_eq!(page.items.len(), TOTAL);
    }
    raw_lists.sort();
    println!(
        "list_raw 10,000 objects (stored JSON text, what the API server uses), one page: median {} (min {})",
        ms(raw_lists[2]),
        ms(raw_lists[0])
    );
    let start = Instant::now();
    let mut token = None;
    let mut seen = 0;
    loop {
        let opts = ListOptions {
            limit: Some(500),
            continue_token: token,
            ..Default::default()
        };
        let page = store.list(&repos, None, &opts).await.unwrap();
        seen += page.items.len();
        token = page.continue_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, TOTAL);
    println!(
        "list 10,000 objects, 20 pages of 500: {}",
        ms(start.elapsed())
    );
    let start = Instant::now();
    let opts = ListOptions {
        label_selector: Some("team=platform,app.kubernetes.io/name in (podinfo)".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list(&repos, None, &opts).await.unwrap().items.len(),
        TOTAL
    );
    println!(
        "list 10,000 objects with a label selector: {}",
        ms(start.elapsed())
    );

    // Small objects (metadata + spec only, ~330 bytes): the list cost is mostly decoding.
    let small = ResourceKey::new("source.toolkit.fluxcd.io", "helmrepositories");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        let small = small.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..TOTAL).step_by(16) {
                let name = format!("small-{i:05}");
                let object = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                    "metadata": {"name": name}, "spec": {"type": "oci", "url": "oci://ghcr.io/stefanprodan/charts", "interval": "5m"}});
                store.create(&small.object("default", &name), object, WriteOptions::default()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "creates/s, 16 writers, small objects: {:.0}",
        TOTAL as f64 / start.elapsed().as_secs_f64()
    );
    let mut lists = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let page = store
            .list(&small, None, &ListOptions::default())
            .await
            .unwrap();
        lists.push(start.elapsed());
        assert_eq!(page.items.len(), TOTAL);
    }
    lists.sort();
    println!(
        "list 10,000 small objects, one page: median {} (min {})",
        ms(lists[2]),
        ms(lists[0])
    );

    // Watch delivery: 10 watchers; one writer creates objects one at a time.
    let mut receivers = Vec::new();
    let rev = store.current_revision().await.unwrap();
    for _ in 0..10 {
        let mut w = store
            .watch(
                &repos,
                None,
                WatchOptions {
                    resource_version: Some(rev),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(ev)) = w.next().await {
                let name = ev.object["metadata"]["name"].as_str().unwrap().to_owned();
                if tx.send((name, Instant::now())).is_err() {
                    break;
                }
            }
        });
        receivers.push(rx);
    }
    let mut sent = Vec::new();
    let mut writes = Vec::new();
    for i in 0..500 {
        let name = format!("watch-{i:05}");
        let start = Instant::now();
        store
            .create(
                &repos.object("default", &name),
                object(&name),
                WriteOptions::default(),
            )
            .await
            .unwrap();
        writes.push(start.elapsed());
        sent.push((name, start));
    }
    let mut latencies = Vec::new();
    for rx in &mut receivers {
        for (name, start) in &sent {
            let (got, at) = rx.recv().await.unwrap();
            assert_eq!(&got, name);
            latencies.push(at - *start);
        }
    }
    latencies.sort();
    writes.sort();
    println!(
        "watch delivery (write call -> event at watcher, 10 watchers): p50 {} p99 {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "single create (commit + fsync) for comparison: p50 {} p99 {}",
        ms(percentile(&writes, 0.5)),
        ms(percentile(&writes, 0.99))
    );
    store.close().await.unwrap();
}
