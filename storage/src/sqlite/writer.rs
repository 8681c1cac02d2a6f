//! The writer thread: owns the write connection and commits queued writes in groups.
//!
//! Every write is a [`Command`] sent over a channel. The thread takes the first command,
//! drains everything else already queued (up to [`MAX_BATCH`]), runs them all in ONE
//! transaction (each in its own savepoint, so one failing write does not affect the others),
//! commits with ONE fsync (`synchronous=FULL`), then answers each caller and publishes the
//! committed changes to the watch hub. Nothing is acknowledged before the commit is durable.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::Retention;
use super::schema::{ADDED, DELETED, MODIFIED, meta};
use super::watch::{Change, Hub};
use crate::error::{Error, Result};
use crate::key::{ObjectKey, ResourceKey};
use crate::object::{
    DeletePlan, UpdatePlan, check_delete_preconditions, plan_delete, plan_update, prepare_create,
    set_resource_version,
};
use crate::selector::Filter;
use crate::store::{DeleteOptions, DeleteOutcome, UpdatePart, WatchEventType};

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// One write.
#[derive(Debug)]
pub(super) enum WriteOp {
    Create {
        key: ObjectKey,
        object: Value,
    },
    Update {
        key: ObjectKey,
        object: Value,
        part: UpdatePart,
    },
    Delete {
        key: ObjectKey,
        opts: DeleteOptions,
    },
    DeleteCollection {
        resource: ResourceKey,
        namespace: Option<String>,
        filter: Filter,
        opts: DeleteOptions,
    },
}

/// What a write returns.
#[derive(Debug)]
pub(super) enum WriteReply {
    Object(Value),
    Delete(DeleteOutcome),
    Objects(Vec<Value>),
}

/// A message to the writer thread.
#[derive(Debug)]
pub(super) enum Command {
    Write {
        op: WriteOp,
        dry_run: bool,
        reply: oneshot::Sender<Result<WriteReply>>,
    },
    /// Compact now (to the retention window); replies with the compacted revision.
    Compact { reply: oneshot::Sender<Result<u64>> },
}

