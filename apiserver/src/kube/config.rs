//! Connection settings of a Kubernetes API client: the current context of a kubeconfig file, or
//! the pod's service account (client-go's `clientcmd` and `rest.InClusterConfig`).
//!
//! Supported kubeconfig fields: `server`, `certificate-authority(-data)`,
//! `insecure-skip-tls-verify`, `client-certificate(-data)` with `client-key(-data)`, `token` and
//! `tokenFile`. Relative paths are relative to the kubeconfig's directory. Exec and auth-provider
//! plugins are not supported (a service account never needs them).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::config::{ClusterSource, SERVICE_ACCOUNT_TOKEN};

/// The directory of the pod's service-account files.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where a client connects and how it authenticates.
#[derive(Clone)]
pub struct ClusterConfig {
    /// Base URL of the API, e.g. `https://10.96.0.1:443`.
    pub server: url::Url,
    /// CA bundle (PEM) that signs the API's serving certificate; `None` uses the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip verification of the serving certificate (`insecure-skip-tls-verify`).
    pub insecure: bool,
    /// Client certificate and key (PEM).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Bearer token.
    pub token: Option<Token>,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("server", &self.server.as_str())
            .field("insecure", &self.insecure)
            .field("identity", &self.identity.is_some())
            .field("token", &self.token)
            .finish()
    }
}

/// A bearer token: fixed, or read from a file on every request (service-account tokens are
/// rotated by the kubelet).
#[derive(Clone)]
pub enum Token {
    /// The token itself.
    Static(String),
    /// A file holding it.
    File(PathBuf),
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Static(_) => f.write_str("Static(<redacted>)"),
            Token::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// A failure to load connection settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The kubeconfig is not valid YAML of the expected shape.
    #[error("parsing kubeconfig {path}")]
    ParseKubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_yaml::Error,
    },
    /// The kubeconfig lacks something (the current context, its cluster or user, a server).
    #[error("kubeconfig {path}: {message}")]
    IncompleteKubeconfig {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The service-account environment is incomplete.
    #[error("in-cluster configuration: {message}")]
    InCluster {
        /// What is missing.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<Named<KubeconfigCluster>>,
    #[serde(default)]
    users: Vec<Named<KubeconfigUser>>,
    #[serde(default)]
    contexts: Vec<Named<KubeconfigContext>>,
    #[serde(default)]
    current_context: String,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeconfigCluster {
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeconfigUser {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct KubeconfigContext {
    cluster: String,
    #[serde(default)]
    user: String,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })
}

impl ClusterConfig {
    /// Loads the settings a [`ClusterSource`] names.
    ///
    /// # Errors
    /// As [`ClusterConfig::from_kubeconfig`] and [`ClusterConfig::from_service_account`].
    pub fn load(source: &ClusterSource) -> Result<Self, Error> {
        match source {
            ClusterSource::Kubeconfig(path) => Self::from_kubeconfig(path),
            ClusterSource::ServiceAccount => Self::from_service_account(),
        }
    }

    /// The current context of a kubeconfig file.
    ///
    /// # Errors
    /// [`Error::ReadFile`] when it or a file it names cannot be read,
    /// [`Error::ParseKubeconfig`] when it is not a kubeconfig, [`Error::IncompleteKubeconfig`]
    /// when the current context, its cluster or its server is missing.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, Error> {
        let text = read(path)?;
        let kubeconfig: Kubeconfig =
            serde_yaml::from_slice(&text).map_err(|source| Error::ParseKubeconfig {
                path: path.to_owned(),
                source,
            })?;
        let incomplete = |message: String| Error::IncompleteKubeconfig {
            path: path.to_owned(),
            message,
        };
        let context = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == kubeconfig.current_context)
            .or(kubeconfig.contexts.first())
            .ok_or_else(|| incomplete("no context".into()))?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.value.cluster)
            .ok_or_else(|| incomplete(format!("no cluster {:?}", context.value.cluster)))?;
        let default_user = Named {
            name: String::new(),
            value: KubeconfigUser::default(),
        };
        let user = kubeconfig
            .users
            .iter()
            .find(|u| u.name == context.value.user)
            .unwrap_or(&default_user);
        let dir = path.parent().unwrap_or(Path::new("."));
        let data_or_file = |data: &Option<String>, file: &Option<PathBuf>| {
            if let Some(data) = data {
                return base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map(Some)
                    .map_err(|e| incomplete(format!("invalid base64: {e}")));
            }
            file.as_ref().map(|f| read(&dir.join(f))).transpose()
        };
        let server = url::Url::parse(&cluster.value.server)
            .map_err(|e| incomplete(format!("server {:?}: {e}", cluster.value.server)))?;
        let cert = data_or_file(
            &user.value.client_certificate_data,
            &user.value.client_certificate,
        )?;
        let key = data_or_file(&user.value.client_key_data, &user.value.client_key)?;
        let token = match (&user.value.token, &user.value.token_file) {
            (Some(token), _) => Some(Token::Static(token.clone())),
            (None, Some(file)) => Some(Token::File(dir.join(file))),
            (None, None) => None,
        };
        Ok(Self {
            server,
            ca_pem: data_or_file(
                &cluster.value.certificate_authority_data,
                &cluster.value.certificate_authority,
            )?,
            insecure: cluster.value.insecure_skip_tls_verify,
            identity: cert.zip(key),
            token,
        })
    }

    /// The pod's service account: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
    /// the mounted CA and token.
    ///
    /// # Errors
    /// [`Error::InCluster`] when the variables are unset, [`Error::ReadFile`] when the CA
    /// cannot be read.
    pub fn from_service_account() -> Result<Self, Error> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| Error::InCluster {
                message: format!("{name} is not set"),
            })
        };
        let host = var("KUBERNETES_SERVICE_HOST")?;
        let port = var("KUBERNETES_SERVICE_PORT")?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let server =
            url::Url::parse(&format!("https://{host}:{port}")).map_err(|e| Error::InCluster {
                message: format!("service address: {e}"),
            })?;
        Ok(Self {
            server,
            ca_pem: Some(read(&Path::new(SERVICE_ACCOUNT_DIR).join("ca.crt"))?),
            insecure: false,
            identity: None,
            token: Some(Token::File(PathBuf::from(SERVICE_ACCOUNT_TOKEN))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_context_chooses_cluster_and_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), b"CA").unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: one\n  cluster:\n    server: https://one:6443\n- name: two\n  cluster:\n    server: https://two:6443\n    certificate-authority: ca.pem\ncontexts:\n- name: a\n  context: {cluster: one, user: u1}\n- name: b\n  context: {cluster: two, user: u2}\nusers:\n- name: u1\n  user: {token: t1}\n- name: u2\n  user: {tokenFile: token}\n",
        )
        .unwrap();
        let config = ClusterConfig::from_kubeconfig(&path).unwrap();
        assert_eq!(config.server.as_str(), "https://two:6443/");
        assert_eq!(config.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert!(matches!(config.token, Some(Token::File(p)) if p == dir.path().join("token")));
        assert!(
            !format!(
                "{:?}",
                ClusterConfig {
                    token: Some(Token::Static("secret".into())),
                    ..config
                }
            )
            .contains("secret")
        );
    }
}
