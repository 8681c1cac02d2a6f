//! Helpers of the end-to-end suites (`apiserver/tests/e2e_*.rs`): the real `sourcectl` binary,
//! a patience helper instead of sleeps, OCIRepository manifests, artifact downloads through
//! `kubectl get --raw`, and tree comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kubectl::Kubectl;

/// How long [`eventually`] waits: `$SOURCE_APISERVER_TEST_PATIENCE` seconds, default 60.
pub fn patience() -> Duration {
    std::env::var("SOURCE_APISERVER_TEST_PATIENCE")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Polls `check` every 200 ms until it returns `Some`, for at most [`patience`].
///
/// # Panics
/// With `what` and the last `describe()` output when patience runs out.
#[track_caller]
pub fn eventually<T>(
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + patience();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {:?} waiting for {what}\n{}",
                patience(),
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `sourcectl` binary built by `cargo build -p cli`: `$SOURCECTL`, else `sourcectl` in the
/// target directory of the running test.
///
/// # Panics
/// With `build it with cargo build -p cli` when it is missing.
pub fn sourcectl_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SOURCECTL") {
        return PathBuf::from(p);
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("debug/sourcectl"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // <target>/debug/deps/<test> → <target>/debug/sourcectl
        if let Some(debug) = exe.parent().and_then(Path::parent) {
            candidates.push(debug.join("sourcectl"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("missing sourcectl: build it with `cargo build -p cli` (same CARGO_TARGET_DIR) before the e2e tests")
        })
}

/// Runs `sourcectl args…` with an empty Docker config; returns stdout.
///
/// # Panics
/// When it fails, with both streams.
#[track_caller]
pub fn sourcectl(args: &[&str]) -> String {
    let empty = tempfile::tempdir().expect("temp dir");
    let out = Command::new(sourcectl_binary())
        .env("DOCKER_CONFIG", empty.path())
        .args(args)
        .output()
        .expect("running sourcectl");
    assert!(
        out.status.success(),
        "sourcectl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes the directory `path` to `url` (`oci://host/repo:tag`) with `sourcectl push artifact
/// -o json` plus `extra` flags; returns the manifest digest.
#[track_caller]
pub fn push(url: &str, path: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "push",
        "artifact",
        url,
        "--path",
        path.to_str().expect("utf-8 path"),
        "--source",
        "https://github.com/stefanprodan/podinfo",
        "--revision",
        "6.5.0@sha1:0123456789abcdef0123456789abcdef01234567",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = sourcectl(&args);
    let json: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    json["digest"]
        .as_str()
        .expect("digest in -o json")
        .to_owned()
}

/// Pushes `../shared/testdata/podinfo-kustomize` to `url` (`oci://host/repo:tag`) over plain
/// HTTP, as [`push`] does; returns the manifest digest.
#[track_caller]
pub fn push_podinfo(url: &str) -> String {
    push(
        url,
        &testdata("podinfo-kustomize"),
        &["--insecure-registry"],
    )
}

/// `../shared/testdata/<name>` beside the repository.
pub fn testdata(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata")
        .join(name);
    assert!(dir.exists(), "missing test data {}", dir.display());
    dir
}

/// An OCIRepository manifest in `version` (`v1`/`v1beta2`) in namespace `default`; `spec` is
/// YAML indented by 2 spaces (the lines under `spec:`).
pub fn oci_repository(version: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: source.toolkit.fluxcd.io/{version}\nkind: OCIRepository\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    )
}

/// `kubectl apply -f -` of `manifest`.
#[track_caller]
pub fn apply(k: &Kubectl, manifest: &str) {
    k.run_with(&["apply", "-f", "-"], Some(manifest), &[]).ok();
}

/// `kubectl get ocirepository <name> -o jsonpath=<path>`.
pub fn jsonpath(k: &Kubectl, name: &str, path: &str) -> String {
    let run = k.run(&[
        "get",
        "ocirepository",
        name,
        "-o",
        &format!("jsonpath={path}"),
    ]);
    if run.success {
        run.stdout
    } else {
        String::new()
    }
}

/// The object as JSON (for failure messages).
pub fn describe(k: &Kubectl, name: &str) -> String {
    k.run(&["get", "ocirepository", name, "-o", "json"])
        .stdout
        .clone()
}

/// The Ready condition as `(status, reason, message)`.
pub fn ready(k: &Kubectl, name: &str) -> (String, String, String) {
    let get = |field: &str| {
        jsonpath(
            k,
            name,
            &format!("{{.status.conditions[?(@.type==\"Ready\")].{field}}}"),
        )
    };
    (get("status"), get("reason"), get("message"))
}

/// Waits until Ready is `status` (and, when given, has `reason`); returns the message.
#[track_caller]
pub fn wait_ready(k: &Kubectl, name: &str, status: &str, reason: Option<&str>) -> String {
    eventually(
        &format!("{name} Ready={status} {reason:?}"),
        || {
            let (s, r, m) = ready(k, name);
            (s == status && reason.is_none_or(|want| want == r)).then_some(m)
        },
        || describe(k, name),
    )
}

/// Waits until `status.artifact.revision` satisfies `accept`; returns it.
#[track_caller]
pub fn wait_revision(k: &Kubectl, name: &str, accept: impl Fn(&str) -> bool) -> String {
    eventually(
        &format!("{name} artifact revision"),
        || {
            let r = jsonpath(k, name, "{.status.artifact.revision}");
            (!r.is_empty() && accept(&r)).then_some(r)
        },
        || describe(k, name),
    )
}

/// Downloads the `artifact` subresource of `name` with `kubectl get --raw` (API `version`)
/// into `dest`; returns the bytes.
#[track_caller]
pub fn download(k: &Kubectl, version: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "/apis/source.toolkit.fluxcd.io/{version}/namespaces/default/ocirepositories/{name}/artifact"
    );
    let out = k
        .command(&["get", "--raw", &path])
        .output()
        .expect("running kubectl");
    assert!(
        out.status.success(),
        "kubectl get --raw {path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = openssl::sha::sha256(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Extracts a tar.gz with the system `tar` into a new temp dir.
#[track_caller]
pub fn untar(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("artifact.tar.gz");
    std::fs::write(&file, bytes).expect("write artifact");
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&file)
        .arg("-C")
        .arg(dir.path())
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&file).expect("remove artifact");
    dir
}

/// Regular files below `root` (relative path → content); symlinks and specials ignored.
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            let ty = entry.file_type().expect("file type");
            if ty.is_dir() {
                walk(root, &entry.path(), out);
            } else if ty.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .expect("below root")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(entry.path()).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let ty = entry.file_type().expect("file type");
        let target = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Writes a `kubernetes.io/dockerconfigjson` Secret manifest for `host` into `dir/<name>.yaml`.
pub fn write_docker_secret(dir: &Path, name: &str, host: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = format!(
        r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
        b64(&format!("{user}:{password}"))
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        b64(&config)
    );
    std::fs::create_dir_all(dir).expect("mkdir secrets dir");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, manifest).expect("write secret");
    std::fs::rename(&tmp, dir.join(format!("{name}.yaml"))).expect("rename secret");
}

/// Writes an Opaque Secret manifest with `data` (plain values, base64-encoded here).
pub fn write_secret(dir: &Path, name: &str, data: &[(&str, &[u8])]) {
    use base64::Engine as _;
    let mut manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: Opaque\ndata:\n"
    );
    for (k, v) in data {
        manifest.push_str(&format!(
            "  {k}: {}\n",
            base64::engine::general_purpose::STANDARD.encode(v)
        ));
    }
    std::fs::create_dir_all(dir).expect("mkdir secrets dir");
    std::fs::write(dir.join(format!("{name}.yaml")), manifest).expect("write secret");
}

/// A TCP forwarder on a fixed loopback port that can be stopped and started again, to make a
/// registry unreachable and reachable without changing its address. Each accepted connection
/// is counted (for request accounting with HTTP/1.1 clients that reuse connections, count the
/// registry's log instead).
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    target: std::net::SocketAddr,
    running: Option<ProxyRun>,
}

