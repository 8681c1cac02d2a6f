//! End to end, through public interfaces only: `sourcectl`/`oras` push to the real registry,
//! `kubectl` applies OCIRepositories to the real server, waits for Ready, and downloads the
//! artifact subresource.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use test_support::e2e::{
    apply, copy_tree, describe, download, eventually, files, jsonpath, oci_repository, push,
    push_podinfo, sha256, testdata, untar, wait_ready, wait_revision,
};
use test_support::kubectl::Kubectl;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};
use test_support::tools;

fn server(args: &[&str]) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        },
    )
}

fn spec(url: &str, extra: &str) -> String {
    format!("  interval: 2s\n  url: {url}\n  insecure: true\n{extra}")
}

#[test]
fn push_apply_wait_and_download_in_both_versions() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("podinfo/manifests");
    let digest = push_podinfo(&format!("{url}:6.5.0"));
    let server = server(&[]);
    let k = Kubectl::for_server(&server);

    apply(
        &k,
        &oci_repository("v1", "podinfo", &spec(&url, "  ref:\n    tag: 6.5.0\n")),
    );
    apply(
        &k,
        &oci_repository(
            "v1beta2",
            "podinfo-beta",
            &spec(&url, "  ref:\n    tag: 6.5.0\n"),
        ),
    );
    for name in ["podinfo", "podinfo-beta"] {
        k.run(&[
            "wait",
            "--for=condition=Ready",
            &format!("ocirepository/{name}"),
            "--timeout=60s",
        ])
        .ok();
        assert_eq!(
            jsonpath(&k, name, "{.status.artifact.revision}"),
            format!("6.5.0@{digest}")
        );
        let message = wait_ready(&k, name, "True", Some("Succeeded"));
        assert_eq!(
            message,
            format!("stored artifact for digest '6.5.0@{digest}'")
        );
        let artifact_digest = jsonpath(&k, name, "{.status.artifact.digest}");
        for version in ["v1", "v1beta2"] {
            let bytes = download(&k, version, name);
            assert_eq!(
                sha256(&bytes),
                artifact_digest,
                "{version} download of {name}"
            );
            let tree = untar(&bytes);
            assert_eq!(files(tree.path()), files(&testdata("podinfo-kustomize")));
        }
        assert_eq!(
            jsonpath(&k, name, "{.status.artifact.url}"),
            format!(
                "{}/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/{name}/artifact?revision=6.5.0%40{}",
                server.url(),
                digest.replace(':', "%3A")
            )
        );
        assert_eq!(
            jsonpath(
                &k,
                name,
                "{.status.artifact.metadata.org\\.opencontainers\\.image\\.source}"
            ),
            "https://github.com/stefanprodan/podinfo"
        );
        assert_eq!(jsonpath(&k, name, "{.status.observedGeneration}"), "1");
        assert_eq!(
            jsonpath(&k, name, "{.metadata.finalizers[0]}"),
            "finalizers.fluxcd.io"
        );
        let conditions = jsonpath(&k, name, "{.status.conditions[*].type}");
        assert_eq!(
            conditions,
            "Ready ArtifactInStorage",
            "{}",
            describe(&k, name)
        );
    }
    // The pulled-bytes metric (kube's /metrics, as kubectl reads it) counts each distinct
    // archive once: both objects resolve to the same build, so the second shares the first's
    // archive and pulls nothing (docs/reconcile.md, shared builds).
    let archives: std::collections::BTreeMap<String, u64> = ["podinfo", "podinfo-beta"]
        .iter()
        .map(|name| {
            let digest = jsonpath(&k, name, "{.status.artifact.digest}");
            let size = jsonpath(&k, name, "{.status.artifact.size}");
            (digest, size.parse::<u64>().unwrap())
        })
        .collect();
    assert_eq!(archives.len(), 1, "one build: {archives:?}");
    let sizes: u64 = archives.values().sum();
    let run = k.run(&["get", "--raw", "/metrics"]);
    let metrics = run.ok();
    let pulled = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("source_apiserver_artifact_pulled_bytes_total{kind=\"OCIRepository\"} ")
        })
        .unwrap_or_else(|| panic!("no pulled-bytes sample:\n{metrics}"));
    assert_eq!(
        pulled.trim().parse::<f64>().unwrap(),
        sizes as f64,
        "{metrics}"
    );
    let path = jsonpath(&k, "podinfo", "{.status.artifact.path}");
    assert!(
        path.starts_with("ocirepository/default/podinfo/") && path.ends_with(".tar.gz"),
        "{path}"
    );
    assert!(server.data_dir().join("artifacts").join(&path).is_file());

    // No artifact yet: 404 with a Status naming the object.
    apply(
        &k,
        &oci_repository("v1", "idle", &spec(&url, "  suspend: true\n")),
    );
    let run = k.run(&[
        "get",
        "--raw",
        "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/idle/artifact",
    ]);
    assert!(
        run.failed().contains("(NotFound)") && run.stderr.contains("\"idle\" has no artifact yet"),
        "a 404 Status naming the object and the missing artifact: {}",
        run.stderr
    );

    // Deleting the object deletes its artifacts (the finalizer guards the clean-up).
    k.run(&["delete", "ocirepository", "podinfo", "--timeout=60s"])
        .ok();
    let dir = server
        .data_dir()
        .join("artifacts/ocirepository/default/podinfo");
    eventually(
        "artifacts of a deleted object to go",
        || (!dir.exists()).then_some(()),
        || format!("{} still exists", dir.display()),
    );
}

