//! The key layout: `<prefix>/<group>/<resource>/<namespace>/<name>`, as kube-apiserver's
//! (`k8s.io/apiserver: pkg/registry/generic/registry/store.go` `NamespaceKeyFunc`).

use etcd_client::KeyValue;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::key::{ObjectKey, ResourceKey};
use crate::object::set_resource_version;

/// Builds the keys of one store prefix.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    /// The prefix without a trailing `/` (`/registry`).
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Self { prefix }
    }

    /// `<prefix>/<group>/<resource>/` (`<prefix>/<resource>/` for the core group).
    pub(super) fn resource(&self, resource: &ResourceKey) -> String {
        if resource.group.is_empty() {
            format!("{}/{}/", self.prefix, resource.resource)
        } else {
            format!("{}/{}/{}/", self.prefix, resource.group, resource.resource)
        }
    }

    /// The prefix of a list or watch: the resource's, narrowed to `namespace` when given.
    pub(super) fn collection(&self, resource: &ResourceKey, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if !ns.is_empty() => format!("{}{ns}/", self.resource(resource)),
            _ => self.resource(resource),
        }
    }

    /// The key of one object.
    pub(super) fn object(&self, key: &ObjectKey) -> String {
        if key.namespace.is_empty() {
            format!("{}{}", self.resource(&key.resource), key.name)
        } else {
            format!(
                "{}{}/{}",
                self.resource(&key.resource),
                key.namespace,
                key.name
            )
        }
    }

    /// The key the replicas' compactors coordinate on (kube-apiserver's `compact_rev_key`).
    pub(super) fn compaction_key(&self) -> String {
        format!("{}/compact_rev_key", self.prefix)
    }

    /// The key of the leader lock `name` (`<prefix>/leaderelection/<name>`): no object
    /// resource is called `leaderelection`, so it never shows in a list.
    pub(super) fn leader_key(&self, name: &str) -> String {
        format!("{}/leaderelection/{name}", self.prefix)
    }
}

/// The end of the range of every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub(super) fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Decodes a stored object and sets its `resourceVersion` to `revision` (the key's
/// modification revision, or the deletion revision for a DELETED event).
pub(super) fn decode(kv: &KeyValue, revision: i64) -> Result<Value> {
    let mut object: Value = serde_json::from_slice(kv.value()).map_err(|source| Error::Decode {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        source,
    })?;
    set_resource_version(&mut object, Some(revision as u64));
    Ok(object)
}

/// The JSON stored for `object`: the object without `resourceVersion`, which is the key's
/// revision instead.
pub(super) fn encode(object: &Value) -> String {
    let mut stored = object.clone();
    set_resource_version(&mut stored, None);
    serde_json::to_string(&stored).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kube_apiservers_layout() {
        let keys = Keys::new("/registry/");
        let repos = ResourceKey::new("source.toolkit.fluxcd.io", "ocirepositories");
        assert_eq!(
            keys.object(&repos.object("flux-system", "podinfo")),
            "/registry/source.toolkit.fluxcd.io/ocirepositories/flux-system/podinfo"
        );
        assert_eq!(
            keys.collection(&repos, Some("ns")),
            "/registry/source.toolkit.fluxcd.io/ocirepositories/ns/"
        );
        assert_eq!(
            Keys::new("t1").object(&ResourceKey::new("", "secrets").object("", "s")),
            "/t1/secrets/s"
        );
    }

    #[test]
    fn range_end_is_the_next_prefix() {
        assert_eq!(range_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(range_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(range_end(&[0xff]), vec![0]);
    }
}
