//! Storage faults, made real: a database and an artifact directory on a small tmpfs that is
//! filled up or remounted read-only, and watch clients that go away mid-stream.
//!
//! The tmpfs tests need `mount` (root, as the CI runs); they fail with a message saying so
//! when it is not permitted, never pass silently.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use futures::StreamExt as _;
use serde_json::json;
use storage::{
    ArtifactStore, Error, ObjectStore, Revision, SqliteConfig, SqliteStore, UpdatePart,
    WatchEventType, WatchOptions, WriteOptions,
};
use support::*;

const W: WriteOptions = WriteOptions { dry_run: false };

/// A tmpfs of a few MiB mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): these fault tests need root (CAP_SYS_ADMIN) to \
             mount a small file system they can fill up or make read-only"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the file system is full; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Whatever is left is less than one chunk: take it byte by byte.
        while let Ok(1) = file.write(&[0]) {}
        path
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remounting the tmpfs read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A large spec field, so that a write needs new pages in the write-ahead log.
fn big(name: &str, fill: char) -> serde_json::Value {
    let mut v = repo(name);
    v["spec"]["big"] = json!(fill.to_string().repeat(512 * 1024));
    v
}

fn error_chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[tokio::test]
async fn a_commit_on_a_full_disk_fails_its_whole_group_cleanly_and_publishes_nothing() {
    let fs = Tmpfs::mount("8m");
    let db = fs.path().join("db.sqlite");
    let store = SqliteStore::open(&db, SqliteConfig::default())
        .await
        .unwrap();
    let a = store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    let r0 = rv(&a);
    let opts = WatchOptions {
        resource_version: Some(Revision(r0)),
        ..Default::default()
    };
    let mut watch = store.watch(&repos(), None, opts).await.unwrap();
    let filler = fs.fill();

    // Several writes at once: the writer commits what is queued together, so they share the
    // failing group transaction. Every one of them must fail, none may be half-stored.
    let writes = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            if i == 0 {
                let mut next = big("a", 'u');
                next["metadata"]["resourceVersion"] = json!(r0.to_string());
                store
                    .update(&key("ns", "a"), next, UpdatePart::Main, W)
                    .await
            } else {
                let name = format!("n{i}");
                store.create(&key("ns", &name), big(&name, 'c'), W).await
            }
        })
    });
    for outcome in futures::future::join_all(writes).await {
        let err = outcome
            .unwrap()
            .expect_err("no write can commit on a full disk");
        let message = error_chain(&err);
        assert!(
            matches!(err, Error::Transaction { .. } | Error::Database { .. }),
            "a storage failure, not {err:?}"
        );
        assert!(
            message.contains("full"),
            "the error names the full disk: {message}"
        );
        assert_eq!(err.status_code(), 500, "{message}");
    }
    assert_eq!(store.current_revision().await.unwrap(), Revision(r0));
    let stored = store.get(&key("ns", "a")).await.unwrap();
    assert_eq!(stored, a, "the failed update left the object as it was");
    assert!(
        store
            .get(&key("ns", "n1"))
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Space again: the next write gets the very next revision, and it is the first thing the
    // watcher sees.
    std::fs::remove_file(filler).unwrap();
    let b = store.create(&key("ns", "b"), repo("b"), W).await.unwrap();
    assert_eq!(rv(&b), r0 + 1, "the failed group used no revision");
    let ev = next(&mut watch).await;
    assert_eq!(ev.event_type, WatchEventType::Added);
    assert_eq!(ev.object["metadata"]["name"], "b");
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    drop(watch);
    store.close().await.unwrap();

    let reopened = SqliteStore::open(&db, SqliteConfig::default())
        .await
        .unwrap();
    assert_eq!(reopened.current_revision().await.unwrap(), Revision(r0 + 1));
    assert_eq!(reopened.get(&key("ns", "a")).await.unwrap(), a);
    reopened.close().await.unwrap();
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn write_artifact(
    store: &ArtifactStore,
    content: &[u8],
) -> storage::Result<storage::StoredArtifact> {
    let mut writer = store.create("ocirepository", "ns", "app", "rev.tar.gz")?;
    writer.write_all(content).map_err(|source| Error::Io {
        operation: "writing artifact",
        path: PathBuf::from("rev.tar.gz"),
        source,
    })?;
    writer.finish()
}

#[test]
fn an_artifact_write_on_a_full_disk_fails_and_keeps_the_previous_artifact() {
    let fs = Tmpfs::mount("2m");
    let store = ArtifactStore::open(fs.path()).unwrap();
    let v1 = write_artifact(&store, b"version one").unwrap();
    fs.fill();
    let err = write_artifact(&store, &vec![7u8; 1024 * 1024]).expect_err("the disk is full");
    assert!(
        error_chain(&err).contains("No space left on device"),
        "{}",
        error_chain(&err)
    );
    let dir = store.root().join("ocirepository/ns/app");
    assert_eq!(
        temporaries(&dir),
        Vec::<String>::new(),
        "no temporary file left"
    );
    assert!(store.verify(&v1.path, &v1.digest).unwrap());
    let (mut file, size) = store.open_read(&v1.path).unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut file, &mut content).unwrap();
    assert_eq!((content.as_str(), size), ("version one", 11));
}