#[test]
fn semver_tracks_new_tags_after_the_interval_and_at_once_on_request() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("app/semver");
    let src = testdata("podinfo-kustomize");
    let push_tag = |tag: &str| push(&format!("{url}:{tag}"), &src, &["--insecure-registry"]);
    let d1 = push_tag("1.0.0");
    push_tag("2.0.0");
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "app",
            &spec(&url, "  ref:\n    semver: \">=1.0.0 <2.0.0\"\n"),
        ),
    );
    assert_eq!(wait_revision(&k, "app", |_| true), format!("1.0.0@{d1}"));

    // A new tag in range becomes the revision after the interval (2 s).
    let mut tree = tempfile::tempdir().unwrap();
    copy_tree(&src, tree.path());
    std::fs::write(tree.path().join("extra.yaml"), "kind: ConfigMap\n").unwrap();
    let d2 = push(
        &format!("{url}:1.1.0"),
        tree.path(),
        &["--insecure-registry"],
    );
    assert_eq!(
        wait_revision(&k, "app", |r| r.starts_with("1.1.0@")),
        format!("1.1.0@{d2}")
    );
    let message = wait_ready(&k, "app", "True", None);
    assert_eq!(message, format!("stored artifact for digest '1.1.0@{d2}'"));
    let bytes = download(&k, "v1", "app");
    assert!(files(untar(&bytes).path()).contains_key("extra.yaml"));

    // With a long interval, a reconcile request picks the next tag at once.
    apply(
        &k,
        &oci_repository(
            "v1",
            "app",
            &format!(
                "  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    semver: \">=1.0.0 <2.0.0\"\n"
            ),
        ),
    );
    tree = tempfile::tempdir().unwrap();
    copy_tree(&src, tree.path());
    std::fs::write(tree.path().join("more.yaml"), "kind: Secret\n").unwrap();
    let d3 = push(
        &format!("{url}:1.2.0"),
        tree.path(),
        &["--insecure-registry"],
    );
    k.run(&[
        "annotate",
        "--overwrite",
        "ocirepository/app",
        "reconcile.fluxcd.io/requestedAt=now-1",
    ])
    .ok();
    assert_eq!(
        wait_revision(&k, "app", |r| r.starts_with("1.2.0@")),
        format!("1.2.0@{d3}")
    );
    assert_eq!(
        jsonpath(&k, "app", "{.status.lastHandledReconcileAt}"),
        "now-1"
    );

    // semverFilter: only release candidates.
    push_tag("1.3.0-rc.1");
    push_tag("1.3.0");
    apply(
        &k,
        &oci_repository(
            "v1",
            "rc",
            &spec(
                &url,
                "  ref:\n    semver: \">=1.0.0-0\"\n    semverFilter: \".*-rc.*\"\n",
            ),
        ),
    );
    assert!(wait_revision(&k, "rc", |_| true).starts_with("1.3.0-rc.1@"));

    // A semver without a match: Ready False with Flux's reason and message.
    apply(
        &k,
        &oci_repository(
            "v1",
            "nomatch",
            &spec(&url, "  ref:\n    semver: \">=9.0.0\"\n"),
        ),
    );
    let message = wait_ready(&k, "nomatch", "False", Some("ReadOperationFailed"));
    assert_eq!(
        message,
        format!(
            "failed to determine the artifact tag for '{url}': no match found for semver: >=9.0.0"
        )
    );
}

