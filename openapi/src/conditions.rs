//! Flux's condition types and reasons, and helpers that set conditions the way Flux's
//! `runtime/conditions` package does (`MarkTrue`, `MarkFalse`, `Delete`).
//!
//! Conditions are Kubernetes' `metav1.Condition` (k8s-openapi's [`Condition`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types (`fluxcd/pkg/apis/meta` and source-controller `api/v1/condition_types.go`).
pub mod types {
    /// The summary condition; `True` when the latest artifact is stored and verified.
    pub const READY: &str = "Ready";
    /// Abnormal-true: a reconciliation is in progress.
    pub const RECONCILING: &str = "Reconciling";
    /// Abnormal-true: the object cannot progress until its spec changes.
    pub const STALLED: &str = "Stalled";
    /// Generic health condition.
    pub const HEALTHY: &str = "Healthy";
    /// Negative polarity: fetching the source failed.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// Negative polarity: a newer revision exists than the stored artifact.
    pub const ARTIFACT_OUTDATED: &str = "ArtifactOutdated";
    /// `True` only when an artifact is in storage.
    pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
    /// Bipolar: present only when verification is enabled.
    pub const SOURCE_VERIFIED: &str = "SourceVerified";
    /// Negative polarity: a storage operation failed.
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    /// Negative polarity: building the chart failed (HelmChart).
    pub const BUILD_FAILED: &str = "BuildFailed";
}

/// Condition reasons used by Flux's source-controller for OCI sources.
pub mod reasons {
    /// Generic success.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Generic failure.
    pub const FAILED: &str = "Failed";
    /// Reconciliation in progress.
    pub const PROGRESSING: &str = "Progressing";
    /// Reconciliation in progress after a failure.
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    /// `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// A dependency is not ready.
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// Invalid path.
    pub const INVALID_PATH: &str = "InvalidPath";
    /// Invalid URL (generic `meta` reason).
    pub const INVALID_URL: &str = "InvalidURL";
    /// Plain-HTTP connections are not allowed.
    pub const INSECURE_CONNECTIONS_DISALLOWED: &str = "InsecureConnectionsDisallowed";
    /// Unsupported connection type.
    pub const UNSUPPORTED_CONNECTION_TYPE: &str = "UnsupportedConnectionType";
    /// Artifact operation failed.
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    /// Build failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// A feature gate needed by the spec is disabled.
    pub const FEATURE_GATE_DISABLED: &str = "FeatureGateDisabled";
    /// `spec.url` is invalid (source-controller's stalling reason).
    pub const URL_INVALID: &str = "URLInvalid";
    /// Credentials could not be obtained or were rejected.
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// Signature verification failed.
    pub const VERIFICATION_ERROR: &str = "VerificationError";
    /// Creating a storage directory failed.
    pub const DIRECTORY_CREATION_FAILED: &str = "DirectoryCreationFailed";
    /// A stat in storage failed.
    pub const STAT_OPERATION_FAILED: &str = "StatOperationFailed";
    /// Reading (tags, semver resolution) failed.
    pub const READ_OPERATION_FAILED: &str = "ReadOperationFailed";
    /// Acquiring the storage lock failed.
    pub const ACQUIRE_LOCK_FAILED: &str = "AcquireLockFailed";
    /// Archiving the content failed.
    pub const ARCHIVE_OPERATION_FAILED: &str = "ArchiveOperationFailed";
    /// Updating the `latest` symlink failed.
    pub const SYMLINK_UPDATE_FAILED: &str = "SymlinkUpdateFailed";
    /// The artifact is already up to date.
    pub const ARTIFACT_UP_TO_DATE: &str = "ArtifactUpToDate";
    /// Patching the object failed.
    pub const PATCH_OPERATION_FAILED: &str = "PatchOperationFailed";
    /// Parsing `spec.ignore` failed.
    pub const SOURCE_IGNORE_ERROR: &str = "SourceIgnoreError";
    /// Garbage collection of old artifacts failed.
    pub const GARBAGE_COLLECTION_FAILED: &str = "GarbageCollectionFailed";
    /// A new revision was detected (`ArtifactOutdated`).
    pub const NEW_REVISION: &str = "NewRevision";
    /// Pulling the OCI artifact (or resolving its digest) failed.
    pub const OCI_PULL_FAILED: &str = "OCIArtifactPullFailed";
    /// Reading the manifest/layers or extracting/copying a layer failed.
    pub const OCI_LAYER_OPERATION_FAILED: &str = "OCIArtifactLayerOperationFailed";
    /// HelmRepository index download failed.
    pub const INDEXATION_FAILED: &str = "IndexationFailed";
    /// The chart was pulled as is.
    pub const CHART_PULL_SUCCEEDED: &str = "ChartPullSucceeded";
    /// The chart was repackaged (values files merged).
    pub const CHART_PACKAGE_SUCCEEDED: &str = "ChartPackageSucceeded";
    /// HelmChart build: invalid chart reference (persistent).
    pub const INVALID_CHART_REFERENCE: &str = "InvalidChartReference";
    /// HelmChart build: pulling the chart failed.
    pub const CHART_PULL_ERROR: &str = "ChartPullError";
    /// HelmChart build: verifying the chart failed.
    pub const CHART_VERIFICATION_ERROR: &str = "ChartVerificationError";
    /// HelmChart build: merging values files failed (persistent).
    pub const VALUES_FILES_ERROR: &str = "ValuesFilesError";
    /// HelmChart build: packaging failed.
    pub const CHART_PACKAGE_ERROR: &str = "ChartPackageError";
    /// HelmChart: the source is unavailable.
    pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
    /// HelmChart: the source kind is not supported (stalling).
    pub const UNSUPPORTED_SOURCE_KIND: &str = "UnsupportedSourceKind";
    /// HelmChart: the source has no artifact.
    pub const NO_SOURCE_ARTIFACT: &str = "NoSourceArtifact";
    /// HelmChart build: patching `Chart.yaml` metadata failed (persistent).
    pub const METADATA_PATCH_ERROR: &str = "MetadataPatchError";
    /// HelmChart build: building dependencies failed.
    pub const DEPENDENCY_BUILD_ERROR: &str = "DependencyBuildError";
    /// HelmChart build: unclassified failure.
    pub const UNKNOWN: &str = "Unknown";
    /// A cache operation failed.
    pub const CACHE_OPERATION_FAILED: &str = "CacheOperationFailed";
    /// Invalid STS configuration.
    pub const INVALID_STS_CONFIGURATION: &str = "InvalidSTSConfiguration";
    /// Invalid provider configuration.
    pub const INVALID_PROVIDER_CONFIGURATION: &str = "InvalidProviderConfiguration";
    /// Generic reconciliation success (`meta`).
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    /// Generic reconciliation failure (`meta`).
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
}

