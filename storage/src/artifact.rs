//! The artifact file store: `<data_dir>/artifacts/<kind>/<namespace>/<name>/<file>`, written
//! atomically (temporary file in the same directory, fsync, rename, fsync of the directory),
//! with the sha256 digest and size computed while writing, as Flux's source-controller
//! `storage.Storage` lays artifacts out (`fluxcd/source-controller: internal/storage`).
//!
//! The API is synchronous; async callers run it in `spawn_blocking`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Prefix of temporary files; files starting with it are never artifacts and are removed at
/// open.
const TEMP_PREFIX: &str = ".tmp-";

/// The directory under the root that records the digest each artifact was written with:
/// `<root>/.digests/<kind>/<namespace>/<name>/<file>` holds `sha256:<hex>`. Not a valid kind,
/// so it is never served, and outside the object directories that hold artifacts.
const DIGESTS_DIR: &str = ".digests";

/// The most file verdicts [`ArtifactStore`] remembers before it forgets them all.
const MAX_VERIFIED_FILES: usize = 4096;

/// The artifact file store rooted at `<data_dir>/artifacts`. Clones share one cache of
/// computed digests.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
    digests: DigestCache,
}

/// Which bytes a file holds, as far as the file system tells without reading them: device,
/// inode, size, and modification and change times in nanoseconds (the change time cannot be
/// set from user space, so `touch -r` after an in-place edit still changes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The sha256 last computed (or written) per file identity, so repeated downloads of an
/// unchanged file are not hashed again.
#[derive(Clone, Debug, Default)]
struct DigestCache(Arc<Mutex<HashMap<FileIdentity, String>>>);

impl DigestCache {
    fn get(&self, id: &FileIdentity) -> Option<String> {
        self.0.lock().get(id).cloned()
    }

    fn insert(&self, id: FileIdentity, digest: String) {
        let mut map = self.0.lock();
        if map.len() >= MAX_VERIFIED_FILES {
            map.clear();
        }
        map.insert(id, digest);
    }
}

/// A stored artifact opened for reading after its content was checked against its digest:
/// `file` is positioned at its start and holds exactly the verified bytes (it stays the same
/// inode if the path is replaced meanwhile).
#[derive(Debug)]
pub struct VerifiedArtifact {
    /// The open file.
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
    /// `sha256:<hex>` of its content, equal to the expected digest.
    pub digest: String,
}

/// A file stored by [`ArtifactWriter::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// Path relative to the artifact root, `<kind>/<namespace>/<name>/<file_name>`.
    pub path: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// An artifact being written: `std::io::Write` into a temporary file in the target directory.
/// [`ArtifactWriter::finish`] makes it visible; dropping it unfinished removes the temporary
/// file, so a reader never sees a partial artifact.
#[derive(Debug)]
pub struct ArtifactWriter {
    digests: DigestCache,
    record: PathBuf,
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
    relative: String,
    hasher: Sha256,
    size: u64,
}

fn io_err<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

/// A DNS-1123 label or subdomain (lowercase alphanumerics, `-`, `.`; at most 253 bytes),
/// as Kubernetes names and namespaces are.
fn validate_name(value: &str, what: &'static str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidPath {
            value: value.to_owned(),
            reason: what,
        })
    }
}

/// A plain file name: no separators, not `.`/`..`, not hidden, not a temporary name.
fn validate_file_name(value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidPath {
            value: value.to_owned(),
            reason: "file name must be a plain name of [A-Za-z0-9-_.+] not starting with '.'",
        })
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing artifact directory", dir))
}

