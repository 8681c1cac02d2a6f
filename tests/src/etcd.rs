//! A real etcd cluster on loopback: Debian's `etcd-server` members started by the test,
//! stopped (SIGKILL) when the handle drops.
//!
//! This file only uses `std` and `tempfile`, so the storage crate's tests include it by path
//! (`storage/tests/support/etcd.rs`) without depending on this crate.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new cluster may take to elect a leader.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One member process.
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    child: Option<Child>,
}

/// A running etcd cluster. Members listen on free loopback ports and keep their data in a
/// temporary directory (on `/dev/shm` when it exists, so fsync is cheap on a loaded machine;
/// etcd's consensus and MVCC are unchanged).
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
    tls: Option<ClientTls>,
}

/// PEM files of a cluster whose client URLs are HTTPS and require client certificates
/// (`--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`); peers stay plain
/// HTTP on loopback.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// CA that signed the serving certificate and the client certificates.
    pub ca_file: PathBuf,
    /// The members' serving certificate (SAN `127.0.0.1`).
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// A client certificate the cluster accepts (used for the health check).
    pub client_cert_file: PathBuf,
    /// Its key.
    pub client_key_file: PathBuf,
}

/// A loopback TCP port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback port")
}

/// The `etcd` and `etcdctl` binaries, from `PATH` or `/usr/bin`.
///
/// # Panics
/// With `missing etcd: run scripts/setup.sh` when `etcd-server` is not installed.
fn binary(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("missing {name}: run scripts/setup.sh (apt-get install etcd-server etcd-client)")
        })
}

impl EtcdCluster {
    /// Starts `members` members (3 for a real quorum) and waits until every one reports
    /// healthy (a leader is elected).
    ///
    /// # Panics
    /// When etcd is not installed or the cluster is not healthy within 60 s (the members'
    /// logs are printed).
    pub fn start(members: usize) -> Self {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Self::start_in(members, &base)
    }

    /// Like [`EtcdCluster::start`], with the members' data in a new directory under `base`
    /// (for benchmarks that must fsync to a real disk).
    ///
    /// # Panics
    /// As [`EtcdCluster::start`].
    pub fn start_in(members: usize, base: &Path) -> Self {
        Self::start_with(members, base, None)
    }

    /// Like [`EtcdCluster::start`], with HTTPS client URLs that require a client certificate
    /// signed by `tls.ca_file`.
    ///
    /// # Panics
    /// As [`EtcdCluster::start`].
    pub fn start_tls(members: usize, tls: ClientTls) -> Self {
        Self::start_with(members, &std::env::temp_dir(), Some(tls))
    }

    fn start_with(members: usize, base: &Path, tls: Option<ClientTls>) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let dir = tempfile::Builder::new()
            .prefix("etcd-test")
            .tempdir_in(base)
            .expect("creating the etcd data directory");
        let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("test-{}-{}", std::process::id(), ports[0].0);
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, &(client, peer))| {
                let name = format!("m{i}");
                let client_url = format!("{scheme}://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                let log = std::fs::File::create(dir.path().join(format!("{name}.log")))
                    .expect("creating the etcd log");
                let mut command = Command::new(binary("etcd"));
                if let Some(tls) = &tls {
                    command
                        .arg("--cert-file")
                        .arg(&tls.cert_file)
                        .arg("--key-file")
                        .arg(&tls.key_file)
                        .arg("--trusted-ca-file")
                        .arg(&tls.ca_file)
                        .arg("--client-cert-auth");
                }
                let child = command
                    .args(["--name", &name])
                    .arg("--data-dir")
                    .arg(dir.path().join(&name))
                    .args(["--listen-client-urls", &client_url])
                    .args(["--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peer_url])
                    .args(["--initial-advertise-peer-urls", &peer_url])
                    .args(["--initial-cluster", &initial_cluster])
                    .args(["--initial-cluster-state", "new"])
                    .args(["--initial-cluster-token", &token])
                    .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
                    .args(["--log-outputs", "stderr", "--logger", "zap"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("starting etcd");
                Member {
                    name,
                    client_url,
                    child: Some(child),
                }
            })
            .collect();
        let cluster = Self { members, dir, tls };
        cluster.wait_healthy();
        cluster
    }

    /// The client URLs of the members still running (for `--etcd-servers`).
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.clone())
            .collect()
    }

    /// The client URLs joined with commas.
    pub fn endpoints_flag(&self) -> String {
        self.endpoints().join(",")
    }

    /// Kills member `index` with SIGKILL (as a crashed node).
    pub fn kill_member(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut etcdctl = Command::new(binary("etcdctl"));
            if let Some(tls) = &self.tls {
                etcdctl
                    .arg("--cacert")
                    .arg(&tls.ca_file)
                    .arg("--cert")
                    .arg(&tls.client_cert_file)
                    .arg("--key")
                    .arg(&tls.client_key_file);
            }
            let healthy = etcdctl
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &self.endpoints_flag()])
                .args(["--command-timeout", "2s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if healthy {
                return;
            }
            if Instant::now() > deadline {
                panic!("the etcd cluster did not become healthy:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The members' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }
}
