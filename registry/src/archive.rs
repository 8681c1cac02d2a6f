//! Deterministic tar+gzip of a directory or a single file, laid out as Flux v2.9 builds
//! artifacts (`fluxcd/pkg/tar.Tar`, `fluxcd/pkg/oci/build.go`; reference
//! `flux-cli-artifacts.md` §2.4):
//!
//! - the directory is walked depth-first in lexical byte order per directory, a directory
//!   before its children; the root is the entry `.`; names are `/`-separated and relative,
//!   directories carry no trailing `/`;
//! - only regular files and directories are archived; symlinks (never followed), devices,
//!   FIFOs and sockets are skipped;
//! - headers are USTAR with uid/gid 0, empty user/group names, mtime 0, the permission bits
//!   (plus setuid/setgid/sticky) only, device numbers `0`, and Go's checksum layout
//!   (6 octal digits, NUL, space); names longer than USTAR allows get a PAX `path` record;
//! - a single file is archived as Flux v2.9 stages it: `.` (mode 0700) then the file under its
//!   base name;
//! - ignored paths (a [`Matcher`], e.g. Flux's defaults or `--ignore-paths`) lose their own
//!   entry only; the walk still descends so that a `!` pattern can re-include a child;
//! - gzip at the default level (6), header mtime 0, OS 255, compressed on several threads in
//!   fixed 1 MiB blocks (the pigz technique: each block primed with the previous 32 KiB, ended
//!   with a sync flush), so the output depends only on the content, never on the thread count.
//!
//! The tar bytes are therefore identical to Flux's for directory sources; the gzip bytes are not
//! (Go's deflate differs from zlib-rs's, and Go compresses in one stream), so layer digests
//! differ from Flux's. Compare contents,
//! not gzip digests ([`Summary::tar_digest`] is the OCI DiffID).
//!
//! The API is synchronous (tar and gzip are CPU work); async callers use `spawn_blocking`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod gzip;

use gzip::ParallelGzWriter;

use crate::digest::{Digest, Digester};
use crate::sourceignore::Matcher;

/// Mode bits kept in headers: permissions plus setuid, setgid and sticky.
const MODE_MASK: u32 = 0o7777;
/// Mode of the staging directory Flux v2.9 wraps a single file in.
const SINGLE_FILE_ROOT_MODE: u32 = 0o700;
/// Upper bound on gzip compression threads (the machine's parallelism is used up to this).
const MAX_GZIP_THREADS: usize = 8;
/// Mode Flux gives `flux build artifact` output files.
pub const OUTPUT_FILE_MODE: u32 = 0o640;

