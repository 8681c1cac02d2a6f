//! Periodic compaction of the cluster's history, coordinated between replicas
//! (`k8s.io/apiserver: pkg/storage/etcd3/compact.go`).
//!
//! Every interval, each replica tries to bump the version of one key (`compact_rev_key`) with
//! a transaction that compares the version it saw last; the one that succeeds compacts to the
//! revision it recorded one interval earlier. So history is kept for at least one interval,
//! and however many replicas run, the cluster is compacted once per interval.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::read::{RevisionError, etcd, header_revision, revision_error};
use crate::error::Result;

/// Compacts the cluster at `revision`: revisions below it are forgotten. A revision that is
/// already compacted is not an error.
///
/// # Errors
/// [`crate::Error::Etcd`].
pub(super) async fn compact(client: &Client, revision: i64) -> Result<()> {
    match client.kv_client().compact(revision, None).await {
        Ok(_) => Ok(()),
        Err(e) if revision_error(&e) == Some(RevisionError::Compacted) => Ok(()),
        Err(e) => Err(etcd("compact")(e)),
    }
}

/// One round: claims this interval's compaction through `key`'s version and, when this
/// replica won, compacts to `previous`. Returns the version now seen and the revision to
/// compact to next round.
async fn round(client: &Client, key: &str, seen: i64, previous: i64) -> Result<(i64, i64)> {
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Equal, seen)])
        .and_then([TxnOp::put(key, previous.to_string(), None)])
        .or_else([TxnOp::get(key, None)]);
    let response = client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd("claim compaction"))?;
    let current = header_revision(response.header());
    if !response.succeeded() {
        // Another replica compacted this interval; follow its version.
        let version = response
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.version()),
                _ => None,
            })
            .unwrap_or(0);
        return Ok((version, current));
    }
    if previous > 0 {
        compact(client, previous).await?;
        tracing::debug!(revision = previous, "etcd history compacted");
    }
    Ok((seen + 1, current))
}

/// Runs the compaction rounds every `interval` until `closed` turns true.
pub(super) async fn run(
    client: Client,
    key: String,
    interval: Duration,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let (mut seen, mut previous) = (0, 0);
    loop {
        tokio::select! {
            () = super::closing(&mut closed) => return,
            () = tokio::time::sleep(interval) => {}
        }
        match round(&client, &key, seen, previous).await {
            Ok(next) => (seen, previous) = next,
            Err(error) => tracing::warn!(%error, "etcd compaction failed"),
        }
    }
}
