//! Helm charts end to end, through public interfaces only: `sourcectl push chart` and oras
//! (PyPI) push podinfo's chart to the real registry, `kubectl` applies HelmRepositories and
//! HelmCharts (v1 and v1beta2) to the real server and downloads the `helmcharts/<name>/artifact`
//! subresource; signatures come from `sourcectl generate key-pair` and `--sign-key`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use test_support::e2e::{
    apply, copy_tree, eventually, sha256, sourcectl_binary, testdata, untar, write_secret,
};
use test_support::kubectl::Kubectl;
use test_support::registry::{Registry, RegistryBuilder};
use test_support::server::{ApiServer, ServerOptions};
use test_support::tools;

fn server(args: &[&str], secrets: Option<&Path>) -> ApiServer {
    let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    if let Some(dir) = secrets {
        args.push("--secrets-dir".into());
        args.push(dir.display().to_string());
    }
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args,
            ..Default::default()
        },
    )
}

/// `kubectl get <resource> <name> -o jsonpath=<path>` (empty when it fails).
fn get(k: &Kubectl, resource: &str, name: &str, path: &str) -> String {
    let run = k.run(&["get", resource, name, "-o", &format!("jsonpath={path}")]);
    if run.success {
        run.stdout
    } else {
        String::new()
    }
}

fn describe(k: &Kubectl, resource: &str, name: &str) -> String {
    k.run(&["get", resource, name, "-o", "json"]).stdout.clone()
}

/// Waits until the condition `type_` of the HelmChart is `status` with `reason`; returns its
/// message.
#[track_caller]
fn wait_condition(k: &Kubectl, name: &str, type_: &str, status: &str, reason: &str) -> String {
    eventually(
        &format!("helmchart {name} {type_}={status} {reason}"),
        || {
            let c = |f: &str| {
                get(
                    k,
                    "helmchart",
                    name,
                    &format!("{{.status.conditions[?(@.type==\"{type_}\")].{f}}}"),
                )
            };
            (c("status") == status && c("reason") == reason).then(|| c("message"))
        },
        || describe(k, "helmchart", name),
    )
}

/// The chart artifact through the subresource, in API `version`.
fn download(k: &Kubectl, version: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "/apis/source.toolkit.fluxcd.io/{version}/namespaces/default/helmcharts/{name}/artifact"
    );
    let out = k
        .command(&["get", "--raw", &path])
        .output()
        .expect("running kubectl");
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// podinfo's chart with `version` in Chart.yaml, in a temp dir (and an extra file when given).
fn chart_version(version: &str, extra: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("podinfo");
    copy_tree(&testdata("podinfo-chart"), &chart);
    let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    let yaml = yaml.replace("version: 6.14.1\n", &format!("version: {version}\n"));
    std::fs::write(chart.join("Chart.yaml"), yaml).unwrap();
    if let Some(text) = extra {
        std::fs::write(chart.join("templates/extra.yaml"), text).unwrap();
    }
    (dir, chart)
}

/// `sourcectl push chart` of podinfo at `version`; returns the printed reference.
fn push_chart(
    registry: &Registry,
    version: &str,
    extra: Option<&str>,
    sign_key: Option<&str>,
) -> String {
    let (_dir, chart) = chart_version(version, extra);
    let url = registry.oci_url("charts");
    let mut args = vec![
        "push",
        "chart",
        chart.to_str().unwrap(),
        &url,
        "--insecure-registry",
    ];
    if let Some(key) = sign_key {
        args.extend(["--sign-key", key]);
    }
    let out = Command::new(sourcectl_binary())
        .env("COSIGN_PASSWORD", "password")
        .env("DOCKER_CONFIG", _dir.path())
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn helm_repository(k: &Kubectl, registry: &Registry, extra: &str) {
    let url = registry.oci_url("charts");
    apply(
        k,
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: charts\n  namespace: default\nspec:\n  type: oci\n  url: {url}\n  insecure: true\n{extra}"
        ),
    );
}

fn helm_chart(k: &Kubectl, version: &str, name: &str, spec: &str) {
    apply(
        k,
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/{version}\nkind: HelmChart\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  chart: podinfo\n  interval: 2s\n  sourceRef:\n    kind: HelmRepository\n    name: charts\n{spec}"
        ),
    );
}

/// `Chart.yaml` and `values.yaml` of a downloaded chart.
fn chart_files(bytes: &[u8]) -> (String, String) {
    let dir = untar(bytes);
    let read = |f: &str| std::fs::read_to_string(dir.path().join("podinfo").join(f)).unwrap();
    (read("Chart.yaml"), read("values.yaml"))
}

