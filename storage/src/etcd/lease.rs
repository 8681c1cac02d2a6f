//! A leader lock on etcd: one key under the store's prefix, attached to an etcd lease, held by
//! at most one replica at a time (the etcd counterpart of a `coordination.k8s.io` Lease that
//! client-go's `leaderelection` takes; etcd's own `concurrency.Election` works the same way,
//! `go.etcd.io/etcd: client/v3/concurrency/election.go`).
//!
//! * [`LeaderLock::try_acquire`] grants a lease of the lock's TTL and creates the key with it in
//!   one transaction that compares the key's create revision with 0 ("create if absent"), so
//!   two candidates can never both succeed.
//! * [`LeaderLock::renew`] sends one keep-alive for the lease and checks, in a transaction, that
//!   the key is still attached to it (an operator may have deleted the key).
//! * When the holder stops renewing, etcd expires the lease after its TTL and deletes the key;
//!   [`LeaderLock::released`] resolves on that deletion so that a candidate tries at once.
//! * [`LeaderLock::release`] revokes the lease (the key goes with it) for a graceful hand-over.
//!
//! The value of the key is opaque here (the caller's leader record).

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, EventType, Txn, TxnOp, TxnOpResponse};
use parking_lot::Mutex;

use super::read::etcd;
use crate::error::Result;

/// What [`LeaderLock::try_acquire`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// This lock now holds the key (with the record it was given).
    Acquired,
    /// Another holder has the key; its record.
    Held(Vec<u8>),
}

/// One candidate's handle on a leader key (see the module docs). Cheap to create; holds the
/// lease id once acquired.
pub struct LeaderLock {
    client: Client,
    key: String,
    ttl: Duration,
    /// The lease attached to the key while this lock holds it.
    lease: Mutex<Option<i64>>,
}

impl std::fmt::Debug for LeaderLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderLock")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("lease", &*self.lease.lock())
            .finish_non_exhaustive()
    }
}

impl LeaderLock {
    /// A lock on `key` whose lease lives `ttl` (rounded up to whole seconds, at least 2 s,
    /// etcd's granularity) after the last renewal.
    pub(super) fn new(client: Client, key: String, ttl: Duration) -> Self {
        Self {
            client,
            key,
            ttl,
            lease: Mutex::new(None),
        }
    }

    /// The etcd key of the lock.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease's time to live in whole seconds, as granted.
    fn ttl_seconds(&self) -> i64 {
        let ms = self.ttl.as_millis().max(2000);
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)
    }

    /// Tries once to become the holder, writing `record` as the key's value. A lock that
    /// already holds the key answers [`Acquire::Acquired`] without writing.
    ///
    /// # Errors
    /// [`crate::Error::Etcd`] when the cluster does not answer; the caller retries.
    pub async fn try_acquire(&self, record: &[u8]) -> Result<Acquire> {
        if self.lease.lock().is_some() {
            return Ok(Acquire::Acquired);
        }
        let mut kv = self.client.kv_client();
        let current = kv
            .get(self.key.as_str(), None)
            .await
            .map_err(etcd("read the leader key"))?;
        if let Some(held) = current.kvs().first() {
            return Ok(Acquire::Held(held.value().to_vec()));
        }
        let mut leases = self.client.lease_client();
        let lease = leases
            .grant(self.ttl_seconds(), None)
            .await
            .map_err(etcd("grant the leader lease"))?
            .id();
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.as_str(),
                record,
                Some(etcd_client::PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(self.key.as_str(), None)]);
        let response = match kv.txn(txn).await {
            Ok(r) => r,
            Err(e) => {
                let _ = leases.revoke(lease).await;
                return Err(etcd("create the leader key")(e));
            }
        };
        if response.succeeded() {
            *self.lease.lock() = Some(lease);
            return Ok(Acquire::Acquired);
        }
        // Another candidate won the race: give the unused lease back.
        let _ = leases.revoke(lease).await;
        let held = response
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Acquire::Held(held))
    }

    /// Renews the lease once (one keep-alive) and checks that the key is still attached to it.
    /// Returns `false` when this lock does not hold the key (never acquired, the lease expired,
    /// or the key was deleted or replaced); the lock then forgets its lease.
    ///
    /// # Errors
    /// [`crate::Error::Etcd`] when the cluster does not answer (the lease may still be alive:
    /// the caller retries until its renew deadline).
    pub async fn renew(&self) -> Result<bool> {
        let Some(lease) = *self.lease.lock() else {
            return Ok(false);
        };
        let mut leases = self.client.lease_client();
        match leases.keep_alive(lease).await {
            Ok(_) => {}
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => {
                // "lease not found": it expired or was revoked.
                *self.lease.lock() = None;
                return Ok(false);
            }
            Err(e) => return Err(etcd("renew the leader lease")(e)),
        }
        let txn = Txn::new().when([Compare::lease(self.key.as_str(), CompareOp::Equal, lease)]);
        let held = self
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(etcd("check the leader key"))?
            .succeeded();
        if !held {
            *self.lease.lock() = None;
        }
        Ok(held)
    }

    /// The current holder's record, `None` when nobody holds the key.
    ///
    /// # Errors
    /// [`crate::Error::Etcd`].
    pub async fn holder(&self) -> Result<Option<Vec<u8>>> {
        let response = self
            .client
            .kv_client()
            .get(self.key.as_str(), None)
            .await
            .map_err(etcd("read the leader key"))?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Resolves when the key is deleted (its lease expired or was revoked), so that a waiting
    /// candidate tries at once instead of at its next retry. A deletion that happened before
    /// the watch started is not seen: race it with the retry period.
    ///
    /// # Errors
    /// [`crate::Error::Etcd`] when the watch cannot be opened or breaks.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future cancels the watch.
    pub async fn released(&self) -> Result<()> {
        let mut stream = self
            .client
            .watch_client()
            .watch(self.key.as_str(), None)
            .await
            .map_err(etcd("watch the leader key"))?;
        while let Some(response) = stream
            .message()
            .await
            .map_err(etcd("watch the leader key"))?
        {
            if response
                .events()
                .iter()
                .any(|e| e.event_type() == EventType::Delete)
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Gives the key up: revokes the lease, which deletes the key, so that another candidate
    /// acquires it at once. Does nothing when this lock does not hold the key.
    ///
    /// # Errors
    /// [`crate::Error::Etcd`]; the lease then expires by itself after its TTL.
    pub async fn release(&self) -> Result<()> {
        let Some(lease) = self.lease.lock().take() else {
            return Ok(());
        };
        self.client
            .lease_client()
            .revoke(lease)
            .await
            .map_err(etcd("revoke the leader lease"))?;
        Ok(())
    }
}
