//! Reads on the read-connection pool: get, list (at a pinned revision), and the snapshot a
//! watch starts from.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::schema::{ADDED, MODIFIED, meta};
use super::watch::Change;
use crate::error::{EXPIRED_CONTINUE_MESSAGE, Error, Result};
use crate::key::{ObjectKey, ResourceKey, Revision};
use crate::list::{ContinueToken, ListQuery};
use crate::selector::Filter;
use crate::store::{ListPage, WatchEventType};

fn decode(key: impl FnOnce() -> String, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|source| Error::Decode { key: key(), source })
}

/// Reads one object.
pub(super) fn get(conn: &Connection, key: &ObjectKey) -> Result<Value> {
    let text: Option<String> = conn
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
        .map_err(Error::db("get object"))?;
    match text {
        Some(t) => decode(|| key.to_string(), &t),
        None => Err(Error::NotFound { key: key.clone() }),
    }
}

fn changes_since(
    conn: &Connection,
    resource: &ResourceKey,
    namespace: Option<&str>,
    after: u64,
) -> Result<BTreeMap<(String, String), Option<String>>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT ns, name, prev FROM events WHERE grp = ?1 AND res = ?2 AND rev > ?3
             AND (?4 IS NULL OR ns = ?4) ORDER BY rev",
        )
        .map_err(Error::db("read changes"))?;
    let rows = stmt
        .query_map(
            params![resource.group, resource.resource, after as i64, namespace],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            },
        )
        .map_err(Error::db("read changes"))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (ns, name, prev) = row.map_err(Error::db("read changes"))?;
        out.entry((ns, name)).or_insert(prev);
    }
    Ok(out)
}

/// Collects one page while rows are offered in (namespace, name) order.
struct Page<'f> {
    filter: &'f Filter,
    limit: Option<usize>,
    /// The page's objects as stored JSON text, decoded at the end (see [`decode_all`]).
    texts: Vec<String>,
    last_key: Option<(String, String)>,
    /// More matching items follow the page.
    more: bool,
    /// How many (only counted without a selector).
    remaining: u64,
    /// Nothing more to learn from further rows.
    done: bool,
}

impl Page<'_> {
    /// Offers one row. `labels` is the row's `metadata.labels` as JSON text (or `None`);
    /// `value` gives the object text and is only called for rows that are returned.
    fn offer<'v>(
        &mut self,
        resource: &ResourceKey,
        ns: &str,
        name: &str,
        labels: impl FnOnce() -> Result<Option<&'v str>>,
        value: impl FnOnce() -> Result<&'v str>,
    ) -> Result<()> {
        if self.done || !self.filter.matches_key(ns, name) {
            return Ok(());
        }
        let filter = self.filter;
        let labels_match = || -> Result<bool> {
            if !filter.has_label_requirements() {
                return Ok(true);
            }
            let map: Option<serde_json::Map<String, Value>> = labels()?
                .map(|l| {
                    serde_json::from_str(l).map_err(|source| Error::Decode {
                        key: format!("{resource}/{ns}/{name} labels"),
                        source,
                    })
                })
                .transpose()?;
            Ok(filter.matches_label_map(map.as_ref()))
        };
        if self.limit.is_some_and(|l| self.texts.len() >= l) {
            if self.filter.is_empty() {
                self.more = true;
                self.remaining += 1;
            } else if labels_match()? {
                self.more = true;
                self.done = true;
            }
            return Ok(());
        }
        if !labels_match()? {
            return Ok(());
        }
        self.texts.push(value()?.to_owned());
        self.last_key = Some((ns.to_owned(), name.to_owned()));
        Ok(())
    }
}

/// Pages at least this long are decoded on several threads.
const PARALLEL_DECODE_MIN_ITEMS: usize = 2048;

