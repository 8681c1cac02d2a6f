//! Hostile archives are refused (or their links skipped) and nothing is ever written outside
//! the target directory.

use std::fs;
use std::io::Write;

use registry::extract::{self, Error, Limits};

/// A raw tar entry; the name is written byte for byte (no validation), as an attacker would.
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn raw<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

fn tar_of(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let name = e.name.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(e.kind);
        h.set_mode(0o644);
        h.set_size(e.data.len() as u64);
        if let Some(link) = e.link {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A sandbox: `root/target` is the extraction target, `root/outside` a sibling that must stay
/// empty.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("target")).unwrap();
        fs::create_dir(root.path().join("outside")).unwrap();
        Sandbox { root }
    }
    fn target(&self) -> std::path::PathBuf {
        self.root.path().join("target")
    }
    fn outside(&self) -> std::path::PathBuf {
        self.root.path().join("outside")
    }
    fn extract(&self, archive: &[u8], limits: &Limits) -> Result<extract::Summary, Error> {
        extract::extract(archive, &self.target(), limits)
    }
    /// Nothing but `target` and `outside` in the root, and `outside` empty.
    fn assert_nothing_outside(&self) {
        let mut names: Vec<_> = fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["outside", "target"]);
        assert_eq!(
            fs::read_dir(self.outside()).unwrap().count(),
            0,
            "something was written outside the target"
        );
    }
}

#[test]
fn parent_directory_entries_are_refused() {
    let sb = Sandbox::new();
    let err = sb
        .extract(
            &gzip(&tar_of(&[raw("ok.yaml", b"ok"), raw("../evil.yaml", b"x")])),
            &Limits::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidEntryName { ref entry, .. } if entry == "../evil.yaml"),
        "{err}"
    );
    assert!(err.to_string().contains("../evil.yaml"), "{err}");
    let err = sb
        .extract(
            &tar_of(&[raw("a/../../outside/evil", b"x")]),
            &Limits::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidEntryName { .. }), "{err}");
    sb.assert_nothing_outside();
}

#[test]
fn absolute_paths_are_refused() {
    let sb = Sandbox::new();
    let victim = sb.outside().join("abs.yaml");
    let name = victim.to_str().unwrap().to_owned();
    let err = sb
        .extract(&tar_of(&[raw(&name, b"x")]), &Limits::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidEntryName {
                reason: "absolute path",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&name));
    sb.assert_nothing_outside();
}