#[test]
fn versions_resolve_exactly_and_by_range_with_values_merged_in_both_api_versions() {
    let registry = RegistryBuilder::new().start();
    for v in ["6.5.0", "6.6.0+build.7", "6.7.0-rc.1"] {
        push_chart(&registry, v, None, None);
    }
    let server = server(&[], None);
    let k = Kubectl::for_server(&server);
    helm_repository(&k, &registry, "");
    assert_eq!(
        get(&k, "helmrepository", "charts", "{.status.conditions}"),
        "",
        "type oci keeps no status"
    );

    helm_chart(&k, "v1", "exact", "  version: 6.5.0\n");
    helm_chart(
        &k,
        "v1beta2",
        "range",
        "  version: '>=6.0.0'\n  valuesFiles: [values.yaml, values-prod.yaml]\n",
    );
    helm_chart(&k, "v1", "pre", "  version: '>=6.7.0-0'\n");

    let m = wait_condition(&k, "exact", "Ready", "True", "ChartPullSucceeded");
    assert_eq!(m, "pulled 'podinfo' chart with version '6.5.0'");
    assert_eq!(
        get(&k, "helmchart", "exact", "{.status.artifact.revision}"),
        "6.5.0"
    );
    // `<chart>-<version>-<manifest hex[..12]>.tgz`: one file per chart manifest.
    let first_path = get(&k, "helmchart", "exact", "{.status.artifact.path}");
    assert!(
        first_path.starts_with("helmchart/default/exact/podinfo-6.5.0-")
            && first_path.ends_with(".tgz"),
        "{first_path}"
    );
    let (chart_yaml, _) = chart_files(&download(&k, "v1beta2", "exact"));
    assert!(chart_yaml.contains("version: 6.5.0"), "{chart_yaml}");

    let m = wait_condition(&k, "range", "Ready", "True", "ChartPackageSucceeded");
    assert_eq!(
        m,
        "packaged 'podinfo' chart with version '6.6.0+1' and merged values files [values.yaml values-prod.yaml]"
    );
    let bytes = download(&k, "v1", "range");
    assert_eq!(
        sha256(&bytes),
        get(&k, "helmchart", "range", "{.status.artifact.digest}")
    );
    let (chart_yaml, values) = chart_files(&bytes);
    assert!(chart_yaml.contains("version: 6.6.0+1"), "{chart_yaml}");
    let values: serde_json::Value = serde_yaml::from_str(&values).unwrap();
    assert_eq!(
        values["redis"]["enabled"], true,
        "values-prod.yaml wins over values.yaml"
    );
    assert_eq!(values["redis"]["repository"], "redis");

    wait_condition(&k, "pre", "Ready", "True", "ChartPullSucceeded");
    assert_eq!(
        get(&k, "helmchart", "pre", "{.status.artifact.revision}"),
        "6.7.0-rc.1"
    );
    assert_eq!(
        get(&k, "helmchart", "pre", "{.status.observedChartName}"),
        "podinfo"
    );

    // The same version re-pushed with other content: a new artifact.
    let before = get(&k, "helmchart", "exact", "{.status.artifact.digest}");
    push_chart(&registry, "6.5.0", Some("kind: ConfigMap\n"), None);
    let after = eventually(
        "a new artifact for the re-pushed 6.5.0",
        || {
            Some(get(&k, "helmchart", "exact", "{.status.artifact.digest}"))
                .filter(|d| !d.is_empty() && *d != before)
        },
        || describe(&k, "helmchart", "exact"),
    );
    assert_eq!(sha256(&download(&k, "v1", "exact")), after);
    // Under another file name: the old file was never overwritten under a status that still
    // named it (no 503 window); retention collects it.
    assert_ne!(
        get(&k, "helmchart", "exact", "{.status.artifact.path}"),
        first_path
    );
    assert_eq!(
        get(&k, "helmchart", "exact", "{.status.artifact.revision}"),
        "6.5.0"
    );
}

