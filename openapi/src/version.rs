//! The API group and its served versions.

use std::fmt;
use std::str::FromStr;

/// The API group every kind of this crate belongs to (Flux's `source.toolkit.fluxcd.io`).
pub const GROUP: &str = "source.toolkit.fluxcd.io";

/// A served version of [`GROUP`].
///
/// `v1` is the storage and preferred version; `v1beta2` is served for existing manifests and is
/// deprecated (Flux source-controller v1.6–v1.7 served it with `deprecated: true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// `v1`: the storage version.
    V1,
    /// `v1beta2`: deprecated, converted to and from `v1`.
    V1beta2,
}

impl Version {
    /// The version objects are stored in (`v1`).
    pub const STORAGE: Version = Version::V1;
    /// Every served version, preferred first (the order of discovery documents).
    pub const ALL: [Version; 2] = [Version::V1, Version::V1beta2];

    /// The version string, `"v1"` or `"v1beta2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V1beta2 => "v1beta2",
        }
    }

    /// Whether responses in this version carry a deprecation warning (true for `v1beta2`).
    pub fn is_deprecated(self) -> bool {
        matches!(self, Version::V1beta2)
    }

    /// The `apiVersion` field value, e.g. `"source.toolkit.fluxcd.io/v1"`.
    pub fn api_version(self) -> &'static str {
        match self {
            Version::V1 => "source.toolkit.fluxcd.io/v1",
            Version::V1beta2 => "source.toolkit.fluxcd.io/v1beta2",
        }
    }

    /// The version named by an `apiVersion` value of this group (`"source.toolkit.fluxcd.io/v1"`),
    /// or `None` for another group or an unknown version.
    pub fn from_api_version(api_version: &str) -> Option<Version> {
        Version::ALL
            .into_iter()
            .find(|v| v.api_version() == api_version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Version::from_str`]: the string is not a served version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown version {0:?} of {GROUP}: served versions are v1 and v1beta2")]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;

    /// Parses `"v1"` or `"v1beta2"` (exact, case-sensitive, as in URL paths).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" => Ok(Version::V1),
            "v1beta2" => Ok(Version::V1beta2),
            other => Err(UnknownVersion(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_print() {
        for v in Version::ALL {
            assert_eq!(v.as_str().parse::<Version>().unwrap(), v);
            assert_eq!(Version::from_api_version(v.api_version()), Some(v));
        }
        assert!("v2".parse::<Version>().is_err());
        assert!(Version::V1beta2.is_deprecated());
        assert!(!Version::STORAGE.is_deprecated());
    }
}
