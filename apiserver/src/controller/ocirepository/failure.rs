//! Failures of an OCIRepository reconcile: the shared error policy's types
//! ([`super::super::failure`]) for the OCIRepository status, and the mapping of pull errors to
//! Flux's reasons and messages (`flux-source-controller.md` §2.4, §2.5).

use openapi::conditions::reasons;
use openapi::v1::OCIRepositoryStatus;

pub(crate) use super::super::failure::client_failure;
pub use super::super::failure::{FailureKind, StepFailure};
use super::super::runtime::chain;

/// Where a failed OCIRepository reconcile had got to.
pub type Progress = super::super::failure::Progress<OCIRepositoryStatus>;

/// A failed OCIRepository reconcile.
pub type Error = super::super::failure::Error<OCIRepositoryStatus>;

/// Maps a registry pull error to its Flux reason and message. `url` is `spec.url`, `timeout`
/// the `spec.timeout` text.
pub(crate) fn pull_failure(url: &str, timeout: &str, e: &registry::artifact::Error) -> StepFailure {
    use registry::artifact::Error as E;
    let pulling = format!("failed to pull artifact from '{url}'");
    let layer = |m: String| StepFailure::fetch(reasons::OCI_LAYER_OPERATION_FAILED, m);
    let archive = |e: &dyn std::error::Error| {
        StepFailure::storage(
            reasons::ARCHIVE_OPERATION_FAILED,
            format!("unable to archive artifact to storage: {}", chain(e)),
        )
    };
    match e {
        E::GetManifest { source, .. } | E::PullLayer { source, .. } => {
            client_failure(reasons::OCI_PULL_FAILED, &pulling, source)
        }
        E::Deadline { .. } => StepFailure::fetch(
            reasons::OCI_PULL_FAILED,
            format!("{pulling}: timeout of {timeout} exceeded (spec.timeout)"),
        ),
        E::NoLayers { .. } => layer("no layers found in artifact".into()),
        E::NoMatchingLayer { media_type, .. } => layer(format!(
            "failed to find layer with media type '{media_type}' in artifact"
        )),
        E::LayerTooLarge {
            digest,
            size_bytes,
            limit_bytes,
            ..
        } => layer(format!(
            "layer {digest} is {size_bytes} bytes, over the artifact size limit of {limit_bytes} bytes (--artifact-max-size)"
        )),
        E::NoPlatformMatch { .. } | E::NestedIndex { .. } => layer(chain(e)),
        E::Extract { source, .. } => layer(format!(
            "failed to extract layer contents from artifact: {}",
            chain(source)
        )),
        E::WriteArtifact(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
            layer(format!("failed to copy layer from artifact: {io}"))
        }
        E::Scratch { source, .. } => StepFailure::storage(
            reasons::DIRECTORY_CREATION_FAILED,
            format!("failed to create temporary working directory: {source}"),
        ),
        E::Ignore(source) => StepFailure::fetch(
            reasons::SOURCE_IGNORE_ERROR,
            format!(
                "failed to load source ignore patterns from artifact: {}",
                chain(source)
            ),
        ),
        E::Archive(source) => archive(source),
        E::WriteArtifact(source) => archive(source),
        other => StepFailure::fetch(
            reasons::OCI_PULL_FAILED,
            format!("{pulling}: {}", chain(other)),
        ),
    }
}
