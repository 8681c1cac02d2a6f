//! Starts the real `source-apiserver` binary on a free loopback port with a fresh data
//! directory, waits until `/readyz` answers, and stops it (SIGTERM, then SIGKILL) on drop.

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
}

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

    /// SIGKILLs the process (crash tests).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate(Duration::from_secs(10));
        }
    }
}
