//! The etcd v3 implementation of [`ObjectStore`]: the store Kubernetes itself runs on, for
//! several replicas sharing one cluster.
//!
//! Layout and semantics follow `k8s.io/apiserver: pkg/storage/etcd3/store.go`:
//!
//! * Every object is one key, `<prefix>/<group>/<resource>/<namespace>/<name>` (without the
//!   namespace segment for cluster-scoped objects), whose value is the object's JSON without
//!   `resourceVersion`; the `resourceVersion` read back is the key's etcd modification
//!   revision, so it is global, strictly increasing and shared by every replica.
//! * Create, update and delete are transactions that compare the key's create or modification
//!   revision with the one read (`etcd/write.rs`), so a concurrent write from any replica is a
//!   409 Conflict, or a retry for unconditional updates, as `GuaranteedUpdate` does.
//! * Lists read one range at a revision; a continue token carries that revision and the next
//!   key, so all pages are one snapshot until it is compacted (410 Expired) (`etcd/read.rs`).
//! * Watches are etcd watches from `resourceVersion + 1` with previous values, ended with
//!   410 Expired once their revision is compacted (`etcd/watch.rs`).
//! * History is compacted periodically, coordinated between replicas through one key
//!   (`etcd/compact.rs`, kube-apiserver's `--etcd-compaction-interval`).
//! * Replicas elect one leader through a key with an etcd lease (`etcd/lease.rs`).
//!
//! Differences from [`crate::SqliteStore`], all of them etcd's (and kube-apiserver's):
//! lists are in key order, which is (namespace, name) order except where one namespace is a
//! prefix of another followed by `-` or `.`; a delete collection writes up to 128 objects per
//! transaction, so their changes share one revision (removals that drop a garbage-collection
//! finalizer take a second one: MODIFIED, then DELETED, as for a single delete); and the
//! DELETED event of an update that removes the last
//! finalizer carries the object as stored before that update (as on kube-apiserver), while
//! the update itself returns the final state.

mod compact;
mod keys;
pub mod lease;
mod read;
mod watch;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, OpenSslClientConfig};
use serde_json::Value;

use self::keys::Keys;
use crate::error::{Error, Result};
use crate::key::{ObjectKey, ResourceKey, Revision};
use crate::object::collection_delete_options;
use crate::store::{
    BoxFuture, DeleteOptions, DeleteOutcome, ListOptions, ListPage, ObjectStore, UpdatePart,
    WatchOptions, WatchStream, WriteOptions,
};

/// Client certificate files for an etcd cluster that requires TLS (`--etcd-cafile`,
/// `--etcd-certfile`, `--etcd-keyfile`), all PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA bundle that signed the members' serving certificates; `None` uses the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, presented when the members require one.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<PathBuf>,
}

/// Configuration of [`EtcdStore`]. `EtcdConfig::new(endpoints)` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs of the members, e.g. `http://127.0.0.1:2379` (`--etcd-servers`).
    pub endpoints: Vec<String>,
    /// Key prefix of every object (`--etcd-prefix`); default `/registry`. Replicas that share
    /// a prefix share their objects.
    pub prefix: String,
    /// TLS client settings; used for `https://` endpoints.
    pub tls: EtcdTls,
    /// Interval of the periodic compaction (`--etcd-compaction-interval`); default 5 min.
    /// `Duration::ZERO` disables it (another replica or the operator compacts).
    pub compaction_interval: Duration,
    /// Events buffered per watcher before it is ended with 410 Expired; default 1024.
    pub watch_buffer: usize,
    /// Interval between BOOKMARK events when asked for; default 60 s.
    pub bookmark_interval: Duration,
    /// How long [`EtcdStore::open`] waits for the cluster to answer; default 20 s.
    pub dial_timeout: Duration,
}

impl EtcdConfig {
    /// The defaults for `endpoints`.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: "/registry".into(),
            tls: EtcdTls::default(),
            compaction_interval: Duration::from_secs(300),
            watch_buffer: 1024,
            bookmark_interval: Duration::from_secs(60),
            dial_timeout: Duration::from_secs(20),
        }
    }
}

