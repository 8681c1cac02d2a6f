//! End to end under failure: the registry goes away (the old artifact keeps being served) and
//! comes back; the server is SIGKILLed in the middle of reconciles and restarted on the same
//! data directory.

use std::net::SocketAddr;
use std::path::Path;

use test_support::e2e::{
    TcpProxy, apply, describe, download, eventually, jsonpath, oci_repository, push, sha256,
    testdata, wait_ready,
};
use test_support::kubectl::Kubectl;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

fn server(data_dir: Option<std::path::PathBuf>) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: vec![],
            data_dir,
        },
    )
}

#[test]
fn registry_down_keeps_serving_the_old_artifact_and_recovers() {
    let registry = RegistryBuilder::new().start();
    let target: SocketAddr = registry.host().parse().unwrap();
    let mut proxy = TcpProxy::start(target);
    let url = format!("oci://{}/app/down", proxy.host());
    push(
        &format!("{url}:v1"),
        &testdata("podinfo-kustomize"),
        &["--insecure-registry"],
    );
    let server = server(None);
    let k = Kubectl::new(None, &server.kubeconfig());
    apply(
        &k,
        &oci_repository(
            "v1",
            "down",
            &format!("  interval: 2s\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    wait_ready(&k, "down", "True", Some("Succeeded"));
    let digest = jsonpath(&k, "down", "{.status.artifact.digest}");

    proxy.stop();
    let message = wait_ready(&k, "down", "False", Some("OCIArtifactPullFailed"));
    assert!(
        message.starts_with("failed to determine artifact digest"),
        "{message}"
    );
    assert_eq!(
        jsonpath(
            &k,
            "down",
            "{.status.conditions[?(@.type==\"ArtifactInStorage\")].status}"
        ),
        "True",
        "{}",
        describe(&k, "down")
    );
    let bytes = download(&k, "v1", "down");
    assert_eq!(
        sha256(&bytes),
        digest,
        "the previous artifact is still served"
    );

    proxy.resume();
    wait_ready(&k, "down", "True", Some("Succeeded"));
    assert_eq!(jsonpath(&k, "down", "{.status.artifact.digest}"), digest);

    // Events go to the log: the new artifact, the failure, the recovery.
    let log = strip_ansi(&server.log());
    let events: Vec<&str> = log.lines().filter(|l| l.contains(" event: ")).collect();
    let has = |reason: &str, text: &str| {
        events
            .iter()
            .any(|l| l.contains(reason) && l.contains(text))
    };
    assert!(
        has("NewArtifact", "stored artifact with revision 'v1@"),
        "{events:#?}"
    );
    assert!(
        has(
            "OCIArtifactPullFailed",
            "failed to determine artifact digest"
        ),
        "{events:#?}"
    );
    assert!(
        has("Succeeded", "stored artifact with revision"),
        "{events:#?}"
    );
}

#[test]
fn kill_9_in_the_middle_of_reconciles_then_restart() {
    let registry = RegistryBuilder::new().start();
    let url = registry.oci_url("app/crash");
    let src = testdata("podinfo-kustomize");
    for tag in ["v1", "v2", "v3"] {
        push(&format!("{url}:{tag}"), &src, &["--insecure-registry"]);
    }
    let mut first = server(None);
    let data_dir = first.data_dir();
    let k = Kubectl::new(None, &first.kubeconfig());
    let names: Vec<String> = (0..30).map(|i| format!("crash-{i}")).collect();
    let manifests: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            oci_repository(
                "v1",
                n,
                &format!(
                    "  interval: 2s\n  url: {url}\n  insecure: true\n  ref:\n    tag: v{}\n",
                    i % 3 + 1
                ),
            ) + "---\n"
        })
        .collect();
    apply(&k, &manifests);
    // Kill as soon as the first artifacts appear: others are mid-pull.
    eventually(
        "a first Ready object",
        || {
            names
                .iter()
                .any(|n| !jsonpath(&k, n, "{.status.artifact.digest}").is_empty())
                .then_some(())
        },
        || describe(&k, &names[0]),
    );
    first.kill();

    let second = server(Some(data_dir.clone()));
    let k = Kubectl::new(None, &second.kubeconfig());
    for n in &names {
        wait_ready(&k, n, "True", Some("Succeeded"));
        let bytes = download(&k, "v1", n);
        assert_eq!(
            sha256(&bytes),
            jsonpath(&k, n, "{.status.artifact.digest}"),
            "{n}: stored artifact fails its digest check"
        );
    }
    // No partial files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(data_dir.join("artifacts/ocirepository/default"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with(".tmp"))
        .map(|f| f.path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The log without terminal colour escapes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
