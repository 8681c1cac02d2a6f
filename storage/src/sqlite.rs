//! The SQLite implementation of [`ObjectStore`].
//!
//! One thread owns the write connection and commits queued writes in groups (one transaction,
//! one fsync for everything queued); reads run on a small pool of read connections inside
//! `spawn_blocking` (WAL lets them proceed during writes). See `sqlite/schema.rs` for the
//! tables and `sqlite/writer.rs` for the commit protocol.

mod read;
mod schema;
mod watch;
mod writer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};

use self::watch::{Hub, WatchSetup};
use self::writer::{Command, WriteOp, WriteReply, Writer};
use crate::error::{Error, Result};
use crate::key::{ObjectKey, ResourceKey, Revision};
use crate::list::ListQuery;
use crate::object::collection_delete_options;
use crate::selector::Filter;
use crate::store::{
    BoxFuture, DeleteOptions, DeleteOutcome, ListOptions, ListPage, ObjectStore, UpdatePart,
    WatchEvent, WatchEventType, WatchOptions, WatchStream, WriteOptions,
};

/// How much change history the store keeps for watch resume and `continue` paging. Older
/// revisions answer 410 Expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Keep the last `n` revisions (kine's `--compact-min-retain` idea).
    Revisions(u64),
    /// Keep changes younger than this (checked every 10 s), like kube-apiserver's periodic
    /// compaction (`--etcd-compaction-interval`, 5 min).
    Duration(Duration),
}

/// Configuration of [`SqliteStore`]. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Retained history; default `Retention::Revisions(10_000)`.
    pub retention: Retention,
    /// Changes buffered per watcher before it is ended with 410 Expired; default 1024 events
    /// (0 is treated as 1).
    pub watch_buffer: usize,
    /// Interval between BOOKMARK events when asked for; default 60 s (Kubernetes'
    /// `defaultBookmarkFrequency`).
    pub bookmark_interval: Duration,
    /// Number of read connections (concurrent reads); default 4 (0 is treated as 1).
    pub read_pool_size: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            retention: Retention::Revisions(10_000),
            watch_buffer: 1024,
            bookmark_interval: Duration::from_secs(60),
            read_pool_size: 4,
        }
    }
}

