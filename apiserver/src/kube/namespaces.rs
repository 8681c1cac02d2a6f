//! The cluster's namespaces, kept current by a list then watch of `/api/v1/namespaces`
//! (client-go's namespace informer, as kube-apiserver's NamespaceLifecycle admission uses it):
//! a cache of each namespace's name and [`Phase`]. [`watch`] re-lists whenever the watch ends
//! or fails, so a missed event is repaired by the next list.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Namespace;
use tokio_util::sync::CancellationToken;

use crate::kube::Client;

/// Pause before re-listing after a failed list or watch.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The collection path.
const PATH: &str = "/api/v1/namespaces";

/// A namespace's lifecycle phase (`NamespacePhase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// In use: new objects may be created in it.
    Active,
    /// Being deleted (`status.phase: Terminating`, or `metadata.deletionTimestamp` set):
    /// kube-controller-manager is emptying it.
    Terminating,
}

impl Phase {
    /// The phase of `namespace`: terminating when its phase says so or its deletion has been
    /// requested, active otherwise.
    pub fn of(namespace: &Namespace) -> Self {
        let phase = namespace.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Terminating") || namespace.metadata.deletion_timestamp.is_some() {
            Self::Terminating
        } else {
            Self::Active
        }
    }
}

/// The namespaces last seen, by name; empty until the first list.
#[derive(Debug, Default)]
pub struct NamespaceCache {
    phases: RwLock<HashMap<String, Phase>>,
}

impl NamespaceCache {
    /// The phase of namespace `name`, or `None` when the cache has not seen it.
    pub fn phase(&self, name: &str) -> Option<Phase> {
        self.phases
            .read()
            .expect("namespace cache poisoned")
            .get(name)
            .copied()
    }

    fn replace(&self, namespaces: &[Namespace]) {
        let phases = namespaces
            .iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, Phase::of(n))))
            .collect();
        *self.phases.write().expect("namespace cache poisoned") = phases;
    }

    fn apply(&self, kind: &str, namespace: &Namespace) {
        let Some(name) = namespace.metadata.name.clone() else {
            return;
        };
        let mut phases = self.phases.write().expect("namespace cache poisoned");
        if kind == "DELETED" {
            phases.remove(&name);
        } else {
            phases.insert(name, Phase::of(namespace));
        }
    }
}

/// Keeps `cache` current until `shutdown`: lists the namespaces, watches from the list's
/// `resourceVersion`, and lists again whenever the watch ends (after [`RETRY_DELAY`] when it
/// failed). Failures are logged, never returned.
pub async fn watch(cache: Arc<NamespaceCache>, client: Client, shutdown: CancellationToken) {
    loop {
        let round = async {
            let version = list(&cache, &client).await?;
            watch_once(&cache, &client, &version).await
        };
        let ended = tokio::select! {
            () = shutdown.cancelled() => return,
            ended = round => ended,
        };
        if let Err(error) = ended {
            tracing::warn!(%error, "listing and watching namespaces");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY_DELAY) => {}
            }
        }
    }
}

/// Replaces the cache with a fresh list; returns the list's `resourceVersion`.
async fn list(cache: &NamespaceCache, client: &Client) -> Result<String, crate::kube::Error> {
    let list: List<Namespace> = client.get(PATH).await?;
    cache.replace(&list.items);
    tracing::debug!(namespaces = list.items.len(), "listed namespaces");
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// One watch from `resource_version`; `Ok` when the server ended it normally.
async fn watch_once(
    cache: &NamespaceCache,
    client: &Client,
    resource_version: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let query = format!(
        "{PATH}?watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}&timeoutSeconds=300"
    );
    let mut events = std::pin::pin!(client.watch::<serde_json::Value>(&query).await?);
    while let Some(event) = events.next().await {
        let event = event?;
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let namespace: Namespace = serde_json::from_value(event.object)?;
                cache.apply(&event.kind, &namespace);
            }
            "ERROR" => return Err(format!("watch error: {}", event.object).into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(value: serde_json::Value) -> Namespace {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_deletion_timestamp_alone_or_the_phase_alone_means_terminating() {
        let active = namespace(serde_json::json!({"metadata": {"name": "a"},
            "status": {"phase": "Active"}}));
        let deleted = namespace(serde_json::json!({"metadata": {"name": "b",
            "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Active"}}));
        let phase = namespace(serde_json::json!({"metadata": {"name": "c"},
            "status": {"phase": "Terminating"}}));
        assert_eq!(Phase::of(&active), Phase::Active);
        assert_eq!(Phase::of(&deleted), Phase::Terminating);
        assert_eq!(Phase::of(&phase), Phase::Terminating);
    }

    #[test]
    fn watch_events_update_the_list_and_deleted_forgets() {
        let cache = NamespaceCache::default();
        cache.replace(&[namespace(serde_json::json!({"metadata": {"name": "a"}}))]);
        let terminating = namespace(serde_json::json!({"metadata": {"name": "a"},
            "status": {"phase": "Terminating"}}));
        cache.apply("MODIFIED", &terminating);
        assert_eq!(cache.phase("a"), Some(Phase::Terminating));
        cache.apply(
            "ADDED",
            &namespace(serde_json::json!({"metadata": {"name": "b"}})),
        );
        assert_eq!(cache.phase("b"), Some(Phase::Active));
        cache.apply("DELETED", &terminating);
        assert_eq!(cache.phase("a"), None);
        cache.replace(&[]);
        assert_eq!(cache.phase("b"), None, "a list replaces the cache");
    }
}