/// Decodes stored JSON texts in order. Decoding into `serde_json::Value` dominates the cost of
/// a large list (the SQLite scan of 10,000 rows takes about a tenth of it), so big pages are
/// split over up to 4 scoped threads.
fn decode_all(resource: &ResourceKey, texts: Vec<String>) -> Result<Vec<Value>> {
    let decode_chunk = |offset: usize, chunk: &[String]| -> Result<Vec<Value>> {
        chunk
            .iter()
            .enumerate()
            .map(|(i, t)| decode(|| format!("{resource} list item {}", offset + i), t))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if texts.len() < PARALLEL_DECODE_MIN_ITEMS || threads < 2 {
        return decode_chunk(0, &texts);
    }
    let chunk_len = texts.len().div_ceil(threads);
    let parts: Vec<Result<Vec<Value>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .chunks(chunk_len)
            .enumerate()
            .map(|(n, chunk)| scope.spawn(move || decode_chunk(n * chunk_len, chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("decoding does not panic"))
            .collect()
    });
    let mut items = Vec::with_capacity(texts.len());
    for part in parts {
        items.extend(part?);
    }
    Ok(items)
}

fn column_text<'r>(row: &'r rusqlite::Row<'_>, idx: usize) -> Result<Option<&'r str>> {
    row.get_ref(idx)
        .and_then(|v| {
            v.as_str_or_null().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        })
        .map_err(Error::db("list objects"))
}

/// Lists one page at the current revision, or at the revision pinned by `token`.
///
/// Rows come from `objects` in (namespace, name) order. At an older revision (a continue
/// token after later writes), keys changed since then are skipped there and taken instead
/// from the `prev` state of their first later change in `events`.
pub(super) fn list(
    conn: &mut Connection,
    resource: &ResourceKey,
    namespace: Option<&str>,
    query: ListQuery,
) -> Result<ListPage<String>> {
    let ListQuery {
        filter,
        limit,
        token,
    } = query;
    let filter = &filter;
    let tx = conn.transaction().map_err(Error::db("begin read"))?;
    let current = meta(&tx, "revision")?;
    let compacted = meta(&tx, "compacted")?;
    let (revision, after) = match token {
        None => (current, None),
        Some(t) => {
            if t.rv > current {
                return Err(Error::InvalidContinue {
                    message: "continue key is not valid: resource version is in the future".into(),
                });
            }
            if t.rv < compacted {
                return Err(Error::Expired {
                    message: EXPIRED_CONTINUE_MESSAGE.into(),
                });
            }
            let Some((ns, name)) = t.start.split_once('/') else {
                return Err(Error::InvalidContinue {
                    message: "continue key is not valid: incorrect encoded start key".into(),
                });
            };
            (t.rv, Some((ns.to_owned(), name.to_owned())))
        }
    };
    let changed = if revision < current {
        changes_since(&tx, resource, namespace, revision)?
    } else {
        BTreeMap::new()
    };
    // State at `revision` of the changed keys that existed then, after the start key.
    let mut old_rows: Vec<(String, String, String, Option<String>)> = Vec::new();
    for ((ns, name), prev) in &changed {
        let Some(text) = prev else { continue };
        if after
            .as_ref()
            .is_some_and(|(ans, aname)| (ns, name) <= (ans, aname))
        {
            continue;
        }
        let value = decode(|| format!("{resource}/{ns}/{name}"), text)?;
        let labels = value
            .pointer("/metadata/labels")
            .filter(|l| l.is_object())
            .map(Value::to_string);
        old_rows.push((ns.clone(), name.clone(), text.clone(), labels));
    }
    let mut old_rows = old_rows.into_iter().peekable();

    let mut sql =
        String::from("SELECT ns, name, labels, value FROM objects WHERE grp = ?1 AND res = ?2");
    if namespace.is_some() {
        sql.push_str(" AND ns = ?3");
    }
    if after.is_some() {
        sql.push_str(" AND (ns, name) > (?4, ?5)");
    }
    sql.push_str(" ORDER BY ns, name");
    let mut stmt = tx.prepare_cached(&sql).map_err(Error::db("list objects"))?;
    let (after_ns, after_name) = after.clone().unwrap_or_default();
    let mut bind: Vec<(&str, &dyn rusqlite::ToSql)> =
        vec![("?1", &resource.group), ("?2", &resource.resource)];
    if let Some(ns) = &namespace {
        bind.push(("?3", ns));
    }
    if after.is_some() {
        bind.push(("?4", &after_ns));
        bind.push(("?5", &after_name));
    }
    let mut rows = stmt
        .query(bind.as_slice())
        .map_err(Error::db("list objects"))?;
    let mut page = Page {
        filter,
        limit,
        texts: Vec::new(),
        last_key: None,
        more: false,
        remaining: 0,
        done: false,
    };
    while !page.done {
        let Some(row) = rows.next().map_err(Error::db("list objects"))? else {
            break;
        };
        let ns = column_text(row, 0)?.unwrap_or_default();
        let name = column_text(row, 1)?.unwrap_or_default();
        while let Some((ons, oname, text, labels)) =
            old_rows.next_if(|(ons, oname, _, _)| (ons.as_str(), oname.as_str()) < (ns, name))
        {
            page.offer(
                resource,
                &ons,
                &oname,
                || Ok(labels.as_deref()),
                || Ok(text.as_str()),
            )?;
        }
        if !changed.is_empty() && changed.contains_key(&(ns.to_owned(), name.to_owned())) {
            continue;
        }
        // Columns 2 and 3 are read only when needed: counting the rest of a limited list
        // touches only the (grp, res, ns, name) index.
        page.offer(
            resource,
            ns,
            name,
            || column_text(row, 2),
            || Ok(column_text(row, 3)?.unwrap_or("null")),
        )?;
    }
    for (ons, oname, text, labels) in old_rows {
        page.offer(
            resource,
            &ons,
            &oname,
            || Ok(labels.as_deref()),
            || Ok(text.as_str()),
        )?;
    }
    let continue_token = match (page.more, page.last_key) {
        (true, Some((ns, name))) => {
            Some(ContinueToken::new(revision, format!("{ns}/{name}")).encode())
        }
        _ => None,
    };
    let remaining_item_count = (page.more && filter.is_empty()).then_some(page.remaining);
    Ok(ListPage {
        items: page.texts,
        resource_version: Revision(revision),
        continue_token,
        remaining_item_count,
    })
}

/// Decodes the items of a [`list`] page.
pub(super) fn decode_page(resource: &ResourceKey, page: ListPage<String>) -> Result<ListPage> {
    Ok(ListPage {
        items: decode_all(resource, page.items)?,
        resource_version: page.resource_version,
        continue_token: page.continue_token,
        remaining_item_count: page.remaining_item_count,
    })
}

/// The current revision and every current object of the collection that matches `filter`.
pub(super) fn current_state(
    conn: &mut Connection,
    resource: &ResourceKey,
    namespace: Option<&str>,
    filter: &Filter,
) -> Result<(u64, Vec<Value>)> {
    let tx = conn.transaction().map_err(Error::db("begin read"))?;
    let revision = meta(&tx, "revision")?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT ns, name, value FROM objects WHERE grp = ?1 AND res = ?2
             AND (?3 IS NULL OR ns = ?3) ORDER BY ns, name",
        )
        .map_err(Error::db("read watch snapshot"))?;
    let rows = stmt
        .query_map(params![resource.group, resource.resource, namespace], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(Error::db("read watch snapshot"))?;
    let mut out = Vec::new();
    for row in rows {
        let (ns, name, text) = row.map_err(Error::db("read watch snapshot"))?;
        if !filter.matches_key(&ns, &name) {
            continue;
        }
        let value = decode(|| format!("{resource}/{ns}/{name}"), &text)?;
        if filter.matches_labels(&value) {
            out.push(value);
        }
    }
    Ok((revision, out))
}

/// The current revision and every retained change of the collection after `after`.
///
/// # Errors
/// [`Error::Expired`] when changes after `after` have been compacted.
pub(super) fn history(
    conn: &mut Connection,
    resource: &ResourceKey,
    namespace: Option<&str>,
    after: u64,
) -> Result<(u64, Vec<Change>)> {
    let tx = conn.transaction().map_err(Error::db("begin read"))?;
    let revision = meta(&tx, "revision")?;
    let compacted = meta(&tx, "compacted")?;
    if after < compacted {
        return Err(Error::too_old(after, compacted));
    }
    let mut stmt = tx
        .prepare_cached(
            "SELECT rev, ns, name, type, value, prev FROM events WHERE grp = ?1 AND res = ?2
             AND rev > ?3 AND (?4 IS NULL OR ns = ?4) ORDER BY rev",
        )
        .map_err(Error::db("read history"))?;
    let rows = stmt
        .query_map(
            params![resource.group, resource.resource, after as i64, namespace],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .map_err(Error::db("read history"))?;
    let mut out = Vec::new();
    for row in rows {
        let (rev, ns, name, code, value, prev) = row.map_err(Error::db("read history"))?;
        let k = || format!("{resource}/{ns}/{name}@{rev}");
        let object = decode(k, &value)?;
        let prev = prev.map(|p| decode(k, &p)).transpose()?;
        out.push(Change {
            rev: rev as u64,
            resource: resource.clone(),
            namespace: ns,
            kind: match code {
                ADDED => WatchEventType::Added,
                MODIFIED => WatchEventType::Modified,
                _ => WatchEventType::Deleted,
            },
            object: Arc::new(object),
            prev: prev.map(Arc::new),
        });
    }
    Ok((revision, out))
}

/// Any one stored object of the collection (to learn its `apiVersion`/`kind`).
pub(super) fn sample(conn: &Connection, resource: &ResourceKey) -> Result<Option<Value>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM objects WHERE grp = ?1 AND res = ?2 LIMIT 1",
            params![resource.group, resource.resource],
            |r| r.get(0),
        )
        .optional()
        .map_err(Error::db("sample object"))?;
    text.map(|t| decode(|| resource.to_string(), &t))
        .transpose()
}

/// The latest committed revision.
pub(super) fn revision(conn: &Connection) -> Result<u64> {
    meta(conn, "revision")
}
