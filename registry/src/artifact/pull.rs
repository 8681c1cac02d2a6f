//! The one pull path of the project, behind `sourcectl pull`, `sourcectl diff` and the
//! server's reconcilers:
//!
//! 1. [`resolve`] a tag to a digest: `HEAD` first, `GET` when the `HEAD` fails in any way (as
//!    Flux's go-containerregistry `remote.Head` → `remote.Get` fallback does);
//! 2. [`fetch`] the manifest and, for an image index, choose one entry by the [`Platform`]
//!    rule;
//! 3. select the layer by [`LayerSelector`] (default: the first layer, extracted);
//! 4. stream it, verified against its digest and size, under [`PullOptions::deadline`];
//! 5. extract it safely ([`crate::extract`]) into a directory ([`pull`]), copy it
//!    ([`pull_layer_to_file`]), or extract it and re-archive the tree deterministically
//!    ([`crate::archive`]) into a writer ([`pull_artifact`], what the reconcilers store).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::stream::{BlobReader, StreamFailure, pump};
use super::{
    ANNOTATION_REVISION, ANNOTATION_SOURCE, Error, annotation, join_error, with_default_tag,
};
use crate::client::{Client, ProgressFn};
use crate::digest::Digest;
use crate::extract::{self, Limits};
use crate::manifest::{self, Descriptor, ImageIndex, ImageManifest, Manifest};
use crate::reference::Reference;
use crate::sourceignore::Matcher;

/// The platform an image index is resolved for.
///
/// The rule, the same for every caller: an index with exactly one entry is followed to it
/// whatever its platform; an index with several entries is followed to the first entry whose
/// `os` and `architecture` equal this platform's (variant and OS version are not compared);
/// when none does, the pull fails with [`Error::NoPlatformMatch`] instead of guessing. The
/// default is `linux/amd64`, go-containerregistry's default platform, which Flux inherits
/// without saying so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

impl Platform {
    fn matches(&self, platform: Option<&manifest::Platform>) -> bool {
        platform.is_some_and(|p| p.os == self.os && p.architecture == self.architecture)
    }

    /// The index entry to follow, by the rule in the type's docs.
    fn choose<'a>(&self, index: &'a ImageIndex) -> Option<&'a Descriptor> {
        match index.manifests.as_slice() {
            [only] => Some(only),
            entries => entries.iter().find(|m| self.matches(m.platform.as_ref())),
        }
    }
}

/// What is done with the selected layer (Flux's `layerSelector.operation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayerOperation {
    /// Extract the tar or tar+gzip layer (and, in [`pull_artifact`], re-archive it).
    #[default]
    Extract,
    /// Keep the blob byte for byte (e.g. a Helm chart `.tgz`).
    Copy,
}

impl LayerOperation {
    /// `extract` or `copy`, as in the API; `None` for anything else.
    pub fn parse(operation: &str) -> Option<Self> {
        match operation {
            "extract" => Some(Self::Extract),
            "copy" => Some(Self::Copy),
            _ => None,
        }
    }

    /// The API spelling, `extract` or `copy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extract => "extract",
            Self::Copy => "copy",
        }
    }
}

/// Which layer to take and what to do with it (Flux's `layerSelector`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerSelector {
    /// The first layer with this media type; `None`: the first layer.
    pub media_type: Option<String>,
    /// Extract (default) or copy.
    pub operation: LayerOperation,
}

impl LayerSelector {
    /// The selected layer of `manifest`.
    ///
    /// # Errors
    /// [`Error::NoMatchingLayer`] or [`Error::NoLayers`], naming `reference`.
    pub fn select<'a>(
        &self,
        manifest: &'a ImageManifest,
        reference: &Reference,
    ) -> Result<&'a Descriptor, Error> {
        match self.media_type.as_deref().filter(|m| !m.is_empty()) {
            Some(wanted) => manifest
                .layers
                .iter()
                .find(|l| l.media_type == wanted)
                .ok_or_else(|| Error::NoMatchingLayer {
                    reference: reference.to_string(),
                    media_type: wanted.to_owned(),
                }),
            None => manifest.layers.first().ok_or_else(|| Error::NoLayers {
                reference: reference.to_string(),
            }),
        }
    }
}

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Bounds on the layer size and the extracted content (default 1 GiB, 100 000 entries).
    pub limits: Limits,
    /// Which layer, and extract or copy (default: the first layer, extracted).
    pub layer: LayerSelector,
    /// The platform an image index is resolved for (default `linux/amd64`, see [`Platform`]).
    pub platform: Platform,
    /// When the layer download must have finished; `None`: only the client's timeouts.
    pub deadline: Option<tokio::time::Instant>,
    /// Called with the bytes of the layer downloaded so far.
    pub progress: Option<ProgressFn>,
}

