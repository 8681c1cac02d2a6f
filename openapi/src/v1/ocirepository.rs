//! `OCIRepository` v1 (`api/v1/ocirepository_types.go`, `api/v1/ociverification_types.go`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::meta::{Artifact, LocalObjectReference};

/// `spec.provider` values (`generic` is the default).
pub const OCI_PROVIDERS: &[&str] = &["generic", "aws", "azure", "gcp"];
/// `spec.layerSelector.operation` values (`extract` when unset).
pub const LAYER_OPERATIONS: &[&str] = &["extract", "copy"];
/// `spec.verify.provider` values (`cosign` is the default).
pub const VERIFICATION_PROVIDERS: &[&str] = &["cosign", "notation"];
/// The URL scheme prefix every `spec.url` must have.
pub const OCI_REPOSITORY_PREFIX: &str = "oci://";

/// An OCI artifact source: Flux resolves `spec.ref` in the repository at `spec.url`, verifies it,
/// pulls one layer and stores it as an artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OCIRepository {
    /// `source.toolkit.fluxcd.io/v1` (set by [`crate::encode`]).
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `OCIRepository`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: OCIRepositorySpec,
    /// Observed state; defaults to `{"observedGeneration": -1}` on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OCIRepositoryStatus>,
}

/// `OCIRepository.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OCIRepositorySpec {
    /// Repository address, `oci://<host>/<path>` without tag or digest (required; pattern
    /// `^oci://.*$`).
    #[serde(default)]
    pub url: String,
    /// Which artifact to pull: digest > semver > tag > `latest`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<OCIRepositoryRef>,
    /// Which layer to take and how (first layer, extracted, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_selector: Option<OCILayerSelector>,
    /// Cloud provider for registry login: `generic` (default), `aws`, `azure`, `gcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret with registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Signature verification of the artifact before it is pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<OCIRepositoryVerification>,
    /// ServiceAccount whose `imagePullSecrets` (or workload identity) authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secret with `tls.crt`, `tls.key` (client certificate) and/or `ca.crt` (added to the
    /// system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Secret with `address` (required), `username`, `password` of an HTTP/SOCKS5 proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    /// Reconcile interval, Go duration (required; pattern `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`).
    #[serde(default)]
    pub interval: String,
    /// Timeout of remote operations, Go duration without hours (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `.sourceignore`-format exclusions applied to the extracted content; when unset, Flux's
    /// default exclusions apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Plain HTTP registry (or, without `certSecretRef`, skip TLS verification). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Stop reconciling. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

impl OCIRepositorySpec {
    /// `spec.provider`, or `generic` when unset.
    pub fn provider_or_default(&self) -> &str {
        self.provider.as_deref().unwrap_or("generic")
    }

    /// `spec.timeout`, or `60s` when unset.
    pub fn timeout_or_default(&self) -> &str {
        self.timeout.as_deref().unwrap_or("60s")
    }

    /// `spec.insecure`, false when unset.
    pub fn is_insecure(&self) -> bool {
        self.insecure.unwrap_or(false)
    }

    /// `spec.suspend`, false when unset.
    pub fn is_suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }
}

/// `spec.ref`: which artifact to pull. All optional; precedence digest > semver > tag; nothing
/// set means tag `latest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OCIRepositoryRef {
    /// Image digest `sha256:<64 hex>`; takes precedence over semver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Masterminds semver constraint over the tags; takes precedence over tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Go regular expression filtering tags before semver selection (only used with `semver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_filter: Option<String>,
    /// Tag name; defaults to `latest` (in the controller, not the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// `spec.layerSelector`: which layer of the manifest to take.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OCILayerSelector {
    /// Media type of the layer; the first matching layer is taken. Unset: the first layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `extract` (untar the gzip layer, the default) or `copy` (store the blob as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

impl OCILayerSelector {
    /// The operation, `extract` when unset (Flux's `GetLayerOperation`).
    pub fn operation_or_default(&self) -> &str {
        self.operation.as_deref().unwrap_or("extract")
    }
}

/// `spec.verify` (`OCIRepositoryVerification`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OCIRepositoryVerification {
    /// `cosign` (default) or `notation`. Required in the schema, defaulted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Secret with public keys (`*.pub` for cosign; `trustpolicy.json` + certificates for
    /// notation). Unset with cosign: keyless verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Keyless: accepted OIDC issuer/subject pairs (Go regular expressions, ORed).
    #[serde(
        rename = "matchOIDCIdentity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub match_oidc_identity: Option<Vec<OIDCIdentityMatch>>,
    /// Secret with key `trusted_root.json`: a Sigstore trusted root for a private Sigstore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root_secret_ref: Option<LocalObjectReference>,
}

impl OCIRepositoryVerification {
    /// The provider, `cosign` when unset.
    pub fn provider_or_default(&self) -> &str {
        self.provider.as_deref().unwrap_or("cosign")
    }
}

/// One accepted keyless signing identity (`OIDCIdentityMatch`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OIDCIdentityMatch {
    /// Go regular expression matched against the OIDC issuer (required).
    #[serde(default)]
    pub issuer: String,
    /// Go regular expression matched against the certificate subject (required).
    #[serde(default)]
    pub subject: String,
}

/// `OCIRepository.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OCIRepositoryStatus {
    /// Last reconciled `metadata.generation`; `-1` until the first reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions (`Ready`, `Reconciling`, `Stalled`, `ArtifactInStorage`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Download address of the latest artifact (best effort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stored artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
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

/// A list of `OCIRepository` objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OCIRepositoryList {
    /// `source.toolkit.fluxcd.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `OCIRepositoryList`.
    #[serde(default)]
    pub kind: String,
    /// List metadata (resourceVersion, continue).
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default)]
    pub items: Vec<OCIRepository>,
}
