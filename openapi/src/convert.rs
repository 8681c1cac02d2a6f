//! Lossless conversion between v1beta2 and v1 (the storage version).
//!
//! Fields that exist only in v1beta2 (`OCIRepository.status.contentConfigChecksum`,
//! `HelmChart.spec.valuesFile`, `HelmChart.spec.accessFrom`) are kept in v1 objects as JSON in
//! the annotation [`V1BETA2_FIELDS_ANNOTATION`], the way Kubernetes' own conversions keep
//! fields a version lacks (e.g. `autoscaling.alpha.kubernetes.io/*`). Converting back restores
//! them and removes the annotation, so v1beta2 → v1 → v1beta2 and v1 → v1beta2 → v1 are
//! identities.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::meta::AccessFrom;
use crate::{v1, v1beta2};

/// Annotation on v1 objects holding v1beta2-only fields as a JSON object, e.g.
/// `{"spec":{"valuesFile":"values-prod.yaml"}}`.
pub const V1BETA2_FIELDS_ANNOTATION: &str = "source.toolkit.fluxcd.io/v1beta2-fields";

/// Puts `fields` (a JSON object, possibly empty) into the annotation, or removes the annotation
/// when there is nothing to keep.
fn stash(metadata: &mut ObjectMeta, fields: Map<String, Value>) {
    if fields.is_empty() {
        if let Some(annotations) = metadata.annotations.as_mut() {
            annotations.remove(V1BETA2_FIELDS_ANNOTATION);
        }
        return;
    }
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            V1BETA2_FIELDS_ANNOTATION.to_owned(),
            Value::Object(fields).to_string(),
        );
}

/// Takes the annotation out of `metadata`, parsed.
fn unstash(metadata: &mut ObjectMeta, kind: &'static str) -> Result<Map<String, Value>> {
    let Some(annotations) = metadata.annotations.as_mut() else {
        return Ok(Map::new());
    };
    let Some(raw) = annotations.remove(V1BETA2_FIELDS_ANNOTATION) else {
        return Ok(Map::new());
    };
    if annotations.is_empty() {
        metadata.annotations = None;
    }
    match serde_json::from_str::<Value>(&raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) | Err(_) => Err(Error::Conversion {
            kind,
            field: format!("metadata.annotations[{V1BETA2_FIELDS_ANNOTATION}]"),
            message: "not a JSON object".to_owned(),
        }),
    }
}

/// Reads `section.field` of the stashed fields as `T`.
fn take<T: serde::de::DeserializeOwned>(
    stashed: &Map<String, Value>,
    section: &str,
    field: &str,
    kind: &'static str,
) -> Result<Option<T>> {
    let Some(value) = stashed.get(section).and_then(|s| s.get(field)) else {
        return Ok(None);
    };
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| Error::Conversion {
            kind,
            field: format!("metadata.annotations[{V1BETA2_FIELDS_ANNOTATION}].{section}.{field}"),
            message: e.to_string(),
        })
}

