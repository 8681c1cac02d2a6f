//! Starts the real `source-apiserver` binary on a free loopback port with a fresh data
//! directory, waits until `/readyz` answers, and stops it on drop: SIGTERM, then a check that it
//! exited with status 0 within the shutdown grace period and that its log holds no panic (a
//! panicking reconcile worker or handler otherwise dies silently while the other workers keep
//! the tests green). [`ApiServer::stop`] does the same explicitly.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server.
#[derive(Debug)]
pub struct ApiServer {
    child: Option<Child>,
    /// Holds the log (and the data directory unless one was given); removed on drop.
    scratch: tempfile::TempDir,
    dir: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
}

/// Options for [`ApiServer::start`].
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Reuse this data directory (for restart tests) instead of a new one.
    pub data_dir: Option<PathBuf>,
    /// Extra environment variables for the server process (e.g. `TMPDIR`).
    pub env: Vec<(String, String)>,
}

/// How long a SIGTERMed server may take to exit: the server's default shutdown grace (30 s,
/// `--shutdown-grace-seconds`) plus 10 s of margin.
pub const STOP_PATIENCE: Duration = Duration::from_secs(40);

/// What a server log line holds when any thread panicked (the standard panic hook's message).
const PANIC_MARK: &str = "panicked at";

impl ApiServer {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_source-apiserver")`).
    ///
    /// # Panics
    /// When the server does not become ready within 60 s; the panic message holds its log.
    pub fn start(binary: &Path, options: ServerOptions) -> Self {
        let scratch = tempfile::Builder::new()
            .prefix("source-apiserver-test")
            .tempdir()
            .expect("creating a temp dir");
        let dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| scratch.path().join("data"));
        let port = crate::tools::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid address");
        let log = scratch.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("creating the log file");
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(&dir)
            .arg("--listen")
            .arg(addr.to_string())
            .args(&options.args)
            .env("SOURCE_APISERVER_LOG", "info,apiserver=debug")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning a file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut server = Self {
            child: Some(child),
            scratch,
            dir,
            addr,
            log,
        };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    /// The data directory the server uses.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// A scratch directory removed with the server (for manifests, editors, downloads).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// The generated admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate that signs the serving certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.data_dir().join("pki/ca.crt")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn wait_ready(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("source-apiserver exited early ({status}):\n{}", self.log());
            }
            if self.kubeconfig().exists() && std::net::TcpStream::connect(self.addr).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "source-apiserver not ready after {patience:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `patience` for the process to exit; returns its exit status.
    pub fn terminate(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, "TERM");
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Sends signal `name` (`STOP`, `CONT`, …) to the running process (fault tests).
    pub fn send_signal(&self, name: &str) {
        if let Some(child) = &self.child {
            signal(child, name);
        }
    }

    /// Waits up to `patience` for the process to exit on its own; its exit status, `None` when
    /// it still runs (it is left running) or was already stopped.
    pub fn wait_exit(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.as_mut()?.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILLs the process (crash tests).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM and checks how it ended.
    ///
    /// # Panics
    /// When it does not exit within [`STOP_PATIENCE`], exits with a status other than 0, or
    /// logged a panic; the message holds the log.
    pub fn stop(mut self) {
        self.stop_and_check();
    }

    /// The check behind [`ApiServer::stop`] and `Drop`: SIGTERM (unless already stopped or
    /// killed), then exit status 0 and no panic in the log.
    fn stop_and_check(&mut self) {
        if self.child.is_some() {
            match self.terminate(STOP_PATIENCE) {
                Some(status) => assert!(
                    status.success(),
                    "source-apiserver exited with {status} on SIGTERM:\n{}",
                    self.log()
                ),
                None => panic!(
                    "source-apiserver did not exit within {STOP_PATIENCE:?} of SIGTERM:\n{}",
                    self.log()
                ),
            }
        }
        let log = self.log();
        assert!(
            !log.contains(PANIC_MARK),
            "source-apiserver logged a panic:\n{log}"
        );
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

impl Drop for ApiServer {
    /// Stops the server; checks its exit and log unless the test is already panicking (a
    /// second panic would abort and hide the first).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.terminate(Duration::from_secs(10));
        } else {
            self.stop_and_check();
        }
    }
}
