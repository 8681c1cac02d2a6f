//! The storage error type and its Kubernetes classification.

use std::path::PathBuf;

use crate::key::ObjectKey;

/// The message Kubernetes uses for an optimistic-concurrency conflict
/// (`k8s.io/apiserver: pkg/registry/generic/registry/store.go` `OptimisticLockErrorMsg`).
pub const OPTIMISTIC_LOCK_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// The message Kubernetes uses for an expired continue token
/// (`k8s.io/apiserver: pkg/storage/etcd3/errors.go`).
pub const EXPIRED_CONTINUE_MESSAGE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// Everything the storage crate can fail with.
///
/// The first variants are the Kubernetes API errors the REST layer maps to a `Status`:
/// `NotFound` → 404, `AlreadyExists` → 409, `Conflict` → 409, `Expired` → 410,
/// `InvalidSelector`/`InvalidFieldSelector`/`InvalidContinue` → 400, `Invalid` → 422.
/// Their `Display` text is Kubernetes' message for the same condition. The remaining variants
/// are internal failures (500).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist: `ocirepositories.source.toolkit.fluxcd.io "x" not found`.
    #[error("{} \"{}\" not found", .key.resource, .key.name)]
    NotFound {
        /// The object asked for.
        key: ObjectKey,
    },
    /// A create named an existing object:
    /// `ocirepositories.source.toolkit.fluxcd.io "x" already exists`.
    #[error("{} \"{}\" already exists", .key.resource, .key.name)]
    AlreadyExists {
        /// The object that exists.
        key: ObjectKey,
    },
    /// A precondition (resourceVersion or uid) did not hold:
    /// `Operation cannot be fulfilled on ocirepositories.source.toolkit.fluxcd.io "x": <message>`.
    #[error("Operation cannot be fulfilled on {} \"{}\": {message}", .key.resource, .key.name)]
    Conflict {
        /// The object written.
        key: ObjectKey,
        /// Why, e.g. [`OPTIMISTIC_LOCK_MESSAGE`].
        message: String,
    },
    /// 410 Gone, reason `Expired`: a watch or continue token refers to a compacted revision,
    /// or a watcher fell too far behind (`too old resource version: 5 (12)`).
    #[error("{message}")]
    Expired {
        /// Kubernetes' message.
        message: String,
    },
    /// The label selector does not parse (400).
    #[error("{message}")]
    InvalidSelector {
        /// What is wrong, e.g. `unable to parse requirement: ...`.
        message: String,
    },
    /// The field selector does not parse or names an unsupported field (400), e.g.
    /// `field label not supported: spec.url`.
    #[error("{message}")]
    InvalidFieldSelector {
        /// What is wrong.
        message: String,
    },
    /// The continue token is malformed (400).
    #[error("{message}")]
    InvalidContinue {
        /// What is wrong.
        message: String,
    },
    /// The object is invalid for this operation (422), e.g. `metadata.name` missing.
    #[error("{field}: {message}")]
    Invalid {
        /// The field path, e.g. `metadata.resourceVersion`.
        field: String,
        /// Kubernetes' detail, e.g. `resourceVersion should not be set on objects to be created`.
        message: String,
    },
    /// A SQLite operation failed.
    #[error("sqlite: {operation}")]
    Database {
        /// What the store was doing, e.g. `commit`, `list objects`.
        operation: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// An etcd request failed (the cluster is unreachable, has no leader, or refused it).
    #[error("etcd: {operation}")]
    Etcd {
        /// What the store was doing, e.g. `create`, `list`, `watch`.
        operation: &'static str,
        /// The etcd client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// No etcd member answered within the dial timeout (`--etcd-servers`).
    #[error("etcd: no member of {endpoints} answered within {} s", .timeout.as_secs())]
    EtcdUnavailable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// How long the store waited.
        timeout: std::time::Duration,
    },
    /// The group transaction this write was part of failed and was rolled back; nothing of
    /// it was stored.
    #[error("the storage transaction failed: {message}")]
    Transaction {
        /// The underlying failure.
        message: String,
    },
    /// A stored value is not valid JSON (database corruption or a foreign writer).
    #[error("decoding stored object {key}")]
    Decode {
        /// The row's key as `resource/namespace/name`.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A file-system operation on the data directory failed.
    #[error("{operation} {}", .path.display())]
    Io {
        /// What the store was doing, e.g. `creating artifact directory`.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// An artifact path or name component is not acceptable (it could escape the root or is
    /// not a DNS-1123 name).
    #[error("invalid artifact path component {value:?}: {reason}")]
    InvalidPath {
        /// The rejected component.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A stored artifact's content does not match its digest (it was corrupted or replaced
    /// on disk): it must not be served; the reconcile rebuilds it. 503 Service Unavailable.
    #[error("artifact {} does not match its digest {expected} (its content hashes to {actual}); it is not served until it is rebuilt", .path.display())]
    ArtifactDigestMismatch {
        /// The file.
        path: PathBuf,
        /// The digest it should have (`sha256:<hex>`).
        expected: String,
        /// The digest of its content.
        actual: String,
    },
    /// A stored artifact has no recorded digest to check it against, so it is not served
    /// until a reconcile verifies it. 503 Service Unavailable.
    #[error("artifact {} has no recorded digest to verify it against; it is not served until it is verified", .path.display())]
    ArtifactDigestUnknown {
        /// The file.
        path: PathBuf,
    },
    /// Another store (in this or another process) has the database open: only one may, as
    /// the writer owns the revision counter. Guarded by an exclusive lock on `<db>.lock`.
    #[error("database {} is in use by another store", .path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The store has been closed (or its writer thread died).
    #[error("the store is closed")]
    Closed,
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }
    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
    /// True for [`Error::Expired`] (HTTP 410).
    pub fn is_expired(&self) -> bool {
        matches!(self, Error::Expired { .. })
    }
    /// True for a client error that maps to 400 Bad Request (bad label/field selector or
    /// continue token).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Error::InvalidSelector { .. }
                | Error::InvalidFieldSelector { .. }
                | Error::InvalidContinue { .. }
        )
    }
    /// True when a stored artifact file does not exist ([`Error::Io`] of kind `NotFound`).
    pub fn is_artifact_missing(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
    /// True for [`Error::Invalid`] (HTTP 422).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }
    /// The HTTP status code Kubernetes uses for this error (500 for internal failures).
    pub fn status_code(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } | Error::Conflict { .. } => 409,
            Error::Expired { .. } => 410,
            Error::InvalidSelector { .. }
            | Error::InvalidFieldSelector { .. }
            | Error::InvalidContinue { .. } => 400,
            Error::Invalid { .. } => 422,
            Error::Closed
            | Error::EtcdUnavailable { .. }
            | Error::ArtifactDigestMismatch { .. }
            | Error::ArtifactDigestUnknown { .. } => 503,
            _ => 500,
        }
    }
    /// The Kubernetes `Status.reason` for this error (`NotFound`, `AlreadyExists`, `Conflict`,
    /// `Expired`, `BadRequest`, `Invalid`, `ServiceUnavailable`, `InternalError`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } => "Conflict",
            Error::Expired { .. } => "Expired",
            Error::InvalidSelector { .. }
            | Error::InvalidFieldSelector { .. }
            | Error::InvalidContinue { .. } => "BadRequest",
            Error::Invalid { .. } => "Invalid",
            Error::Closed
            | Error::EtcdUnavailable { .. }
            | Error::ArtifactDigestMismatch { .. }
            | Error::ArtifactDigestUnknown { .. } => "ServiceUnavailable",
            _ => "InternalError",
        }
    }

    pub(crate) fn db(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Database { operation, source }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn conflict(key: &ObjectKey, message: impl Into<String>) -> Error {
        Error::Conflict {
            key: key.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn too_old(requested: u64, oldest: u64) -> Error {
        Error::Expired {
            message: format!("too old resource version: {requested} ({oldest})"),
        }
    }
}
