//! A list+watch cache of one kind across the cluster, client-go's `Reflector` feeding
//! a `Store` (what controller-runtime's cached client reads, and so what Flux's source-controller
//! reads its Secrets from): list the collection, watch from the list's `resourceVersion`, resume
//! the watch from the last version seen when the server ends it normally, and list again when it
//! fails or answers `410 Gone` (an `ERROR` event).
//!
//! Readers never wait for the network: they read the last state, after waiting (bounded) for
//! the first list ([`Reflector::wait_synced`]), as controller-runtime waits for its caches to
//! sync before starting reconcilers.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::List;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::kube::Client;

/// Pause before listing again after a failed list or watch.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Server-side bound of one watch request (client-go picks 5–10 min).
const WATCH_TIMEOUT_SECONDS: u32 = 300;

/// The kinds a [`Reflector`] can cache: objects with metadata, namespaced or cluster-scoped.
pub trait Cached:
    k8s_openapi::Resource + k8s_openapi::ListableResource + k8s_openapi::Metadata<Ty = ObjectMeta>
{
}

impl<T> Cached for T where
    T: k8s_openapi::Resource
        + k8s_openapi::ListableResource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
{
}

/// The objects of one kind last seen, by namespace and name, and whether the first list is in.
#[derive(Debug)]
pub struct Reflector<T> {
    objects: RwLock<HashMap<(String, String), Arc<T>>>,
    synced: Mutex<bool>,
    synced_changed: Condvar,
    /// The cluster-wide collection path, e.g. `/api/v1/secrets`.
    path: String,
}