impl ArtifactStore {
    /// Opens the store rooted at `<data_dir>/artifacts`, creating it, and removes temporary
    /// files left by a crash.
    ///
    /// # Errors
    /// [`Error::Io`] when the root cannot be created or scanned.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("artifacts");
        fs::create_dir_all(&root).map_err(io_err("creating artifact root", &root))?;
        let store = Self {
            root,
            digests: DigestCache::default(),
        };
        store.remove_temporaries(&store.root.clone(), 0)?;
        Ok(store)
    }

    /// The root directory (`<data_dir>/artifacts`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn remove_temporaries(&self, dir: &Path, depth: usize) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(io_err("scanning artifact directory", dir))? {
            let entry = entry.map_err(io_err("scanning artifact directory", dir))?;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(io_err("scanning artifact directory", &path))?;
            if file_type.is_dir() && depth < 4 {
                self.remove_temporaries(&path, depth + 1)?;
            } else if file_type.is_file()
                && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            {
                tracing::info!(path = %path.display(), "removing partial artifact");
                fs::remove_file(&path).map_err(io_err("removing partial artifact", &path))?;
            }
        }
        Ok(())
    }

    fn object_dir(&self, kind: &str, namespace: &str, name: &str) -> Result<PathBuf> {
        validate_name(kind, "kind must be a lowercase DNS-1123 name")?;
        validate_name(namespace, "namespace must be a DNS-1123 name")?;
        validate_name(name, "name must be a DNS-1123 name")?;
        Ok(self.root.join(kind).join(namespace).join(name))
    }

    /// Starts writing `<kind>/<namespace>/<name>/<file_name>` (Flux:
    /// `<kind lowercase>/<namespace>/<name>/<digest>.tar.gz`). An existing file of that name is
    /// replaced atomically on finish.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] unless kind, namespace and name are DNS-1123 names and
    /// `file_name` is a plain file name; [`Error::Io`] when the directory or temporary file
    /// cannot be created.
    pub fn create(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        file_name: &str,
    ) -> Result<ArtifactWriter> {
        validate_file_name(file_name)?;
        let dir = self.object_dir(kind, namespace, name)?;
        fs::create_dir_all(&dir).map_err(io_err("creating artifact directory", &dir))?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{file_name}",
            uuid::Uuid::new_v4().simple()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io_err("creating temporary artifact", &temp))?;
        Ok(ArtifactWriter {
            digests: self.digests.clone(),
            record: self
                .root
                .join(DIGESTS_DIR)
                .join(kind)
                .join(namespace)
                .join(name)
                .join(file_name),
            file: Some(file),
            target: dir.join(file_name),
            temp,
            relative: format!("{kind}/{namespace}/{name}/{file_name}"),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Resolves a stored relative path (`<kind>/<namespace>/<name>/<file>`) to an absolute
    /// path under the root.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for anything but four valid components (no `..`, no absolute
    /// paths, no temporary files).
    pub fn path(&self, relative: &str) -> Result<PathBuf> {
        let parts: Vec<&str> = relative.split('/').collect();
        let invalid = |reason| Error::InvalidPath {
            value: relative.to_owned(),
            reason,
        };
        if parts.len() != 4
            || Path::new(relative)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(invalid("must be <kind>/<namespace>/<name>/<file>"));
        }
        validate_file_name(parts[3])?;
        Ok(self
            .object_dir(parts[0], parts[1], parts[2])?
            .join(parts[3]))
    }

    /// Opens a stored artifact for reading; returns the file and its size in bytes.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] as for [`ArtifactStore::path`]; [`Error::Io`] (kind `NotFound`
    /// when missing).
    pub fn open_read(&self, relative: &str) -> Result<(File, u64)> {
        let path = self.path(relative)?;
        let file = File::open(&path).map_err(io_err("opening artifact", &path))?;
        let size = file
            .metadata()
            .map_err(io_err("reading artifact metadata", &path))?
            .len();
        Ok((file, size))
    }

    /// True when the stored file's sha256 equals `digest` (`sha256:<hex>`); false for a
    /// mismatch, a missing file, or a digest of another algorithm. A match also records
    /// `digest` beside the file (best effort), so that [`ArtifactStore::open_verified`] can
    /// check files written before digests were recorded.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Io`] for read errors other than a missing file.
    pub fn verify(&self, relative: &str, digest: &str) -> Result<bool> {
        if !digest.starts_with("sha256:") {
            return Ok(false);
        }
        let path = self.path(relative)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("opening artifact", &path)(e)),
        };
        let actual = self.digest_of(&mut file, &path)?;
        let matches = actual.eq_ignore_ascii_case(digest);
        if matches
            && self.recorded_digest(&path)?.as_deref() != Some(digest)
            && let Err(e) = record_digest(&self.digest_record_path(&path), digest)
        {
            tracing::debug!(error = %e, "recording the artifact digest failed");
        }
        Ok(matches)
    }

    /// Opens a stored artifact for serving, but only when its content's sha256 equals
    /// `expected` (e.g. `status.artifact.digest`), or, when `expected` is `None`, the digest
    /// recorded when it was written. The file is hashed through the returned handle before
    /// its first byte is served; the verdict is cached per file identity (device, inode, size,
    /// modification and change time), so repeated downloads of an unchanged file do not hash
    /// it again. `latest.tar.gz` links are followed.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] as for [`ArtifactStore::path`]; [`Error::Io`] (kind `NotFound`
    /// when missing, see [`Error::is_artifact_missing`]); [`Error::ArtifactDigestMismatch`]
    /// when the content does not match (corrupted or replaced on disk: the reconcile rebuilds
    /// it); [`Error::ArtifactDigestUnknown`] when `expected` is `None` and no digest was
    /// recorded for the file.
    pub fn open_verified(
        &self,
        relative: &str,
        expected: Option<&str>,
    ) -> Result<VerifiedArtifact> {
        let path = self.path(relative)?;
        let mut file = File::open(&path).map_err(io_err("opening artifact", &path))?;
        let expected = match expected {
            Some(d) => d.to_owned(),
            None => self
                .recorded_digest(&path)?
                .ok_or_else(|| Error::ArtifactDigestUnknown { path: path.clone() })?,
        };
        let actual = self.digest_of(&mut file, &path)?;
        if !actual.eq_ignore_ascii_case(&expected) {
            tracing::warn!(path = %path.display(), %expected, %actual, "refusing to serve an artifact that does not match its digest");
            self.remove_if_corrupted(&path, &actual);
            return Err(Error::ArtifactDigestMismatch {
                path,
                expected,
                actual,
            });
        }
        file.rewind().map_err(io_err("reading artifact", &path))?;
        let size = file
            .metadata()
            .map_err(io_err("reading artifact metadata", &path))?
            .len();
        Ok(VerifiedArtifact {
            file,
            size,
            digest: actual,
        })
    }

    /// Deletes the file at `path` (content digest `actual`) when it matches neither what was
    /// recorded for it nor anything else: corrupted on disk. The reconcile's presence check then
    /// rebuilds it. A file that matches its record (newer than the status that was asked for)
    /// is left alone. Best effort.
    fn remove_if_corrupted(&self, path: &Path, actual: &str) {
        let Ok(Some(recorded)) = self.recorded_digest(path) else {
            return;
        };
        if recorded.eq_ignore_ascii_case(actual) {
            return;
        }
        let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if target.starts_with(&self.root) && fs::remove_file(&target).is_ok() {
            let _ = fs::remove_file(self.digest_record_path(path));
            tracing::warn!(path = %target.display(), "removed a corrupted artifact; the next reconcile rebuilds it");
        }
    }

    /// The sha256 of an open file's content, from the cache when its identity is unchanged.
    fn digest_of(&self, file: &mut File, path: &Path) -> Result<String> {
        let meta = |f: &File| {
            f.metadata()
                .map_err(io_err("reading artifact metadata", path))
        };
        let before = FileIdentity::of(&meta(file)?);
        if let Some(digest) = self.digests.get(&before) {
            return Ok(digest);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(io_err("reading artifact", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        // Cache only a verdict about bytes that did not change while they were read.
        if FileIdentity::of(&meta(file)?) == before {
            self.digests.insert(before, digest.clone());
        }
        Ok(digest)
    }

    /// Where the digest of the artifact at `path` (under the root) is recorded, following a
    /// `latest.tar.gz` link to its target.
    fn digest_record_path(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        let record = self.root.join(DIGESTS_DIR).join(relative);
        match fs::read_link(path)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_owned()))
        {
            Some(target) => record.with_file_name(target),
            None => record,
        }
    }

    /// The digest recorded for `path` (following a `latest.tar.gz` link), if any.
    fn recorded_digest(&self, path: &Path) -> Result<Option<String>> {
        let record = self.digest_record_path(path);
        match fs::read_to_string(&record) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading artifact digest record", &record)(e)),
        }
    }

    /// Deletes the object's files other than `keep` by Flux's retention
    /// (`--artifact-retention-ttl`, `--artifact-retention-records`): files older than `ttl`
    /// (by modification time) are deleted, and of the rest at most `max_records` newest are
    /// kept, counting `keep`. Returns the deleted relative paths, oldest first.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Io`].
    pub fn garbage_collect(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        keep: &str,
        ttl: Duration,
        max_records: usize,
    ) -> Result<Vec<String>> {
        let dir = self.object_dir(kind, namespace, name)?;
        let keep_name = keep.rsplit('/').next().unwrap_or(keep);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("listing artifacts", &dir)(e)),
        };
        let mut files: Vec<(SystemTime, String)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing artifacts", &dir))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') || file_name == keep_name {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(io_err("reading artifact metadata", &entry.path()))?;
            if !meta.is_file() {
                continue;
            }
            files.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), file_name));
        }
        // Newest first.
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let now = SystemTime::now();
        let slots = max_records.saturating_sub(1); // `keep` takes one record
        let mut deleted = Vec::new();
        for (i, (modified, file_name)) in files.iter().enumerate() {
            let expired = now.duration_since(*modified).unwrap_or_default() > ttl;
            if expired || i >= slots {
                let path = dir.join(file_name);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("deleting artifact", &path)(e)),
                }
                let record = self.digest_record_path(&path);
                match fs::remove_file(&record) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("deleting artifact digest record", &record)(e)),
                }
                deleted.push((modified, format!("{kind}/{namespace}/{name}/{file_name}")));
            }
        }
        if !deleted.is_empty() {
            fsync_dir(&dir)?;
        }
        deleted.sort_by(|a, b| a.0.cmp(b.0));
        Ok(deleted.into_iter().map(|(_, p)| p).collect())
    }

    /// Removes the object's directory and everything in it (when the object is deleted).
    /// Missing directories are fine.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Io`].
    pub fn remove_object(&self, kind: &str, namespace: &str, name: &str) -> Result<()> {
        let dir = self.object_dir(kind, namespace, name)?;
        let records = self
            .root
            .join(DIGESTS_DIR)
            .join(kind)
            .join(namespace)
            .join(name);
        match fs::remove_dir_all(&records) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing artifact digest directory", &records)(e)),
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("removing artifact directory", &dir)(e)),
        }
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    }
}

