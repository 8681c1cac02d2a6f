//! `sourcectl`'s start-up against an insecure registry: with `--insecure-registry` and no
//! `--ca-file` nothing is verified, so the system CA bundle is never read (OpenSSL 3 parsed it
//! twice per client, ~115 ms of CPU, most of a small push: bench/README.md, registry section).
//!
//! Evidence without timing: `SSL_CERT_FILE` (honoured by OpenSSL, openssl-probe and
//! rustls-native-certs alike) names a FIFO with no writer, so any attempt to read the bundle
//! blocks the process; push and pull must finish.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{sourcectl_cmd, testdata};
use test_support::registry::RegistryBuilder;

/// Bound on one run; a run that reads the bundle blocks until killed here.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion, or kills it after [`PATIENCE`] and fails the test.
fn finish(mut cmd: Command, what: &str) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sourcectl");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        if started.elapsed() > PATIENCE {
            child.kill().unwrap();
            panic!(
                "{what} did not finish within {PATIENCE:?}: it opened SSL_CERT_FILE (a FIFO \
                 without writer), so it reads the CA bundle although nothing is verified"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sourcectl` with the CA bundle and directory pointed at `fifo` and an empty directory.
fn without_readable_bundle(fifo: &Path, empty: &Path, args: &[&str]) -> Command {
    let mut cmd = sourcectl_cmd(empty);
    cmd.env("SSL_CERT_FILE", fifo)
        .env("SSL_CERT_DIR", empty)
        .args(args);
    cmd
}

#[test]
fn an_insecure_registry_push_and_pull_never_read_the_ca_bundle() {
    let registry = RegistryBuilder::new().start();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca-certificates.crt");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let empty = tempfile::tempdir().unwrap();
    let url = format!("oci://{}/startup/app:v1", registry.host());
    let tree = testdata("podinfo-kustomize");
    let out = dir.path().join("out");

    let push = [
        "push",
        "artifact",
        &url,
        "--path",
        tree.to_str().unwrap(),
        "--source",
        "https://github.com/stefanprodan/podinfo",
        "--revision",
        "6.6.0@sha1:0123456789abcdef0123456789abcdef01234567",
        "--insecure-registry",
    ];
    finish(
        without_readable_bundle(&fifo, empty.path(), &push),
        "push artifact --insecure-registry",
    );
    let pull = [
        "pull",
        "artifact",
        &url,
        "--output",
        out.to_str().unwrap(),
        "--insecure-registry",
    ];
    finish(
        without_readable_bundle(&fifo, empty.path(), &pull),
        "pull artifact --insecure-registry",
    );
    assert_eq!(common::files(&out), common::files(&tree));
}
