//! The timing model on a paused clock, over an in-memory lock (the etcd lock itself is tested
//! against a real cluster in `storage/tests/leader_lock.rs`).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use storage::BoxFuture;
use storage::etcd::lease::Acquire;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ElectionConfig, LeaderElector, Leadership, LeaseLock};

/// One key shared by the candidates of a test; `renewals_fail` makes every renewal an error
/// (etcd unreachable from the leader).
#[derive(Debug, Default)]
struct Key {
    holder: Mutex<Option<(usize, Vec<u8>)>>,
    renewals_fail: Mutex<bool>,
    renewals: Mutex<Vec<Instant>>,
    released: tokio::sync::Notify,
}

#[derive(Debug)]
struct FakeLock {
    key: Arc<Key>,
    id: usize,
}

impl LeaseLock for FakeLock {
    fn try_acquire<'a>(&'a self, record: &'a [u8]) -> BoxFuture<'a, storage::Result<Acquire>> {
        Box::pin(async move {
            let mut holder = self.key.holder.lock();
            match &*holder {
                Some((id, _)) if *id == self.id => Ok(Acquire::Acquired),
                Some((_, held)) => Ok(Acquire::Held(held.clone())),
                None => {
                    *holder = Some((self.id, record.to_vec()));
                    Ok(Acquire::Acquired)
                }
            }
        })
    }
    fn renew(&self) -> BoxFuture<'_, storage::Result<bool>> {
        Box::pin(async move {
            self.key.renewals.lock().push(Instant::now());
            if *self.key.renewals_fail.lock() {
                return Err(storage::Error::Closed);
            }
            Ok(matches!(&*self.key.holder.lock(), Some((id, _)) if *id == self.id))
        })
    }
    fn released(&self) -> BoxFuture<'_, storage::Result<()>> {
        Box::pin(async move {
            self.key.released.notified().await;
            Ok(())
        })
    }
    fn holder(&self) -> BoxFuture<'_, storage::Result<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(self.key.holder.lock().as_ref().map(|(_, r)| r.clone())) })
    }
    fn release(&self) -> BoxFuture<'_, storage::Result<()>> {
        Box::pin(async move {
            let mut holder = self.key.holder.lock();
            if matches!(&*holder, Some((id, _)) if *id == self.id) {
                *holder = None;
                self.key.released.notify_waiters();
            }
            Ok(())
        })
    }
}

fn config(identity: &str) -> ElectionConfig {
    ElectionConfig {
        name: "test".into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
        identity: identity.into(),
        peer_address: Some(format!("http://{identity}:9090")),
    }
}

fn elector(key: &Arc<Key>, id: usize) -> Arc<LeaderElector> {
    LeaderElector::new(
        Arc::new(FakeLock {
            key: key.clone(),
            id,
        }),
        config(&format!("replica-{id}")),
    )
}

async fn wait_for(elector: &LeaderElector, want: Leadership) {
    let mut rx = elector.subscribe();
    rx.wait_for(|l| *l == want).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_first_candidate_leads_and_records_its_peer_address() {
    let key = Arc::new(Key::default());
    let (a, b) = (elector(&key, 1), elector(&key, 2));
    let stop = CancellationToken::new();
    tokio::spawn(a.clone().run(stop.clone()));
    wait_for(&a, Leadership::Leading).await;
    tokio::spawn(b.clone().run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(a.is_leader());
    assert!(!b.is_leader(), "one leader at a time");
    let leader = b.leader().await.unwrap().unwrap();
    assert_eq!(leader.holder_identity, "replica-1");
    assert_eq!(
        leader.peer_address.as_deref(),
        Some("http://replica-1:9090")
    );
    assert_eq!(leader.lease_duration_seconds, 15);
    // Renewals every retry period.
    let renewals = key.renewals.lock().clone();
    assert!(
        (25..=31).contains(&renewals.len()),
        "{} renewals in 60 s",
        renewals.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_gives_up_at_the_renew_deadline_before_the_lease_expires() {
    let key = Arc::new(Key::default());
    let a = elector(&key, 1);
    let run = tokio::spawn(a.clone().run(CancellationToken::new()));
    wait_for(&a, Leadership::Leading).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let last_ok = *key.renewals.lock().last().expect("renewed");
    *key.renewals_fail.lock() = true;

    assert_eq!(run.await.unwrap(), Leadership::Lost);
    let gave_up = Instant::now() - last_ok;
    assert!(
        gave_up <= Duration::from_secs(10),
        "lost leadership {gave_up:?} after the last renewal: later than the renew deadline"
    );
    assert!(
        gave_up >= Duration::from_secs(8),
        "kept retrying until close to the deadline, not {gave_up:?}"
    );
    assert_eq!(*a.subscribe().borrow(), Leadership::Lost);
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_key_was_taken_loses_at_its_next_renewal() {
    let key = Arc::new(Key::default());
    let a = elector(&key, 1);
    let run = tokio::spawn(a.clone().run(CancellationToken::new()));
    wait_for(&a, Leadership::Leading).await;
    *key.holder.lock() = Some((9, b"{}".to_vec()));
    let started = Instant::now();
    assert_eq!(run.await.unwrap(), Leadership::Lost);
    assert!(Instant::now() - started <= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_candidate_takes_over_at_once_when_the_leader_releases() {
    let key = Arc::new(Key::default());
    let (a, b) = (elector(&key, 1), elector(&key, 2));
    let stop_a = CancellationToken::new();
    let run_a = tokio::spawn(a.clone().run(stop_a.clone()));
    wait_for(&a, Leadership::Leading).await;
    tokio::spawn(b.clone().run(CancellationToken::new()));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!b.is_leader());

    stop_a.cancel();
    assert_eq!(run_a.await.unwrap(), Leadership::Released);
    let released = Instant::now();
    wait_for(&b, Leadership::Leading).await;
    assert!(
        Instant::now() - released < Duration::from_millis(100),
        "the candidate waited for its retry period instead of the release"
    );
}
