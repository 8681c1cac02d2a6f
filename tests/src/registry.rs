//! Starts Debian's CNCF Distribution registry (`/usr/bin/docker-registry serve <config>`,
//! distribution 2.8) on a free loopback port, optionally with TLS from a [`TestCa`], htpasswd
//! Basic auth, Bearer token auth backed by a small in-process token server, or mutual TLS.
//! The process is killed and its storage deleted when the [`Registry`] handle drops.
//!
//! ```no_run
//! use test_support::{pki::TestCa, registry::{RegistryBuilder, TokenAuth}};
//! let ca = TestCa::new();
//! let reg = RegistryBuilder::new().tls(&ca).token_auth(TokenAuth::new("alice", "secret")).start();
//! println!("{} {}", reg.host(), reg.url());
//! ```

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tempfile::TempDir;

use crate::pki::TestCa;
use crate::tools;

mod token;
use token::TokenServer;

/// Token service name the registry and the token server agree on (`auth.token.service`).
pub const TOKEN_SERVICE: &str = "test-registry";
/// Token issuer (`auth.token.issuer`).
pub const TOKEN_ISSUER: &str = "test-token-issuer";
/// Replaced by `127.0.0.1:<port>` in the config for each start attempt.
const ADDR_PLACEHOLDER: &str = "@@ADDR@@";
/// htpasswd realm (`auth.htpasswd.realm`).
pub const BASIC_REALM: &str = "test-registry";

/// Settings of the test token server (Docker token flow, distribution `auth.token`).
///
/// With the right user/password (HTTP Basic on `GET /token`, or `grant_type=password` form on
/// `POST /token`) or the refresh token (`grant_type=refresh_token`), every requested scope is
/// granted. Anonymous requests get a token granting `pull` only if
/// [`anonymous_pull`](Self::anonymous_pull), else no access at all (the registry then answers
/// 401 `insufficient_scope`). Wrong credentials get 401 from the token server.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    username: String,
    password: String,
    anonymous_pull: bool,
    refresh_token: Option<String>,
    expires_in_secs: u64,
    grants: Vec<(String, Vec<String>)>,
}

impl TokenAuth {
    /// A token server accepting `username`/`password`; tokens live 300 s.
    pub fn new(username: &str, password: &str) -> Self {
        TokenAuth {
            username: username.to_owned(),
            password: password.to_owned(),
            anonymous_pull: false,
            refresh_token: None,
            expires_in_secs: 300,
            grants: Vec::new(),
        }
    }

    /// Let anonymous clients pull (default `false`).
    #[must_use]
    pub fn anonymous_pull(mut self, allow: bool) -> Self {
        self.anonymous_pull = allow;
        self
    }

    /// Also accept this OAuth2 refresh token (a docker `identitytoken`) on `POST /token`.
    #[must_use]
    pub fn refresh_token(mut self, token: &str) -> Self {
        self.refresh_token = Some(token.to_owned());
        self
    }

    /// Restricts the user to the listed grants: call once per repository with the actions
    /// allowed there (`"pull"`, `"push"`, `"delete"`, or `"*"`). Without any call the user gets
    /// every action requested on every repository; with calls, other repositories get nothing
    /// (the registry then answers 401 `insufficient_scope`).
    #[must_use]
    pub fn grant(mut self, repository: &str, actions: &[&str]) -> Self {
        self.grants.push((
            repository.to_owned(),
            actions.iter().map(|a| (*a).to_owned()).collect(),
        ));
        self
    }

    /// Token lifetime in seconds reported as `expires_in` and put in `exp` (default 300; the
    /// registry allows 60 s of clock leeway).
    #[must_use]
    pub fn expires_in_secs(mut self, secs: u64) -> Self {
        self.expires_in_secs = secs;
        self
    }
}

/// Builder for a [`Registry`]. Plain HTTP and no auth by default.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    tls_ca_pem: Option<Vec<u8>>,
    tls_files: Option<(Vec<u8>, Vec<u8>)>,
    client_ca_pem: Option<Vec<u8>>,
    htpasswd: Option<(String, String)>,
    token: Option<TokenAuth>,
}

impl RegistryBuilder {
    /// A plain-HTTP registry without auth.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve HTTPS with a certificate for `localhost` and `127.0.0.1` issued by `ca`.
    #[must_use]
    pub fn tls(mut self, ca: &TestCa) -> Self {
        let (cert, key) = ca.issue_server(&["localhost", "127.0.0.1"]);
        self.tls_ca_pem = Some(ca.cert_pem().to_vec());
        self.tls_files = Some((cert, key));
        self
    }

    /// Require client certificates issued by `ca` (`http.tls.clientcas`). Needs [`tls`](Self::tls).
    #[must_use]
    pub fn client_ca(mut self, ca: &TestCa) -> Self {
        self.client_ca_pem = Some(ca.cert_pem().to_vec());
        self
    }

