//! The generic controller against real SQLite storage, with probe kinds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use storage::{ListOptions, SqliteConfig, SqliteStore, WriteOptions};
use tokio::sync::mpsc;

use super::*;
use crate::controller::ExponentialBackoff;

/// How long a test waits for evidence before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// A kind that reports every reconcile and panics for objects named `panics`.
#[derive(Debug)]
struct Probe {
    reconciled: mpsc::UnboundedSender<String>,
}

impl Reconcile for Probe {
    type Object = Value;
    type Error = std::io::Error;
    const KIND: &'static str = "Probe";

    fn resource(&self) -> ResourceKey {
        ResourceKey::new("test.example", "probes")
    }

    async fn reconcile(&self, obj: Arc<Value>) -> Result<Action, std::io::Error> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let _ = self.reconciled.send(name.clone());
        if name == "panics" {
            panic!("reconcile of {name} panicked");
        }
        Ok(Action::AwaitChange)
    }

    async fn error_policy(&self, _: Arc<Value>, _: &std::io::Error) -> Action {
        Action::Backoff
    }

    fn metric_label(_: &std::io::Error) -> &'static str {
        "Probe"
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    controller: Arc<Controller<Probe>>,
    reconciled: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Harness {
    async fn start(config: SqliteConfig, concurrency: usize, objects: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite"), config)
            .await
            .unwrap();
        let (tx, reconciled) = mpsc::unbounded_channel();
        let backoff: BackoffFactory = Arc::new(|| {
            Box::new(ExponentialBackoff::new(
                Duration::from_millis(10),
                Duration::from_millis(40),
                0.0,
            ))
        });
        let controller = Controller::new(
            store.clone(),
            Probe { reconciled: tx },
            concurrency,
            backoff,
        );
        let harness = Self {
            _dir: dir,
            store,
            controller,
            reconciled,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };
        for name in objects {
            harness.create(name).await;
        }
        harness
            .controller
            .spawn(&harness.tracker, harness.shutdown.clone());
        harness
    }

    async fn create(&self, name: &str) {
        let key = self.controller.kind.resource().object("default", name);
        let object = json!({"apiVersion": "test.example/v1", "kind": "Probe",
            "metadata": {"name": name, "namespace": "default", "labels": {"group": "a"},
                         "finalizers": ["test.example/keep"]},
            "spec": {}});
        self.store
            .create(&key, object, WriteOptions::default())
            .await
            .unwrap();
    }

    /// The next reconciled name, failing the test after [`PATIENCE`].
    async fn next(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.reconciled.recv())
            .await
            .expect("a reconcile within the patience")
            .expect("the probe is alive")
    }

    /// Waits until each of `names` was reconciled (others may come in between).
    async fn expect_each(&mut self, names: &[&str]) {
        let mut missing: BTreeSet<&str> = names.iter().copied().collect();
        while !missing.is_empty() {
            let name = self.next().await;
            missing.remove(name.as_str());
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(PATIENCE, self.tracker.wait())
            .await
            .expect("workers and watch stop on shutdown");
    }
}

/// One worker: a panicking reconcile must neither kill it nor stop the retries, and the
/// other objects (created before and after) are still reconciled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reconcile_is_retried_with_backoff_and_loses_no_worker() {
    let mut h = Harness::start(SqliteConfig::default(), 1, &["panics", "fine"]).await;
    let mut panics = 0;
    let mut fine = false;
    while panics < 3 || !fine {
        match h.next().await.as_str() {
            "panics" => panics += 1,
            "fine" => fine = true,
            other => panic!("unexpected {other}"),
        }
    }
    h.create("later").await;
    loop {
        if h.next().await == "later" {
            break;
        }
    }
    h.stop().await;
}

/// The controller's watch overflows (buffer of one change, 128 objects change in one
/// commit): it ends with 410 Expired, the controller re-lists, and every object whose trigger
/// changed meanwhile is reconciled again. The store hands a commit's changes to the watch one
/// after another while the controller drains it on another thread; with sixteen changes it
/// sometimes kept pace and never overflowed, with 128 it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_is_relisted_and_misses_no_change() {
    let config = SqliteConfig {
        watch_buffer: 1,
        ..SqliteConfig::default()
    };
    let names: Vec<String> = (0..128).map(|i| format!("o{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut h = Harness::start(config, 2, &names).await;
    h.expect_each(&names).await;
    assert_eq!(h.controller.relists(), 0);
    let resource = h.controller.kind.resource();
    let list = ListOptions {
        label_selector: Some("group=a".into()),
        ..ListOptions::default()
    };
    let deleting = h
        .store
        .delete_collection(
            &resource,
            Some("default"),
            &list,
            storage::DeleteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        deleting.len(),
        128,
        "one commit marks all of them as deleting"
    );
    h.expect_each(&names).await;
    assert!(
        h.controller.relists() >= 1,
        "the watch overflowed and was re-listed"
    );
    h.stop().await;
}
