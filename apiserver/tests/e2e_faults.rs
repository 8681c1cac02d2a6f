//! End to end under storage and content faults: an artifact corrupted on disk is never served,
//! neither by the `artifact` subresource nor by the plain-HTTP listener, until the reconcile has
//! rebuilt it to match `status.artifact.digest` again; a layer altered in the registry's storage
//! is refused as a digest mismatch; a full or read-only artifact store fails the storage step
//! and keeps the previous artifact; SIGTERM with open watches ends them cleanly.
//!
//! The disk-fault tests mount a tmpfs on the artifact store and need root (as CI runs); they
//! say so and skip when not root.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;

use test_support::e2e::{
    apply, describe, eventually, jsonpath, oci_repository, push, push_podinfo, sha256, testdata,
    wait_ready, wait_revision,
};
use test_support::kubectl::Kubectl;
use test_support::registry::RegistryBuilder;
use test_support::server::{ApiServer, ServerOptions};

/// A loopback address with a port that was free a moment ago.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET http://<addr><path>` over HTTP/1.0: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, response[split + 4..].to_vec())
}

/// `kubectl get --raw` of the `artifact` subresource: the bytes, or kubectl's stderr.
fn subresource(k: &Kubectl, name: &str) -> Result<Vec<u8>, String> {
    let out = k
        .command(&[
            "get",
            "--raw",
            &format!(
                "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/{name}/artifact"
            ),
        ])
        .output()
        .expect("running kubectl");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_corrupted_artifact_is_refused_until_the_reconcile_rebuilds_it() {
    let registry = RegistryBuilder::new().start();
    let url = format!("oci://{}/app/corrupt", registry.host());
    push_podinfo(&format!("{url}:v1"));
    let listen = free_addr();
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            args: vec!["--artifact-listen".into(), listen.to_string()],
            data_dir: None,
            ..ServerOptions::default()
        },
    );
    let k = Kubectl::for_server(&server);
    // A long interval: only the reconcile this test asks for may rebuild the artifact.
    apply(
        &k,
        &oci_repository(
            "v1",
            "corrupt",
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    wait_ready(&k, "corrupt", "True", Some("Succeeded"));
    let digest = jsonpath(&k, "corrupt", "{.status.artifact.digest}");
    let path = jsonpath(&k, "corrupt", "{.status.artifact.path}");
    let plain = format!("/{path}");
    let (code, body) = http_get(listen, &plain);
    assert_eq!((code, sha256(&body)), (200, digest.clone()));

    // Through the plain-HTTP listener first, then through the subresource.
    corrupt(&server.data_dir().join("artifacts").join(&path));
    let (code, body) = http_get(listen, &plain);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("does not match its digest"), "{body}");
    let (code, _) = http_get(listen, &plain);
    assert_eq!(
        code, 404,
        "the corrupted file was removed for the reconcile to rebuild"
    );
    rebuild(&k, &listen, "1");

    let path = jsonpath(&k, "corrupt", "{.status.artifact.path}");
    corrupt(&server.data_dir().join("artifacts").join(&path));
    let stderr = subresource(&k, "corrupt").expect_err("a corrupted artifact is refused");
    assert!(
        stderr.contains("does not match its digest") && stderr.contains("ServiceUnavailable"),
        "the subresource refuses with a clear Status: {stderr}"
    );
    rebuild(&k, &listen, "2");
}

/// Flips two bytes in the middle of `file`, in place: same size, same inode.
fn corrupt(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes[middle + 1] ^= 0xff;
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
}

/// Asks for a reconcile and waits until both download paths serve bytes matching
/// `status.artifact.digest` again.
fn rebuild(k: &Kubectl, listen: &SocketAddr, request: &str) {
    k.run(&[
        "annotate",
        "--overwrite",
        "ocirepository/corrupt",
        &format!("reconcile.fluxcd.io/requestedAt={request}"),
    ])
    .ok();
    let served = eventually(
        "the rebuilt artifact to be served",
        || subresource(k, "corrupt").ok(),
        || describe(k, "corrupt"),
    );
    let status_digest = jsonpath(k, "corrupt", "{.status.artifact.digest}");
    assert_eq!(sha256(&served), status_digest);
    let status_path = jsonpath(k, "corrupt", "{.status.artifact.path}");
    let (code, body) = http_get(*listen, &format!("/{status_path}"));
    assert_eq!((code, sha256(&body)), (200, status_digest));
}

