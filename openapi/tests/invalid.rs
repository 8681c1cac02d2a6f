//! Table-driven validation: each invalid object yields exactly the expected set of field
//! paths, in both served versions (decode errors count as their causes).

use std::collections::BTreeSet;

use openapi::{Version, decode, resource_by_kind, validate};
use serde_json::{Value, json};

/// RFC 7386 merge patch (null removes a key).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn base(kind: &str) -> Value {
    let spec = match kind {
        "OCIRepository" => {
            json!({"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "interval": "5m"})
        }
        "HelmRepository" => {
            json!({"url": "oci://ghcr.io/stefanprodan/charts", "type": "oci", "interval": "5m"})
        }
        _ => {
            json!({"chart": "podinfo", "interval": "5m", "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}})
        }
    };
    json!({"kind": kind, "metadata": {"name": "podinfo", "namespace": "flux-system"}, "spec": spec})
}

/// Field paths reported for `obj` decoded as `version`.
fn fields(kind: &str, version: Version, obj: &Value) -> BTreeSet<String> {
    let resource = resource_by_kind(kind).unwrap();
    let mut body = obj.clone();
    if body.get("apiVersion").is_none() {
        body["apiVersion"] = json!(version.api_version());
    }
    match decode(resource, version, body) {
        Ok(decoded) => validate(resource, &decoded.object)
            .into_iter()
            .map(|c| c.field)
            .collect(),
        Err(e) => {
            let causes = e.causes();
            assert!(!causes.is_empty(), "error without causes: {e}");
            causes.into_iter().map(|c| c.field).collect()
        }
    }
}

fn digest(hex_len: usize) -> String {
    format!("sha256:{}", "0".repeat(hex_len))
}

#[test]
fn invalid_objects_report_exactly_their_fields() {
    let o = "OCIRepository";
    let r = "HelmRepository";
    let c = "HelmChart";
    let cases: Vec<(&str, &str, Value, &[&str])> = vec![
        // OCIRepository spec.
        (
            o,
            "url missing",
            json!({"spec": {"url": null}}),
            &["spec.url"],
        ),
        (
            o,
            "url wrong scheme",
            json!({"spec": {"url": "https://ghcr.io/org/app"}}),
            &["spec.url"],
        ),
        (
            o,
            "url with tag",
            json!({"spec": {"url": "oci://ghcr.io/org/app:v1.0.0"}}),
            &["spec.url"],
        ),
        (
            o,
            "url with digest",
            json!({"spec": {"url": format!("oci://ghcr.io/org/app@{}", digest(64))}}),
            &["spec.url"],
        ),
        (
            o,
            "url uppercase path",
            json!({"spec": {"url": "oci://ghcr.io/Org/App"}}),
            &["spec.url"],
        ),
        (
            o,
            "url without repository",
            json!({"spec": {"url": "oci://ghcr.io"}}),
            &["spec.url"],
        ),
        (
            o,
            "interval missing",
            json!({"spec": {"interval": null}}),
            &["spec.interval"],
        ),
        (
            o,
            "interval without unit",
            json!({"spec": {"interval": "5"}}),
            &["spec.interval"],
        ),
        (
            o,
            "interval in days",
            json!({"spec": {"interval": "1d"}}),
            &["spec.interval"],
        ),
        (
            o,
            "timeout in hours",
            json!({"spec": {"timeout": "1h"}}),
            &["spec.timeout"],
        ),
        (
            o,
            "timeout garbage",
            json!({"spec": {"timeout": "soon"}}),
            &["spec.timeout"],
        ),
        (
            o,
            "provider unknown",
            json!({"spec": {"provider": "docker"}}),
            &["spec.provider"],
        ),
        (
            o,
            "digest without algorithm",
            json!({"spec": {"ref": {"digest": "0123abcd"}}}),
            &["spec.ref.digest"],
        ),
        (
            o,
            "digest too short",
            json!({"spec": {"ref": {"digest": digest(10)}}}),
            &["spec.ref.digest"],
        ),
        (
            o,
            "digest unknown algorithm",
            json!({"spec": {"ref": {"digest": format!("md5:{}", "0".repeat(32))}}}),
            &["spec.ref.digest"],
        ),
        (
            o,
            "digest not hex",
            json!({"spec": {"ref": {"digest": format!("sha256:{}", "z".repeat(64))}}}),
            &["spec.ref.digest"],
        ),
        (
            o,
            "semver unparsable",
            json!({"spec": {"ref": {"semver": "one-point-oh"}}}),
            &["spec.ref.semver"],
        ),
        (
            o,
            "semverFilter bad regex",
            json!({"spec": {"ref": {"semver": "1.x", "semverFilter": "(rc"}}}),
            &["spec.ref.semverFilter"],
        ),
        (
            o,
            "tag invalid",
            json!({"spec": {"ref": {"tag": "-latest"}}}),
            &["spec.ref.tag"],
        ),
        (
            o,
            "tag with a non-ASCII letter",
            json!({"spec": {"ref": {"tag": "v1-été"}}}),
            &["spec.ref.tag"],
        ),
        (
            o,
            "tag of 129 characters",
            json!({"spec": {"ref": {"tag": "a".repeat(129)}}}),
            &["spec.ref.tag"],
        ),
        (
            o,
            "layer operation unknown",
            json!({"spec": {"layerSelector": {"operation": "move"}}}),
            &["spec.layerSelector.operation"],
        ),
        (
            o,
            "secretRef empty name",
            json!({"spec": {"secretRef": {"name": ""}}}),
            &["spec.secretRef.name"],
        ),
        (
            o,
            "secretRef without name",
            json!({"spec": {"secretRef": {}}}),
            &["spec.secretRef.name"],
        ),
        (
            o,
            "certSecretRef without name",
            json!({"spec": {"certSecretRef": {}}}),
            &["spec.certSecretRef.name"],
        ),
        (
            o,
            "proxySecretRef without name",
            json!({"spec": {"proxySecretRef": {}}}),
            &["spec.proxySecretRef.name"],
        ),
        (
            o,
            "verify provider unknown",
            json!({"spec": {"verify": {"provider": "gpg"}}}),
            &["spec.verify.provider"],
        ),
        (
            o,
            "verify secretRef without name",
            json!({"spec": {"verify": {"secretRef": {}}}}),
            &["spec.verify.secretRef.name"],
        ),
        (
            o,
            "verify trustedRoot without name",
            json!({"spec": {"verify": {"trustedRootSecretRef": {"name": ""}}}}),
            &["spec.verify.trustedRootSecretRef.name"],
        ),
        (
            o,
            "oidc identity bad regex and missing subject",
            json!({"spec": {"verify": {"matchOIDCIdentity": [{"issuer": "^https://ok$", "subject": "^ok$"}, {"issuer": "(", "subject": ""}]}}}),
            &[
                "spec.verify.matchOIDCIdentity[1].issuer",
                "spec.verify.matchOIDCIdentity[1].subject",
            ],
        ),
        (
            o,
            "serviceAccountName invalid",
            json!({"spec": {"serviceAccountName": "Bad_SA"}}),
            &["spec.serviceAccountName"],
        ),
        (
            o,
            "several problems at once",
            json!({"spec": {"url": "http://x", "interval": "often", "provider": "ibm", "ref": {"digest": "sha256:1"}}}),
            &[
                "spec.url",
                "spec.interval",
                "spec.provider",
                "spec.ref.digest",
            ],
        ),
        (
            o,
            "empty spec",
            json!({"spec": {"url": null, "interval": null}}),
            &["spec.url", "spec.interval"],
        ),
        // Metadata.
        (
            o,
            "name uppercase",
            json!({"metadata": {"name": "Podinfo"}}),
            &["metadata.name"],
        ),
        (
            o,
            "name missing",
            json!({"metadata": {"name": null}}),
            &["metadata.name"],
        ),
        (
            o,
            "name with double dot",
            json!({"metadata": {"name": "a..b"}}),
            &["metadata.name"],
        ),
        (
            o,
            "name too long",
            json!({"metadata": {"name": "a".repeat(254)}}),
            &["metadata.name"],
        ),
        (
            o,
            "namespace not a label",
            json!({"metadata": {"namespace": "flux.system"}}),
            &["metadata.namespace"],
        ),
        (
            o,
            "label key invalid",
            json!({"metadata": {"labels": {"bad key!": "v"}}}),
            &["metadata.labels"],
        ),
        (
            o,
            "label value invalid",
            json!({"metadata": {"labels": {"app": "bad value!"}}}),
            &["metadata.labels.app"],
        ),
        (
            o,
            "owner reference without version, kind, name or uid",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/", "kind": "", "name": "", "uid": ""}]}}),
            &[
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.kind",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid",
            ],
        ),
        (
            o,
            "two controller owner references",
            json!({"metadata": {"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "b", "uid": "2", "controller": true},
            ]}}),
            &["metadata.ownerReferences"],
        ),
        (
            o,
            "an Event as owner",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}]}}),
            &["metadata.ownerReferences"],
        ),
        // Types and type meta.
        (
            o,
            "interval is a number",
            json!({"spec": {"interval": 5}}),
            &["spec.interval"],
        ),
        (
            o,
            "ref is a string",
            json!({"spec": {"ref": "latest"}}),
            &["spec.ref"],
        ),
        (
            o,
            "suspend is a string",
            json!({"spec": {"suspend": "yes"}}),
            &["spec.suspend"],
        ),
        (
            o,
            "creationTimestamp malformed",
            json!({"metadata": {"creationTimestamp": "yesterday"}}),
            &["metadata.creationTimestamp"],
        ),
        (
            o,
            "apiVersion of another group",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v2"}),
            &["apiVersion"],
        ),
        (
            o,
            "kind of another resource",
            json!({"kind": "GitRepository"}),
            &["kind"],
        ),
        // Status (status subresource writes).
        (
            o,
            "condition status and reason invalid",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "not ok", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}),
            &["status.conditions[0].status", "status.conditions[0].reason"],
        ),
        (
            o,
            "condition without lastTransitionTime",
            json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": ""}]}}),
            &["status.conditions[0].lastTransitionTime"],
        ),
        (
            o,
            "artifact digest and path invalid",
            json!({"status": {"artifact": {"digest": "nope", "path": "", "url": "http://x", "revision": "latest", "lastUpdateTime": "2024-01-01T00:00:00Z"}}}),
            &["status.artifact.digest", "status.artifact.path"],
        ),
        // HelmRepository.
        (
            r,
            "url missing",
            json!({"spec": {"url": null}}),
            &["spec.url"],
        ),
        (
            r,
            "url ftp",
            json!({"spec": {"url": "ftp://charts.example.com"}}),
            &["spec.url"],
        ),
        (
            r,
            "type oci with an https url",
            json!({"spec": {"url": "https://charts.example.com"}}),
            &["spec.url"],
        ),
        (
            r,
            "type unknown",
            json!({"spec": {"type": "git"}}),
            &["spec.type"],
        ),
        (
            r,
            "provider unknown",
            json!({"spec": {"provider": "ibm"}}),
            &["spec.provider"],
        ),
        (
            r,
            "interval without unit",
            json!({"spec": {"interval": "10"}}),
            &["spec.interval"],
        ),
        (
            r,
            "timeout in hours",
            json!({"spec": {"timeout": "2h"}}),
            &["spec.timeout"],
        ),
        (
            r,
            "secretRef without name",
            json!({"spec": {"secretRef": {"name": ""}}}),
            &["spec.secretRef.name"],
        ),
        (
            r,
            "passCredentials is a string",
            json!({"spec": {"passCredentials": "true"}}),
            &["spec.passCredentials"],
        ),
        // HelmChart.
        (
            c,
            "required fields missing",
            json!({"spec": {"chart": null, "interval": null, "sourceRef": null}}),
            &[
                "spec.chart",
                "spec.interval",
                "spec.sourceRef.kind",
                "spec.sourceRef.name",
            ],
        ),
        (
            c,
            "source kind unsupported",
            json!({"spec": {"sourceRef": {"kind": "OCIRepository"}}}),
            &["spec.sourceRef.kind"],
        ),
        (
            c,
            "version not a constraint",
            json!({"spec": {"version": "latest"}}),
            &["spec.version"],
        ),
        (
            c,
            "reconcileStrategy unknown",
            json!({"spec": {"reconcileStrategy": "Always"}}),
            &["spec.reconcileStrategy"],
        ),
        (
            c,
            "verify with a GitRepository source",
            json!({"spec": {"sourceRef": {"kind": "GitRepository", "name": "repo"}, "verify": {"provider": "cosign"}}}),
            &["spec"],
        ),
        (
            c,
            "verify provider unknown",
            json!({"spec": {"verify": {"provider": "x509"}}}),
            &["spec.verify.provider"],
        ),
        (
            c,
            "empty values file",
            json!({"spec": {"valuesFiles": ["values.yaml", ""]}}),
            &["spec.valuesFiles[1]"],
        ),
        (
            c,
            "oidc subject bad regex",
            json!({"spec": {"verify": {"matchOIDCIdentity": [{"issuer": ".*", "subject": "[a-"}]}}}),
            &["spec.verify.matchOIDCIdentity[0].subject"],
        ),
        (
            c,
            "valuesFiles is a string",
            json!({"spec": {"valuesFiles": "values.yaml"}}),
            &["spec.valuesFiles"],
        ),
        (
            c,
            "name and interval invalid",
            json!({"metadata": {"name": "-chart"}, "spec": {"interval": "1w"}}),
            &["metadata.name", "spec.interval"],
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (kind, what, patch, expected) in &cases {
        let mut obj = base(kind);
        merge(&mut obj, patch);
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        for version in Version::ALL {
            let got = fields(kind, version, &obj);
            if got != expected {
                failures.push(format!(
                    "{kind} {what} ({version}): expected {expected:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn base_objects_are_valid() {
    for kind in ["OCIRepository", "HelmRepository", "HelmChart"] {
        for version in Version::ALL {
            assert!(
                fields(kind, version, &base(kind)).is_empty(),
                "{kind} {version}"
            );
        }
    }
}

#[test]
fn messages_follow_kubernetes_wording() {
    let resource = resource_by_kind("OCIRepository").unwrap();
    let mut obj = base("OCIRepository");
    merge(
        &mut obj,
        &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "spec": {"interval": "5", "provider": "docker", "url": "oci://ghcr.io/org/app:v1"}}),
    );
    let decoded = decode(resource, Version::V1, obj).unwrap();
    let causes = validate(resource, &decoded.object);
    let by_field = |f: &str| causes.iter().find(|c| c.field == f).unwrap().clone();
    assert_eq!(
        by_field("spec.interval").message,
        r#"Invalid value: "5": spec.interval in body should match '^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$'"#
    );
    assert_eq!(
        by_field("spec.provider").message,
        r#"Unsupported value: "docker": supported values: "generic", "aws", "azure", "gcp""#
    );
    assert_eq!(
        by_field("spec.provider").reason.as_str(),
        "FieldValueNotSupported"
    );
    assert_eq!(
        by_field("spec.url").message,
        r#"Invalid value: "oci://ghcr.io/org/app:v1": URL must not contain a tag; remove ':v1'"#
    );
    let mut missing = base("OCIRepository");
    merge(
        &mut missing,
        &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "spec": {"url": null}}),
    );
    let decoded = decode(resource, Version::V1, missing).unwrap();
    let causes = validate(resource, &decoded.object);
    assert_eq!(causes[0].message, "Required value");
    assert_eq!(causes[0].reason.as_str(), "FieldValueRequired");
    let mut typed = base("OCIRepository");
    merge(
        &mut typed,
        &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "spec": {"interval": 5}}),
    );
    let err = decode(resource, Version::V1, typed).unwrap_err();
    assert!(!err.is_bad_request());
    let cause = &err.causes()[0];
    assert_eq!(cause.reason.as_str(), "FieldValueTypeInvalid");
    assert_eq!(
        cause.message,
        r#"Invalid value: "integer": spec.interval in body must be of type string: "integer""#
    );
    let mut time = base("OCIRepository");
    merge(
        &mut time,
        &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "metadata": {"creationTimestamp": "yesterday"}}),
    );
    let cause = decode(resource, Version::V1, time)
        .unwrap_err()
        .causes()
        .remove(0);
    assert_eq!(cause.reason.as_str(), "FieldValueInvalid");
    assert!(
        cause.message.starts_with(r#"Invalid value: "yesterday": "#),
        "{}",
        cause.message
    );
    let mut condition = base("OCIRepository");
    merge(
        &mut condition,
        &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "R", "message": ""}]}}),
    );
    let cause = decode(resource, Version::V1, condition)
        .unwrap_err()
        .causes()
        .remove(0);
    assert_eq!(
        (cause.reason.as_str(), cause.message.as_str()),
        ("FieldValueRequired", "Required value")
    );
}

#[test]
fn a_corrupt_conversion_annotation_is_rejected_in_v1_and_replaced_in_v1beta2() {
    let mut obj = base("HelmChart");
    merge(
        &mut obj,
        &json!({"metadata": {"annotations": {"source.toolkit.fluxcd.io/v1beta2-fields": "not json"}}}),
    );
    let expected: BTreeSet<String> = ["metadata.annotations".to_owned()].into();
    assert_eq!(fields("HelmChart", Version::V1, &obj), expected);
    // A v1beta2 body is authoritative for the v1beta2-only fields: the annotation is rewritten.
    assert!(fields("HelmChart", Version::V1beta2, &obj).is_empty());
}