impl fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("limits", &self.limits)
            .field("layer", &self.layer)
            .field("platform", &self.platform)
            .field("deadline", &self.deadline)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A fetched image manifest and its selected layer: what [`fetch`] returns and the pull
/// functions consume.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The reference fetched (tag `latest` when it had neither tag nor digest).
    pub reference: Reference,
    /// The image manifest digest (after following an index).
    pub digest: Digest,
    /// The image manifest.
    pub manifest: ImageManifest,
    /// The selected layer.
    pub layer: Descriptor,
    /// The platform of the index entry followed; `None` when the reference named an image
    /// manifest.
    pub platform: Option<Platform>,
}

impl Fetched {
    pub(super) fn extract_error(&self) -> impl Fn(extract::Error) -> Error + Send + 'static {
        let (reference, digest) = (self.reference.to_string(), self.layer.digest.clone());
        move |source| Error::Extract {
            reference: reference.clone(),
            digest: digest.clone(),
            source,
        }
    }
}

/// The result of a [`pull`].
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled (tag `latest` when none was given).
    pub reference: Reference,
    /// The image manifest digest (after following an index).
    pub digest: Digest,
    /// `org.opencontainers.image.source`, if set.
    pub source: Option<String>,
    /// `org.opencontainers.image.revision`, if set.
    pub revision: Option<String>,
    /// All manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer extracted.
    pub layer: Descriptor,
    /// What was written.
    pub extracted: extract::Summary,
}

/// Resolves `reference` (tag `latest` when it has neither tag nor digest) to the descriptor of
/// its manifest: `HEAD` first, then `GET` when the `HEAD` fails in any way (an error status,
/// missing headers, a transport error), as Flux does.
///
/// # Errors
/// [`Error::GetManifest`] with the error of the `GET`.
pub async fn resolve(client: &Client, reference: &Reference) -> Result<Descriptor, Error> {
    let reference = with_default_tag(reference);
    match client.resolve(&reference).await {
        Ok(descriptor) => Ok(descriptor),
        // An error status of the HEAD already made the client GET; its "not found" is final.
        Err(e) if e.is_not_found() => Err(Error::GetManifest {
            reference: reference.to_string(),
            source: Box::new(e),
        }),
        Err(head) => {
            tracing::debug!(%reference, error = %head, "HEAD failed; resolving with GET");
            let (_, descriptor, _) = super::get_manifest(client, &reference).await?;
            Ok(descriptor)
        }
    }
}

