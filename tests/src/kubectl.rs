//! Runs the machine's real `kubectl` (and the versioned `kubectl.1.27` … `kubectl.1.33` beside
//! it) against a server, with an isolated discovery cache.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The default `kubectl` for `server` (its kubeconfig).
    ///
    /// # Panics
    /// As [`Kubectl::new`].
    pub fn for_server(server: &crate::server::ApiServer) -> Self {
        Self::new(None, &server.kubeconfig())
    }

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

/// A kubectl command started in the background with `-v=6` (each request and its response
/// status logged on stderr), so a test can wait for evidence that kubectl's watch request was
/// answered before making the change the watch must see.
#[derive(Debug)]
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    watches: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Kubectl {
    /// Starts `kubectl -v=6 <args>` with stdout and stderr captured.
    ///
    /// # Panics
    /// When kubectl cannot be started.
    pub fn background(&self, args: &[&str]) -> Background {
        let mut child = self
            .command(&["-v=6"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kubectl");
        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line_tx.send(line).is_err() {
                    return;
                }
            }
        });
        let (watch_tx, watches) = mpsc::channel();
        let text = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = text.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                // kubectl ≤ 1.29: `GET https://…&watch=true 200 OK in 3 milliseconds`;
                // later: `"Response" verb="GET" url="…&watch=true" status="200 OK" …`.
                if line.contains("watch=true") && line.contains("200 OK") {
                    let _ = watch_tx.send(line.clone());
                }
                let mut all = sink.lock().expect("lock");
                all.push_str(&line);
                all.push('\n');
            }
        });
        Background {
            child,
            lines,
            watches,
            stderr: text,
        }
    }
}

impl Background {
    /// Waits until kubectl logged a successful response to a watch request (`watch=true`,
    /// `200 OK`); returns that log line.
    ///
    /// # Panics
    /// When none came within `patience`, with everything kubectl logged.
    pub fn wait_for_watch(&self, patience: Duration) -> String {
        self.watches.recv_timeout(patience).unwrap_or_else(|_| {
            panic!(
                "kubectl opened no watch within {patience:?}:\n{}",
                self.stderr()
            )
        })
    }

    /// Waits for the next stdout line within `patience`.
    pub fn next_line(&self, patience: Duration) -> Option<String> {
        self.lines.recv_timeout(patience).ok()
    }

    /// Waits until a stdout line satisfies `accept` within `patience`; returns it.
    pub fn wait_for_line(
        &self,
        patience: Duration,
        accept: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + patience;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if accept(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Everything kubectl wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits up to `patience` for kubectl to exit by itself; kills it when it does not.
    /// Returns the exit status (`None` when killed) and the stdout lines not yet read.
    pub fn finish(mut self, patience: Duration) -> (Option<ExitStatus>, Vec<String>) {
        let deadline = Instant::now() + patience;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends when the pipe closes; wait for it to hand over the rest.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        (status, rest)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