/// A store whose file system turned read-only keeps serving what it holds: it opens (a
/// restart on a read-only volume), checking an artifact without a digest record (written by an
/// older version) still answers although the record cannot be written (recording is best
/// effort), the verified open serves the bytes, and a new write fails at its first step,
/// naming it, with nothing left behind.
#[test]
fn a_read_only_artifact_store_keeps_serving_and_refuses_new_writes_at_the_first_step() {
    let fs = Tmpfs::mount("2m");
    let store = ArtifactStore::open(fs.path()).unwrap();
    let v1 = write_artifact(&store, b"version one").unwrap();
    let record = store
        .root()
        .join(".digests/ocirepository/ns/app/rev.tar.gz");
    std::fs::remove_file(&record).unwrap();
    fs.remount_read_only();

    let store = ArtifactStore::open(fs.path()).expect("a read-only store opens");
    assert!(
        store.verify(&v1.path, &v1.digest).unwrap(),
        "the check answers although its record cannot be written"
    );
    assert!(!record.exists());
    let mut served = store.open_verified(&v1.path, Some(&v1.digest)).unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut served.file, &mut content).unwrap();
    assert_eq!(
        (content.as_str(), served.digest.as_str()),
        ("version one", v1.digest.as_str())
    );

    let err = write_artifact(&store, b"version two").expect_err("the directory is read-only");
    let dir = store.root().join("ocirepository/ns/app");
    match &err {
        Error::Io {
            operation,
            path,
            source,
        } => {
            assert_eq!(*operation, "creating temporary artifact");
            assert_eq!(path.parent(), Some(dir.as_path()), "{}", path.display());
            assert_eq!(source.raw_os_error(), Some(libc::EROFS), "{source}");
        }
        other => panic!("an IO error at the first step, not {other:?}"),
    }
    assert_eq!(temporaries(&dir), Vec::<String>::new());
    assert!(store.verify(&v1.path, &v1.digest).unwrap());
}

#[tokio::test]
async fn watch_clients_that_go_away_mid_stream_are_forgotten_and_the_others_keep_receiving() {
    let t = open().await;
    t.store.create(&key("ns", "a"), repo("a"), W).await.unwrap();
    let mut live = t
        .store
        .watch(&repos(), None, WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut live).await.object["metadata"]["name"], "a");
    for round in 0..200 {
        let mut gone = t
            .store
            .watch(&repos(), Some("ns"), WatchOptions::default())
            .await
            .unwrap();
        // Mid-stream: it has read the initial state, then its client disconnects.
        assert!(gone.next().await.unwrap().is_ok(), "round {round}");
        drop(gone);
    }
    assert_eq!(t.store.watchers(), 1, "only the live watch is registered");
    let store: Arc<SqliteStore> = t.store.clone();
    store.create(&key("ns", "b"), repo("b"), W).await.unwrap();
    let ev = next(&mut live).await;
    assert_eq!(
        (ev.event_type, ev.object["metadata"]["name"].as_str()),
        (WatchEventType::Added, Some("b"))
    );
    drop(live);
    assert_eq!(t.store.watchers(), 0);
}