    /// htpasswd Basic auth with one bcrypt user (hashed by the `htpasswd` tool).
    #[must_use]
    pub fn htpasswd(mut self, username: &str, password: &str) -> Self {
        self.htpasswd = Some((username.to_owned(), password.to_owned()));
        self
    }

    /// Bearer token auth against an in-process token server (see [`TokenAuth`]).
    #[must_use]
    pub fn token_auth(mut self, auth: TokenAuth) -> Self {
        self.token = Some(auth);
        self
    }

    /// Writes `config.yml`, starts `docker-registry serve`, and waits (≤ 30 s) until `/v2/` answers.
    ///
    /// # Panics
    /// With `missing docker-registry: run scripts/setup.sh` when the binary is absent (likewise
    /// `htpasswd`), when `client_ca` is set without `tls`, when both `htpasswd` and `token_auth`
    /// are set, or when the registry exits or does not answer in time (the panic includes its log).
    pub fn start(self) -> Registry {
        let binary = tools::require("docker-registry");
        assert!(
            self.client_ca_pem.is_none() || self.tls_files.is_some(),
            "client_ca needs tls"
        );
        assert!(
            self.htpasswd.is_none() || self.token.is_none(),
            "the registry supports one auth method: htpasswd or token_auth"
        );
        let mut dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");

        let mut yaml = String::new();
        writeln!(yaml, "version: 0.1").unwrap();
        writeln!(
            yaml,
            "log:\n  level: info\n  accesslog:\n    disabled: true"
        )
        .unwrap();
        writeln!(
            yaml,
            "storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory",
            storage.display()
        )
        .unwrap();
        writeln!(
            yaml,
            "http:\n  addr: {ADDR_PLACEHOLDER}\n  secret: test-secret"
        )
        .unwrap();
        if let Some((cert, key)) = &self.tls_files {
            let cert_path = write(dir.path(), "server.pem", cert);
            let key_path = write(dir.path(), "server-key.pem", key);
            writeln!(
                yaml,
                "  tls:\n    certificate: {}\n    key: {}",
                cert_path.display(),
                key_path.display()
            )
            .unwrap();
            if let Some(client_ca) = &self.client_ca_pem {
                let path = write(dir.path(), "client-ca.pem", client_ca);
                writeln!(yaml, "    clientcas:\n      - {}", path.display()).unwrap();
            }
        }
        if let Some((user, pass)) = &self.htpasswd {
            let htpasswd = tools::require("htpasswd");
            let out = Command::new(&htpasswd)
                .args(["-Bbn", user, pass])
                .output()
                .expect("running htpasswd");
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = write(dir.path(), "htpasswd", &out.stdout);
            writeln!(
                yaml,
                "auth:\n  htpasswd:\n    realm: {BASIC_REALM}\n    path: {}",
                path.display()
            )
            .unwrap();
        }
        let token_server = self.token.as_ref().map(|auth| {
            let ca = TestCa::with_name("token signing CA");
            let (cert_pem, key_pem) = ca.issue_signing("token-signer");
            let bundle = write(dir.path(), "token-ca.pem", ca.cert_pem());
            let server = TokenServer::start(auth.clone(), &cert_pem, &key_pem);
            writeln!(
                yaml,
                "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}",
                server.realm(),
                bundle.display()
            )
            .unwrap();
            server
        });

        let log_path = dir.path().join("registry.log");
        let credentials = self.htpasswd.clone().or_else(|| {
            self.token
                .as_ref()
                .map(|t| (t.username.clone(), t.password.clone()))
        });
        let mut registry = None;
        // The free port may be taken between choosing it and the registry binding it: retry.
        for attempt in 1..=5 {
            let port = tools::free_port();
            let host = format!("127.0.0.1:{port}");
            let config = write(
                dir.path(),
                "config.yml",
                yaml.replace(ADDR_PLACEHOLDER, &host).as_bytes(),
            );
            let log = std::fs::File::create(&log_path).expect("log file");
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let mut candidate = Registry {
                child,
                dir,
                host,
                port,
                ca_pem: self.tls_ca_pem.clone(),
                mtls: self.client_ca_pem.is_some(),
                credentials: credentials.clone(),
                token_server: None,
                log_path: log_path.clone(),
            };
            match candidate.wait_ready() {
                Ok(()) => {
                    registry = Some(candidate);
                    break;
                }
                Err(logs) if attempt < 5 && logs.contains("address already in use") => {
                    dir = std::mem::replace(
                        &mut candidate.dir,
                        tempfile::tempdir().expect("temp dir"),
                    );
                }
                Err(logs) => panic!("docker-registry exited; log:\n{logs}"),
            }
        }
        let mut registry = registry.expect("docker-registry started");
        registry.token_server = token_server;
        registry
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// A running registry; killed (and its storage removed) on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    dir: TempDir,
    host: String,
    port: u16,
    ca_pem: Option<Vec<u8>>,
    mtls: bool,
    credentials: Option<(String, String)>,
    token_server: Option<TokenServer>,
    log_path: PathBuf,
}

impl Registry {
    /// `127.0.0.1:<port>`: the registry part of references (`127.0.0.1:<port>/repo:tag`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` or `https://…` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host)
    }

