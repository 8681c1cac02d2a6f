//! End to end, through kubectl against the real server and the real registry: where our
//! OCIRepository behaves as Flux's source-controller does (issue 15, `docs/reconcile.md`,
//! "Flux and us").

use std::path::Path;

use test_support::e2e::{
    apply, download, files, jsonpath, oci_repository, push, push_podinfo, testdata, untar,
    wait_ready,
};
use test_support::kubectl::Kubectl;
use test_support::pki::TestCa;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

fn server(args: &[&str]) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        },
    )
}

/// Writes a `kubernetes.io/dockercfg` Secret (the legacy `.dockercfg` format: the `auths` map
/// itself) for `host` into `dir/<name>.yaml`.
fn write_dockercfg_secret(dir: &Path, name: &str, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = format!(
        r#"{{"https://{host}":{{"auth":"{}","email":"ci@example.com"}}}}"#,
        b64(&format!("{user}:{password}"))
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: kubernetes.io/dockercfg\ndata:\n  .dockercfg: {}\n",
        b64(&config)
    );
    std::fs::write(dir.join(format!("{name}.yaml")), manifest).unwrap();
}

#[test]
fn insecure_skips_certificate_verification_and_dockercfg_secrets_authenticate() {
    // A registry with a certificate from a CA the server does not know, behind htpasswd.
    let ca = TestCa::new();
    let registry = RegistryBuilder::new()
        .tls(&ca)
        .htpasswd("alice", "s3cret")
        .start();
    let url = registry.oci_url("internal/app");
    let ca_file = ca.cert_path().to_str().unwrap().to_owned();
    push(
        &format!("{url}:v1"),
        &testdata("podinfo-kustomize"),
        &["--ca-file", &ca_file, "--creds", "alice:s3cret"],
    );
    let secrets = tempfile::tempdir().unwrap();
    write_dockercfg_secret(secrets.path(), "legacy", registry.host(), "alice", "s3cret");
    let server = server(&["--secrets-dir", secrets.path().to_str().unwrap()]);
    let k = Kubectl::for_server(&server);
    let object = |name: &str, insecure: bool| {
        oci_repository(
            "v1",
            name,
            &format!(
                "  interval: 1h\n  url: {url}\n  insecure: {insecure}\n  ref:\n    tag: v1\n  secretRef:\n    name: legacy\n"
            ),
        )
    };
    apply(&k, &object("skip-verify", true));
    apply(&k, &object("verified", false));

    // insecure: HTTPS without verification (not plain HTTP), authenticated by the .dockercfg.
    wait_ready(&k, "skip-verify", "True", Some("Succeeded"));
    let bytes = download(&k, "v1", "skip-verify");
    assert_eq!(
        files(untar(&bytes).path()),
        files(&testdata("podinfo-kustomize"))
    );
    // Without insecure the unknown CA is refused, as before.
    let message = wait_ready(&k, "verified", "False", Some("AuthenticationFailed"));
    assert!(message.contains("certificate verify failed"), "{message}");
    assert_eq!(
        jsonpath(&k, "skip-verify", "{.status.artifact.revision}")
            .split('@')
            .next(),
        Some("v1")
    );
}

#[test]
fn insecure_still_reaches_a_plain_http_registry() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("plain/app");
    push_podinfo(&format!("{url}:v1"));
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "plain",
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    wait_ready(&k, "plain", "True", Some("Succeeded"));
}

/// How many times the server logged a Warning event with `reason` for `object`
/// (`OCIRepository/<ns>/<name>`): one per failed reconcile.
fn warnings(server: &ApiServer, object: &str, reason: &str) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(object) && l.contains(reason))
        .count()
}