#[test]
fn digest_reference_and_ignore_rules() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("app/digest");
    let digest = push_podinfo(&format!("{url}:v1"));
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "pinned",
            &spec(
                &url,
                &format!("  ref:\n    digest: {digest}\n  ignore: |\n    hpa.yaml\n"),
            ),
        ),
    );
    assert_eq!(wait_revision(&k, "pinned", |_| true), digest);
    wait_ready(&k, "pinned", "True", Some("Succeeded"));
    let got = files(untar(&download(&k, "v1", "pinned")).path());
    let mut want = files(&testdata("podinfo-kustomize"));
    want.remove("hpa.yaml");
    assert_eq!(got, want);
    assert_eq!(
        jsonpath(&k, "pinned", "{.status.observedIgnore}"),
        "hpa.yaml\n"
    );

    // Changing the ignore rules rebuilds the artifact of the same revision.
    apply(
        &k,
        &oci_repository(
            "v1",
            "pinned",
            &spec(
                &url,
                &format!("  ref:\n    digest: {digest}\n  ignore: |\n    service.yaml\n"),
            ),
        ),
    );
    eventually(
        "the artifact without service.yaml",
        || (jsonpath(&k, "pinned", "{.status.observedIgnore}") == "service.yaml\n").then_some(()),
        || describe(&k, "pinned"),
    );
    let got = files(untar(&download(&k, "v1", "pinned")).path());
    assert!(got.contains_key("hpa.yaml") && !got.contains_key("service.yaml"));
}