#[test]
fn a_missing_values_file_stalls_unless_ignored_and_http_repositories_are_refused() {
    let registry = RegistryBuilder::new().start();
    push_chart(&registry, "6.5.0", None, None);
    let server = server(&[], None);
    let k = Kubectl::for_server(&server);
    helm_repository(&k, &registry, "");
    helm_chart(
        &k,
        "v1",
        "strict",
        "  version: 6.5.0\n  valuesFiles: [values.yaml, missing.yaml]\n",
    );
    helm_chart(
        &k,
        "v1",
        "lenient",
        "  version: 6.5.0\n  valuesFiles: [values.yaml, missing.yaml]\n  ignoreMissingValuesFiles: true\n",
    );
    let m = wait_condition(&k, "strict", "Stalled", "True", "ValuesFilesError");
    assert!(
        m.contains("no values file found at path 'missing.yaml'"),
        "{m}"
    );
    wait_condition(&k, "lenient", "Ready", "True", "ChartPackageSucceeded");
    assert_eq!(
        get(&k, "helmchart", "lenient", "{.status.observedValuesFiles}"),
        r#"["values.yaml"]"#
    );

    apply(
        &k,
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: http\n  namespace: default\nspec:\n  url: https://charts.example.com\n",
    );
    let stalled = eventually(
        "the HTTP HelmRepository stalls",
        || {
            Some(get(
                &k,
                "helmrepository",
                "http",
                "{.status.conditions[?(@.type==\"Stalled\")].message}",
            ))
            .filter(|m| !m.is_empty())
        },
        || describe(&k, "helmrepository", "http"),
    );
    assert!(stalled.contains("is not supported yet"), "{stalled}");
    let refused = k.run_with(
        &["apply", "-f", "-"],
        Some("apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: bad\n  namespace: default\nspec:\n  type: oci\n  url: https://charts.example.com\n"),
        &[],
    );
    assert!(
        !refused.success && refused.stderr.contains("spec.url"),
        "{}",
        refused.stderr
    );
}

