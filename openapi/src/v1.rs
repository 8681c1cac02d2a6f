//! Types of `source.toolkit.fluxcd.io/v1`, the storage version.
//!
//! Optional fields are `Option`s so that what a client sent is kept exactly (an explicit
//! `insecure: false` stays); required strings default to `""` when absent so that validation, not
//! deserialization, reports them. Defaults are applied by [`crate::decode`]; the
//! `*_or_default` helpers give Flux's code-level defaults for unset fields.

mod helmchart;
mod helmrepository;
mod ocirepository;

pub use crate::meta::{Artifact, LocalObjectReference};
pub use helmchart::{
    HelmChart, HelmChartList, HelmChartSpec, HelmChartStatus, HelmChartVerification,
    LocalHelmChartSourceReference, RECONCILE_STRATEGIES, SOURCE_KINDS,
};
pub use helmrepository::{
    HELM_REPOSITORY_TYPES, HelmRepository, HelmRepositoryList, HelmRepositorySpec,
    HelmRepositoryStatus,
};
pub use ocirepository::{
    LAYER_OPERATIONS, OCI_PROVIDERS, OCI_REPOSITORY_PREFIX, OCILayerSelector, OCIRepository,
    OCIRepositoryList, OCIRepositoryRef, OCIRepositorySpec, OCIRepositoryStatus,
    OCIRepositoryVerification, OIDCIdentityMatch, VERIFICATION_PROVIDERS,
};
