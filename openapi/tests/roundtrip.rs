//! Lossless conversion (v1beta2 → v1 → v1beta2 and v1 → v1beta2 → v1, including fields that
//! exist in one version only) and decode behaviour: metadata pass-through, unknown fields,
//! type errors with paths, type-meta checks.

use openapi::convert::V1BETA2_FIELDS_ANNOTATION;
use openapi::{Error, Version, decode, encode, resource_by_kind};
use serde_json::{Value, json};

fn metadata() -> Value {
    json!({
        "annotations": {"kustomize.toolkit.fluxcd.io/checksum": "abc", "reconcile.fluxcd.io/requestedAt": "2024-01-01T00:00:00Z"},
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "finalizers": ["finalizers.fluxcd.io"],
        "generation": 3,
        "labels": {"app.kubernetes.io/name": "podinfo"},
        "managedFields": [{
            "apiVersion": "source.toolkit.fluxcd.io/v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:url": {}, "f:interval": {}}},
            "manager": "kubectl", "operation": "Apply", "time": "2024-01-01T00:00:00Z"
        }, {
            "apiVersion": "source.toolkit.fluxcd.io/v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {".": {}, "f:conditions": {}}},
            "manager": "source-apiserver", "operation": "Update", "subresource": "status", "time": "2024-01-02T00:00:00Z"
        }],
        "name": "podinfo",
        "namespace": "flux-system",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "1234", "controller": true}],
        "resourceVersion": "42",
        "uid": "8f0c2a4e-1111-2222-3333-444455556666"
    })
}

fn status_common() -> Value {
    json!({
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored artifact", "observedGeneration": 3, "lastTransitionTime": "2024-01-01T00:05:00Z"}],
        "url": "http://source/latest.tar.gz",
        "artifact": {"path": "ocirepository/flux-system/podinfo/sha256:ab.tar.gz", "url": "http://source/x.tar.gz",
            "revision": "latest@sha256:ab", "digest": "sha256:ab", "lastUpdateTime": "2024-01-01T00:05:00Z",
            "size": 1234, "metadata": {"org.opencontainers.image.revision": "main@sha1:1"}},
        "lastHandledReconcileAt": "2024-01-01T00:00:00Z"
    })
}