impl<T: Cached + DeserializeOwned + Send + Sync + 'static> Reflector<T> {
    /// An empty, unsynced cache of the kind's cluster-wide collection (`/api/v1/<plural>` for
    /// the core group, `/apis/<group>/<version>/<plural>` otherwise).
    pub fn new() -> Self {
        let path = if T::GROUP.is_empty() {
            format!("/api/{}/{}", T::VERSION, T::URL_PATH_SEGMENT)
        } else {
            format!("/apis/{}/{}/{}", T::GROUP, T::VERSION, T::URL_PATH_SEGMENT)
        };
        Self {
            objects: RwLock::new(HashMap::new()),
            synced: Mutex::new(false),
            synced_changed: Condvar::new(),
            path,
        }
    }

    /// The object `namespace/name` (`namespace` empty for a cluster-scoped kind), or `None`
    /// when the cache does not hold it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.objects
            .read()
            .expect("reflector cache poisoned")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Whether the first list has filled the cache.
    pub fn is_synced(&self) -> bool {
        *self.synced.lock().expect("reflector cache poisoned")
    }

    /// Blocks the calling thread until the first list is in, for at most `timeout`; returns
    /// whether it is. Call it from blocking code only (`spawn_blocking`).
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let synced = self.synced.lock().expect("reflector cache poisoned");
        let (synced, _) = self
            .synced_changed
            .wait_timeout_while(synced, timeout, |synced| !*synced)
            .expect("reflector cache poisoned");
        *synced
    }

    /// Keeps the cache current until `shutdown` (see the module doc). Failures are logged,
    /// never returned.
    pub async fn run(self: Arc<Self>, client: Client, shutdown: CancellationToken) {
        let mut resume: Option<String> = None;
        loop {
            let round = async {
                let version = match resume.take() {
                    Some(version) => version,
                    None => self.list(&client).await?,
                };
                self.watch(&client, version).await
            };
            let ended = tokio::select! {
                () = shutdown.cancelled() => return,
                ended = round => ended,
            };
            match ended {
                Ok(last) => resume = Some(last),
                Err(error) => {
                    tracing::warn!(%error, path = %self.path, "listing and watching");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        }
    }

    /// Replaces the cache with a fresh list, marks it synced; returns the list's
    /// `resourceVersion`.
    async fn list(&self, client: &Client) -> Result<String, crate::kube::Error> {
        let list: List<T> = client.get(&self.path).await?;
        let objects = list
            .items
            .into_iter()
            .filter_map(|o| Some((key(o.metadata())?, Arc::new(o))))
            .collect();
        *self.objects.write().expect("reflector cache poisoned") = objects;
        *self.synced.lock().expect("reflector cache poisoned") = true;
        self.synced_changed.notify_all();
        tracing::debug!(path = %self.path, "listed");
        Ok(list.metadata.resource_version.unwrap_or_default())
    }

    /// One watch from `resource_version`; the last version seen when the server ended it
    /// normally.
    async fn watch(
        &self,
        client: &Client,
        mut resource_version: String,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let query = format!(
            "{}?watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}&timeoutSeconds={WATCH_TIMEOUT_SECONDS}",
            self.path
        );
        let mut events = std::pin::pin!(client.watch::<serde_json::Value>(&query).await?);
        while let Some(event) = events.next().await {
            let event = event?;
            if event.kind == "ERROR" {
                return Err(format!("watch error: {}", event.object).into());
            }
            let version = event.object["metadata"]["resourceVersion"].as_str();
            if let Some(version) = version.filter(|v| !v.is_empty()) {
                resource_version = version.to_owned();
            }
            if matches!(event.kind.as_str(), "ADDED" | "MODIFIED" | "DELETED") {
                let object: T = serde_json::from_value(event.object)?;
                self.apply(&event.kind, object);
            }
        }
        Ok(resource_version)
    }

    fn apply(&self, kind: &str, object: T) {
        let Some(key) = key(object.metadata()) else {
            return;
        };
        let mut objects = self.objects.write().expect("reflector cache poisoned");
        if kind == "DELETED" {
            objects.remove(&key);
        } else {
            objects.insert(key, Arc::new(object));
        }
    }
}

impl<T: Cached + DeserializeOwned + Send + Sync + 'static> Default for Reflector<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The cache key: (namespace, name), the namespace empty for a cluster-scoped object.
fn key(metadata: &ObjectMeta) -> Option<(String, String)> {
    Some((
        metadata.namespace.clone().unwrap_or_default(),
        metadata.name.clone()?,
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;

    use super::*;

    fn secret(namespace: &str, name: &str, value: &str) -> Secret {
        serde_json::from_value(serde_json::json!({"metadata": {"namespace": namespace,
            "name": name}, "stringData": {"v": value}}))
        .unwrap()
    }

    #[test]
    fn the_path_is_the_cluster_wide_collection() {
        assert_eq!(Reflector::<Secret>::new().path, "/api/v1/secrets");
        assert_eq!(
            Reflector::<k8s_openapi::api::events::v1::Event>::new().path,
            "/apis/events.k8s.io/v1/events"
        );
    }

    #[test]
    fn events_add_replace_and_delete_by_namespace_and_name() {
        let cache = Reflector::<Secret>::new();
        assert!(!cache.wait_synced(Duration::from_millis(1)));
        cache.apply("ADDED", secret("a", "s", "1"));
        cache.apply("MODIFIED", secret("a", "s", "2"));
        cache.apply("ADDED", secret("b", "s", "3"));
        let value = |ns: &str| cache.get(ns, "s").and_then(|s| s.string_data.clone());
        assert_eq!(value("a").unwrap()["v"], "2");
        assert_eq!(value("b").unwrap()["v"], "3");
        cache.apply("DELETED", secret("a", "s", "2"));
        assert!(cache.get("a", "s").is_none());
        assert!(cache.get("b", "s").is_some());
    }

    #[test]
    fn a_cluster_scoped_kind_is_keyed_by_name_alone() {
        let cache = Reflector::<k8s_openapi::api::core::v1::Namespace>::new();
        assert_eq!(cache.path, "/api/v1/namespaces");
        let namespace = |phase: &str| {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "team"},
                "status": {"phase": phase}}))
            .unwrap()
        };
        cache.apply("ADDED", namespace("Active"));
        cache.apply("MODIFIED", namespace("Terminating"));
        let phase = |c: &Reflector<_>| {
            c.get("", "team")
                .and_then(|n: Arc<k8s_openapi::api::core::v1::Namespace>| n.status.clone())
                .and_then(|s| s.phase)
        };
        assert_eq!(phase(&cache).as_deref(), Some("Terminating"));
        cache.apply("DELETED", namespace("Terminating"));
        assert!(cache.get("", "team").is_none());
    }
}
