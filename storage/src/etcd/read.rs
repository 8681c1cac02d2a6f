//! Reads: get, the current revision, and lists at a pinned revision with continue tokens
//! (`k8s.io/apiserver: pkg/storage/etcd3/store.go` `GetList`, `pkg/storage/continue.go`).

use etcd_client::{GetOptions, KeyValue};
use serde_json::Value;

use super::EtcdStore;
use super::keys::{decode, range_end};
use crate::error::{EXPIRED_CONTINUE_MESSAGE, Error, Result};
use crate::key::{ObjectKey, ResourceKey, Revision};
use crate::list::{ContinueToken, ListQuery};
use crate::selector::Filter;
use crate::store::{ListOptions, ListPage};

/// Keys read per request while a selector list scans for matches.
const SCAN_BATCH: i64 = 500;

/// What an etcd `OutOfRange` answer about a revision means.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RevisionError {
    /// The revision was compacted.
    Compacted,
    /// The revision has not happened yet.
    Future,
}

/// Classifies etcd's `ErrCompacted` and `ErrFutureRev` (gRPC `OutOfRange`).
pub(super) fn revision_error(error: &etcd_client::Error) -> Option<RevisionError> {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return None;
    };
    if status.code() != tonic::Code::OutOfRange {
        return None;
    }
    if status.message().contains("compacted") {
        Some(RevisionError::Compacted)
    } else if status.message().contains("future") {
        Some(RevisionError::Future)
    } else {
        None
    }
}

pub(super) fn etcd(operation: &'static str) -> impl FnOnce(etcd_client::Error) -> Error {
    move |source| Error::Etcd { operation, source }
}

/// The header revision of a response (0 when absent, which etcd never does).
pub(super) fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// Reads one object and its modification revision.
pub(super) async fn get(store: &EtcdStore, key: &ObjectKey) -> Result<Option<(Value, i64)>> {
    let mut kv = store.client.kv_client();
    let response = kv
        .get(store.keys.object(key), None)
        .await
        .map_err(etcd("get"))?;
    response
        .kvs()
        .first()
        .map(|kv| Ok((decode(kv, kv.mod_revision())?, kv.mod_revision())))
        .transpose()
}

/// The cluster's current revision.
pub(super) async fn current_revision(store: &EtcdStore) -> Result<Revision> {
    let mut kv = store.client.kv_client();
    let response = kv
        .get(
            store.keys.compaction_key(),
            Some(GetOptions::new().with_count_only()),
        )
        .await
        .map_err(etcd("read the current revision"))?;
    Ok(Revision(header_revision(response.header()).max(0) as u64))
}

/// Every key-value under `prefix` at `revision` (0: now), read in batches of one snapshot,
/// with the snapshot's revision.
pub(super) async fn range_all(
    store: &EtcdStore,
    prefix: &str,
    mut revision: i64,
) -> Result<(i64, Vec<KeyValue>)> {
    let mut kv = store.client.kv_client();
    let end = range_end(prefix.as_bytes());
    let mut start = prefix.as_bytes().to_vec();
    let mut out = Vec::new();
    loop {
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_revision(revision)
            .with_limit(SCAN_BATCH * 2);
        let mut response = kv.get(start, Some(options)).await.map_err(etcd("range"))?;
        if revision == 0 {
            revision = header_revision(response.header());
        }
        let more = response.more();
        let kvs = response.take_kvs();
        match kvs.last() {
            Some(last) if more => start = next_key(last.key()),
            _ => {
                out.extend(kvs);
                return Ok((revision, out));
            }
        }
        out.extend(kvs);
    }
}

/// The smallest key after `key`.
fn next_key(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// One page being collected.
struct Page {
    items: Vec<Value>,
    last_key: Option<Vec<u8>>,
    more: bool,
    remaining: Option<u64>,
}

/// Lists one page at the current revision, or at the revision pinned by the continue token.
///
/// Without a selector a page is one range read of `limit` keys, and etcd's count gives
/// `remainingItemCount`. With one, keys are scanned in batches until the page is full and one
/// more match shows that a continue token is needed (as [`crate::SqliteStore`] does).
pub(super) async fn list(
    store: &EtcdStore,
    resource: &ResourceKey,
    namespace: Option<&str>,
    opts: &ListOptions,
) -> Result<ListPage> {
    let ListQuery {
        filter,
        limit,
        token,
    } = ListQuery::parse(opts)?;
    let prefix = store.keys.collection(resource, namespace);
    let end = range_end(prefix.as_bytes());
    let (mut start, mut revision) = match &token {
        Some(t) => (format!("{prefix}{}", t.start).into_bytes(), t.rv as i64),
        None => (prefix.clone().into_bytes(), 0),
    };
    let mut page = Page {
        items: Vec::new(),
        last_key: None,
        more: false,
        remaining: None,
    };
    let mut kv = store.client.kv_client();
    loop {
        let batch = match (limit, filter.is_empty()) {
            (Some(l), true) => l as i64,
            (Some(l), false) => (l as i64).max(SCAN_BATCH),
            (None, _) => 0,
        };
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_revision(revision)
            .with_limit(batch);
        let mut response = kv
            .get(start.clone(), Some(options))
            .await
            .map_err(|e| list_error(e, token.is_some()))?;
        if revision == 0 {
            revision = header_revision(response.header());
        }
        let (more, count) = (response.more(), response.count());
        let kvs = response.take_kvs();
        let scanned = kvs.len();
        let next = kvs.last().map(|kv| next_key(kv.key()));
        if offer_all(&mut page, &filter, limit, kvs)? {
            break;
        }
        if filter.is_empty() && limit.is_some() {
            if more {
                page.more = true;
                page.remaining = Some((count as u64).saturating_sub(scanned as u64));
            }
            break;
        }
        match next {
            Some(next) if more => start = next,
            _ => break,
        }
    }
    let continue_token = match (page.more, &page.last_key) {
        (true, Some(last)) => {
            let suffix = &last[prefix.len()..];
            let start = String::from_utf8_lossy(&next_key(suffix)).into_owned();
            Some(ContinueToken::new(revision.max(0) as u64, start).encode())
        }
        _ => None,
    };
    Ok(ListPage {
        items: page.items,
        resource_version: Revision(revision.max(0) as u64),
        continue_token,
        remaining_item_count: page.remaining,
    })
}

/// Offers a batch to the page; true when the page is complete and another match follows.
fn offer_all(
    page: &mut Page,
    filter: &Filter,
    limit: Option<usize>,
    kvs: Vec<KeyValue>,
) -> Result<bool> {
    for kv in kvs {
        let object = decode(&kv, kv.mod_revision())?;
        if !filter.matches(&object) {
            continue;
        }
        if limit.is_some_and(|l| page.items.len() >= l) {
            page.more = true;
            return Ok(true);
        }
        page.items.push(object);
        page.last_key = Some(kv.key().to_vec());
    }
    Ok(false)
}

/// A list read's error: a compacted continue revision is 410 Expired, a future one is
/// an invalid token.
fn list_error(error: etcd_client::Error, continued: bool) -> Error {
    match (revision_error(&error), continued) {
        (Some(RevisionError::Compacted), _) => Error::Expired {
            message: EXPIRED_CONTINUE_MESSAGE.into(),
        },
        (Some(RevisionError::Future), true) => Error::InvalidContinue {
            message: "continue key is not valid: resource version is in the future".into(),
        },
        _ => Error::Etcd {
            operation: "list",
            source: error,
        },
    }
}
