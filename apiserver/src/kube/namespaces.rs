//! The cluster's namespaces, from a list+watch of `/api/v1/namespaces` ([`Reflector`], as
//! kube-apiserver's NamespaceLifecycle admission reads them through client-go's namespace
//! informer), and each one's lifecycle [`Phase`].

use k8s_openapi::api::core::v1::Namespace;

use crate::kube::reflector::Reflector;

/// The namespaces cache (cluster-scoped: the namespace part of its keys is empty).
pub type NamespaceCache = Reflector<Namespace>;

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

    /// The phase of namespace `name` in `cache`, or `None` when the cache has not seen it.
    pub fn cached(cache: &NamespaceCache, name: &str) -> Option<Self> {
        cache.get("", name).map(|namespace| Self::of(&namespace))
    }
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
}
