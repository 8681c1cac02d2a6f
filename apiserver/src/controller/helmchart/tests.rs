use serde_json::json;

use super::*;

fn chart(spec: serde_json::Value, generation: i64) -> HelmChart {
    serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "podinfo", "namespace": "default", "generation": generation},
        "spec": spec}))
    .unwrap()
}

#[test]
fn values_files_put_the_generation_in_the_version_as_build_metadata() {
    let base = json!({"chart": "podinfo", "interval": "1m",
        "sourceRef": {"kind": "HelmRepository", "name": "r"}});
    let mut with_values = base.clone();
    with_values["valuesFiles"] = json!(["values.yaml"]);
    assert_eq!(
        source::revision("6.6.0+build.7", &chart(base, 3)),
        "6.6.0+build.7"
    );
    assert_eq!(
        source::revision("6.6.0+build.7", &chart(with_values.clone(), 1)),
        "6.6.0+1"
    );
    assert_eq!(
        source::revision("6.6.0-rc.1", &chart(with_values, 2)),
        "6.6.0-rc.1+2"
    );
}

#[test]
fn artifact_urls_follow_fluxs_layout_or_the_subresource() {
    let path = "helmchart/default/podinfo/podinfo-6.6.0.tgz";
    assert_eq!(
        artifact_url(
            &ArtifactUrls::Advertised("sc:80".into()),
            path,
            "default",
            "podinfo"
        ),
        "http://sc:80/helmchart/default/podinfo/podinfo-6.6.0.tgz"
    );
    assert_eq!(
        artifact_url(
            &ArtifactUrls::Subresource("https://h:1".into()),
            path,
            "default",
            "podinfo"
        ),
        "https://h:1/apis/source.toolkit.fluxcd.io/v1/namespaces/default/helmcharts/podinfo/artifact"
    );
}
