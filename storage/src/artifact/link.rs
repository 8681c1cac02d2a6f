//! Shared archives: one stored artifact file given to another object as a hard link, so
//! objects that resolve to the same content store it once (one inode, one set of blocks)
//! while each keeps its own `<kind>/<namespace>/<name>/<file>` path, digest record, retention
//! and deletion. Removing one object's link never touches another's: the file system frees
//! the content with its last link.
//!
//! A link is not fsynced (neither the digest record nor the directories): it costs no new
//! bytes, and a link lost in a crash is found missing by the object's first reconcile after the
//! restart (every object is reconciled once at start), which builds it again. Written archives
//! ([`super::ArtifactWriter::finish`]) stay durable before they are acknowledged.
//!
//! The `latest.tar.gz` link of an object's directory ([`ArtifactStore::update_latest_link`]) is
//! Flux's `Storage.Symlink(artifact, "latest.tar.gz")`, made for every source kind.

use std::fs;
use std::os::unix::fs::MetadataExt as _;

use super::{
    ArtifactStore, Error, FileIdentity, Result, StoredArtifact, TEMP_PREFIX, io_err,
    validate_file_name, write_record,
};

/// The name of the link to an object's newest artifact, as Flux serves it for every kind.
const LATEST_LINK: &str = "latest.tar.gz";

impl ArtifactStore {
    /// Stores the artifact at `source` (a relative path as [`StoredArtifact::path`]) for
    /// another object as `<kind>/<namespace>/<name>/<file_name>`: a hard link made under a
    /// temporary name, its digest recorded, then renamed into place (an existing file of that
    /// name is replaced atomically), without copying a byte and without fsync (see the module
    /// docs). The source's content is checked against `digest` first (from the cache of
    /// verdicts when its identity is unchanged), so a corrupted file is never shared.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] as for [`ArtifactStore::create`] and [`ArtifactStore::path`];
    /// [`Error::Io`] (kind `NotFound`, see [`Error::is_artifact_missing`], when `source` is
    /// gone, e.g. garbage-collected meanwhile; the caller then builds the artifact itself);
    /// [`Error::ArtifactDigestMismatch`] when the source's content does not match `digest`.
    pub fn link(
        &self,
        source: &str,
        digest: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        file_name: &str,
    ) -> Result<StoredArtifact> {
        validate_file_name(file_name)?;
        let source_path = self.path(source)?;
        let mut file = fs::File::open(&source_path)
            .map_err(io_err("opening shared artifact", &source_path))?;
        let actual = self.digest_of(&mut file, &source_path)?;
        if !actual.eq_ignore_ascii_case(digest) {
            return Err(Error::ArtifactDigestMismatch {
                path: source_path,
                expected: digest.to_owned(),
                actual,
            });
        }
        let meta = file
            .metadata()
            .map_err(io_err("reading artifact metadata", &source_path))?;
        let (size, inode) = (meta.len(), meta.ino());
        drop(file);
        let dir = self.object_dir(kind, namespace, name)?;
        fs::create_dir_all(&dir).map_err(io_err("creating artifact directory", &dir))?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{file_name}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::hard_link(&source_path, &temp).map_err(io_err("linking shared artifact", &temp))?;
        let target = dir.join(file_name);
        let placed =
            write_record(&self.digest_record_path(&target), digest, false).and_then(|()| {
                fs::rename(&temp, &target).map_err(io_err("renaming artifact", &target))
            });
        // Renaming a link onto another link of the same inode (the target already shares this
        // archive) does nothing and leaves the temporary name: remove it in every case.
        let _ = fs::remove_file(&temp);
        placed?;
        // A new link changes the inode's change time: remember the verdict for the new
        // identity, so neither this object nor the others hash the file again.
        if let Ok(meta) = fs::metadata(&target)
            && meta.ino() == inode
        {
            self.digests
                .insert(FileIdentity::of(&meta), digest.to_owned());
        }
        Ok(StoredArtifact {
            path: format!("{kind}/{namespace}/{name}/{file_name}"),
            digest: digest.to_owned(),
            size,
        })
    }

    /// Points the `latest.tar.gz` link in the directory of the artifact at `path` (a relative
    /// path as [`StoredArtifact::path`]) to that artifact, as Flux's `Storage.Symlink`: a
    /// relative symbolic link made under a temporary name and renamed over the old one, so a
    /// reader sees the previous or the new target, never none. Not fsynced: a link lost in a
    /// crash points at the previous artifact, which retention keeps, until the next new
    /// artifact. Served by the artifact listener and followed by [`ArtifactStore::verify`] and
    /// [`ArtifactStore::open_verified`].
    ///
    /// # Errors
    /// [`Error::InvalidPath`] as for [`ArtifactStore::path`]; [`Error::Io`] when the link
    /// cannot be made or renamed into place.
    pub fn update_latest_link(&self, path: &str) -> Result<()> {
        let target = self.path(path)?;
        let (Some(dir), Some(file)) = (target.parent(), target.file_name()) else {
            return Err(Error::InvalidPath {
                value: path.to_owned(),
                reason: "has no directory or file name",
            });
        };
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-link",
            uuid::Uuid::new_v4().simple()
        ));
        std::os::unix::fs::symlink(file, &temp)
            .map_err(io_err("linking latest artifact", &temp))?;
        let latest = dir.join(LATEST_LINK);
        let renamed = fs::rename(&temp, &latest).map_err(io_err("renaming latest link", &latest));
        if renamed.is_err() {
            let _ = fs::remove_file(&temp);
        }
        renamed
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn write(store: &ArtifactStore, kind: &str, file: &str, content: &[u8]) -> StoredArtifact {
        let mut w = store.create(kind, "default", "podinfo", file).unwrap();
        w.write_all(content).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn latest_follows_each_new_artifact_of_any_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        for kind in ["ocirepository", "helmchart"] {
            let latest = format!("{kind}/default/podinfo/{LATEST_LINK}");
            let v1 = write(&store, kind, "podinfo-1.0.0.tgz", b"one");
            store.update_latest_link(&v1.path).unwrap();
            assert!(store.verify(&latest, &v1.digest).unwrap());
            let v2 = write(&store, kind, "podinfo-2.0.0.tgz", b"two");
            store.update_latest_link(&v2.path).unwrap();
            assert!(store.verify(&latest, &v2.digest).unwrap());
            let link = store.path(&latest).unwrap();
            assert_eq!(
                fs::read_link(&link).unwrap(),
                std::path::Path::new("podinfo-2.0.0.tgz"),
                "a relative link, so the data directory can move"
            );
            let names: Vec<String> = fs::read_dir(link.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(TEMP_PREFIX))
                .collect();
            assert!(names.is_empty(), "temporary links left: {names:?}");
        }
        assert!(store.update_latest_link("../escape/x/y.tgz").is_err());
    }
}
