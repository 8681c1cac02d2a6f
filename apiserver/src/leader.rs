//! Leader election: of the replicas that share one etcd prefix, exactly one, the leader, runs
//! the controllers; every replica serves the API (and `/readyz` stays ready on the others).
//!
//! The timing model is client-go's `leaderelection` (`k8s.io/client-go:
//! tools/leaderelection/leaderelection.go`), with its defaults as kube-controller-manager's
//! flags: a **lease duration** of 15 s (the TTL of the etcd lease behind the leader key), a
//! **renew deadline** of 10 s and a **retry period** of 2 s.
//!
//! * A candidate tries to create the leader key every retry period (jittered by up to 1.2 ×,
//!   as client-go's `JitterFactor`), and also at once when it sees the key deleted (the old
//!   leader's lease expired or was revoked), so a successor takes over at most one lease
//!   duration after the old leader's last renewal.
//! * The leader renews every retry period. It counts its renew deadline from the moment it
//!   *sent* its last successful renewal, so its own deadline always passes before etcd can
//!   expire the lease (lease duration − renew deadline = 5 s earlier, whatever the network
//!   delay was). When the deadline passes, or a renewal finds the key gone, leadership is
//!   [`Leadership::Lost`]: the process then exits (status 1) as client-go's and
//!   controller-runtime's managers do (`OnStoppedLeading`), which stops every running
//!   reconcile at once, rather than stopping the controllers gracefully, which waits for a
//!   running reconcile and could outlive the 5 s margin. Kubernetes restarts the pod, which
//!   becomes a candidate again.
//! * On shutdown the leader stops its controllers first and then releases the key (revokes
//!   the lease), so a successor takes over at once (client-go's `ReleaseOnCancel`).
//!
//! The leader record (the key's value) names the holder and the address other replicas fetch
//! artifacts from ([`LeaderRecord::peer_address`], `crate::artifacts::peer`).
//!
//! With SQLite there is one replica, which is always the leader: no elector is built.
//! Leadership changes are logged and exported as client-go's
//! `leader_election_master_status{name}` gauge.

use std::sync::Arc;
use std::time::Duration;

use storage::BoxFuture;
use storage::etcd::lease::{Acquire, LeaderLock};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// client-go's `JitterFactor`: a candidate waits between 1 and 2.2 retry periods.
const JITTER_FACTOR: f64 = 1.2;

/// The election's timing and identity (`--leader-elect-*`, validated: lease duration >
/// renew deadline > 1.2 × retry period, as client-go requires).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Name of the leader key (`--leader-elect-resource-name`, default `source-apiserver`).
    pub name: String,
    /// TTL of the etcd lease behind the leader key (default 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up (default 10 s).
    pub renew_deadline: Duration,
    /// Interval between tries of candidates and renewals of the leader (default 2 s).
    pub retry_period: Duration,
    /// This replica's identity in the leader record: host name and a random suffix, as
    /// client-go's `id := hostname + "_" + uuid`.
    pub identity: String,
    /// Where other replicas fetch artifacts from this one (`--peer-advertise-address`, the
    /// `http://host:port` of its `--artifact-listen`), recorded while it leads.
    pub peer_address: Option<String>,
}

/// The value of the leader key: who leads, since when, and where its artifacts are. Field
/// names follow `coordination.k8s.io/v1` `LeaseSpec` where one exists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderRecord {
    /// The leader's identity ([`ElectionConfig::identity`]).
    pub holder_identity: String,
    /// The lease duration in seconds.
    pub lease_duration_seconds: u64,
    /// When it acquired the key (RFC 3339).
    pub acquire_time: String,
    /// `http://host:port` of its artifact listener, when advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
}

/// Where this replica stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Waiting for the key.
    Candidate,
    /// Holding the key: the controllers run here.
    Leading,
    /// Was leading and could not renew before the deadline (or the key was taken away):
    /// the controllers must stop now.
    Lost,
    /// Released on shutdown.
    Released,
}