pub(super) struct Writer {
    conn: Connection,
    hub: Arc<Hub>,
    revision: u64,
    compacted: u64,
    retention: Retention,
    last_compaction: Instant,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// Per-write context inside the group transaction.
struct Ctx<'c> {
    conn: &'c Connection,
    revision: &'c mut u64,
    dry_run: bool,
    changes: Vec<Change>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Ctx<'_> {
    fn read(&self, key: &ObjectKey) -> Result<Option<Value>> {
        let text: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT value FROM objects WHERE grp = ?1 AND res = ?2 AND ns = ?3 AND name = ?4",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        key.resource.group,
                        key.resource.resource,
                        key.namespace,
                        key.name
                    ],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(Error::db("read object for write"))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|source| Error::Decode {
                key: key.to_string(),
                source,
            })
        })
        .transpose()
    }

    /// Stores `object` under the next revision (sets its resourceVersion) and logs the change.
    fn put(&mut self, key: &ObjectKey, object: &mut Value, prev: Option<&Value>) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        *self.revision += 1;
        let rev = *self.revision;
        set_resource_version(object, Some(rev));
        let text = serde_json::to_string(&*object).expect("JSON values serialize");
        let labels = object
            .pointer("/metadata/labels")
            .filter(|l| l.is_object())
            .map(|l| serde_json::to_string(l).expect("JSON values serialize"));
        self.conn
            .prepare_cached(
                "INSERT INTO objects (grp, res, ns, name, rev, value, labels)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (grp, res, ns, name) DO UPDATE
                 SET rev = excluded.rev, value = excluded.value, labels = excluded.labels",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.resource.group,
                    key.resource.resource,
                    key.namespace,
                    key.name,
                    rev as i64,
                    text,
                    labels
                ])
            })
            .map_err(Error::db("write object"))?;
        let kind = if prev.is_some() {
            WatchEventType::Modified
        } else {
            WatchEventType::Added
        };
        self.log(key, kind, &text, object, prev)
    }

    /// Removes the object under the next revision; `last` gets the deletion revision.
    fn remove(&mut self, key: &ObjectKey, last: &mut Value, prev: &Value) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        *self.revision += 1;
        let rev = *self.revision;
        set_resource_version(last, Some(rev));
        self.conn
            .prepare_cached(
                "DELETE FROM objects WHERE grp = ?1 AND res = ?2 AND ns = ?3 AND name = ?4",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.resource.group,
                    key.resource.resource,
                    key.namespace,
                    key.name
                ])
            })
            .map_err(Error::db("delete object"))?;
        let text = serde_json::to_string(&*last).expect("JSON values serialize");
        self.log(key, WatchEventType::Deleted, &text, last, Some(prev))
    }

    fn log(
        &mut self,
        key: &ObjectKey,
        kind: WatchEventType,
        text: &str,
        object: &Value,
        prev: Option<&Value>,
    ) -> Result<()> {
        let code = match kind {
            WatchEventType::Added => ADDED,
            WatchEventType::Modified => MODIFIED,
            _ => DELETED,
        };
        let prev_text = prev.map(|p| serde_json::to_string(p).expect("JSON values serialize"));
        let rev = *self.revision;
        self.conn
            .prepare_cached(
                "INSERT INTO events (rev, grp, res, ns, name, type, value, prev, ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    rev as i64,
                    key.resource.group,
                    key.resource.resource,
                    key.namespace,
                    key.name,
                    code,
                    text,
                    prev_text,
                    now_unix()
                ])
            })
            .map_err(Error::db("log change"))?;
        self.changes.push(Change {
            rev,
            resource: key.resource.clone(),
            namespace: key.namespace.clone(),
            kind,
            object: Arc::new(object.clone()),
            prev: prev.map(|p| Arc::new(p.clone())),
        });
        Ok(())
    }

    fn create(&mut self, key: &ObjectKey, object: Value) -> Result<Value> {
        let mut object = prepare_create(key, object)?;
        if self.read(key)?.is_some() {
            return Err(Error::AlreadyExists { key: key.clone() });
        }
        self.put(key, &mut object, None)?;
        Ok(object)
    }

    fn update(&mut self, key: &ObjectKey, object: Value, part: UpdatePart) -> Result<Value> {
        let stored = self
            .read(key)?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        match plan_update(key, &stored, object, part)? {
            UpdatePlan::Unchanged => Ok(stored),
            UpdatePlan::Write(mut next) => {
                self.put(key, &mut next, Some(&stored))?;
                Ok(next)
            }
            UpdatePlan::Delete(mut last) => {
                self.remove(key, &mut last, &stored)?;
                Ok(last)
            }
        }
    }

    fn delete_stored(
        &mut self,
        key: &ObjectKey,
        stored: Value,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome> {
        match plan_delete(&stored, opts) {
            DeletePlan::Unchanged => Ok(DeleteOutcome::Finalizing(stored)),
            DeletePlan::Finalize(mut next) => {
                self.put(key, &mut next, Some(&stored))?;
                Ok(DeleteOutcome::Finalizing(next))
            }
            DeletePlan::Remove(updated) => {
                let stored = match updated {
                    Some(mut next) => {
                        self.put(key, &mut next, Some(&stored))?;
                        next
                    }
                    None => stored,
                };
                let mut last = stored.clone();
                self.remove(key, &mut last, &stored)?;
                Ok(DeleteOutcome::Deleted(last))
            }
        }
    }

    fn delete(&mut self, key: &ObjectKey, opts: &DeleteOptions) -> Result<DeleteOutcome> {
        let stored = self
            .read(key)?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        check_delete_preconditions(key, &stored, opts)?;
        self.delete_stored(key, stored, opts)
    }

    fn delete_collection(
        &mut self,
        resource: &ResourceKey,
        namespace: Option<&str>,
        filter: &Filter,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>> {
        let rows: Vec<(String, String, String)> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT ns, name, value FROM objects WHERE grp = ?1 AND res = ?2
                     AND (?3 IS NULL OR ns = ?3) ORDER BY ns, name",
                )
                .map_err(Error::db("list for delete collection"))?;
            let rows = stmt
                .query_map(params![resource.group, resource.resource, namespace], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(Error::db("list for delete collection"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(Error::db("list for delete collection"))?
        };
        let mut out = Vec::new();
        for (ns, name, text) in rows {
            if !filter.matches_key(&ns, &name) {
                continue;
            }
            let key = resource.object(ns, name);
            let stored: Value = serde_json::from_str(&text).map_err(|source| Error::Decode {
                key: key.to_string(),
                source,
            })?;
            if !filter.matches_labels(&stored) {
                continue;
            }
            out.push(self.delete_stored(&key, stored, opts)?.into_object());
        }
        Ok(out)
    }
}

impl Writer {
    pub(super) fn new(conn: Connection, hub: Arc<Hub>, retention: Retention) -> Result<Self> {
        let revision = meta(&conn, "revision")?;
        let compacted = meta(&conn, "compacted")?;
        Ok(Self {
            conn,
            hub,
            revision,
            compacted,
            retention,
            last_compaction: Instant::now(),
        })
    }

    pub(super) fn revision(&self) -> u64 {
        self.revision
    }

    /// Runs until every sender is dropped.
    pub(super) fn run(mut self, rx: Receiver<Command>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    self.maybe_compact();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
            self.maybe_compact();
        }
        tracing::debug!(revision = self.revision, "storage writer stopped");
    }

    fn commit_batch(&mut self, batch: Vec<Command>) {
        let start_revision = self.revision;
        let mut writes = Vec::with_capacity(batch.len());
        let mut compactions = Vec::new();
        for command in batch {
            match command {
                Command::Write { op, dry_run, reply } => writes.push((op, dry_run, reply)),
                Command::Compact { reply } => compactions.push(reply),
            }
        }
        let mut outcomes: Vec<Result<WriteReply>> = Vec::with_capacity(writes.len());
        let mut changes: Vec<Change> = Vec::new();
        let result = (|| -> Result<()> {
            let mut tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(Error::db("begin transaction"))?;
            for (op, dry_run, _) in &writes {
                let dry_run = *dry_run;
                let before = self.revision;
                let sp = tx.savepoint().map_err(Error::db("begin savepoint"))?;
                let mut ctx = Ctx {
                    conn: &sp,
                    revision: &mut self.revision,
                    dry_run,
                    changes: Vec::new(),
                };
                let outcome = match op {
                    WriteOp::Create { key, object } => {
                        ctx.create(key, object.clone()).map(WriteReply::Object)
                    }
                    WriteOp::Update { key, object, part } => ctx
                        .update(key, object.clone(), *part)
                        .map(WriteReply::Object),
                    WriteOp::Delete { key, opts } => ctx.delete(key, opts).map(WriteReply::Delete),
                    WriteOp::DeleteCollection {
                        resource,
                        namespace,
                        filter,
                        opts,
                    } => ctx
                        .delete_collection(resource, namespace.as_deref(), filter, opts)
                        .map(WriteReply::Objects),
                };
                let op_changes = std::mem::take(&mut ctx.changes);
                if outcome.is_ok() && !dry_run {
                    sp.commit().map_err(Error::db("release savepoint"))?;
                    changes.extend(op_changes);
                } else {
                    drop(sp); // rolls this write back, and only this one
                    self.revision = before;
                }
                outcomes.push(outcome.map(|r| if dry_run { dry_run_reply(op, r) } else { r }));
            }
            if self.revision != start_revision {
                tx.execute(
                    "UPDATE meta SET v = ?1 WHERE k = 'revision'",
                    [self.revision as i64],
                )
                .map_err(Error::db("write revision"))?;
            }
            tx.commit().map_err(Error::db("commit"))?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                // Publish before answering: once a writer has its reply, every watcher has
                // been offered the change (and bookmarks may name its revision).
                let changes: Vec<Arc<Change>> = changes.into_iter().map(Arc::new).collect();
                if !changes.is_empty() {
                    self.hub.publish(&changes, self.revision);
                }
                for ((_, _, reply), outcome) in writes.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // The whole group is rolled back: every write in it fails, none is published.
                let message = error_chain(&e);
                tracing::error!(error = %message, writes = writes.len(), "storage transaction failed");
                self.revision = start_revision;
                for (_, _, reply) in writes {
                    let _ = reply.send(Err(Error::Transaction {
                        message: message.clone(),
                    }));
                }
            }
        }
        for reply in compactions {
            let _ = reply.send(self.compact());
        }
    }

    fn maybe_compact(&mut self) {
        let due = match self.retention {
            Retention::Revisions(n) => {
                let slack = (n / 8).max(16);
                self.revision.saturating_sub(self.compacted) > n + slack
            }
            Retention::Duration(_) => self.last_compaction.elapsed() >= Duration::from_secs(10),
        };
        if due && let Err(e) = self.compact() {
            tracing::warn!(error = %e, "storage compaction failed");
        }
    }

    /// Deletes history outside the retention window; returns the compacted revision.
    fn compact(&mut self) -> Result<u64> {
        self.last_compaction = Instant::now();
        let target = match self.retention {
            Retention::Revisions(n) => self.revision.saturating_sub(n),
            Retention::Duration(d) => {
                let cutoff = now_unix() - d.as_secs() as i64;
                let newest_old: Option<i64> = self
                    .conn
                    .query_row("SELECT MAX(rev) FROM events WHERE ts < ?1", [cutoff], |r| {
                        r.get(0)
                    })
                    .map_err(Error::db("find compaction target"))?;
                newest_old.map(|r| r as u64).unwrap_or(0)
            }
        };
        if target <= self.compacted {
            return Ok(self.compacted);
        }
        let tx = self
            .conn
            .transaction()
            .map_err(Error::db("begin compaction"))?;
        tx.execute("DELETE FROM events WHERE rev <= ?1", [target as i64])
            .map_err(Error::db("compact events"))?;
        tx.execute(
            "UPDATE meta SET v = ?1 WHERE k = 'compacted'",
            [target as i64],
        )
        .map_err(Error::db("write compacted revision"))?;
        tx.commit().map_err(Error::db("commit compaction"))?;
        self.compacted = target;
        tracing::debug!(compacted = target, "storage history compacted");
        Ok(target)
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A dry run reports what would be stored: a create has no resourceVersion; other writes keep
/// the stored one (already the case, as nothing was assigned).
fn dry_run_reply(op: &WriteOp, reply: WriteReply) -> WriteReply {
    match (op, reply) {
        (WriteOp::Create { .. }, WriteReply::Object(mut v)) => {
            set_resource_version(&mut v, None);
            WriteReply::Object(v)
        }
        (_, r) => r,
    }
}