fn oras_push(registry_host: &str, target: &str, workdir: &Path, files: &[&str]) {
    let script = r#"
import os, sys, json, oras.client
os.chdir(sys.argv[2])
c = oras.client.OrasClient(insecure=True)
c.push(target=sys.argv[1], files=json.loads(sys.argv[3]), disable_path_validation=True)
"#;
    let python = tools::venv_python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(format!("{registry_host}/{target}"))
        .arg(workdir)
        .arg(serde_json::to_string(files).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras push (python venv from scripts/setup.sh) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn layer_selector_extracts_or_copies_what_oras_pushed() {
    let registry = RegistryBuilder::new().start();
    let work = tempfile::tempdir().unwrap();
    copy_tree(
        &testdata("podinfo-kustomize"),
        &work.path().join("manifests"),
    );
    std::fs::write(work.path().join("notes.txt"), "first layer\n").unwrap();
    let chart = testdata("podinfo-chart");
    let mut tgz = Vec::new();
    registry::archive::build(&chart, &registry::Matcher::empty(), &mut tgz).unwrap();
    std::fs::write(work.path().join("chart.tgz"), &tgz).unwrap();
    oras_push(
        registry.host(),
        "oras/multi:v1",
        work.path(),
        &[
            "notes.txt:text/plain",
            "manifests",
            "chart.tgz:application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        ],
    );
    let url = registry.oci_url("oras/multi");
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "extract",
            &spec(
                &url,
                "  ref:\n    tag: v1\n  layerSelector:\n    mediaType: application/vnd.oci.image.layer.v1.tar+gzip\n    operation: extract\n",
            ),
        ),
    );
    apply(
        &k,
        &oci_repository(
            "v1",
            "copy",
            &spec(
                &url,
                "  ref:\n    tag: v1\n  layerSelector:\n    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n    operation: copy\n",
            ),
        ),
    );
    apply(
        &k,
        &oci_repository(
            "v1",
            "missing",
            &spec(
                &url,
                "  ref:\n    tag: v1\n  layerSelector:\n    mediaType: application/x-none\n",
            ),
        ),
    );
    wait_ready(&k, "extract", "True", Some("Succeeded"));
    let got = files(untar(&download(&k, "v1", "extract")).path());
    let want: std::collections::BTreeMap<_, _> = files(&testdata("podinfo-kustomize"))
        .into_iter()
        .map(|(k, v)| (format!("manifests/{k}"), v))
        .collect();
    assert_eq!(got, want);

    wait_ready(&k, "copy", "True", Some("Succeeded"));
    let copied = download(&k, "v1", "copy");
    assert_eq!(copied, tgz, "copy stores the layer blob byte for byte");
    assert_eq!(
        jsonpath(&k, "copy", "{.status.observedLayerSelector.operation}"),
        "copy"
    );

    let message = wait_ready(
        &k,
        "missing",
        "False",
        Some("OCIArtifactLayerOperationFailed"),
    );
    assert_eq!(
        message,
        "failed to find layer with media type 'application/x-none' in artifact"
    );
}

/// A gzip tar with an entry named `../escaped.txt`, written header by header (the `tar` crate
/// refuses to build such names).
/// A gzipped tar of one regular file whose name is written byte for byte (no validation), as
/// an attacker would.
fn hostile_tgz(name: &str) -> Vec<u8> {
    let mut tar = Vec::new();
    let mut header = [0u8; 512];
    let name = name.as_bytes();
    header[..name.len()].copy_from_slice(name);
    header[100..107].copy_from_slice(b"0000644");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    let body = b"owned\n";
    header[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&header);
    tar.extend_from_slice(body);
    tar.resize(tar.len() + (512 - body.len()), 0);
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Each hostile entry climbs a different number of levels (or is absolute). The data directory
/// sits four levels deep in a sandbox that outlives the reconciles, and the server's `TMPDIR`
/// is inside it too, so wherever extraction works (the data directory's scratch, the system
/// temp dir) every target lands inside the sandbox, where the check looks after the reconciles.
/// (Only an escape of exactly one level, into extraction's own work directory, is deleted with
/// it.)
#[test]
fn a_hostile_artifact_is_refused_and_nothing_escapes() {
    let registry = RegistryBuilder::new().start();
    let sandbox = tempfile::tempdir().unwrap();
    let data_dir = sandbox.path().join("a/b/c/d/data");
    let tmpdir = sandbox.path().join("tmp/x/y");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let absolute = sandbox.path().join("escaped-absolute.txt");
    let mut entries: Vec<(String, String)> = (1..=8)
        .map(|depth| {
            (
                format!("depth{depth}"),
                format!("{}escaped-{depth}.txt", "../".repeat(depth)),
            )
        })
        .collect();
    entries.push(("absolute".into(), absolute.display().to_string()));
    let work = tempfile::tempdir().unwrap();
    for (tag, entry) in &entries {
        std::fs::write(work.path().join("evil.tgz"), hostile_tgz(entry)).unwrap();
        oras_push(
            registry.host(),
            &format!("evil/app:{tag}"),
            work.path(),
            &["evil.tgz:application/vnd.cncf.flux.content.v1.tar+gzip"],
        );
    }
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            data_dir: Some(data_dir.clone()),
            env: vec![("TMPDIR".into(), tmpdir.display().to_string())],
            ..Default::default()
        },
    );
    let k = Kubectl::for_server(&server);
    let url = registry.oci_url("evil/app");
    let manifests: String = entries
        .iter()
        .map(|(tag, _)| {
            oci_repository(
                "v1",
                &format!("evil-{tag}"),
                &spec(&url, &format!("  ref:\n    tag: {tag}\n")),
            ) + "---\n"
        })
        .collect();
    apply(&k, &manifests);
    for (tag, entry) in &entries {
        let name = format!("evil-{tag}");
        let message = wait_ready(&k, &name, "False", Some("OCIArtifactLayerOperationFailed"));
        assert!(
            message.starts_with(&format!(
                "failed to extract layer contents from artifact: tar contained invalid name {entry:?}"
            )),
            "{name}: {message}"
        );
        assert_eq!(jsonpath(&k, &name, "{.status.artifact}"), "");
    }
    let escaped: Vec<_> = walk(&sandbox.path().to_path_buf())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("escaped"))
        })
        .collect();
    assert!(escaped.is_empty(), "{escaped:?}");
    server.stop();
}

