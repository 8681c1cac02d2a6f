//! The one error policy of the source kinds (OCIRepository, HelmChart): each reconcile step
//! returns a [`StepFailure`] that knows its Flux condition type, reason and message
//! (`flux-source-controller.md` §1.6, §2.4, §4.2), the reconcile returns an [`Error`] carrying
//! it with the status worked out so far ([`Progress`]), and [`mark_failed`] turns it into
//! Flux's conditions on any [`SourceStatus`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use openapi::conditions::{self, reasons, types};
use serde_json::Value;

use super::runtime::chain;

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
    /// `BuildFailed=True` (HelmChart: values files, packaging): retried with backoff.
    Build,
}

impl FailureKind {
    /// The Flux condition type the failure sets.
    pub fn condition_type(self) -> &'static str {
        match self {
            FailureKind::Stalled => types::STALLED,
            FailureKind::Fetch => types::FETCH_FAILED,
            FailureKind::Storage => types::STORAGE_OPERATION_FAILED,
            FailureKind::Verify => types::SOURCE_VERIFIED,
            FailureKind::Build => types::BUILD_FAILED,
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
    /// The revision resolved before the failure (`<tag>@sha256:<hex>`, a chart version), if
    /// any.
    pub new_revision: Option<String>,
    /// The reference that revision was resolved from (`<host>/<repo>:<tag>`, Flux's `ref` in
    /// "new revision '…' for '…'"), if known.
    pub new_reference: Option<String>,
}

impl StepFailure {
    pub(crate) fn new(kind: FailureKind, reason: &'static str, message: impl Into<String>) -> Self {
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
    pub(crate) fn build(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Build, reason, message)
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
/// `resourceVersion` and status are the base of the next status write) and the status `S`
/// worked out so far.
#[derive(Clone, Debug)]
pub struct Progress<S> {
    /// The object as last read or written (JSON, with its `resourceVersion`).
    pub read: Value,
    /// The status worked out so far.
    pub status: S,
    /// The message of `Reconciling` (Flux's progressing message).
    pub reconciling: String,
}

/// A failed reconcile of a source kind whose status is `S`.
#[derive(Debug, thiserror::Error)]
pub enum Error<S: std::fmt::Debug> {
    /// A step failed; the error policy records it in the status.
    #[error("{failure}")]
    Failed {
        /// The step's failure.
        failure: StepFailure,
        /// The status so far.
        progress: Box<Progress<S>>,
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

impl<S: std::fmt::Debug> From<storage::Error> for Error<S> {
    fn from(e: storage::Error) -> Self {
        Error::Store(e)
    }
}

impl<S: std::fmt::Debug> From<TaskError> for Error<S> {
    fn from(e: TaskError) -> Self {
        Error::Task { message: e.message }
    }
}

impl<S: std::fmt::Debug> Error<S> {
    /// A bounded label for metrics and logs: the Flux reason of a step failure.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Failed { failure, .. } => failure.reason,
            Error::Store(_) => "Storage",
            Error::Task { .. } => "Task",
        }
    }
}

/// A blocking task that panicked or was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("blocking task failed: {message}")]
pub struct TaskError {
    /// The join error.
    pub message: String,
}

/// Runs blocking work (Secret files, artifact files, archives) on the blocking pool, in the
/// current span.
///
/// # Errors
/// [`TaskError`] when the closure panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TaskError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        f()
    })
    .await
    .map_err(|e| TaskError {
        message: e.to_string(),
    })
}

/// Now, to the second (Kubernetes times have no fraction).
pub(crate) fn now() -> Time {
    Time(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("valid time"))
}

/// What the error policy needs of a source kind's status.
pub(crate) trait SourceStatus: Clone + std::fmt::Debug {
    /// `status.conditions`.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// Whether `status.artifact` is set.
    fn has_artifact(&self) -> bool;
    /// Whether `status.artifact` is set and has `revision` (Flux's `HasRevision`).
    fn artifact_has_revision(&self, revision: &str) -> bool;
    /// Sets `status.observedGeneration`.
    fn set_observed_generation(&mut self, generation: i64);
}

