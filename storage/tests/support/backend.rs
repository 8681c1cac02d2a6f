//! The store under test, on either backend: SQLite in a temporary directory, or etcd on a
//! 3-member cluster started for the test (each test its own cluster and key prefix, so
//! revisions are contiguous from the cluster's first one).

use std::sync::Arc;
use std::time::Duration;

use storage::{EtcdConfig, EtcdStore, ObjectStore, Retention, Revision, SqliteConfig, SqliteStore};

use super::etcd_cluster::EtcdCluster;

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Etcd,
}

/// Backend-neutral store options of the tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Keep this many revisions on [`Subject::compact`] (SQLite's `Retention::Revisions`).
    pub keep_revisions: Option<u64>,
    /// Events buffered per watcher.
    pub watch_buffer: Option<usize>,
}

#[derive(Debug)]
enum Concrete {
    Sqlite(Arc<SqliteStore>, tempfile::TempDir),
    Etcd(Arc<EtcdStore>, EtcdCluster),
}

/// A store under test.
#[derive(Debug)]
pub struct Subject {
    pub store: Arc<dyn ObjectStore>,
    /// The revision before the test's first write: revision `n` of the test is `base + n`.
    pub base: u64,
    keep_revisions: u64,
    concrete: Concrete,
}

impl Backend {
    pub async fn open(self) -> Subject {
        self.open_with(Options::default()).await
    }

    pub async fn open_with(self, options: Options) -> Subject {
        let keep_revisions = options.keep_revisions.unwrap_or(10_000);
        let watch_buffer = options.watch_buffer.unwrap_or(1024);
        let concrete = match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let config = SqliteConfig {
                    retention: Retention::Revisions(keep_revisions),
                    watch_buffer,
                    ..SqliteConfig::default()
                };
                let store = SqliteStore::open(&dir.path().join("db.sqlite"), config)
                    .await
                    .unwrap();
                Concrete::Sqlite(store, dir)
            }
            Backend::Etcd => {
                let cluster = EtcdCluster::start(3);
                let store = EtcdStore::open(etcd_config(&cluster, watch_buffer))
                    .await
                    .unwrap();
                Concrete::Etcd(store, cluster)
            }
        };
        let store: Arc<dyn ObjectStore> = match &concrete {
            Concrete::Sqlite(s, _) => s.clone(),
            Concrete::Etcd(s, _) => s.clone(),
        };
        let base = store.current_revision().await.unwrap().0;
        Subject {
            store,
            base,
            keep_revisions,
            concrete,
        }
    }
}

/// The test configuration of an etcd store: a prefix of its own, no periodic compaction
/// (its bookkeeping key would take revisions the test counts).
pub fn etcd_config(cluster: &EtcdCluster, watch_buffer: usize) -> EtcdConfig {
    EtcdConfig {
        prefix: format!("/test-{}", std::process::id()),
        compaction_interval: Duration::ZERO,
        watch_buffer,
        ..EtcdConfig::new(cluster.endpoints())
    }
}

impl Subject {
    /// The absolute revision of the test's `n`th revision.
    pub fn rev(&self, n: u64) -> u64 {
        self.base + n
    }

    /// The current revision relative to the test's start.
    pub async fn revisions(&self) -> u64 {
        self.store.current_revision().await.unwrap().0 - self.base
    }

    /// Compacts to the retained window (`keep_revisions`) and returns the oldest revision
    /// still resumable, as an absolute revision.
    pub async fn compact(&self) -> u64 {
        match &self.concrete {
            Concrete::Sqlite(s, _) => s.compact().await.unwrap().0,
            Concrete::Etcd(s, _) => {
                let current = s.current_revision().await.unwrap().0;
                let keep = current.saturating_sub(self.keep_revisions).max(1);
                s.compact(Revision(keep)).await.unwrap().0
            }
        }
    }

    /// Closes the store (ends watches; later calls fail with `Closed`).
    pub async fn close(&self) {
        match &self.concrete {
            Concrete::Sqlite(s, _) => s.close().await.unwrap(),
            Concrete::Etcd(s, _) => s.close().await.unwrap(),
        }
    }

    /// A second, independent store on the same data (SQLite: after this one closed; etcd: a
    /// new client on the same cluster and prefix, as another replica).
    pub async fn reopen(&self) -> Arc<dyn ObjectStore> {
        match &self.concrete {
            Concrete::Sqlite(s, dir) => {
                s.close().await.unwrap();
                SqliteStore::open(&dir.path().join("db.sqlite"), SqliteConfig::default())
                    .await
                    .unwrap()
            }
            Concrete::Etcd(_, cluster) => {
                EtcdStore::open(etcd_config(cluster, 1024)).await.unwrap()
            }
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.concrete {
            Concrete::Sqlite(..) => Backend::Sqlite,
            Concrete::Etcd(..) => Backend::Etcd,
        }
    }
}

/// Runs each listed `async fn name(backend: Backend)` on both backends, as the tests
/// `name::sqlite` and `name::etcd`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(super::support::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn etcd() {
                    super::$name(super::support::Backend::Etcd).await
                }
            }
        )*
    };
}
