//! Flux's ignore rules (`fluxcd/pkg/sourceignore`): the default exclusion lists, `.sourceignore`
//! files and `spec.ignore` / `--ignore-paths` patterns, as one reusable [`Matcher`].
//!
//! Patterns use `.gitignore` syntax and are matched with the `ignore` crate's gitignore matcher.
//! Semantics follow Flux (a copy of go-git's gitignore):
//! - a pattern without `/` matches a name at any depth, a pattern with `/` is anchored to the
//!   directory the pattern belongs to (its *domain*), a trailing `/` matches directories only;
//! - the last matching pattern wins, so a later `!pattern` re-includes;
//! - a path is ignored when it or any parent directory is ignored, unless the path itself is
//!   re-included (Flux does not prune directories, so `!` can re-include a file below an
//!   excluded directory).
//!
//! Two rule sets exist upstream:
//! - the CLI (`flux push|build|diff artifact`): [`Matcher::flux_cli_default`], i.e.
//!   [`EXCLUDE_VCS`] + [`EXCLUDE_EXT`], *replaced* (not extended) by `--ignore-paths`;
//! - source-controller (OCIRepository `extract`): [`Matcher::for_source_dir`], i.e.
//!   every `.sourceignore` below the root plus `spec.ignore`; with no pattern at all the defaults
//!   [`EXCLUDE_VCS`] + [`EXCLUDE_EXT`] + [`EXCLUDE_CI`] + [`EXCLUDE_EXTRA`] apply, otherwise only
//!   [`EXCLUDE_VCS`] plus the given patterns.

use std::fs;
use std::path::{Component, Path, PathBuf};

use ::ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Version-control files, excluded by every Flux rule set (`sourceignore.ExcludeVCS`).
pub const EXCLUDE_VCS: &str = ".git/,.gitignore,.gitmodules,.gitattributes";
/// Binary and archive extensions (`sourceignore.ExcludeExt`).
pub const EXCLUDE_EXT: &str = "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip";
/// CI configuration (`sourceignore.ExcludeCI`), part of source-controller's defaults only.
pub const EXCLUDE_CI: &str = ".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,codeship-services.yml,codeship-steps.yml";
/// Tool files (`sourceignore.ExcludeExtra`), part of source-controller's defaults only.
pub const EXCLUDE_EXTRA: &str = "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml";
/// Name of the per-directory ignore file source-controller reads (`sourceignore.IgnoreFile`).
pub const IGNORE_FILE: &str = ".sourceignore";

/// Errors building a [`Matcher`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pattern is not a valid gitignore glob; `origin` names where it came from
    /// (`--ignore-paths`, `spec.ignore` or the path of a `.sourceignore` file).
    #[error("invalid ignore pattern {pattern:?} in {origin}: {message}")]
    Pattern {
        /// The offending pattern line.
        pattern: String,
        /// Where the pattern came from.
        origin: String,
        /// Why the glob was rejected.
        message: String,
    },
    /// A directory or `.sourceignore` file could not be read.
    #[error("reading ignore rules from {path}")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// The defaults of `flux push|build|diff artifact` (`excludeOCI`): [`EXCLUDE_VCS`] and
/// [`EXCLUDE_EXT`], one pattern per element.
pub fn flux_cli_default_patterns() -> Vec<String> {
    split_list(EXCLUDE_VCS)
        .chain(split_list(EXCLUDE_EXT))
        .collect()
}

/// source-controller's defaults when no `.sourceignore`/`spec.ignore` pattern exists.
pub fn source_default_patterns() -> Vec<String> {
    [EXCLUDE_VCS, EXCLUDE_EXT, EXCLUDE_CI, EXCLUDE_EXTRA]
        .into_iter()
        .flat_map(split_list)
        .collect()
}

fn split_list(list: &'static str) -> impl Iterator<Item = String> {
    list.split(',').map(str::to_owned)
}

/// One group of patterns that applies below `domain` (a path relative to the matched root,
/// empty for the root itself).
#[derive(Debug, Clone)]
struct Rules {
    domain: PathBuf,
    gitignore: Gitignore,
}

/// A set of Flux ignore rules, matched against paths relative to the content root.
///
/// Cheap to query; build once per archive. See the module docs for the semantics.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// In pattern order: later groups win over earlier ones.
    rules: Vec<Rules>,
}

