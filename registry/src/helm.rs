//! Helm charts as archives and in OCI registries (Helm's OCI format, helm `pkg/registry`,
//! `pkg/chart/loader`, Flux's `internal/helm/chart`): packaging a chart directory as
//! `helm package` does ([`package`]), reading a chart archive safely under Flux's file size
//! limit ([`inspect`]), merging values files and re-packaging with a new version as Flux's
//! chart builder does ([`merge_values`], [`repackage`]), and the tag spelling of versions
//! ([`tag_of_version`], [`version_of_tag`]). Pushing to a registry is in [`oci`].
//!
//! A chart archive is a gzipped tar whose entries all sit under one directory named after the
//! chart, `Chart.yaml` first. The archives written here are deterministic (mode bits only,
//! uid/gid 0, mtime 0, sorted paths).

pub mod oci;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// Entries a chart archive may hold before it is refused (a bound on work, not a Helm rule).
pub const MAX_CHART_ENTRIES: u64 = 100_000;

/// Flux's default `--helm-chart-max-size`: 10 MiB for a chart archive.
pub const DEFAULT_MAX_CHART_BYTES: u64 = 10 << 20;

/// Flux's default `--helm-chart-file-max-size`: 5 MiB for one file inside a chart.
pub const DEFAULT_MAX_CHART_FILE_BYTES: u64 = 5 << 20;

/// Why a chart could not be packaged, read or re-packaged. Each variant names the file or
/// entry; the cause is in `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file of the chart directory failed.
    #[error("reading {path}")]
    ReadFile {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// The chart directory has a symbolic link (Helm refuses them in packages).
    #[error("{path} is a symbolic link; charts are packaged without links")]
    Symlink {
        /// The link.
        path: String,
    },
    /// `Chart.yaml` is missing from the directory or the archive.
    #[error("no Chart.yaml found in {location}")]
    NoChartYaml {
        /// The directory or archive.
        location: String,
    },
    /// `Chart.yaml` does not parse or lacks `name`/`version`.
    #[error("invalid Chart.yaml: {reason}")]
    InvalidChartYaml {
        /// What is wrong.
        reason: String,
    },
    /// `.helmignore` does not parse.
    #[error("invalid .helmignore in {path}")]
    Ignore {
        /// The chart directory.
        path: String,
        /// The pattern error.
        #[source]
        source: ignore::Error,
    },
    /// Reading the archive failed (gzip, tar).
    #[error("reading the chart archive")]
    ReadArchive(#[source] io::Error),
    /// An entry is outside the chart directory, absolute, or not a file or directory.
    #[error("illegal entry {entry} in the chart archive: {reason}")]
    IllegalEntry {
        /// The entry path.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// A file in the archive is over the per-file limit (`--helm-chart-file-max-size`).
    #[error(
        "file {entry} is {size_bytes} bytes, over the chart file size limit of {limit_bytes} bytes"
    )]
    FileTooLarge {
        /// The entry path.
        entry: String,
        /// Its size.
        size_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// The archive has more than [`MAX_CHART_ENTRIES`] entries.
    #[error("the chart archive has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// A values file named by the caller is not in the chart.
    #[error("no values file found at path '{path}'")]
    MissingValuesFile {
        /// The path relative to the chart root.
        path: String,
    },
    /// A values file is not a YAML mapping.
    #[error("failed to parse values file '{path}': {reason}")]
    InvalidValuesFile {
        /// The path relative to the chart root.
        path: String,
        /// The parse error.
        reason: String,
    },
    /// Writing the archive failed.
    #[error("writing the chart archive")]
    WriteArchive(#[source] io::Error),
}

/// The metadata of a chart (`Chart.yaml`): name and version, and the whole document.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartMetadata {
    /// `name`.
    pub name: String,
    /// `version` (SemVer 2, possibly with `+build` metadata).
    pub version: String,
    /// Every field of `Chart.yaml`.
    pub document: Mapping,
}

impl ChartMetadata {
    /// Parses `Chart.yaml`.
    ///
    /// # Errors
    /// [`Error::InvalidChartYaml`] when it is not a mapping or `name`/`version` are missing.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidChartYaml { reason };
        let document: Mapping =
            serde_yaml::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let field = |k: &str| match document.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(invalid(format!("'{k}' is required"))),
        };
        let (name, version) = (field("name")?, field("version")?);
        Ok(Self {
            name,
            version,
            document,
        })
    }

    /// `Chart.yaml` with `version` replaced.
    pub fn with_version(&self, version: &str) -> Self {
        let mut document = self.document.clone();
        document.insert("version".into(), Value::String(version.to_owned()));
        Self {
            name: self.name.clone(),
            version: version.to_owned(),
            document,
        }
    }

    /// The document as YAML (`Chart.yaml`).
    pub fn to_yaml(&self) -> Vec<u8> {
        serde_yaml::to_string(&self.document)
            .expect("YAML mappings serialise")
            .into_bytes()
    }

    /// The document as JSON: Helm's OCI config blob.
    ///
    /// # Errors
    /// [`Error::InvalidChartYaml`] when a key is not a string.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self.document).map_err(|e| Error::InvalidChartYaml {
            reason: e.to_string(),
        })
    }

    /// A text field of `Chart.yaml` (`description`, `home`, …).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.document.get(key).and_then(Value::as_str)
    }
}