#[test]
fn a_failing_object_stays_ready_false_across_retries() {
    // Nothing listens there: every reconcile fails to connect, and is retried with backoff.
    let port = test_support::tools::free_port();
    let host = format!("127.0.0.1:{port}");
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "down",
            &format!(
                "  interval: 1h\n  url: oci://{host}/app\n  insecure: true\n  ref:\n    tag: v1\n"
            ),
        ),
    );
    let message = wait_ready(&k, "down", "False", Some("OCIArtifactPullFailed"));
    assert_eq!(
        message.matches(&host).count(),
        1,
        "the URL is named once: {message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert_eq!(
        jsonpath(
            &k,
            "down",
            "{.status.conditions[?(@.type==\"Reconciling\")].reason}"
        ),
        "ProgressingWithRetry"
    );

    // Every status change from here on is a watch event: Ready's status and transition time.
    let watch = k.background(&[
        "get",
        "ocirepository",
        "down",
        "--watch",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}{\"\\n\"}",
    ]);
    watch.wait_for_watch(test_support::e2e::patience());
    let first = watch
        .next_line(test_support::e2e::patience())
        .expect("the watch lists the object first");
    assert!(first.starts_with("False "), "{first}");
    let object = "OCIRepository/default/down";
    let seen = warnings(&server, object, "OCIArtifactPullFailed");
    test_support::e2e::eventually(
        "three more failed retries",
        || (warnings(&server, object, "OCIArtifactPullFailed") >= seen + 3).then_some(()),
        || server.log(),
    );
    let (_, lines) = watch.finish(std::time::Duration::from_millis(200));
    for line in lines.iter().filter(|l| !l.is_empty()) {
        assert_eq!(
            line, &first,
            "no Ready transition on a retry (Unknown, or a new lastTransitionTime)"
        );
    }
}

/// Pushes `files` (in `workdir`, default oras media type) to `<host>/<target>` with the oras
/// Python client over plain HTTP.
fn oras_push(host: &str, target: &str, workdir: &Path, files: &[&str]) {
    let script = r#"
import os, sys, json, oras.client
os.chdir(sys.argv[2])
c = oras.client.OrasClient(insecure=True)
c.push(target=sys.argv[1], files=json.loads(sys.argv[3]), disable_path_validation=True)
"#;
    let out = std::process::Command::new(test_support::tools::venv_python())
        .arg("-c")
        .arg(script)
        .arg(format!("{host}/{target}"))
        .arg(workdir)
        .arg(serde_json::to_string(files).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras push (python venv from scripts/setup.sh) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn condition(k: &Kubectl, name: &str, type_: &str, field: &str) -> String {
    jsonpath(
        k,
        name,
        &format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}"),
    )
}

#[test]
fn status_details_as_flux_writes_them() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("details/app");
    push_podinfo(&format!("{url}:moving"));
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    // Every Reconciling message the object goes through.
    let watch = k.background(&[
        "get",
        "ocirepositories",
        "--watch",
        "-o",
        "jsonpath={.metadata.name} {.status.conditions[?(@.type==\"Reconciling\")].message}{\"\\n\"}",
    ]);
    watch.wait_for_watch(test_support::e2e::patience());
    let selector =
        "  layerSelector:\n    mediaType: application/vnd.cncf.flux.content.v1.tar+gzip\n";
    apply(
        &k,
        &oci_repository(
            "v1",
            "details",
            &format!(
                "  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: moving\n{selector}"
            ),
        ),
    );
    wait_ready(&k, "details", "True", Some("Succeeded"));
    let first = jsonpath(&k, "details", "{.status.artifact.revision}");
    let reference = format!("{}/details/app:moving", registry.host());
    // The progress update before the pull names the resolved reference, not spec.url.
    let building = format!("building artifact: new revision '{first}' for '{reference}'");
    assert!(
        watch
            .wait_for_line(test_support::e2e::patience(), |l| l
                == format!("details {building}"))
            .is_some(),
        "a progress update before the pull: {building}\n{}",
        watch.stderr()
    );
    assert_eq!(condition(&k, "details", "ArtifactOutdated", "status"), "");

    // The tag moves to an artifact without the selected layer: the new revision is outdated.
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "no flux layer here\n").unwrap();
    oras_push(
        registry.host(),
        "details/app:moving",
        work.path(),
        &["notes.txt"],
    );
    k.run(&[
        "annotate",
        "--overwrite",
        "ocirepository/details",
        "reconcile.fluxcd.io/requestedAt=moved",
    ])
    .ok();
    let message = wait_ready(
        &k,
        "details",
        "False",
        Some("OCIArtifactLayerOperationFailed"),
    );
    assert!(
        message.contains("failed to find layer with media type"),
        "{message}"
    );
    let outdated = condition(&k, "details", "ArtifactOutdated", "message");
    assert!(
        outdated.starts_with("new revision 'moving@sha256:")
            && outdated.ends_with(&format!("' for '{reference}'")),
        "{outdated}"
    );
    assert_ne!(
        outdated,
        format!("new revision '{first}' for '{reference}'")
    );
    assert_eq!(
        jsonpath(&k, "details", "{.status.lastHandledReconcileAt}"),
        "moved"
    );
    assert_eq!(
        jsonpath(&k, "details", "{.status.artifact.revision}"),
        first
    );

    // A stalled object keeps FetchFailed.
    apply(
        &k,
        &oci_repository(
            "v1",
            "stalled",
            &format!("  interval: 1h\n  url: {url}\n  provider: aws\n"),
        ),
    );
    test_support::e2e::eventually(
        "Stalled=True",
        || (condition(&k, "stalled", "Stalled", "status") == "True").then_some(()),
        || test_support::e2e::describe(&k, "stalled"),
    );
    assert_eq!(condition(&k, "stalled", "FetchFailed", "status"), "True");
    assert_eq!(
        condition(&k, "stalled", "FetchFailed", "reason"),
        condition(&k, "stalled", "Stalled", "reason")
    );

    // A suspended object gets its finalizer, observedGeneration and lastHandledReconcileAt.
    apply(
        &k,
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: paused\n  namespace: default\n  annotations:\n    reconcile.fluxcd.io/requestedAt: now\nspec:\n  interval: 1h\n  suspend: true\n  url: oci://127.0.0.1:1/none\n",
    );
    test_support::e2e::eventually(
        "the suspended object's status",
        || (jsonpath(&k, "paused", "{.status.observedGeneration}") == "1").then_some(()),
        || test_support::e2e::describe(&k, "paused"),
    );
    assert_eq!(
        jsonpath(&k, "paused", "{.status.lastHandledReconcileAt}"),
        "now"
    );
    assert_eq!(
        jsonpath(&k, "paused", "{.metadata.finalizers[0]}"),
        "finalizers.fluxcd.io"
    );
    assert_eq!(jsonpath(&k, "paused", "{.status.conditions}"), "");
}

