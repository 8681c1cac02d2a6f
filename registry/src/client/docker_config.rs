//! Docker config files (`~/.docker/config.json`, or a `kubernetes.io/dockerconfigjson` Secret's
//! `.dockerconfigjson`; the legacy `.dockercfg` of a `kubernetes.io/dockercfg` Secret) and docker credential helpers (`docker-credential-<name> get`).
//!
//! Lookup follows docker/cli and go-containerregistry's default keychain: the keys tried are the
//! repository (`ghcr.io/org/app`) and then the registry (`ghcr.io`); for each key
//! `credHelpers[key]` wins, then `credsStore`, then `auths` (entries are matched after stripping
//! `http(s)://` and any path, and `docker.io`, `index.docker.io`, `registry-1.docker.io` are one
//! host). Unlike docker, an `auths` entry is still used when the store helper answers "credentials
//! not found".

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Error, Result};

/// Credentials found for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Nothing configured.
    Anonymous,
    /// User and password (Basic, or at the token endpoint).
    Basic { username: String, password: String },
    /// OAuth2 refresh token (docker `identitytoken`, helper user `<token>`).
    IdentityToken(String),
    /// A bearer token sent as-is (docker `registrytoken`, `--creds <token>`).
    RegistryToken(String),
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Anonymous => f.write_str("Anonymous"),
            Resolved::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Resolved::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Resolved::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

#[derive(Clone, Default, PartialEq, Eq)]
struct AuthEntry {
    username: Option<String>,
    password: Option<String>,
    identity_token: Option<String>,
    registry_token: Option<String>,
}

impl AuthEntry {
    fn to_resolved(&self) -> Option<Resolved> {
        if let Some(t) = self.identity_token.as_ref().filter(|t| !t.is_empty()) {
            return Some(Resolved::IdentityToken(t.clone()));
        }
        if let Some(t) = self.registry_token.as_ref().filter(|t| !t.is_empty()) {
            return Some(Resolved::RegistryToken(t.clone()));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some(Resolved::Basic {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// A parsed docker config: `auths` (each with `auth` = base64 `user:password`, or
/// `username`/`password`, `identitytoken`, `registrytoken`), `credsStore` and `credHelpers`.
///
/// Credential helpers are looked up as `docker-credential-<name>` on the process `PATH`, or on
/// the path given to [`with_helper_path`](Self::with_helper_path), which is also passed to the
/// helper as its `PATH` (so tests never mutate the process environment). `Debug` redacts secrets.
#[derive(Clone, Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
    helper_path: Option<OsString>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("auths", &self.auths.keys().collect::<Vec<_>>())
            .field("creds_store", &self.creds_store)
            .field("cred_helpers", &self.cred_helpers)
            .field("helper_path", &self.helper_path)
            .finish()
    }
}

impl DockerConfig {
    /// Loads `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. A missing file (or
    /// no `HOME`) gives an empty config: anonymous everywhere.
    ///
    /// # Errors
    /// [`Error::DockerConfig`] when the file exists but cannot be read or parsed.
    pub fn load_default() -> Result<Self> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d),
            None => match std::env::var_os("HOME") {
                Some(h) => Path::new(&h).join(".docker"),
                None => return Ok(Self::default()),
            },
        };
        let path = dir.join("config.json");
        if !path.exists() {
            return Ok(Self::default());
        }
        Self::from_path(&path)
    }

