//! `diff`: compares the content of an artifact's layer with a local tree by name, kind,
//! permission bits and content digest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::pull::{PullOptions, consume_layer, fetch};
use super::{Error, join_error};
use crate::archive::{self, EntryKind};
use crate::client::Client;
use crate::digest::{Digest, Digester};
use crate::extract::{self, Limits};
use crate::reference::Reference;
use crate::sourceignore::Matcher;

/// One entry of a [`ContentIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentEntry {
    /// A directory.
    Dir,
    /// A regular file: permission bits and content digest.
    File {
        /// Permission bits (`& 0o777`).
        mode: u32,
        /// sha256 of the content.
        digest: Digest,
    },
}

/// What an artifact holds, by relative path (no `./` prefix, no trailing `/`, root omitted).
/// Symlinks and special files are not part of it (Flux never archives them).
pub type ContentIndex = BTreeMap<String, ContentEntry>;

/// The differences between a local tree and an artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// Paths only in the local tree.
    pub added: Vec<String>,
    /// Paths only in the artifact.
    pub removed: Vec<String>,
    /// Paths in both whose content, mode or kind differ.
    pub modified: Vec<String>,
}

impl DiffReport {
    /// Whether local and remote contents are equal.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }

    /// Compares two indexes (`local` versus `remote`).
    pub fn between(local: &ContentIndex, remote: &ContentIndex) -> Self {
        let mut report = DiffReport::default();
        for (path, entry) in local {
            match remote.get(path) {
                None => report.added.push(path.clone()),
                Some(other) if other != entry => report.modified.push(path.clone()),
                Some(_) => {}
            }
        }
        report.removed = remote
            .keys()
            .filter(|p| !local.contains_key(*p))
            .cloned()
            .collect();
        report
    }
}

fn hash_reader(mut reader: impl Read) -> io::Result<Digest> {
    let mut digester = Digester::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(digester.finish());
        }
        digester.update(&buf[..n]);
    }
}

/// Indexes what `archive::build(path, ignore)` would put in an artifact (blocking).
///
/// # Errors
/// [`Error::Build`] when the tree cannot be walked, [`Error::ReadLocal`] when a file cannot
/// be read.
pub fn index_tree(path: &Path, ignore: &Matcher) -> Result<ContentIndex, Error> {
    let entries = archive::walk(path, ignore).map_err(|source| Error::Build {
        path: path.display().to_string(),
        source,
    })?;
    let mut index = ContentIndex::new();
    for entry in entries.into_iter().filter(|e| e.name != ".") {
        let value = match entry.kind {
            EntryKind::Dir => ContentEntry::Dir,
            EntryKind::File => {
                let read_err = |source| Error::ReadLocal {
                    path: entry.path.display().to_string(),
                    source,
                };
                let file = File::open(&entry.path).map_err(read_err)?;
                ContentEntry::File {
                    mode: entry.mode & 0o777,
                    digest: hash_reader(file).map_err(read_err)?,
                }
            }
        };
        index.insert(entry.name, value);
    }
    Ok(index)
}

/// Indexes a tar or tar+gzip stream under `limits` (blocking). Unsafe names are rejected like
/// [`extract::extract`] does.
fn index_archive(reader: impl Read, limits: &Limits) -> Result<ContentIndex, extract::Error> {
    let read_err = |entry: Option<&str>| {
        let entry = entry.map(str::to_owned);
        move |source| extract::Error::Read { entry, source }
    };
    let mut archive = tar::Archive::new(extract::decompressed(reader).map_err(read_err(None))?);
    let mut index = ContentIndex::new();
    let (mut count, mut total) = (0u64, 0u64);
    for entry in archive.entries().map_err(read_err(None))? {
        let entry = entry.map_err(read_err(None))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        count += 1;
        if count > limits.max_files {
            return Err(extract::Error::FileCountLimit {
                entry: shown,
                limit: limits.max_files,
            });
        }
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let rel = extract::safe_relative_path(&raw, &shown)?;
        if rel.as_os_str().is_empty() {
            continue; // the root
        }
        let name = rel.to_string_lossy().into_owned();
        match kind {
            tar::EntryType::Directory => {
                index.insert(name, ContentEntry::Dir);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total = total.saturating_add(entry.size());
                if total > limits.max_size_bytes {
                    return Err(extract::Error::SizeLimit {
                        entry: shown,
                        limit_bytes: limits.max_size_bytes,
                    });
                }
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                let digest = hash_reader(entry).map_err(read_err(Some(&shown)))?;
                index.insert(name, ContentEntry::File { mode, digest });
            }
            _ => {}
        }
    }
    Ok(index)
}

