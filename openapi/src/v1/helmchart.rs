//! `HelmChart` v1 (`api/v1/helmchart_types.go`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::meta::{Artifact, LocalObjectReference};
use crate::v1::OIDCIdentityMatch;

/// `spec.sourceRef.kind` values.
pub const SOURCE_KINDS: &[&str] = &["HelmRepository", "GitRepository", "Bucket"];
/// `spec.reconcileStrategy` values (`ChartVersion` is the default).
pub const RECONCILE_STRATEGIES: &[&str] = &["ChartVersion", "Revision"];

/// A Helm chart resolved from a source (here: an OCI `HelmRepository`), pulled, optionally
/// verified and stored as a `.tgz` artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmChart {
    /// `source.toolkit.fluxcd.io/v1`.
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
    /// Observed state; defaults to `{"observedGeneration": -1}` on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HelmChartStatus>,
}

/// `HelmChart.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    /// Chart name (HelmRepository) or path (GitRepository/Bucket). Required.
    #[serde(default)]
    pub chart: String,
    /// Semver constraint of the chart version (default `*`: latest stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The source the chart comes from. Required.
    #[serde(default)]
    pub source_ref: LocalHelmChartSourceReference,
    /// Reconcile interval, Go duration (required).
    #[serde(default)]
    pub interval: String,
    /// What triggers a new artifact: `ChartVersion` (default) or `Revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_strategy: Option<String>,
    /// Values files merged in order into the chart's `values.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_files: Option<Vec<String>>,
    /// Skip missing values files instead of failing. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_missing_values_files: Option<bool>,
    /// Stop reconciling. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Signature verification; only with a `HelmRepository` source (Flux's CEL rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<HelmChartVerification>,
}

impl HelmChartSpec {
    /// `spec.version`, or `*` when unset.
    pub fn version_or_default(&self) -> &str {
        self.version.as_deref().unwrap_or("*")
    }

    /// `spec.reconcileStrategy`, or `ChartVersion` when unset.
    pub fn reconcile_strategy_or_default(&self) -> &str {
        self.reconcile_strategy.as_deref().unwrap_or("ChartVersion")
    }
}

/// `spec.sourceRef` (`LocalHelmChartSourceReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalHelmChartSourceReference {
    /// API version of the referent (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `HelmRepository`, `GitRepository` or `Bucket` (required).
    #[serde(default)]
    pub kind: String,
    /// Name of the referent in the same namespace (required).
    #[serde(default)]
    pub name: String,
}

/// `spec.verify` of a HelmChart (`HelmChartVerification`: like OCIRepository's without
/// `trustedRootSecretRef`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartVerification {
    /// `cosign` (default) or `notation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Secret with public keys; unset with cosign means keyless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Keyless: accepted OIDC issuer/subject pairs (Go regular expressions, ORed).
    #[serde(
        rename = "matchOIDCIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub match_oidc_identity: Option<Vec<OIDCIdentityMatch>>,
}

/// `HelmChart.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartStatus {
    /// Last reconciled `metadata.generation`; `-1` until the first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Last observed `artifact.revision` of the source (not set for OCI HelmRepositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_source_artifact_revision: Option<String>,
    /// Last observed chart name (`spec.chart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_chart_name: Option<String>,
    /// Values files that were found (only with `ignoreMissingValuesFiles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_values_files: Option<Vec<String>>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Download address of the latest artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stored chart artifact (revision = chart version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// A list of `HelmChart` objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmChartList {
    /// `source.toolkit.fluxcd.io/v1`.
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