/// How Flux's source-controller summarizes conditions into `Ready`
/// (`internal/controller/ocirepository_controller.go`, `helmchart_controller.go`).
pub mod summary {
    use super::types;

    /// OCIRepository: conditions summarized into Ready, highest priority first.
    pub const OCI_REPOSITORY_SUMMARIZE: &[&str] = &[
        types::STORAGE_OPERATION_FAILED,
        types::FETCH_FAILED,
        types::ARTIFACT_OUTDATED,
        types::ARTIFACT_IN_STORAGE,
        types::SOURCE_VERIFIED,
        types::STALLED,
        types::RECONCILING,
    ];
    /// OCIRepository: conditions whose `True` is abnormal.
    pub const OCI_REPOSITORY_NEGATIVE_POLARITY: &[&str] = &[
        types::STORAGE_OPERATION_FAILED,
        types::FETCH_FAILED,
        types::ARTIFACT_OUTDATED,
        types::STALLED,
        types::RECONCILING,
    ];
    /// HelmChart: as OCIRepository's, with `BuildFailed` after `FetchFailed`.
    pub const HELM_CHART_SUMMARIZE: &[&str] = &[
        types::STORAGE_OPERATION_FAILED,
        types::FETCH_FAILED,
        types::BUILD_FAILED,
        types::ARTIFACT_OUTDATED,
        types::ARTIFACT_IN_STORAGE,
        types::SOURCE_VERIFIED,
        types::STALLED,
        types::RECONCILING,
    ];
    /// HelmChart: conditions whose `True` is abnormal.
    pub const HELM_CHART_NEGATIVE_POLARITY: &[&str] = &[
        types::STORAGE_OPERATION_FAILED,
        types::FETCH_FAILED,
        types::BUILD_FAILED,
        types::ARTIFACT_OUTDATED,
        types::STALLED,
        types::RECONCILING,
    ];
    /// Bipolar: when `False`, Ready is forced `False` with its reason and message.
    pub const BIPOLARITY: &[&str] = &[types::SOURCE_VERIFIED];
}

/// The condition of `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Whether the condition of `type_` is present with status `False`.
pub fn is_false(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "False")
}

/// Maximum condition message length; longer messages are trimmed with a `...` suffix.
pub const MAX_MESSAGE_LENGTH: usize = 32768;

