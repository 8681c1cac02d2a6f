//! Staging the `--path` of `push artifact` and `build artifact` before it is archived, as
//! Flux's CLI does (`fluxcd/flux2: cmd/flux/build_artifact.go`): `--path -` turns stdin into a
//! file, and `--resolve-symlinks` copies the tree with its symlinks followed.
//!
//! Staged copies live in a temporary directory that is removed when the [`Staged`] value is
//! dropped.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The file name stdin is saved under (`--path -`). Flux uses a random `<n>.yaml`; a fixed
/// name makes the artifact's content, and so its digest, depend on the input only.
pub(crate) const STDIN_FILE_NAME: &str = "main.yaml";

/// A path ready to archive, and the temporary directory holding it when it was staged.
#[derive(Debug)]
pub(crate) struct Staged {
    path: PathBuf,
    _scratch: Vec<tempfile::TempDir>,
}

impl Staged {
    /// The path to archive: the user's own, or a staged copy.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Stages `path` for archiving: `-` reads `stdin` into [`STDIN_FILE_NAME`]; with
/// `resolve_symlinks` the result is copied with its symlinks followed. Otherwise the path is
/// used as it is. The path (or stdin's file) must exist, else Flux's `invalid path` error.
///
/// # Errors
/// Reading stdin or writing the staged copy; `invalid path ...` when `path` is empty or
/// missing; `resolving symlinks failed: ...` for a dangling link.
pub(crate) fn stage(
    path: &Path,
    resolve_symlinks: bool,
    stdin: impl Read,
) -> anyhow::Result<Staged> {
    let mut scratch = Vec::new();
    let mut path = path.to_path_buf();
    if path.as_os_str() == "-" {
        let dir = temp_dir()?;
        path = save_reader(stdin, dir.path())?;
        scratch.push(dir);
    }
    crate::commands::check_source_path(&path)?;
    if resolve_symlinks {
        let dir = temp_dir()?;
        path = resolve(&path, dir.path()).context("resolving symlinks failed")?;
        scratch.push(dir);
    }
    Ok(Staged {
        path,
        _scratch: scratch,
    })
}

fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("sourcectl-stage-")
        .tempdir()
        .context("creating a temporary directory")
}

/// Reads `reader` to its end, trims trailing `\r` and `\n` (Flux's `saveReaderToFile`), and
/// writes it to `<dir>/main.yaml`. Returns that path.
fn save_reader(mut reader: impl Read, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut content = Vec::new();
    reader
        .read_to_end(&mut content)
        .context("reading the manifests from stdin")?;
    let end = content
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    content.truncate(end);
    let path = dir.join(STDIN_FILE_NAME);
    std::fs::write(&path, &content).context("error writing stdin to file")?;
    Ok(path)
}

/// Copies `source` (a file or a directory) into `scratch`, following symlinks, and returns the
/// copy's path: for a file `<scratch>/<name>`, for a directory `scratch` itself. A directory
/// already being copied higher up the same branch (a symlink cycle) is skipped; files that are
/// neither regular nor directories are left out, as Flux does.
fn resolve(source: &Path, scratch: &Path) -> anyhow::Result<PathBuf> {
    let meta = std::fs::metadata(source).with_context(|| format!("{}", source.display()))?;
    if !meta.is_dir() {
        let name = source
            .file_name()
            .with_context(|| format!("{} has no file name", source.display()))?;
        let target = scratch.join(name);
        copy_file(source, &target)?;
        return Ok(target);
    }
    copy_dir(source, scratch, &mut HashSet::new())?;
    Ok(scratch.to_path_buf())
}

fn copy_dir(source: &Path, target: &Path, branch: &mut HashSet<PathBuf>) -> anyhow::Result<()> {
    let real = std::fs::canonicalize(source)
        .with_context(|| format!("resolving symlink {}", source.display()))?;
    if !branch.insert(real.clone()) {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(source)
        .with_context(|| format!("reading {}", source.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", source.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let from = entry.path();
        let to = target.join(entry.file_name());
        let meta = match std::fs::metadata(&from) {
            Ok(meta) => meta,
            Err(e) => bail!("resolving symlink {}: {e}", from.display()),
        };
        if meta.is_dir() {
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
            copy_dir(&from, &to, branch)?;
        } else if meta.is_file() {
            copy_file(&from, &to)?;
        }
    }
    branch.remove(&real);
    Ok(())
}

/// Copies the content and permission bits of `from` (symlinks followed) to `to`.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn stdin_becomes_main_yaml_without_trailing_newlines() {
        let staged = stage(Path::new("-"), false, &b"a: b\r\n\n---\nc: d\n\r\n\n"[..]).unwrap();
        assert_eq!(staged.path().file_name().unwrap(), STDIN_FILE_NAME);
        assert_eq!(
            std::fs::read_to_string(staged.path()).unwrap(),
            "a: b\r\n\n---\nc: d"
        );
        let dir = staged.path().parent().unwrap().to_path_buf();
        drop(staged);
        assert!(!dir.exists(), "the staged copy is removed on drop");
    }

    #[test]
    fn symlinks_are_followed_and_cycles_broken() {
        let src = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shared.yaml"), "x: 1").unwrap();
        std::fs::create_dir(src.path().join("dir")).unwrap();
        std::fs::write(src.path().join("dir/own.yaml"), "y: 2").unwrap();
        symlink(
            outside.path().join("shared.yaml"),
            src.path().join("link.yaml"),
        )
        .unwrap();
        symlink(outside.path(), src.path().join("linked-dir")).unwrap();
        symlink(src.path(), src.path().join("dir/cycle")).unwrap();
        let staged = stage(src.path(), true, std::io::empty()).unwrap();
        let root = staged.path();
        assert_eq!(std::fs::read(root.join("link.yaml")).unwrap(), b"x: 1");
        assert!(!root.join("link.yaml").is_symlink());
        assert_eq!(
            std::fs::read(root.join("linked-dir/shared.yaml")).unwrap(),
            b"x: 1"
        );
        assert_eq!(std::fs::read(root.join("dir/own.yaml")).unwrap(), b"y: 2");
        // The cycle back to the root is cut: an empty directory, not an endless copy.
        assert_eq!(
            std::fs::read_dir(root.join("dir/cycle")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_dangling_link_fails_with_flux_message() {
        let src = tempfile::tempdir().unwrap();
        symlink("/does/not/exist", src.path().join("bad")).unwrap();
        let err = stage(src.path(), true, std::io::empty()).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("resolving symlinks failed: resolving symlink"),
            "{err:#}"
        );
    }
}