fn full(kind: &str, version: Version) -> Value {
    let mut status = status_common();
    let spec = match kind {
        "OCIRepository" => {
            status["observedIgnore"] = json!("/*");
            status["observedLayerSelector"] = json!({"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "operation": "extract"});
            if version == Version::V1beta2 {
                status["contentConfigChecksum"] = json!("sha256:deadbeef");
            }
            json!({"url": "oci://ghcr.io/stefanprodan/manifests/podinfo", "ref": {"tag": "latest", "semver": "6.x", "semverFilter": ".*", "digest": format!("sha256:{}", "a".repeat(64))},
                "layerSelector": {"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "operation": "copy"},
                "provider": "azure", "secretRef": {"name": "a"}, "serviceAccountName": "sa",
                "verify": {"provider": "cosign", "secretRef": {"name": "k"}, "matchOIDCIdentity": [{"issuer": "i", "subject": "s"}], "trustedRootSecretRef": {"name": "root"}},
                "certSecretRef": {"name": "c"}, "proxySecretRef": {"name": "p"}, "interval": "5m", "timeout": "30s", "ignore": "*.md", "insecure": false, "suspend": true})
        }
        "HelmRepository" => {
            json!({"url": "oci://ghcr.io/stefanprodan/charts", "secretRef": {"name": "a"}, "certSecretRef": {"name": "c"},
            "passCredentials": false, "interval": "5m", "insecure": true, "timeout": "1m", "suspend": false,
            "accessFrom": {"namespaceSelectors": [{"matchLabels": {"a": "b"}}]}, "type": "oci", "provider": "gcp"})
        }
        _ => {
            status["observedSourceArtifactRevision"] = json!("sha256:1");
            status["observedChartName"] = json!("podinfo");
            status["observedValuesFiles"] = json!(["values.yaml"]);
            let mut spec = json!({"chart": "podinfo", "version": "6.x", "sourceRef": {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "name": "podinfo"},
                "interval": "5m", "reconcileStrategy": "Revision", "valuesFiles": ["values.yaml"], "ignoreMissingValuesFiles": true, "suspend": false,
                "verify": {"provider": "notation", "secretRef": {"name": "trust"}, "matchOIDCIdentity": [{"issuer": "i", "subject": "s"}]}});
            if version == Version::V1beta2 {
                spec["valuesFile"] = json!("values-prod.yaml");
                spec["accessFrom"] =
                    json!({"namespaceSelectors": [{"matchLabels": {"team": "a"}}]});
            }
            spec
        }
    };
    json!({"apiVersion": version.api_version(), "kind": kind, "metadata": metadata(), "spec": spec, "status": status})
}

/// Same JSON regardless of key order.
fn same(a: &Value, b: &Value) -> bool {
    a.to_string().len() == b.to_string().len()
        && serde_json::from_value::<serde_json::Map<_, _>>(a.clone()).ok()
            == serde_json::from_value(b.clone()).ok()
}

#[test]
fn v1beta2_to_v1_to_v1beta2_is_lossless() {
    for kind in ["OCIRepository", "HelmRepository", "HelmChart"] {
        let r = resource_by_kind(kind).unwrap();
        let original = full(kind, Version::V1beta2);
        let decoded = decode(r, Version::V1beta2, original.clone()).unwrap();
        assert!(
            decoded.unknown_fields.is_empty(),
            "{kind}: {:?}",
            decoded.unknown_fields
        );
        let back = encode(r, Version::V1beta2, decoded.object.clone()).unwrap();
        assert!(
            same(&back, &original),
            "{kind}:\n{back:#}\n!=\n{original:#}"
        );
        if kind != "HelmRepository" {
            let note =
                decoded.object["metadata"]["annotations"][V1BETA2_FIELDS_ANNOTATION].as_str();
            assert!(
                note.is_some(),
                "{kind}: v1beta2-only fields kept in the annotation"
            );
        }
    }
}

#[test]
fn v1_to_v1beta2_to_v1_is_lossless() {
    for kind in ["OCIRepository", "HelmRepository", "HelmChart"] {
        let r = resource_by_kind(kind).unwrap();
        let original = decode(r, Version::V1, full(kind, Version::V1))
            .unwrap()
            .object;
        assert!(
            same(&original, &full(kind, Version::V1)),
            "{kind}: decode of a complete object is the identity"
        );
        let beta = encode(r, Version::V1beta2, original.clone()).unwrap();
        assert_eq!(beta["apiVersion"], "source.toolkit.fluxcd.io/v1beta2");
        let again = decode(r, Version::V1beta2, beta).unwrap().object;
        assert!(
            same(&again, &original),
            "{kind}:\n{again:#}\n!=\n{original:#}"
        );
    }
}

#[test]
fn v1beta2_only_fields_survive_a_v1_round_trip_of_a_stored_object() {
    let r = resource_by_kind("HelmChart").unwrap();
    let stored = decode(r, Version::V1beta2, full("HelmChart", Version::V1beta2))
        .unwrap()
        .object;
    assert!(
        stored["spec"].get("valuesFile").is_none(),
        "v1 has no valuesFile"
    );
    let v1 = encode(r, Version::V1, stored.clone()).unwrap();
    let restored = decode(r, Version::V1, v1).unwrap().object;
    let beta = encode(r, Version::V1beta2, restored).unwrap();
    assert_eq!(beta["spec"]["valuesFile"], "values-prod.yaml");
    assert_eq!(
        beta["spec"]["accessFrom"]["namespaceSelectors"][0]["matchLabels"]["team"],
        "a"
    );
    assert!(
        beta["metadata"]["annotations"]
            .get(V1BETA2_FIELDS_ANNOTATION)
            .is_none()
    );
    let typed: openapi::v1::HelmChart = serde_json::from_value(stored).unwrap();
    assert_eq!(
        openapi::convert::helm_chart_values_file(&typed).as_deref(),
        Some("values-prod.yaml")
    );
}

#[test]
fn metadata_passes_through_exactly() {
    let r = resource_by_kind("OCIRepository").unwrap();
    for version in Version::ALL {
        let decoded = decode(r, version, full("OCIRepository", version)).unwrap();
        let mut expected = metadata();
        if version == Version::V1beta2 {
            expected["annotations"][V1BETA2_FIELDS_ANNOTATION] =
                json!(r#"{"status":{"contentConfigChecksum":"sha256:deadbeef"}}"#);
        }
        assert!(
            same(&decoded.object["metadata"], &expected),
            "{version}: {:#}",
            decoded.object["metadata"]
        );
    }
}

#[test]
fn unknown_fields_are_reported_with_paths_and_dropped() {
    let r = resource_by_kind("OCIRepository").unwrap();
    let body = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "x", "bar": 1},
        "spec": {"url": "oci://ghcr.io/a/b", "interval": "1m", "foo": true,
            "verify": {"provider": "cosign", "matchOIDCIdentity": [{"issuer": "a", "subject": "b", "extra": 1}]}},
        "extraTop": {}});
    let decoded = decode(r, Version::V1, body).unwrap();
    let mut unknown = decoded.unknown_fields.clone();
    unknown.sort();
    assert_eq!(
        unknown,
        [
            "extraTop",
            "metadata.bar",
            "spec.foo",
            "spec.verify.matchOIDCIdentity[0].extra"
        ]
    );
    assert!(decoded.object["spec"].get("foo").is_none());
    assert!(decoded.object.get("extraTop").is_none());
}

#[test]
fn type_meta_and_shape_errors_are_bad_requests() {
    let r = resource_by_kind("HelmChart").unwrap();
    let cases = [
        (json!([1, 2]), "not an object"),
        (json!({"kind": "HelmChart"}), "apiVersion missing"),
        (
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1"}),
            "kind missing",
        ),
        (
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "HelmChart"}),
            "version of another endpoint",
        ),
        (
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository"}),
            "kind of another endpoint",
        ),
    ];
    for (body, what) in cases {
        let err = decode(r, Version::V1, body).unwrap_err();
        assert!(err.is_bad_request(), "{what}: {err}");
    }
    let err = decode(r, Version::V1, json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart", "spec": {"valuesFiles": [1]}})).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidField { field, .. } if field == "spec.valuesFiles[0]"),
        "{err}"
    );
}