/// The lock the elector takes: an etcd key with a lease ([`LeaderLock`]); a trait so that the
/// timing model is tested on a paused clock.
pub trait LeaseLock: Send + Sync + std::fmt::Debug + 'static {
    /// One try to create the key with `record` ([`LeaderLock::try_acquire`]).
    fn try_acquire<'a>(&'a self, record: &'a [u8]) -> BoxFuture<'a, storage::Result<Acquire>>;
    /// One renewal; `false` when the key is no longer ours ([`LeaderLock::renew`]).
    fn renew(&self) -> BoxFuture<'_, storage::Result<bool>>;
    /// Resolves when the key is deleted ([`LeaderLock::released`]).
    fn released(&self) -> BoxFuture<'_, storage::Result<()>>;
    /// The current holder's record ([`LeaderLock::holder`]).
    fn holder(&self) -> BoxFuture<'_, storage::Result<Option<Vec<u8>>>>;
    /// Gives the key up ([`LeaderLock::release`]).
    fn release(&self) -> BoxFuture<'_, storage::Result<()>>;
}

impl LeaseLock for LeaderLock {
    fn try_acquire<'a>(&'a self, record: &'a [u8]) -> BoxFuture<'a, storage::Result<Acquire>> {
        Box::pin(LeaderLock::try_acquire(self, record))
    }
    fn renew(&self) -> BoxFuture<'_, storage::Result<bool>> {
        Box::pin(LeaderLock::renew(self))
    }
    fn released(&self) -> BoxFuture<'_, storage::Result<()>> {
        Box::pin(LeaderLock::released(self))
    }
    fn holder(&self) -> BoxFuture<'_, storage::Result<Option<Vec<u8>>>> {
        Box::pin(LeaderLock::holder(self))
    }
    fn release(&self) -> BoxFuture<'_, storage::Result<()>> {
        Box::pin(LeaderLock::release(self))
    }
}

/// Runs the election of one replica ([`LeaderElector::run`]) and tells the rest of the process
/// where it stands ([`LeaderElector::subscribe`]).
#[derive(Debug)]
pub struct LeaderElector {
    lock: Arc<dyn LeaseLock>,
    config: ElectionConfig,
    state: watch::Sender<Leadership>,
}

