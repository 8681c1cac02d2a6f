//! Generated documents: golden files (discovery, OpenAPI, table columns; `UPDATE_GOLDEN=1`
//! regenerates them) and an independent validator (`openapi-spec-validator` from PyPI, installed
//! by `scripts/setup.sh` into the project venv) run on the OpenAPI v2 and v3 documents.

use std::path::{Path, PathBuf};
use std::process::Command;

use openapi::{Version, resources};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `value` with `tests/golden/<name>`, or rewrites the file when `UPDATE_GOLDEN=1`.
fn golden(name: &str, value: &Value) -> Option<String> {
    let path = golden_dir().join(name);
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if want == text => None,
        Ok(_) => Some(format!(
            "{name} differs from the golden file (review, then UPDATE_GOLDEN=1 cargo test -p openapi --test documents)"
        )),
        Err(e) => Some(format!("{name}: {e} (generate with UPDATE_GOLDEN=1)")),
    }
}

fn documents() -> Vec<(String, Value)> {
    let mut docs = vec![
        ("api_group.json".to_owned(), openapi::api_group()),
        ("api_group_list.json".to_owned(), openapi::api_group_list()),
        (
            "api_group_discovery_list.v2.json".to_owned(),
            openapi::api_group_discovery_list("apidiscovery.k8s.io/v2"),
        ),
        (
            "api_group_discovery_list.v2beta1.json".to_owned(),
            openapi::api_group_discovery_list("apidiscovery.k8s.io/v2beta1"),
        ),
        ("openapi_v2.json".to_owned(), openapi::openapi_v2()),
        (
            "openapi_v3_discovery.json".to_owned(),
            openapi::openapi_v3_discovery(&[
                (Version::V1, "HASH1".to_owned()),
                (Version::V1beta2, "HASH2".to_owned()),
            ]),
        ),
    ];
    for version in Version::ALL {
        docs.push((
            format!("api_resource_list.{version}.json"),
            openapi::api_resource_list(version),
        ));
        docs.push((
            format!("openapi_v3.{version}.json"),
            openapi::openapi_v3(version),
        ));
        for r in resources() {
            let columns = serde_json::to_value(openapi::table_columns(r, version)).unwrap();
            docs.push((
                format!("table_columns.{}.{version}.json", r.plural),
                columns,
            ));
        }
    }
    docs
}

#[test]
fn documents_match_golden_files() {
    let failures: Vec<String> = documents()
        .iter()
        .filter_map(|(name, doc)| golden(name, doc))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `openapi-spec-validator` from the project venv (or `PATH`).
fn validator() -> PathBuf {
    let venv = std::env::var_os("SOURCE_APISERVER_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/source-apiserver/venv"))
        });
    let mut candidates: Vec<PathBuf> = venv
        .into_iter()
        .map(|v| v.join("bin/openapi-spec-validator"))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("openapi-spec-validator")));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("openapi-spec-validator not found in the project venv or PATH: run scripts/setup.sh (it installs the PyPI package into ~/.cache/source-apiserver/venv)")
    })
}

#[test]
fn openapi_documents_pass_openapi_spec_validator() {
    let tool = validator();
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        ("v2.json", openapi::openapi_v2()),
        ("v3-v1.json", openapi::openapi_v3(Version::V1)),
        ("v3-v1beta2.json", openapi::openapi_v3(Version::V1beta2)),
    ];
    for (name, doc) in docs {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let out = Command::new(&tool)
            .arg(&path)
            .output()
            .expect("run openapi-spec-validator");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} rejected by openapi-spec-validator:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("OK"),
            "{name}: unexpected validator output: {stdout}"
        );
    }
}

#[test]
fn kubectl_explain_needs_are_met() {
    let v3 = openapi::openapi_v3(Version::V1);
    let path = &v3["paths"]["/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/ocirepositories/{name}"];
    assert_eq!(
        path["get"]["x-kubernetes-group-version-kind"]["kind"],
        "OCIRepository"
    );
    let patch = path["patch"]["requestBody"]["content"].as_object().unwrap();
    let types: Vec<&str> = patch.keys().map(String::as_str).collect();
    assert_eq!(
        types,
        [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml"
        ]
    );
    let schema = &v3["components"]["schemas"]["io.fluxcd.toolkit.source.v1.OCIRepository"];
    let reference = &schema["properties"]["spec"]["properties"]["ref"];
    assert!(
        reference["description"].as_str().unwrap().contains("OCI"),
        "{reference}"
    );
    assert!(reference["properties"]["semverFilter"]["description"].is_string());
    assert!(
        v3["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object()
    );
    let v2 = openapi::openapi_v2();
    let consumes = &v2["paths"]["/apis/source.toolkit.fluxcd.io/v1beta2/namespaces/{namespace}/helmcharts/{name}/status"]
        ["patch"]["consumes"];
    assert_eq!(consumes.as_array().unwrap().len(), 3);
    assert!(v2["definitions"]["io.fluxcd.toolkit.source.v1beta2.HelmChart"]["properties"]["spec"]["properties"]["valuesFile"].is_object());
    assert!(!v2.to_string().contains("strategic-merge-patch"));
}
