use std::io::Write as _;

use sha2::Digest as _;

use super::*;

fn store() -> (tempfile::TempDir, ArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    (dir, store)
}

fn write(store: &ArtifactStore, file: &str, content: &[u8]) -> StoredArtifact {
    let mut w = store
        .create("ocirepository", "default", "podinfo", file)
        .unwrap();
    w.write_all(content).unwrap();
    w.finish().unwrap()
}

#[test]
fn finish_reports_path_digest_and_size_and_the_file_reads_back() {
    let (_dir, store) = store();
    let stored = write(&store, "abc.tar.gz", b"hello world");
    assert_eq!(stored.path, "ocirepository/default/podinfo/abc.tar.gz");
    assert_eq!(stored.size, 11);
    assert_eq!(
        stored.digest,
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(b"hello world"))
        )
    );
    let (mut file, size) = store.open_read(&stored.path).unwrap();
    assert_eq!(size, 11);
    let mut content = String::new();
    file.read_to_string(&mut content).unwrap();
    assert_eq!(content, "hello world");
    assert!(store.verify(&stored.path, &stored.digest).unwrap());
}

#[test]
fn verify_detects_a_changed_file_and_a_missing_file() {
    let (_dir, store) = store();
    let stored = write(&store, "a.tar.gz", b"one");
    fs::write(store.path(&stored.path).unwrap(), b"two").unwrap();
    assert!(!store.verify(&stored.path, &stored.digest).unwrap());
    assert!(
        !store
            .verify(
                "ocirepository/default/podinfo/missing.tar.gz",
                &stored.digest
            )
            .unwrap()
    );
    assert!(!store.verify(&stored.path, "md5:abc").unwrap());
}

#[test]
fn an_unfinished_writer_leaves_no_file_behind() {
    let (_dir, store) = store();
    {
        let mut w = store
            .create("ocirepository", "default", "podinfo", "x.tar.gz")
            .unwrap();
        w.write_all(b"partial").unwrap();
    }
    let dir = store.root().join("ocirepository/default/podinfo");
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
}

#[test]
fn open_removes_temporary_files_left_by_a_crash() {
    let (dir, store) = store();
    let mut w = store
        .create("ocirepository", "default", "podinfo", "x.tar.gz")
        .unwrap();
    w.write_all(b"partial").unwrap();
    let temp = w.temp.clone();
    std::mem::forget(w); // simulate a crash: no Drop
    assert!(temp.exists());
    let _reopened = ArtifactStore::open(dir.path()).unwrap();
    assert!(!temp.exists());
}

#[test]
fn names_that_could_escape_the_root_are_rejected() {
    let (_dir, store) = store();
    for (kind, ns, name, file) in [
        ("..", "default", "x", "a.tar.gz"),
        ("ocirepository", "../etc", "x", "a.tar.gz"),
        ("ocirepository", "default", "a/b", "a.tar.gz"),
        ("ocirepository", "default", "x", "../a.tar.gz"),
        ("ocirepository", "default", "x", ".."),
        ("ocirepository", "default", "x", ".tmp-x"),
        ("ocirepository", "default", "x", "a/b"),
        ("OCIRepository", "default", "x", "a.tar.gz"),
        ("ocirepository", "", "x", "a.tar.gz"),
    ] {
        let err = store.create(kind, ns, name, file).unwrap_err();
        assert!(
            matches!(err, Error::InvalidPath { .. }),
            "{kind}/{ns}/{name}/{file}: {err}"
        );
    }
    for rel in [
        "../x/y/z",
        "/etc/passwd",
        "a/b/c",
        "ocirepository/default/x/../../y",
        "a/b/c/d/e",
        "ocirepository//x/a",
    ] {
        let err = store.path(rel).unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{rel}: {err:?}");
    }
}

