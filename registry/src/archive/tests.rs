use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join("a.txt"), "top").unwrap();
    fs::write(root.join("a/b/deep.yaml"), "kind: x\n").unwrap();
    fs::write(root.join("a/z.yaml"), "z").unwrap();
    fs::write(root.join(".git/HEAD"), "ref").unwrap();
    fs::write(root.join("logo.png"), "png").unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("a.txt", root.join("link.txt")).unwrap();
    dir
}

fn read_entries(gz: &[u8]) -> Vec<(String, tar::Header)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                e.header().clone(),
            )
        })
        .collect()
}

#[test]
fn entries_follow_flux_walk_order_and_default_ignores() {
    let dir = tree();
    let mut out = Vec::new();
    let summary = build(dir.path(), &Matcher::flux_cli_default().unwrap(), &mut out).unwrap();
    let names: Vec<_> = read_entries(&out).into_iter().map(|(n, _)| n).collect();
    // per-directory lexical order ("a" before "a.txt"), root ".", no trailing "/",
    // .git and *.png excluded, the symlink skipped
    assert_eq!(
        names,
        [
            ".",
            "a",
            "a/b",
            "a/b/deep.yaml",
            "a/z.yaml",
            "a.txt",
            "run.sh"
        ]
    );
    assert_eq!(summary.entries, 7);
    assert_eq!(summary.size_bytes, out.len() as u64);
    assert_eq!(summary.digest, Digest::sha256_of(&out));
}

#[test]
fn headers_are_normalised_like_go_archive_tar() {
    let dir = tree();
    let mut out = Vec::new();
    build(dir.path(), &Matcher::flux_cli_default().unwrap(), &mut out).unwrap();
    // gzip header: no name, mtime 0, OS 255
    assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    for (name, h) in read_entries(&out) {
        assert_eq!(h.uid().unwrap(), 0, "{name}");
        assert_eq!(h.gid().unwrap(), 0);
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert_eq!(&h.as_bytes()[257..265], b"ustar\x0000");
        assert_eq!(
            &h.as_bytes()[154..156],
            b"\0 ",
            "Go checksum layout for {name}"
        );
        assert_eq!(&h.as_bytes()[329..337], b"0000000\0");
        if name == "run.sh" {
            assert_eq!(h.mode().unwrap(), 0o755);
        }
    }
}

#[test]
fn build_is_deterministic_across_mtimes() {
    let dir = tree();
    let ignore = Matcher::flux_cli_default().unwrap();
    let first = build(dir.path(), &ignore, Vec::new()).unwrap();
    fs::write(dir.path().join("a.txt"), "top").unwrap(); // same content, new mtime
    let second = build(dir.path(), &ignore, Vec::new()).unwrap();
    assert_eq!(first, second);
    fs::write(dir.path().join("a.txt"), "changed").unwrap();
    let third = build(dir.path(), &ignore, Vec::new()).unwrap();
    assert_ne!(first.tar_digest, third.tar_digest);
}

#[test]
fn a_single_file_is_staged_under_a_0700_root() {
    let dir = tree();
    let mut out = Vec::new();
    build(
        &dir.path().join("a/z.yaml"),
        &Matcher::flux_cli_default().unwrap(),
        &mut out,
    )
    .unwrap();
    let entries = read_entries(&out);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0, ".");
    assert_eq!(entries[0].1.mode().unwrap(), 0o700);
    assert_eq!(entries[1].0, "z.yaml");
}

#[test]
fn ignored_directory_children_can_be_reincluded() {
    let dir = tree();
    let ignore = Matcher::new(&["a/", "!a/z.yaml"], "test").unwrap();
    let mut out = Vec::new();
    build(dir.path(), &ignore, &mut out).unwrap();
    let names: Vec<_> = read_entries(&out).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"a/z.yaml".to_owned()));
    assert!(!names.contains(&"a".to_owned()));
    assert!(!names.contains(&"a/b/deep.yaml".to_owned()));
    assert!(
        names.contains(&".git/HEAD".to_owned()),
        "--ignore-paths replaces the defaults"
    );
}

#[test]
fn long_names_round_trip_through_pax() {
    let dir = tempfile::tempdir().unwrap();
    let long = "d".repeat(120);
    fs::create_dir_all(dir.path().join(&long)).unwrap();
    let file = format!("{}.yaml", "f".repeat(110));
    fs::write(dir.path().join(&long).join(&file), "x").unwrap();
    let mut out = Vec::new();
    build(dir.path(), &Matcher::empty(), &mut out).unwrap();
    let names: Vec<_> = read_entries(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [".".to_owned(), long.clone(), format!("{long}/{file}")]
    );
}

#[test]
fn build_file_writes_atomically_with_mode_0640() {
    let dir = tree();
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("artifact.tgz");
    let summary = build_file(dir.path(), &Matcher::flux_cli_default().unwrap(), &dest).unwrap();
    let bytes = fs::read(&dest).unwrap();
    assert_eq!(summary.digest, Digest::sha256_of(&bytes));
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::read_dir(out_dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[test]
fn a_missing_source_is_an_invalid_path() {
    let err = build(
        Path::new("/nonexistent/source"),
        &Matcher::empty(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidSource { .. }));
    assert!(
        err.to_string()
            .contains("must point to an existing directory or file")
    );
}
