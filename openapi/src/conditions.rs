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

/// Sets a condition the way Flux's `conditions.Set` does: an existing condition of the same
/// type is replaced, keeping its `lastTransitionTime` unless the status changed; conditions
/// are kept sorted with `Ready` first, then by type.
///
/// `status` is `"True"`, `"False"` or `"Unknown"`; `observed_generation` is the object's
/// `metadata.generation`; `now` is used as `lastTransitionTime` for a new or changed condition.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    let mut new = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation,
        last_transition_time: now,
    };
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status == new.status {
            new.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = new;
    } else {
        conditions.push(new);
    }
    conditions.sort_by(|a, b| {
        (a.type_ != types::READY, a.type_.as_str())
            .cmp(&(b.type_ != types::READY, b.type_.as_str()))
    });
}

/// Sets the condition to `True` (Flux's `conditions.MarkTrue`).
pub fn mark_true(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    set(
        conditions,
        type_,
        "True",
        reason,
        message,
        observed_generation,
        now,
    );
}

/// Sets the condition to `False` (Flux's `conditions.MarkFalse`).
pub fn mark_false(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    set(
        conditions,
        type_,
        "False",
        reason,
        message,
        observed_generation,
        now,
    );
}

/// Sets the condition to `Unknown` (Flux's `conditions.MarkUnknown`).
pub fn mark_unknown(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    set(
        conditions,
        type_,
        "Unknown",
        reason,
        message,
        observed_generation,
        now,
    );
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
    fn transition_time_changes_only_with_status() {
        let mut c = Vec::new();
        mark_true(
            &mut c,
            types::READY,
            reasons::SUCCEEDED,
            "ok",
            Some(1),
            at(10),
        );
        mark_true(
            &mut c,
            types::READY,
            reasons::SUCCEEDED,
            "still ok",
            Some(2),
            at(20),
        );
        assert_eq!(c[0].last_transition_time, at(10));
        assert_eq!(c[0].message, "still ok");
        assert_eq!(c[0].observed_generation, Some(2));
        mark_false(
            &mut c,
            types::READY,
            reasons::FAILED,
            "bad",
            Some(2),
            at(30),
        );
        assert_eq!(c[0].last_transition_time, at(30));
        assert!(is_false(&c, types::READY));
    }

    #[test]
    fn ready_sorts_first() {
        let mut c = Vec::new();
        mark_true(
            &mut c,
            types::RECONCILING,
            reasons::PROGRESSING,
            "",
            None,
            at(1),
        );
        mark_true(
            &mut c,
            types::ARTIFACT_IN_STORAGE,
            reasons::SUCCEEDED,
            "",
            None,
            at(1),
        );
        mark_unknown(&mut c, types::READY, reasons::PROGRESSING, "", None, at(1));
        let order: Vec<&str> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(order, ["Ready", "ArtifactInStorage", "Reconciling"]);
        delete(&mut c, types::RECONCILING);
        assert!(get(&c, types::RECONCILING).is_none());
        assert!(is_true(&c, types::ARTIFACT_IN_STORAGE));
    }
}