/// SQLite object store: WAL, `synchronous=FULL`, group commit, in-process watch fan-out.
///
/// Only one store may have a database file open at a time (the writer thread owns the
/// revision counter); [`SqliteStore::open`] enforces it with an exclusive lock on `<db>.lock`.
pub struct SqliteStore {
    path: PathBuf,
    config: SqliteConfig,
    commands: Mutex<Option<std::sync::mpsc::Sender<Command>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: Arc<Semaphore>,
    hub: Arc<Hub>,
    closed: AtomicBool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` (parent directories included) and
    /// starts the writer thread.
    ///
    /// # Errors
    /// [`Error::Locked`] when another store still has the file open after 2 s; [`Error::Io`] if the
    /// directory or lock file cannot be created; [`Error::Database`] if SQLite cannot open the
    /// file or create the schema.
    pub async fn open(path: &Path, config: SqliteConfig) -> Result<Arc<Self>> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, config))
            .await
            .map_err(|_| Error::Closed)?
    }

    fn open_blocking(path: PathBuf, config: SqliteConfig) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                operation: "creating database directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let lock = lock_database(&path)?;
        let conn = schema::open_writer(&path)?;
        // Make the new database file's directory entry durable too (SQLite syncs the
        // directory for the WAL file itself).
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::Io {
                    operation: "syncing database directory",
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let revision = schema::meta(&conn, "revision")?;
        let hub = Arc::new(Hub::new(revision));
        let writer = Writer::new(conn, hub.clone(), config.retention)?;
        let hub_revision = writer.revision();
        let pool = config.read_pool_size.max(1);
        let readers = (0..pool)
            .map(|_| schema::open_reader(&path))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || {
                // The writer thread holds the database lock: it is released only once the
                // last queued write has committed, even when the store is dropped unclosed.
                let _lock = lock;
                writer.run(rx);
            })
            .map_err(|source| Error::Io {
                operation: "starting the storage writer thread",
                path: path.clone(),
                source,
            })?;
        tracing::info!(path = %path.display(), revision = hub_revision, "storage opened");
        Ok(Arc::new(Self {
            path,
            config,
            commands: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(readers)),
            read_permits: Arc::new(Semaphore::new(pool)),
            hub,
            closed: AtomicBool::new(false),
        }))
    }

    /// Stops accepting work, ends every watch, waits for queued writes to commit and the
    /// writer thread to exit. Later calls on the store return [`Error::Closed`].
    ///
    /// # Errors
    /// None in practice; kept fallible for backends that flush on close.
    pub async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.commands.lock().take();
        self.hub.close();
        let handle = self.writer.lock().take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.readers.lock().clear();
        Ok(())
    }

    /// Compacts the history now to the retention window and returns the oldest revision still
    /// resumable (watches and continue tokens at older revisions get 410). Compaction also
    /// runs automatically.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Database`].
    pub async fn compact(&self) -> Result<Revision> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Compact { reply })?;
        rx.await.map_err(|_| Error::Closed)?.map(Revision)
    }

    /// Runs `PRAGMA integrity_check` and returns its first line (`ok` when healthy).
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Database`].
    pub async fn integrity_check(&self) -> Result<String> {
        self.read(|conn| {
            conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
                .map_err(Error::db("integrity check"))
        })
        .await
    }

    /// The number of watches currently registered with the store: every open
    /// [`ObjectStore::watch`] stream counts until it is dropped or ends (a client that
    /// disconnects mid-stream drops its stream, so this returns to the number of live watches).
    pub fn watchers(&self) -> usize {
        self.hub.watchers()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, command: Command) -> Result<()> {
        let guard = self.commands.lock();
        let sender = guard.as_ref().ok_or(Error::Closed)?;
        sender.send(command).map_err(|_| Error::Closed)
    }

    async fn write(&self, op: WriteOp, dry_run: bool) -> Result<WriteReply> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Write { op, dry_run, reply })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a pooled read connection in `spawn_blocking`.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed)?;
        let readers = self.readers.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let mut conn = readers
                .lock()
                .pop()
                .expect("a permit guarantees a free connection");
            let result = f(&mut conn);
            readers.lock().push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    async fn start_watch(
        &self,
        resource: &ResourceKey,
        namespace: Option<&str>,
        opts: WatchOptions,
    ) -> Result<WatchStream> {
        let filter = Filter::parse(
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        // Subscribe before reading, so no change committed after the read is missed; changes
        // at or below the snapshot revision are dropped by the stream.
        let subscription = self
            .hub
            .subscribe(resource, namespace, self.config.watch_buffer)?;
        let ns = namespace.map(str::to_owned);
        let res = resource.clone();
        let from = opts.resource_version.map(|r| r.0).unwrap_or(0);
        let initial_state = from == 0 || opts.send_initial_events;
        let mut initial = VecDeque::new();
        let start_revision;
        if initial_state {
            let f = filter.clone();
            let (revision, objects) = self
                .read(move |c| read::current_state(c, &res, ns.as_deref(), &f))
                .await?;
            if let Some(o) = objects.first() {
                self.hub.learn_kind(resource, o);
            }
            initial.extend(objects.into_iter().map(|object| WatchEvent {
                event_type: WatchEventType::Added,
                object,
            }));
            start_revision = revision;
        } else {
            let (revision, changes) = self
                .read(move |c| read::history(c, &res, ns.as_deref(), from))
                .await?;
            if let Some(c) = changes.first() {
                self.hub.learn_kind(resource, &c.object);
            }
            initial.extend(changes.iter().filter_map(|c| watch::transform(&filter, c)));
            start_revision = revision;
        }
        if opts.bookmarks {
            let res = resource.clone();
            if let Some(o) = self.read(move |c| read::sample(c, &res)).await? {
                self.hub.learn_kind(resource, &o);
            }
            if initial_state && opts.send_initial_events {
                initial.push_back(watch::bookmark(&self.hub, resource, start_revision, true));
            }
        }
        Ok(watch::stream(WatchSetup {
            hub: self.hub.clone(),
            subscription,
            resource: resource.clone(),
            filter,
            initial,
            start_revision,
            bookmark_interval: opts.bookmarks.then_some(self.config.bookmark_interval),
        }))
    }
}

impl Drop for SqliteStore {
    /// Ends every watch; the writer thread finishes queued writes and exits once the command
    /// channel is dropped with the store. Prefer [`SqliteStore::close`], which also waits.
    fn drop(&mut self) {
        self.hub.close();
    }
}

/// How long [`SqliteStore::open`] waits for another store to release the database.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Takes an exclusive advisory lock on `<db>.lock` (released when the file is closed, also
/// by the kernel when the process dies).
fn lock_database(db: &Path) -> Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Io {
            operation: "opening database lock file",
            path: path.clone(),
            source,
        })?;
    // A store that was just dropped releases the lock once its writer thread has committed
    // the queued writes: wait a little for that before giving up.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path }),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    operation: "locking database",
                    path,
                    source,
                });
            }
        }
    }
}

fn object_reply(reply: WriteReply) -> Value {
    match reply {
        WriteReply::Object(v) => v,
        WriteReply::Delete(d) => d.into_object(),
        WriteReply::Objects(mut v) => v.pop().unwrap_or(Value::Null),
    }
}

impl ObjectStore for SqliteStore {
    fn create<'a>(
        &'a self,
        key: &'a ObjectKey,
        object: Value,
        opts: WriteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            let op = WriteOp::Create {
                key: key.clone(),
                object,
            };
            self.write(op, opts.dry_run).await.map(object_reply)
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            let key = key.clone();
            self.read(move |c| read::get(c, &key)).await
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
            let op = WriteOp::Update {
                key: key.clone(),
                object,
                part,
            };
            self.write(op, opts.dry_run).await.map(object_reply)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a ObjectKey,
        opts: DeleteOptions,
    ) -> BoxFuture<'a, Result<DeleteOutcome>> {
        Box::pin(async move {
            let dry_run = opts.dry_run;
            match self
                .write(
                    WriteOp::Delete {
                        key: key.clone(),
                        opts,
                    },
                    dry_run,
                )
                .await?
            {
                WriteReply::Delete(d) => Ok(d),
                other => Ok(DeleteOutcome::Deleted(object_reply(other))),
            }
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
            let filter = Filter::parse(
                list.label_selector.as_deref(),
                list.field_selector.as_deref(),
            )?;
            let dry_run = opts.dry_run;
            let op = WriteOp::DeleteCollection {
                resource: resource.clone(),
                namespace: namespace.map(str::to_owned),
                filter,
                opts: collection_delete_options(opts),
            };
            match self.write(op, dry_run).await? {
                WriteReply::Objects(v) => Ok(v),
                other => Ok(vec![object_reply(other)]),
            }
        })
    }

    fn list<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(async move {
            let a = list_args(resource, namespace, opts)?;
            self.read(move |c| {
                let page = read::list(c, &a.resource, a.namespace.as_deref(), a.query)?;
                read::decode_page(&a.resource, page)
            })
            .await
        })
    }

    fn list_raw<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ListPage<String>>> {
        Box::pin(async move {
            let a = list_args(resource, namespace, opts)?;
            self.read(move |c| read::list(c, &a.resource, a.namespace.as_deref(), a.query))
                .await
        })
    }

    fn watch<'a>(
        &'a self,
        resource: &'a ResourceKey,
        namespace: Option<&'a str>,
        opts: WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        Box::pin(self.start_watch(resource, namespace, opts))
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<Revision>> {
        Box::pin(async move { self.read(|c| read::revision(c)).await.map(Revision) })
    }
}

/// Owned arguments of a list read, moved into the blocking read.
struct ListArgs {
    resource: ResourceKey,
    namespace: Option<String>,
    query: ListQuery,
}

/// Parses selectors and the continue token before any database work, so a bad one fails fast.
fn list_args(
    resource: &ResourceKey,
    namespace: Option<&str>,
    opts: &ListOptions,
) -> Result<ListArgs> {
    Ok(ListArgs {
        resource: resource.clone(),
        namespace: namespace.map(str::to_owned),
        query: ListQuery::parse(opts)?,
    })
}
