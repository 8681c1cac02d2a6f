//! The real `kubectl` (the machine's default, `kubectl.1.27` and `kubectl.1.33`) against the
//! real `source-apiserver` binary, checking output, not only exit codes.
//!
//! Objects here set `spec.suspend: true`: these tests drive `status` themselves through the
//! `status` subresource, and a suspended object is never reconciled.

use std::path::Path;
use std::time::Duration;

use test_support::kubectl::Kubectl;
use test_support::server::{ApiServer, ServerOptions};

fn server() -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    )
}

fn manifest(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn oci_repository(version: &str, name: &str, interval: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/{version}\nkind: OCIRepository\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  interval: {interval}\n  url: oci://ghcr.io/stefanprodan/manifests/podinfo\n  ref:\n    tag: latest\n  suspend: true\n"
    )
}

fn jsonpath(k: &Kubectl, name: &str, path: &str) -> String {
    k.run(&[
        "get",
        "ocirepository",
        name,
        "-o",
        &format!("jsonpath={path}"),
    ])
    .ok()
    .to_string()
}

/// The whole kubectl workflow against one server.
fn exercise(version: Option<&str>) {
    let server = server();
    let k = Kubectl::new(version, &server.kubeconfig());
    let dir = server.scratch();

    // api-resources from discovery.
    let resources = k.run(&["api-resources", "--api-group=source.toolkit.fluxcd.io"]);
    let out = resources.ok();
    for (plural, short, kind) in [
        ("ocirepositories", "ocirepo", "OCIRepository"),
        ("helmrepositories", "helmrepo", "HelmRepository"),
        ("helmcharts", "hc", "HelmChart"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(plural))
            .unwrap_or_else(|| panic!("{plural} missing from api-resources:\n{out}"));
        assert!(
            line.contains(short)
                && line.contains(kind)
                && line.contains("source.toolkit.fluxcd.io/v1")
                && line.contains("true"),
            "{line}"
        );
    }

    // Client-side apply: create, then a second apply that changes one field.
    let path = manifest(dir, "podinfo.yaml", &oci_repository("v1", "podinfo", "5m"));
    assert!(
        k.run(&["apply", "-f", &path])
            .ok()
            .contains("ocirepository.source.toolkit.fluxcd.io/podinfo created")
    );
    assert_eq!(jsonpath(&k, "podinfo", "{.metadata.generation}"), "1");
    manifest(dir, "podinfo.yaml", &oci_repository("v1", "podinfo", "6m"));
    assert!(
        k.run(&["apply", "-f", &path])
            .ok()
            .contains("podinfo configured")
    );
    assert_eq!(jsonpath(&k, "podinfo", "{.spec.interval}"), "6m");
    assert_eq!(jsonpath(&k, "podinfo", "{.metadata.generation}"), "2");
    // Defaults are applied and visible.
    assert_eq!(jsonpath(&k, "podinfo", "{.spec.timeout}"), "60s");
    // A suspended object still records the generation it saw, as Flux's (from the default -1).
    test_support::e2e::eventually(
        "observedGeneration 2 on the suspended object",
        || (jsonpath(&k, "podinfo", "{.status.observedGeneration}") == "2").then_some(()),
        || jsonpath(&k, "podinfo", "{.status}"),
    );

    // Server-side apply (v1beta2 manifest), then a second apply changing one field.
    let ssa = manifest(dir, "ssa.yaml", &oci_repository("v1beta2", "ssa", "5m"));
    let applied = k.run(&["apply", "--server-side", "-f", &ssa]);
    assert!(
        applied
            .ok()
            .contains("ocirepository.source.toolkit.fluxcd.io/ssa serverside-applied"),
        "{applied:?}"
    );
    manifest(dir, "ssa.yaml", &oci_repository("v1beta2", "ssa", "9m"));
    assert!(
        k.run(&["apply", "--server-side", "-f", &ssa])
            .ok()
            .contains("serverside-applied")
    );
    assert_eq!(jsonpath(&k, "ssa", "{.spec.interval}"), "9m");
    let managers = k.run(&[
        "get",
        "ocirepository",
        "ssa",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.ok().contains("kubectl"), "{managers:?}");
    // Another manager changing an applied field conflicts; --force-conflicts takes it over.
    assert!(
        k.run(&[
            "patch",
            "ocirepository",
            "ssa",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"interval":"1m"}}"#
        ])
        .success
    );
    let conflict = k.run(&["apply", "--server-side", "-f", &ssa]);
    assert!(
        conflict.failed().contains("conflict") && conflict.stderr.contains(".spec.interval"),
        "{conflict:?}"
    );
    assert!(
        k.run(&["apply", "--server-side", "--force-conflicts", "-f", &ssa])
            .success
    );
    assert_eq!(jsonpath(&k, "ssa", "{.spec.interval}"), "9m");

    // get: Flux's printer columns.
    let table = k.run(&["get", "ocirepositories"]);
    let header = table.ok().lines().next().unwrap_or_default().to_string();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        ["NAME", "URL", "READY", "STATUS", "AGE"],
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("oci://ghcr.io/stefanprodan/manifests/podinfo")
    );

    // get -o yaml in both versions; v1beta2 carries the deprecation warning.
    let v1 = k.run(&[
        "get",
        "ocirepositories.v1.source.toolkit.fluxcd.io",
        "podinfo",
        "-o",
        "yaml",
    ]);
    assert!(
        v1.ok()
            .contains("apiVersion: source.toolkit.fluxcd.io/v1\n"),
        "{}",
        v1.stdout
    );
    let beta = k.run(&[
        "get",
        "ocirepositories.v1beta2.source.toolkit.fluxcd.io",
        "podinfo",
        "-o",
        "yaml",
    ]);
    assert!(
        beta.ok()
            .contains("apiVersion: source.toolkit.fluxcd.io/v1beta2\n"),
        "{}",
        beta.stdout
    );
    assert!(
        beta.stderr.contains(
            "source.toolkit.fluxcd.io/v1beta2 OCIRepository is deprecated, upgrade to v1"
        ),
        "{}",
        beta.stderr
    );

    // get -w sees a later change: the change is made only once kubectl printed the object's
    // current state (its GET is done) and its watch request was answered, so only an event on
    // the watch can carry it.
    let watch = k.background(&[
        "get",
        "ocirepository",
        "podinfo",
        "-w",
        "-o",
        "jsonpath={.metadata.labels.stage}{\"\\n\"}",
    ]);
    assert_eq!(
        watch.next_line(Duration::from_secs(20)).as_deref(),
        Some(""),
        "get -w printed no initial state: {}",
        watch.stderr()
    );
    watch.wait_for_watch(Duration::from_secs(20));
    assert!(
        k.run(&["label", "ocirepository", "podinfo", "stage=watched"])
            .ok()
            .contains("labeled")
    );
    assert_eq!(
        watch
            .wait_for_line(Duration::from_secs(20), |l| l == "watched")
            .as_deref(),
        Some("watched"),
        "get -w did not show the change: {}",
        watch.stderr()
    );
    drop(watch);

    // describe.
    let described = k.run(&["describe", "ocirepository", "podinfo"]);
    let text = described.ok();
    assert!(
        text.contains("podinfo")
            && text.contains("OCIRepository")
            && text.contains("6m")
            && text.contains("oci://ghcr.io/stefanprodan/manifests/podinfo"),
        "{text}"
    );

    // patch: merge and JSON; strategic merge is refused.
    assert!(
        k.run(&[
            "patch",
            "ocirepository",
            "podinfo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"interval":"10m"}}"#
        ])
        .ok()
        .contains("patched")
    );
    assert_eq!(jsonpath(&k, "podinfo", "{.spec.interval}"), "10m");
    assert!(
        k.run(&[
            "patch",
            "ocirepository",
            "podinfo",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/ref/tag","value":"6.5.0"}]"#
        ])
        .ok()
        .contains("patched")
    );
    assert_eq!(jsonpath(&k, "podinfo", "{.spec.ref.tag}"), "6.5.0");
    let smp = k.run(&[
        "patch",
        "ocirepository",
        "podinfo",
        "-p",
        r#"{"spec":{"interval":"11m"}}"#,
    ]);
    assert!(
        smp.failed()
            .contains("application/strategic-merge-patch+json is not supported")
            && smp
                .stderr
                .contains("the body of the request was in an unknown format"),
        "strategic merge patch must be refused as an unsupported media type: {smp:?}"
    );

    // annotate and label.
    // kubectl 1.27 prints "annotate", later versions "annotated"; the value is checked below.
    assert!(
        k.run(&[
            "annotate",
            "ocirepository",
            "podinfo",
            "reconcile.fluxcd.io/requestedAt=now"
        ])
        .ok()
        .contains("podinfo annotate")
    );
    assert_eq!(
        jsonpath(
            &k,
            "podinfo",
            "{.metadata.annotations.reconcile\\.fluxcd\\.io/requestedAt}"
        ),
        "now"
    );
    assert!(
        k.run(&["label", "ocirepository", "podinfo", "team=platform"])
            .ok()
            .contains("labeled")
    );
    let selected = k.run(&[
        "get",
        "ocirepositories",
        "-l",
        "team=platform",
        "-o",
        "name",
    ]);
    assert_eq!(
        selected.ok().trim(),
        "ocirepository.source.toolkit.fluxcd.io/podinfo"
    );
    assert_eq!(
        k.run(&["get", "ocirepositories", "-l", "team=other", "-o", "name"])
            .ok()
            .trim(),
        ""
    );

    // edit through KUBE_EDITOR.
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/interval: 10m/interval: 7m/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edited = k.run_with(
        &["edit", "ocirepository", "podinfo"],
        None,
        &[("KUBE_EDITOR", editor.to_str().unwrap())],
    );
    assert!(edited.ok().contains("edited"), "{edited:?}");
    assert_eq!(jsonpath(&k, "podinfo", "{.spec.interval}"), "7m");

    // explain reads our OpenAPI.
    let explained = k.run(&["explain", "ocirepository.spec.ref"]);
    let text = explained.ok();
    for field in ["semver", "digest", "tag"] {
        assert!(text.contains(field), "explain lacks {field}:\n{text}");
    }

    // wait --for=condition=Ready, released by a status update made while it waits.
    let generation = jsonpath(&k, "podinfo", "{.metadata.generation}");
    // The status is patched only once the waiter's watch request was answered: a waiter that
    // started late would otherwise see Ready in its first GET and pass with watches broken.
    let waiter = k.background(&[
        "wait",
        "--for=condition=Ready",
        "ocirepository/podinfo",
        "--timeout=30s",
    ]);
    waiter.wait_for_watch(Duration::from_secs(20));
    let status = format!(
        r#"{{"status":{{"observedGeneration":{generation},"conditions":[{{"type":"Ready","status":"True","reason":"Succeeded","message":"stored artifact for digest 'latest@sha256:abc'","lastTransitionTime":"2024-01-01T00:00:00Z","observedGeneration":{generation}}}]}}}}"#
    );
    assert!(
        k.run(&[
            "patch",
            "ocirepository",
            "podinfo",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            &status
        ])
        .ok()
        .contains("patched")
    );
    let stderr_before = waiter.stderr();
    let (status, out) = waiter.finish(Duration::from_secs(40));
    assert!(
        status.is_some_and(|s| s.success()) && out.iter().any(|l| l.contains("condition met")),
        "{status:?} {out:?} {stderr_before}"
    );
    // A status update did not bump the generation; the table shows the condition.
    assert_eq!(
        jsonpath(&k, "podinfo", "{.metadata.generation}"),
        generation
    );
    let row = k.run(&["get", "ocirepository", "podinfo", "--no-headers"]);
    assert!(
        row.ok().contains("True") && row.stdout.contains("stored artifact for digest"),
        "{}",
        row.stdout
    );

    // get --raw.
    let raw = k.run(&[
        "get",
        "--raw",
        "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/podinfo",
    ]);
    let object: serde_json::Value = serde_json::from_str(raw.ok()).unwrap();
    assert_eq!(object["kind"], "OCIRepository");
    assert_eq!(object["spec"]["interval"], "7m");

    // delete without a finalizer.
    assert!(
        k.run(&["delete", "ocirepository", "ssa"])
            .ok()
            .contains("deleted")
    );
    assert!(k.run(&["get", "ocirepository", "ssa"]).failed().contains(
        "Error from server (NotFound): ocirepositories.source.toolkit.fluxcd.io \"ssa\" not found"
    ));

    // delete with a finalizer: marked, then gone once the finalizer is removed.
    let held = oci_repository("v1", "held", "5m").replace(
        "  namespace: default\n",
        "  namespace: default\n  finalizers:\n  - example.com/hold\n",
    );
    let held_path = manifest(dir, "held.yaml", &held);
    k.run(&["apply", "-f", &held_path]).ok();
    assert!(
        k.run(&["delete", "ocirepository", "held", "--wait=false"])
            .ok()
            .contains("deleted")
    );
    assert!(!jsonpath(&k, "held", "{.metadata.deletionTimestamp}").is_empty());
    k.run(&[
        "patch",
        "ocirepository",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .ok();
    assert!(k.run(&["get", "ocirepository", "held"]).failed().contains(
        "Error from server (NotFound): ocirepositories.source.toolkit.fluxcd.io \"held\" not found"
    ));

    // --cascade=foreground and =orphan: kept with the garbage collector's finalizer, as
    // kube-apiserver keeps them for kube-controller-manager's garbage collector (which does
    // not run here: whoever removes the finalizer lets the object go).
    for (cascade, finalizer) in [("foreground", "foregroundDeletion"), ("orphan", "orphan")] {
        let name = format!("cascade-{cascade}");
        let path = manifest(
            dir,
            &format!("{name}.yaml"),
            &oci_repository("v1", &name, "5m"),
        );
        k.run(&["apply", "-f", &path]).ok();
        let flag = format!("--cascade={cascade}");
        k.run(&["delete", "ocirepository", &name, &flag, "--wait=false"])
            .ok();
        let finalizers = jsonpath(&k, &name, "{.metadata.finalizers[*]}");
        assert!(
            finalizers.split(' ').any(|f| f == finalizer),
            "{cascade}: finalizers {finalizers:?}"
        );
        assert!(!jsonpath(&k, &name, "{.metadata.deletionTimestamp}").is_empty());
        k.run(&[
            "patch",
            "ocirepository",
            &name,
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .ok();
        assert!(
            k.run(&["get", "ocirepository", &name])
                .failed()
                .contains("NotFound")
        );
    }
}

#[test]
fn kubectl_default_drives_the_server() {
    exercise(None);
}

#[test]
fn kubectl_1_27_drives_the_server() {
    exercise(Some("1.27"));
}

#[test]
fn kubectl_1_33_drives_the_server() {
    exercise(Some("1.33"));
}

#[test]
fn an_invalid_object_is_refused_naming_every_bad_field() {
    let server = server();
    let k = Kubectl::for_server(&server);
    let bad = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: bad\n  namespace: default\nspec:\n  interval: five minutes\n  timeout: 1h\n  url: https://not-oci.example.com/x\n  ref:\n    digest: sha256:1234\n  provider: nope\n";
    let path = manifest(server.scratch(), "bad.yaml", bad);
    let refused = k.run(&["apply", "-f", &path]);
    let err = refused.failed();
    assert!(err.contains("is invalid"), "{err}");
    for field in [
        "spec.interval",
        "spec.timeout",
        "spec.url",
        "spec.ref.digest",
        "spec.provider",
    ] {
        assert!(err.contains(field), "{field} not named in:\n{err}");
    }
}

fn curl(args: &[&str]) -> (u16, serde_json::Value) {
    let curl = test_support::tools::require("curl");
    let out = std::process::Command::new(curl)
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// `curl` with a client certificate (PEM pair) written into the server's scratch directory.
fn curl_as(
    server: &ApiServer,
    user: &str,
    (cert, key): (Vec<u8>, Vec<u8>),
    url: &str,
) -> (u16, serde_json::Value) {
    let cert_path = server.scratch().join(format!("{user}.crt"));
    let key_path = server.scratch().join(format!("{user}.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let ca = server.ca_cert();
    curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--cert",
        cert_path.to_str().unwrap(),
        "--key",
        key_path.to_str().unwrap(),
        url,
    ])
}

#[test]
fn requests_without_credentials_get_401_and_others_403() {
    let server = server();
    let ca = server.ca_cert();
    let url = format!(
        "{}/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories",
        server.url()
    );
    let (code, status) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(code, 401);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    // Health needs no credentials.
    let health = std::process::Command::new("curl")
        .args([
            "-s",
            "--cacert",
            ca.to_str().unwrap(),
            &format!("{}/readyz", server.url()),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok");

    // A user outside system:masters: 403 naming the verb and resource.
    let bob = apiserver::pki::issue_client_pem(&server.data_dir(), "bob", &["dev"]).unwrap();
    let (code, status) = curl_as(&server, "bob", bob, &url);
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        "ocirepositories.source.toolkit.fluxcd.io is forbidden: User \"bob\" cannot list resource \"ocirepositories\" in API group \"source.toolkit.fluxcd.io\" in the namespace \"default\""
    );
    // A certificate from another CA is not trusted: 401.
    let mallory = test_support::pki::TestCa::new().issue_client("mallory", "system:masters");
    let (code, status) = curl_as(&server, "mallory", mallory, &url);
    assert_eq!(
        (code, &status["reason"]),
        (401, &serde_json::json!("Unauthorized")),
        "{status}"
    );
}

#[test]
fn sigterm_drains_and_the_data_survives_a_restart() {
    let mut first = server();
    let k = Kubectl::for_server(&first);
    let path = manifest(
        first.scratch(),
        "p.yaml",
        &oci_repository("v1", "durable", "5m"),
    );
    k.run(&["apply", "-f", &path]).ok();
    let data_dir = first.data_dir();
    let status = first
        .terminate(Duration::from_secs(20))
        .expect("exited on SIGTERM");
    assert!(status.success(), "exit status {status}: {}", first.log());
    let second = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            data_dir: Some(data_dir),
            ..Default::default()
        },
    );
    let k = Kubectl::for_server(&second);
    assert_eq!(
        k.run(&[
            "get",
            "ocirepository",
            "durable",
            "-o",
            "jsonpath={.spec.interval}"
        ])
        .ok(),
        "5m"
    );
}
