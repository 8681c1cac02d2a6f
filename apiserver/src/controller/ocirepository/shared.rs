//! Shared builds (issue 14): objects that resolve to the same content build it once.
//!
//! Two OCIRepositories in one namespace that resolve to the same manifest digest of the same
//! repository, with the same `spec.ignore` and `spec.layerSelector`, would store byte-identical
//! archives (the archive is deterministic). The first reconcile of such a [`BuildKey`] pulls,
//! extracts and archives as usual and records what it stored here; the others get a hard link
//! of that file in their own directory ([`storage::ArtifactStore::link`]) without a manifest
//! or blob request. A reconcile of a key that is being built waits for that build instead of
//! starting its own (single-flight): N objects over k distinct builds make k pulls, however
//! many run at once.
//!
//! The namespace is part of the key: within a namespace every object may use the same
//! Secrets, so sharing there gives nobody content they could not pull; across namespaces it
//! could. The index lives in memory: after a restart the first reconcile of each key builds it
//! again. A recorded file that is gone (retention, deletion) or no longer matches its digest is
//! simply built again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

/// The most build keys remembered; past it, keys not being built are forgotten (their objects
/// keep their files; only the sharing with later objects is lost).
const MAX_SHARED_BUILDS: usize = 4096;

/// What makes two archives identical: the namespace (the trust boundary), the repository and
/// manifest digest pulled (`<host>/<repo>@sha256:…`), `spec.ignore` and `spec.layerSelector`
/// (as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct BuildKey {
    pub(super) namespace: String,
    pub(super) reference: String,
    pub(super) ignore: Option<String>,
    pub(super) layer_selector: Option<String>,
}

/// An archive built for a [`BuildKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Built {
    /// Its stored relative path (`ocirepository/<ns>/<name>/<manifest hex>.tar.gz`).
    pub(super) path: String,
    /// `sha256:<hex>` of the archive.
    pub(super) digest: String,
    /// The file name every sharer stores it under (`<manifest hex>.tar.gz`, Flux's name).
    pub(super) file_name: String,
    /// The manifest's annotations (`status.artifact.metadata`).
    pub(super) annotations: Option<BTreeMap<String, String>>,
}

/// The in-memory index of builds, one slot per key. Shared by the workers.
#[derive(Debug, Default)]
pub(crate) struct SharedBuilds {
    slots: Mutex<HashMap<BuildKey, Arc<tokio::sync::Mutex<Option<Built>>>>>,
}

/// Exclusive use of one key's slot: `None` until a build is recorded. Held while building, so
/// that a second reconcile of the key waits and then finds the build.
pub(super) type Slot = OwnedMutexGuard<Option<Built>>;

impl SharedBuilds {
    /// Waits for exclusive use of `key`'s slot (another reconcile may be building it).
    pub(super) async fn claim(&self, key: BuildKey) -> Slot {
        let slot = {
            let mut slots = self.slots.lock();
            if slots.len() >= MAX_SHARED_BUILDS && !slots.contains_key(&key) {
                slots.retain(|_, slot| Arc::strong_count(slot) > 1);
            }
            slots.entry(key).or_default().clone()
        };
        slot.lock_owned().await
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reference: &str) -> BuildKey {
        BuildKey {
            namespace: "default".into(),
            reference: reference.into(),
            ignore: None,
            layer_selector: None,
        }
    }

    fn built() -> Built {
        Built {
            path: "ocirepository/default/a/abc.tar.gz".into(),
            digest: "sha256:00".into(),
            file_name: "abc.tar.gz".into(),
            annotations: None,
        }
    }

    #[tokio::test]
    async fn a_second_claim_waits_for_the_build_and_finds_it() {
        let builds = Arc::new(SharedBuilds::default());
        let mut first = builds.claim(key("r@sha256:1")).await;
        let waiter = {
            let builds = builds.clone();
            tokio::spawn(async move { builds.claim(key("r@sha256:1")).await.clone() })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await; // the waiter runs until it blocks on the slot
        }
        assert!(
            !waiter.is_finished(),
            "the second claim waits for the first"
        );
        let other = builds.claim(key("r@sha256:2")).await;
        assert!(other.is_none(), "another key is not blocked");
        *first = Some(built());
        drop(first);
        assert_eq!(waiter.await.unwrap(), Some(built()));
    }

    #[tokio::test]
    async fn keys_not_in_use_are_forgotten_past_the_bound() {
        let builds = SharedBuilds::default();
        let held = builds.claim(key("held")).await;
        for i in 0..MAX_SHARED_BUILDS {
            *builds.claim(key(&i.to_string())).await = Some(built());
        }
        assert!(builds.len() <= MAX_SHARED_BUILDS);
        drop(held);
        let slots = builds.slots.lock();
        assert!(
            slots.contains_key(&key("held")),
            "a key in use is kept when the index is trimmed"
        );
    }
}
