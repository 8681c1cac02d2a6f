//! `sourcectl push chart` and `sourcectl pull chart` against the real registry: a chart
//! directory is packaged as `helm package` does and pushed in Helm's OCI format, a `.tgz` is
//! pushed as it is, and `pull chart` verifies the cosign signature and the digest.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{Run, sourcectl, sourcectl_cmd, testdata};
use test_support::registry::RegistryBuilder;

/// `sourcectl` with `COSIGN_PASSWORD=password`, an empty Docker config and no stdin.
fn with_password(args: &[&str]) -> Run {
    let empty = tempfile::tempdir().unwrap();
    sourcectl_cmd(empty.path())
        .env("COSIGN_PASSWORD", "password")
        .stdin(Stdio::null())
        .args(args)
        .output()
        .expect("run sourcectl")
        .into()
}

/// The entries of a chart archive in order, as the system `tar` lists them.
fn entries(tgz: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(tgz)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -tzf {}", tgz.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_chart_directory_pushes_signed_and_pulls_verified() {
    let registry = RegistryBuilder::new().start();
    let keys = tempfile::tempdir().unwrap();
    for name in ["good", "other"] {
        let prefix = keys.path().join(name);
        with_password(&[
            "generate",
            "key-pair",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ])
        .ok();
    }
    let key = |f: &str| keys.path().join(f).display().to_string();
    let chart = testdata("podinfo-chart");
    let repo = registry.oci_url("charts");
    let pushed = with_password(&[
        "push",
        "chart",
        chart.to_str().unwrap(),
        &repo,
        "--insecure-registry",
        "--sign-key",
        &key("good.key"),
    ])
    .ok();
    assert!(
        pushed.stdout.contains("/charts/podinfo:6.14.1@sha256:"),
        "{}",
        pushed.stdout
    );

    let out = tempfile::tempdir().unwrap();
    let url = format!("{repo}/podinfo:6.14.1");
    let out_dir = out.path().to_str().unwrap();
    let pulled = sourcectl(&[
        "pull",
        "chart",
        &url,
        "-o",
        out_dir,
        "--insecure-registry",
        "--key",
        &key("good.pub"),
    ])
    .ok();
    let tgz = out.path().join("podinfo-6.14.1.tgz");
    assert_eq!(pulled.stdout.trim(), tgz.display().to_string());
    let names = entries(&tgz);
    assert_eq!(names[0], "podinfo/Chart.yaml", "Chart.yaml first");
    assert!(names.iter().all(|n| n.starts_with("podinfo/")));
    assert!(names.contains(&"podinfo/templates/deployment.yaml".to_owned()));

    let refused = sourcectl(&[
        "pull",
        "chart",
        &url,
        "-o",
        out_dir,
        "--insecure-registry",
        "--key",
        &key("other.pub"),
    ])
    .failed();
    assert!(
        refused.stderr.contains("verification failed"),
        "{}",
        refused.stderr
    );

    // The pulled archive pushes again as it is, to the same digest's layer.
    let again = sourcectl(&[
        "push",
        "chart",
        tgz.to_str().unwrap(),
        &registry.oci_url("copies"),
        "--insecure-registry",
    ])
    .ok();
    assert!(
        again.stdout.contains("/copies/podinfo:6.14.1@sha256:"),
        "{}",
        again.stdout
    );
}

#[test]
fn build_metadata_is_tagged_with_an_underscore_and_read_back_with_a_plus() {
    let registry = RegistryBuilder::new().start();
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("demo");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 1.0.0+build.3\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "a: 1\n").unwrap();
    std::fs::write(chart.join("secret.bak"), "x").unwrap();
    std::fs::write(chart.join(".helmignore"), "*.bak\n").unwrap();
    let repo = registry.oci_url("charts");
    let pushed = sourcectl(&[
        "push",
        "chart",
        chart.to_str().unwrap(),
        &repo,
        "--insecure-registry",
    ])
    .ok();
    assert!(
        pushed.stdout.contains("/charts/demo:1.0.0_build.3@sha256:"),
        "{}",
        pushed.stdout
    );
    let out = tempfile::tempdir().unwrap();
    sourcectl(&[
        "pull",
        "chart",
        &format!("{repo}/demo:1.0.0+build.3"),
        "-o",
        out.path().to_str().unwrap(),
        "--insecure-registry",
    ])
    .ok();
    let names = entries(&out.path().join("demo-1.0.0+build.3.tgz"));
    assert!(
        !names.iter().any(|n| n.ends_with(".bak")),
        ".helmignore honoured: {names:?}"
    );
    let missing = sourcectl(&[
        "push",
        "chart",
        dir.path().to_str().unwrap(),
        &repo,
        "--insecure-registry",
    ])
    .failed();
    assert!(
        missing.stderr.contains("no Chart.yaml found"),
        "{}",
        missing.stderr
    );
}