fn rewrite_in_place(path: &Path, content: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut file = std::fs::File::options().write(true).open(path).unwrap();
    file.write_all(content).unwrap();
    // Hide the edit from size and modification time: only the content (and the change
    // time, which user space cannot set) tells.
    file.set_modified(mtime).unwrap();
}

#[test]
fn a_corrupted_or_deleted_artifact_is_never_opened_for_serving() {
    let data = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    let stored = write_artifact(&store, b"version one").unwrap();
    let served = store
        .open_verified(&stored.path, Some(&stored.digest))
        .unwrap();
    assert_eq!(
        (served.size, served.digest.as_str()),
        (11, stored.digest.as_str())
    );
    let recorded = store.open_verified(&stored.path, None).unwrap();
    assert_eq!(recorded.digest, stored.digest);
    let dir = store.root().join("ocirepository/ns/app");
    std::os::unix::fs::symlink("rev.tar.gz", dir.join("latest.tar.gz")).unwrap();
    let latest = store
        .open_verified("ocirepository/ns/app/latest.tar.gz", None)
        .unwrap();
    assert_eq!(latest.digest, stored.digest);

    let path = store.path(&stored.path).unwrap();
    rewrite_in_place(&path, b"version 1!!");
    let err = store
        .open_verified(&stored.path, Some(&stored.digest))
        .unwrap_err();
    match &err {
        Error::ArtifactDigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &stored.digest);
            assert_ne!(actual, &stored.digest);
        }
        other => panic!("a digest mismatch, not {other:?}"),
    }
    assert_eq!(
        (err.status_code(), err.reason()),
        (503, "ServiceUnavailable")
    );
    // It matched neither the status nor its record: corrupted, so it is removed for the
    // reconcile to rebuild, and never served again.
    assert!(!path.exists(), "the corrupted file is removed");
    let err = store
        .open_verified(&stored.path, Some(&stored.digest))
        .unwrap_err();
    assert!(err.is_artifact_missing(), "{err:?}");
    assert!(
        store
            .open_verified("ocirepository/ns/app/latest.tar.gz", None)
            .unwrap_err()
            .is_artifact_missing()
    );
}

#[test]
fn a_newer_artifact_than_the_status_asks_for_is_refused_but_kept() {
    let data = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    let old = write_artifact(&store, b"version one").unwrap();
    // Rebuilt under the same name (e.g. new ignore rules) before the status names it.
    let new = write_artifact(&store, b"version two").unwrap();
    assert!(matches!(
        store.open_verified(&old.path, Some(&old.digest)),
        Err(Error::ArtifactDigestMismatch { .. })
    ));
    assert_eq!(
        store
            .open_verified(&new.path, Some(&new.digest))
            .unwrap()
            .digest,
        new.digest
    );
    assert_eq!(
        store.open_verified(&new.path, None).unwrap().digest,
        new.digest
    );
}

#[test]
fn an_artifact_without_a_recorded_digest_is_served_only_once_verified() {
    let data = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(data.path()).unwrap();
    let stored = write_artifact(&store, b"from an older version").unwrap();
    std::fs::remove_file(
        store
            .root()
            .join(".digests/ocirepository/ns/app/rev.tar.gz"),
    )
    .unwrap();
    assert!(matches!(
        store.open_verified(&stored.path, None),
        Err(Error::ArtifactDigestUnknown { .. })
    ));
    // The subresource knows the digest from the object's status.
    assert!(
        store
            .open_verified(&stored.path, Some(&stored.digest))
            .is_ok()
    );
    // A reconcile's check records it.
    assert!(store.verify(&stored.path, &stored.digest).unwrap());
    assert_eq!(
        store.open_verified(&stored.path, None).unwrap().digest,
        stored.digest
    );
    // Garbage collection takes the record with the file.
    let deleted = store
        .garbage_collect(
            "ocirepository",
            "ns",
            "app",
            "other.tar.gz",
            std::time::Duration::ZERO,
            1,
        )
        .unwrap();
    assert_eq!(deleted, vec![stored.path.clone()]);
    assert!(
        !store
            .root()
            .join(".digests/ocirepository/ns/app/rev.tar.gz")
            .exists()
    );
}