/// `kubectl get --raw` of a server URL's path and query: the bytes, or kubectl's stderr.
fn get_raw(k: &Kubectl, server: &ApiServer, url: &str) -> Result<Vec<u8>, String> {
    let path = url
        .strip_prefix(&server.url())
        .unwrap_or_else(|| panic!("{url} is not on {}", server.url()));
    let out = k.command(&["get", "--raw", path]).output().unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn artifact_urls_name_their_revision() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("urls/app");
    push_podinfo(&format!("{url}:moving"));
    let server = server(&[]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "urls",
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: moving\n"),
        ),
    );
    wait_ready(&k, "urls", "True", Some("Succeeded"));
    let first_url = jsonpath(&k, "urls", "{.status.artifact.url}");
    let first_digest = jsonpath(&k, "urls", "{.status.artifact.digest}");
    let latest = jsonpath(&k, "urls", "{.status.url}");
    assert!(
        first_url.contains("/artifact?revision=moving%40sha256%3A"),
        "{first_url}"
    );
    assert!(
        latest.ends_with("/ocirepositories/urls/artifact"),
        "{latest}"
    );
    let bytes = get_raw(&k, &server, &first_url).unwrap();
    assert_eq!(test_support::e2e::sha256(&bytes), first_digest);

    // A new revision: the old URL is gone (404), the new one and status.url serve it.
    let tree = tempfile::tempdir().unwrap();
    test_support::e2e::copy_tree(&testdata("podinfo-kustomize"), tree.path());
    std::fs::write(tree.path().join("extra.yaml"), "kind: ConfigMap\n").unwrap();
    push(
        &format!("{url}:moving"),
        tree.path(),
        &["--insecure-registry"],
    );
    k.run(&[
        "annotate",
        "--overwrite",
        "ocirepository/urls",
        "reconcile.fluxcd.io/requestedAt=moved",
    ])
    .ok();
    let second_url = test_support::e2e::eventually(
        "the new revision's URL",
        || {
            let u = jsonpath(&k, "urls", "{.status.artifact.url}");
            (u != first_url).then_some(u)
        },
        || test_support::e2e::describe(&k, "urls"),
    );
    let second_digest = jsonpath(&k, "urls", "{.status.artifact.digest}");
    assert_ne!(second_digest, first_digest);
    // The old revision's file is kept by retention (2 records): its URL still serves it, with
    // its own digest, as Flux's file server does while the file exists.
    let bytes = get_raw(&k, &server, &first_url).expect("the old revision, kept by retention");
    assert_eq!(test_support::e2e::sha256(&bytes), first_digest);
    // A revision never stored (or collected) is gone.
    let never = format!("{latest}?revision=moving%40sha256%3A{}", "0".repeat(64));
    let gone = get_raw(&k, &server, &never).expect_err("a revision without a file");
    assert!(
        gone.contains("NotFound") && gone.contains("has no artifact of revision 'moving@sha256:"),
        "{gone}"
    );
    let bytes = get_raw(&k, &server, &second_url).unwrap();
    assert_eq!(test_support::e2e::sha256(&bytes), second_digest);
    let bytes = get_raw(&k, &server, &latest).unwrap();
    assert_eq!(test_support::e2e::sha256(&bytes), second_digest);
}