#[test]
fn signed_charts_verify_and_a_foreign_signature_keeps_the_last_good_chart() {
    let keys = tempfile::tempdir().unwrap();
    for name in ["good", "other"] {
        let prefix = keys.path().join(name);
        let out = Command::new(sourcectl_binary())
            .env("COSIGN_PASSWORD", "password")
            .args([
                "generate",
                "key-pair",
                "--output-key-prefix",
                prefix.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = |n: &str| keys.path().join(n).display().to_string();
    let registry = RegistryBuilder::new().start();
    push_chart(&registry, "6.5.0", None, Some(&key("good.key")));
    let secrets = tempfile::tempdir().unwrap();
    let public = std::fs::read(keys.path().join("good.pub")).unwrap();
    write_secret(secrets.path(), "cosign", &[("cosign.pub", &public)]);
    let server = server(&[], Some(secrets.path()));
    let k = Kubectl::for_server(&server);
    helm_repository(&k, &registry, "");
    helm_chart(
        &k,
        "v1",
        "signed",
        "  version: 6.5.0\n  verify:\n    provider: cosign\n    secretRef:\n      name: cosign\n",
    );
    // Keyless (no secretRef): checked against the embedded public-good root; a key-made
    // signature carries no certificate, so none is found and nothing is stored (retried, not
    // stalled).
    helm_chart(
        &k,
        "v1",
        "keyless",
        "  version: 6.5.0\n  verify:\n    provider: cosign\n    matchOIDCIdentity:\n    - issuer: ^https://token.actions.githubusercontent.com$\n      subject: ^https://github.com/stefanprodan/podinfo.*$\n",
    );
    wait_condition(&k, "signed", "Ready", "True", "ChartPullSucceeded");
    wait_condition(&k, "signed", "SourceVerified", "True", "Succeeded");
    let good = get(&k, "helmchart", "signed", "{.status.artifact.digest}");
    let m = wait_condition(
        &k,
        "keyless",
        "SourceVerified",
        "False",
        "VerificationError",
    );
    assert!(
        m.starts_with(
            "failed to verify the signature using provider 'cosign': no signatures found"
        ),
        "{m}"
    );
    assert_eq!(get(&k, "helmchart", "keyless", "{.status.artifact}"), "");
    assert_eq!(
        get(
            &k,
            "helmchart",
            "keyless",
            "{.status.conditions[?(@.type==\"Stalled\")].status}"
        ),
        ""
    );

    push_chart(
        &registry,
        "6.5.0",
        Some("kind: Secret\n"),
        Some(&key("other.key")),
    );
    let m = wait_condition(&k, "signed", "SourceVerified", "False", "VerificationError");
    assert!(m.contains("failed to verify the signature"), "{m}");
    assert_eq!(
        get(&k, "helmchart", "signed", "{.status.artifact.digest}"),
        good
    );
    assert_eq!(
        sha256(&download(&k, "v1", "signed")),
        good,
        "the last good chart is still served"
    );
}

/// oras (PyPI) pushes `files` (`path:mediaType`) with a config to `target`.
fn oras_push(registry: &Registry, target: &str, workdir: &Path, config: &str, files: &[&str]) {
    let script = r#"
import os, sys, json, oras.client
os.chdir(sys.argv[2])
c = oras.client.OrasClient(insecure=True)
c.push(target=sys.argv[1], files=json.loads(sys.argv[3]), manifest_config=sys.argv[4], disable_path_validation=True)
"#;
    let out = Command::new(tools::venv_python())
        .args([
            "-c",
            script,
            &format!("{}/{target}", registry.host()),
            workdir.to_str().unwrap(),
        ])
        .arg(serde_json::to_string(files).unwrap())
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras push (venv from scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// oras (PyPI) fetches the manifest of `target` and the blob `digest` of it.
fn oras_fetch(registry: &Registry, target: &str) -> (serde_json::Value, Vec<u8>) {
    let script = r#"
import sys, json, oras.client
c = oras.client.OrasClient(insecure=True)
m = c.get_manifest(sys.argv[1])
layer = m["layers"][0]
repo = sys.argv[1].rsplit(":", 1)[0]
blob = c.get_blob(repo, layer["digest"])
sys.stdout.write(json.dumps(m) + "\n")
sys.stdout.flush()
sys.stdout.buffer.write(blob.content)
"#;
    let out = Command::new(tools::venv_python())
        .args(["-c", script, &format!("{}/{target}", registry.host())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras fetch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let newline = out.stdout.iter().position(|b| *b == b'\n').unwrap();
    (
        serde_json::from_slice(&out.stdout[..newline]).unwrap(),
        out.stdout[newline + 1..].to_vec(),
    )
}

#[test]
fn oras_pushed_charts_reconcile_and_sourcectl_charts_read_back_with_oras() {
    let registry = RegistryBuilder::new().start();
    let (dir, _chart) = chart_version("7.0.0", None);
    let tar = Command::new("tar")
        .args(["-czf", "podinfo-7.0.0.tgz", "podinfo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(tar.status.success());
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"name":"podinfo","version":"7.0.0","apiVersion":"v1"}"#,
    )
    .unwrap();
    oras_push(
        &registry,
        "charts/podinfo:7.0.0",
        dir.path(),
        "config.json:application/vnd.cncf.helm.config.v1+json",
        &["podinfo-7.0.0.tgz:application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
    );
    let pushed = push_chart(&registry, "6.5.0", None, None);
    let (manifest, blob) = oras_fetch(&registry, "charts/podinfo:6.5.0");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "podinfo"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "6.5.0"
    );
    assert_eq!(
        sha256(&blob),
        manifest["layers"][0]["digest"].as_str().unwrap()
    );
    assert!(pushed.contains("charts/podinfo:6.5.0@sha256:"), "{pushed}");

    let server = server(&[], None);
    let k = Kubectl::for_server(&server);
    helm_repository(&k, &registry, "");
    helm_chart(&k, "v1", "from-oras", "  version: '7.x'\n");
    wait_condition(&k, "from-oras", "Ready", "True", "ChartPullSucceeded");
    let downloaded = download(&k, "v1", "from-oras");
    assert_eq!(
        downloaded,
        std::fs::read(dir.path().join("podinfo-7.0.0.tgz")).unwrap(),
        "stored as pulled"
    );

    // HelmRelease chartRef path: an OCIRepository copying the Helm chart layer.
    let url = registry.oci_url("charts/podinfo");
    apply(
        &k,
        &format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: chartref\n  namespace: default\nspec:\n  interval: 2s\n  url: {url}\n  insecure: true\n  ref:\n    semver: '>=6.0.0 <7.0.0'\n  layerSelector:\n    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n    operation: copy\n"
        ),
    );
    let revision = eventually(
        "the chartRef OCIRepository is ready",
        || {
            Some(get(
                &k,
                "ocirepository",
                "chartref",
                "{.status.artifact.revision}",
            ))
            .filter(|r| !r.is_empty())
        },
        || describe(&k, "ocirepository", "chartref"),
    );
    assert!(revision.starts_with("6.5.0@sha256:"), "{revision}");
    let out = k
        .command(&["get", "--raw", "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/chartref/artifact"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, blob, "the chart archive is stored unchanged");
}

#[test]
fn charts_over_the_size_limits_are_refused_and_nothing_is_stored() {
    let registry = RegistryBuilder::new().start();
    push_chart(&registry, "6.5.0", None, None);
    let k_for = |server: &ApiServer| Kubectl::for_server(server);

    let small = server(&["--helm-chart-max-size", "1000"], None);
    let k = k_for(&small);
    helm_repository(&k, &registry, "");
    helm_chart(&k, "v1", "big", "  version: 6.5.0\n");
    let m = wait_condition(&k, "big", "FetchFailed", "True", "ChartPullError");
    assert!(
        m.contains("over the limit of 1000 bytes (--helm-chart-max-size)"),
        "{m}"
    );
    assert_eq!(get(&k, "helmchart", "big", "{.status.artifact}"), "");

    let small_files = server(&["--helm-chart-file-max-size", "10000"], None);
    let k = k_for(&small_files);
    helm_repository(&k, &registry, "");
    helm_chart(&k, "v1", "big-file", "  version: 6.5.0\n");
    let m = wait_condition(&k, "big-file", "BuildFailed", "True", "ChartPackageError");
    assert!(m.contains("(--helm-chart-file-max-size)"), "{m}");
    assert_eq!(get(&k, "helmchart", "big-file", "{.status.artifact}"), "");
}

#[test]
fn a_helm_repository_change_requeues_the_charts_naming_it() {
    // The same chart version with different content in two registries.
    let first = RegistryBuilder::new().start();
    let second = RegistryBuilder::new().start();
    push_chart(&first, "6.5.0", None, None);
    push_chart(&second, "6.5.0", Some("kind: ConfigMap\n"), None);
    let server = server(&[], None);
    let k = Kubectl::for_server(&server);
    helm_repository(&k, &first, "");
    // An hour's interval: only the repository change can make it reconcile again in time.
    apply(
        &k,
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmChart\nmetadata:\n  name: slow\n  namespace: default\nspec:\n  chart: podinfo\n  version: 6.5.0\n  interval: 1h\n  sourceRef:\n    kind: HelmRepository\n    name: charts\n",
    );
    wait_condition(&k, "slow", "Ready", "True", "ChartPullSucceeded");
    let before = get(&k, "helmchart", "slow", "{.status.artifact.digest}");

    helm_repository(&k, &second, "");
    let after = eventually(
        "the chart from the repository's new URL",
        || {
            Some(get(&k, "helmchart", "slow", "{.status.artifact.digest}"))
                .filter(|d| !d.is_empty() && *d != before)
        },
        || describe(&k, "helmchart", "slow"),
    );
    assert_eq!(sha256(&download(&k, "v1", "slow")), after);
}

/// GET `url` over plain HTTP with curl: the body, or `None` unless 200.
fn http_body(url: &str) -> Option<Vec<u8>> {
    let out = Command::new(tools::require("curl"))
        .args(["-sf", url])
        .output()
        .expect("running curl");
    out.status.success().then_some(out.stdout)
}

#[test]
fn status_url_is_the_latest_link_and_follows_a_new_version() {
    let registry = RegistryBuilder::new().start();
    push_chart(&registry, "6.5.0", None, None);
    let addr = format!("127.0.0.1:{}", tools::free_port());
    let server = server(
        &[
            "--artifact-listen",
            &addr,
            "--artifact-advertise-address",
            &addr,
        ],
        None,
    );
    let k = Kubectl::for_server(&server);
    helm_repository(&k, &registry, "");
    helm_chart(&k, "v1", "latest", "  version: '>=6.0.0'\n");
    wait_condition(&k, "latest", "Ready", "True", "ChartPullSucceeded");
    let latest = get(&k, "helmchart", "latest", "{.status.url}");
    assert_eq!(
        latest,
        format!("http://{addr}/helmchart/default/latest/latest.tar.gz"),
        "status.url is Flux's latest.tar.gz link"
    );
    let first = get(&k, "helmchart", "latest", "{.status.artifact.digest}");
    let artifact_url = get(&k, "helmchart", "latest", "{.status.artifact.url}");
    let file = http_body(&artifact_url).expect("status.artifact.url");
    assert_eq!(sha256(&file), first);
    assert_eq!(
        http_body(&latest).expect("status.url"),
        file,
        "the latest link serves the artifact's bytes"
    );

    // A new version in range: the link follows it, the older file stays at its own URL.
    push_chart(&registry, "6.6.0", None, None);
    let second = eventually(
        "the chart's new version",
        || {
            Some(get(&k, "helmchart", "latest", "{.status.artifact.digest}"))
                .filter(|d| !d.is_empty() && *d != first)
        },
        || describe(&k, "helmchart", "latest"),
    );
    assert_eq!(get(&k, "helmchart", "latest", "{.status.url}"), latest);
    let (chart, _) = chart_files(&http_body(&latest).expect("status.url after 6.6.0"));
    assert!(chart.contains("version: 6.6.0"), "{chart}");
    assert_eq!(sha256(&http_body(&latest).unwrap()), second);
}
