//! `sourcectl`'s start-up cost in CA bundle reads, counted without timing: `SSL_CERT_FILE`
//! (honoured by OpenSSL and by our `openssl-probe` lookup alike) names a FIFO, so each read of
//! the bundle is one open of the FIFO that the test sees.
//!
//! - Against an insecure registry (`--insecure-registry`, no `--ca-file`) nothing is verified,
//!   so the bundle is never read: no writer serves the FIFO, and a read would block the process.
//! - Against a verified HTTPS registry the bundle is read exactly once per process (native-tls
//!   parsed it twice per client, ~115 ms of CPU, most of a small push: bench/README.md,
//!   start-up). A writer thread serves the test CA on each open and counts the opens; the
//!   push and pull verify the registry with it, so the bundle read is the one in use.

mod common;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{sourcectl_cmd, testdata};
use test_support::pki::TestCa;
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
                "{what} did not finish within {PATIENCE:?}: did it open SSL_CERT_FILE (a FIFO \
                 without writer in the insecure case), reading the CA bundle?"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sourcectl` with the CA bundle pointed at `fifo` and the CA directory at `empty`.
fn with_bundle_at(fifo: &Path, empty: &Path, args: &[&str]) -> Command {
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
        with_bundle_at(&fifo, empty.path(), &push),
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
        with_bundle_at(&fifo, empty.path(), &pull),
        "pull artifact --insecure-registry",
    );
    assert_eq!(common::files(&out), common::files(&tree));
}

/// Serves `pem` to each reader of a FIFO and counts the readers.
struct BundleFifo {
    path: PathBuf,
    opens: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    writer: JoinHandle<()>,
}

impl BundleFifo {
    /// Makes the FIFO `path` and starts serving `pem` on it.
    fn serve(path: PathBuf, pem: Vec<u8>) -> Self {
        let made = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
        assert!(made.success());
        let opens = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = std::thread::spawn({
            let (path, opens, stop) = (path.clone(), opens.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    // Blocks until a reader opens the FIFO.
                    let mut fifo = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .expect("open the FIFO for writing");
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    opens.fetch_add(1, Ordering::SeqCst);
                    // A reader that stops early closes its end: ignore the broken pipe.
                    let _ = fifo.write_all(&pem);
                    drop(fifo);
                    wait_for_no_reader(&path, &stop);
                }
            }
        });
        BundleFifo {
            path,
            opens,
            stop,
            writer,
        }
    }

    /// Stops serving and returns how many times the FIFO was opened by a reader.
    fn reads(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        // A writer waiting in `open` is released by any reader, then sees `stop`; a
        // non-blocking open never waits for the writer itself.
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
        self.writer.join().expect("the FIFO writer panicked");
        self.opens.load(Ordering::SeqCst)
    }
}

/// Returns once no reader holds the FIFO open (a non-blocking open for writing fails with
/// `ENXIO`), so that the next reader is a new open; polls every millisecond, and returns on
/// `stop`.
fn wait_for_no_reader(path: &Path, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let open = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        match open {
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[test]
fn a_verified_registry_push_and_pull_read_the_ca_bundle_once() {
    let ca = TestCa::new();
    let registry = RegistryBuilder::new().tls(&ca).start();
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let url = registry.oci_url("startup/verified:v1");
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
    ];
    let pull = ["pull", "artifact", &url, "--output", out.to_str().unwrap()];
    for (args, what) in [(&push[..], "push artifact"), (&pull[..], "pull artifact")] {
        let fifo = dir.path().join(format!("{}.crt", what.replace(' ', "-")));
        let bundle = BundleFifo::serve(fifo.clone(), ca.cert_pem().to_vec());
        finish(with_bundle_at(&fifo, empty.path(), args), what);
        assert_eq!(
            bundle.reads(),
            1,
            "{what} against a verified registry must read the CA bundle exactly once"
        );
    }
    assert_eq!(common::files(&out), common::files(&tree));
}
