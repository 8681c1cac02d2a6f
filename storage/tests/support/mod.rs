//! Shared helpers for the storage integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use storage::{ObjectKey, ResourceKey, SqliteConfig, SqliteStore, WatchEvent, WatchStream};

pub fn repos() -> ResourceKey {
    ResourceKey::new("source.toolkit.fluxcd.io", "ocirepositories")
}

pub fn key(ns: &str, name: &str) -> ObjectKey {
    repos().object(ns, name)
}

/// An OCIRepository fixture.
pub fn repo(name: &str) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": name},
        "spec": {"url": "oci://example.com/podinfo", "interval": "5m"}
    })
}

pub fn with_labels(mut v: Value, labels: Value) -> Value {
    v["metadata"]["labels"] = labels;
    v
}

pub fn with_finalizer(mut v: Value, f: &str) -> Value {
    v["metadata"]["finalizers"] = json!([f]);
    v
}

pub fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Debug)]
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
}

pub async fn open_with(config: SqliteConfig) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), config)
        .await
        .unwrap();
    TestStore { dir, store }
}

pub async fn open() -> TestStore {
    open_with(SqliteConfig::default()).await
}

/// The next watch event, failing the test after 10 s.
pub async fn next(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch event within 10 s")
        .expect("the stream continues")
        .expect("an event, not an error")
}

#[path = "../../../tests/src/etcd.rs"]
pub mod etcd_cluster;

mod backend;
pub use backend::{Backend, Options, Subject};
