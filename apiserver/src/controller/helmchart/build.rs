//! The pull and build steps of a HelmChart reconcile (`flux-source-controller.md` §4.2 steps
//! 9–11): the chart layer of the resolved digest streamed into a scratch file under
//! `--helm-chart-max-size` (refused before download when the manifest says it is larger) and
//! digest-checked while it streams; the archive checked as Helm's loader does under
//! `--helm-chart-file-max-size`; values files merged and the chart re-packaged with the
//! generation as build metadata (Flux's "packaged"), or the archive stored byte for byte
//! ("pulled"); the artifact `helmchart/<ns>/<name>/<chart>-<version>-<manifest hex[..12]>.tgz`
//! written atomically.

use std::collections::BTreeMap;
use std::io::{BufWriter, Seek as _, Write as _};
use std::path::PathBuf;

use openapi::conditions::reasons;
use openapi::v1::HelmChart;
use registry::Client;
use registry::artifact::{self, LayerOperation, LayerSelector, PullOptions};
use registry::helm::{self, ChartMetadata};
use registry::manifest::media_types;
use storage::{ArtifactStore, StoredArtifact};
use tokio::time::Instant;

use super::super::failure::{StepFailure, blocking};
use super::super::runtime::chain;
use super::source::{Built, ChartSource, MANIFEST_DIGEST_KEY, Resolved};
use super::{ARTIFACT_KIND, HelmChartReconciler, object_ref, registry_failure};

/// What the blocking build needs.
struct BuildInput {
    chart: PathBuf,
    artifacts: ArtifactStore,
    namespace: String,
    name: String,
    values_files: Vec<String>,
    ignore_missing: bool,
    revision: String,
    tag_version: String,
    /// The chart's OCI manifest digest, hex: part of the file name.
    manifest_hex: String,
    max_file_bytes: u64,
}

impl HelmChartReconciler {
    /// Pulls the chart layer of `resolved` and builds the artifact.
    pub(super) async fn pull_and_build(
        &self,
        client: &Client,
        obj: &HelmChart,
        source: &ChartSource,
        resolved: &Resolved,
        revision: &str,
        deadline: Instant,
    ) -> Result<Built, StepFailure> {
        let chart = self.pull(client, source, resolved, deadline).await?;
        let object = object_ref(obj);
        let input = BuildInput {
            chart: chart.path().to_path_buf(),
            artifacts: self.artifacts.clone(),
            namespace: object.namespace,
            name: object.name,
            values_files: obj.spec.values_files.clone().unwrap_or_default(),
            ignore_missing: obj.spec.ignore_missing_values_files == Some(true),
            revision: revision.to_owned(),
            tag_version: resolved.version.clone(),
            manifest_hex: resolved.digest.hex().to_owned(),
            max_file_bytes: self.config.max_file_bytes,
        };
        let mut built = blocking(move || build(input)).await.map_err(|e| {
            StepFailure::storage(reasons::ARCHIVE_OPERATION_FAILED, e.to_string())
        })??;
        drop(chart);
        built
            .metadata
            .insert(MANIFEST_DIGEST_KEY.to_owned(), resolved.digest.to_string());
        Ok(built)
    }

    /// The chart layer (Helm's media types) into a scratch file, bounded and digest-checked.
    async fn pull(
        &self,
        client: &Client,
        source: &ChartSource,
        resolved: &Resolved,
        deadline: Instant,
    ) -> Result<tempfile::NamedTempFile, StepFailure> {
        let mut limits = self.config.base.limits;
        limits.max_size_bytes = self.config.max_chart_bytes;
        let options = PullOptions {
            limits,
            layer: LayerSelector {
                media_type: Some(media_types::HELM_CHART_CONTENT.to_owned()),
                operation: LayerOperation::Copy,
            },
            deadline: Some(deadline),
            ..PullOptions::default()
        };
        let url = &source.url;
        let pull_failed = |e: &artifact::Error| pull_failure(url, self.config.max_chart_bytes, e);
        let fetched = artifact::fetch(client, &resolved.pull, &options)
            .await
            .map_err(|e| pull_failed(&e))?;
        if fetched.manifest.config.media_type != media_types::HELM_CONFIG {
            return Err(StepFailure::fetch(
                reasons::CHART_PULL_ERROR,
                format!(
                    "failed to pull chart '{url}': config media type '{}' is not Helm's '{}'",
                    fetched.manifest.config.media_type,
                    media_types::HELM_CONFIG
                ),
            ));
        }
        let scratch = self.config.base.scratch_dir.clone();
        let file = blocking(move || {
            std::fs::create_dir_all(&scratch)?;
            tempfile::Builder::new()
                .prefix("chart-")
                .tempfile_in(&scratch)
        })
        .await
        .map_err(|e| StepFailure::storage(reasons::DIRECTORY_CREATION_FAILED, e.to_string()))?
        .map_err(|e| {
            StepFailure::storage(
                reasons::DIRECTORY_CREATION_FAILED,
                format!("failed to create temporary working directory: {e}"),
            )
        })?;
        let (path, handle) = (file.path().to_path_buf(), file.reopen());
        let handle = handle
            .map_err(|e| StepFailure::storage(reasons::DIRECTORY_CREATION_FAILED, e.to_string()))?;
        let scratch_dir = self.config.base.scratch_dir.clone();
        let mut written =
            artifact::pull_artifact(client, &fetched, &options, &scratch_dir, None, handle)
                .await
                .map_err(|e| pull_failed(&e))?;
        written
            .flush()
            .and_then(|()| written.rewind())
            .map_err(|e| StepFailure::storage(reasons::ARCHIVE_OPERATION_FAILED, e.to_string()))?;
        tracing::debug!(path = %path.display(), "chart layer pulled");
        Ok(file)
    }
}

