//! The work queue: one entry per object key with a deadline, at most one running reconcile per
//! key, and any number of workers pulling due keys (the concurrency cap is the worker count).
//!
//! Semantics follow kube-runtime's `scheduler` + `runner` (`kube-rs/kube:
//! kube-runtime/src/scheduler.rs`, `kube-runtime/src/controller/runner.rs`) and client-go's
//! workqueue:
//! - [`Queue::schedule`] of a key that is already waiting keeps the *earlier* deadline;
//! - a key scheduled while it runs is parked and becomes due only after [`Queue::done`], so
//!   two reconciles of one object never overlap;
//! - nothing is bounded by a channel: scheduling never blocks and never waits for a worker, so
//!   a flood of requeues cannot deadlock the workers (the state is one map per key).

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::Hash;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A deduplicating delay queue of keys. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Queue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    /// `workqueue_depth` and `workqueue_adds_total`, when the queue is a controller's.
    metrics: Option<crate::metrics::QueueMetrics>,
}

#[derive(Debug)]
struct State<K> {
    /// Waiting keys and their deadline (the source of truth; heap entries may be stale).
    waiting: HashMap<K, Instant>,
    /// Deadlines in order; an entry is live when it equals `waiting[key]`.
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// Keys handed to a worker and not yet `done`.
    running: HashSet<K>,
    /// Keys scheduled while running: they wait here until `done`.
    parked: HashMap<K, Instant>,
    seq: u64,
}

