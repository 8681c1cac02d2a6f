//! End to end under failure: the registry goes away (the old artifact keeps being served) and
//! comes back; the server is SIGKILLed in the middle of reconciles and restarted on the same
//! data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::e2e::{
    TcpProxy, apply, describe, download, jsonpath, oci_repository, push, push_podinfo, sha256,
    testdata, wait_ready,
};
use test_support::front::RegistryFront;
use test_support::kubectl::Kubectl;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

fn server(data_dir: Option<std::path::PathBuf>) -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: vec![],
            data_dir,
            ..Default::default()
        },
    )
}

#[test]
fn registry_down_keeps_serving_the_old_artifact_and_recovers() {
    let registry = RegistryBuilder::new().start();
    let target: SocketAddr = registry.host().parse().unwrap();
    let mut proxy = TcpProxy::start(target);
    let url = format!("oci://{}/app/down", proxy.host());
    push_podinfo(&format!("{url}:v1"));
    let server = server(None);
    let k = Kubectl::for_server(&server);
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

/// Ten objects get their artifacts; then the registry front holds every blob download open
/// mid-body and twenty more objects start pulling. The SIGKILL lands while all four reconcile
/// workers are provably mid-pull (their blob responses are held), with their scratch files on
/// disk. After a restart on the same data directory every object becomes Ready with an artifact
/// that matches its digest, and no temp file is left.
#[test]
fn kill_9_in_the_middle_of_reconciles_then_restart() {
    let registry = RegistryBuilder::new().start();
    let front = RegistryFront::start(registry.host().parse().unwrap());
    let src = testdata("podinfo-kustomize");
    for tag in ["v1", "v2", "v3"] {
        push(
            &format!("{}:{tag}", registry.oci_url("app/crash")),
            &src,
            &["--insecure-registry"],
        );
    }
    let url = format!("oci://{}/app/crash", front.host());
    let mut first = server(None);
    let data_dir = first.data_dir();
    let k = Kubectl::for_server(&first);
    let names: Vec<String> = (0..30).map(|i| format!("crash-{i}")).collect();
    let manifest = |range: std::ops::Range<usize>| -> String {
        names[range]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let tag = if i < 10 { 1 } else { i % 2 + 2 };
                // An ignore rule of its own makes each object its own build (objects of one
                // build share it: docs/reconcile.md), so every object downloads.
                oci_repository(
                    "v1",
                    n,
                    &format!(
                        "  interval: 2s\n  url: {url}\n  insecure: true\n  ignore: \"/{n}-only\"\n  ref:\n    tag: v{tag}\n"
                    ),
                ) + "---\n"
            })
            .collect()
    };
    apply(&k, &manifest(0..10));
    let stored: Vec<(String, String)> = names[..10]
        .iter()
        .map(|n| {
            wait_ready(&k, n, "True", Some("Succeeded"));
            (
                jsonpath(&k, n, "{.status.artifact.path}"),
                jsonpath(&k, n, "{.status.artifact.digest}"),
            )
        })
        .collect();

    front.hold_blobs(true);
    apply(&k, &manifest(10..30));
    // --concurrent defaults to 16: at least four reconciles stuck mid-download.
    let held = front.wait_held(4, Duration::from_secs(60));
    first.kill();

    // On disk at the kill: the stored artifacts intact, the in-flight pulls' scratch left.
    for (path, digest) in &stored {
        let bytes = std::fs::read(data_dir.join("artifacts").join(path)).unwrap();
        assert_eq!(&sha256(&bytes), digest, "{path} changed by the kill");
    }
    let artifacts = data_dir.join("artifacts");
    let scratch = temp_files(&data_dir);
    let unfinished: Vec<_> = walk(&artifacts)
        .into_iter()
        .filter(|p| !scratch.contains(p))
        .filter(|p| {
            names[10..]
                .iter()
                .any(|n| p.components().any(|c| c.as_os_str() == n.as_str()))
        })
        .collect();
    assert!(
        unfinished.is_empty(),
        "artifacts of pulls that never finished: {unfinished:?}"
    );
    eprintln!("held at the kill: {held:#?}\nscratch on disk: {scratch:#?}");
    assert!(
        !scratch.is_empty(),
        "no scratch on disk although {held:?} were mid-download"
    );

    front.release();
    let second = server(Some(data_dir.clone()));
    let k = Kubectl::for_server(&second);
    for n in &names {
        wait_ready(&k, n, "True", Some("Succeeded"));
        let bytes = download(&k, "v1", n);
        assert_eq!(
            sha256(&bytes),
            jsonpath(&k, n, "{.status.artifact.digest}"),
            "{n}: stored artifact fails its digest check"
        );
    }
    // Scratch from before the kill is gone, and no artifact write is half done (new scratch
    // may belong to a reconcile of the second server).
    let leftovers: Vec<_> = temp_files(&data_dir)
        .into_iter()
        .filter(|p| scratch.contains(p) || !p.starts_with(data_dir.join("tmp")))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    second.stop();
}

/// Files under `data_dir` that belong to work in progress: everything under the scratch
/// directory `tmp/`, and the artifact store's temporary files (`.tmp-*`, written beside the
/// artifact and renamed into place when complete) anywhere.
fn temp_files(data_dir: &Path) -> Vec<PathBuf> {
    let files = walk(data_dir);
    let scratch = data_dir.join("tmp");
    files
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            p.starts_with(&scratch) || name.starts_with(".tmp-")
        })
        .collect()
}

/// Every file under `dir`, recursively (none when it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
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