#[test]
fn garbage_collect_keeps_the_current_file_and_the_newest_records() {
    let (_dir, store) = store();
    let mut paths = Vec::new();
    for i in 0..5 {
        let stored = write(
            &store,
            &format!("{i}.tar.gz"),
            format!("content {i}").as_bytes(),
        );
        // distinct, increasing modification times
        let file = File::options()
            .write(true)
            .open(store.path(&stored.path).unwrap())
            .unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(100 - i as u64 * 10))
            .unwrap();
        paths.push(stored.path);
    }
    // keep 1.tar.gz (current), at most 3 records, long TTL
    let deleted = store
        .garbage_collect(
            "ocirepository",
            "default",
            "podinfo",
            &paths[1],
            Duration::from_secs(3600),
            3,
        )
        .unwrap();
    assert_eq!(deleted, vec![paths[0].clone(), paths[2].clone()]);
    assert!(store.path(&paths[1]).unwrap().exists());
    assert!(store.path(&paths[3]).unwrap().exists());
    assert!(store.path(&paths[4]).unwrap().exists());
    // TTL: everything but the current file is older than 5 s
    let deleted = store
        .garbage_collect(
            "ocirepository",
            "default",
            "podinfo",
            &paths[1],
            Duration::from_secs(5),
            10,
        )
        .unwrap();
    assert_eq!(deleted, vec![paths[3].clone(), paths[4].clone()]);
    assert!(store.path(&paths[1]).unwrap().exists());
}

#[test]
fn remove_object_deletes_the_directory_and_tolerates_a_missing_one() {
    let (_dir, store) = store();
    let stored = write(&store, "a.tar.gz", b"x");
    store
        .remove_object("ocirepository", "default", "podinfo")
        .unwrap();
    assert!(!store.path(&stored.path).unwrap().exists());
    store
        .remove_object("ocirepository", "default", "podinfo")
        .unwrap();
}

#[test]
fn a_linked_artifact_shares_the_content_and_keeps_its_own_life() {
    use std::os::unix::fs::MetadataExt as _;
    let (_dir, store) = store();
    let first = write(&store, "abc.tar.gz", b"shared archive");
    let linked = store
        .link(
            &first.path,
            &first.digest,
            "ocirepository",
            "default",
            "other",
            "abc.tar.gz",
        )
        .unwrap();
    assert_eq!(linked.path, "ocirepository/default/other/abc.tar.gz");
    assert_eq!(
        (linked.digest.as_str(), linked.size),
        (first.digest.as_str(), 14)
    );
    let (a, b) = (
        std::fs::metadata(store.path(&first.path).unwrap()).unwrap(),
        std::fs::metadata(store.path(&linked.path).unwrap()).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "one stored archive");
    // Served by its own recorded digest, as a written one.
    let served = store.open_verified(&linked.path, None).unwrap();
    assert_eq!(served.digest, first.digest);
    let names = |obj: &str| -> Vec<String> {
        let dir = store.root().join("ocirepository/default").join(obj);
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("other"), ["abc.tar.gz"], "no temporary file is left");

    // Linking onto a file that already is that archive changes nothing and leaves nothing.
    store
        .link(
            &first.path,
            &first.digest,
            "ocirepository",
            "default",
            "other",
            "abc.tar.gz",
        )
        .unwrap();
    store
        .link(
            &first.path,
            &first.digest,
            "ocirepository",
            "default",
            "podinfo",
            "abc.tar.gz",
        )
        .unwrap();
    assert_eq!(names("other"), ["abc.tar.gz"]);
    assert_eq!(names("podinfo"), ["abc.tar.gz"]);

    // Deleting the first object leaves the other's copy whole.
    store
        .remove_object("ocirepository", "default", "podinfo")
        .unwrap();
    assert!(store.verify(&linked.path, &linked.digest).unwrap());
    let err = store
        .link(
            &first.path,
            &first.digest,
            "ocirepository",
            "default",
            "third",
            "abc.tar.gz",
        )
        .unwrap_err();
    assert!(err.is_artifact_missing(), "{err}");
}

#[test]
fn a_corrupted_artifact_is_not_shared() {
    let (_dir, store) = store();
    let first = write(&store, "abc.tar.gz", b"shared archive");
    std::fs::write(store.path(&first.path).unwrap(), b"SHARED ARCHIVE").unwrap();
    let err = store
        .link(
            &first.path,
            &first.digest,
            "ocirepository",
            "default",
            "other",
            "abc.tar.gz",
        )
        .unwrap_err();
    assert!(matches!(err, Error::ArtifactDigestMismatch { .. }), "{err}");
    assert!(
        !store
            .root()
            .join("ocirepository/default/other/abc.tar.gz")
            .exists()
    );
}
