//! Durable storage for source-apiserver: a Kubernetes object store on SQLite or etcd v3, and
//! the artifact file store.
//!
//! # What this crate owns
//!
//! * [`ObjectStore`]: Kubernetes storage semantics over JSON objects (`apiVersion`, `kind`,
//!   `metadata`, `spec`, `status`): one global [`Revision`] that is every object's
//!   `resourceVersion`, system metadata on create, optimistic concurrency, the spec/status
//!   split and `generation`, finalizers and `deletionTimestamp`, list with label and field
//!   selectors and consistent `limit`/`continue` paging, watch from a revision with bookmarks
//!   and 410 Expired (`k8s.io/apiserver`'s generic registry store and etcd3 storage, with
//!   kine as the SQL design reference).
//! * [`SqliteStore`]: the implementation: WAL, `synchronous=FULL`, group commit through one
//!   writer thread, read-connection pool, in-process watch fan-out with bounded buffers.
//! * [`EtcdStore`]: the same semantics on an etcd v3 cluster, for several replicas:
//!   `resourceVersion` is etcd's modification revision, writes are revision-comparing
//!   transactions, watches are etcd watches, periodic compaction is coordinated between
//!   replicas (`k8s.io/apiserver: pkg/storage/etcd3`). Both pass one test suite
//!   (`tests/{objects,list,watch}.rs`).
//! * [`artifact::ArtifactStore`]: atomic, digest-checked artifact files laid out as Flux's
//!   source-controller does.
//!
//! # Guarantees
//!
//! * A write is acknowledged only after its transaction is durable (WAL, `synchronous=FULL`,
//!   fsync); concurrent writes share one transaction and one fsync (group commit), each in its
//!   own savepoint so one failing write does not fail the others.
//! * Revisions are strictly increasing and never reused, also across restarts and crashes
//!   (the SIGKILL crash test in `tests/crash.rs` checks this).
//! * Watchers see every change in revision order, or end with 410 Expired; a watcher never
//!   buffers more than [`SqliteConfig::watch_buffer`] changes.
//! * One store per database file, enforced by an exclusive lock on `<db>.lock`.
//!
//! It deliberately knows nothing of HTTP, registries or the API's Rust types: objects are
//! `serde_json::Value`s in the storage version, and the REST layer converts, defaults and
//! validates them.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> storage::Result<()> {
//! use storage::{ObjectStore, ResourceKey, SqliteConfig, SqliteStore, WriteOptions};
//! let store = SqliteStore::open("/var/lib/source-apiserver/db.sqlite".as_ref(), SqliteConfig::default()).await?;
//! let repos = ResourceKey::new("source.toolkit.fluxcd.io", "ocirepositories");
//! let key = repos.object("default", "podinfo");
//! let object = serde_json::json!({
//!     "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
//!     "metadata": {"name": "podinfo"}, "spec": {"url": "oci://ghcr.io/stefanprodan/manifests/podinfo"}});
//! let stored = store.create(&key, object, WriteOptions::default()).await?;
//! assert_eq!(stored["metadata"]["generation"], 1);
//! store.close().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod artifact;
pub mod error;
pub mod etcd;
pub mod key;
mod list;
mod object;
mod selector;
pub mod sqlite;
pub mod store;

pub use artifact::{ArtifactStore, ArtifactWriter, StoredArtifact, VerifiedArtifact};
pub use error::{Error, Result};
pub use etcd::{EtcdConfig, EtcdStore, EtcdTls};
pub use key::{ObjectKey, ResourceKey, Revision};
pub use sqlite::{Retention, SqliteConfig, SqliteStore};
pub use store::{
    BoxFuture, DeleteOptions, DeleteOutcome, FINALIZER_DELETE_DEPENDENTS,
    FINALIZER_ORPHAN_DEPENDENTS, ListOptions, ListPage, ObjectStore, PropagationPolicy, UpdatePart,
    WatchEvent, WatchEventType, WatchOptions, WatchStream, WriteOptions,
};
