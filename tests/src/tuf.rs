//! A TUF repository for the trusted-root refresh tests: made and changed by python-tuf (the
//! reference implementation, `tests/tuf_repository.py`, in the venv `scripts/setup.sh`
//! installs) with Ed25519 test keys and consistent snapshots, and served over plain HTTP from
//! loopback by a small file server here, so the Rust client under test talks to metadata it did
//! not write.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The python-tuf script that writes the repository (see its docstring for the commands).
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tuf_repository.py");

/// A TUF repository whose one target is `trusted_root.json`, served at [`Self::url`]; the
/// server stops on drop.
#[derive(Debug)]
pub struct TufRepository {
    state: tempfile::TempDir,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    requests: AtomicUsize,
}

impl TufRepository {
    /// Root v1, targets, snapshot and timestamp (valid 7 days) listing `trusted_root` (a
    /// `trusted_root.json` file) as the target `trusted_root.json`, served from a loopback port.
    ///
    /// # Panics
    /// When the venv's python (with `tuf`) is missing or the script fails.
    pub fn new(trusted_root: &Path) -> Self {
        let state = tempfile::tempdir().expect("temp dir");
        run(
            state.path(),
            &["init", trusted_root.to_str().expect("UTF-8 path")],
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let (dir, served) = (state.path().join("repository"), shared.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if served.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    served.requests.fetch_add(1, Ordering::SeqCst);
                    serve(&dir, stream);
                }
            }
        });
        Self {
            state,
            addr,
            shared,
        }
    }

    /// The mirror URL: `http://127.0.0.1:<port>/` (metadata there, targets under `targets/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The initial root metadata, `1.root.json`, to start the chain of trust from.
    pub fn root_path(&self) -> PathBuf {
        self.state.path().join("repository/1.root.json")
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Publishes `trusted_root` as the new target (targets, snapshot and timestamp re-signed).
    pub fn set_target(&self, trusted_root: &Path) {
        run(
            self.state.path(),
            &["set-target", trusted_root.to_str().expect("UTF-8 path")],
        );
    }

    /// Flips one byte of the current target file after it was signed.
    pub fn tamper_target(&self) {
        run(self.state.path(), &["tamper-target"]);
    }

    /// Publishes a timestamp that expired a day ago.
    pub fn expire_timestamp(&self) {
        run(self.state.path(), &["expire-timestamp"]);
    }

    /// Publishes root v+1 with new root and timestamp keys (signed by the old and new root
    /// keys) and a timestamp signed with the new key only.
    pub fn rotate_root(&self) {
        run(self.state.path(), &["rotate-root"]);
    }
}

impl Drop for TufRepository {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn run(state: &Path, args: &[&str]) {
    let out = Command::new(crate::tools::venv_python())
        .arg(SCRIPT)
        .arg(state)
        .args(args)
        .output()
        .expect("running the venv python");
    assert!(
        out.status.success(),
        "tuf_repository.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Answers one HTTP/1.1 GET with the file under `dir` (200) or 404, then closes.
fn serve(dir: &Path, stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let file = (!path.contains("..") && !path.is_empty())
        .then(|| std::fs::read(dir.join(path)).ok())
        .flatten();
    let (status, body) = match file {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}