#[test]
fn nulls_are_dropped_like_kubernetes_does() {
    let r = resource_by_kind("OCIRepository").unwrap();
    let body = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "x", "creationTimestamp": null},
        "spec": {"url": "oci://ghcr.io/a/b", "interval": "1m", "ref": null, "timeout": null}, "status": null});
    let decoded = decode(r, Version::V1, body).unwrap();
    assert_eq!(decoded.object["spec"]["timeout"], "60s");
    assert!(decoded.object["spec"].get("ref").is_none());
    assert_eq!(decoded.object["status"], json!({"observedGeneration": -1}));
    assert!(
        decoded.object["metadata"]
            .get("creationTimestamp")
            .is_none()
    );
}

#[test]
fn stored_garbage_is_a_server_error() {
    let r = resource_by_kind("OCIRepository").unwrap();
    // Converting to v1beta2 reads the typed object and catches it.
    let err = encode(r, Version::V1beta2, json!({"spec": {"url": 1}})).unwrap_err();
    assert!(!err.is_bad_request());
    assert!(err.causes().is_empty());
    // A non-object is refused in every version.
    let err = encode(r, Version::V1, json!([1, 2])).unwrap_err();
    assert!(!err.is_bad_request());
}

#[test]
fn encoding_in_the_storage_version_passes_the_stored_object_through() {
    let r = resource_by_kind("OCIRepository").unwrap();
    let stored = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {"url": "oci://r/a", "interval": "5m"}});
    let encoded = encode(r, Version::V1, stored.clone()).unwrap();
    let mut expected = stored;
    expected["apiVersion"] = json!("source.toolkit.fluxcd.io/v1");
    expected["kind"] = json!("OCIRepository");
    assert_eq!(encoded, expected);
}
