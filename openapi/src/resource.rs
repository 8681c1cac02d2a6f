//! Static facts about the three served resources (kinds, names, scope, subresources).

/// Static facts about one served resource, as Flux's CRD `spec.names` declares them.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// The kind, e.g. `"OCIRepository"`.
    pub kind: &'static str,
    /// The list kind, e.g. `"OCIRepositoryList"`.
    pub list_kind: &'static str,
    /// The plural resource name used in URLs, e.g. `"ocirepositories"`.
    pub plural: &'static str,
    /// The singular name, e.g. `"ocirepository"`.
    pub singular: &'static str,
    /// Short names kubectl resolves, e.g. `["ocirepo"]`.
    pub short_names: &'static [&'static str],
    /// Categories (`kubectl get all`, `kubectl get fluxcd`): `["all", "fluxcd", "fluxcd-sources"]`
    /// for every kind, as in source-controller v1.9.1's CRDs.
    pub categories: &'static [&'static str],
    /// Whether objects live in a namespace (true for all three kinds).
    pub namespaced: bool,
    /// Whether the resource has the `artifact` download subresource (OCIRepository, HelmChart).
    pub has_artifact: bool,
}

/// The categories of every kind (Flux CRDs `+kubebuilder:resource:categories`).
const CATEGORIES: &[&str] = &["all", "fluxcd", "fluxcd-sources"];

static RESOURCES: [ResourceInfo; 3] = [
    // `OCIRepository` (`ocirepositories`, short name `ocirepo`).
    ResourceInfo {
        kind: "OCIRepository",
        list_kind: "OCIRepositoryList",
        plural: "ocirepositories",
        singular: "ocirepository",
        short_names: &["ocirepo"],
        categories: CATEGORIES,
        namespaced: true,
        has_artifact: true,
    },
    // `HelmRepository` (`helmrepositories`, short name `helmrepo`).
    ResourceInfo {
        kind: "HelmRepository",
        list_kind: "HelmRepositoryList",
        plural: "helmrepositories",
        singular: "helmrepository",
        short_names: &["helmrepo"],
        categories: CATEGORIES,
        namespaced: true,
        has_artifact: false,
    },
    // `HelmChart` (`helmcharts`, short name `hc`).
    ResourceInfo {
        kind: "HelmChart",
        list_kind: "HelmChartList",
        plural: "helmcharts",
        singular: "helmchart",
        short_names: &["hc"],
        categories: CATEGORIES,
        namespaced: true,
        has_artifact: true,
    },
];

/// The `OCIRepository` resource.
pub fn oci_repository() -> &'static ResourceInfo {
    &RESOURCES[0]
}

/// The `HelmRepository` resource.
pub fn helm_repository() -> &'static ResourceInfo {
    &RESOURCES[1]
}

/// The `HelmChart` resource.
pub fn helm_chart() -> &'static ResourceInfo {
    &RESOURCES[2]
}

/// Which of the three kinds a [`ResourceInfo`] describes, for exhaustive matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `OCIRepository`.
    OCIRepository,
    /// `HelmRepository`.
    HelmRepository,
    /// `HelmChart`.
    HelmChart,
}

impl ResourceInfo {
    /// Which kind this is.
    pub fn kind_enum(&self) -> Kind {
        match self.kind {
            "OCIRepository" => Kind::OCIRepository,
            "HelmRepository" => Kind::HelmRepository,
            _ => Kind::HelmChart,
        }
    }
}

/// All served resources in a stable order: OCIRepository, HelmRepository, HelmChart.
pub fn resources() -> &'static [ResourceInfo] {
    &RESOURCES
}

/// The resource whose plural name is `plural` (`"ocirepositories"`), if any.
pub fn resource_by_plural(plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

/// The resource whose kind is `kind` (`"OCIRepository"`), if any. Case-sensitive.
pub fn resource_by_kind(kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The resource named by plural, singular, short name or kind, compared case-insensitively as
/// kubectl's RESTMapper does (`"ocirepo"`, `"OCIRepository"`, `"hc"`).
pub fn resource_by_any_name(name: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| {
        r.plural.eq_ignore_ascii_case(name)
            || r.singular.eq_ignore_ascii_case(name)
            || r.kind.eq_ignore_ascii_case(name)
            || r.short_names.iter().any(|s| s.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_each_resource() {
        for r in resources() {
            assert_eq!(resource_by_plural(r.plural), Some(r));
            assert_eq!(resource_by_kind(r.kind), Some(r));
            assert_eq!(resource_by_any_name(r.short_names[0]), Some(r));
            assert_eq!(resource_by_any_name(&r.kind.to_lowercase()), Some(r));
        }
        assert!(resource_by_plural("gitrepositories").is_none());
        assert_eq!(resource_by_any_name("HC").unwrap().kind, "HelmChart");
    }
}
