//! Safe streaming extraction of a tar or tar+gzip stream into a directory.
//!
//! Follows the rules of Flux's `fluxcd/pkg/tar.Untar` (reference `flux-cli-artifacts.md` §2.8)
//! and does better where Flux has no protection:
//! - names that are empty, absolute, contain `\` or a `..` component are refused
//!   ([`Error::InvalidEntryName`]);
//! - symlinks, hardlinks, character/block devices and FIFOs are skipped (listed in
//!   [`Summary::skipped`]), so nothing can later be written through a link;
//! - no write ever follows a symlink: every parent of a written path is checked to be a real
//!   directory inside the target, and an existing symlink at the destination is replaced;
//! - [`Limits`] bound the total bytes written and the number of entries, checked against the
//!   header *before* any data of the entry is written (a gzip bomb stops at its first large
//!   entry);
//! - gzip or plain tar is detected from the first two bytes (`1f 8b`).
//!
//! Directories get their archived permissions OR'ed with 0700, files their permission bits
//! (setuid/setgid/sticky dropped) OR'ed with 0600; times are not restored.
//!
//! After an error the target directory may hold part of the content (never anything outside
//! it): extract into a fresh temporary directory and discard it on error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Default [`Limits::max_size_bytes`]: 1 GiB.
pub const DEFAULT_MAX_SIZE_BYTES: u64 = 1 << 30;
/// Default [`Limits::max_files`]: 100 000 entries.
pub const DEFAULT_MAX_FILES: u64 = 100_000;

/// Bounds on what an extraction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum total size of extracted file contents in bytes; default 1 GiB
    /// ([`DEFAULT_MAX_SIZE_BYTES`]).
    pub max_size_bytes: u64,
    /// Maximum number of entries (files, directories and skipped entries); default 100 000
    /// ([`DEFAULT_MAX_FILES`]).
    pub max_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// Errors extracting an archive. Every variant names the offending entry where there is one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The entry name is unsafe or empty.
    #[error("tar contained invalid name {entry:?}: {reason}")]
    InvalidEntryName {
        /// The entry name as stored (lossy UTF-8).
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Extracting the entry would exceed [`Limits::max_size_bytes`].
    #[error("extracting {entry:?} exceeds the size limit of {limit_bytes} bytes")]
    SizeLimit {
        /// The entry that crossed the limit.
        entry: String,
        /// The configured limit in bytes.
        limit_bytes: u64,
    },
    /// The archive holds more entries than [`Limits::max_files`].
    #[error("extracting {entry:?} exceeds the limit of {limit} files")]
    FileCountLimit {
        /// The first entry past the limit.
        entry: String,
        /// The configured limit.
        limit: u64,
    },
    /// An entry's type is not supported (e.g. GNU sparse files).
    #[error("tar entry {entry:?} has unsupported type {kind:?}")]
    UnsupportedEntry {
        /// The entry name.
        entry: String,
        /// The tar type flag.
        kind: char,
    },
    /// A path below the target is a symlink or not a directory where a directory is needed.
    #[error("refusing to write {entry:?}: {path} is not a directory inside the target")]
    UnsafeParent {
        /// The entry name.
        entry: String,
        /// The offending path on disk.
        path: PathBuf,
    },
    /// Reading the archive stream failed (corrupt gzip or tar, truncated data, IO error).
    #[error("reading the archive{}", entry.as_ref().map(|e| format!(" at entry {e:?}")).unwrap_or_default())]
    Read {
        /// The entry being read, if any.
        entry: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Creating or writing a file or directory in the target failed.
    #[error("writing {path}")]
    Write {
        /// The path on disk.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: io::Error,
    },
}

/// What an extraction wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular files written.
    pub files: u64,
    /// Directories created (excluding the target itself).
    pub dirs: u64,
    /// Total bytes of file content written.
    pub size_bytes: u64,
    /// Names of skipped entries (symlinks, hardlinks, devices, FIFOs), in archive order.
    pub skipped: Vec<String>,
}

/// Whether the stream starts with the gzip magic `1f 8b`.
fn is_gzip<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    let buf = reader.fill_buf()?;
    Ok(buf.len() >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
}

