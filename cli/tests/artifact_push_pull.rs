//! `sourcectl push|pull|diff|build artifact` against a real registry.

mod common;

use common::{copy_tree, files, push, sourcectl, testdata};
use test_support::registry::RegistryBuilder;

#[test]
fn push_then_pull_round_trips_the_podinfo_trees() {
    let registry = RegistryBuilder::new().start();
    for name in ["podinfo-kustomize", "podinfo-deploy", "podinfo-chart"] {
        let src = testdata(name);
        let url = format!("{}:v1", registry.oci_url(&format!("podinfo/{name}")));
        let run = sourcectl(&[
            "push",
            "artifact",
            &url,
            "--path",
            src.to_str().unwrap(),
            "--source",
            "git@github.com:org/repo",
            "--revision",
            "main@sha1:abc",
            "--insecure-registry",
        ])
        .ok();
        assert!(
            run.stderr.contains(&format!(
                "► pushing artifact to {}/podinfo/{name}:v1",
                registry.host()
            )),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("✔ artifact successfully pushed to "),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());

        let out = tempfile::tempdir().unwrap();
        let run = sourcectl(&[
            "pull",
            "artifact",
            &url,
            "--output",
            out.path().to_str().unwrap(),
            "--insecure-registry",
        ])
        .ok();
        assert!(
            run.stderr.contains("✔ source git@github.com:org/repo"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("✔ revision main@sha1:abc"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!(
                "✔ digest {}/podinfo/{name}@sha256:",
                registry.host()
            )),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("✔ artifact content extracted to "),
            "{}",
            run.stderr
        );
        let expected: std::collections::BTreeMap<_, _> = files(&src)
            .into_iter()
            .filter(|(p, _)| {
                !p.ends_with(".png")
                    && !p.ends_with(".tar.gz")
                    && !p.ends_with(".zip")
                    && !p.starts_with(".git")
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(files(out.path()), expected, "{name}");
    }
}

#[test]
fn push_prints_json_and_yaml_on_stdout() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v2", registry.oci_url("app"));
    let src = testdata("podinfo-kustomize");
    let run = sourcectl(&[
        "push",
        "artifact",
        &url,
        "-f",
        src.to_str().unwrap(),
        "--source",
        "s",
        "--revision",
        "r",
        "--insecure-registry",
        "-o",
        "json",
    ])
    .ok();
    assert!(
        !run.stderr.contains("► pushing"),
        "-o suppresses the action line: {}",
        run.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let digest = json["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"));
    assert_eq!(json["repository"], format!("{}/app", registry.host()));
    assert_eq!(json["tag"], "v2");
    assert_eq!(
        json["url"],
        format!("oci://{}/app@{digest}", registry.host())
    );
    let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["url", "repository", "tag", "digest"]);

    let run = sourcectl(&[
        "push",
        "artifact",
        &url,
        "-f",
        src.to_str().unwrap(),
        "--source",
        "s",
        "--revision",
        "r",
        "--insecure-registry",
        "-o",
        "yaml",
    ])
    .ok();
    let first_keys: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(first_keys, ["digest", "repository", "tag", "url"]);
}

#[test]
fn reproducible_pushes_give_one_digest_and_diff_tracks_content() {
    let registry = RegistryBuilder::new().start();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    copy_tree(&testdata("podinfo-kustomize"), &tree);
    let url = format!("{}:repro", registry.oci_url("repro"));
    let first = push(&url, &tree, &["--reproducible"]);
    // New mtimes, same content.
    copy_tree(&testdata("podinfo-kustomize"), &tree);
    let second = push(&url, &tree, &["--reproducible"]);
    assert_eq!(first, second);
    let other = push(&url, &tree, &[]);
    assert_ne!(
        first, other,
        "without --reproducible the created time differs"
    );

    let run = sourcectl(&[
        "diff",
        "artifact",
        &url,
        "--path",
        tree.to_str().unwrap(),
        "--insecure-registry",
    ])
    .ok();
    assert!(
        run.stderr.contains("✔ no changes detected"),
        "{}",
        run.stderr
    );

    let edited = common::files(&tree)
        .keys()
        .find(|p| p.ends_with(".yaml"))
        .unwrap()
        .clone();
    std::fs::write(tree.join(&edited), "kind: Edited\n").unwrap();
    let run = sourcectl(&[
        "diff",
        "artifact",
        &url,
        "--path",
        tree.to_str().unwrap(),
        "--insecure-registry",
    ])
    .failed();
    assert!(
        run.stderr
            .contains("✗ the remote artifact contents differs from the local one"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("~ {edited}")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_single_file_is_pushed_and_pulled() {
    let registry = RegistryBuilder::new().start();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\n").unwrap();
    let url = format!("{}:file", registry.oci_url("single"));
    push(&url, &file, &[]);
    let out = tempfile::tempdir().unwrap();
    sourcectl(&[
        "pull",
        "artifact",
        &url,
        "-o",
        out.path().to_str().unwrap(),
        "--insecure-registry",
    ])
    .ok();
    assert_eq!(
        std::fs::read(out.path().join("app.yaml")).unwrap(),
        b"apiVersion: v1\nkind: ConfigMap\n"
    );
}

#[test]
fn pull_refuses_content_over_the_limits() {
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:big", registry.oci_url("limits"));
    push(&url, &testdata("podinfo-deploy"), &[]);
    let out = tempfile::tempdir().unwrap();
    let run = sourcectl(&[
        "pull",
        "artifact",
        &url,
        "-o",
        out.path().to_str().unwrap(),
        "--insecure-registry",
        "--max-size-bytes",
        "100",
    ])
    .failed();
    assert!(
        run.stderr.contains("exceeds the size limit of 100 bytes"),
        "{}",
        run.stderr
    );
    let run = sourcectl(&[
        "pull",
        "artifact",
        &url,
        "-o",
        out.path().to_str().unwrap(),
        "--insecure-registry",
        "--max-files",
        "2",
    ])
    .failed();
    assert!(
        run.stderr.contains("exceeds the limit of 2 files"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_1_with_flux_messages() {
    let run = sourcectl(&[
        "push",
        "artifact",
        "localhost:5000/app",
        "--path",
        ".",
        "--source",
        "s",
        "--revision",
        "r",
    ])
    .failed();
    assert!(
        run.stderr
            .contains("✗ URL must be in format 'oci://<domain>/<org>/<repo>'"),
        "{}",
        run.stderr
    );
    let run = sourcectl(&[
        "push",
        "artifact",
        "oci://localhost:5000/app",
        "--path",
        "/does/not/exist",
        "--source",
        "s",
        "--revision",
        "r",
    ])
    .failed();
    assert!(
        run.stderr.contains(
            "✗ invalid path '/does/not/exist', must point to an existing directory or file"
        ),
        "{}",
        run.stderr
    );
    let run = sourcectl(&[
        "push",
        "artifact",
        "oci://localhost:5000/app",
        "--path",
        ".",
        "--source",
        "s",
        "--revision",
        "r",
        "-a",
        "a=b=c",
    ])
    .failed();
    assert!(
        run.stderr
            .contains("✗ invalid annotation a=b=c, must be in the format key=value"),
        "{}",
        run.stderr
    );
    // A missing --output is created (flux_flags.rs); one that is a file is refused.
    let file = tempfile::NamedTempFile::new().unwrap();
    let run = sourcectl(&[
        "pull",
        "artifact",
        "oci://localhost:5000/app",
        "-o",
        file.path().to_str().unwrap(),
    ])
    .failed();
    assert!(
        run.stderr.contains(&format!(
            "✗ invalid output path \"{}\": not a directory",
            file.path().display()
        )),
        "{}",
        run.stderr
    );
    sourcectl(&["push", "artifact"]).failed();
    sourcectl(&["--help"]).ok();
}

#[test]
fn build_writes_the_same_content_push_would() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("artifact.tgz");
    let src = testdata("podinfo-kustomize");
    let run = sourcectl(&[
        "build",
        "artifact",
        "-p",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    assert!(
        run.stderr
            .contains(&format!("► building artifact from {}", src.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("✔ artifact created at {}", out.display())),
        "{}",
        run.stderr
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let dest = work.path().join("x");
    registry::extract::extract(
        std::fs::File::open(&out).unwrap(),
        &dest,
        &registry::Limits::default(),
    )
    .unwrap();
    assert_eq!(files(&dest).len(), files(&src).len());
}

#[test]
fn ignore_paths_replace_and_add_ignore_paths_extend_the_defaults() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("docs")).unwrap();
    std::fs::write(tree.join("app.yaml"), "kind: A\n").unwrap();
    std::fs::write(tree.join("docs/README.md"), "docs").unwrap();
    std::fs::write(tree.join("logo.png"), "png").unwrap();
    let build = |extra: &[&str]| {
        let out = work.path().join("a.tgz");
        let mut args = vec![
            "build",
            "artifact",
            "-p",
            tree.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        sourcectl(&args).ok();
        let dest = tempfile::tempdir().unwrap();
        registry::extract::extract(
            std::fs::File::open(&out).unwrap(),
            dest.path(),
            &registry::Limits::default(),
        )
        .unwrap();
        files(dest.path()).into_keys().collect::<Vec<_>>()
    };
    assert_eq!(build(&[]), ["app.yaml", "docs/README.md"]);
    assert_eq!(build(&["--add-ignore-paths", "docs/"]), ["app.yaml"]);
    assert_eq!(build(&["--ignore-paths", "*.md"]), ["app.yaml", "logo.png"]);
}