impl SourceStatus for openapi::v1::OCIRepositoryStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn has_artifact(&self) -> bool {
        self.artifact.is_some()
    }
    fn artifact_has_revision(&self, revision: &str) -> bool {
        self.artifact
            .as_ref()
            .is_some_and(|a| a.has_revision(revision))
    }
    fn set_observed_generation(&mut self, generation: i64) {
        self.observed_generation = Some(generation);
    }
}

impl SourceStatus for openapi::v1::HelmChartStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn has_artifact(&self) -> bool {
        self.artifact.is_some()
    }
    fn artifact_has_revision(&self, revision: &str) -> bool {
        self.artifact
            .as_ref()
            .is_some_and(|a| a.has_revision(revision))
    }
    fn set_observed_generation(&mut self, generation: i64) {
        self.observed_generation = Some(generation);
    }
}

/// `Reconciling=True` and `Ready=Unknown` (`Progressing`) with the progressing message.
pub(crate) fn mark_progressing<S: SourceStatus>(progress: &mut Progress<S>, generation: i64) {
    let (g, ts) = (Some(generation), now());
    let message = progress.reconciling.clone();
    let c = progress.status.conditions_mut();
    conditions::mark_true(
        c,
        types::RECONCILING,
        reasons::PROGRESSING,
        &message,
        g,
        ts.clone(),
    );
    conditions::mark_unknown(c, types::READY, reasons::PROGRESSING, &message, g, ts);
}

/// The failing step's condition, then `Reconciling` (`ProgressingWithRetry`) and
/// `Ready=False`, as Flux; a stalled failure sets `Stalled` (and `FetchFailed`) instead of
/// retrying. The `ArtifactOutdated` message names the resolved reference, else `url`; it is
/// set only when the resolved revision differs from the stored artifact's.
pub(crate) fn mark_failed<S: SourceStatus>(
    progress: &mut Progress<S>,
    failure: &StepFailure,
    url: &str,
    generation: i64,
) {
    let (g, ts) = (Some(generation), now());
    let status = &mut progress.status;
    if let Some(rev) = &failure.new_revision
        && !status.artifact_has_revision(rev)
    {
        let reference = failure.new_reference.as_deref().unwrap_or(url);
        let message = format!("new revision '{rev}' for '{reference}'");
        if status.has_artifact() {
            let c = status.conditions_mut();
            conditions::mark_true(
                c,
                types::ARTIFACT_OUTDATED,
                reasons::NEW_REVISION,
                &message,
                g,
                ts.clone(),
            );
        }
        progress.reconciling = format!("building artifact: {message}");
    }
    let (reason, message) = (failure.reason, &failure.message);
    if failure.kind == FailureKind::Stalled {
        status.set_observed_generation(generation);
    }
    let c = status.conditions_mut();
    match failure.kind {
        FailureKind::Stalled => {
            // As Flux's invalid-URL stall: FetchFailed says why too.
            conditions::delete(c, types::RECONCILING);
            conditions::mark_true(c, types::FETCH_FAILED, reason, message, g, ts.clone());
            conditions::mark_true(c, types::STALLED, reason, message, g, ts.clone());
        }
        FailureKind::Verify => {
            conditions::mark_false(c, types::SOURCE_VERIFIED, reason, message, g, ts.clone());
        }
        kind @ (FailureKind::Fetch | FailureKind::Storage | FailureKind::Build) => {
            if kind == FailureKind::Fetch {
                conditions::delete(c, types::STORAGE_OPERATION_FAILED);
            }
            conditions::delete(c, types::STALLED);
            conditions::mark_true(c, kind.condition_type(), reason, message, g, ts.clone());
        }
    }
    if failure.kind != FailureKind::Stalled {
        let retrying = &progress.reconciling;
        let r = reasons::PROGRESSING_WITH_RETRY;
        conditions::mark_true(c, types::RECONCILING, r, retrying, g, ts.clone());
    }
    conditions::mark_false(c, types::READY, reason, message, g, ts);
}
