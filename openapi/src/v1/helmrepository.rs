//! `HelmRepository` v1 (`api/v1/helmrepository_types.go`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::meta::{AccessFrom, Artifact, LocalObjectReference};

/// `spec.type` values; unset means `default` (an HTTP/S Helm index).
pub const HELM_REPOSITORY_TYPES: &[&str] = &["default", "oci"];

/// A Helm repository. With `type: oci` it is a static holder of a registry address and
/// credentials for HelmCharts (Flux keeps its status empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmRepository {
    /// `source.toolkit.fluxcd.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `HelmRepository`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: HelmRepositorySpec,
    /// Observed state; defaults to `{"observedGeneration": -1}` on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HelmRepositoryStatus>,
}

/// `HelmRepository.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositorySpec {
    /// Repository address (required; pattern `^(http|https|oci)://.*$`); for `type: oci`,
    /// `oci://<registry>/<path>` to which the chart name is appended.
    #[serde(default)]
    pub url: String,
    /// Secret with `username`/`password`, or a `kubernetes.io/dockerconfigjson` Secret (OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Secret with `tls.crt`/`tls.key`/`ca.crt`; takes precedence over TLS keys in `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Pass credentials to hosts other than the index host (HTTP index only). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_credentials: Option<bool>,
    /// Reconcile interval, Go duration (optional; ignored for `type: oci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Plain-HTTP registry (only for `type: oci`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Timeout of index download / OCI operations, Go duration without hours; Flux's
    /// `GetTimeout()` uses `1m` when unset (no schema default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Stop reconciling. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Namespaces allowed to refer to this repository (not implemented by Flux, stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_from: Option<AccessFrom>,
    /// `default` (HTTP/S index) or `oci`; unset means `default` (no schema default).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Cloud provider for registry login (`type: oci`, only when `secretRef` is unset):
    /// `generic` (default), `aws`, `azure`, `gcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl HelmRepositorySpec {
    /// Whether this is an OCI repository (`type: oci`).
    pub fn is_oci(&self) -> bool {
        self.type_.as_deref() == Some("oci")
    }

    /// `spec.timeout`, or `1m` when unset (Flux's `GetTimeout`).
    pub fn timeout_or_default(&self) -> &str {
        self.timeout.as_deref().unwrap_or("1m")
    }
}

/// `HelmRepository.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositoryStatus {
    /// Last reconciled `metadata.generation`; `-1` until the first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Address of the index (HTTP repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stored index artifact (HTTP repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Value of the `reconcile.fluxcd.io/requestedAt` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// A list of `HelmRepository` objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HelmRepositoryList {
    /// `source.toolkit.fluxcd.io/v1`.
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
