//! The object-store trait and the option and result types of its operations.

use std::future::Future;
use std::pin::Pin;

use futures::Stream;
use serde_json::Value;

use crate::error::Result;
use crate::key::{ObjectKey, ResourceKey, Revision};

/// A boxed, `Send` future, as returned by [`ObjectStore`] methods (so the trait stays
/// object-safe and can be used as `Arc<dyn ObjectStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Options of create and update. Default: a real (not dry-run) write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `?dryRun=All`: run every check and return the result without persisting it or emitting
    /// an event. A dry-run create returns the object without `resourceVersion`.
    pub dry_run: bool,
}

/// Which part of an object an update replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdatePart {
    /// The main resource: user-settable metadata and everything outside `metadata`/`status`.
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

/// Options of delete (Kubernetes `DeleteOptions`). Default: unconditional, real delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `?dryRun=All`: check and return the outcome without persisting it.
    pub dry_run: bool,
    /// `preconditions.uid`: Conflict unless the stored object has this uid.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`: Conflict unless the stored object has this
    /// resourceVersion.
    pub precondition_resource_version: Option<String>,
    /// `propagationPolicy`: how the garbage collector treats the object's dependents, kept
    /// as the `orphan` / `foregroundDeletion` finalizer as kube-apiserver keeps it
    /// (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`,
    /// `deletionFinalizersForGarbageCollection`). `None`: the object's finalizers decide.
    pub propagation_policy: Option<PropagationPolicy>,
    /// The deprecated `orphanDependents`: `Some(true)` is [`PropagationPolicy::Orphan`];
    /// the REST layer refuses it together with `propagation_policy`.
    pub orphan_dependents: Option<bool>,
}

/// `DeleteOptions.propagationPolicy` (`metav1.DeletionPropagation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Dependents are left without this owner: the `orphan` finalizer holds the object until
    /// the garbage collector has removed the owner reference from them.
    Orphan,
    /// The object goes now; the garbage collector deletes dependents afterwards (the default).
    Background,
    /// The `foregroundDeletion` finalizer holds the object until the garbage collector has
    /// deleted the dependents that block their owner's deletion.
    Foreground,
}

/// The finalizer of [`PropagationPolicy::Orphan`] (`metav1.FinalizerOrphanDependents`).
pub const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
/// The finalizer of [`PropagationPolicy::Foreground`] (`metav1.FinalizerDeleteDependents`).
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// What a delete did.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteOutcome {
    /// The object is gone; this is its last state, with the deletion revision as
    /// `resourceVersion` (as in the DELETED watch event).
    Deleted(Value),
    /// The object has finalizers: `metadata.deletionTimestamp` (and
    /// `deletionGracePeriodSeconds: 0`) are set and the object is kept until its last
    /// finalizer is removed. This is the updated object.
    Finalizing(Value),
}

impl DeleteOutcome {
    /// The object in either outcome.
    pub fn object(&self) -> &Value {
        match self {
            DeleteOutcome::Deleted(v) | DeleteOutcome::Finalizing(v) => v,
        }
    }
    /// The object in either outcome.
    pub fn into_object(self) -> Value {
        match self {
            DeleteOutcome::Deleted(v) | DeleteOutcome::Finalizing(v) => v,
        }
    }
}

/// List options (Kubernetes `ListOptions` that storage handles). Default: everything, one page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Label selector in Kubernetes syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, `a>1`, `a<1`; commas AND requirements.
    pub label_selector: Option<String>,
    /// Field selector: `metadata.name` / `metadata.namespace` with `=`, `==`, `!=`, commas AND.
    pub field_selector: Option<String>,
    /// Maximum number of items in this page; `None` or `Some(0)` means no limit.
    pub limit: Option<u64>,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
}

/// One page of a list: decoded objects (`ListPage<Value>`, from [`ObjectStore::list`]) or
/// their stored JSON text (`ListPage<String>`, from [`ObjectStore::list_raw`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage<T = Value> {
    /// The objects, sorted by (namespace, name).
    pub items: Vec<T>,
    /// The revision of the snapshot this page comes from (the list's `resourceVersion`); all
    /// pages of one list share it.
    pub resource_version: Revision,
    /// Set when more items follow: pass it as [`ListOptions::continue_token`].
    pub continue_token: Option<String>,
    /// How many more items match, set when `limit` cut the list and there is no label or field
    /// selector (as Kubernetes does).
    pub remaining_item_count: Option<u64>,
}

