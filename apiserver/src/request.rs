//! Request attributes (verb, group, version, resource, subresource, namespace, name) parsed from
//! the path and method exactly as `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` does;
//! authorisation and the REST layer both read them.

use http::Method;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// `true` for `/apis/<group>/<version>/...` paths naming a resource.
    pub is_resource_request: bool,
    /// The request path.
    pub path: String,
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for other paths the lower-cased HTTP method.
    pub verb: String,
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
    /// Object name, when the path names one.
    pub name: Option<String>,
}

impl RequestInfo {
    /// Parses a path, method and query. A `fieldSelector` of `metadata.name=<x>` on list or watch
    /// sets `name` (as upstream does for authorisation).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Self {
        let verb_of_method = method.as_str().to_ascii_lowercase();
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: verb_of_method,
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
            Method::POST => "create".into(),
            Method::GET | Method::HEAD if info.name.is_some() => "get".into(),
            Method::GET | Method::HEAD if watch => "watch".into(),
            Method::GET | Method::HEAD => "list".into(),
            Method::PUT => "update".into(),
            Method::PATCH => "patch".into(),
            Method::DELETE if info.name.is_some() => "delete".into(),
            Method::DELETE => "deletecollection".into(),
            _ => info.verb,
        };
        let selector = params
            .iter()
            .find(|(k, _)| k == "fieldSelector")
            .filter(|_| matches!(info.verb.as_str(), "list" | "watch"));
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
        assert_eq!(parse(Method::GET, base, None).verb, "list");
        assert_eq!(parse(Method::GET, base, Some("watch=true")).verb, "watch");
        assert_eq!(parse(Method::GET, base, Some("watch=1")).verb, "watch");
        assert_eq!(parse(Method::POST, base, None).verb, "create");
        assert_eq!(parse(Method::DELETE, base, None).verb, "deletecollection");
        let named = format!("{base}/podinfo");
        assert_eq!(parse(Method::GET, &named, None).verb, "get");
        assert_eq!(parse(Method::PUT, &named, None).verb, "update");
        assert_eq!(parse(Method::PATCH, &named, None).verb, "patch");
        assert_eq!(parse(Method::DELETE, &named, None).verb, "delete");
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
        assert_eq!(info.verb, "list");
    }

    #[test]
    fn a_name_field_selector_names_the_object() {
        let info = parse(
            Method::GET,
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/a/ocirepositories",
            Some("fieldSelector=metadata.name%3Dpodinfo&watch=true"),
        );
        assert_eq!(info.verb, "watch");
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
            assert_eq!(info.verb, "get");
        }
    }
}