/// A pull error as Flux's reasons; the size limit is named by its flag.
fn pull_failure(url: &str, max_chart_bytes: u64, e: &artifact::Error) -> StepFailure {
    use artifact::Error as E;
    let prefix = format!("failed to pull chart '{url}'");
    match e {
        E::GetManifest { source, .. } | E::PullLayer { source, .. } => {
            registry_failure(&prefix, source)
        }
        E::LayerTooLarge { size_bytes, .. } => StepFailure::fetch(
            reasons::CHART_PULL_ERROR,
            format!(
                "{prefix}: the chart is {size_bytes} bytes, over the limit of {max_chart_bytes} bytes (--helm-chart-max-size)"
            ),
        ),
        E::WriteArtifact(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
            StepFailure::fetch(
                reasons::CHART_PULL_ERROR,
                format!(
                    "{prefix}: the chart is over the limit of {max_chart_bytes} bytes (--helm-chart-max-size)"
                ),
            )
        }
        E::NoMatchingLayer { .. } | E::NoLayers { .. } => StepFailure::fetch(
            reasons::CHART_PULL_ERROR,
            format!(
                "{prefix}: no layer with media type '{}' (is it a Helm chart?)",
                media_types::HELM_CHART_CONTENT
            ),
        ),
        other => StepFailure::fetch(
            reasons::CHART_PULL_ERROR,
            format!("{prefix}: {}", chain(other)),
        ),
    }
}

/// Checks the archive, merges values files, and writes the artifact (blocking).
fn build(input: BuildInput) -> Result<Built, StepFailure> {
    let open = || {
        std::fs::File::open(&input.chart)
            .map_err(|e| StepFailure::storage(reasons::READ_OPERATION_FAILED, e.to_string()))
    };
    let package_error = |e: helm::Error| {
        let message = match &e {
            helm::Error::FileTooLarge { .. } => format!(
                "chart package error: {} (--helm-chart-file-max-size)",
                chain(&e)
            ),
            _ => format!("chart package error: {}", chain(&e)),
        };
        StepFailure::build(reasons::CHART_PACKAGE_ERROR, message)
    };
    let chart =
        helm::inspect(open()?, input.max_file_bytes, &input.values_files).map_err(package_error)?;
    let metadata = &chart.metadata;
    if metadata.version.trim_start_matches('v') != input.tag_version.trim_start_matches('v') {
        return Err(StepFailure::fetch(
            reasons::CHART_PULL_ERROR,
            format!(
                "chart version '{}' in Chart.yaml differs from the tag's version '{}'",
                metadata.version, input.tag_version
            ),
        ));
    }
    let merging = !input.values_files.is_empty();
    let (stored_metadata, values, merged) = if merging {
        let mut found = Vec::new();
        for path in &input.values_files {
            match chart.files.get(path) {
                Some(bytes) => found.push((path.clone(), bytes.clone())),
                None if input.ignore_missing => {}
                None => {
                    return Err(StepFailure::stalled(
                        reasons::VALUES_FILES_ERROR,
                        format!("values files merge error: no values file found at path '{path}'"),
                    ));
                }
            }
        }
        let values = helm::merge_values(&found).map_err(|e| {
            StepFailure::stalled(
                reasons::VALUES_FILES_ERROR,
                format!("values files merge error: {}", chain(&e)),
            )
        })?;
        let names = found.into_iter().map(|(p, _)| p).collect();
        (
            metadata.with_version(&input.revision),
            Some(values),
            Some(names),
        )
    } else {
        (metadata.clone(), None, None)
    };
    let stored = store(&input, open()?, &stored_metadata, values.as_deref())?;
    Ok(Built {
        stored,
        name: stored_metadata.name.clone(),
        revision: stored_metadata.version.clone(),
        merged,
        metadata: BTreeMap::new(),
    })
}

/// Writes `<chart>-<version>-<manifest hex[..12]>.tgz`: the pulled archive copied, or
/// re-packaged with `values`. Flux writes `<chart>-<version>.tgz`, and a version re-pushed with
/// new content would replace the file that `status.artifact` still describes (its digest no
/// longer matching: 503 until the status is written); a distinct name per chart manifest keeps
/// the old file serving until then, and retention collects it afterwards.
fn store(
    input: &BuildInput,
    mut chart: std::fs::File,
    metadata: &ChartMetadata,
    values: Option<&[u8]>,
) -> Result<StoredArtifact, StepFailure> {
    let storage_failure = |e: &dyn std::error::Error| {
        StepFailure::storage(
            reasons::ARCHIVE_OPERATION_FAILED,
            format!("unable to write chart artifact to storage: {}", chain(e)),
        )
    };
    let short = input.manifest_hex.get(..12).unwrap_or(&input.manifest_hex);
    let file_name = format!("{}-{}-{short}.tgz", metadata.name, metadata.version);
    let writer = input
        .artifacts
        .create(ARTIFACT_KIND, &input.namespace, &input.name, &file_name)
        .map_err(|e| storage_failure(&e))?;
    let writer = if values.is_some() || metadata.version != input.tag_version {
        let out = BufWriter::with_capacity(256 * 1024, writer);
        let out = helm::repackage(chart, out, metadata, values, input.max_file_bytes)
            .map_err(|e| storage_failure(&e))?;
        out.into_inner().map_err(|e| storage_failure(e.error()))?
    } else {
        let mut out = BufWriter::with_capacity(256 * 1024, writer);
        std::io::copy(&mut chart, &mut out).map_err(|e| storage_failure(&e))?;
        out.into_inner().map_err(|e| storage_failure(e.error()))?
    };
    let stored = writer.finish().map_err(|e| storage_failure(&e))?;
    crate::metrics::artifact_pulled("HelmChart", stored.size);
    Ok(stored)
}