    /// Parses config JSON (a docker `config.json` or a Secret's `.dockerconfigjson`).
    ///
    /// # Errors
    /// [`Error::DockerConfig`] with `path: None` for invalid JSON or an `auth` field that is not
    /// base64 of `user:password` with a non-empty user.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Self::parse(bytes, None)
    }

    /// Parses the legacy `~/.dockercfg` format, the `.dockercfg` key of a
    /// `kubernetes.io/dockercfg` Secret: the `auths` map itself at the top level
    /// (`{"<registry>": {"auth": "..."}}`), as Kubernetes' credential provider and
    /// go-containerregistry's k8schain read it.
    ///
    /// # Errors
    /// [`Error::DockerConfig`] with `path: None` for JSON that is not an object, and as
    /// [`from_json`](Self::from_json) for its entries.
    pub fn from_legacy_json(bytes: &[u8]) -> Result<Self> {
        let err = |message: String| Error::DockerConfig {
            path: None,
            message,
        };
        let auths: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let wrapped = serde_json::json!({ "auths": auths });
        Self::parse(wrapped.to_string().as_bytes(), None)
    }

    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`Error::DockerConfig`] when it cannot be read or parsed.
    pub fn from_path(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::DockerConfig {
            path: Some(path.to_owned()),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&bytes, Some(path.to_owned()))
    }

    /// Looks credential helpers up on `path` (a `PATH`-style list of directories) instead of the
    /// process `PATH`, and runs them with `PATH=path`.
    #[must_use]
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// Whether nothing is configured (no `auths`, no helpers).
    pub fn is_empty(&self) -> bool {
        self.auths.is_empty() && self.creds_store.is_none() && self.cred_helpers.is_empty()
    }

    fn parse(bytes: &[u8], path: Option<PathBuf>) -> Result<Self> {
        let err = |message: String| Error::DockerConfig {
            path: path.clone(),
            message,
        };
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let mut auths = BTreeMap::new();
        for (key, a) in raw.auths {
            let mut entry = AuthEntry {
                username: a.username.filter(|s| !s.is_empty()),
                password: a.password.filter(|s| !s.is_empty()),
                identity_token: a.identitytoken,
                registry_token: a.registrytoken,
            };
            if let Some(auth) = a.auth.filter(|s| !s.is_empty()) {
                let decoded = STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        err(format!(
                            "auths[{key:?}].auth is not base64 of user:password"
                        ))
                    })?;
                let decoded = decoded.trim_end_matches('\0');
                match decoded.split_once(':') {
                    Some((u, p)) if !u.is_empty() => {
                        entry.username = Some(u.to_owned());
                        entry.password = Some(p.to_owned());
                    }
                    _ => return Err(err(format!("auths[{key:?}].auth has no user:password"))),
                }
            }
            auths.insert(normalize_key(&key), entry);
        }
        Ok(DockerConfig {
            path,
            auths,
            creds_store: raw.creds_store.filter(|s| !s.is_empty()),
            cred_helpers: raw
                .cred_helpers
                .into_iter()
                .map(|(k, v)| (normalize_key(&k), v))
                .collect(),
            helper_path: None,
        })
    }

    /// Credentials for `repository` on `registry` (see the module docs for the order).
    pub(crate) async fn resolve(
        &self,
        registry: &str,
        repository: &str,
        timeout: Duration,
    ) -> Result<Resolved> {
        let host = normalize_key(registry);
        let keys = [format!("{host}/{repository}"), host.clone()];
        for key in &keys {
            if let Some(helper) = self.cred_helpers.get(key)
                && let Some(r) = self.run_helper(helper, &server_url(key), timeout).await?
            {
                return Ok(r);
            }
        }
        if let Some(store) = &self.creds_store {
            for key in &keys {
                if let Some(r) = self.run_helper(store, &server_url(key), timeout).await? {
                    return Ok(r);
                }
            }
        }
        for key in &keys {
            if let Some(r) = self.auths.get(key).and_then(AuthEntry::to_resolved) {
                return Ok(r);
            }
        }
        Ok(Resolved::Anonymous)
    }

    /// Runs `docker-credential-<name> get` with `server` on stdin. `Ok(None)` for "credentials
    /// not found".
    async fn run_helper(
        &self,
        name: &str,
        server: &str,
        timeout: Duration,
    ) -> Result<Option<Resolved>> {
        let program = format!("docker-credential-{name}");
        let fail = |message: String| Error::CredentialHelper {
            helper: program.clone(),
            message,
        };
        let search = self
            .helper_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let binary = std::env::split_paths(&search)
            .map(|d| d.join(&program))
            .find(|p| p.is_file())
            .ok_or_else(|| fail("not found on PATH".to_owned()))?;
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(p) = &self.helper_path {
            cmd.env("PATH", p);
        }
        let run = async {
            let mut child = cmd
                .spawn()
                .map_err(|e| fail(format!("cannot start: {e}")))?;
            if let Some(mut stdin) = child.stdin.take() {
                // A helper may exit without reading stdin; its exit status tells what happened.
                let _ = stdin.write_all(server.as_bytes()).await;
                drop(stdin);
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| fail(format!("waiting: {e}")))?;
            let (status, stdout, stderr) = (out.status, out.stdout, out.stderr);
            Ok::<_, Error>((status, stdout, stderr))
        };
        let (status, stdout, stderr) = tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| fail(format!("no answer within {} s", timeout.as_secs())))??;
        let out = String::from_utf8_lossy(&stdout);
        if !status.success() {
            if out.contains("credentials not found") {
                return Ok(None);
            }
            let text = if out.trim().is_empty() {
                String::from_utf8_lossy(&stderr).trim().to_owned()
            } else {
                out.trim().to_owned()
            };
            return Err(fail(format!("{status}: {text}")));
        }
        #[derive(Deserialize)]
        struct HelperCreds {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let creds: HelperCreds = serde_json::from_slice(&stdout)
            .map_err(|e| fail(format!("invalid JSON output: {e}")))?;
        if creds.secret.is_empty() {
            return Ok(None);
        }
        if creds.username == "<token>" {
            return Ok(Some(Resolved::IdentityToken(creds.secret)));
        }
        Ok(Some(Resolved::Basic {
            username: creds.username,
            password: creds.secret,
        }))
    }
}

