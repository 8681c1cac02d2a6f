//! Defaulting exactly as Flux's CRD schemas declare it (structural defaults: a default applies
//! when the field is absent and its parent object is present).
//!
//! | kind | field | default |
//! |---|---|---|
//! | OCIRepository | `spec.provider` | `generic` |
//! | OCIRepository | `spec.timeout` | `60s` |
//! | OCIRepository | `spec.verify.provider` (when `verify` is set) | `cosign` |
//! | HelmRepository | `spec.provider` | `generic` |
//! | HelmChart | `spec.version` | `*` |
//! | HelmChart | `spec.reconcileStrategy` | `ChartVersion` |
//! | HelmChart | `spec.verify.provider` (when `verify` is set) | `cosign` |
//! | all | `status` (when absent) | `{"observedGeneration": -1}` |
//!
//! Not defaulted in the API (Flux applies these in code, see the `*_or_default` helpers):
//! `spec.ref.tag` (`latest`), `spec.layerSelector.operation` (`extract`), HelmRepository
//! `spec.type` (`default`) and `spec.timeout` (`1m`).

use crate::v1;

fn default_str(field: &mut Option<String>, value: &str) {
    if field.is_none() {
        *field = Some(value.to_owned());
    }
}

/// Applies the defaults of an `OCIRepository`.
pub fn oci_repository(obj: &mut v1::OCIRepository) {
    default_str(&mut obj.spec.provider, "generic");
    default_str(&mut obj.spec.timeout, "60s");
    if let Some(verify) = obj.spec.verify.as_mut() {
        default_str(&mut verify.provider, "cosign");
    }
    if obj.status.is_none() {
        obj.status = Some(Default::default());
        if let Some(status) = obj.status.as_mut() {
            status.observed_generation = Some(-1);
        }
    }
}

/// Applies the defaults of a `HelmRepository`.
pub fn helm_repository(obj: &mut v1::HelmRepository) {
    default_str(&mut obj.spec.provider, "generic");
    if obj.status.is_none() {
        obj.status = Some(Default::default());
        if let Some(status) = obj.status.as_mut() {
            status.observed_generation = Some(-1);
        }
    }
}

/// Applies the defaults of a `HelmChart`.
pub fn helm_chart(obj: &mut v1::HelmChart) {
    default_str(&mut obj.spec.version, "*");
    default_str(&mut obj.spec.reconcile_strategy, "ChartVersion");
    if let Some(verify) = obj.spec.verify.as_mut() {
        default_str(&mut verify.provider, "cosign");
    }
    if obj.status.is_none() {
        obj.status = Some(Default::default());
        if let Some(status) = obj.status.as_mut() {
            status.observed_generation = Some(-1);
        }
    }
}