#[test]
fn sigterm_with_open_watches_ends_them_cleanly_and_keeps_everything_for_the_restart() {
    let registry = RegistryBuilder::new().start();
    let url = format!("oci://{}/app/sigterm", registry.host());
    push_podinfo(&format!("{url}:v1"));
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let start = || {
        ApiServer::start(
            Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
            ServerOptions {
                args: vec!["--shutdown-grace-seconds".into(), "20".into()],
                data_dir: Some(data_dir.clone()),
                ..ServerOptions::default()
            },
        )
    };
    let mut server = start();
    let k = Kubectl::for_server(&server);
    // A short interval keeps reconciles coming while the signal lands.
    apply(
        &k,
        &oci_repository(
            "v1",
            "sigterm",
            &format!("  interval: 1s\n  url: {url}\n  insecure: true\n  ref:\n    tag: v1\n"),
        ),
    );
    wait_ready(&k, "sigterm", "True", Some("Succeeded"));
    let digest = jsonpath(&k, "sigterm", "{.status.artifact.digest}");

    // An open watch, proven open: its first event has been read.
    let mut watch = k
        .command(&[
            "get",
            "--raw",
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories?watch=true",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watch.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"{", "a watch event arrived");

    let began = std::time::Instant::now();
    let status = server
        .terminate(std::time::Duration::from_secs(30))
        .expect("the server exits after SIGTERM");
    let took = began.elapsed();
    assert!(status.success(), "a clean exit: {status}\n{}", server.log());
    // Watches end at the signal instead of holding the process for the whole 20 s grace.
    assert!(
        took < std::time::Duration::from_secs(10),
        "exited well within the 20 s grace period (took {took:?})"
    );
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = watch.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the watch ended cleanly, not reset mid-frame: {}\n{stderr}",
        out.status
    );
    // Every frame the client got is whole JSON.
    let frames = [&first[..], &rest].concat();
    for frame in serde_json::Deserializer::from_slice(&frames).into_iter::<serde_json::Value>() {
        let frame = frame.unwrap_or_else(|e| panic!("a broken frame ({e}): {stderr}"));
        assert!(frame["type"].is_string(), "{frame}");
    }
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");

    // Restart on the same data directory: the object and its artifact are intact.
    let server = start();
    let k = Kubectl::for_server(&server);
    assert_eq!(jsonpath(&k, "sigterm", "{.status.artifact.digest}"), digest);
    let served = subresource(&k, "sigterm").expect("the artifact is served after the restart");
    assert_eq!(sha256(&served), digest);
}

/// Pushes the podinfo manifests as `v1`, and as `v2` with one more file; returns the `v2`
/// layer digest (read from the manifest in the registry's storage).
fn push_two_revisions(registry: &test_support::registry::Registry, url: &str) -> String {
    push_podinfo(&format!("{url}:v1"));
    let changed = tempfile::tempdir().unwrap();
    test_support::e2e::copy_tree(&testdata("podinfo-kustomize"), changed.path());
    std::fs::write(changed.path().join("v2.txt"), "revision two\n").unwrap();
    let manifest_digest = push(
        &format!("{url}:v2"),
        changed.path(),
        &["--insecure-registry"],
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.blob_file(&manifest_digest)).unwrap())
            .unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_owned()
}

/// Points `name` at `tag` (a new generation: reconciled at once).
fn point_at(k: &Kubectl, name: &str, url: &str, tag: &str) {
    apply(
        k,
        &oci_repository(
            "v1",
            name,
            &format!("  interval: 1h\n  url: {url}\n  insecure: true\n  ref:\n    tag: {tag}\n"),
        ),
    );
}

/// The file names in the object's artifact directory.
fn artifact_files(data_dir: &Path, name: &str) -> Vec<String> {
    let dir = data_dir.join("artifacts/ocirepository/default").join(name);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The status of condition `kind` of `name`.
fn condition(k: &Kubectl, name: &str, kind: &str) -> String {
    jsonpath(
        k,
        name,
        &format!("{{.status.conditions[?(@.type==\"{kind}\")].status}}"),
    )
}

/// A layer altered in the registry's own storage after the push (the registry serves the
/// changed bytes under the old digest; the change breaks the gzip header, so extraction fails
/// long before the end of the blob): nothing is stored, Ready=False names the digest mismatch,
/// and the previous artifact is still served with its digest.
#[test]
fn a_layer_altered_in_the_registry_is_refused_and_the_previous_artifact_stays_served() {
    let registry = RegistryBuilder::new().start();
    let url = format!("oci://{}/app/altered", registry.host());
    let layer = push_two_revisions(&registry, &url);
    let data = tempfile::tempdir().unwrap();
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            data_dir: Some(data.path().join("data")),
            ..ServerOptions::default()
        },
    );
    let k = Kubectl::for_server(&server);
    point_at(&k, "altered", &url, "v1");
    wait_ready(&k, "altered", "True", Some("Succeeded"));
    let digest = jsonpath(&k, "altered", "{.status.artifact.digest}");
    let stored = artifact_files(&server.data_dir(), "altered");

    let blob = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[..16].fill(0);
    std::fs::write(&blob, bytes).unwrap();
    point_at(&k, "altered", &url, "v2");
    let message = wait_ready(&k, "altered", "False", Some("OCIArtifactPullFailed"));
    assert!(
        message.contains(&format!("digest mismatch for {}", registry.url()))
            && message.contains(&format!("expected {layer}")),
        "Ready=False names the layer's digest mismatch: {message}"
    );
    assert!(
        message.starts_with(&format!("failed to pull artifact from '{url}'")),
        "{message}"
    );
    assert_eq!(condition(&k, "altered", "FetchFailed"), "True");
    assert_eq!(jsonpath(&k, "altered", "{.status.artifact.digest}"), digest);
    let served = subresource(&k, "altered").expect("the previous artifact is served");
    assert_eq!(sha256(&served), digest);
    // Stopped, no retry is in flight (each one writes into a temporary file until its pull
    // fails): nothing but the previous artifact is on disk.
    let data_dir = server.data_dir();
    server.stop();
    assert_eq!(
        artifact_files(&data_dir, "altered"),
        stored,
        "nothing was stored for the altered layer"
    );
}