fn put(stashed: &mut Map<String, Value>, section: &str, field: &str, value: Value) {
    let entry = stashed
        .entry(section.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = entry {
        map.insert(field.to_owned(), value);
    }
}

/// Converts a v1beta2 `OCIRepository` to v1.
pub fn oci_repository_to_v1(obj: v1beta2::OCIRepository) -> v1::OCIRepository {
    let mut metadata = obj.metadata;
    let mut stashed = Map::new();
    let status = obj.status.map(|s| {
        if let Some(sum) = s.content_config_checksum {
            put(
                &mut stashed,
                "status",
                "contentConfigChecksum",
                Value::String(sum),
            );
        }
        v1::OCIRepositoryStatus {
            observed_generation: s.observed_generation,
            conditions: s.conditions,
            url: s.url,
            artifact: s.artifact,
            observed_ignore: s.observed_ignore,
            observed_layer_selector: s.observed_layer_selector,
            last_handled_reconcile_at: s.last_handled_reconcile_at,
        }
    });
    stash(&mut metadata, stashed);
    v1::OCIRepository {
        api_version: crate::Version::V1.api_version().to_owned(),
        kind: obj.kind,
        metadata,
        spec: obj.spec,
        status,
    }
}

/// Converts a v1 `OCIRepository` to v1beta2.
///
/// # Errors
/// [`Error::Conversion`] when the [`V1BETA2_FIELDS_ANNOTATION`] annotation is not valid.
pub fn oci_repository_to_v1beta2(obj: v1::OCIRepository) -> Result<v1beta2::OCIRepository> {
    let mut metadata = obj.metadata;
    let stashed = unstash(&mut metadata, "OCIRepository")?;
    let checksum: Option<String> =
        take(&stashed, "status", "contentConfigChecksum", "OCIRepository")?;
    let mut status = obj.status.map(|s| v1beta2::OCIRepositoryStatus {
        observed_generation: s.observed_generation,
        conditions: s.conditions,
        url: s.url,
        artifact: s.artifact,
        content_config_checksum: None,
        observed_ignore: s.observed_ignore,
        observed_layer_selector: s.observed_layer_selector,
        last_handled_reconcile_at: s.last_handled_reconcile_at,
    });
    if let Some(sum) = checksum {
        status
            .get_or_insert_with(Default::default)
            .content_config_checksum = Some(sum);
    }
    Ok(v1beta2::OCIRepository {
        api_version: crate::Version::V1beta2.api_version().to_owned(),
        kind: obj.kind,
        metadata,
        spec: obj.spec,
        status,
    })
}

/// Converts a v1beta2 `HelmRepository` to v1 (the schemas are identical).
pub fn helm_repository_to_v1(obj: v1beta2::HelmRepository) -> v1::HelmRepository {
    v1::HelmRepository {
        api_version: crate::Version::V1.api_version().to_owned(),
        kind: obj.kind,
        metadata: obj.metadata,
        spec: obj.spec,
        status: obj.status,
    }
}

/// Converts a v1 `HelmRepository` to v1beta2 (the schemas are identical).
pub fn helm_repository_to_v1beta2(obj: v1::HelmRepository) -> v1beta2::HelmRepository {
    v1beta2::HelmRepository {
        api_version: crate::Version::V1beta2.api_version().to_owned(),
        kind: obj.kind,
        metadata: obj.metadata,
        spec: obj.spec,
        status: obj.status,
    }
}

/// Converts a v1beta2 `HelmChart` to v1, keeping `valuesFile` and `accessFrom` in the
/// annotation (Flux itself prepends `valuesFile` to `valuesFiles` at reconcile time; the
/// reconciler can read it back with [`helm_chart_values_file`]).
pub fn helm_chart_to_v1(obj: v1beta2::HelmChart) -> v1::HelmChart {
    let mut metadata = obj.metadata;
    let mut stashed = Map::new();
    let s = obj.spec;
    if let Some(file) = s.values_file {
        put(&mut stashed, "spec", "valuesFile", Value::String(file));
    }
    if let Some(access) = s.access_from {
        put(
            &mut stashed,
            "spec",
            "accessFrom",
            serde_json::to_value(access).unwrap_or_default(),
        );
    }
    stash(&mut metadata, stashed);
    v1::HelmChart {
        api_version: crate::Version::V1.api_version().to_owned(),
        kind: obj.kind,
        metadata,
        spec: v1::HelmChartSpec {
            chart: s.chart,
            version: s.version,
            source_ref: s.source_ref,
            interval: s.interval,
            reconcile_strategy: s.reconcile_strategy,
            values_files: s.values_files,
            ignore_missing_values_files: s.ignore_missing_values_files,
            suspend: s.suspend,
            verify: s.verify,
        },
        status: obj.status,
    }
}

/// Converts a v1 `HelmChart` to v1beta2, restoring `valuesFile`/`accessFrom` from the annotation.
///
/// # Errors
/// [`Error::Conversion`] when the [`V1BETA2_FIELDS_ANNOTATION`] annotation is not valid.
pub fn helm_chart_to_v1beta2(obj: v1::HelmChart) -> Result<v1beta2::HelmChart> {
    let mut metadata = obj.metadata;
    let stashed = unstash(&mut metadata, "HelmChart")?;
    let values_file: Option<String> = take(&stashed, "spec", "valuesFile", "HelmChart")?;
    let access_from: Option<AccessFrom> = take(&stashed, "spec", "accessFrom", "HelmChart")?;
    let s = obj.spec;
    Ok(v1beta2::HelmChart {
        api_version: crate::Version::V1beta2.api_version().to_owned(),
        kind: obj.kind,
        metadata,
        spec: v1beta2::HelmChartSpec {
            chart: s.chart,
            version: s.version,
            source_ref: s.source_ref,
            interval: s.interval,
            reconcile_strategy: s.reconcile_strategy,
            values_files: s.values_files,
            values_file,
            ignore_missing_values_files: s.ignore_missing_values_files,
            suspend: s.suspend,
            access_from,
            verify: s.verify,
        },
        status: obj.status,
    })
}

/// The deprecated v1beta2 `spec.valuesFile` kept on a stored v1 HelmChart, if any. Flux
/// prepends it to `spec.valuesFiles` when building the chart.
pub fn helm_chart_values_file(obj: &v1::HelmChart) -> Option<String> {
    let raw = obj
        .metadata
        .annotations
        .as_ref()?
        .get(V1BETA2_FIELDS_ANNOTATION)?;
    let value: Value = serde_json::from_str(raw).ok()?;
    value
        .get("spec")?
        .get("valuesFile")?
        .as_str()
        .map(str::to_owned)
}
