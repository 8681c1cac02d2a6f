//! OCI references: `[oci://]host[:port]/path/name[:tag][@digest]`.
//!
//! Follows the grammar of `distribution/reference` (the Docker/OCI reference grammar): path
//! components are lowercase alphanumerics separated by `.`, `_`, `__` or runs of `-`; tags match
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Unlike Docker, the registry host is required unless the
//! name has no host-like first component, in which case `docker.io` (and `library/` for a single
//! component) is assumed, as go-containerregistry does.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use crate::digest::Digest;

/// Why a reference string was rejected; each variant names the bad part.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The input is empty (after removing `oci://`).
    #[error("reference is empty")]
    Empty,
    /// The registry host (first component) is malformed.
    #[error("reference {reference:?}: invalid registry host {host:?}")]
    InvalidHost {
        /// The whole input.
        reference: String,
        /// The rejected host part.
        host: String,
    },
    /// The repository path is missing or malformed (uppercase, bad separators...).
    #[error(
        "reference {reference:?}: invalid repository {repository:?} (lowercase path components separated by '/')"
    )]
    InvalidRepository {
        /// The whole input.
        reference: String,
        /// The rejected repository part.
        repository: String,
    },
    /// The tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("reference {reference:?}: invalid tag {tag:?}")]
    InvalidTag {
        /// The whole input.
        reference: String,
        /// The rejected tag.
        tag: String,
    },
    /// The part after `@` is not a valid digest.
    #[error("reference {reference:?}: invalid digest: {source}")]
    InvalidDigest {
        /// The whole input.
        reference: String,
        /// Why the digest was rejected.
        source: crate::digest::Error,
    },
}

static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
        .expect("host regex")
});
static PATH_COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").expect("path component regex")
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("tag regex"));

/// An OCI reference such as `oci://ghcr.io/org/app:v1.0@sha256:…`.
///
/// `registry` is the host with optional port (`localhost:5000`, `127.0.0.1:5000`); `repository`
/// is the path inside it (`org/app`); `tag` and `digest` are optional (both may be set: the
/// digest then wins for pulls). Parsed with [`FromStr`] (the `oci://` prefix is optional);
/// `Display` prints without `oci://`: `host/repo[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `ghcr.io` or `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `org/app`.
    pub repository: String,
    /// Optional tag, e.g. `v1.0.0`.
    pub tag: Option<String>,
    /// Optional digest; takes precedence over `tag` when fetching.
    pub digest: Option<Digest>,
}

impl Reference {
    /// A copy with `tag` set (the digest is cleared so the tag is what gets resolved).
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// A copy with `digest` set (the tag is kept for display).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// A copy without tag and digest.
    #[must_use]
    pub fn without_version(&self) -> Self {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// `"oci://host/repo"`: the repository URL as Flux's `spec.url` spells it.
    pub fn repository_url(&self) -> String {
        format!("oci://{}/{}", self.registry, self.repository)
    }

    /// What to put in `/v2/<name>/manifests/<here>`: the digest if set, else the tag, else `None`.
    pub fn version(&self) -> Option<String> {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Some(d.to_string()),
            (None, Some(t)) => Some(t.clone()),
            (None, None) => None,
        }
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.strip_prefix("oci://").unwrap_or(input);
        if s.is_empty() {
            return Err(Error::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse::<Digest>().map_err(|source| Error::InvalidDigest {
                    reference: input.to_owned(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|sl| colon > sl) => {
                (&rest[..colon], Some(rest[colon + 1..].to_owned()))
            }
            _ => (rest, None),
        };
        if let Some(tag) = &tag
            && !TAG.is_match(tag)
        {
            return Err(Error::InvalidTag {
                reference: input.to_owned(),
                tag: tag.clone(),
            });
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                (first.to_owned(), path.to_owned())
            }
            Some(_) => ("docker.io".to_owned(), name.to_owned()),
            None => ("docker.io".to_owned(), format!("library/{name}")),
        };
        if !HOST.is_match(&registry) {
            return Err(Error::InvalidHost {
                reference: input.to_owned(),
                host: registry,
            });
        }
        if repository.is_empty() || !repository.split('/').all(|c| PATH_COMPONENT.is_match(c)) {
            return Err(Error::InvalidRepository {
                reference: input.to_owned(),
                repository,
            });
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_host_port_path_tag_and_digest() {
        let r: Reference = format!("oci://127.0.0.1:5000/org/app:v1.0@{D}")
            .parse()
            .unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "org/app");
        assert_eq!(r.tag.as_deref(), Some("v1.0"));
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/org/app:v1.0@{D}"));
        assert_eq!(r.repository_url(), "oci://127.0.0.1:5000/org/app");
        assert_eq!(r.version().unwrap(), D);
    }

    #[test]
    fn port_is_not_mistaken_for_a_tag() {
        let r: Reference = "localhost:5000/app".parse().unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.version(), None);
    }

    #[test]
    fn docker_hub_short_names_get_defaults() {
        let r: Reference = "nginx:1".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        let r: Reference = "org/app".parse().unwrap();
        assert_eq!(r.repository, "org/app");
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert!(matches!(
            "ghcr.io/Org/app".parse::<Reference>(),
            Err(Error::InvalidRepository { .. })
        ));
        assert!(matches!(
            "ghcr.io/org/app:-bad".parse::<Reference>(),
            Err(Error::InvalidTag { .. })
        ));
        assert!(matches!(
            "ghcr.io/org/app@sha256:zz".parse::<Reference>(),
            Err(Error::InvalidDigest { .. })
        ));
        assert!(matches!("oci://".parse::<Reference>(), Err(Error::Empty)));
        assert!(matches!(
            "bad_host.io/app".parse::<Reference>(),
            Err(Error::InvalidHost { .. })
        ));
        let e = "ghcr.io/org/app:-bad"
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid tag \"-bad\""), "{e}");
    }

    #[test]
    fn with_tag_clears_digest() {
        let r: Reference = format!("ghcr.io/a/b@{D}").parse().unwrap();
        let t = r.with_tag("v2");
        assert_eq!(t.to_string(), "ghcr.io/a/b:v2");
        assert_eq!(
            t.with_digest(D.parse().unwrap()).to_string(),
            format!("ghcr.io/a/b:v2@{D}")
        );
    }
}
