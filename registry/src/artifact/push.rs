//! `push`, `tag` and `build`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;

use super::{
    ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE, Error, FLUX_CONFIG_BLOB,
    join_error, with_default_tag,
};
use crate::archive::{self, Summary};
use crate::client::{Client, ProgressFn};
use crate::digest::Digest;
use crate::manifest::{Descriptor, media_types};
use crate::reference::Reference;
use crate::sourceignore::Matcher;

/// What `push` writes besides the content.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// `org.opencontainers.image.source` (`--source`).
    pub source: String,
    /// `org.opencontainers.image.revision` (`--revision`).
    pub revision: String,
    /// `org.opencontainers.image.created`: `None` means now (UTC, seconds precision);
    /// [`REPRODUCIBLE_CREATED`](super::REPRODUCIBLE_CREATED) for `--reproducible`.
    pub created: Option<String>,
    /// Extra manifest annotations, written after (so overriding) the three above.
    pub annotations: BTreeMap<String, String>,
    /// Which paths to leave out ([`Matcher::flux_cli`]).
    pub ignore: Matcher,
    /// Called with the bytes of the layer uploaded so far.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("source", &self.source)
            .field("revision", &self.revision)
            .field("created", &self.created)
            .field("annotations", &self.annotations)
            .field("ignore", &self.ignore)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The result of a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pushed to, with its tag (`latest` when none was given).
    pub reference: Reference,
    /// The manifest digest.
    pub digest: Digest,
    /// The content layer descriptor.
    pub layer: Descriptor,
    /// The archive summary (sizes, tar digest, entry count).
    pub archive: Summary,
    /// The manifest bytes as pushed.
    pub manifest: Bytes,
}

/// Descriptor in ggcr's JSON field order (mediaType, size, digest).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GoDescriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a Digest,
}

/// Manifest in ggcr's JSON field order (`v1.Manifest`), compact, no trailing newline.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GoManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: GoDescriptor<'a>,
    layers: [GoDescriptor<'a>; 1],
    annotations: &'a BTreeMap<String, String>,
}

