//! `sourcectl tag artifact` and `list artifacts`: many tags (more than one page), semver and
//! regex filters, Flux's ordering and cosign-tag hiding.

mod common;

use common::{push, sourcectl, testdata};
use test_support::registry::RegistryBuilder;

/// The ARTIFACT column of `list artifacts`.
fn listed(stdout: &str) -> Vec<String> {
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ARTIFACT"), "{stdout}");
    lines
        .map(|l| l.split('\t').next().unwrap().trim_end().to_owned())
        .collect()
}

#[test]
fn list_follows_many_tags_and_filters_by_semver_and_regex() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:latest", registry.oci_url("tags/app"));
    let digest = push(&url, &testdata("podinfo-kustomize"), &[]);

    let many: Vec<String> = (0..230).map(|i| format!("build-{i:03}")).collect();
    let mut tags = vec![
        "v1.0.0",
        "v1.1.0",
        "1.2.3",
        "v2.0.0",
        "v1.3.0-rc.1",
        "1.2",
        "sha256-abc.sig",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    tags.extend(many);
    let run = sourcectl(&[
        "tag",
        "artifact",
        &url,
        "--tag",
        &tags.join(","),
        "--insecure-registry",
    ])
    .ok();
    assert!(
        run.stderr.starts_with("► tagging artifact\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "✔ artifact tagged as {}/tags/app:v2.0.0",
            registry.host()
        )),
        "{}",
        run.stderr
    );

    let run = sourcectl(&[
        "list",
        "artifacts",
        &registry.oci_url("tags/app"),
        "--insecure-registry",
    ])
    .ok();
    let all = listed(&run.stdout);
    assert_eq!(
        all.len(),
        1 + tags.len() - 1,
        "every tag but the cosign one"
    );
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(all, sorted, "descending string order, as Flux");
    assert!(run.stdout.contains(&digest));
    assert!(
        run.stdout
            .contains("https://github.com/stefanprodan/podinfo")
    );
    assert!(!run.stdout.contains(".sig"));
    // sourcectl asks for pages of 100 (`?n=100`); Debian's distribution 2.8 ignores `n` and
    // answers in one page, so the `Link` pagination itself is covered by the client's tests.
    assert!(registry.logs().contains("tags/list?n=100"));

    let host = registry.host();
    let run = sourcectl(&[
        "list",
        "artifacts",
        &registry.oci_url("tags/app"),
        "--filter-semver",
        ">=1.0.0 <2.0.0",
        "--insecure-registry",
    ])
    .ok();
    assert_eq!(
        listed(&run.stdout),
        [
            format!("{host}/tags/app:v1.1.0"),
            format!("{host}/tags/app:v1.0.0"),
            format!("{host}/tags/app:1.2.3")
        ]
    );
    let run = sourcectl(&[
        "list",
        "artifacts",
        &registry.oci_url("tags/app"),
        "--filter-regex",
        "^build-22",
        "--insecure-registry",
    ])
    .ok();
    assert_eq!(listed(&run.stdout).len(), 10);

    let run = sourcectl(&[
        "list",
        "artifacts",
        &registry.oci_url("tags/app"),
        "--filter-semver",
        ">=abc",
        "--insecure-registry",
    ])
    .failed();
    assert!(
        run.stderr.contains("✗ semver '>=abc' parse error"),
        "{}",
        run.stderr
    );
}