/// The tag a version is pushed under: `+` is not allowed in OCI tags, so Helm writes `_`.
pub fn tag_of_version(version: &str) -> String {
    version.replace('+', "_")
}

/// The version a tag stands for (Helm reads `_` as `+`).
pub fn version_of_tag(tag: &str) -> String {
    tag.replace('_', "+")
}

/// Packages the chart directory `dir` into `out` as `helm package` does: every file under
/// `<name>/` (the name from `Chart.yaml`), `Chart.yaml` first, the rest sorted, files matched by
/// `.helmignore` (gitignore syntax) left out. Blocking.
///
/// # Errors
/// [`Error::NoChartYaml`], [`Error::InvalidChartYaml`], [`Error::Ignore`], [`Error::ReadFile`],
/// [`Error::Symlink`], [`Error::WriteArchive`].
pub fn package<W: Write>(dir: &Path, out: W) -> Result<ChartMetadata, Error> {
    let chart_yaml = dir.join("Chart.yaml");
    let bytes = std::fs::read(&chart_yaml).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NoChartYaml {
            location: dir.display().to_string(),
        },
        _ => read_error(&chart_yaml, e),
    })?;
    let metadata = ChartMetadata::parse(&bytes)?;
    let ignore = helmignore(dir)?;
    let mut files = Vec::new();
    collect_files(dir, dir, &ignore, &mut files)?;
    files.sort();
    let mut writer = ChartWriter::new(out);
    writer.file(&format!("{}/Chart.yaml", metadata.name), 0o644, &bytes[..])?;
    for relative in files
        .iter()
        .filter(|f| f.as_path() != Path::new("Chart.yaml"))
    {
        let path = dir.join(relative);
        let file = std::fs::File::open(&path).map_err(|e| read_error(&path, e))?;
        let mode = mode_of(&file.metadata().map_err(|e| read_error(&path, e))?);
        let name = format!("{}/{}", metadata.name, relative.display());
        writer.file(&name, mode, file)?;
    }
    writer.finish()?;
    Ok(metadata)
}

fn read_error(path: &Path, source: io::Error) -> Error {
    Error::ReadFile {
        path: path.display().to_string(),
        source,
    }
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

fn helmignore(dir: &Path) -> Result<ignore::gitignore::Gitignore, Error> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
    let file = dir.join(".helmignore");
    if file.is_file()
        && let Some(e) = builder.add(&file)
    {
        return Err(Error::Ignore {
            path: dir.display().to_string(),
            source: e,
        });
    }
    builder.build().map_err(|source| Error::Ignore {
        path: dir.display().to_string(),
        source,
    })
}

