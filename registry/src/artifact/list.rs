//! `list`: tags of a repository with their digest, source and revision, filtered like
//! `flux list artifacts` (`--filter-semver`, `--filter-regex`).

use futures::{StreamExt, TryStreamExt};

use super::{ANNOTATION_REVISION, ANNOTATION_SOURCE, Error};
use crate::client::Client;
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::reference::Reference;

/// Manifests fetched concurrently while listing.
const LIST_CONCURRENCY: usize = 8;
/// Tags asked for per page (`?n=`); further pages follow the `Link` header.
pub const LIST_PAGE_SIZE: u32 = 100;

/// One row of `list artifacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    /// The tag.
    pub tag: String,
    /// `host/repo:tag`.
    pub reference: Reference,
    /// The manifest digest the tag points at.
    pub digest: Digest,
    /// `org.opencontainers.image.source` (empty when unset).
    pub source: String,
    /// `org.opencontainers.image.revision` (empty when unset).
    pub revision: String,
}

/// Whether a tag names a cosign signature, attestation or SBOM (`.sig`, `.att`, `.sbom`), which
/// Flux hides from listings.
pub fn is_cosign_tag(tag: &str) -> bool {
    tag.ends_with(".sig") || tag.ends_with(".att") || tag.ends_with(".sbom")
}

/// Lists `repository`'s tags (all pages of [`LIST_PAGE_SIZE`]) sorted descending as byte strings, without cosign
/// tags, keeps those `filter` accepts, then fetches each one's manifest (a few concurrently,
/// order kept) for its digest, source and revision.
///
/// # Errors
/// [`Error::ListTags`] when tags cannot be listed, [`Error::GetManifest`] naming the tag whose
/// manifest failed.
pub async fn list(
    client: &Client,
    repository: &Reference,
    filter: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<TagRow>, Error> {
    let repository = repository.without_version();
    let mut tags = client
        .list_tags_paged(&repository, Some(LIST_PAGE_SIZE))
        .await
        .map_err(|source| Error::ListTags {
            reference: repository.to_string(),
            source: Box::new(source),
        })?;
    tags.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    tags.retain(|t| !is_cosign_tag(t) && filter(t));
    futures::stream::iter(tags)
        .map(|tag| {
            let reference = repository.with_tag(&tag);
            async move {
                let (manifest, descriptor, _) =
                    client
                        .get_manifest(&reference)
                        .await
                        .map_err(|source| Error::GetManifest {
                            reference: reference.to_string(),
                            source: Box::new(source),
                        })?;
                let annotations = match &manifest {
                    Manifest::Image(m) => m.annotations.clone(),
                    Manifest::Index(i) => i.annotations.clone(),
                }
                .unwrap_or_default();
                Ok(TagRow {
                    tag,
                    reference,
                    digest: descriptor.digest,
                    source: annotations
                        .get(ANNOTATION_SOURCE)
                        .cloned()
                        .unwrap_or_default(),
                    revision: annotations
                        .get(ANNOTATION_REVISION)
                        .cloned()
                        .unwrap_or_default(),
                })
            }
        })
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await
}

/// Parses a tag as Flux's `version.ParseVersion` does: an optional `v`, then exactly three
/// dot-separated numbers, then optional pre-release/build. `None` for anything else.
pub fn parse_flux_version(tag: &str) -> Option<semver::Version> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    let core_end = s.find(['-', '+']).unwrap_or(s.len());
    if s[..core_end].split('.').count() != 3 {
        return None;
    }
    semver::Version::parse(s).ok()
}

/// A Masterminds-style semver constraint (the syntax of Flux's `--filter-semver` and
/// `spec.ref.semver`), evaluated with the `semver` crate: `||` alternatives, comparators
/// separated by spaces or commas, `=`, `!=`, `>`, `>=`, `<`, `<=`, `~`, `^`, wildcards
/// (`1.x`, `1.2.*`, `*`), hyphen ranges (`1.2 - 1.4.5`), `v` prefixes. A bare version means
/// exactly that version (`1.2` means `1.2.x`). Pre-releases match only when a comparator of the
/// same `major.minor.patch` names a pre-release (as both libraries do).
#[derive(Debug, Clone)]
pub struct SemverFilter {
    /// Alternatives: the version matches when any one matches (each a set of requirements plus
    /// excluded versions).
    alternatives: Vec<(semver::VersionReq, Vec<semver::VersionReq>)>,
}