/// Errors building an archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source path does not exist or cannot be inspected.
    #[error("invalid path '{path}', must point to an existing directory or file")]
    InvalidSource {
        /// The source path given.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// A directory of the source tree could not be listed or an entry inspected.
    #[error("walking {path}")]
    Walk {
        /// The path that failed.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// A source file could not be read into the archive.
    #[error("archiving {path}")]
    ReadEntry {
        /// The file that failed.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// Writing the compressed archive to its destination failed.
    #[error("writing the archive")]
    Write(#[source] io::Error),
    /// The output file could not be created, written or renamed into place.
    #[error("writing the archive to {path}")]
    WriteFile {
        /// The destination path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
}

/// What an archive build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// sha256 of the gzip stream: the layer digest.
    pub digest: Digest,
    /// Size of the gzip stream in bytes: the layer size.
    pub size_bytes: u64,
    /// sha256 of the uncompressed tar stream (the OCI DiffID); equal for equal contents.
    pub tar_digest: Digest,
    /// Number of entries written (directories and files, including `.`).
    pub entries: u64,
}

/// The kind of an entry found by [`walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (including the root `.`).
    Dir,
    /// A regular file.
    File,
}

/// One entry of a source tree, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Name inside the archive: `.` for the root, else a relative `/`-separated path.
    pub name: String,
    /// The path on disk.
    pub path: PathBuf,
    /// Directory or regular file.
    pub kind: EntryKind,
    /// Mode bits as archived (permissions + setuid/setgid/sticky).
    pub mode: u32,
    /// File size in bytes (0 for directories).
    pub size_bytes: u64,
}

/// Lists what an archive of `source` contains, in archive order, applying `ignore` as Flux does
/// (see the module docs). `source` is a directory or a single regular file.
///
/// # Errors
/// [`Error::InvalidSource`] when `source` cannot be inspected, or is neither a directory nor a
/// regular file; [`Error::Walk`] when a directory cannot be listed.
pub fn walk(source: &Path, ignore: &Matcher) -> Result<Vec<SourceEntry>, Error> {
    let meta = fs::metadata(source).map_err(|e| Error::InvalidSource {
        path: source.into(),
        source: e,
    })?;
    let mut out = Vec::new();
    if meta.is_file() {
        out.push(SourceEntry {
            name: ".".into(),
            path: source.into(),
            kind: EntryKind::Dir,
            mode: SINGLE_FILE_ROOT_MODE,
            size_bytes: 0,
        });
        let name = source.file_name().map(PathBuf::from).unwrap_or_default();
        if !ignore.is_ignored(&name, false) {
            out.push(SourceEntry {
                name: name.to_string_lossy().into_owned(),
                path: source.into(),
                kind: EntryKind::File,
                mode: meta.mode() & MODE_MASK,
                size_bytes: meta.len(),
            });
        }
        return Ok(out);
    }
    if !meta.is_dir() {
        return Err(Error::InvalidSource {
            path: source.into(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a directory nor a regular file",
            ),
        });
    }
    out.push(SourceEntry {
        name: ".".into(),
        path: source.into(),
        kind: EntryKind::Dir,
        mode: meta.mode() & MODE_MASK,
        size_bytes: 0,
    });
    walk_dir(source, Path::new(""), ignore, &mut out)?;
    Ok(out)
}

fn walk_dir(
    root: &Path,
    rel: &Path,
    ignore: &Matcher,
    out: &mut Vec<SourceEntry>,
) -> Result<(), Error> {
    let dir = root.join(rel);
    let walk_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Walk { path, source }
    };
    let mut entries = fs::read_dir(&dir)
        .map_err(walk_err(&dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(walk_err(&dir))?;
    entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for entry in entries {
        let rel_path = rel.join(entry.file_name());
        let path = entry.path();
        // symlink_metadata: symlinks are skipped, never followed.
        let meta = fs::symlink_metadata(&path).map_err(walk_err(&path))?;
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_file() {
            EntryKind::File
        } else {
            continue;
        };
        if !ignore.is_ignored(&rel_path, kind == EntryKind::Dir) {
            out.push(SourceEntry {
                name: rel_path.to_string_lossy().into_owned(),
                path: path.clone(),
                kind,
                mode: meta.mode() & MODE_MASK,
                size_bytes: if kind == EntryKind::File {
                    meta.len()
                } else {
                    0
                },
            });
        }
        if kind == EntryKind::Dir {
            walk_dir(root, &rel_path, ignore, out)?;
        }
    }
    Ok(())
}

/// Builds the gzip-compressed tarball of `source` into `out`, streaming, and returns its digests
/// and size. `out` is not flushed beyond the gzip trailer; callers owning a file sync it.
///
/// # Errors
/// See [`walk`]; [`Error::ReadEntry`] when a file cannot be read (or changed size while
/// being read); [`Error::Write`] when `out` fails.
pub fn build<W: Write>(source: &Path, ignore: &Matcher, out: W) -> Result<Summary, Error> {
    let entries = walk(source, ignore)?;
    write_entries(&entries, out)
}

/// Builds the tarball of `source` into the file `dest` (mode 0640), written to a temporary file
/// in `dest`'s directory, synced and renamed into place, as `flux build artifact` does.
///
/// # Errors
/// As [`build`]; [`Error::WriteFile`] when the temporary file cannot be created, synced or
/// renamed to `dest`.
pub fn build_file(source: &Path, ignore: &Matcher, dest: &Path) -> Result<Summary, Error> {
    let entries = walk(source, ignore)?;
    let file_err = |source| Error::WriteFile {
        path: dest.into(),
        source,
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".artifact-")
        .suffix(".tmp")
        .tempfile_in(parent)
        .map_err(file_err)?;
    let summary = {
        let mut writer = io::BufWriter::with_capacity(256 * 1024, tmp.as_file());
        let summary = write_entries(&entries, &mut writer)?;
        writer.flush().map_err(file_err)?;
        summary
    };
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(OUTPUT_FILE_MODE))
        .map_err(file_err)?;
    tmp.as_file().sync_all().map_err(file_err)?;
    tmp.persist(dest).map_err(|e| file_err(e.error))?;
    Ok(summary)
}

fn write_entries<W: Write>(entries: &[SourceEntry], out: W) -> Result<Summary, Error> {
    let gz_out = HashingWriter::new(out);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_GZIP_THREADS);
    let gz = ParallelGzWriter::new(gz_out, threads);
    let tar_out = HashingWriter::new(gz);
    let mut builder = tar::Builder::new(tar_out);
    let mut buf = vec![0u8; 128 * 1024];
    for entry in entries {
        append_entry(&mut builder, entry, &mut buf)?;
    }
    builder.finish().map_err(Error::Write)?;
    let tar_out = builder.into_inner().map_err(Error::Write)?;
    let (gz, tar_digest, _) = tar_out.finish();
    let gz_out = gz.finish().map_err(Error::Write)?;
    let (mut out, digest, size_bytes) = gz_out.finish();
    out.flush().map_err(Error::Write)?;
    Ok(Summary {
        digest,
        size_bytes,
        tar_digest,
        entries: entries.len() as u64,
    })
}

