//! Connection setup and the schema.
//!
//! `objects` holds the current state (one row per key, with `metadata.labels` copied into
//! `labels` so label selectors do not parse whole objects); `events` is the change log: one row
//! per revision with the new state and the previous one, kept for the retained window. It
//! serves watch resume and lists at an older revision (consistent `continue` paging). `meta`
//! holds `revision` (latest committed) and `compacted` (every event with a greater revision
//! is retained).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    grp TEXT NOT NULL, res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    rev INTEGER NOT NULL,
    value TEXT NOT NULL,
    labels TEXT,
    UNIQUE (grp, res, ns, name)
);
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER PRIMARY KEY,
    grp TEXT NOT NULL, res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    type INTEGER NOT NULL,
    value TEXT NOT NULL,
    prev TEXT,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_resource ON events (grp, res, rev);
";

/// The write connection's page cache, in KiB (SQLite's negative `cache_size`): 2 MiB (SQLite's
/// default) holds the tables' and indexes' interior pages and the pages one group commit
/// touches; a page not cached is read from the operating system's page cache (a `pread`), which
/// is not the process's memory. Issue 14: at 32 MiB per connection (one writer, four readers)
/// the page caches were most of the peak RSS of a 10,000-object reconcile, and at 8 MiB the
/// writer's cache alone was a seventh of the 1,000-object burst's (heaptrack); at 2 MiB both
/// bursts still met their time targets (not measured apart from the allocator change).
const WRITER_CACHE_KIB: i64 = -2_048;

/// A read connection's page cache, in KiB: 1 MiB, the interior pages of a list's scan (its
/// leaves are read once per list, cached or not). Reads are not memory-mapped: a mapped page a
/// list touched stayed in the process's RSS (`RssFile`, ~40 MiB after 1,000 objects were
/// reconciled), while `pread` leaves it in the shared page cache.
const READER_CACHE_KIB: i64 = -1_024;

/// Opens the write connection: WAL, `synchronous=FULL`, schema created.
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(Error::db("open database"))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(Error::db("set busy timeout"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(Error::db("enable WAL"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(Error::db("set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(Error::db("set foreign_keys"))?;
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .map_err(Error::db("set cache_size"))?;
    conn.execute_batch(SCHEMA)
        .map_err(Error::db("create schema"))?;
    // Databases from before the `labels` column get it now.
    let has_labels: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('objects') WHERE name = 'labels'",
            [],
            |r| r.get(0),
        )
        .map_err(Error::db("inspect schema"))?;
    if has_labels == 0 {
        conn.execute_batch(
            "ALTER TABLE objects ADD COLUMN labels TEXT;
             UPDATE objects SET labels = json_extract(value, '$.metadata.labels');",
        )
        .map_err(Error::db("add labels column"))?;
    }
    Ok(conn)
}

/// Opens a read connection (query-only).
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(Error::db("open read connection"))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(Error::db("set busy timeout"))?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(Error::db("set query_only"))?;
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)
        .map_err(Error::db("set cache_size"))?;
    Ok(conn)
}

/// Reads a `meta` counter.
pub(super) fn meta(conn: &Connection, k: &str) -> Result<u64> {
    let v: Option<i64> = conn
        .query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
        .optional()
        .map_err(Error::db("read meta"))?;
    Ok(v.unwrap_or(0) as u64)
}

/// Event type codes in the `events` table.
pub(super) const ADDED: i64 = 1;
pub(super) const MODIFIED: i64 = 2;
pub(super) const DELETED: i64 = 3;