impl LeaderElector {
    /// An elector over `lock`, a candidate until [`LeaderElector::run`] acquires it.
    pub fn new(lock: Arc<dyn LeaseLock>, config: ElectionConfig) -> Arc<Self> {
        crate::metrics::leader_status(&config.name, false);
        Arc::new(Self {
            lock,
            config,
            state: watch::Sender::new(Leadership::Candidate),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// Where this replica stands now, and later changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.state.subscribe()
    }

    /// True while this replica leads.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow() == Leadership::Leading
    }

    /// The current leader's record, `None` when nobody leads (or the record is unreadable).
    ///
    /// # Errors
    /// The lock's etcd error.
    pub async fn leader(&self) -> storage::Result<Option<LeaderRecord>> {
        let record = self.lock.holder().await?;
        Ok(record.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    /// Campaigns until this replica leads, then renews until `stop` is cancelled (then it
    /// releases the key) or leadership is lost. Returns the final [`Leadership`]:
    /// [`Leadership::Lost`] or [`Leadership::Released`] (also when `stop` is cancelled while
    /// still a candidate).
    ///
    /// Cancel `stop` only once the controllers have stopped: until then the key must stay
    /// held.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> Leadership {
        if !self.campaign(&stop).await {
            self.state.send_replace(Leadership::Released);
            return Leadership::Released;
        }
        self.set(Leadership::Leading);
        let end = self.hold(&stop).await;
        if end == Leadership::Released
            && let Err(error) = self.lock.release().await
        {
            tracing::warn!(%error, "releasing the leader key failed; it expires with its lease");
        }
        self.set(end);
        end
    }

    /// Records and reports a change of leadership.
    fn set(&self, leadership: Leadership) {
        let name = &self.config.name;
        let identity = &self.config.identity;
        match leadership {
            Leadership::Leading => {
                tracing::info!(%name, %identity, "acquired leadership: starting the controllers");
            }
            Leadership::Lost => {
                tracing::error!(%name, %identity, renew_deadline_seconds = self.config.renew_deadline.as_secs_f64(), "leadership lost: could not renew before the renew deadline");
            }
            Leadership::Released => {
                tracing::info!(%name, %identity, "leadership released");
            }
            Leadership::Candidate => {}
        }
        crate::metrics::leader_status(name, leadership == Leadership::Leading);
        self.state.send_replace(leadership);
    }

    /// The record this replica writes when it acquires the key.
    fn record(&self) -> Vec<u8> {
        let record = LeaderRecord {
            holder_identity: self.config.identity.clone(),
            lease_duration_seconds: self.config.lease_duration.as_secs(),
            acquire_time: jiff::Timestamp::now().to_string(),
            peer_address: self.config.peer_address.clone(),
        };
        serde_json::to_vec(&record).expect("the record serializes")
    }

    /// Tries until the key is ours (true) or `stop` is cancelled (false).
    async fn campaign(&self, stop: &CancellationToken) -> bool {
        let record = self.record();
        let mut observed: Option<String> = None;
        loop {
            match self.lock.try_acquire(&record).await {
                Ok(Acquire::Acquired) => return true,
                Ok(Acquire::Held(held)) => {
                    let holder = serde_json::from_slice::<LeaderRecord>(&held)
                        .map(|r| r.holder_identity)
                        .unwrap_or_default();
                    if observed.as_ref() != Some(&holder) {
                        tracing::info!(name = %self.config.name, leader = %holder, "new leader observed");
                        observed = Some(holder);
                    }
                }
                Err(error) => tracing::warn!(%error, "trying to acquire leadership"),
            }
            let wait = jittered(self.config.retry_period);
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(wait) => {}
                // The key's deletion: try at once (an error falls back to the retry period).
                Ok(()) = self.lock.released() => {}
            }
        }
    }

    /// Renews every retry period until `stop` (Released) or the renew deadline passes or the
    /// key is gone (Lost).
    async fn hold(&self, stop: &CancellationToken) -> Leadership {
        // Conservative: the acquisition was sent before now.
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Leadership::Released,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let deadline = last_renewal + self.config.renew_deadline;
            match self.renew_before(deadline, stop).await {
                Some(sent) => last_renewal = sent,
                None if stop.is_cancelled() => return Leadership::Released,
                None => return Leadership::Lost,
            }
        }
    }

    /// Retries renewing every retry period until one succeeds (returns when it was sent) or
    /// `deadline` passes, the key is gone or `stop` is cancelled (`None`).
    async fn renew_before(&self, deadline: Instant, stop: &CancellationToken) -> Option<Instant> {
        loop {
            let sent = Instant::now();
            if sent >= deadline || stop.is_cancelled() {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.lock.renew()).await {
                Ok(Ok(true)) => return Some(sent),
                Ok(Ok(false)) => {
                    tracing::error!(name = %self.config.name, "the leader key is gone or held by another replica");
                    return None;
                }
                Ok(Err(error)) => tracing::warn!(%error, "renewing leadership failed; retrying"),
                Err(_) => return None,
            }
            let pause = self
                .config
                .retry_period
                .min(deadline - Instant::now().min(deadline));
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// `period` stretched by a random factor in [1, 1 + [`JITTER_FACTOR`]) (client-go's
/// `wait.Jitter`).
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + rand::random::<f64>() * JITTER_FACTOR)
}

/// This replica's identity: the host name (the pod name in a cluster) and a random suffix.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "source-apiserver".into());
    format!("{host}_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests;