/// How the artifact store's file system fails while a new artifact is written.
#[derive(Clone, Copy, Debug)]
enum DiskFault {
    /// Filled to the last byte: the write fails with `ENOSPC`.
    Full,
    /// Remounted read-only: creating the temporary file fails with `EROFS`.
    ReadOnly,
}

/// The artifact store (`<data-dir>/artifacts`) on an 8 MiB tmpfs; `v1` stored; then `fault`
/// strikes and the object moves to `v2`: StorageOperationFailed with the cause, the previous
/// artifact still downloads with its digest, and once the server has stopped no temporary file
/// is left; with the fault gone, the restarted server stores `v2`.
fn a_disk_fault_while_an_artifact_is_written(fault: DiskFault) {
    let data = tempfile::tempdir().unwrap();
    let artifacts = data.path().join("data/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let fs = match test_support::tmpfs::Tmpfs::mount_as_root(&artifacts, "8m") {
        Ok(fs) => fs,
        Err(skip) => {
            eprintln!("{skip}");
            return;
        }
    };
    let registry = RegistryBuilder::new().start();
    let url = format!("oci://{}/app/disk", registry.host());
    push_two_revisions(&registry, &url);
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            data_dir: Some(data.path().join("data")),
            ..ServerOptions::default()
        },
    );
    let k = Kubectl::for_server(&server);
    point_at(&k, "disk", &url, "v1");
    wait_ready(&k, "disk", "True", Some("Succeeded"));
    let digest = jsonpath(&k, "disk", "{.status.artifact.digest}");

    let (cause, filler) = match fault {
        DiskFault::Full => ("No space left on device", Some(fs.fill())),
        DiskFault::ReadOnly => {
            fs.remount(true);
            ("Read-only file system", None)
        }
    };
    point_at(&k, "disk", &url, "v2");
    let message = wait_ready(&k, "disk", "False", Some("ArchiveOperationFailed"));
    assert!(
        message.starts_with("unable to archive artifact to storage") && message.contains(cause),
        "Ready=False names the storage failure ({cause}): {message}"
    );
    assert_eq!(
        condition(&k, "disk", "StorageOperationFailed"),
        "True",
        "{}",
        describe(&k, "disk")
    );
    assert_eq!(jsonpath(&k, "disk", "{.status.artifact.digest}"), digest);
    let served = subresource(&k, "disk").expect("the previous artifact is served");
    assert_eq!(sha256(&served), digest, "the previous artifact, whole");
    // Stopped, no reconcile is in flight (a retry may be mid-write at any moment before):
    // every failed write removed its temporary file.
    let data_dir = server.data_dir();
    server.stop();
    let temporaries: Vec<String> = artifact_files(&data_dir, "disk")
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        temporaries.is_empty(),
        "temporary files left: {temporaries:?}"
    );

    // The fault is gone: after a restart the reconcile stores v2.
    match filler {
        Some(filler) => std::fs::remove_file(filler).unwrap(),
        None => fs.remount(false),
    }
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions {
            data_dir: Some(data_dir),
            ..ServerOptions::default()
        },
    );
    let k = Kubectl::for_server(&server);
    wait_revision(&k, "disk", |r| r.starts_with("v2@sha256:"));
    wait_ready(&k, "disk", "True", Some("Succeeded"));
    assert_eq!(condition(&k, "disk", "StorageOperationFailed"), "");
    let served = subresource(&k, "disk").expect("the new artifact is served");
    assert_eq!(
        sha256(&served),
        jsonpath(&k, "disk", "{.status.artifact.digest}")
    );
    server.stop();
    drop(fs);
}

#[test]
fn a_full_disk_while_an_artifact_is_written_fails_the_storage_step_and_keeps_the_previous_artifact()
{
    a_disk_fault_while_an_artifact_is_written(DiskFault::Full);
}

#[test]
fn a_read_only_artifact_store_fails_the_storage_step_and_keeps_the_previous_artifact() {
    a_disk_fault_while_an_artifact_is_written(DiskFault::ReadOnly);
}