/// Fetches `reference`'s manifest, follows an image index by `options.platform` (see
/// [`Platform`]), and selects the layer by `options.layer`. A layer to copy whose size is over
/// `options.limits.max_size_bytes` is refused before anything is downloaded (a layer to
/// extract is bounded by the size of its content, checked while extracting).
///
/// # Errors
/// [`Error::GetManifest`], [`Error::NoPlatformMatch`], [`Error::NestedIndex`],
/// [`Error::NoLayers`], [`Error::NoMatchingLayer`], [`Error::LayerTooLarge`].
pub async fn fetch(
    client: &Client,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Fetched, Error> {
    let reference = with_default_tag(reference);
    let (manifest, descriptor, _) = super::get_manifest(client, &reference).await?;
    let (manifest, digest, platform) = match manifest {
        Manifest::Image(image) => (image, descriptor.digest, None),
        Manifest::Index(index) => {
            let entry = options
                .platform
                .choose(&index)
                .ok_or_else(|| Error::NoPlatformMatch {
                    reference: reference.to_string(),
                    count: index.manifests.len(),
                    platform: options.platform.to_string(),
                })?;
            let platform = entry.platform.as_ref().map(|p| Platform {
                os: p.os.clone(),
                architecture: p.architecture.clone(),
            });
            let inner = reference.with_digest(entry.digest.clone());
            match super::get_manifest(client, &inner).await? {
                (Manifest::Image(image), d, _) => (image, d.digest, platform),
                (Manifest::Index(_), _, _) => {
                    return Err(Error::NestedIndex {
                        reference: inner.to_string(),
                    });
                }
            }
        }
    };
    let layer = options.layer.select(&manifest, &reference)?.clone();
    if options.layer.operation == LayerOperation::Copy && layer.size > options.limits.max_size_bytes
    {
        return Err(Error::LayerTooLarge {
            reference: reference.to_string(),
            digest: layer.digest,
            size_bytes: layer.size,
            limit_bytes: options.limits.max_size_bytes,
        });
    }
    Ok(Fetched {
        reference,
        digest,
        manifest,
        layer,
        platform,
    })
}

/// Pulls `reference` and extracts its layer (selected by `options.layer.media_type`) into
/// `dest` while downloading, verified against the layer digest, under `options.limits` (see
/// [`crate::extract`]). On error `dest` may hold part of the content: extract into a fresh
/// directory.
///
/// # Errors
/// As [`fetch`], plus [`Error::PullLayer`] (download, digest or size mismatch),
/// [`Error::Deadline`], [`Error::Extract`] (refused or corrupt content, limits).
pub async fn pull(
    client: &Client,
    reference: &Reference,
    dest: &Path,
    options: PullOptions,
) -> Result<Pulled, Error> {
    let fetched = fetch(client, reference, &options).await?;
    let (dest, limits) = (dest.to_path_buf(), options.limits);
    let extract_error = fetched.extract_error();
    let extracted = consume_layer(client, &fetched, &options, move |reader| {
        extract::extract(reader, &dest, &limits).map_err(extract_error)
    })
    .await?;
    Ok(Pulled {
        source: annotation(&fetched.manifest, ANNOTATION_SOURCE),
        revision: annotation(&fetched.manifest, ANNOTATION_REVISION),
        annotations: fetched.manifest.annotations.clone().unwrap_or_default(),
        reference: fetched.reference,
        digest: fetched.digest,
        layer: fetched.layer,
        extracted,
    })
}

/// Downloads `reference`'s layer (the first with `layer_media_type`, or the first layer) into
/// the file `dest` byte for byte, verified against its digest and size while streaming, and
/// fsyncs it: Flux's `layerSelector.operation: copy`. Returns the layer descriptor and the
/// image manifest digest. On error `dest` may hold part of the blob: write to a temporary
/// path and rename it on success.
///
/// # Errors
/// As [`fetch`], plus [`Error::PullLayer`] (download, digest or size mismatch),
/// [`Error::WriteLayer`].
pub async fn pull_layer_to_file(
    client: &Client,
    reference: &Reference,
    layer_media_type: Option<&str>,
    dest: &Path,
    progress: Option<ProgressFn>,
) -> Result<(Descriptor, Digest), Error> {
    let options = PullOptions {
        layer: LayerSelector {
            media_type: layer_media_type.map(str::to_owned),
            operation: LayerOperation::Copy,
        },
        progress,
        ..PullOptions::default()
    };
    let fetched = fetch(client, reference, &options).await?;
    let (dest, max_bytes) = (dest.to_path_buf(), options.limits.max_size_bytes);
    let write_err = {
        let path = dest.display().to_string();
        move |source| Error::WriteLayer {
            path: path.clone(),
            source,
        }
    };
    consume_layer(client, &fetched, &options, move |reader| {
        let file = std::fs::File::create(&dest).map_err(write_err.clone())?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        copy_limited(reader, &mut out, max_bytes).map_err(write_err.clone())?;
        let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)
    })
    .await?;
    Ok((fetched.layer, fetched.digest))
}

