//! What the in-cluster authenticators trust: the client CA, and the front proxy's CA, allowed
//! names and header names, from flags or the ConfigMap `kube-system/extension-apiserver-
//! authentication` that kube-apiserver publishes (k8s.io/apiserver's
//! `DynamicRequestHeaderController` and `ConfigMapCAController`).
//!
//! A flag wins over the ConfigMap for its setting: `--client-ca-file` over `client-ca-file`, and
//! `--requestheader-client-ca-file` over every `requestheader-*` key (the header flags then
//! apply). The ConfigMap's lists are JSON-encoded strings; a missing list takes the flag's
//! value (the defaults `X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-`). [`watch`] keeps
//! the snapshot current: a re-list, then a watch, again after every end or error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::HeaderName;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::ConfigMap;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::auth::x509::CaBundle;
use crate::config::RequestHeaderFlags;
use crate::kube::Client;

/// The ConfigMap's namespace.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
/// The ConfigMap's name.
pub const CONFIG_MAP_NAME: &str = "extension-apiserver-authentication";

/// How long the reload waits after a failed list or a broken watch.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// The front proxy's identity and headers.
#[derive(Debug)]
pub struct RequestHeaderConfig {
    /// The CA that signs the front proxy's client certificate.
    pub ca: Arc<CaBundle>,
    /// Common names the certificate may have; empty allows any.
    pub allowed_names: Vec<String>,
    /// User-name headers, first non-empty wins.
    pub username_headers: Vec<HeaderName>,
    /// Group headers, every value counts.
    pub group_headers: Vec<HeaderName>,
    /// Uid headers, first non-empty wins.
    pub uid_headers: Vec<HeaderName>,
    /// Prefixes of extra-attribute headers, lower-cased.
    pub extra_headers_prefixes: Vec<String>,
}

/// One consistent view of the trust settings.
#[derive(Debug, Default)]
pub struct TrustSnapshot {
    /// CA of direct client certificates; `None` accepts none.
    pub client_ca: Option<Arc<CaBundle>>,
    /// Front-proxy settings; `None` accepts no front proxy.
    pub request_header: Option<RequestHeaderConfig>,
}

/// A failure to build the trust settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CA file named by a flag could not be read.
    #[error("reading {flag} {path}")]
    ReadCaFile {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CA bundle (file or ConfigMap key) is not valid PEM.
    #[error("parsing the CA bundle {origin}")]
    ParseCa {
        /// The flag or ConfigMap key.
        origin: String,
        /// The cause.
        source: openssl::error::ErrorStack,
    },
    /// A ConfigMap list value is not a JSON array of strings.
    #[error("parsing ConfigMap key {key}")]
    ParseList {
        /// The key.
        key: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A header name is invalid.
    #[error("invalid header name {name:?} in {origin}")]
    HeaderName {
        /// The name.
        name: String,
        /// The flag or ConfigMap key.
        origin: String,
    },
    /// The ConfigMap could not be read.
    #[error(
        "reading ConfigMap {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} (usually fixed by 'kubectl create rolebinding -n kube-system ROLEBINDING_NAME --role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA')"
    )]
    ReadConfigMap(#[source] crate::kube::Error),
}

/// The current trust settings, shared by the authenticators and replaced on reload.
#[derive(Debug)]
pub struct AuthenticationTrust {
    flags: RequestHeaderFlags,
    client_ca_flag: Option<Arc<CaBundle>>,
    request_header_ca_flag: Option<Arc<CaBundle>>,
    current: RwLock<Arc<TrustSnapshot>>,
}

fn read_bundle(flag: &'static str, path: &Path) -> Result<Arc<CaBundle>, Error> {
    let pem = std::fs::read(path).map_err(|source| Error::ReadCaFile {
        flag,
        path: path.to_owned(),
        source,
    })?;
    parse_bundle(&pem, flag)
}

fn parse_bundle(pem: &[u8], origin: &str) -> Result<Arc<CaBundle>, Error> {
    CaBundle::from_pem(pem)
        .map(Arc::new)
        .map_err(|source| Error::ParseCa {
            origin: origin.to_string(),
            source,
        })
}