#[derive(Debug)]
struct ProxyRun {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding a free loopback port to `target` (`127.0.0.1:<port>`).
    pub fn start(target: std::net::SocketAddr) -> Self {
        let mut proxy = Self {
            port: crate::tools::free_port(),
            target,
            running: None,
        };
        proxy.resume();
        proxy
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops listening and cuts every open connection.
    pub fn stop(&mut self) {
        if let Some(mut run) = self.running.take() {
            run.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
            if let Some(t) = run.thread.take() {
                let _ = t.join();
            }
            for s in run.streams.lock().expect("lock").drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Listens again on the same port.
    ///
    /// # Panics
    /// When the port cannot be bound again within 10 s.
    pub fn resume(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("rebinding proxy port {}: {e}", self.port),
            }
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> =
            std::sync::Arc::default();
        let (stop2, streams2, target) = (stop.clone(), streams.clone(), self.target);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(upstream) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let mut list = streams2.lock().expect("lock");
                for s in [&client, &upstream] {
                    if let Ok(c) = s.try_clone() {
                        list.push(c);
                    }
                }
                drop(list);
                let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                if let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) {
                    pipe(client, upstream);
                    pipe(u2, c2);
                }
            }
        });
        self.running = Some(ProxyRun {
            stop,
            streams,
            thread: Some(thread),
        });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `(request line, Proxy-Authorization value)` of every request an [`HttpProxy`] saw.
pub type ProxyLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A minimal HTTP forward proxy for plain-HTTP registries: it accepts absolute-form requests
/// (`GET http://any-host/v2/... HTTP/1.1`), records each request line and its
/// `Proxy-Authorization` header, and forwards the request to `target` with
/// `Connection: close` (one request per connection, so responses need no parsing).
#[derive(Debug)]
pub struct HttpProxy {
    addr: std::net::SocketAddr,
    /// `(request line, Proxy-Authorization value)` of every request seen.
    pub seen: ProxyLog,
}

impl HttpProxy {
    /// Starts the proxy on a free loopback port, forwarding to `target`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start(target: std::net::SocketAddr) -> Self {
        use std::io::{BufRead as _, BufReader, Write as _};
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let seen: ProxyLog = std::sync::Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.trim_end().splitn(3, ' ');
                    let (method, uri, version) = (
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or("HTTP/1.1"),
                    );
                    let path = uri
                        .strip_prefix("http://")
                        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
                        .unwrap_or(uri);
                    let mut headers = Vec::new();
                    let mut auth = None;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if lower.starts_with("proxy-authorization:") {
                            auth = Some(h["proxy-authorization:".len()..].trim().to_owned());
                        } else if !lower.starts_with("connection:")
                            && !lower.starts_with("proxy-connection:")
                        {
                            headers.push(h);
                        }
                    }
                    log.lock()
                        .expect("lock")
                        .push((format!("{method} {uri}"), auth));
                    let Ok(mut upstream) = std::net::TcpStream::connect(target) else {
                        return;
                    };
                    let mut request = format!("{method} {path} {version}\r\n");
                    for h in headers {
                        request.push_str(&h);
                    }
                    request.push_str("Connection: close\r\n\r\n");
                    if upstream.write_all(request.as_bytes()).is_err() {
                        return;
                    }
                    let mut client = client;
                    let _ = std::io::copy(&mut upstream, &mut client);
                });
            }
        });
        Self { addr, seen }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