#[test]
fn a_symlink_cannot_be_used_to_escape() {
    let sb = Sandbox::new();
    let outside = sb.outside();
    let link_target = outside.to_str().unwrap();
    let archive = tar_of(&[
        Raw {
            name: "link",
            kind: tar::EntryType::Symlink,
            data: b"",
            link: Some(link_target),
        },
        raw("link/evil.yaml", b"x"),
        Raw {
            name: "rel",
            kind: tar::EntryType::Symlink,
            data: b"",
            link: Some("../outside"),
        },
        raw("rel/evil2.yaml", b"x"),
    ]);
    let summary = sb.extract(&archive, &Limits::default()).unwrap();
    assert_eq!(summary.skipped, ["link", "rel"]);
    // The files land in real directories inside the target.
    assert!(sb.target().join("link/evil.yaml").is_file());
    assert!(
        !fs::symlink_metadata(sb.target().join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    sb.assert_nothing_outside();
}

#[test]
fn a_symlink_already_in_the_target_is_never_written_through() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(sb.outside(), sb.target().join("pre")).unwrap();
    let err = sb
        .extract(&tar_of(&[raw("pre/evil.yaml", b"x")]), &Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeParent { .. }), "{err}");
    std::os::unix::fs::symlink(sb.outside().join("file"), sb.target().join("file-link")).unwrap();
    sb.extract(
        &tar_of(&[raw("file-link", b"replaced")]),
        &Limits::default(),
    )
    .unwrap();
    assert!(
        !fs::symlink_metadata(sb.target().join("file-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    sb.assert_nothing_outside();
}

#[test]
fn hardlinks_and_devices_are_skipped() {
    let sb = Sandbox::new();
    let archive = tar_of(&[
        Raw {
            name: "passwd",
            kind: tar::EntryType::Link,
            data: b"",
            link: Some("/etc/passwd"),
        },
        Raw {
            name: "up",
            kind: tar::EntryType::Link,
            data: b"",
            link: Some("../outside/x"),
        },
        Raw {
            name: "dev",
            kind: tar::EntryType::Char,
            data: b"",
            link: None,
        },
        Raw {
            name: "fifo",
            kind: tar::EntryType::Fifo,
            data: b"",
            link: None,
        },
        raw("kept.yaml", b"k"),
    ]);
    let summary = sb.extract(&archive, &Limits::default()).unwrap();
    assert_eq!(summary.skipped, ["passwd", "up", "dev", "fifo"]);
    assert_eq!(summary.files, 1);
    let names: Vec<_> = fs::read_dir(sb.target())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept.yaml"]);
    sb.assert_nothing_outside();
}

#[test]
fn a_gzip_bomb_stops_at_the_size_limit() {
    let sb = Sandbox::new();
    // 64 MiB of zeros compresses to ~64 KiB.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("bomb.bin").unwrap();
    h.set_size(64 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, std::io::repeat(0).take_exact(64 << 20))
        .unwrap();
    let bomb = gzip(&b.into_inner().unwrap());
    assert!(bomb.len() < 1 << 20);
    let limits = Limits {
        max_size_bytes: 1 << 20,
        max_files: 100,
    };
    let err = sb.extract(&bomb, &limits).unwrap_err();
    assert!(
        matches!(err, Error::SizeLimit { ref entry, limit_bytes: 1_048_576 } if entry == "bomb.bin"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "extracting \"bomb.bin\" exceeds the size limit of 1048576 bytes"
    );
    assert!(
        !sb.target().join("bomb.bin").exists(),
        "nothing of the oversized entry is written"
    );
    sb.assert_nothing_outside();
}

#[test]
fn many_small_files_add_up_to_the_size_limit() {
    let sb = Sandbox::new();
    let entries: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    let data: &'static [u8] = &[7u8; 300];
    let archive = tar_of(&entries.iter().map(|n| raw(n, data)).collect::<Vec<_>>());
    let err = sb
        .extract(
            &archive,
            &Limits {
                max_size_bytes: 1000,
                max_files: 100,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::SizeLimit { ref entry, .. } if entry == "f3"),
        "{err}"
    );
    sb.assert_nothing_outside();
}

#[test]
fn a_flood_of_empty_files_stops_at_the_count_limit() {
    let sb = Sandbox::new();
    let names: Vec<String> = (0..5000).map(|i| format!("empty-{i:05}")).collect();
    let archive = gzip(&tar_of(
        &names.iter().map(|n| raw(n, b"")).collect::<Vec<_>>(),
    ));
    let err = sb
        .extract(
            &archive,
            &Limits {
                max_size_bytes: 1 << 30,
                max_files: 1000,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::FileCountLimit { ref entry, limit: 1000 } if entry == "empty-01000"),
        "{err}"
    );
    assert!(err.to_string().contains("limit of 1000 files"), "{err}");
    assert_eq!(fs::read_dir(sb.target()).unwrap().count(), 1000);
    sb.assert_nothing_outside();
}

#[test]
fn truncated_and_corrupt_streams_are_read_errors() {
    let sb = Sandbox::new();
    let archive = gzip(&tar_of(&[raw("a.yaml", b"some content here")]));
    let err = sb
        .extract(&archive[..archive.len() / 2], &Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    sb.assert_nothing_outside();
}

trait TakeExact: std::io::Read + Sized {
    fn take_exact(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}
impl<R: std::io::Read> TakeExact for R {}
