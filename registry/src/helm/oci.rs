//! Helm charts in OCI registries, in Helm's format (helm `pkg/registry/client.go` `Push`,
//! `pkg/registry/chart.go`): an image manifest whose config is the chart metadata as JSON
//! ([`media_types::HELM_CONFIG`]) and whose one layer is the chart archive
//! ([`media_types::HELM_CHART_CONTENT`]), tagged with the chart version (`+` written `_`), with
//! Helm's `org.opencontainers.image.*` annotations. Pulling is the one pull path
//! ([`crate::artifact::pull_layer_to_file`] with the chart media type).

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;

use super::{ChartMetadata, tag_of_version};
use crate::manifest::{Descriptor, ImageManifest, media_types};
use crate::{Client, Digest, Reference};

/// Why a chart could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chart archive could not be read or is not a chart.
    #[error("reading the chart archive {path}")]
    ReadChart {
        /// The archive.
        path: String,
        /// The cause.
        #[source]
        source: super::Error,
    },
    /// Uploading a blob failed.
    #[error("pushing a blob to {reference}")]
    PushBlob {
        /// Destination repository.
        reference: String,
        /// The client error.
        #[source]
        source: Box<crate::client::Error>,
    },
    /// Uploading the manifest failed.
    #[error("pushing the manifest to {reference}")]
    PushManifest {
        /// Destination reference.
        reference: String,
        /// The client error.
        #[source]
        source: Box<crate::client::Error>,
    },
}

/// A pushed chart.
#[derive(Clone, Debug)]
pub struct PushedChart {
    /// `<repository>/<chart name>:<tag>`.
    pub reference: Reference,
    /// The manifest digest.
    pub digest: Digest,
    /// `Chart.yaml` of the chart.
    pub metadata: ChartMetadata,
    /// The chart layer.
    pub layer: Descriptor,
}

/// Helm's manifest annotations for a chart (helm `generateChartOCIAnnotations`): title,
/// version, description, url, source, plus `created` when given.
pub fn annotations(metadata: &ChartMetadata, created: Option<&str>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.insert(format!("org.opencontainers.image.{k}"), v.to_owned());
        }
    };
    put("title", Some(&metadata.name));
    put("version", Some(&metadata.version));
    put("description", metadata.text("description"));
    put("url", metadata.text("home"));
    let source = metadata
        .document
        .get("sources")
        .and_then(|s| s.as_sequence())
        .and_then(|s| s.first())
        .and_then(|s| s.as_str());
    put("source", source);
    put("created", created);
    a
}

/// Pushes the chart archive `archive` (a `.tgz` as [`super::package`] writes it) to
/// `<repository>/<chart name>:<version with + as _>`, as `helm push archive oci://repository`
/// does. `created` is the `org.opencontainers.image.created` annotation (none: left out, so
/// pushes are reproducible).
///
/// # Errors
/// [`Error::ReadChart`] when the archive is no chart (checked with the default file limit),
/// [`Error::PushBlob`], [`Error::PushManifest`].
pub async fn push_chart(
    client: &Client,
    repository: &Reference,
    archive: &Path,
    created: Option<&str>,
) -> Result<PushedChart, Error> {
    let read_err = |source| Error::ReadChart {
        path: archive.display().to_string(),
        source,
    };
    let (metadata, layer) = {
        let path = archive.to_path_buf();
        tokio::task::spawn_blocking(move || chart_layer(&path))
            .await
            .map_err(|e| {
                read_err(super::Error::ReadArchive(std::io::Error::other(
                    e.to_string(),
                )))
            })?
            .map_err(read_err)?
    };
    let base = repository.without_version();
    let mut chart_repo = base.clone();
    chart_repo.repository = format!("{}/{}", base.repository, metadata.name);
    let reference = chart_repo.with_tag(&tag_of_version(&metadata.version));
    let blob_err = |source| Error::PushBlob {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    client
        .push_blob_file(&reference, archive, &layer.digest, layer.size, None)
        .await
        .map_err(blob_err)?;
    let config_bytes = metadata.to_json().map_err(read_err)?;
    let config = Descriptor::of_bytes(media_types::HELM_CONFIG, &config_bytes);
    client
        .push_blob_bytes(&reference, Bytes::from(config_bytes))
        .await
        .map_err(blob_err)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config,
        layers: vec![layer.clone()],
        subject: None,
        annotations: Some(annotations(&metadata, created)),
    };
    let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifests serialise"));
    let digest = client
        .push_manifest(&reference, media_types::OCI_MANIFEST, bytes)
        .await
        .map_err(|source| Error::PushManifest {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    Ok(PushedChart {
        reference,
        digest,
        metadata,
        layer,
    })
}

/// `Chart.yaml` of the archive at `path` and the layer descriptor of the file (blocking).
fn chart_layer(path: &Path) -> Result<(ChartMetadata, Descriptor), super::Error> {
    let open = || {
        std::fs::File::open(path).map_err(|source| super::Error::ReadFile {
            path: path.display().to_string(),
            source,
        })
    };
    let chart = super::inspect(open()?, super::DEFAULT_MAX_CHART_FILE_BYTES, &[])?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let size =
        std::io::copy(&mut open()?, &mut hasher).map_err(|source| super::Error::ReadFile {
            path: path.display().to_string(),
            source,
        })?;
    let hex = hex::encode(sha2::Digest::finalize(hasher));
    let digest: Digest = format!("sha256:{hex}")
        .parse()
        .expect("sha256 digests parse");
    Ok((
        chart.metadata,
        Descriptor::new(media_types::HELM_CHART_CONTENT, digest, size),
    ))
}