/// Writes a digest record atomically (temporary file, fsync, rename, fsync of its directory).
fn record_digest(record: &Path, digest: &str) -> Result<()> {
    write_record(record, digest, true)
}

/// Writes a digest record atomically (temporary file, rename); with `durable`, the file is
/// fsynced before the rename and its directory after it.
fn write_record(record: &Path, digest: &str, durable: bool) -> Result<()> {
    let dir = record.parent().unwrap_or(Path::new(""));
    fs::create_dir_all(dir).map_err(io_err("creating artifact digest directory", dir))?;
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-digest",
        uuid::Uuid::new_v4().simple()
    ));
    let written = File::create(&temp)
        .and_then(|mut f| {
            f.write_all(digest.as_bytes())?;
            if durable { f.sync_all() } else { Ok(()) }
        })
        .map_err(io_err("writing artifact digest record", &temp))
        .and_then(|()| {
            fs::rename(&temp, record).map_err(io_err("writing artifact digest record", record))
        });
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    if durable { fsync_dir(dir) } else { Ok(()) }
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("artifact already finished"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl ArtifactWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `sha256:<hex>` of the bytes written so far: a caller that expects a digest checks it
    /// before [`ArtifactWriter::finish`] and drops the writer on a mismatch, so the bytes are
    /// never visible.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// Makes the artifact durable and visible: fsync the file, rename it into place, fsync
    /// the directory. Returns its relative path, digest and size.
    ///
    /// # Errors
    /// [`Error::Io`]; the temporary file is removed on failure.
    pub fn finish(mut self) -> Result<StoredArtifact> {
        let file = self.file.take().expect("finish is called once");
        file.sync_all()
            .map_err(io_err("syncing artifact", &self.temp))?;
        let identity = file
            .metadata()
            .map_err(io_err("reading artifact metadata", &self.temp))?;
        drop(file);
        let digest = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        // The record first: whatever happens after, the bytes at the target are served only
        // when they match the digest recorded for them.
        record_digest(&self.record, &digest)?;
        fs::rename(&self.temp, &self.target).map_err(io_err("renaming artifact", &self.target))?;
        // Renaming keeps the inode; the change time moves, so this is a fresh identity.
        if let Ok(meta) = fs::metadata(&self.target)
            && meta.ino() == identity.ino()
        {
            self.digests.insert(FileIdentity::of(&meta), digest.clone());
        }
        let dir = self
            .target
            .parent()
            .expect("artifact paths have a directory")
            .to_path_buf();
        // From here on the file is in place; Drop must not touch it.
        self.temp = PathBuf::new();
        fsync_dir(&dir)?;
        Ok(StoredArtifact {
            path: std::mem::take(&mut self.relative),
            digest,
            size: self.size,
        })
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        self.file.take();
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

mod link;

#[cfg(test)]
mod tests;
