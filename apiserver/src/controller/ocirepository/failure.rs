//! Failures of an OCIRepository reconcile: each step returns a [`StepFailure`] that knows its
//! Flux condition type, reason and message (`flux-source-controller.md` §2.4, §2.5), and the
//! reconcile returns an [`Error`] carrying it with the status worked out so far, for the one
//! error policy to record.

use openapi::conditions::{reasons, types};
use openapi::v1::OCIRepositoryStatus;
use serde_json::Value;

use super::super::runtime::chain;

/// Which condition a failure sets, and whether retrying can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// `Stalled=True`: the spec must change first; no retry.
    Stalled,
    /// `FetchFailed=True`: retried with backoff.
    Fetch,
    /// `StorageOperationFailed=True`: retried with backoff.
    Storage,
    /// `SourceVerified=False`: retried with backoff.
    Verify,
}

impl FailureKind {
    /// The Flux condition type the failure sets.
    pub fn condition_type(self) -> &'static str {
        match self {
            FailureKind::Stalled => types::STALLED,
            FailureKind::Fetch => types::FETCH_FAILED,
            FailureKind::Storage => types::STORAGE_OPERATION_FAILED,
            FailureKind::Verify => types::SOURCE_VERIFIED,
        }
    }
}

/// A failed step: condition kind, Flux reason and message, and the new revision when the
/// reference was resolved before the failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct StepFailure {
    /// The condition it sets.
    pub kind: FailureKind,
    /// Flux's reason (`OCIArtifactPullFailed`, …).
    pub reason: &'static str,
    /// Flux's message.
    pub message: String,
    /// The revision resolved before the failure (`<tag>@sha256:<hex>`), if any.
    pub new_revision: Option<String>,
    /// The reference that revision was resolved from (`<host>/<repo>:<tag>`, Flux's `ref` in
    /// "new revision '…' for '…'"), if known.
    pub new_reference: Option<String>,
}

impl StepFailure {
    fn new(kind: FailureKind, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            reason,
            message: message.into(),
            new_revision: None,
            new_reference: None,
        }
    }
    pub(crate) fn fetch(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Fetch, reason, message)
    }
    pub(crate) fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Stalled, reason, message)
    }
    pub(crate) fn storage(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Storage, reason, message)
    }
    pub(crate) fn verify(message: impl std::fmt::Display) -> Self {
        Self::new(
            FailureKind::Verify,
            reasons::VERIFICATION_ERROR,
            format!("failed to verify the signature using provider 'cosign': {message}"),
        )
    }
    /// The same failure, noting the revision resolved before it.
    pub(crate) fn with_revision(mut self, revision: &str) -> Self {
        self.new_revision = Some(revision.to_owned());
        self
    }
    /// The same failure, noting the revision resolved before it and the reference it was
    /// resolved from.
    pub(crate) fn with_resolved(mut self, revision: &str, reference: &str) -> Self {
        self.new_reference = Some(reference.to_owned());
        self.with_revision(revision)
    }
}

/// A registry client failure: `AuthenticationFailed` for credentials and TLS, else `reason`.
pub(crate) fn client_failure(
    reason: &'static str,
    prefix: &str,
    e: &registry::client::Error,
) -> StepFailure {
    let reason = if e.is_auth() || matches!(e, registry::client::Error::Tls { .. }) {
        reasons::AUTHENTICATION_FAILED
    } else {
        reason
    };
    StepFailure::fetch(reason, format!("{prefix}: {}", chain(e)))
}

/// Where a failed reconcile had got to: the object as last read or written (its
/// `resourceVersion` and status are the base of the next status write) and the status worked
/// out so far.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The object as last read or written (JSON, with its `resourceVersion`).
    pub read: Value,
    /// The status worked out so far.
    pub status: OCIRepositoryStatus,
    /// The message of `Reconciling` (Flux's progressing message).
    pub reconciling: String,
}

/// A failed OCIRepository reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step failed; the error policy records it in the status.
    #[error("{failure}")]
    Failed {
        /// The step's failure.
        failure: StepFailure,
        /// The status so far.
        progress: Box<Progress>,
    },
    /// Reading or writing the object failed.
    #[error("reading or writing the object")]
    Store(#[source] storage::Error),
    /// A blocking task panicked.
    #[error("blocking task failed: {message}")]
    Task {
        /// The join error.
        message: String,
    },
}

impl From<storage::Error> for Error {
    fn from(e: storage::Error) -> Self {
        Error::Store(e)
    }
}

impl Error {
    /// A bounded label for metrics and logs: the Flux reason of a step failure.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Failed { failure, .. } => failure.reason,
            Error::Store(_) => "Storage",
            Error::Task { .. } => "Task",
        }
    }
}

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