/// Watch options (Kubernetes `ListOptions` with `watch=true`). Default: current state as ADDED,
/// then changes, no bookmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// `None` or `Some(Revision(0))`: the current state as ADDED events, then changes.
    /// `Some(rv)`: every change with a revision greater than `rv`, in order.
    pub resource_version: Option<Revision>,
    /// Label selector, as in [`ListOptions::label_selector`]. An object that stops matching is
    /// reported as DELETED, one that starts matching as ADDED.
    pub label_selector: Option<String>,
    /// Field selector, as in [`ListOptions::field_selector`].
    pub field_selector: Option<String>,
    /// `allowWatchBookmarks`: send BOOKMARK events periodically
    /// ([`crate::SqliteConfig::bookmark_interval`]).
    pub bookmarks: bool,
    /// `sendInitialEvents`: with `bookmarks`, a BOOKMARK annotated
    /// `k8s.io/initial-events-end: "true"` follows the initial ADDED events.
    pub send_initial_events: bool,
}

/// Kubernetes watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchEventType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
    /// `BOOKMARK`: only `apiVersion`, `kind` and `metadata.resourceVersion` (plus annotations
    /// for the initial-events-end bookmark). `apiVersion`/`kind` are those of the collection's
    /// stored objects; they are absent while the collection has never held an object since the
    /// store opened, so the REST layer should set them when it re-encodes.
    Bookmark,
    /// `ERROR` (not produced by storage itself, which ends streams with `Err`; provided for the
    /// REST layer's frames).
    Error,
}

impl WatchEventType {
    /// The wire name: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
            WatchEventType::Bookmark => "BOOKMARK",
            WatchEventType::Error => "ERROR",
        }
    }
}

/// One watch event.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// The type.
    pub event_type: WatchEventType,
    /// The object as stored (its `metadata.resourceVersion` is the event's revision).
    pub object: Value,
}

