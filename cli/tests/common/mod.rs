//! Helpers shared by the `sourcectl` integration tests: run the built binary, compare trees,
//! find the test data.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/testdata/<name>` beside the repository (podinfo's Apache-2.0 manifests).
pub fn testdata(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata")
        .join(name);
    assert!(dir.exists(), "missing test data {}", dir.display());
    dir
}

/// The result of one `sourcectl` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "sourcectl failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn failed(self) -> Self {
        assert_eq!(
            self.code, 1,
            "sourcectl should exit 1:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A `sourcectl` command with an empty Docker config (so the host's never leaks in).
pub fn sourcectl_cmd(docker_config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sourcectl"));
    cmd.env("DOCKER_CONFIG", docker_config)
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `sourcectl args...` with an empty Docker config.
pub fn sourcectl(args: &[&str]) -> Run {
    let empty = tempfile::tempdir().unwrap();
    sourcectl_cmd(empty.path())
        .args(args)
        .output()
        .expect("run sourcectl")
        .into()
}

/// Regular files below `root` (relative path → content), symlinks and specials ignored.
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                walk(root, &entry.path(), out);
            } else if ty.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs a command and returns stdout, panicking with stderr on failure.
pub fn run_tool(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes `path` to `url` (plain HTTP) and returns the manifest digest from `-o json`.
pub fn push(url: &str, path: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "push",
        "artifact",
        url,
        "--path",
        path.to_str().unwrap(),
        "--source",
        "https://github.com/stefanprodan/podinfo",
        "--revision",
        "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567",
        "--insecure-registry",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = sourcectl(&args).ok();
    let json: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    json["digest"].as_str().unwrap().to_owned()
}