#[test]
fn events_are_posted_to_notification_controller_as_flux_does() {
    // The receiver fails the first two posts: the event still arrives, retried.
    let receiver = test_support::notification::NotificationReceiver::start(2);
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("events/app");
    let digest = push_podinfo(&format!("{url}:v1"));
    let server = server(&["--events-addr", &receiver.url()]);
    let k = Kubectl::for_server(&server);
    apply(
        &k,
        &oci_repository(
            "v1",
            "events",
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    let port = test_support::tools::free_port();
    apply(
        &k,
        &oci_repository(
            "v1",
            "broken",
            &format!("  interval: 1h\n  url: oci://127.0.0.1:{port}/app\n  insecure: true\n"),
        ),
    );
    wait_ready(&k, "events", "True", Some("Succeeded"));
    let by_reason = |name: &str, reason: &str| {
        receiver
            .events()
            .into_iter()
            .find(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
    };
    let new_artifact = test_support::e2e::eventually(
        "the NewArtifact event at the receiver",
        || by_reason("events", "NewArtifact"),
        || format!("{:?}\n{}", receiver.rejected(), server.log()),
    );
    assert_eq!(new_artifact["severity"], "info");
    assert_eq!(new_artifact["involvedObject"]["kind"], "OCIRepository");
    assert_eq!(new_artifact["involvedObject"]["namespace"], "default");
    assert_eq!(new_artifact["reportingController"], "source-controller");
    assert_eq!(
        new_artifact["metadata"]["source.toolkit.fluxcd.io/revision"],
        format!("v1@{digest}")
    );
    assert_eq!(
        new_artifact["metadata"]["source.toolkit.fluxcd.io/digest"],
        jsonpath(&k, "events", "{.status.artifact.digest}")
    );
    assert_eq!(
        new_artifact["message"],
        format!(
            "stored artifact with revision 'v1@{digest}' from '{url}', origin source 'https://github.com/stefanprodan/podinfo', origin revision '6.5.0@sha1:0123456789abcdef0123456789abcdef01234567'"
        )
    );
    let failure = test_support::e2e::eventually(
        "the failure event at the receiver",
        || by_reason("broken", "OCIArtifactPullFailed"),
        || format!("{:?}\n{}", receiver.rejected(), server.log()),
    );
    assert_eq!(failure["severity"], "error");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    assert!(
        receiver.requests() >= receiver.events().len() + 2,
        "the two failed posts were retried"
    );
    // Trace events stay out of notification-controller; the log keeps every event.
    assert!(
        receiver
            .events()
            .iter()
            .all(|e| e["reason"] != "ArtifactUpToDate"
                && e["reason"] != "GarbageCollectionSucceeded")
    );
    assert!(
        server.log().contains("NewArtifact"),
        "standalone logging goes on"
    );
}