/// Streams the layer of `fetched` into `out`, as the reconcilers store artifacts: with
/// [`LayerOperation::Copy`] the blob byte for byte; with [`LayerOperation::Extract`] the layer
/// is extracted under `options.limits` into a fresh directory inside `scratch` (removed
/// afterwards), the ignore rules of the content (`.sourceignore` files plus `ignore`, Flux's
/// `spec.ignore`) are applied, and the tree is re-archived deterministically
/// ([`crate::archive::build`]). Returns `out` once everything was written to it (not flushed
/// beyond its own buffers).
///
/// # Errors
/// [`Error::PullLayer`], [`Error::Deadline`], [`Error::Extract`] for the layer;
/// [`Error::Scratch`], [`Error::Ignore`], [`Error::Archive`], [`Error::WriteArtifact`] for
/// the local side.
pub async fn pull_artifact<W: Write + Send + 'static>(
    client: &Client,
    fetched: &Fetched,
    options: &PullOptions,
    scratch: &Path,
    ignore: Option<&str>,
    out: W,
) -> Result<W, Error> {
    let limits = options.limits;
    match options.layer.operation {
        LayerOperation::Copy => {
            consume_layer(client, fetched, options, move |reader| {
                let mut out = out;
                copy_limited(reader, &mut out, limits.max_size_bytes)
                    .map_err(Error::WriteArtifact)?;
                Ok(out)
            })
            .await
        }
        LayerOperation::Extract => {
            let work = ExtractWork {
                scratch: scratch.to_path_buf(),
                ignore: ignore.map(str::to_owned),
                limits,
            };
            let extract_error = fetched.extract_error();
            consume_layer(client, fetched, options, move |reader| {
                work.run(reader, out, extract_error)
            })
            .await
        }
    }
}

/// Extract, ignore rules and re-archive, on a blocking thread.
struct ExtractWork {
    scratch: PathBuf,
    ignore: Option<String>,
    limits: Limits,
}

impl ExtractWork {
    fn run<W: Write>(
        self,
        reader: &mut BlobReader,
        out: W,
        extract_error: impl Fn(extract::Error) -> Error,
    ) -> Result<W, Error> {
        let scratch_err = |source| Error::Scratch {
            path: self.scratch.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.scratch).map_err(scratch_err)?;
        let dir = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(&self.scratch)
            .map_err(scratch_err)?;
        let content = dir.path().join("content");
        extract::extract(&mut *reader, &content, &self.limits).map_err(&extract_error)?;
        // Read to the end so the stream verifies the blob's size and digest before anything
        // is archived (tar stops reading at its end-of-archive marker).
        reader.drain().map_err(|source| {
            extract_error(extract::Error::Read {
                entry: None,
                source,
            })
        })?;
        let matcher =
            Matcher::for_source_dir(&content, self.ignore.as_deref()).map_err(Error::Ignore)?;
        let mut buffered = BufWriter::with_capacity(256 * 1024, out);
        crate::archive::build(&content, &matcher, &mut buffered).map_err(Error::Archive)?;
        buffered
            .into_inner()
            .map_err(|e| Error::WriteArtifact(e.into_error()))
    }
}

/// Copies `reader` into `out`, failing once more than `max_bytes` came.
fn copy_limited(reader: &mut impl Read, out: &mut impl Write, max_bytes: u64) -> io::Result<u64> {
    let copied = io::copy(&mut reader.take(max_bytes.saturating_add(1)), out)?;
    if copied > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the layer exceeds the size limit of {max_bytes} bytes"),
        ));
    }
    Ok(copied)
}

