//! Discovery documents, as kube-apiserver serves them (legacy `APIGroup`/`APIGroupList`/
//! `APIResourceList`, and aggregated `apidiscovery.k8s.io` `APIGroupDiscoveryList`).

use serde_json::{Value, json};

use crate::resource::{ResourceInfo, resources};
use crate::version::{GROUP, Version};

/// Verbs of every main resource, sorted as kube-apiserver lists them.
pub const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of the `status` subresource.
pub const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
/// Verbs of the `artifact` subresource (download only).
pub const ARTIFACT_VERBS: &[&str] = &["get"];

fn group_version(version: Version) -> Value {
    json!({"groupVersion": version.api_version(), "version": version.as_str()})
}

fn group_body() -> Value {
    json!({
        "name": GROUP,
        "versions": Version::ALL.iter().map(|v| group_version(*v)).collect::<Vec<_>>(),
        "preferredVersion": group_version(Version::STORAGE),
    })
}

/// `GET /apis/source.toolkit.fluxcd.io`: kind `APIGroup` (apiVersion `v1`), versions v1 then
/// v1beta2, preferred version v1.
pub fn api_group() -> Value {
    let mut v = json!({"kind": "APIGroup", "apiVersion": "v1"});
    merge(&mut v, group_body());
    v
}

/// `GET /apis` (legacy): kind `APIGroupList` with this server's one group.
pub fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_body()]})
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        t.extend(e);
    }
}

fn subresources(r: &ResourceInfo) -> Vec<(&'static str, &'static [&'static str])> {
    let mut subs = vec![("status", STATUS_VERBS)];
    if r.has_artifact {
        subs.push(("artifact", ARTIFACT_VERBS));
    }
    subs
}

/// `GET /apis/source.toolkit.fluxcd.io/<version>`: kind `APIResourceList` with, per resource,
/// the main entry (verbs, shortNames, categories, singularName) followed by `<plural>/status`
/// and, for OCIRepository and HelmChart, `<plural>/artifact` (verbs `["get"]`).
pub fn api_resource_list(version: Version) -> Value {
    let mut list = Vec::new();
    for r in resources() {
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": RESOURCE_VERBS,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for (sub, verbs) in subresources(r) {
            list.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": version.api_version(),
        "resources": list,
    })
}

/// Aggregated discovery (`GET /apis` with `Accept: application/json;g=apidiscovery.k8s.io;
/// v=v2;as=APIGroupDiscoveryList`): an `APIGroupDiscoveryList` of `api_version`
/// (`"apidiscovery.k8s.io/v2"` or `"apidiscovery.k8s.io/v2beta1"`, same shape) with this
/// group, versions in preference order, every resource with `responseKind`, `scope`,
/// `singularResource`, verbs, short names, categories and subresources, freshness `Current`.
pub fn api_group_discovery_list(api_version: &str) -> Value {
    let versions: Vec<Value> = Version::ALL
        .iter()
        .map(|&version| {
            let resources: Vec<Value> = resources()
                .iter()
                .map(|r| {
                    let kind = json!({"group": GROUP, "version": version.as_str(), "kind": r.kind});
                    let subs: Vec<Value> = subresources(r)
                        .into_iter()
                        .map(|(sub, verbs)| {
                            json!({"subresource": sub, "responseKind": kind, "verbs": verbs})
                        })
                        .collect();
                    json!({
                        "resource": r.plural,
                        "responseKind": kind,
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": RESOURCE_VERBS,
                        "shortNames": r.short_names,
                        "categories": r.categories,
                        "subresources": subs,
                    })
                })
                .collect();
            json!({"version": version.as_str(), "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": [{
            "metadata": {"name": GROUP, "creationTimestamp": null},
            "versions": versions,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_has_subresources() {
        let list = api_resource_list(Version::V1);
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "ocirepositories",
                "ocirepositories/status",
                "ocirepositories/artifact",
                "helmrepositories",
                "helmrepositories/status",
                "helmcharts",
                "helmcharts/status",
                "helmcharts/artifact"
            ]
        );
        assert_eq!(api_group()["preferredVersion"]["version"], "v1");
        let agg = api_group_discovery_list("apidiscovery.k8s.io/v2");
        assert_eq!(agg["items"][0]["versions"][1]["version"], "v1beta2");
    }
}
