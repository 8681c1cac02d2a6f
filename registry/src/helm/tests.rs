use std::io::Read as _;

use super::*;

const PODINFO: &str = "../../shared/testdata/podinfo-chart";

fn podinfo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(PODINFO)
}

/// Entry names of a chart archive, in order.
fn names(archive: &[u8]) -> Vec<String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn package_puts_the_chart_under_its_name_with_chart_yaml_first_and_honours_helmignore() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "name: demo\nversion: 1.2.3+build.7\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("values.yaml"), "a: 1\n").unwrap();
    std::fs::write(dir.path().join("notes.bak"), "x").unwrap();
    std::fs::write(dir.path().join(".helmignore"), "*.bak\n").unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/a.yaml"), "kind: A\n").unwrap();
    let mut out = Vec::new();
    let meta = package(dir.path(), &mut out).unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.version.as_str()),
        ("demo", "1.2.3+build.7")
    );
    assert_eq!(
        names(&out),
        [
            "demo/Chart.yaml",
            "demo/.helmignore",
            "demo/templates/a.yaml",
            "demo/values.yaml"
        ]
    );
    let mut again = Vec::new();
    package(dir.path(), &mut again).unwrap();
    assert_eq!(out, again, "packaging is deterministic");
}

#[test]
fn the_podinfo_chart_packages_and_reads_back() {
    let mut out = Vec::new();
    package(&podinfo(), &mut out).unwrap();
    let chart = inspect(
        out.as_slice(),
        DEFAULT_MAX_CHART_FILE_BYTES,
        &["values-prod.yaml".into()],
    )
    .unwrap();
    assert_eq!(chart.root, "podinfo");
    assert_eq!(chart.metadata.version, "6.14.1");
    assert!(chart.files.contains_key("values-prod.yaml"));
    assert!(!chart.files.contains_key("Chart.yaml"));
}

#[test]
fn a_file_over_the_limit_is_refused() {
    let mut out = Vec::new();
    package(&podinfo(), &mut out).unwrap();
    let err = inspect(out.as_slice(), 10_000, &[]).unwrap_err();
    assert!(
        matches!(&err, Error::FileTooLarge { entry, limit_bytes: 10_000, .. } if entry == "podinfo/LICENSE" || entry == "podinfo/README.md"),
        "{err:?}"
    );
}

#[test]
fn values_merge_recursively_and_later_files_win() {
    let merged = merge_values(&[
        (
            "values.yaml".into(),
            b"a: {b: 1, c: 2}\nlist: [1, 2]\n".to_vec(),
        ),
        ("prod.yaml".into(), b"a: {c: 3}\nlist: [3]\n".to_vec()),
        ("empty.yaml".into(), Vec::new()),
    ])
    .unwrap();
    let v: Value = serde_yaml::from_slice(&merged).unwrap();
    assert_eq!(v["a"]["b"], Value::from(1));
    assert_eq!(v["a"]["c"], Value::from(3));
    assert_eq!(v["list"], serde_yaml::from_str::<Value>("[3]").unwrap());
    let err = merge_values(&[("bad.yaml".into(), b"- 1\n".to_vec())]).unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to parse values file 'bad.yaml'")
    );
}

#[test]
fn repackage_sets_the_version_and_the_merged_values() {
    let mut out = Vec::new();
    let meta = package(&podinfo(), &mut out).unwrap();
    let meta = meta.with_version("6.14.1+3");
    let mut again = repackage(
        out.as_slice(),
        Vec::new(),
        &meta,
        Some(b"replicaCount: 9\n"),
        DEFAULT_MAX_CHART_FILE_BYTES,
    )
    .unwrap();
    let chart = inspect(
        again.as_slice(),
        DEFAULT_MAX_CHART_FILE_BYTES,
        &["values.yaml".into()],
    )
    .unwrap();
    assert_eq!(chart.metadata.version, "6.14.1+3");
    assert_eq!(chart.files["values.yaml"], b"replicaCount: 9\n");
    let entries = names(&again);
    assert_eq!(entries[0], "podinfo/Chart.yaml");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.ends_with("/values.yaml"))
            .count(),
        1
    );
    again.clear();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(out.as_slice()));
    let mut first = tar.entries().unwrap().next().unwrap().unwrap();
    first.read_to_end(&mut again).unwrap();
    assert!(String::from_utf8_lossy(&again).contains("version: 6.14.1"));
}

#[test]
fn tags_spell_build_metadata_with_an_underscore() {
    assert_eq!(tag_of_version("1.0.0+build.1"), "1.0.0_build.1");
    assert_eq!(version_of_tag("1.0.0_build.1"), "1.0.0+build.1");
}