/// A USTAR header normalised as Go's `archive/tar` writes Flux's entries.
fn header_for(entry: &SourceEntry) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_mode(entry.mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(entry.size_bytes);
    h.set_entry_type(match entry.kind {
        EntryKind::Dir => tar::EntryType::Directory,
        EntryKind::File => tar::EntryType::Regular,
    });
    // Both only fail for GNU/old headers; this is a USTAR header.
    let _ = h.set_device_major(0);
    let _ = h.set_device_minor(0);
    h
}

/// Go writes the checksum as six octal digits, NUL, space; tar-rs writes seven digits and NUL.
fn set_go_checksum(h: &mut tar::Header) {
    h.set_cksum();
    let sum: u32 = h
        .as_bytes()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    let field = format!("{sum:06o}\0 ");
    h.as_mut_bytes()[148..156].copy_from_slice(field.as_bytes());
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    entry: &SourceEntry,
    buf: &mut [u8],
) -> Result<(), Error> {
    let mut header = header_for(entry);
    let name = entry.name.as_bytes();
    if header.set_path(&entry.name).is_err() || *header.path_bytes() != *name {
        // Too long for USTAR name/prefix: a PAX extended header carries the full path.
        let mut pax = header_for(entry);
        let record = pax_record("path", name);
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_mode(0o644);
        let base = entry.name.rsplit('/').next().unwrap_or("");
        let pax_name = format!("PaxHeaders.0/{base}");
        let pax_name = truncate_utf8(&pax_name, 100);
        pax.as_old_mut().name = [0; 100];
        pax.as_old_mut().name[..pax_name.len()].copy_from_slice(pax_name.as_bytes());
        set_go_checksum(&mut pax);
        builder
            .append(&pax, record.as_slice())
            .map_err(Error::Write)?;
        let short = truncate_utf8(&entry.name, 100);
        header.as_old_mut().name = [0; 100];
        header.as_old_mut().name[..short.len()].copy_from_slice(short.as_bytes());
        if let Some(ustar) = header.as_ustar_mut() {
            ustar.prefix = [0; 155];
        }
    }
    set_go_checksum(&mut header);
    match entry.kind {
        EntryKind::Dir => builder.append(&header, io::empty()).map_err(Error::Write),
        EntryKind::File => {
            let read_err = |source| Error::ReadEntry {
                path: entry.path.clone(),
                source,
            };
            let file = File::open(&entry.path).map_err(read_err)?;
            let mut reader = ExactReader {
                inner: file,
                remaining: entry.size_bytes,
                buf_hint: buf.len(),
            };
            builder.append(&header, &mut reader).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::InvalidData
                {
                    Error::ReadEntry {
                        path: entry.path.clone(),
                        source: e,
                    }
                } else {
                    Error::Write(e)
                }
            })
        }
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A PAX record `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // space, '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Reads exactly `remaining` bytes: a file that shrank is an error, a file that grew is cut at
/// the size recorded in the header (the archive stays well-formed).
struct ExactReader {
    inner: File,
    remaining: u64,
    buf_hint: usize,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.buf_hint)
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A writer that hashes (sha256) and counts what passes through it.
#[derive(Debug)]
pub(crate) struct HashingWriter<W> {
    inner: W,
    digester: Digester,
    written: u64,
}

impl<W> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            digester: Digester::new(),
            written: 0,
        }
    }

    /// The inner writer, the digest and the byte count.
    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.digester.finish(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