/// The manifest bytes Flux would push for `config`, `layer` and `annotations`.
fn manifest_bytes(
    config: &Descriptor,
    layer: &Descriptor,
    annotations: &BTreeMap<String, String>,
) -> Bytes {
    let manifest = GoManifest {
        schema_version: 2,
        media_type: media_types::OCI_MANIFEST,
        config: GoDescriptor {
            media_type: &config.media_type,
            size: config.size,
            digest: &config.digest,
        },
        layers: [GoDescriptor {
            media_type: &layer.media_type,
            size: layer.size,
            digest: &layer.digest,
        }],
        annotations,
    };
    Bytes::from(serde_json::to_vec(&manifest).expect("manifest serialises"))
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Builds the tarball of `path` (a directory or a file) on a blocking thread into a temporary
/// file, then pushes layer, config and manifest to `reference` (tag `latest` when it has
/// none). The tarball never sits in memory.
///
/// # Errors
/// [`Error::Build`] / [`Error::TempFile`] for the archive, [`Error::PushBlob`] and
/// [`Error::PushManifest`] for the registry (auth failures are `client::Error::Unauthorized`
/// in the source chain).
pub async fn push(
    client: &Client,
    reference: &Reference,
    path: &Path,
    options: PushOptions,
) -> Result<Pushed, Error> {
    let reference = with_default_tag(reference);
    let PushOptions {
        source,
        revision,
        created,
        annotations: extra,
        ignore,
        progress,
    } = options;
    let tmp = tempfile::Builder::new()
        .prefix("sourcectl-push-")
        .suffix(".tgz")
        .tempfile()
        .map_err(Error::TempFile)?;
    let (tmp, archive) = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let summary = {
                let mut writer = std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file());
                let summary =
                    archive::build(&path, &ignore, &mut writer).map_err(|source| Error::Build {
                        path: path.display().to_string(),
                        source,
                    })?;
                std::io::Write::flush(&mut writer).map_err(Error::TempFile)?;
                summary
            };
            Ok::<_, Error>((tmp, summary))
        })
        .await
        .map_err(join_error)??
    };
    let blob_err = |source| Error::PushBlob {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    client
        .push_blob_file(
            &reference,
            tmp.path(),
            &archive.digest,
            archive.size_bytes,
            progress,
        )
        .await
        .map_err(blob_err)?;
    drop(tmp);
    let layer = Descriptor::new(
        media_types::FLUX_CONTENT,
        archive.digest.clone(),
        archive.size_bytes,
    );
    let config = Descriptor::of_bytes(media_types::FLUX_CONFIG, FLUX_CONFIG_BLOB);
    client
        .push_blob_bytes(&reference, Bytes::from_static(FLUX_CONFIG_BLOB))
        .await
        .map_err(blob_err)?;

    let mut annotations = BTreeMap::new();
    annotations.insert(
        ANNOTATION_CREATED.to_owned(),
        created.unwrap_or_else(now_rfc3339),
    );
    annotations.insert(ANNOTATION_SOURCE.to_owned(), source);
    annotations.insert(ANNOTATION_REVISION.to_owned(), revision);
    annotations.extend(extra);
    let manifest = manifest_bytes(&config, &layer, &annotations);
    let digest = client
        .push_manifest(&reference, media_types::OCI_MANIFEST, manifest.clone())
        .await
        .map_err(|source| Error::PushManifest {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    Ok(Pushed {
        reference,
        digest,
        layer,
        archive,
        manifest,
    })
}

/// Copies `reference`'s manifest (same bytes and media type, so the same digest) under each of
/// `tags` in the same repository, as `crane.Tag` does. Returns the manifest digest.
///
/// # Errors
/// [`Error::GetManifest`] when the source cannot be fetched, [`Error::PushManifest`] naming
/// the tag that failed.
pub async fn tag(client: &Client, reference: &Reference, tags: &[String]) -> Result<Digest, Error> {
    let reference = with_default_tag(reference);
    let (_, descriptor, bytes) = super::get_manifest(client, &reference).await?;
    for t in tags {
        let target = reference.without_version().with_tag(t);
        client
            .push_manifest(&target, &descriptor.media_type, bytes.clone())
            .await
            .map_err(|source| Error::PushManifest {
                reference: target.to_string(),
                source: Box::new(source),
            })?;
    }
    Ok(descriptor.digest)
}

/// Builds the tarball of `path` into the file `output` (mode 0640, atomically) on a blocking
/// thread, as `flux build artifact` does.
///
/// # Errors
/// [`Error::Build`] naming the source path.
pub async fn build(path: &Path, ignore: Matcher, output: &Path) -> Result<Summary, Error> {
    let (path, output): (PathBuf, PathBuf) = (path.into(), output.into());
    tokio::task::spawn_blocking(move || {
        archive::build_file(&path, &ignore, &output).map_err(|source| Error::Build {
            path: path.display().to_string(),
            source,
        })
    })
    .await
    .map_err(join_error)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_bytes_follow_go_field_order() {
        // The published ghcr.io/fluxcd/flux-manifests:v2.2.3 manifest (reference §2.1).
        let config = Descriptor::new(
            media_types::FLUX_CONFIG,
            "sha256:a077b7f95a8a4f3546d9ca05611adc35f7bc8c55a9d8cfb665157cd36b54e456"
                .parse()
                .unwrap(),
            233,
        );
        let layer = Descriptor::new(
            media_types::FLUX_CONTENT,
            "sha256:1b3d2b127c08d49579dc50a5c2dd59636aa2c022f080d5dc1fcf955c7fd2627a"
                .parse()
                .unwrap(),
            53353,
        );
        let annotations = BTreeMap::from([
            (
                ANNOTATION_CREATED.to_owned(),
                "2024-02-05T14:44:36Z".to_owned(),
            ),
            (
                ANNOTATION_REVISION.to_owned(),
                "v2.2.3@sha1:534684601ec8888beb0cc4f51117b59e97606c4d".to_owned(),
            ),
            (
                ANNOTATION_SOURCE.to_owned(),
                "git://github.com/fluxcd/flux2.git".to_owned(),
            ),
        ]);
        let bytes = manifest_bytes(&config, &layer, &annotations);
        assert_eq!(bytes.len(), 640);
        assert_eq!(
            Digest::sha256_of(&bytes).to_string(),
            "sha256:187f6a409354d1a6156bb9ede0c81da13e1daccef421203575d23679ccc9b320"
        );
    }

    #[test]
    fn created_is_rfc3339_utc_seconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }
}