fn header_names(names: &[String], origin: &str) -> Result<Vec<HeaderName>, Error> {
    names
        .iter()
        .map(|name| {
            HeaderName::try_from(name.trim()).map_err(|_| Error::HeaderName {
                name: name.clone(),
                origin: origin.to_string(),
            })
        })
        .collect()
}

impl AuthenticationTrust {
    /// Reads the CA files the flags name; the ConfigMap is applied later
    /// ([`AuthenticationTrust::apply`]).
    ///
    /// # Errors
    /// [`Error::ReadCaFile`], [`Error::ParseCa`] or [`Error::HeaderName`] for a bad flag.
    pub fn new(client_ca_file: Option<&Path>, flags: &RequestHeaderFlags) -> Result<Self, Error> {
        let client_ca_flag = client_ca_file
            .map(|p| read_bundle("--client-ca-file", p))
            .transpose()?;
        let request_header_ca_flag = flags
            .client_ca_file
            .as_deref()
            .map(|p| read_bundle("--requestheader-client-ca-file", p))
            .transpose()?;
        let trust = Self {
            flags: flags.clone(),
            client_ca_flag,
            request_header_ca_flag,
            current: RwLock::new(Arc::default()),
        };
        trust.apply(None)?;
        Ok(trust)
    }

    /// The settings now.
    pub fn current(&self) -> Arc<TrustSnapshot> {
        self.current.read().clone()
    }

    /// Replaces the settings with the flags' merged with `config_map` (`None`: it does not
    /// exist or is not read).
    ///
    /// # Errors
    /// [`Error::ParseCa`], [`Error::ParseList`] or [`Error::HeaderName`] for a bad value; the
    /// settings then stay as they were.
    pub fn apply(&self, config_map: Option<&ConfigMap>) -> Result<(), Error> {
        let data = config_map.and_then(|c| c.data.as_ref());
        let key = |name: &str| data.and_then(|d| d.get(name)).filter(|v| !v.is_empty());
        let client_ca = match (&self.client_ca_flag, key("client-ca-file")) {
            (Some(flag), _) => Some(flag.clone()),
            (None, Some(pem)) => Some(parse_bundle(pem.as_bytes(), "client-ca-file")?),
            (None, None) => None,
        };
        let f = &self.flags;
        let request_header = match (
            &self.request_header_ca_flag,
            key("requestheader-client-ca-file"),
        ) {
            (Some(ca), _) => Some(RequestHeaderConfig {
                ca: ca.clone(),
                allowed_names: f.allowed_names.clone(),
                username_headers: header_names(
                    &f.username_headers,
                    "--requestheader-username-headers",
                )?,
                group_headers: header_names(&f.group_headers, "--requestheader-group-headers")?,
                uid_headers: header_names(&f.uid_headers, "--requestheader-uid-headers")?,
                extra_headers_prefixes: lower(&f.extra_headers_prefix),
            }),
            (None, Some(pem)) => {
                let list = |name: &str, default: &[String]| -> Result<Vec<String>, Error> {
                    match key(name) {
                        Some(json) => {
                            serde_json::from_str(json).map_err(|source| Error::ParseList {
                                key: name.to_string(),
                                source,
                            })
                        }
                        None => Ok(default.to_vec()),
                    }
                };
                Some(RequestHeaderConfig {
                    ca: parse_bundle(pem.as_bytes(), "requestheader-client-ca-file")?,
                    allowed_names: list("requestheader-allowed-names", &[])?,
                    username_headers: header_names(
                        &list("requestheader-username-headers", &f.username_headers)?,
                        "requestheader-username-headers",
                    )?,
                    group_headers: header_names(
                        &list("requestheader-group-headers", &f.group_headers)?,
                        "requestheader-group-headers",
                    )?,
                    uid_headers: header_names(
                        &list("requestheader-uid-headers", &f.uid_headers)?,
                        "requestheader-uid-headers",
                    )?,
                    extra_headers_prefixes: lower(&list(
                        "requestheader-extra-headers-prefix",
                        &f.extra_headers_prefix,
                    )?),
                })
            }
            (None, None) => None,
        };
        *self.current.write() = Arc::new(TrustSnapshot {
            client_ca,
            request_header,
        });
        Ok(())
    }

