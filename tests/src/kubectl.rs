//! Runs the machine's real `kubectl` (and the versioned `kubectl.1.27` … `kubectl.1.33` beside
//! it) against a server, with an isolated discovery cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A kubectl binary bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

/// The finished command.
#[derive(Debug)]
pub struct Run {
    /// Exit status success.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the command succeeded; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(
            self.success,
            "kubectl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Panics unless the command failed; returns stderr.
    #[track_caller]
    pub fn failed(&self) -> &str {
        assert!(
            !self.success,
            "kubectl unexpectedly succeeded:\nstdout: {}",
            self.stdout
        );
        &self.stderr
    }
}

impl Kubectl {
    /// The default `kubectl`, or `kubectl.<version>` (e.g. `"1.27"`) found beside it.
    ///
    /// # Panics
    /// When the binary is missing, naming the install step.
    pub fn new(version: Option<&str>, kubeconfig: &Path) -> Self {
        let default = crate::tools::require("kubectl");
        let binary = match version {
            None => default,
            Some(v) => {
                let resolved = std::fs::canonicalize(&default).unwrap_or(default);
                let candidate = resolved.with_file_name(format!("kubectl.{v}"));
                assert!(
                    candidate.exists(),
                    "missing {}: the versioned kubectl builds ship beside the machine's kubectl (google-cloud-sdk); install them (scripts/setup.sh)",
                    candidate.display()
                );
                candidate
            }
        };
        let cache_dir = kubeconfig
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("kubectl-cache-{}", version.unwrap_or("default")));
        Self {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
            cache_dir,
        }
    }

    /// The binary used.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs `kubectl <args>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, &[])
    }

    /// Runs with standard input and extra environment variables.
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(input.as_bytes())
                .expect("writing kubectl stdin");
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("waiting for kubectl");
        Run {
            success: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// A `Command` for `kubectl <args>` to start in the background (e.g. `get -w`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache_dir)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args);
        command
    }
}