/// Wraps `reader` in a gzip decoder when it starts with the gzip magic, else returns it as is.
///
/// # Errors
/// The IO error of the first read.
pub fn decompressed<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(128 * 1024, reader);
    Ok(if is_gzip(&mut reader)? {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Extracts the tar or tar+gzip stream `reader` into `dest` (created with mode 0700 if missing),
/// streaming, under `limits`. See the module docs for the rules.
///
/// # Errors
/// [`Error::InvalidEntryName`], [`Error::SizeLimit`], [`Error::FileCountLimit`],
/// [`Error::UnsupportedEntry`], [`Error::UnsafeParent`] for refused content; [`Error::Read`]
/// for a corrupt or truncated stream; [`Error::Write`] when the target cannot be written.
pub fn extract<R: Read>(reader: R, dest: &Path, limits: &Limits) -> Result<Summary, Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dest)
        .map_err(|source| Error::Write {
            path: dest.into(),
            source,
        })?;
    let dest = dest.canonicalize().map_err(|source| Error::Write {
        path: dest.into(),
        source,
    })?;
    let stream = decompressed(reader).map_err(|source| Error::Read {
        entry: None,
        source,
    })?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(|source| Error::Read {
        entry: None,
        source,
    })?;
    let mut summary = Summary::default();
    let mut count = 0u64;
    let mut last_name: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|source| Error::Read {
            entry: last_name.clone(),
            source,
        })?;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        last_name = Some(name.clone());
        count += 1;
        if count > limits.max_files {
            return Err(Error::FileCountLimit {
                entry: name,
                limit: limits.max_files,
            });
        }
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue; // PAX global header (e.g. `git archive`'s commit id): metadata only
        }
        let rel = safe_relative_path(&raw_name, &name)?;
        match kind {
            tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo => {
                summary.skipped.push(name);
                continue;
            }
            tar::EntryType::Directory => {
                if rel.as_os_str().is_empty() {
                    continue;
                }
                let mode = entry.header().mode().unwrap_or(0o755) & 0o777 | 0o700;
                let target = prepare_parents(&dest, &rel, &name)?;
                create_dir(&target, mode, &name)?;
                summary.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if rel.as_os_str().is_empty() {
                    return Err(Error::InvalidEntryName {
                        entry: name,
                        reason: "a file cannot be the root",
                    });
                }
                let size = entry.header().size().map_err(|source| Error::Read {
                    entry: Some(name.clone()),
                    source,
                })?;
                if summary.size_bytes.saturating_add(size) > limits.max_size_bytes {
                    return Err(Error::SizeLimit {
                        entry: name,
                        limit_bytes: limits.max_size_bytes,
                    });
                }
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777 | 0o600;
                let target = prepare_parents(&dest, &rel, &name)?;
                let written = write_file(&mut entry, &target, mode, &name)?;
                summary.size_bytes += written;
                if summary.size_bytes > limits.max_size_bytes {
                    return Err(Error::SizeLimit {
                        entry: name,
                        limit_bytes: limits.max_size_bytes,
                    });
                }
                summary.files += 1;
            }
            other => {
                return Err(Error::UnsupportedEntry {
                    entry: name,
                    kind: char::from(other.as_byte()),
                });
            }
        }
    }
    Ok(summary)
}

/// Validates an entry name and returns it as a relative path without `.` components
/// (empty for the root).
pub(crate) fn safe_relative_path(raw: &[u8], name: &str) -> Result<PathBuf, Error> {
    let invalid = |reason| Error::InvalidEntryName {
        entry: name.to_owned(),
        reason,
    };
    if raw.is_empty() {
        return Err(invalid("empty name"));
    }
    if raw.starts_with(b"/") {
        return Err(invalid("absolute path"));
    }
    if raw.contains(&b'\\') {
        return Err(invalid("backslash in name"));
    }
    if raw.contains(&0) {
        return Err(invalid("NUL in name"));
    }
    let mut rel = PathBuf::new();
    for component in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("parent directory (..) component")),
            Component::RootDir | Component::Prefix(_) => return Err(invalid("absolute path")),
        }
    }
    Ok(rel)
}

/// Ensures every parent of `rel` below `dest` is a real directory (creating missing ones with
/// mode 0700, never following a symlink) and returns the full target path.
fn prepare_parents(dest: &Path, rel: &Path, name: &str) -> Result<PathBuf, Error> {
    let mut current = dest.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for component in parents {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::UnsafeParent {
                    entry: name.to_owned(),
                    path: current,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&current)
                    .map_err(|source| Error::Write {
                        path: current.clone(),
                        source,
                    })?;
            }
            Err(source) => {
                return Err(Error::Write {
                    path: current,
                    source,
                });
            }
        }
    }
    Ok(dest.join(rel))
}

fn create_dir(target: &Path, mode: u32, name: &str) -> Result<(), Error> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => {}
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::UnsafeParent {
                entry: name.to_owned(),
                path: target.into(),
            });
        }
        Ok(_) => {
            fs::remove_file(target).map_err(|source| Error::Write {
                path: target.into(),
                source,
            })?;
            fs::DirBuilder::new()
                .mode(mode)
                .create(target)
                .map_err(|source| Error::Write {
                    path: target.into(),
                    source,
                })?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(mode)
                .create(target)
                .map_err(|source| Error::Write {
                    path: target.into(),
                    source,
                })?;
        }
        Err(source) => {
            return Err(Error::Write {
                path: target.into(),
                source,
            });
        }
    }
    fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(|source| Error::Write {
        path: target.into(),
        source,
    })
}

/// Writes the entry's data to `target`, replacing an existing file or symlink (never writing
/// through it). Returns the bytes written.
fn write_file<R: Read>(entry: &mut R, target: &Path, mode: u32, name: &str) -> Result<u64, Error> {
    let write_err = |source| Error::Write {
        path: target.into(),
        source,
    };
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::UnsafeParent {
                entry: name.to_owned(),
                path: target.into(),
            });
        }
        Ok(_) => fs::remove_file(target).map_err(write_err)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(write_err(source)),
    }
    // create_new: fails rather than following a symlink created in between.
    let file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(target)
        .map_err(write_err)?;
    let mut out = io::BufWriter::with_capacity(128 * 1024, file);
    let written = io::copy(entry, &mut out).map_err(|source| match source.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            Error::Read {
                entry: Some(name.to_owned()),
                source,
            }
        }
        _ => Error::Write {
            path: target.into(),
            source,
        },
    })?;
    out.flush().map_err(write_err)?;
    let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(write_err)?;
    Ok(written)
}

#[cfg(test)]
mod tests;