/// Compares the content of `reference`'s layer with what pushing `path` with `ignore` would
/// produce: file names, kinds, permission bits and content digests — not gzip bytes, so
/// artifacts built by Flux (Go's deflate) or other tools compare equal when their content is.
///
/// # Errors
/// As [`pull`](super::pull()) for the remote side; [`Error::Build`]/[`Error::ReadLocal`] for the local tree.
pub async fn diff(
    client: &Client,
    reference: &Reference,
    path: &Path,
    ignore: Matcher,
    limits: Limits,
) -> Result<DiffReport, Error> {
    let local_path: PathBuf = path.into();
    let local = tokio::task::spawn_blocking(move || index_tree(&local_path, &ignore));
    let options = PullOptions {
        limits,
        ..PullOptions::default()
    };
    let fetched = fetch(client, reference, &options).await?;
    let extract_error = fetched.extract_error();
    let remote = consume_layer(client, &fetched, &options, move |reader| {
        index_archive(reader, &limits).map_err(extract_error)
    })
    .await?;
    let local = local.await.map_err(join_error)??;
    Ok(DiffReport::between(&local, &remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_index_equals_the_index_of_its_own_archive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/x.yaml"), "x").unwrap();
        std::fs::write(dir.path().join("y.yaml"), "y").unwrap();
        let ignore = Matcher::flux_cli_default().unwrap();
        let local = index_tree(dir.path(), &ignore).unwrap();
        let mut gz = Vec::new();
        archive::build(dir.path(), &ignore, &mut gz).unwrap();
        let remote = index_archive(gz.as_slice(), &Limits::default()).unwrap();
        assert_eq!(local, remote);
        assert_eq!(local.len(), 4);

        std::fs::write(dir.path().join("y.yaml"), "changed").unwrap();
        std::fs::write(dir.path().join("new.yaml"), "n").unwrap();
        std::fs::remove_file(dir.path().join("a/b/x.yaml")).unwrap();
        let report = DiffReport::between(&index_tree(dir.path(), &ignore).unwrap(), &remote);
        assert_eq!(report.added, ["new.yaml"]);
        assert_eq!(report.removed, ["a/b/x.yaml"]);
        assert_eq!(report.modified, ["y.yaml"]);
    }

    /// A one-entry tar whose header name is exactly `name` (the `tar` crate's builder refuses
    /// unsafe names).
    fn tar_with(name: &str, kind: tar::EntryType) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
        let size = u64::from(kind == tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        header.set_cksum();
        let mut tar = tar::Builder::new(Vec::new());
        tar.append(&header, &b"x"[..size as usize]).unwrap();
        tar.into_inner().unwrap()
    }

    #[test]
    fn unsafe_names_are_refused_by_the_extraction_rules() {
        for name in ["../x", "a/../../x", "/etc/passwd", "a\\b"] {
            let bytes = tar_with(name, tar::EntryType::Regular);
            let err = index_archive(bytes.as_slice(), &Limits::default()).unwrap_err();
            assert!(
                matches!(err, extract::Error::InvalidEntryName { .. }),
                "{name}: {err:?}"
            );
        }
        for root in [".", "./"] {
            let bytes = tar_with(root, tar::EntryType::Directory);
            assert!(
                index_archive(bytes.as_slice(), &Limits::default())
                    .unwrap()
                    .is_empty()
            );
        }
        let bytes = tar_with("./a/b/", tar::EntryType::Directory);
        let index = index_archive(bytes.as_slice(), &Limits::default()).unwrap();
        assert_eq!(index.keys().collect::<Vec<_>>(), ["a/b"]);
    }
}
