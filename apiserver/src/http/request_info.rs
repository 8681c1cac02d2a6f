//! Request attributes (verb, group, version, resource, subresource, namespace, name) parsed from
//! the path and method exactly as `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` does;
//! authorisation and the REST layer both read them.

use std::fmt;

use http::Method;

/// The Kubernetes verb of a request (`requestinfo.go`): for resource requests one of the API
/// verbs, chosen by method, name and `?watch`; for other paths the HTTP method.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Verb {
    /// `GET` of a named object (or of a non-resource path).
    #[default]
    Get,
    /// `GET` of a collection.
    List,
    /// `GET` of a collection with `?watch=true`.
    Watch,
    /// `POST` to a collection.
    Create,
    /// `PUT` of a named object.
    Update,
    /// `PATCH` of a named object.
    Patch,
    /// `DELETE` of a named object.
    Delete,
    /// `DELETE` of a collection.
    DeleteCollection,
    /// Any other method (`POST` or `PUT` on a non-resource path, `OPTIONS`...): RBAC names it by
    /// the lower-cased method.
    Method(Method),
}

impl Verb {
    /// The verb as RBAC and kube-apiserver's messages spell it: `get`, `deletecollection`,
    /// `post`...
    pub fn as_str(&self) -> &str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Method(method) => lower_case_method(method),
        }
    }

    /// `true` for the verbs that read or delete a collection rather than one named object:
    /// `list`, `watch`, `deletecollection`.
    pub fn is_collection(&self) -> bool {
        matches!(self, Verb::List | Verb::Watch | Verb::DeleteCollection)
    }

    /// `true` for `get`, `list` and `watch`: the verbs that read.
    pub fn is_read(&self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }

    /// The verb of a non-resource request: its method.
    fn of_method(method: &Method) -> Self {
        match *method {
            Method::GET => Verb::Get,
            Method::PATCH => Verb::Patch,
            Method::DELETE => Verb::Delete,
            _ => Verb::Method(method.clone()),
        }
    }
}

fn lower_case_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        Method::CONNECT => "connect",
        Method::TRACE => "trace",
        _ => "unknown",
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// `true` for `/apis/<group>/<version>/...` paths naming a resource.
    pub is_resource_request: bool,
    /// The request path.
    pub path: String,
    /// The Kubernetes verb.
    pub verb: Verb,
    /// API group (`source.toolkit.fluxcd.io`).
    pub api_group: String,
    /// API version (`v1`, `v1beta2`).
    pub api_version: String,
    /// Namespace, when the path has `/namespaces/<ns>/`.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// `status` or `artifact`.
    pub subresource: Option<String>,
    /// Object name: the path's, or, on `list` and `watch`, the one a `metadata.name` field
    /// selector asks for (as upstream, so that authorisation can allow a single object); a
    /// collection request stays a collection request whatever its name.
    pub name: Option<String>,
}

