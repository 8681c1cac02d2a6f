use std::fs;

use super::*;

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn plain_tar_and_gzip_are_both_accepted() {
    let tar = tar_of(&[("dir/", b""), ("dir/a.yaml", b"a: 1\n"), ("./b.yaml", b"b")]);
    let dest = tempfile::tempdir().unwrap();
    let s = extract(tar.as_slice(), dest.path(), &Limits::default()).unwrap();
    assert_eq!((s.files, s.dirs, s.size_bytes), (2, 1, 6));
    assert_eq!(fs::read(dest.path().join("dir/a.yaml")).unwrap(), b"a: 1\n");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let dest = tempfile::tempdir().unwrap();
    extract(gz.as_slice(), dest.path(), &Limits::default()).unwrap();
    assert_eq!(fs::read(dest.path().join("b.yaml")).unwrap(), b"b");
}

#[test]
fn files_get_permission_bits_without_setuid() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o4755);
    h.set_path("x").unwrap();
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    extract(
        b.into_inner().unwrap().as_slice(),
        dest.path(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(dest.path().join("x"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
}

#[test]
fn an_empty_stream_is_an_empty_archive_or_a_read_error() {
    let dest = tempfile::tempdir().unwrap();
    let s = extract(&b""[..], dest.path(), &Limits::default()).unwrap();
    assert_eq!(s, Summary::default());
    let err = extract(&[0x1f, 0x8b, 0, 0][..], dest.path(), &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
}

#[test]
fn pax_global_headers_are_metadata_only() {
    let mut b = tar::Builder::new(Vec::new());
    let record = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let mut g = tar::Header::new_ustar();
    g.set_path("pax_global_header").unwrap();
    g.set_entry_type(tar::EntryType::XGlobalHeader);
    g.set_size(record.len() as u64);
    g.set_cksum();
    b.append(&g, &record[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("a.yaml").unwrap();
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"a"[..]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let s = extract(
        b.into_inner().unwrap().as_slice(),
        dest.path(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(s.files, 1);
    assert!(!dest.path().join("pax_global_header").exists());
}
