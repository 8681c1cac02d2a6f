//! The on-disk TUF cache of one mirror and initial root, so that the next start verifies the
//! trusted root offline and only updates from the mirror.
//!
//! Layout under `<cache dir>/<mirror host>-<sha256 of the mirror URL and the initial root, 16 hex>/`
//! (no `%` in the name: tough reads the offline copy through a `file:` URL it does not
//! percent-decode):
//!
//! | path | what |
//! |---|---|
//! | `root.json` | the newest root metadata a load verified (the trust anchor of the next load) |
//! | `mirror/metadata/`, `mirror/targets/` | the files of the last load that verified, as fetched (`N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`, `<sha256>.trusted_root.json`): a copy of the mirror that tough loads offline |
//! | `datastore/` | tough's datastore: the last trusted timestamp, snapshot and targets (rollback checks) and the latest time seen |
//! | `last-attempt` | touched on each refresh attempt; its modification time rate-limits refreshes |

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use sha2::Digest as _;
use url::Url;

/// Why the cache could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the TUF cache {}", path.display())]
pub struct CacheError {
    /// The file or directory that failed.
    pub path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError {
        path: path.to_owned(),
        source,
    }
}

/// The cache directory of one mirror and initial root.
#[derive(Debug, Clone)]
pub(super) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache of `mirror` trusted from `initial_root`, under `cache_dir`.
    pub(super) fn new(cache_dir: &Path, mirror: &Url, initial_root: &[u8]) -> Self {
        let host: String = mirror
            .host_str()
            .unwrap_or("mirror")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut hash = sha2::Sha256::new();
        hash.update(mirror.as_str());
        hash.update(b"\n");
        hash.update(initial_root);
        let hash = hex::encode(hash.finalize());
        Self {
            dir: cache_dir.join(format!("{host}-{}", &hash[..16])),
        }
    }

    /// The newest verified root metadata, when a load verified one.
    pub(super) fn root(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("root.json")).ok()
    }

    /// The metadata and targets directories of the cached mirror copy.
    pub(super) fn mirror(&self) -> (PathBuf, PathBuf) {
        let mirror = self.dir.join("mirror");
        (mirror.join("metadata"), mirror.join("targets"))
    }

    /// tough's datastore directory, created when missing.
    pub(super) fn datastore(&self) -> Result<PathBuf, CacheError> {
        let path = self.dir.join("datastore");
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        Ok(path)
    }

    /// When a refresh was last attempted.
    pub(super) fn last_attempt(&self) -> Option<SystemTime> {
        std::fs::metadata(self.dir.join("last-attempt"))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Records a refresh attempt now.
    pub(super) fn record_attempt(&self) -> Result<(), CacheError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join("last-attempt");
        std::fs::write(&path, b"").map_err(io(&path))
    }

    /// Replaces the mirror copy with the files of a load that verified (`fetched`: URL and body,
    /// under `metadata_url` or `targets_url`), then the trust anchor with `root`. The copy is
    /// written beside the old one and swapped in by renames, so a crash leaves the old copy or
    /// the new one.
    pub(super) fn store(
        &self,
        metadata_url: &Url,
        targets_url: &Url,
        fetched: &[(Url, Bytes)],
        root: &[u8],
    ) -> Result<(), CacheError> {
        let new = self.dir.join("mirror.new");
        let _ = std::fs::remove_dir_all(&new);
        for (dir, base) in [("targets", targets_url), ("metadata", metadata_url)] {
            let dir = new.join(dir);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for (url, body) in fetched {
                let Some(name) = file_name(base, url) else {
                    continue;
                };
                let path = dir.join(name);
                std::fs::write(&path, body).map_err(io(&path))?;
            }
        }
        let (mirror, old) = (self.dir.join("mirror"), self.dir.join("mirror.old"));
        let _ = std::fs::remove_dir_all(&old);
        match std::fs::rename(&mirror, &old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&mirror)(e)),
            _ => {}
        }
        std::fs::rename(&new, &mirror).map_err(io(&mirror))?;
        let _ = std::fs::remove_dir_all(&old);
        let (tmp, path) = (self.dir.join("root.json.new"), self.dir.join("root.json"));
        std::fs::write(&tmp, root).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// The file name of `url` directly under `base` (no further `/`), else `None`; targets live
/// under the metadata URL (`<mirror>/targets/`), so each file lands in exactly one directory.
fn file_name<'u>(base: &Url, url: &'u Url) -> Option<&'u str> {
    let name = url.as_str().strip_prefix(base.as_str())?;
    (!name.is_empty() && !name.contains('/') && name != "." && name != "..").then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_under_the_base_they_were_fetched_from() {
        let metadata: Url = "https://tuf.test/".parse().unwrap();
        let targets: Url = "https://tuf.test/targets/".parse().unwrap();
        let root: Url = "https://tuf.test/2.root.json".parse().unwrap();
        let target: Url = "https://tuf.test/targets/ab.trusted_root.json"
            .parse()
            .unwrap();
        assert_eq!(file_name(&metadata, &root), Some("2.root.json"));
        assert_eq!(file_name(&metadata, &target), None);
        assert_eq!(file_name(&targets, &target), Some("ab.trusted_root.json"));
        assert_eq!(file_name(&targets, &root), None);
    }

    #[test]
    fn each_mirror_and_initial_root_has_its_own_directory() {
        let mirror: Url = "https://tuf.test/".parse().unwrap();
        let a = Cache::new(Path::new("/c"), &mirror, b"one");
        let b = Cache::new(Path::new("/c"), &mirror, b"two");
        assert_ne!(a.dir, b.dir);
        let other = Cache::new(
            Path::new("/c"),
            &"https://tuf.test/x/".parse().unwrap(),
            b"one",
        );
        assert_ne!(a.dir, other.dir);
        let dir = a.dir.to_str().unwrap();
        assert!(dir.starts_with("/c/tuf.test-"), "{dir}");
    }
}