fn trim_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_LENGTH {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_LENGTH - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// Sort weight of the condition types Flux lists first: Stalled, Reconciling, Ready.
fn weight(type_: &str) -> Option<u8> {
    match type_ {
        types::STALLED => Some(0),
        types::RECONCILING => Some(1),
        types::READY => Some(2),
        _ => None,
    }
}

/// Flux's `lexicographicLess`: Stalled, Reconciling, Ready first (in that order), then the
/// others by highest `observedGeneration`, then by type.
fn order(a: &Condition, b: &Condition) -> std::cmp::Ordering {
    match (weight(&a.type_), weight(&b.type_)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b
            .observed_generation
            .cmp(&a.observed_generation)
            .then_with(|| a.type_.cmp(&b.type_)),
    }
}

/// Sets a condition the way Flux's `runtime/conditions.Set` does (fluxcd/pkg, the code that
/// `MarkTrue`/`MarkFalse` call):
///
/// - `observedGeneration` is always set to `generation` (the object's `metadata.generation`);
/// - the message is trimmed to [`MAX_MESSAGE_LENGTH`] bytes;
/// - an existing condition of the same type keeps its `lastTransitionTime` unless its state
///   (status, reason or message) changes — Flux's code compares all three, not only the
///   status; a new or changed condition gets `now`;
/// - conditions are sorted: Stalled, Reconciling, Ready, then the rest by highest
///   `observedGeneration` and type.
///
/// `status` is `"True"`, `"False"` or `"Unknown"`.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    let mut new = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: trim_message(message),
        observed_generation: generation,
        last_transition_time: now,
    };
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        let same_state = existing.status == new.status
            && existing.reason == new.reason
            && existing.message == new.message;
        if same_state {
            new.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = new;
    } else {
        conditions.push(new);
    }
    conditions.sort_by(order);
}

/// Sets the condition to `True` (Flux's `conditions.MarkTrue`).
pub fn mark_true(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    set(conditions, type_, "True", reason, message, generation, now);
}

/// Sets the condition to `False` (Flux's `conditions.MarkFalse`).
pub fn mark_false(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    set(conditions, type_, "False", reason, message, generation, now);
}

/// Sets the condition to `Unknown` (Flux's `conditions.MarkUnknown`).
pub fn mark_unknown(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    set(
        conditions, type_, "Unknown", reason, message, generation, now,
    );
}

/// Marks `Reconciling=True` and removes `Stalled` (Flux's `conditions.MarkReconciling`),
/// done at the start of a reconcile.
pub fn mark_reconciling(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    delete(conditions, types::STALLED);
    mark_true(
        conditions,
        types::RECONCILING,
        reason,
        message,
        generation,
        now,
    );
}

/// Marks `Stalled=True` and removes `Reconciling` (Flux's `conditions.MarkStalled`), for an
/// error that needs a spec change.
pub fn mark_stalled(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    delete(conditions, types::RECONCILING);
    mark_true(conditions, types::STALLED, reason, message, generation, now);
}

/// Removes the condition of `type_` (Flux's `conditions.Delete`).
pub fn delete(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_changes_only_with_the_state() {
        let mut c = Vec::new();
        let ready = types::READY;
        mark_true(&mut c, ready, reasons::SUCCEEDED, "ok", Some(1), at(10));
        mark_true(&mut c, ready, reasons::SUCCEEDED, "ok", Some(2), at(20));
        assert_eq!(
            c[0].last_transition_time,
            at(10),
            "same state keeps the time"
        );
        assert_eq!(
            c[0].observed_generation,
            Some(2),
            "generation always updated"
        );
        mark_true(&mut c, ready, reasons::SUCCEEDED, "new", Some(2), at(25));
        assert_eq!(
            c[0].last_transition_time,
            at(25),
            "a new message is a transition"
        );
        mark_false(&mut c, ready, reasons::FAILED, "bad", Some(2), at(30));
        assert_eq!(c[0].last_transition_time, at(30));
        assert!(is_false(&c, ready));
    }

    #[test]
    fn conditions_sort_like_flux() {
        let mut c = Vec::new();
        let p = reasons::PROGRESSING;
        mark_true(&mut c, types::RECONCILING, p, "", None, at(1));
        mark_true(
            &mut c,
            types::ARTIFACT_IN_STORAGE,
            reasons::SUCCEEDED,
            "",
            None,
            at(1),
        );
        mark_unknown(&mut c, types::READY, p, "", None, at(1));
        mark_true(
            &mut c,
            types::FETCH_FAILED,
            reasons::FAILED,
            "",
            Some(2),
            at(1),
        );
        let order: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            order,
            ["Reconciling", "Ready", "FetchFailed", "ArtifactInStorage"]
        );
        mark_stalled(&mut c, reasons::URL_INVALID, "bad url", None, at(2));
        assert!(get(&c, types::RECONCILING).is_none());
        assert_eq!(c[0].type_, types::STALLED);
        mark_reconciling(&mut c, p, "again", None, at(3));
        assert!(get(&c, types::STALLED).is_none());
        assert!(is_true(&c, types::ARTIFACT_IN_STORAGE));
        delete(&mut c, types::FETCH_FAILED);
        assert!(get(&c, types::FETCH_FAILED).is_none());
    }

    #[test]
    fn long_messages_are_trimmed() {
        let mut c = Vec::new();
        let long = "x".repeat(MAX_MESSAGE_LENGTH + 10);
        mark_false(&mut c, types::READY, reasons::FAILED, &long, None, at(4));
        assert_eq!(c[0].message.len(), MAX_MESSAGE_LENGTH);
        assert!(c[0].message.ends_with("..."));
    }
}