/// A stream of watch events. It ends with an `Err(Error::Expired)` item when the watcher fell
/// behind ([`crate::SqliteConfig::watch_buffer`]) or the store closed; otherwise it runs until
/// dropped.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// Kubernetes object storage: objects are JSON (`apiVersion`, `kind`, `metadata`, `spec`,
/// `status`), keyed by [`ObjectKey`], versioned by one global [`Revision`].
///
/// Semantics follow `k8s.io/apiserver`'s generic registry store with the custom-resource
/// strategy (status subresource enabled). All methods are cancel-safe in the sense that a write
/// either commits completely or not at all; a dropped write future may still commit.
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates an object and returns it as stored.
    ///
    /// Sets `metadata.uid` (UUID v4), `creationTimestamp` (RFC 3339, seconds, UTC),
    /// `generation: 1` and `resourceVersion`; drops `deletionTimestamp` and
    /// `deletionGracePeriodSeconds`. `status` is stored as given: the caller (the REST layer)
    /// decides the initial status, as the CRD strategy and defaulting do upstream. An empty
    /// `metadata.name`/`namespace` is filled in from `key`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if the key exists (even while it
    /// is being deleted); [`Error::Invalid`](crate::Error::Invalid) for a set
    /// `metadata.resourceVersion` ("resourceVersion should not be set on objects to be
    /// created"), a name or namespace that differs from `key`, a missing name, or a non-object.
    fn create<'a>(
        &'a self,
        key: &'a ObjectKey,
        object: Value,
        opts: WriteOptions,
    ) -> BoxFuture<'a, Result<Value>>;

    /// Reads the current state of one object.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound).
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value>>;

    /// Replaces the main resource or the status of an object.
    ///
    /// `Main` takes the user-settable metadata (`labels`, `annotations`, `finalizers`,
    /// `ownerReferences`, `managedFields`, `generateName`) and every top-level field other than
    /// `metadata` and `status` from `object`; it keeps the stored `status` and system fields
    /// (`uid`, `creationTimestamp`, `generation`, `deletionTimestamp`,
    /// `deletionGracePeriodSeconds`). `generation` is incremented only when the fields outside
    /// `metadata`/`status` changed. `Status` replaces only `status` (and
    /// `metadata.managedFields` when the request carries them, as the CRD status strategy
    /// does, so field managers can record status writes).
    ///
    /// A non-empty `metadata.resourceVersion` is a precondition; empty means unconditional. A
    /// write that changes nothing returns the stored object unchanged (same resourceVersion, no
    /// event). Removing the last finalizer of an object with `deletionTimestamp` deletes it
    /// (DELETED event) and returns its final state.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound); [`Error::Conflict`](crate::Error::Conflict)
    /// for a stale resourceVersion or a different uid; [`Error::Invalid`](crate::Error::Invalid)
    /// for a name/namespace that differs from `key`, an unparsable resourceVersion, or a new
    /// finalizer on an object being deleted.
    fn update<'a>(
        &'a self,
        key: &'a ObjectKey,
        object: Value,
        part: UpdatePart,
        opts: WriteOptions,
    ) -> BoxFuture<'a, Result<Value>>;

    /// Deletes an object, or marks it as deleting when it has finalizers.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound); [`Error::Conflict`](crate::Error::Conflict)
    /// when a precondition does not hold (`Precondition failed: UID in precondition: ...`).
    fn delete<'a>(
        &'a self,
        key: &'a ObjectKey,
        opts: DeleteOptions,
    ) -> BoxFuture<'a, Result<DeleteOutcome>>;

    /// Deletes every object of `resource` (in `namespace`, or all namespaces for `None`) that
    /// matches the selectors of `list` (its `limit`/`continue` are ignored), each as
    /// [`ObjectStore::delete`] with `opts` (finalizers respected, `propagationPolicy` /
    /// `orphanDependents` setting the garbage collector's finalizers, as kube's
    /// `DeleteCollection` deletes each item with the request's options); the preconditions of
    /// `opts` are ignored. Returns the affected objects (deleted or marked as deleting) in
    /// (namespace, name) order. SQLite writes it atomically; etcd in transactions of up to 128
    /// objects, retrying on a concurrent change.
    ///
    /// # Errors
    /// Selector errors as for [`ObjectStore::list`].
    fn delete_collection<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        list: &'a ListOptions,
        opts: DeleteOptions,
    ) -> BoxFuture<'a, Result<Vec<Value>>>;

    /// Lists objects of `resource` in `namespace` (`None` = all namespaces), sorted by
    /// (namespace, name). A continue token pins the revision of the first page, so all pages
    /// are one consistent snapshot.
    ///
    /// # Errors
    /// [`Error::InvalidSelector`](crate::Error::InvalidSelector),
    /// [`Error::InvalidFieldSelector`](crate::Error::InvalidFieldSelector) (`field label not
    /// supported: spec.url`), [`Error::InvalidContinue`](crate::Error::InvalidContinue), and
    /// [`Error::Expired`](crate::Error::Expired) (410) once the token's revision is compacted.
    fn list<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ListPage>>;

    /// The same page as [`ObjectStore::list`], each item the stored JSON text of the object
    /// (a JSON object, exactly as written). For callers that pass objects through without
    /// reading most of them: it skips decoding every object into a `Value`, which is most of
    /// the cost of a large list.
    ///
    /// # Errors
    /// As [`ObjectStore::list`].
    fn list_raw<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ListPage<String>>>;

    /// Watches `resource` in `namespace` (`None` = all). See [`WatchOptions`] for the start
    /// semantics. DELETED events carry the object's last state with the deletion revision as
    /// `resourceVersion`.
    ///
    /// # Errors
    /// [`Error::Expired`](crate::Error::Expired) (`too old resource version: 5 (12)`) when the
    /// requested revision is older than the retained history; selector errors as for
    /// [`ObjectStore::list`].
    fn watch<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>>;

    /// The latest committed revision (0 for an empty store).
    fn current_revision(&self) -> BoxFuture<'_, Result<Revision>>;
}
