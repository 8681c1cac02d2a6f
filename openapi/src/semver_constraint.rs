//! Masterminds/semver v3 compatible version constraints, as Flux uses them for
//! `OCIRepository.spec.ref.semver` and `HelmChart.spec.version`.
//!
//! Syntax: OR groups separated by `||`; inside a group, constraints separated by spaces or
//! commas are ANDed; operators `=`, `!=`, `>`, `<`, `>=`, `=>`, `<=`, `=<`, `~`, `~>`, `^` (none
//! means `=`); versions may have a `v` prefix, omit minor/patch, and use `x`, `X` or `*`
//! wildcards; `1.2 - 1.4.5` is a hyphen range; `*` or an empty string matches everything.
//!
//! Prereleases (Masterminds' rule): a version with a prerelease matches an AND group only if
//! some constraint of that group has a prerelease itself (write `>=1.0.0-0` to include them).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";
const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";

static CONSTRAINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^\s*({OPS})\s*({CV})\s*$")).expect("regex"));
static RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\s*({CV})\s+-\s+({CV})\s*")).expect("regex"));
static FIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CV})")).expect("regex"));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
    .expect("regex")
});
static LOOSE_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$",
    )
    .expect("regex")
});

/// Why a constraint did not parse (Masterminds' `improper constraint: <segment>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("improper constraint: {0}")]
pub struct ConstraintError(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Constraint {
    op: Op,
    con: semver::Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A parsed Masterminds-compatible constraint (`^1.2`, `>=1.0.0 <2.0.0`, `1.x || 3.*`).
///
/// ```
/// use openapi::SemverConstraint;
/// let c: SemverConstraint = ">= 1.0, < 2".parse().unwrap();
/// assert!(c.matches(&semver::Version::new(1, 5, 0)));
/// assert!(!c.matches(&"1.5.0-rc.1".parse().unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemverConstraint {
    source: String,
    groups: Vec<(Vec<Constraint>, bool)>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_one(text: &str) -> Result<Constraint, ConstraintError> {
    let caps = CONSTRAINT
        .captures(text)
        .ok_or_else(|| ConstraintError(text.to_owned()))?;
    let op = match &caps[1] {
        "" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" | "=>" => Op::Ge,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        _ => Op::Caret,
    };
    let major = caps.get(3).map_or("", |m| m.as_str());
    let minor = caps
        .get(4)
        .map_or("", |m| m.as_str().trim_start_matches('.'));
    let patch = caps
        .get(5)
        .map_or("", |m| m.as_str().trim_start_matches('.'));
    let pre = caps.get(6).map_or("", |m| m.as_str());
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let text_version = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor) || minor.is_empty() {
        dirty = true;
        minor_dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(patch) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}.{minor}.0{pre}")
    } else {
        format!("{major}.{minor}.{patch}{pre}")
    };
    let con = parse_loose_version(&text_version).ok_or_else(|| ConstraintError(text.to_owned()))?;
    Ok(Constraint {
        op,
        con,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

/// Parses a version the way Masterminds' `NewVersion` does: optional `v` prefix, minor and
/// patch may be omitted (`1.2` is `1.2.0`), leading zeros tolerated; build metadata kept.
pub fn parse_loose_version(text: &str) -> Option<semver::Version> {
    let caps = LOOSE_VERSION.captures(text)?;
    let num = |i: usize| -> Option<u64> {
        caps.get(i)
            .map_or(Some(0), |m| m.as_str().trim_start_matches('.').parse().ok())
    };
    let mut v = semver::Version::new(num(1)?, num(2)?, num(3)?);
    if let Some(pre) = caps.get(5) {
        v.pre = semver::Prerelease::new(pre.as_str()).ok()?;
    }
    if let Some(build) = caps.get(8) {
        v.build = semver::BuildMetadata::new(build.as_str()).ok()?;
    }
    Some(v)
}

/// Parses a tag as Flux's `version.ParseVersion` does: exactly three dot-separated core parts
/// (`1.2` is rejected), then [`parse_loose_version`] (so `v1.2.3` is accepted).
pub fn parse_flux_version(text: &str) -> Option<semver::Version> {
    let core = text.split(['-', '+']).next().unwrap_or("");
    if core.split('.').count() != 3 {
        return None;
    }
    parse_loose_version(text)
}

/// Semver precedence ignoring build metadata (Masterminds' `Compare`).
fn compare(a: &semver::Version, b: &semver::Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

impl Constraint {
    fn check(&self, v: &semver::Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::Eq => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    compare(v, c) == Ordering::Equal
                }
            }
            Op::Ne => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return v.pre != c.pre;
                        }
                        return false;
                    }
                }
                compare(v, c) != Ordering::Equal
            }
            Op::Gt => {
                if !self.dirty {
                    return compare(v, c) == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    compare(v, c) == Ordering::Greater
                }
            }
            Op::Lt => compare(v, c) == Ordering::Less,
            Op::Ge => compare(v, c) != Ordering::Less,
            Op::Le => {
                if !self.dirty {
                    return compare(v, c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if compare(v, c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    fn tilde(&self, v: &semver::Version) -> bool {
        let c = &self.con;
        if compare(v, c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

impl FromStr for SemverConstraint {
    type Err = ConstraintError;

    /// Parses a constraint string.
    ///
    /// # Errors
    /// [`ConstraintError`] naming the OR segment that is not a valid constraint list.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rewritten = RANGE.replace_all(text, " >= ${1} <= ${11} ").into_owned();
        let mut groups = Vec::new();
        for segment in rewritten.split("||") {
            if !VALID.is_match(segment) {
                return Err(ConstraintError(segment.to_owned()));
            }
            let found: Vec<&str> = FIND.find_iter(segment).map(|m| m.as_str()).collect();
            let parts = if found.is_empty() {
                vec![segment]
            } else {
                found
            };
            let constraints = parts
                .into_iter()
                .map(parse_one)
                .collect::<Result<Vec<_>, _>>()?;
            let has_pre = constraints.iter().any(|c| !c.con.pre.is_empty());
            groups.push((constraints, has_pre));
        }
        Ok(SemverConstraint {
            source: text.to_owned(),
            groups,
        })
    }
}

impl SemverConstraint {
    /// Whether `version` satisfies the constraint (any OR group whose every constraint holds).
    pub fn matches(&self, version: &semver::Version) -> bool {
        self.groups
            .iter()
            .any(|(group, has_pre)| group.iter().all(|c| c.check(version, *has_pre)))
    }

    /// The text the constraint was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Picks the highest tag satisfying `constraint`, as Flux's OCIRepository reconciler does
/// (`getTagBySemver`): tags not matching `filter` (a `spec.ref.semverFilter` regex) are
/// dropped; each tag must parse with [`parse_flux_version`] (three parts, `v` prefix allowed);
/// with `helm_encoding` (layer media type is a Helm chart) `_` in a tag stands for `+`; the
/// highest version wins (build metadata breaks ties by string order, as in
/// Masterminds' sort) and the original tag string is returned.
pub fn latest_matching<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    constraint: &SemverConstraint,
    filter: Option<&Regex>,
    helm_encoding: bool,
) -> Option<&'a str> {
    let mut best: Option<(semver::Version, &'a str)> = None;
    for tag in tags {
        if filter.is_some_and(|f| !f.is_match(tag)) {
            continue;
        }
        let text = if helm_encoding {
            tag.replace('_', "+")
        } else {
            tag.to_owned()
        };
        let Some(version) = parse_flux_version(&text) else {
            continue;
        };
        if !constraint.matches(&version) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, _)) => compare(&version, b)
                .then_with(|| version.build.as_str().cmp(b.build.as_str()))
                .is_gt(),
        };
        if better {
            best = Some((version, tag));
        }
    }
    best.map(|(_, tag)| tag)
}

impl fmt::Display for SemverConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