/// Streams the layer of `fetched` (digest and size verified while reading, under
/// `options.deadline`) into `consume`, which runs on the blocking pool with the caller's span.
/// After `consume` succeeds, or fails to extract, the stream is read to its end so the digest
/// check runs; a transfer, digest or deadline failure wins over what `consume` saw, since it
/// explains it.
///
/// # Errors
/// [`Error::PullLayer`] when the download or its verification fails, [`Error::Deadline`],
/// or the error of `consume`.
pub(super) async fn consume_layer<T: Send + 'static>(
    client: &Client,
    fetched: &Fetched,
    options: &PullOptions,
    consume: impl FnOnce(&mut BlobReader) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let pull_err = |source| Error::PullLayer {
        reference: fetched.reference.to_string(),
        digest: fetched.layer.digest.clone(),
        source: Box::new(source),
    };
    let stream = client
        .get_blob(&fetched.reference, &fetched.layer)
        .await
        .map_err(pull_err)?;
    let mut reader = pump(stream, options.progress.clone(), options.deadline);
    let span = tracing::Span::current();
    let (mut reader, result) = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let result = consume(&mut reader);
        // After success, so the digest check runs; after an extraction failure too, because
        // bytes altered in transit or in the registry's storage usually break the gzip or tar
        // stream before its end, and only the digest check names that cause.
        if matches!(result, Ok(_) | Err(Error::Extract { .. })) {
            let _ = reader.drain();
        }
        (reader, result)
    })
    .await
    .map_err(join_error)?;
    match reader.take_error() {
        Some(StreamFailure::Client(source)) => Err(pull_err(source)),
        Some(StreamFailure::Deadline) => Err(Error::Deadline {
            reference: fetched.reference.to_string(),
            digest: fetched.layer.digest.clone(),
        }),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::media_types;

    fn entry(os: &str, architecture: &str) -> Descriptor {
        let mut d = Descriptor::new(
            media_types::OCI_MANIFEST.to_owned(),
            Digest::sha256_of(format!("{os}/{architecture}").as_bytes()),
            1,
        );
        d.platform = Some(manifest::Platform {
            architecture: architecture.into(),
            os: os.into(),
            os_version: None,
            os_features: None,
            variant: None,
        });
        d
    }

    fn index(entries: Vec<Descriptor>) -> ImageIndex {
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": entries,
        }))
        .unwrap()
    }

    #[test]
    fn an_index_is_followed_by_one_explicit_platform_rule() {
        let linux = Platform::default();
        let only_arm = index(vec![entry("linux", "arm64")]);
        assert_eq!(linux.choose(&only_arm), Some(&only_arm.manifests[0]));
        let both = index(vec![entry("linux", "arm64"), entry("linux", "amd64")]);
        assert_eq!(linux.choose(&both), Some(&both.manifests[1]));
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
        };
        assert_eq!(arm.choose(&both), Some(&both.manifests[0]));
        let windows = index(vec![entry("windows", "amd64"), entry("linux", "arm64")]);
        assert_eq!(linux.choose(&windows), None, "never a silent guess");
        assert_eq!(linux.to_string(), "linux/amd64");
    }

    #[test]
    fn the_layer_is_the_first_unless_a_media_type_is_selected() {
        let layer = |mt: &str| Descriptor::new(mt.to_owned(), Digest::sha256_of(mt.as_bytes()), 1);
        let manifest: ImageManifest = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "config": layer("application/config"),
            "layers": [layer("application/a"), layer(media_types::FLUX_CONTENT)],
        }))
        .unwrap();
        let reference: Reference = "registry.example/app:v1".parse().unwrap();
        let first = LayerSelector::default()
            .select(&manifest, &reference)
            .unwrap();
        assert_eq!(first.media_type, "application/a");
        let flux = LayerSelector {
            media_type: Some(media_types::FLUX_CONTENT.into()),
            operation: LayerOperation::Extract,
        };
        assert_eq!(
            flux.select(&manifest, &reference).unwrap().media_type,
            media_types::FLUX_CONTENT
        );
        let none = LayerSelector {
            media_type: Some("application/x-none".into()),
            operation: LayerOperation::Copy,
        };
        assert!(matches!(
            none.select(&manifest, &reference),
            Err(Error::NoMatchingLayer { .. })
        ));
    }

    #[test]
    fn copy_stops_past_the_limit() {
        let mut out = Vec::new();
        assert_eq!(copy_limited(&mut &b"abc"[..], &mut out, 3).unwrap(), 3);
        let err = copy_limited(&mut &b"abcd"[..], &mut Vec::new(), 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
    }
}