    /// The front-proxy header names to remove from every request: the flags' and the current
    /// ConfigMap's, so a header is stripped whichever configuration names it.
    pub fn header_names(&self) -> (Vec<HeaderName>, Vec<String>) {
        let mut names: Vec<HeaderName> = header_names(&self.flags.username_headers, "")
            .unwrap_or_default()
            .into_iter()
            .chain(header_names(&self.flags.group_headers, "").unwrap_or_default())
            .chain(header_names(&self.flags.uid_headers, "").unwrap_or_default())
            .collect();
        let mut prefixes = lower(&self.flags.extra_headers_prefix);
        if let Some(rh) = &self.current().request_header {
            names.extend(rh.username_headers.iter().cloned());
            names.extend(rh.group_headers.iter().cloned());
            names.extend(rh.uid_headers.iter().cloned());
            prefixes.extend(rh.extra_headers_prefixes.iter().cloned());
        }
        (names, prefixes)
    }

    /// Reads the ConfigMap once and applies it (a missing ConfigMap clears its settings).
    ///
    /// # Errors
    /// [`Error::ReadConfigMap`] when the API refuses or fails, or a parse error of
    /// [`AuthenticationTrust::apply`]. Returns the list's resourceVersion to watch from.
    pub async fn load(&self, client: &Client) -> Result<String, Error> {
        let list: List<ConfigMap> = client
            .get(&format!(
                "{}?fieldSelector=metadata.name%3D{CONFIG_MAP_NAME}",
                path()
            ))
            .await
            .map_err(Error::ReadConfigMap)?;
        self.apply(list.items.first())?;
        Ok(list.metadata.resource_version.unwrap_or_default())
    }
}

fn lower(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

fn path() -> String {
    format!("/api/v1/namespaces/{CONFIG_MAP_NAMESPACE}/configmaps")
}

/// Keeps `trust` current until `shutdown`: watches the ConfigMap from `resource_version`, and
/// re-lists after every end of the watch or error.
pub async fn watch(
    trust: Arc<AuthenticationTrust>,
    client: Client,
    mut resource_version: String,
    shutdown: CancellationToken,
) {
    loop {
        let watch = watch_once(&trust, &client, &resource_version);
        let ended = tokio::select! {
            () = shutdown.cancelled() => return,
            ended = watch => ended,
        };
        if let Err(error) = ended {
            tracing::warn!(%error, "watching the extension-apiserver-authentication ConfigMap");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY_DELAY) => {}
            }
        }
        match trust.load(&client).await {
            Ok(version) => resource_version = version,
            Err(error) => tracing::warn!(%error, "re-reading the ConfigMap"),
        }
    }
}

/// One watch; `Ok` when the server ended it normally.
async fn watch_once(
    trust: &AuthenticationTrust,
    client: &Client,
    resource_version: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let query = format!(
        "{}?fieldSelector=metadata.name%3D{CONFIG_MAP_NAME}&watch=true&resourceVersion={resource_version}&timeoutSeconds=300",
        path()
    );
    let mut events = std::pin::pin!(client.watch::<serde_json::Value>(&query).await?);
    while let Some(event) = events.next().await {
        let event = event?;
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" => {
                let config_map: ConfigMap = serde_json::from_value(event.object)?;
                trust.apply(Some(&config_map))?;
                tracing::info!(
                    resource_version = config_map
                        .metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or(""),
                    "reloaded the extension-apiserver-authentication ConfigMap"
                );
            }
            "DELETED" => trust.apply(None)?,
            "ERROR" => return Err(format!("watch error: {}", event.object).into()),
            _ => {}
        }
    }
    Ok(())
}
