//! Writes as etcd transactions that compare revisions
//! (`k8s.io/apiserver: pkg/storage/etcd3/store.go` `Create`, `GuaranteedUpdate`, `Delete`).
//!
//! Each write reads the key, applies the same object rules as SQLite (`crate::object`), and
//! commits only if the key's modification revision is still the one read; otherwise it reads
//! again and re-applies the rules, so a stale `resourceVersion` precondition is a Conflict and
//! an unconditional write wins on the fresh state.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde_json::Value;

use super::EtcdStore;
use super::keys::{decode, encode};
use super::read::{etcd, get, header_revision, range_all};
use crate::error::{Error, Result};
use crate::key::{ObjectKey, ResourceKey};
use crate::object::{
    DeletePlan, UpdatePlan, check_delete_preconditions, plan_delete, plan_update, prepare_create,
    set_resource_version,
};
use crate::selector::Filter;
use crate::store::{DeleteOptions, DeleteOutcome, ListOptions, UpdatePart};

/// etcd's default `--max-txn-ops`: the most operations one transaction may hold.
const MAX_TXN_OPS: usize = 128;

/// Creates `key` if it does not exist (compare: create revision 0).
pub(super) async fn create(
    store: &EtcdStore,
    key: &ObjectKey,
    object: Value,
    dry_run: bool,
) -> Result<Value> {
    let mut object = prepare_create(key, object)?;
    if dry_run {
        return match get(store, key).await? {
            Some(_) => Err(Error::AlreadyExists { key: key.clone() }),
            None => Ok(object),
        };
    }
    let k = store.keys.object(key);
    let txn = Txn::new()
        .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(k, encode(&object), None)]);
    let response = store
        .client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd("create"))?;
    if !response.succeeded() {
        return Err(Error::AlreadyExists { key: key.clone() });
    }
    set_resource_version(&mut object, Some(header_revision(response.header()) as u64));
    Ok(object)
}

/// Replaces `key` with `object` (or deletes it) if its modification revision is still
/// `read`; returns the transaction's revision, or `None` when the key changed meanwhile.
async fn commit_if_unchanged(
    store: &EtcdStore,
    key: &ObjectKey,
    read: i64,
    object: Option<&Value>,
) -> Result<Option<i64>> {
    commit_guarded(store, [(store.keys.object(key), read, object)], "write").await
}

/// One transaction of writes `(key, read, value)`: each key gets `value` (`None` deletes it),
/// if every key's modification revision is still its `read`. Returns the transaction's
/// revision, or `None` when one key changed meanwhile and nothing was written.
async fn commit_guarded<'a>(
    store: &EtcdStore,
    writes: impl IntoIterator<Item = (String, i64, Option<&'a Value>)>,
    what: &'static str,
) -> Result<Option<i64>> {
    let (compares, ops): (Vec<Compare>, Vec<TxnOp>) = writes
        .into_iter()
        .map(|(key, read, value)| {
            let compare = Compare::mod_revision(key.clone(), CompareOp::Equal, read);
            let op = match value {
                Some(v) => TxnOp::put(key, encode(v), None),
                None => TxnOp::delete(key, None),
            };
            (compare, op)
        })
        .unzip();
    let txn = Txn::new().when(compares).and_then(ops);
    let response = store
        .client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd(what))?;
    Ok(response
        .succeeded()
        .then(|| header_revision(response.header())))
}

/// Updates the main resource or the status, retrying on concurrent writes.
pub(super) async fn update(
    store: &EtcdStore,
    key: &ObjectKey,
    object: Value,
    part: UpdatePart,
    dry_run: bool,
) -> Result<Value> {
    loop {
        let (stored, read) = get(store, key)
            .await?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        let (mut next, deletes) = match plan_update(key, &stored, object.clone(), part)? {
            UpdatePlan::Unchanged => return Ok(stored),
            UpdatePlan::Write(next) => (next, false),
            UpdatePlan::Delete(last) => (last, true),
        };
        if dry_run {
            return Ok(next);
        }
        let written = (!deletes).then_some(&next);
        if let Some(revision) = commit_if_unchanged(store, key, read, written).await? {
            set_resource_version(&mut next, Some(revision as u64));
            return Ok(next);
        }
    }
}