impl RequestInfo {
    /// Parses a path, method and query. A `fieldSelector` of `metadata.name=<x>` on list or watch
    /// sets `name` (as upstream does for authorisation).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Self {
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: Verb::of_method(method),
            ..Default::default()
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segments.len() < 4 || segments[0] != "apis" || segments.iter().any(|s| s.is_empty()) {
            return info;
        }
        info.is_resource_request = true;
        info.api_group = segments[1].to_string();
        info.api_version = segments[2].to_string();
        let mut rest = &segments[3..];
        if rest[0] == "namespaces" {
            if rest.len() < 3 {
                // `/namespaces` or `/namespaces/<ns>`: not one of our resources.
                info.resource = "namespaces".into();
                info.name = rest.get(1).map(|s| s.to_string());
                rest = &[];
            } else {
                info.namespace = Some(rest[1].to_string());
                rest = &rest[2..];
            }
        }
        if let Some(resource) = rest.first() {
            info.resource = resource.to_string();
        }
        if let Some(name) = rest.get(1) {
            info.name = Some(name.to_string());
        }
        if let Some(sub) = rest.get(2) {
            info.subresource = Some(sub.to_string());
        }
        let params = query_pairs(query);
        let watch = params
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
        info.verb = match *method {
            Method::POST => Verb::Create,
            Method::GET | Method::HEAD if info.name.is_some() => Verb::Get,
            Method::GET | Method::HEAD if watch => Verb::Watch,
            Method::GET | Method::HEAD => Verb::List,
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch,
            Method::DELETE if info.name.is_some() => Verb::Delete,
            Method::DELETE => Verb::DeleteCollection,
            _ => info.verb,
        };
        let selector = params
            .iter()
            .find(|(k, _)| k == "fieldSelector")
            .filter(|_| matches!(info.verb, Verb::List | Verb::Watch));
        if let Some((_, selector)) = selector {
            for term in selector.split(',') {
                let term = term.trim();
                let value = term
                    .strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="));
                if let Some(value) = value {
                    info.name = Some(value.to_string());
                }
            }
        }
        info
    }

    /// The resource as RBAC names it: `ocirepositories` or `ocirepositories/status`.
    pub fn resource_with_subresource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// Decodes `a=b&c=d` into pairs (percent-decoded, `+` as space).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::parse(&method, path, query)
    }

    #[test]
    fn verbs_follow_method_and_name() {
        let base = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";
        assert_eq!(parse(Method::GET, base, None).verb, Verb::List);
        assert_eq!(
            parse(Method::GET, base, Some("watch=true")).verb,
            Verb::Watch
        );
        assert_eq!(parse(Method::GET, base, Some("watch=1")).verb, Verb::Watch);
        assert_eq!(parse(Method::POST, base, None).verb, Verb::Create);
        assert_eq!(
            parse(Method::DELETE, base, None).verb,
            Verb::DeleteCollection
        );
        let named = format!("{base}/podinfo");
        assert_eq!(parse(Method::GET, &named, None).verb, Verb::Get);
        assert_eq!(parse(Method::PUT, &named, None).verb, Verb::Update);
        assert_eq!(parse(Method::PATCH, &named, None).verb, Verb::Patch);
        assert_eq!(parse(Method::DELETE, &named, None).verb, Verb::Delete);
    }

    #[test]
    fn parts_are_extracted() {
        let info = parse(
            Method::GET,
            "/apis/source.toolkit.fluxcd.io/v1beta2/namespaces/flux-system/ocirepositories/podinfo/artifact",
            None,
        );
        assert!(info.is_resource_request);
        assert_eq!(info.api_group, "source.toolkit.fluxcd.io");
        assert_eq!(info.api_version, "v1beta2");
        assert_eq!(info.namespace.as_deref(), Some("flux-system"));
        assert_eq!(info.resource, "ocirepositories");
        assert_eq!(info.name.as_deref(), Some("podinfo"));
        assert_eq!(info.subresource.as_deref(), Some("artifact"));
        assert_eq!(info.resource_with_subresource(), "ocirepositories/artifact");
    }

    #[test]
    fn cluster_wide_lists_have_no_namespace() {
        let info = parse(
            Method::GET,
            "/apis/source.toolkit.fluxcd.io/v1/ocirepositories",
            None,
        );
        assert_eq!(info.namespace, None);
        assert_eq!(info.verb, Verb::List);
    }

    #[test]
    fn a_name_field_selector_names_the_object() {
        let info = parse(
            Method::GET,
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/a/ocirepositories",
            Some("fieldSelector=metadata.name%3Dpodinfo&watch=true"),
        );
        assert_eq!(info.verb, Verb::Watch);
        assert_eq!(info.name.as_deref(), Some("podinfo"));
    }

    #[test]
    fn non_resource_paths_keep_the_method_as_verb() {
        for path in [
            "/apis",
            "/apis/source.toolkit.fluxcd.io",
            "/apis/source.toolkit.fluxcd.io/v1",
            "/version",
            "/openapi/v2",
        ] {
            let info = parse(Method::GET, path, None);
            assert!(!info.is_resource_request, "{path}");
            assert_eq!(info.verb, Verb::Get);
        }
    }
}
