//! Types of `source.toolkit.fluxcd.io/v1beta2` (deprecated; served for existing manifests).
//!
//! The spec and status types are those of [`crate::v1`] except where Flux's v1beta2 had extra
//! fields: `OCIRepository.status.contentConfigChecksum` (deprecated), and `HelmChart.spec`'s
//! `valuesFile` (deprecated) and `accessFrom`. Those are kept across conversion to v1 in the
//! annotation [`crate::convert::V1BETA2_FIELDS_ANNOTATION`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::meta::AccessFrom;
pub use crate::meta::{Artifact, LocalObjectReference};
pub use crate::v1::{
    HelmChartStatus, HelmChartVerification, HelmRepositorySpec, HelmRepositoryStatus,
    LocalHelmChartSourceReference, OCILayerSelector, OCIRepositoryRef, OCIRepositorySpec,
    OCIRepositoryVerification, OIDCIdentityMatch,
};

/// `OCIRepository` in v1beta2: the v1 spec, plus the deprecated `status.contentConfigChecksum`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OCIRepository {
    /// `source.toolkit.fluxcd.io/v1beta2`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `OCIRepository`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state (identical to v1).
    #[serde(default)]
    pub spec: OCIRepositorySpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OCIRepositoryStatus>,
}

/// `OCIRepository.status` in v1beta2.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OCIRepositoryStatus {
    /// Last reconciled `metadata.generation`; `-1` until the first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Download address of the latest artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stored artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Deprecated: `sha256:<hex>` of the content configuration (`ignore`, `layerSelector`);
    /// Flux ≥ v0.31 writes it empty. Replaced by `observedIgnore`/`observedLayerSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_config_checksum: Option<String>,
    /// `spec.ignore` used for the current artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ignore: Option<String>,
    /// `spec.layerSelector` used for the current artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_layer_selector: Option<OCILayerSelector>,
    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// `HelmRepository` in v1beta2 (same spec and status as v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmRepository {
    /// `source.toolkit.fluxcd.io/v1beta2`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `HelmRepository`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state (identical to v1).
    #[serde(default)]
    pub spec: HelmRepositorySpec,
    /// Observed state (identical to v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HelmRepositoryStatus>,
}

/// `HelmChart` in v1beta2.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmChart {
    /// `source.toolkit.fluxcd.io/v1beta2`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `HelmChart`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: HelmChartSpec,
    /// Observed state (identical to v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HelmChartStatus>,
}

/// `HelmChart.spec` in v1beta2: v1's fields plus `valuesFile` and `accessFrom`; no CEL rule
/// restricting `verify` (this server still applies v1's rule after conversion).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    /// Chart name or path. Required.
    #[serde(default)]
    pub chart: String,
    /// Semver constraint of the chart version (default `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The source the chart comes from. Required.
    #[serde(default)]
    pub source_ref: LocalHelmChartSourceReference,
    /// Reconcile interval, Go duration (required).
    #[serde(default)]
    pub interval: String,
    /// `ChartVersion` (default) or `Revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_strategy: Option<String>,
    /// Values files merged in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_files: Option<Vec<String>>,
    /// Deprecated: a single values file, prepended to `valuesFiles` by Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_file: Option<String>,
    /// Skip missing values files instead of failing. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_missing_values_files: Option<bool>,
    /// Stop reconciling. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Namespaces allowed to refer to this chart (not implemented by Flux, stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_from: Option<AccessFrom>,
    /// Signature verification (HelmRepository sources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<HelmChartVerification>,
}

/// A list of v1beta2 `OCIRepository` objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OCIRepositoryList {
    /// `source.toolkit.fluxcd.io/v1beta2`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `OCIRepositoryList`.
    #[serde(default)]
    pub kind: String,
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default)]
    pub items: Vec<OCIRepository>,
}

/// A list of v1beta2 `HelmRepository` objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmRepositoryList {
    /// `source.toolkit.fluxcd.io/v1beta2`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `HelmRepositoryList`.
    #[serde(default)]
    pub kind: String,
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default)]
    pub items: Vec<HelmRepository>,
}

/// A list of v1beta2 `HelmChart` objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmChartList {
    /// `source.toolkit.fluxcd.io/v1beta2`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `HelmChartList`.
    #[serde(default)]
    pub kind: String,
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default)]
    pub items: Vec<HelmChart>,
}
