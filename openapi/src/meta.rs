//! Types shared by every kind, from Flux's `github.com/fluxcd/pkg/apis/meta` and `apis/acl`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

/// A reference to an object in the same namespace (`meta.LocalObjectReference`), used for
/// Secrets (`secretRef`, `certSecretRef`, `proxySecretRef`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalObjectReference {
    /// Name of the referent. Required and non-empty (validation reports `Required value`).
    #[serde(default)]
    pub name: String,
}

/// The output of a source reconciliation (`meta.Artifact`), read by Flux consumers from
/// `status.artifact`.
///
/// All fields but `size` and `metadata` are required by Flux's CRD schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Relative path of the artifact in storage, e.g.
    /// `ocirepository/<namespace>/<name>/<digest>.tar.gz`.
    #[serde(default)]
    pub path: String,
    /// HTTP address the artifact is downloadable from.
    #[serde(default)]
    pub url: String,
    /// Human-readable identifier of the source revision, e.g. `latest@sha256:<hex>` for an
    /// OCIRepository (RFC-0005) or the chart version for a HelmChart.
    #[serde(default)]
    pub revision: String,
    /// Digest of the artifact file, `<algorithm>:<hex>` (pattern
    /// `^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`).
    #[serde(default)]
    pub digest: String,
    /// When the artifact was last updated (RFC 3339, seconds precision).
    pub last_update_time: Time,
    /// Size of the artifact file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Free-form metadata, e.g. the OCI manifest annotations of the pulled artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Artifact {
    /// Whether the artifact has `revision` (string equality, Flux's `HasRevision`).
    pub fn has_revision(&self, revision: &str) -> bool {
        self.revision == revision
    }

    /// Whether the artifact has `digest` (string equality, Flux's `HasDigest`).
    pub fn has_digest(&self, digest: &str) -> bool {
        self.digest == digest
    }
}

/// Which namespaces may refer to an object (`acl.AccessFrom`). Flux marks it "not implemented,
/// provisional"; this server stores it and ignores it likewise.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessFrom {
    /// Namespace selectors, ORed. Required (may be empty); a missing list is a decode error
    /// (`Required value`), as in Flux's schema.
    pub namespace_selectors: Vec<NamespaceSelector>,
}

/// One namespace selector of [`AccessFrom`] (`acl.NamespaceSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels a namespace must carry, ANDed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// The finalizer Flux's source-controller adds to every source object (`finalizers.fluxcd.io`).
pub const SOURCE_FINALIZER: &str = "finalizers.fluxcd.io";

/// Annotation that requests an immediate reconciliation; its value is copied to
/// `status.lastHandledReconcileAt` once handled (`meta.ReconcileRequestAnnotation`).
pub const RECONCILE_REQUEST_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";