fn collect_files(
    root: &Path,
    dir: &Path,
    ignore: &ignore::gitignore::Gitignore,
    out: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let entry = entry.map_err(|e| read_error(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| read_error(&path, e))?;
        if ignore.matched(&path, kind.is_dir()).is_ignore() {
            continue;
        }
        if kind.is_symlink() {
            return Err(Error::Symlink {
                path: path.display().to_string(),
            });
        }
        if kind.is_dir() {
            collect_files(root, &path, ignore, out)?;
        } else if kind.is_file() {
            out.push(
                path.strip_prefix(root)
                    .expect("under the root")
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

/// A deterministic tar+gzip writer of chart files.
struct ChartWriter<W: Write> {
    tar: tar::Builder<flate2::write::GzEncoder<W>>,
}

impl<W: Write> ChartWriter<W> {
    fn new(out: W) -> Self {
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        Self {
            tar: tar::Builder::new(gz),
        }
    }

    fn file(&mut self, name: &str, mode: u32, data: impl Read) -> Result<(), Error> {
        self.sized(name, mode, None, data)
    }

    fn sized(
        &mut self,
        name: &str,
        mode: u32,
        size: Option<u64>,
        mut data: impl Read,
    ) -> Result<(), Error> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        match size {
            Some(size) => {
                header.set_size(size);
                self.tar
                    .append_data(&mut header, name, data)
                    .map_err(Error::WriteArchive)
            }
            None => {
                let mut bytes = Vec::new();
                data.read_to_end(&mut bytes).map_err(Error::WriteArchive)?;
                header.set_size(bytes.len() as u64);
                self.tar
                    .append_data(&mut header, name, bytes.as_slice())
                    .map_err(Error::WriteArchive)
            }
        }
    }

    fn finish(self) -> Result<W, Error> {
        let gz = self.tar.into_inner().map_err(Error::WriteArchive)?;
        gz.finish().map_err(Error::WriteArchive)
    }
}

/// What [`inspect`] found in a chart archive.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartArchive {
    /// The directory every entry sits under (the chart name, as packaged).
    pub root: String,
    /// `Chart.yaml`.
    pub metadata: ChartMetadata,
    /// The files asked for that exist, by path relative to the chart root.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Reads the chart archive `reader` (tar+gzip) as Helm's loader does, streaming: every entry
/// must sit under one top directory, with no `..` or absolute path and no link; every file is
/// at most `max_file_bytes` (Flux's `--helm-chart-file-max-size`). Returns `Chart.yaml` and the
/// `wanted` files (paths relative to the chart root) that exist. Blocking.
///
/// # Errors
/// [`Error::ReadArchive`], [`Error::IllegalEntry`], [`Error::FileTooLarge`],
/// [`Error::TooManyEntries`], [`Error::NoChartYaml`], [`Error::InvalidChartYaml`].
pub fn inspect(
    reader: impl Read,
    max_file_bytes: u64,
    wanted: &[String],
) -> Result<ChartArchive, Error> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut root: Option<String> = None;
    let mut chart_yaml = None;
    let mut files = BTreeMap::new();
    for (count, entry) in archive.entries().map_err(Error::ReadArchive)?.enumerate() {
        if count as u64 >= MAX_CHART_ENTRIES {
            return Err(Error::TooManyEntries {
                limit: MAX_CHART_ENTRIES,
            });
        }
        let mut entry = entry.map_err(Error::ReadArchive)?;
        let Some((top, relative)) = checked_entry(&entry, &mut root, max_file_bytes)? else {
            continue;
        };
        debug_assert_eq!(Some(&top), root.as_ref());
        let wanted_here = relative == "Chart.yaml" || wanted.contains(&relative);
        if wanted_here {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(Error::ReadArchive)?;
            if relative == "Chart.yaml" {
                chart_yaml = Some(bytes.clone());
            }
            files.insert(relative, bytes);
        }
    }
    let root = root.unwrap_or_default();
    let bytes = chart_yaml.ok_or_else(|| Error::NoChartYaml {
        location: "the chart archive".to_owned(),
    })?;
    if !wanted.iter().any(|w| w == "Chart.yaml") {
        files.remove("Chart.yaml");
    }
    Ok(ChartArchive {
        root,
        metadata: ChartMetadata::parse(&bytes)?,
        files,
    })
}

/// Checks one entry; returns its top directory and its path below it, or `None` for a
/// directory entry (and for the pax/GNU metadata entries tar handles itself).
fn checked_entry<R: Read>(
    entry: &tar::Entry<'_, R>,
    root: &mut Option<String>,
    max_file_bytes: u64,
) -> Result<Option<(String, String)>, Error> {
    let path = entry.path().map_err(Error::ReadArchive)?.into_owned();
    let name = path.display().to_string();
    let illegal = |reason| Error::IllegalEntry {
        entry: name.clone(),
        reason,
    };
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err(illegal("absolute or parent path")),
        }
    }
    let kind = entry.header().entry_type();
    if kind.is_dir() {
        return Ok(None);
    }
    if !kind.is_file() {
        return Err(illegal("not a regular file"));
    }
    if parts.len() < 2 {
        return Err(illegal("outside the chart directory"));
    }
    let top = parts.remove(0);
    match root {
        Some(r) if *r != top => return Err(illegal("outside the chart directory")),
        Some(_) => {}
        None => *root = Some(top.clone()),
    }
    let size = entry.header().size().map_err(Error::ReadArchive)?;
    if size > max_file_bytes {
        return Err(Error::FileTooLarge {
            entry: name,
            size_bytes: size,
            limit_bytes: max_file_bytes,
        });
    }
    Ok(Some((top, parts.join("/"))))
}