/// Deletes `key`, or marks it as deleting when it has finalizers, retrying on concurrent
/// writes.
pub(super) async fn delete(
    store: &EtcdStore,
    key: &ObjectKey,
    opts: &DeleteOptions,
) -> Result<DeleteOutcome> {
    // The revision of this delete's own finalizer write, whose preconditions held already.
    let mut own_write = None;
    loop {
        let (stored, read) = get(store, key)
            .await?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        if own_write != Some(read) {
            check_delete_preconditions(key, &stored, opts)?;
        }
        let (mut outcome_object, write) = match plan_delete(&stored, opts) {
            DeletePlan::Unchanged => return Ok(DeleteOutcome::Finalizing(stored)),
            DeletePlan::Finalize(next) => (next, true),
            DeletePlan::Remove(None) => (stored, false),
            DeletePlan::Remove(Some(next)) if opts.dry_run => (next, false),
            DeletePlan::Remove(Some(next)) => {
                // Store the object without the finalizer first (one transaction cannot put
                // and delete one key), then delete it at that revision on the next turn.
                own_write = commit_if_unchanged(store, key, read, Some(&next)).await?;
                continue;
            }
        };
        if opts.dry_run {
            return Ok(outcome(outcome_object, write));
        }
        let written = write.then_some(&outcome_object);
        if let Some(revision) = commit_if_unchanged(store, key, read, written).await? {
            set_resource_version(&mut outcome_object, Some(revision as u64));
            return Ok(outcome(outcome_object, write));
        }
    }
}

fn outcome(object: Value, finalizing: bool) -> DeleteOutcome {
    if finalizing {
        DeleteOutcome::Finalizing(object)
    } else {
        DeleteOutcome::Deleted(object)
    }
}

/// One object a delete collection touches.
struct Affected {
    key: String,
    read: i64,
    /// The object after the write: marked as deleting, or its last state.
    object: Value,
    step: Step,
}

/// What a delete collection writes for one object.
#[derive(Clone, Copy, PartialEq)]
enum Step {
    /// Nothing: it is already deleting.
    Keep,
    /// Stored marked as deleting.
    Put,
    /// Deleted.
    Delete,
    /// A removal that drops a garbage-collection finalizer: stored without it first, then
    /// deleted at that revision, so watchers see MODIFIED then DELETED without the finalizer,
    /// as for [`delete`].
    PutThenDelete,
}

impl Affected {
    /// This object's write in the next transaction: `(key, read, value)` for
    /// [`commit_guarded`].
    fn write(&self) -> (String, i64, Option<&Value>) {
        let value = (self.step != Step::Delete).then_some(&self.object);
        (self.key.clone(), self.read, value)
    }
}

/// Deletes (or marks as deleting) every matching object: one transaction per
/// [`MAX_TXN_OPS`] objects, each comparing the revisions read, and a second one for the
/// removals that drop a garbage-collection finalizer (put without it, then deleted); a changed
/// object makes the whole collection be read and decided again.
pub(super) async fn delete_collection(
    store: &EtcdStore,
    resource: &ResourceKey,
    namespace: Option<&str>,
    list: &ListOptions,
    opts: &DeleteOptions,
) -> Result<Vec<Value>> {
    let filter = Filter::parse(
        list.label_selector.as_deref(),
        list.field_selector.as_deref(),
    )?;
    let prefix = store.keys.collection(resource, namespace);
    'retry: loop {
        let (_, kvs) = range_all(store, &prefix, 0).await?;
        let mut affected = Vec::new();
        for kv in kvs {
            let stored = decode(&kv, kv.mod_revision())?;
            if !filter.matches(&stored) {
                continue;
            }
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let read = kv.mod_revision();
            let (object, step) = match plan_delete(&stored, opts) {
                DeletePlan::Unchanged => (stored, Step::Keep),
                DeletePlan::Finalize(next) => (next, Step::Put),
                DeletePlan::Remove(None) => (stored, Step::Delete),
                DeletePlan::Remove(Some(next)) => (next, Step::PutThenDelete),
            };
            affected.push(Affected {
                key,
                read,
                object,
                step,
            });
        }
        if opts.dry_run {
            return Ok(affected.into_iter().map(|a| a.object).collect());
        }
        for chunk in affected.chunks_mut(MAX_TXN_OPS) {
            let writes: Vec<&mut Affected> =
                chunk.iter_mut().filter(|a| a.step != Step::Keep).collect();
            if writes.is_empty() {
                continue;
            }
            let transaction = writes.iter().map(|a| a.write());
            let Some(revision) = commit_guarded(store, transaction, "delete collection").await?
            else {
                continue 'retry;
            };
            let mut removals = Vec::new();
            for a in writes {
                set_resource_version(&mut a.object, Some(revision as u64));
                if a.step == Step::PutThenDelete {
                    (a.read, a.step) = (revision, Step::Delete);
                    removals.push(a);
                }
            }
            if removals.is_empty() {
                continue;
            }
            // A write between the two transactions sends the collection round again, where
            // these objects, now without the finalizer, are plain removals.
            let transaction = removals.iter().map(|a| a.write());
            let Some(revision) = commit_guarded(store, transaction, "delete collection").await?
            else {
                continue 'retry;
            };
            for a in removals {
                set_resource_version(&mut a.object, Some(revision as u64));
            }
        }
        return Ok(affected.into_iter().map(|a| a.object).collect());
    }
}