impl SemverFilter {
    /// Parses a constraint.
    ///
    /// # Errors
    /// [`Error::SemverConstraint`] with the constraint and the reason.
    pub fn parse(constraint: &str) -> Result<Self, Error> {
        let fail = |message: String| Error::SemverConstraint {
            constraint: constraint.to_owned(),
            message,
        };
        if constraint.trim().is_empty() {
            return Err(fail("empty constraint".into()));
        }
        let mut alternatives = Vec::new();
        for group in constraint.split("||") {
            let tokens = tokenize(group);
            if tokens.is_empty() {
                return Err(fail("empty alternative".into()));
            }
            let mut comparators = Vec::new();
            let mut excluded = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                if i + 2 < tokens.len() && tokens[i + 1] == "-" {
                    comparators.push(format!(">={}", strip_v(&tokens[i])));
                    comparators.push(format!("<={}", strip_v(&tokens[i + 2])));
                    i += 3;
                    continue;
                }
                let token = &tokens[i];
                if let Some(v) = token.strip_prefix("!=") {
                    excluded.push(
                        semver::VersionReq::parse(&format!("={}", strip_v(v)))
                            .map_err(|e| fail(e.to_string()))?,
                    );
                } else {
                    comparators.push(to_semver_comparator(token));
                }
                i += 1;
            }
            let req = if comparators.is_empty() {
                semver::VersionReq::STAR
            } else {
                semver::VersionReq::parse(&comparators.join(", "))
                    .map_err(|e| fail(e.to_string()))?
            };
            alternatives.push((req, excluded));
        }
        Ok(SemverFilter { alternatives })
    }

    /// Whether `version` satisfies the constraint.
    pub fn matches_version(&self, version: &semver::Version) -> bool {
        self.alternatives.iter().any(|(req, excluded)| {
            req.matches(version) && !excluded.iter().any(|e| e.matches(version))
        })
    }

    /// Whether the tag parses as a Flux version ([`parse_flux_version`]) and satisfies the
    /// constraint; other tags never match.
    pub fn matches_tag(&self, tag: &str) -> bool {
        parse_flux_version(tag).is_some_and(|v| self.matches_version(&v))
    }
}

/// Splits a group into comparator tokens, joining an operator with the version after it
/// (`>= 1.0` → `>=1.0`).
fn tokenize(group: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for raw in group.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        match tokens.last_mut() {
            Some(last) if is_operator(last) => last.push_str(raw),
            _ => tokens.push(raw.to_owned()),
        }
    }
    tokens
}

fn is_operator(s: &str) -> bool {
    matches!(
        s,
        "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "^" | "~>" | "=>" | "=<"
    )
}

fn strip_v(s: &str) -> &str {
    s.strip_prefix('v').unwrap_or(s)
}

/// One Masterminds comparator as a `semver` crate comparator.
fn to_semver_comparator(token: &str) -> String {
    let (op, version) = match token.find(|c: char| c.is_ascii_alphanumeric() || c == '*') {
        Some(i) => token.split_at(i),
        None => ("", token),
    };
    let version = strip_v(version);
    let op = match op {
        "" => "=",
        "=>" => ">=",
        "=<" => "<=",
        "~>" => "~",
        other => other,
    };
    if matches!(version, "*" | "x" | "X") {
        return "*".to_owned();
    }
    format!("{op}{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(constraint: &str, tags: &[&str]) -> Vec<String> {
        let f = SemverFilter::parse(constraint).unwrap();
        tags.iter()
            .filter(|t| f.matches_tag(t))
            .map(|t| (*t).to_owned())
            .collect()
    }

    const TAGS: &[&str] = &[
        "v1.0.0",
        "1.2.3",
        "v1.2.10",
        "1.3.0-rc.1",
        "2.0.0",
        "latest",
        "1.2",
        "v0.9.1",
    ];

    #[test]
    fn flux_versions_need_three_parts() {
        assert!(parse_flux_version("v1.2.3").is_some());
        assert!(parse_flux_version("1.2.3-rc.1+build").is_some());
        assert!(parse_flux_version("1.2").is_none());
        assert!(parse_flux_version("latest").is_none());
    }

    #[test]
    fn masterminds_constraints_select_the_right_tags() {
        assert_eq!(pick(">=1.0.0 <2.0.0", TAGS), ["v1.0.0", "1.2.3", "v1.2.10"]);
        assert_eq!(
            pick(">= 1.0.0, < 2.0.0", TAGS),
            ["v1.0.0", "1.2.3", "v1.2.10"]
        );
        assert_eq!(pick("~1.2", TAGS), ["1.2.3", "v1.2.10"]);
        assert_eq!(pick("^1", TAGS), ["v1.0.0", "1.2.3", "v1.2.10"]);
        assert_eq!(pick("1.2.x", TAGS), ["1.2.3", "v1.2.10"]);
        assert_eq!(pick("1.2.3", TAGS), ["1.2.3"]);
        assert_eq!(pick("v2.0.0 || <1.0.0", TAGS), ["2.0.0", "v0.9.1"]);
        assert_eq!(
            pick("*", TAGS),
            ["v1.0.0", "1.2.3", "v1.2.10", "2.0.0", "v0.9.1"]
        );
        assert_eq!(pick("1.0.0 - 1.2.3", TAGS), ["v1.0.0", "1.2.3"]);
        assert_eq!(pick(">=1.3.0-0 <1.4.0", TAGS), ["1.3.0-rc.1"]);
        assert_eq!(pick("^1, != 1.2.3", TAGS), ["v1.0.0", "v1.2.10"]);
    }

    #[test]
    fn bad_constraints_are_rejected() {
        let err = SemverFilter::parse(">=abc").unwrap_err();
        assert!(
            err.to_string().starts_with("semver '>=abc' parse error"),
            "{err}"
        );
        assert!(SemverFilter::parse("").is_err());
    }

    #[test]
    fn cosign_tags_are_recognised() {
        assert!(is_cosign_tag("sha256-abc.sig"));
        assert!(is_cosign_tag("sha256-abc.att"));
        assert!(!is_cosign_tag("v1.0.0"));
    }
}
