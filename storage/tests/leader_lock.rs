//! The etcd leader lock (`storage/src/etcd/lease.rs`) against a real 3-member etcd cluster:
//! one holder at a time, renewals, hand-over on release and on lease expiry.

mod support;

use std::time::{Duration, Instant};

use storage::etcd::lease::Acquire;
use storage::{EtcdConfig, EtcdStore};
use support::etcd_cluster::EtcdCluster;

async fn two_stores(
    cluster: &EtcdCluster,
) -> (std::sync::Arc<EtcdStore>, std::sync::Arc<EtcdStore>) {
    let config = EtcdConfig {
        prefix: format!("/lock-{}", std::process::id()),
        compaction_interval: Duration::ZERO,
        ..EtcdConfig::new(cluster.endpoints())
    };
    (
        EtcdStore::open(config.clone()).await.unwrap(),
        EtcdStore::open(config).await.unwrap(),
    )
}

#[tokio::test]
async fn one_candidate_holds_the_key_until_it_releases_it() {
    let cluster = EtcdCluster::start(3);
    let (a, b) = two_stores(&cluster).await;
    let ttl = Duration::from_secs(15);
    let (la, lb) = (a.leader_lock("ctl", ttl), b.leader_lock("ctl", ttl));
    assert!(la.key().ends_with("/leaderelection/ctl"), "{}", la.key());

    assert_eq!(la.try_acquire(b"a").await.unwrap(), Acquire::Acquired);
    assert_eq!(
        lb.try_acquire(b"b").await.unwrap(),
        Acquire::Held(b"a".to_vec()),
        "a second candidate sees the holder's record"
    );
    assert!(la.renew().await.unwrap(), "the holder renews");
    assert!(
        !lb.renew().await.unwrap(),
        "a candidate that never acquired does not"
    );
    assert_eq!(lb.holder().await.unwrap().as_deref(), Some(&b"a"[..]));

    // Release: the key goes at once and the other candidate takes it.
    let released = tokio::spawn(async move {
        lb.released().await.unwrap();
        lb
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // let the watch open; a missed event only delays the test
    la.release().await.unwrap();
    let lb = tokio::time::timeout(Duration::from_secs(10), released)
        .await
        .expect("the deletion is seen by the watch")
        .unwrap();
    assert!(
        !la.renew().await.unwrap(),
        "a released lock no longer holds"
    );
    assert_eq!(lb.try_acquire(b"b").await.unwrap(), Acquire::Acquired);
    assert_eq!(la.holder().await.unwrap().as_deref(), Some(&b"b"[..]));
}

#[tokio::test]
async fn a_holder_that_stops_renewing_loses_the_key_after_the_ttl() {
    let cluster = EtcdCluster::start(3);
    let (a, b) = two_stores(&cluster).await;
    let ttl = Duration::from_secs(3);
    let (la, lb) = (a.leader_lock("ctl", ttl), b.leader_lock("ctl", ttl));
    assert_eq!(la.try_acquire(b"a").await.unwrap(), Acquire::Acquired);

    // Renewals keep it past its TTL.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert!(la.renew().await.unwrap());
        assert!(matches!(
            lb.try_acquire(b"b").await.unwrap(),
            Acquire::Held(_)
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Without them, etcd expires the lease and deletes the key; the candidate takes over.
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), lb.released())
        .await
        .expect("the key is deleted once the lease expires")
        .unwrap();
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "the key outlived the last renewal by about its TTL, not {waited:?}"
    );
    assert_eq!(lb.try_acquire(b"b").await.unwrap(), Acquire::Acquired);
    assert!(
        !la.renew().await.unwrap(),
        "the old holder learns it lost the key"
    );
    assert!(!la.renew().await.unwrap());
}
