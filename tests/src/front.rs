//! A registry front: a loopback reverse proxy in front of the real registry that can hold blob
//! downloads open mid-body, so a test can prove that a pull is in progress (and stays so) at the
//! moment it acts, e.g. SIGKILLs the server.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A reverse proxy on a free loopback port that forwards plain-HTTP registry requests to
/// `target`, one request per connection (`Connection: close` upstream). While holding is on,
/// a `GET …/blobs/sha256:…` gets its response head and the first half of its body, then
/// nothing more until [`RegistryFront::release`]. Requests with a body (pushes) are not
/// supported: push to the registry itself, pull through the front.
#[derive(Debug)]
pub struct RegistryFront {
    addr: SocketAddr,
    state: Arc<FrontState>,
}

#[derive(Debug, Default)]
struct FrontState {
    hold: AtomicBool,
    /// Bumped by every release; a held response waits until it changes.
    releases: AtomicU64,
    /// Request paths of the blob responses being held now.
    held: Mutex<Vec<String>>,
}

impl RegistryFront {
    /// Starts the front, forwarding to `target` (the registry's `127.0.0.1:<port>`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind registry front");
        let addr = listener.local_addr().expect("front address");
        let state = Arc::new(FrontState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let state = shared.clone();
                std::thread::spawn(move || forward(client, target, &state));
            }
        });
        Self { addr, state }
    }

    /// `127.0.0.1:<port>`, the registry host to pull through.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Starts (or stops) holding blob responses open; responses already held stay held until
    /// [`RegistryFront::release`].
    pub fn hold_blobs(&self, hold: bool) {
        self.state.hold.store(hold, Ordering::SeqCst);
    }

    /// The request paths of the blob responses held open now.
    pub fn held(&self) -> Vec<String> {
        self.state.held.lock().expect("lock").clone()
    }

    /// Waits until at least `count` blob responses are held open; returns their paths.
    ///
    /// # Panics
    /// When fewer are held after `patience`.
    pub fn wait_held(&self, count: usize, patience: Duration) -> Vec<String> {
        let deadline = Instant::now() + patience;
        loop {
            let held = self.held();
            if held.len() >= count {
                return held;
            }
            assert!(
                Instant::now() < deadline,
                "only {} blob downloads held after {patience:?} (wanted {count}): {held:?}",
                held.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops holding and cuts every held response (the client sees a truncated body).
    pub fn release(&self) {
        self.hold_blobs(false);
        self.state.releases.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.held().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RegistryFront {
    fn drop(&mut self) {
        self.release();
    }
}

/// Serves one connection: reads the request head, forwards it, and copies (or holds) the
/// response.
fn forward(client: TcpStream, target: SocketAddr, state: &FrontState) {
    let mut reader = BufReader::new(client.try_clone().expect("clone client stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let mut head = request_line.clone();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.is_empty() || line == "\r\n" {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.push_str(&line);
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let Ok(mut upstream) = TcpStream::connect(target) else {
        return;
    };
    if upstream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = client;
    if method == "GET" && path.contains("/blobs/sha256:") && state.hold.load(Ordering::SeqCst) {
        hold(&mut upstream, &mut client, path, state);
    } else {
        let _ = std::io::copy(&mut upstream, &mut client);
    }
}

/// Sends the response head and the first half of the body, then waits for a release.
fn hold(upstream: &mut TcpStream, client: &mut TcpStream, path: &str, state: &FrontState) {
    let epoch = state.releases.load(Ordering::SeqCst);
    let mut reader = BufReader::new(upstream);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.is_empty() {
            return;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length / 2];
    if reader.read_exact(&mut body).is_err()
        || client.write_all(head.as_bytes()).is_err()
        || client.write_all(&body).is_err()
        || client.flush().is_err()
    {
        return;
    }
    state.held.lock().expect("lock").push(path.to_owned());
    while state.releases.load(Ordering::SeqCst) == epoch {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    state.held.lock().expect("lock").retain(|p| p != path);
}