impl Matcher {
    /// A matcher that ignores nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Patterns relative to the content root, in `.gitignore` line syntax (`#` comments and
    /// blank lines are skipped). `origin` is used in error messages only.
    ///
    /// # Errors
    /// [`Error::Pattern`] when a line is not a valid glob.
    pub fn new<S: AsRef<str>>(patterns: &[S], origin: &str) -> Result<Self, Error> {
        let mut matcher = Self::empty();
        matcher.push(Path::new(""), patterns.iter().map(AsRef::as_ref), origin)?;
        Ok(matcher)
    }

    /// The rules of `flux push|build artifact`: `ignore_paths` when given (they *replace* the
    /// defaults, as `--ignore-paths` does), else [`flux_cli_default_patterns`].
    ///
    /// # Errors
    /// [`Error::Pattern`] when a pattern is not a valid glob.
    pub fn flux_cli(ignore_paths: Option<&[String]>) -> Result<Self, Error> {
        match ignore_paths {
            Some(paths) => Self::new(paths, "--ignore-paths"),
            None => Self::flux_cli_default(),
        }
    }

    /// [`flux_cli_default_patterns`] as a matcher.
    ///
    /// # Errors
    /// Never in practice (the defaults are valid globs); the `Result` keeps the API uniform.
    pub fn flux_cli_default() -> Result<Self, Error> {
        Self::new(&flux_cli_default_patterns(), "the default exclusions")
    }

    /// source-controller's rules for extracted content in `root`: every `.sourceignore` file
    /// below `root` (except under `.git`), each relative to its own directory, then
    /// `spec_ignore` (multi-line, relative to `root`). With no pattern at all, the defaults
    /// ([`source_default_patterns`]); otherwise [`EXCLUDE_VCS`] followed by the patterns found.
    ///
    /// # Errors
    /// [`Error::Read`] when a directory or `.sourceignore` cannot be read, [`Error::Pattern`]
    /// for an invalid glob (the origin names the file, or `spec.ignore`).
    pub fn for_source_dir(root: &Path, spec_ignore: Option<&str>) -> Result<Self, Error> {
        let mut found = Self::empty();
        load_ignore_files(root, Path::new(""), &mut found)?;
        if let Some(spec) = spec_ignore {
            found.push(Path::new(""), spec.lines(), "spec.ignore")?;
        }
        let patterns_exist = found.rules.iter().any(|r| !r.gitignore.is_empty());
        let mut matcher = if patterns_exist {
            Self::new(
                &split_list(EXCLUDE_VCS).collect::<Vec<_>>(),
                "the default exclusions",
            )?
        } else {
            Self::new(&source_default_patterns(), "the default exclusions")?
        };
        matcher.rules.extend(found.rules);
        Ok(matcher)
    }