    /// `oci://127.0.0.1:<port>/<repository>`.
    pub fn oci_url(&self, repository: &str) -> String {
        format!("oci://{}/{repository}", self.host)
    }

    /// The CA that signed the server certificate (PEM), `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }

    /// Whether the registry serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.ca_pem.is_some()
    }

    /// The user and password of htpasswd or token auth, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// A docker `config.json` with an `auths` entry (`auth` = base64 `user:password`) for this
    /// registry's host, or `{"auths":{}}` without credentials.
    pub fn docker_config_json(&self) -> String {
        match &self.credentials {
            Some((u, p)) => {
                json!({"auths": {self.host.clone(): {"auth": STANDARD.encode(format!("{u}:{p}"))}}})
                    .to_string()
            }
            None => json!({"auths": {}}).to_string(),
        }
    }

    /// Number of tokens the token server has issued (0 without token auth).
    pub fn tokens_issued(&self) -> usize {
        self.token_server
            .as_ref()
            .map_or(0, |t| t.issued.load(Ordering::SeqCst))
    }

    /// Token realm URL (`http://127.0.0.1:<port>/token`), if token auth is on.
    pub fn token_realm(&self) -> Option<String> {
        self.token_server.as_ref().map(TokenServer::realm)
    }

    /// The registry's storage root (filesystem driver).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file that holds blob `digest` (`sha256:<hex>`) in the registry's filesystem
    /// storage (`docker/registry/v2/blobs/sha256/<first two hex>/<hex>/data`), to alter or
    /// remove content behind the registry's back. The registry serves whatever that file
    /// holds under the old digest.
    ///
    /// # Panics
    /// When `digest` is not a sha256 digest.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log so far (stdout and stderr).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until `/v2/` answers; `Err(log)` when the process exited first.
    ///
    /// # Panics
    /// When it neither answers nor exits within 30 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exit status {status}\n{}", self.logs()));
            }
            if self.probe() {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not answer /v2/ within 30 s; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One `GET /v2/` over HTTP/1.0; true when a status line comes back (any status), or for
    /// mutual TLS when the server answers the handshake at all.
    fn probe(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
        let mut buf = [0u8; 12];
        if self.ca_pem.is_some() {
            let mut connector =
                openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).expect("ssl");
            connector.set_verify(openssl::ssl::SslVerifyMode::NONE);
            let connector = connector.build();
            match connector
                .configure()
                .expect("ssl config")
                .verify_hostname(false)
                .connect("127.0.0.1", tcp)
            {
                Ok(mut tls) => {
                    if tls.write_all(request.as_bytes()).is_err() {
                        return self.mtls;
                    }
                    matches!(tls.read(&mut buf), Ok(n) if n > 0) || self.mtls
                }
                Err(_) => self.mtls,
            }
        } else {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes()).is_ok()
                && tcp.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/")
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_v2(reg: &Registry) -> String {
        let mut tcp = TcpStream::connect(reg.host()).unwrap();
        write!(tcp, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", reg.host()).unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_registry_answers_v2() {
        let reg = RegistryBuilder::new().start();
        assert!(get_v2(&reg).starts_with("HTTP/1.0 200"), "{}", reg.logs());
        assert!(reg.ca_pem().is_none());
        assert_eq!(reg.url(), format!("http://{}", reg.host()));
    }

    #[test]
    fn token_registry_challenges_with_the_token_realm() {
        let reg = RegistryBuilder::new()
            .token_auth(TokenAuth::new("u", "p"))
            .start();
        let resp = get_v2(&reg);
        assert!(resp.starts_with("HTTP/1.0 401"), "{resp}");
        let realm = reg.token_realm().unwrap();
        assert!(
            resp.contains(&format!("Bearer realm=\"{realm}\"")),
            "{resp}"
        );
    }

    #[test]
    fn htpasswd_registry_challenges_with_basic() {
        let reg = RegistryBuilder::new().htpasswd("u", "p").start();
        let resp = get_v2(&reg);
        assert!(resp.starts_with("HTTP/1.0 401"), "{resp}");
        assert!(resp.contains("Basic realm="), "{resp}");
    }

    #[test]
    fn tls_registry_with_client_cas_starts() {
        let ca = TestCa::new();
        let reg = RegistryBuilder::new().tls(&ca).client_ca(&ca).start();
        assert!(reg.is_tls());
        assert_eq!(reg.ca_pem().unwrap(), ca.cert_pem());
    }
}