impl<K: Clone + Eq + Hash + Ord> Default for Queue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Ord> Queue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: HashMap::new(),
                heap: BinaryHeap::new(),
                running: HashSet::new(),
                parked: HashMap::new(),
                seq: 0,
            }),
            notify: Notify::new(),
            metrics: None,
        }
    }

    /// An empty queue that reports its depth and adds to `metrics`.
    pub fn with_metrics(metrics: crate::metrics::QueueMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::new()
        }
    }

    /// Reports the waiting keys and, when `added`, one add.
    fn observe(&self, s: &State<K>, added: bool) {
        if let Some(m) = &self.metrics {
            if added {
                m.added();
            }
            m.depth(s.waiting.len());
        }
    }

    /// Makes `key` due at `at`. A key already waiting keeps the earlier of the two deadlines; a
    /// running key is parked until [`Queue::done`]. Never blocks.
    pub fn schedule(&self, key: K, at: Instant) {
        {
            let mut s = self.state.lock();
            if s.running.contains(&key) {
                match s.parked.entry(key) {
                    Entry::Occupied(mut e) => {
                        if at < *e.get() {
                            e.insert(at);
                        }
                    }
                    Entry::Vacant(e) => {
                        e.insert(at);
                    }
                }
                return;
            }
            let added = s.push(key, at);
            self.observe(&s, added);
        }
        self.notify.notify_waiters();
    }

    /// Forgets a waiting or parked key (the object was deleted). A running key still finishes.
    pub fn forget(&self, key: &K) {
        let mut s = self.state.lock();
        s.waiting.remove(key);
        s.parked.remove(key);
        self.observe(&s, false);
    }

    /// Marks a key handed out by [`Queue::next`] as finished; a parked schedule becomes live.
    pub fn done(&self, key: &K) {
        {
            let mut s = self.state.lock();
            s.running.remove(key);
            if let Some(at) = s.parked.remove(key) {
                let added = s.push(key.clone(), at);
                self.observe(&s, added);
            }
        }
        self.notify.notify_waiters();
    }

    /// Number of keys waiting, parked or running (for metrics and tests).
    pub fn len(&self) -> usize {
        let s = self.state.lock();
        s.waiting.len() + s.running.len() + s.parked.len()
    }

    /// Whether nothing is waiting, parked or running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next due key and marks it running. The caller must call [`Queue::done`].
    ///
    /// # Cancel safety
    /// Cancel safe: a key is taken only in the same poll that returns it.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let mut s = self.state.lock();
                match s.pop_due(Instant::now()) {
                    Ok(key) => {
                        self.observe(&s, false);
                        return key;
                    }
                    Err(next) => next,
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> State<K> {
    /// Makes `key` wait until `at` (or keeps its earlier deadline); `true` when it was not
    /// waiting before (an add, for `workqueue_adds_total`).
    fn push(&mut self, key: K, at: Instant) -> bool {
        match self.waiting.get(&key) {
            Some(existing) if *existing <= at => return false,
            _ => {}
        }
        let added = self.waiting.insert(key.clone(), at).is_none();
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, key)));
        added
    }

    /// The first due key (marked running), or the deadline of the earliest waiting key.
    fn pop_due(&mut self, now: Instant) -> Result<K, Option<Instant>> {
        while let Some(Reverse((at, _, key))) = self.heap.peek() {
            if self.waiting.get(key) != Some(at) {
                self.heap.pop();
                continue;
            }
            if *at > now {
                return Err(Some(*at));
            }
            let Some(Reverse((_, _, key))) = self.heap.pop() else {
                unreachable!("peeked");
            };
            self.waiting.remove(&key);
            self.running.insert(key.clone());
            return Ok(key);
        }
        Err(None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn dedup_keeps_the_earlier_deadline() {
        let q = Queue::new();
        let now = Instant::now();
        q.schedule("a", now + Duration::from_secs(10));
        q.schedule("a", now + Duration::from_secs(2));
        q.schedule("a", now + Duration::from_secs(30));
        assert_eq!(q.len(), 1);
        let key = q.next().await;
        assert_eq!(key, "a");
        assert_eq!(Instant::now() - now, Duration::from_secs(2));
        q.done(&key);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_out_in_deadline_order() {
        let q = Queue::new();
        let now = Instant::now();
        q.schedule("late", now + Duration::from_secs(5));
        q.schedule("early", now + Duration::from_secs(1));
        assert_eq!(q.next().await, "early");
        assert_eq!(q.next().await, "late");
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_never_handed_out_twice() {
        let q = Queue::new();
        let now = Instant::now();
        q.schedule("a", now);
        let first = q.next().await;
        q.schedule("a", now);
        q.schedule("b", now + Duration::from_secs(1));
        // "a" is running: the next key is "b", not a second "a".
        assert_eq!(q.next().await, "b");
        let waiting = tokio::time::timeout(Duration::from_secs(60), q.next()).await;
        assert!(waiting.is_err(), "a parked key must wait for done");
        q.done(&first);
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn forget_drops_a_waiting_key() {
        let q = Queue::new();
        q.schedule("a", Instant::now());
        q.forget(&"a");
        assert!(
            tokio::time::timeout(Duration::from_secs(1), q.next())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_requeues_cannot_deadlock() {
        let q = Arc::new(Queue::new());
        let in_flight: Arc<Mutex<HashSet<u32>>> = Arc::default();
        let reconciles = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (q, in_flight, reconciles) = (q.clone(), in_flight.clone(), reconciles.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let key = q.next().await;
                    assert!(in_flight.lock().insert(key), "two reconciles of {key}");
                    // Every reconcile requeues itself and floods its neighbours.
                    for k in 0..50 {
                        q.schedule((key + k) % 100, Instant::now());
                    }
                    tokio::task::yield_now().await;
                    in_flight.lock().remove(&key);
                    q.done(&key);
                    if reconciles.fetch_add(1, Ordering::SeqCst) > 20_000 {
                        return;
                    }
                }
            }));
        }
        for k in 0..100 {
            q.schedule(k, Instant::now());
        }
        for w in workers {
            tokio::time::timeout(Duration::from_secs(600), w)
                .await
                .expect("workers made progress")
                .expect("no panic");
        }
        assert!(reconciles.load(Ordering::SeqCst) > 20_000);
    }
}