fn walk(dir: &std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn every_example_is_accepted_by_the_api() {
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = k.run(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()]);
            assert!(out.ok().contains("(server dry run)"), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} examples in {}", dir.display());
}

/// `curl -D -` of `url`; returns (headers, body).
fn curl(args: &[&str], url: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new(tools::require("curl"))
        .args(["-sS", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(headers).unwrap().to_lowercase(),
        std::fs::read(body).unwrap(),
    )
}

#[test]
fn artifact_headers_and_the_plain_http_listener() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("app/http");
    push_podinfo(&format!("{url}:v1"));
    let port = tools::free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = server(&[
        "--artifact-listen",
        &addr,
        "--artifact-advertise-address",
        &addr,
    ]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository("v1", "web", &spec(&url, "  ref:\n    tag: v1\n")),
    );
    wait_ready(&k, "web", "True", Some("Succeeded"));
    let digest = jsonpath(&k, "web", "{.status.artifact.digest}");
    let path = jsonpath(&k, "web", "{.status.artifact.path}");
    let artifact_url = jsonpath(&k, "web", "{.status.artifact.url}");
    assert_eq!(artifact_url, format!("http://{addr}/{path}"));
    assert_eq!(
        jsonpath(&k, "web", "{.status.url}"),
        format!("http://{addr}/ocirepository/default/web/latest.tar.gz")
    );

    // Plain HTTP at Flux's layout, as kustomize-controller fetches it.
    let (headers, body) = curl(&[], &artifact_url);
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert_eq!(sha256(&body), digest);
    let (_, latest) = curl(&[], &jsonpath(&k, "web", "{.status.url}"));
    assert_eq!(latest, body);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://{addr}/ocirepository/default/web/../../../../etc/passwd"
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");

    // The subresource over HTTPS with the admin certificate: headers.
    let pki = server.data_dir().join("pki");
    let (cert, key, ca) = (
        pki.join("admin.crt"),
        pki.join("admin.key"),
        pki.join("ca.crt"),
    );
    let (headers, body) = curl(
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--cacert",
            ca.to_str().unwrap(),
        ],
        &format!(
            "{}/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/web/artifact",
            server.url()
        ),
    );
    assert_eq!(sha256(&body), digest);
    assert!(
        headers.contains("content-type: application/gzip"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("content-length: {}", body.len())),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("etag: \"{digest}\"")),
        "{headers}"
    );
}

#[test]
fn artifacts_over_the_size_or_file_limits_are_refused() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("app/limits");
    push_podinfo(&format!("{url}:v1"));
    let server = server(&["--artifact-max-files", "3", "--artifact-max-size", "100000"]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository("v1", "files", &spec(&url, "  ref:\n    tag: v1\n")),
    );
    let message = wait_ready(
        &k,
        "files",
        "False",
        Some("OCIArtifactLayerOperationFailed"),
    );
    assert!(
        message.starts_with("failed to extract layer contents from artifact: extracting")
            && message.contains("exceeds the limit of 3 files"),
        "{message}"
    );
    drop(server);

    let server = server_with_size_limit(600);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository("v1", "size", &spec(&url, "  ref:\n    tag: v1\n")),
    );
    let message = wait_ready(&k, "size", "False", Some("OCIArtifactLayerOperationFailed"));
    assert!(
        message.contains("over the artifact size limit of 600 bytes (--artifact-max-size)")
            || message.contains("exceeds the size limit of 600 bytes"),
        "{message}"
    );
}

fn server_with_size_limit(bytes: u64) -> ApiServer {
    server(&["--artifact-max-size", &bytes.to_string()])
}