    /// Appends patterns that apply below `domain` (relative to the content root); they take
    /// precedence over every earlier pattern.
    ///
    /// # Errors
    /// [`Error::Pattern`] when a line is not a valid glob.
    pub fn push<'a>(
        &mut self,
        domain: &Path,
        lines: impl IntoIterator<Item = &'a str>,
        origin: &str,
    ) -> Result<(), Error> {
        let mut builder = GitignoreBuilder::new(".");
        for line in lines {
            builder.add_line(None, line).map_err(|e| Error::Pattern {
                pattern: line.to_owned(),
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        }
        let gitignore = builder.build().map_err(|e| Error::Pattern {
            pattern: String::new(),
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        if !gitignore.is_empty() {
            self.rules.push(Rules {
                domain: domain.to_path_buf(),
                gitignore,
            });
        }
        Ok(())
    }

    /// Whether the path (relative to the content root, `/`-separated, no `.` or `..`
    /// components) is ignored. `is_dir` tells whether it names a directory.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        if path.as_os_str().is_empty()
            || path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return false;
        }
        // Check the path itself, then each parent: the first that any rule matches decides
        // (rules are consulted last to first, so later patterns win).
        let mut candidate = Some(path);
        let mut candidate_is_dir = is_dir;
        while let Some(p) = candidate {
            if p.as_os_str().is_empty() {
                break;
            }
            for rules in self.rules.iter().rev() {
                let Ok(rel) = p.strip_prefix(&rules.domain) else {
                    continue;
                };
                if rel.as_os_str().is_empty() {
                    continue;
                }
                let m = rules.gitignore.matched(rel, candidate_is_dir);
                if m.is_ignore() {
                    return true;
                }
                if m.is_whitelist() {
                    return false;
                }
            }
            candidate = p.parent();
            candidate_is_dir = true;
        }
        false
    }

    /// Whether no pattern is loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Recursively reads `.sourceignore` files in lexical order (parents before children), skipping
/// `.git` directories and symlinks.
fn load_ignore_files(root: &Path, rel: &Path, into: &mut Matcher) -> Result<(), Error> {
    let dir = root.join(rel);
    let file = dir.join(IGNORE_FILE);
    match fs::symlink_metadata(&file) {
        Ok(meta) if meta.is_file() => {
            let text = fs::read_to_string(&file).map_err(|source| Error::Read {
                path: file.clone(),
                source,
            })?;
            into.push(rel, text.lines(), &file.display().to_string())?;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Read { path: file, source }),
    }
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let ty = entry.file_type().map_err(|source| Error::Read {
            path: entry.path(),
            source,
        })?;
        if ty.is_dir() {
            load_ignore_files(root, &rel.join(&name), into)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli_default() -> Matcher {
        Matcher::flux_cli_default().unwrap()
    }

    #[test]
    fn defaults_exclude_vcs_and_binary_files_at_any_depth() {
        let m = cli_default();
        assert!(m.is_ignored(Path::new(".git"), true));
        assert!(m.is_ignored(Path::new(".git/config"), false));
        assert!(m.is_ignored(Path::new("a/b/.git/HEAD"), false));
        assert!(m.is_ignored(Path::new("img/logo.png"), false));
        assert!(m.is_ignored(Path::new("x.tar.gz"), false));
        assert!(m.is_ignored(Path::new(".gitignore"), false));
        assert!(!m.is_ignored(Path::new("deploy/app.yaml"), false));
        assert!(!m.is_ignored(Path::new(".github/workflows/ci.yaml"), false));
    }

    #[test]
    fn dir_only_pattern_does_not_match_a_file() {
        let m = cli_default();
        assert!(!m.is_ignored(Path::new(".git"), false));
    }

    #[test]
    fn ignore_paths_replace_the_defaults() {
        let m = Matcher::flux_cli(Some(&["*.md".to_owned()])).unwrap();
        assert!(m.is_ignored(Path::new("docs/README.md"), false));
        assert!(!m.is_ignored(Path::new("logo.png"), false));
    }

    #[test]
    fn later_negation_reincludes_even_below_an_excluded_directory() {
        let pats = ["secrets/", "!secrets/keep.yaml", "/only-root.yaml"];
        let m = Matcher::new(&pats, "test").unwrap();
        assert!(m.is_ignored(Path::new("secrets/a.yaml"), false));
        assert!(!m.is_ignored(Path::new("secrets/keep.yaml"), false));
        assert!(m.is_ignored(Path::new("only-root.yaml"), false));
        assert!(!m.is_ignored(Path::new("sub/only-root.yaml"), false));
    }

    #[test]
    fn source_dir_rules_use_each_files_directory_as_domain() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("app/sub")).unwrap();
        fs::write(
            dir.path().join("app/.sourceignore"),
            "/local.yaml\n# comment\n\n",
        )
        .unwrap();
        let m = Matcher::for_source_dir(dir.path(), Some("*.txt")).unwrap();
        assert!(m.is_ignored(Path::new("app/local.yaml"), false));
        assert!(!m.is_ignored(Path::new("local.yaml"), false));
        assert!(!m.is_ignored(Path::new("app/sub/local.yaml"), false));
        assert!(m.is_ignored(Path::new("notes.txt"), false));
        // patterns exist, so only VCS defaults remain
        assert!(m.is_ignored(Path::new(".git/HEAD"), false));
        assert!(!m.is_ignored(Path::new("logo.png"), false));
    }

    #[test]
    fn source_dir_without_patterns_uses_the_full_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matcher::for_source_dir(dir.path(), None).unwrap();
        assert!(m.is_ignored(Path::new(".github/workflows/ci.yaml"), false));
        assert!(m.is_ignored(Path::new("a/.sops.yaml"), false));
        assert!(m.is_ignored(Path::new("logo.png"), false));
    }
}
