//! Every manifest in `testdata/flux-examples` (and extra objects built from the reference's
//! field tables) parses; each source.toolkit.fluxcd.io object decodes, defaults and validates
//! in both served versions, with no unknown fields.

use std::path::PathBuf;

use openapi::{Version, decode, encode, resource_by_kind, validate};
use serde_json::{Value, json};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/flux-examples")
}

/// Decodes `obj` as each version, checks defaults, validation and round trips.
fn accept_in_both_versions(name: &str, obj: &Value) {
    let kind = obj["kind"].as_str().unwrap();
    let resource = resource_by_kind(kind).unwrap_or_else(|| panic!("{name}: unknown kind {kind}"));
    for version in Version::ALL {
        let mut body = obj.clone();
        body["apiVersion"] = json!(version.api_version());
        let decoded = decode(resource, version, body)
            .unwrap_or_else(|e| panic!("{name} as {version}: decode failed: {e}"));
        assert!(
            decoded.unknown_fields.is_empty(),
            "{name} as {version}: unknown {:?}",
            decoded.unknown_fields
        );
        let v1 = &decoded.object;
        assert_eq!(v1["apiVersion"], "source.toolkit.fluxcd.io/v1");
        let causes = validate(resource, v1);
        assert!(causes.is_empty(), "{name} as {version}: {causes:#?}");
        // Flux's CRD defaults.
        match kind {
            "OCIRepository" => {
                assert!(v1["spec"]["provider"].is_string(), "{name}");
                assert!(v1["spec"]["timeout"].is_string(), "{name}");
                if v1["spec"]["verify"].is_object() {
                    assert!(v1["spec"]["verify"]["provider"].is_string(), "{name}");
                }
            }
            "HelmRepository" => assert!(v1["spec"]["provider"].is_string(), "{name}"),
            _ => {
                assert!(v1["spec"]["version"].is_string(), "{name}");
                assert!(v1["spec"]["reconcileStrategy"].is_string(), "{name}");
            }
        }
        if obj.get("status").is_none() {
            assert_eq!(v1["status"], json!({"observedGeneration": -1}), "{name}");
        }
        // Encoding back in the version it came in gives the object plus defaults.
        let back = encode(resource, version, v1.clone()).unwrap();
        assert_eq!(back["apiVersion"], version.api_version());
        assert_eq!(
            back["metadata"], obj["metadata"],
            "{name}: metadata passes through"
        );
        let again = decode(resource, version, back).unwrap();
        assert_eq!(&again.object, v1, "{name}: decode(encode(x)) == x");
    }
}

#[test]
fn every_flux_example_is_accepted_in_both_versions() {
    let mut sources = 0;
    let mut entries: Vec<_> = std::fs::read_dir(examples_dir())
        .expect("testdata/flux-examples exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 15, "found only {} examples", entries.len());
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let obj: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let api_version = obj["apiVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: apiVersion"));
        assert!(obj["kind"].is_string(), "{name}: kind");
        assert!(obj["metadata"]["name"].is_string(), "{name}: metadata.name");
        if api_version.starts_with("source.toolkit.fluxcd.io/") {
            accept_in_both_versions(&name, &obj);
            sources += 1;
        }
    }
    assert!(sources >= 14, "only {sources} source objects");
}

#[test]
fn objects_using_every_field_are_accepted() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let objects = [
        json!({"kind": "OCIRepository", "metadata": {"name": "all-fields", "namespace": "default"},
            "spec": {"url": "oci://registry.example.com:5000/team/app", "interval": "1h30m",
                "ref": {"semver": ">= 1.0, < 2", "semverFilter": ".*-rc.*", "tag": "v1", "digest": digest},
                "layerSelector": {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "operation": "copy"},
                "provider": "aws", "secretRef": {"name": "regcred"}, "serviceAccountName": "puller",
                "certSecretRef": {"name": "tls"}, "proxySecretRef": {"name": "proxy"},
                "verify": {"provider": "cosign", "matchOIDCIdentity": [{"issuer": "^https://token.actions.githubusercontent.com$", "subject": "^https://github.com/org/.*$"}],
                    "trustedRootSecretRef": {"name": "sigstore-root"}},
                "timeout": "2m30s", "ignore": "/*\n!/deploy", "insecure": true, "suspend": false}}),
        json!({"kind": "OCIRepository", "metadata": {"name": "notation"},
            "spec": {"url": "oci://localhost:5000/x", "interval": "30s", "ref": {"digest": digest},
                "verify": {"provider": "notation", "secretRef": {"name": "trust"}}}}),
        json!({"kind": "HelmRepository", "metadata": {"name": "http-index"},
            "spec": {"url": "https://charts.example.com", "interval": "10m", "timeout": "1m", "type": "default",
                "passCredentials": true, "accessFrom": {"namespaceSelectors": [{"matchLabels": {"team": "a"}}]},
                "certSecretRef": {"name": "tls"}, "secretRef": {"name": "basic"}}}),
        json!({"kind": "HelmChart", "metadata": {"name": "values"},
            "spec": {"chart": "podinfo", "version": "~6.0", "interval": "5m", "reconcileStrategy": "Revision",
                "sourceRef": {"kind": "HelmRepository", "name": "podinfo", "apiVersion": "source.toolkit.fluxcd.io/v1"},
                "valuesFiles": ["values.yaml", "values-prod.yaml"], "ignoreMissingValuesFiles": true,
                "verify": {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}}}),
        json!({"kind": "HelmChart", "metadata": {"name": "from-git"},
            "spec": {"chart": "./charts/app", "interval": "5m",
                "sourceRef": {"kind": "GitRepository", "name": "repo"}}}),
    ];
    for (i, obj) in objects.iter().enumerate() {
        accept_in_both_versions(&format!("object {i}"), obj);
    }
}
