//! Keys that name collections and objects, and the global revision.

use std::fmt;
use std::str::FromStr;

/// Which collection: API group plus plural resource, e.g.
/// `("source.toolkit.fluxcd.io", "ocirepositories")`.
///
/// `Display` gives Kubernetes' `GroupResource` form, `ocirepositories.source.toolkit.fluxcd.io`
/// (just the resource for the core group), as used in error messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// API group, e.g. `source.toolkit.fluxcd.io` (empty for the core group).
    pub group: String,
    /// Plural lowercase resource name, e.g. `ocirepositories`.
    pub resource: String,
}

impl ResourceKey {
    /// A key for `resource` in `group`.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// The key of the object `namespace/name` in this collection.
    pub fn object(&self, namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            resource: self.clone(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One object: collection, namespace (empty for cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The collection.
    pub resource: ResourceKey,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// A key for `namespace/name` in `resource`.
    pub fn new(
        resource: ResourceKey,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            resource,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `resource.group/namespace/name` (namespace omitted when empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.resource, self.name)
        } else {
            write!(f, "{}/{}/{}", self.resource, self.namespace, self.name)
        }
    }
}

/// The global store revision. Every write gets the next revision, strictly increasing over the
/// whole store (all collections), and an object's `metadata.resourceVersion` is the decimal
/// string of the revision of its last write, as etcd's revision is for Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A `resourceVersion` that is not a decimal `u64`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resource version {0:?}")]
pub struct ParseRevisionError(pub String);

impl FromStr for Revision {
    type Err = ParseRevisionError;

    /// Parses a decimal `resourceVersion` (no sign, no spaces).
    ///
    /// # Errors
    /// [`ParseRevisionError`] for anything but ASCII digits fitting in a `u64`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseRevisionError(s.to_owned()));
        }
        s.parse::<u64>()
            .map(Revision)
            .map_err(|_| ParseRevisionError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_key_displays_as_group_resource() {
        let r = ResourceKey::new("source.toolkit.fluxcd.io", "ocirepositories");
        assert_eq!(r.to_string(), "ocirepositories.source.toolkit.fluxcd.io");
        assert_eq!(ResourceKey::new("", "secrets").to_string(), "secrets");
    }

    #[test]
    fn revision_parses_only_decimal_digits() {
        assert_eq!("42".parse::<Revision>(), Ok(Revision(42)));
        for bad in ["-1", "", " 1", "99999999999999999999999"] {
            assert_eq!(
                bad.parse::<Revision>(),
                Err(ParseRevisionError(bad.to_owned()))
            );
        }
        assert_eq!(Revision(7).to_string(), "7");
    }
}