/// Merges values files in order as Flux does (`transform.MergeMaps`): maps merge key by key,
/// recursively; any other value of a later file replaces the earlier one. `files` are
/// `(path, YAML)` pairs; the result is YAML.
///
/// # Errors
/// [`Error::InvalidValuesFile`] when a file is not a YAML mapping (an empty file is `{}`).
pub fn merge_values(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, Error> {
    let mut merged = Mapping::new();
    for (path, bytes) in files {
        let invalid = |reason: String| Error::InvalidValuesFile {
            path: path.clone(),
            reason,
        };
        let value: Value = serde_yaml::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        match value {
            Value::Null => {}
            Value::Mapping(m) => merge_into(&mut merged, m),
            _ => return Err(invalid("not a YAML mapping".to_owned())),
        }
    }
    Ok(serde_yaml::to_string(&merged)
        .expect("YAML mappings serialise")
        .into_bytes())
}

fn merge_into(base: &mut Mapping, over: Mapping) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge_into(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Writes the chart archive `reader` again into `out` as Flux's builder packages a chart:
/// `Chart.yaml` replaced by `metadata` (first), `values.yaml` replaced by `values` when given,
/// every other file copied (streamed) under `root`, deterministically. The archive must have
/// passed [`inspect`] with the same limit. Blocking.
///
/// # Errors
/// As [`inspect`], plus [`Error::WriteArchive`].
pub fn repackage<W: Write>(
    reader: impl Read,
    out: W,
    metadata: &ChartMetadata,
    values: Option<&[u8]>,
    max_file_bytes: u64,
) -> Result<W, Error> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut writer = ChartWriter::new(out);
    let mut root = None;
    let mut written_root = None::<String>;
    for entry in archive.entries().map_err(Error::ReadArchive)? {
        let entry = entry.map_err(Error::ReadArchive)?;
        let Some((top, relative)) = checked_entry(&entry, &mut root, max_file_bytes)? else {
            continue;
        };
        if written_root.is_none() {
            writer.file(
                &format!("{top}/Chart.yaml"),
                0o644,
                metadata.to_yaml().as_slice(),
            )?;
            if let Some(values) = values {
                writer.file(&format!("{top}/values.yaml"), 0o644, values)?;
            }
            written_root = Some(top.clone());
        }
        if relative == "Chart.yaml" || (values.is_some() && relative == "values.yaml") {
            continue;
        }
        let mode = match entry.header().mode() {
            Ok(m) if m & 0o111 != 0 => 0o755,
            _ => 0o644,
        };
        let size = entry.header().size().map_err(Error::ReadArchive)?;
        writer.sized(&format!("{top}/{relative}"), mode, Some(size), entry)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests;
