//! Crash safety: a child process (this test binary, re-invoked) writes objects and artifacts
//! from many tasks and prints every acknowledged write; the parent SIGKILLs it at random
//! points, reopens, and checks that every acknowledged write is there, the database is intact,
//! revisions only increase and no partial artifact is visible.

mod support;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::json;
use sha2::Digest as _;
use storage::{ArtifactStore, ObjectStore, SqliteConfig, SqliteStore, UpdatePart, WriteOptions};
use support::{key, repo, rv};

const CHILD_DIR: &str = "STORAGE_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "STORAGE_CRASH_CHILD_ROUND";
const ROUNDS: usize = 10;
const TASKS: usize = 16;

/// The child's body. It only runs when the parent re-invokes this binary with
/// `--ignored --exact crash_child_writer` and the directory in `STORAGE_CRASH_CHILD_DIR`.
#[test]
#[ignore = "entry point of the crash test's child process, run by acknowledged_writes_survive_sigkill"]
fn crash_child_writer() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("run by the crash test only"));
    let round: usize = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(&dir.join("db.sqlite"), SqliteConfig::default())
            .await
            .unwrap();
        let artifacts = ArtifactStore::open(&dir).unwrap();
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            let artifacts = artifacts.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("r{round}-t{task}-{i}");
                    let k = key("crash", &name);
                    let v = store
                        .create(&k, repo(&name), WriteOptions::default())
                        .await
                        .unwrap();
                    ack(&format!("OBJ {name} {}", rv(&v)));
                    if i % 3 == 0 {
                        let mut s = v.clone();
                        s["status"] = json!({"i": i});
                        let v = store
                            .update(&k, s, UpdatePart::Status, WriteOptions::default())
                            .await
                            .unwrap();
                        ack(&format!("OBJ {name} {}", rv(&v)));
                    }
                    if i % 4 == 0 {
                        let size = rand::rng().random_range(1..256 * 1024);
                        let content: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
                        let hex = hex::encode(sha2::Sha256::digest(&content));
                        let artifacts = artifacts.clone();
                        let object = format!("t{task}");
                        let stored = tokio::task::spawn_blocking(move || {
                            let mut w = artifacts
                                .create("ocirepository", "crash", &object, &format!("{hex}.tar.gz"))
                                .unwrap();
                            for chunk in content.chunks(8192) {
                                w.write_all(chunk).unwrap();
                            }
                            w.finish().unwrap()
                        })
                        .await
                        .unwrap();
                        ack(&format!("ART {} {}", stored.path, stored.digest));
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {line}").unwrap();
    out.flush().unwrap();
}

fn run_child(dir: &Path, round: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = line.strip_prefix("ACK ")
                && tx.send(ack.to_owned()).is_err()
            {
                break;
            }
        }
    });
    let mut acks = Vec::new();
    // Wait for the child to be writing, then kill it at a random point.
    let wanted = rand::rng().random_range(20..400);
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.len() < wanted && Instant::now() < deadline {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(50)) {
            acks.push(a);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the crash child exited early: {status}");
        }
    }
    assert!(
        !acks.is_empty(),
        "the crash child acknowledged no write within 20 s"
    );
    std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..30)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    acks.extend(rx.try_iter());
    acks
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut objects: HashMap<String, u64> = HashMap::new();
    let mut artifacts: Vec<(String, String)> = Vec::new();
    let mut last_revision = 0;
    for round in 0..ROUNDS {
        let acks = run_child(dir.path(), round);
        eprintln!(
            "crash round {round}: child killed after {} acknowledged writes",
            acks.len()
        );
        for ack in acks {
            let parts: Vec<&str> = ack.split(' ').collect();
            match parts.as_slice() {
                ["OBJ", name, rev] => {
                    let rev: u64 = rev.parse().unwrap();
                    let e = objects.entry((*name).to_owned()).or_default();
                    *e = (*e).max(rev);
                }
                ["ART", path, digest] => artifacts.push(((*path).to_owned(), (*digest).to_owned())),
                other => panic!("unexpected ack {other:?}"),
            }
        }
        rt.block_on(async {
            let store = SqliteStore::open(&dir.path().join("db.sqlite"), SqliteConfig::default())
                .await
                .unwrap();
            assert_eq!(
                store.integrity_check().await.unwrap(),
                "ok",
                "round {round}"
            );
            let current = store.current_revision().await.unwrap().0;
            assert!(
                current >= last_revision,
                "round {round}: revision went back from {last_revision} to {current}"
            );
            for (name, acked) in &objects {
                let v = store.get(&key("crash", name)).await.unwrap_or_else(|e| {
                    panic!("round {round}: acknowledged object {name} lost: {e}")
                });
                assert!(
                    rv(&v) >= *acked,
                    "round {round}: {name} at {} < acknowledged {acked}",
                    rv(&v)
                );
                assert!(rv(&v) <= current);
            }
            // a new write continues above everything seen
            let probe = format!("probe-{round}");
            let v = store
                .create(&key("crash", &probe), repo(&probe), WriteOptions::default())
                .await
                .unwrap();
            assert!(rv(&v) > current);
            last_revision = rv(&v);
            store.close().await.unwrap();
        });
        let store = ArtifactStore::open(dir.path()).unwrap();
        for (path, digest) in &artifacts {
            assert!(
                store.verify(path, digest).unwrap(),
                "round {round}: acknowledged artifact {path} lost or damaged"
            );
        }
        // No partial artifact is visible: every file is complete and matches its name.
        let root = store.root().join("ocirepository/crash");
        for object in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(object.unwrap().path()).unwrap() {
                let file = file.unwrap().path();
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                assert!(
                    !name.starts_with('.'),
                    "round {round}: temporary file {name} left after open"
                );
                let hex = name.strip_suffix(".tar.gz").unwrap();
                let content = std::fs::read(&file).unwrap();
                assert_eq!(
                    hex::encode(sha2::Sha256::digest(&content)),
                    hex,
                    "round {round}: partial artifact {name}"
                );
            }
        }
    }
    assert!(objects.len() > ROUNDS * 20);
}
