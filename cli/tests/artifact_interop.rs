//! Interoperability both ways with independent clients: skopeo (Debian) and oras (PyPI, driven
//! from a Python script).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{files, push, run_tool, sourcectl, testdata};
use test_support::registry::RegistryBuilder;
use test_support::tools;

const FLUX_CONFIG: &str = "application/vnd.cncf.flux.config.v1+json";
const FLUX_CONTENT: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn python(script: &str, args: &[&str]) -> String {
    let python = tools::venv_python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python (oras from the venv; run scripts/setup.sh if it is missing) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    registry::Digest::sha256_of(bytes).hex().to_owned()
}

#[test]
fn skopeo_and_oras_read_what_sourcectl_pushed() {
    let skopeo = tools::require("skopeo");
    let registry = RegistryBuilder::new().start();
    let url = format!("{}:v1.0.0", registry.oci_url("interop/app"));
    let digest = push(
        &url,
        &testdata("podinfo-kustomize"),
        &["-a", "org.example/team=platform", "--reproducible"],
    );
    let docker_ref = format!("docker://{}/interop/app:v1.0.0", registry.host());

    let raw = run_tool(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &docker_ref,
    ]));
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        digest,
        "skopeo sees the digest we reported"
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["config"]["mediaType"], FLUX_CONFIG);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], FLUX_CONTENT);
    let annotations = &manifest["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://github.com/stefanprodan/podinfo"
    );
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(annotations["org.example/team"], "platform");

    // oras: fetch the manifest and the layer blob (no title annotation: oras names it by digest).
    let out = tempfile::tempdir().unwrap();
    let script = r#"
import json, sys, oras.client
c = oras.client.OrasClient(insecure=True)
ref, out = sys.argv[1], sys.argv[2]
m = c.get_manifest(ref)
files = c.pull(target=ref, outdir=out)
print(json.dumps({"manifest": m, "files": files}))
"#;
    let result: serde_json::Value = serde_json::from_str(&python(
        script,
        &[
            &format!("{}/interop/app:v1.0.0", registry.host()),
            out.path().to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(result["manifest"]["layers"][0]["mediaType"], FLUX_CONTENT);
    assert_eq!(
        result["manifest"]["annotations"]["org.opencontainers.image.source"],
        annotations["org.opencontainers.image.source"]
    );
    let layer_file = result["files"][0].as_str().unwrap();
    let blob = std::fs::read(layer_file).unwrap();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&blob)),
        manifest["layers"][0]["digest"].as_str().unwrap()
    );
    // The blob oras fetched is our tarball: it extracts to the source tree.
    let dest = out.path().join("extracted");
    registry::extract::extract(blob.as_slice(), &dest, &registry::Limits::default()).unwrap();
    assert_eq!(files(&dest), files(&testdata("podinfo-kustomize")));
}

#[test]
fn sourcectl_pulls_what_oras_pushed() {
    let registry = RegistryBuilder::new().start();
    let work = tempfile::tempdir().unwrap();
    common::copy_tree(
        &testdata("podinfo-kustomize"),
        &work.path().join("manifests"),
    );
    let script = r#"
import os, sys, oras.client
os.chdir(sys.argv[2])
c = oras.client.OrasClient(insecure=True)
c.push(target=sys.argv[1], files=["manifests"], manifest_annotations={"org.opencontainers.image.source": "oras"})
"#;
    python(
        script,
        &[
            &format!("{}/oras/app:v1", registry.host()),
            work.path().to_str().unwrap(),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let run = sourcectl(&[
        "pull",
        "artifact",
        &format!("{}:v1", registry.oci_url("oras/app")),
        "-o",
        out.path().to_str().unwrap(),
        "--insecure-registry",
    ])
    .ok();
    assert!(run.stderr.contains("✔ source oras"), "{}", run.stderr);
    // oras tars the directory under its own name.
    assert_eq!(
        files(&out.path().join("manifests")),
        files(&testdata("podinfo-kustomize"))
    );
}

/// Writes an OCI image layout in `dir`: one image (OCI layer type, image config) wrapped in an
/// image index when `with_index`; `index.json` names it `v1`.
fn write_oci_layout(dir: &Path, content: &Path, with_index: bool) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut tgz = Vec::new();
    let summary = registry::archive::build(content, &registry::Matcher::empty(), &mut tgz).unwrap();
    let (layer_digest, layer_size) = put(&tgz);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [summary.tar_digest.to_string()]}
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
        "annotations": {"org.opencontainers.image.revision": "skopeo-rev"}
    });
    let (mut top_digest, mut top_size) = put(manifest.to_string().as_bytes());
    let mut top_type = "application/vnd.oci.image.manifest.v1+json";
    if with_index {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": top_type, "digest": top_digest, "size": top_size,
                           "platform": {"architecture": "amd64", "os": "linux"}}]
        });
        (top_digest, top_size) = put(index.to_string().as_bytes());
        top_type = "application/vnd.oci.image.index.v1+json";
    }
    let index_json = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": top_type, "digest": top_digest, "size": top_size,
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    std::fs::write(dir.join("index.json"), index_json.to_string()).unwrap();
    std::fs::File::create(dir.join("oci-layout"))
        .unwrap()
        .write_all(br#"{"imageLayoutVersion":"1.0.0"}"#)
        .unwrap();
}

#[test]
fn sourcectl_pulls_what_skopeo_copied_including_an_index() {
    let skopeo = tools::require("skopeo");
    let registry = RegistryBuilder::new().start();
    // (repository, wrap in an index, convert to Docker schema 2 media types)
    for (repo, with_index, docker) in [
        ("skopeo/image", false, false),
        ("skopeo/index", true, false),
        ("skopeo/docker", false, true),
    ] {
        let layout = tempfile::tempdir().unwrap();
        write_oci_layout(layout.path(), &testdata("podinfo-deploy"), with_index);
        let mut copy = Command::new(&skopeo);
        copy.args(["copy", "--dest-tls-verify=false"]);
        if with_index {
            copy.arg("--all");
        }
        if docker {
            copy.args(["--format", "v2s2"]);
        }
        copy.arg(format!("oci:{}:v1", layout.path().display()))
            .arg(format!("docker://{}/{repo}:v1", registry.host()));
        run_tool(&mut copy);
        let out = tempfile::tempdir().unwrap();
        let run = sourcectl(&[
            "pull",
            "artifact",
            &format!("{}:v1", registry.oci_url(repo)),
            "-o",
            out.path().to_str().unwrap(),
            "--insecure-registry",
        ])
        .ok();
        if docker {
            // Docker schema 2 has no manifest annotations; check the media types skopeo wrote.
            let raw = run_tool(Command::new(&skopeo).args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{}/{repo}:v1", registry.host()),
            ]));
            let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(
                manifest["mediaType"],
                "application/vnd.docker.distribution.manifest.v2+json"
            );
            assert_eq!(
                manifest["layers"][0]["mediaType"],
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            );
        } else {
            assert!(
                run.stderr.contains("✔ revision skopeo-rev"),
                "{}",
                run.stderr
            );
        }
        assert_eq!(
            files(out.path()),
            files(&testdata("podinfo-deploy")),
            "{repo}"
        );
    }
}