/// `https://ghcr.io/v1/` → `ghcr.io`; Docker Hub aliases → `index.docker.io`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = match k.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (k, ""),
    };
    let host = match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "index.docker.io",
        h => h,
    };
    // Keep repository paths (`host/org/app`), drop API version paths (`/v1/`, `/v2/`).
    if path.is_empty() || path == "v1" || path == "v2" {
        host.to_owned()
    } else {
        format!("{host}/{path}")
    }
}

/// The server URL a helper is asked about: Docker Hub as `https://index.docker.io/v1/`.
fn server_url(key: &str) -> String {
    if key == "index.docker.io" {
        "https://index.docker.io/v1/".to_owned()
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Resolved {
        Resolved::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[tokio::test]
    async fn auths_match_by_normalised_host_and_repository_first() {
        let json = format!(
            r#"{{"auths":{{"https://ghcr.io/v1/":{{"auth":"{}"}},"ghcr.io/org/app":{{"username":"r","password":"s"}},"docker.io":{{"identitytoken":"it"}},"reg.example":{{"registrytoken":"rt"}}}}}}"#,
            STANDARD.encode("u:p:x")
        );
        let c = DockerConfig::from_json(json.as_bytes()).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            c.resolve("ghcr.io", "other", t).await.unwrap(),
            basic("u", "p:x")
        );
        assert_eq!(
            c.resolve("ghcr.io", "org/app", t).await.unwrap(),
            basic("r", "s")
        );
        assert_eq!(
            c.resolve("registry-1.docker.io", "library/x", t)
                .await
                .unwrap(),
            Resolved::IdentityToken("it".into())
        );
        assert_eq!(
            c.resolve("reg.example", "a", t).await.unwrap(),
            Resolved::RegistryToken("rt".into())
        );
        assert_eq!(
            c.resolve("quay.io", "a", t).await.unwrap(),
            Resolved::Anonymous
        );
    }

    #[test]
    fn bad_auth_fields_are_rejected_and_debug_redacts() {
        let bad = br#"{"auths":{"x.io":{"auth":"!!!"}}}"#;
        assert!(matches!(
            DockerConfig::from_json(bad),
            Err(Error::DockerConfig { path: None, .. })
        ));
        let no_user = format!(
            r#"{{"auths":{{"x.io":{{"auth":"{}"}}}}}}"#,
            STANDARD.encode(":p")
        );
        assert!(matches!(
            DockerConfig::from_json(no_user.as_bytes()),
            Err(Error::DockerConfig { path: None, .. })
        ));
        let c =
            DockerConfig::from_json(br#"{"auths":{"x.io":{"username":"u","password":"hunter2"}}}"#)
                .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(DockerConfig::from_json(b"{}").unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_legacy_dockercfg_format_is_the_auths_map_itself() {
        let json = format!(
            r#"{{"https://reg.example:5000":{{"auth":"{}","email":"a@b"}}}}"#,
            STANDARD.encode("alice:pw")
        );
        let c = DockerConfig::from_legacy_json(json.as_bytes()).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            c.resolve("reg.example:5000", "app", t).await.unwrap(),
            basic("alice", "pw")
        );
        assert!(DockerConfig::from_legacy_json(b"[]").is_err());
    }

    #[tokio::test]
    async fn missing_helper_is_a_credential_helper_error() {
        let c = DockerConfig::from_json(br#"{"credHelpers":{"x.io":"nope"}}"#)
            .unwrap()
            .with_helper_path("/nonexistent");
        let err = c
            .resolve("x.io", "a", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.is_auth(), "{err}");
        assert!(err.to_string().contains("docker-credential-nope"), "{err}");
    }
}