/// An [`ObjectStore`] on an etcd v3 cluster. Any number of stores (in this process or in
/// other replicas) may share one cluster and prefix: etcd's transactions keep them
/// consistent.
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    config: EtcdConfig,
    /// `true` once closed: watches end and calls fail with [`Error::Closed`].
    closed: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.config.endpoints)
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster, checks that it answers, and starts the periodic compaction.
    ///
    /// # Errors
    /// [`Error::Io`] when a TLS file cannot be read; [`Error::Etcd`] when the client cannot
    /// be built or the cluster refuses the first request; [`Error::EtcdUnavailable`] when no
    /// member answers within [`EtcdConfig::dial_timeout`].
    pub async fn open(config: EtcdConfig) -> Result<Arc<Self>> {
        let options = connect_options(&config)?;
        let etcd = |operation| move |source| Error::Etcd { operation, source };
        let unavailable = || Error::EtcdUnavailable {
            endpoints: config.endpoints.join(","),
            timeout: config.dial_timeout,
        };
        let probe = async {
            let mut client = Client::connect(&config.endpoints, Some(options))
                .await
                .map_err(etcd("connect"))?;
            client
                .get("/", Some(GetOptions::new().with_count_only()))
                .await
                .map_err(etcd("connect"))?;
            Ok::<_, Error>(client)
        };
        let client = tokio::time::timeout(config.dial_timeout, probe)
            .await
            .map_err(|_| unavailable())??;
        let (closed, _) = tokio::sync::watch::channel(false);
        let store = Arc::new(Self {
            keys: Keys::new(&config.prefix),
            client,
            config,
            closed,
        });
        if !store.config.compaction_interval.is_zero() {
            tokio::spawn(compact::run(
                store.client.clone(),
                store.keys.compaction_key(),
                store.config.compaction_interval,
                store.closed.subscribe(),
            ));
        }
        tracing::info!(endpoints = ?store.config.endpoints, prefix = %store.config.prefix, "etcd storage opened");
        Ok(store)
    }

    /// Ends every watch and stops the compaction; later calls return [`Error::Closed`].
    /// Every acknowledged write is already durable in the cluster.
    ///
    /// # Errors
    /// None; kept fallible like [`crate::SqliteStore::close`].
    pub async fn close(&self) -> Result<()> {
        self.closed.send_replace(true);
        Ok(())
    }

    /// Compacts the cluster's history so that `revision` is the oldest revision still
    /// resumable: watches and continue tokens at older revisions get 410 Expired. Returns
    /// the revision kept (`revision`, or the current one when that is older). Periodic
    /// compaction runs by itself; this is for operators and tests.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Etcd`] (also when `revision` is already compacted).
    pub async fn compact(&self, revision: Revision) -> Result<Revision> {
        let current = self.current_revision().await?;
        let kept = revision.min(current);
        compact::compact(&self.client, kept.0 as i64 + 1).await?;
        Ok(kept)
    }

    /// The number of watches this store currently serves.
    pub fn watchers(&self) -> usize {
        self.closed.receiver_count()
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// A clone of the client (cheap; shares the connections), for callers that use etcd for
    /// more than objects, e.g. leader election.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A leader lock named `name` under this store's prefix (`<prefix>/leaderelection/<name>`),
    /// whose etcd lease lives `ttl` after each renewal: replicas that share a prefix elect one
    /// holder ([`lease::LeaderLock`]).
    pub fn leader_lock(&self, name: &str, ttl: Duration) -> lease::LeaderLock {
        lease::LeaderLock::new(self.client.clone(), self.keys.leader_key(name), ttl)
    }

    fn check_open(&self) -> Result<()> {
        if *self.closed.borrow() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}

impl Drop for EtcdStore {
    /// Ends every watch and the compaction task.
    fn drop(&mut self) {
        self.closed.send_replace(true);
    }
}

/// Resolves once the store is closed (or dropped).
async fn closing(closed: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard is dropped at once: it must not live across an await.
    let _ = closed.wait_for(|c| *c).await.map(|_| ());
}

/// The client options for `config`: TLS from the configured PEM files.
fn connect_options(config: &EtcdConfig) -> Result<ConnectOptions> {
    let options = ConnectOptions::new().with_connect_timeout(config.dial_timeout);
    let tls = &config.tls;
    if tls == &EtcdTls::default() {
        return Ok(options);
    }
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| Error::Io {
            operation: "reading etcd TLS file",
            path: path.clone(),
            source,
        })
    };
    let mut otls = OpenSslClientConfig::default();
    if let Some(ca) = &tls.ca_file {
        otls = otls.ca_cert_pem(&read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        otls = otls.client_cert_pem_and_key(&read(cert)?, &read(key)?);
    }
    Ok(options.with_openssl_tls(otls))
}

impl ObjectStore for EtcdStore {
    fn create<'a>(
        &'a self,
        key: &'a ObjectKey,
        object: Value,
        opts: WriteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            self.check_open()?;
            write::create(self, key, object, opts.dry_run).await
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            self.check_open()?;
            read::get(self, key)
                .await?
                .map(|(object, _)| object)
                .ok_or_else(|| Error::NotFound { key: key.clone() })
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a ObjectKey,
        object: Value,
        part: UpdatePart,
        opts: WriteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            self.check_open()?;
            write::update(self, key, object, part, opts.dry_run).await
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a ObjectKey,
        opts: DeleteOptions,
    ) -> BoxFuture<'a, Result<DeleteOutcome>> {
        Box::pin(async move {
            self.check_open()?;
            write::delete(self, key, &opts).await
        })
    }

    fn delete_collection<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        list: &'a ListOptions,
        opts: DeleteOptions,
    ) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(async move {
            self.check_open()?;
            let opts = collection_delete_options(opts);
            write::delete_collection(self, resource, namespace, list, &opts).await
        })
    }

    fn list<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(async move {
            self.check_open()?;
            read::list(self, resource, namespace, opts).await
        })
    }

    fn list_raw<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ListPage<String>>> {
        Box::pin(async move {
            self.check_open()?;
            let page = read::list(self, resource, namespace, opts).await?;
            Ok(ListPage {
                items: page.items.iter().map(Value::to_string).collect(),
                resource_version: page.resource_version,
                continue_token: page.continue_token,
                remaining_item_count: page.remaining_item_count,
            })
        })
    }

    fn watch<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        Box::pin(async move {
            self.check_open()?;
            watch::start(self, resource, namespace, opts).await
        })
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<Revision>> {
        Box::pin(async move {
            self.check_open()?;
            read::current_revision(self).await
        })
    }
}
