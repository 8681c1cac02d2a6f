//! `pull` (safe extraction of the content layer) and `diff` (content comparison).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::stream::{BlobReader, pump};
use super::{
    ANNOTATION_REVISION, ANNOTATION_SOURCE, Error, annotation, join_error, resolve_image_manifest,
    select_layer, with_default_tag,
};
use crate::archive::{self, EntryKind};
use crate::client::{Client, ProgressFn};
use crate::digest::{Digest, Digester};
use crate::extract::{self, Limits};
use crate::manifest::Descriptor;
use crate::reference::Reference;
use crate::sourceignore::Matcher;

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Bounds on the extracted content (default 1 GiB, 100 000 entries).
    pub limits: Limits,
    /// Layer media type to prefer (default the Flux content type); falls back to the first layer.
    pub layer_media_type: Option<String>,
    /// Called with the bytes of the layer downloaded so far.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("limits", &self.limits)
            .field("layer_media_type", &self.layer_media_type)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled (tag `latest` when none was given).
    pub reference: Reference,
    /// The image manifest digest (after following an index).
    pub digest: Digest,
    /// `org.opencontainers.image.source`, if set.
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`, if set.
    pub revision: Option<String>,
    /// All manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer extracted.
    pub layer: Descriptor,
    /// What was written.
    pub extracted: extract::Summary,
}

/// Pulls `reference` and extracts its content layer into `dest` while downloading, verified
/// against the layer digest, under `options.limits` (see [`crate::extract`]). On error `dest`
/// may hold part of the content: extract into a fresh directory.
///
/// # Errors
/// [`Error::GetManifest`], [`Error::AmbiguousIndex`], [`Error::NoLayers`],
/// [`Error::PullLayer`] (download, digest or size mismatch), [`Error::Extract`] (refused or
/// corrupt content, limits).
pub async fn pull(
    client: &Client,
    reference: &Reference,
    dest: &Path,
    options: PullOptions,
) -> Result<Pulled, Error> {
    let reference = with_default_tag(reference);
    let (manifest, descriptor) = resolve_image_manifest(client, &reference).await?;
    let layer = select_layer(&manifest, options.layer_media_type.as_deref())
        .cloned()
        .ok_or_else(|| Error::NoLayers {
            reference: reference.to_string(),
        })?;
    let (dest, limits) = (dest.to_path_buf(), options.limits);
    let extracted = consume_layer(
        client,
        &reference,
        &layer,
        options.progress,
        move |reader| extract::extract(reader, &dest, &limits),
    )
    .await?;
    Ok(Pulled {
        source: annotation(&manifest, ANNOTATION_SOURCE),
        revision: annotation(&manifest, ANNOTATION_REVISION),
        annotations: manifest.annotations.clone().unwrap_or_default(),
        reference,
        digest: descriptor.digest,
        layer,
        extracted,
    })
}

/// Downloads `reference`'s layer (chosen like [`pull`] does, preferring `layer_media_type`)
/// into the file `dest` byte for byte, verified against its digest and size while streaming:
/// Flux's `layerSelector.operation: copy` (e.g. a Helm chart `.tgz`). Returns the layer
/// descriptor and the image manifest digest. On error `dest` may hold part of the blob: write
/// to a temporary path and rename it on success.
///
/// # Errors
/// [`Error::GetManifest`], [`Error::AmbiguousIndex`], [`Error::NoLayers`],
/// [`Error::PullLayer`] (download, digest or size mismatch), [`Error::WriteLayer`].
pub async fn pull_layer_to_file(
    client: &Client,
    reference: &Reference,
    layer_media_type: Option<&str>,
    dest: &Path,
    progress: Option<ProgressFn>,
) -> Result<(Descriptor, Digest), Error> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    let reference = with_default_tag(reference);
    let (manifest, descriptor) = resolve_image_manifest(client, &reference).await?;
    let layer = select_layer(&manifest, layer_media_type)
        .cloned()
        .ok_or_else(|| Error::NoLayers {
            reference: reference.to_string(),
        })?;
    let pull_err = |source| Error::PullLayer {
        reference: reference.to_string(),
        digest: layer.digest.clone(),
        source: Box::new(source),
    };
    let write_err = |source| Error::WriteLayer {
        path: dest.display().to_string(),
        source,
    };
    let mut stream = client
        .get_blob(&reference, &layer)
        .await
        .map_err(pull_err)?;
    let file = tokio::fs::File::create(dest).await.map_err(write_err)?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut done = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(pull_err)?;
        out.write_all(&chunk).await.map_err(write_err)?;
        done += chunk.len() as u64;
        if let Some(progress) = &progress {
            progress(done);
        }
    }
    out.flush().await.map_err(write_err)?;
    out.into_inner().sync_all().await.map_err(write_err)?;
    Ok((layer, descriptor.digest))
}

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

/// Normalises an archive entry name: strips `./` and trailing `/`. `Ok(None)` for the root,
/// `Err(())` for an absolute name or one with a `..` component.
fn normalise(name: &[u8]) -> Result<Option<String>, ()> {
    let name = String::from_utf8_lossy(name);
    if name.starts_with('/') || name.contains('\\') {
        return Err(());
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(());
    }
    Ok(if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    })
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
        let name = match normalise(&raw) {
            Ok(Some(name)) => name,
            Ok(None) => continue, // the root
            Err(()) => {
                return Err(extract::Error::InvalidEntryName {
                    entry: shown,
                    reason: "absolute or parent path",
                });
            }
        };
        match entry.header().entry_type() {
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
/// As [`pull`] for the remote side; [`Error::Build`]/[`Error::ReadLocal`] for the local tree.
pub async fn diff(
    client: &Client,
    reference: &Reference,
    path: &Path,
    ignore: Matcher,
    limits: Limits,
) -> Result<DiffReport, Error> {
    let reference = with_default_tag(reference);
    let local_path: PathBuf = path.into();
    let local = tokio::task::spawn_blocking(move || index_tree(&local_path, &ignore));
    let (manifest, _) = resolve_image_manifest(client, &reference).await?;
    let layer = select_layer(&manifest, None)
        .cloned()
        .ok_or_else(|| Error::NoLayers {
            reference: reference.to_string(),
        })?;
    let remote = consume_layer(client, &reference, &layer, None, move |reader| {
        index_archive(reader, &limits)
    })
    .await?;
    let local = local.await.map_err(join_error)??;
    Ok(DiffReport::between(&local, &remote))
}

/// Streams `layer` (digest and size verified while reading) into `consume`, which runs on the
/// blocking pool. After `consume` succeeds the stream is read to its end so the digest check
/// runs; a transfer or digest failure wins over what `consume` saw, since it explains it.
///
/// # Errors
/// [`Error::PullLayer`] when the download or its verification fails, [`Error::Extract`] when
/// `consume` refuses the content.
async fn consume_layer<T: Send + 'static>(
    client: &Client,
    reference: &Reference,
    layer: &Descriptor,
    progress: Option<ProgressFn>,
    consume: impl FnOnce(&mut BlobReader) -> Result<T, extract::Error> + Send + 'static,
) -> Result<T, Error> {
    let pull_err = |source| Error::PullLayer {
        reference: reference.to_string(),
        digest: layer.digest.clone(),
        source: Box::new(source),
    };
    let stream = client.get_blob(reference, layer).await.map_err(pull_err)?;
    let mut reader = pump(stream, progress);
    let (mut reader, result) = tokio::task::spawn_blocking(move || {
        let result = consume(&mut reader);
        if result.is_ok() {
            let _ = reader.drain();
        }
        (reader, result)
    })
    .await
    .map_err(join_error)?;
    if let Some(source) = reader.take_error() {
        return Err(pull_err(source));
    }
    result.map_err(|source| Error::Extract {
        reference: reference.to_string(),
        digest: layer.digest.clone(),
        source,
    })
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

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise(b"./a/b/"), Ok(Some("a/b".to_owned())));
        assert_eq!(normalise(b"."), Ok(None));
        assert_eq!(normalise(b"./"), Ok(None));
        assert_eq!(normalise(b".."), Err(()));
        assert_eq!(normalise(b"a/../../x"), Err(()));
        assert_eq!(normalise(b"/etc/passwd"), Err(()));
    }
}
