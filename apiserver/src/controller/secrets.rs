//! Where the reconcilers' Secrets come from ([`SecretStore`]):
//!
//! - **standalone**: the Kubernetes `Secret` manifests of `--secrets-dir` ([`SecretFiles`]);
//! - **in-cluster**: the cluster's Secrets and ServiceAccounts, from list+watch caches of the
//!   Kubernetes API (`kube::secrets`, `kube::service_accounts`), as Flux's source-controller
//!   reads them through controller-runtime's cached client. A lookup before the caches' first
//!   list waits for it (at most [`SYNC_WAIT`]), as controller-runtime starts reconcilers only
//!   once its caches have synced.
//!
//! Standalone files (YAML or JSON, several documents a file allowed, as `kubectl create secret
//! … --dry-run=client -o yaml` writes them) are re-parsed whenever a file's content changes (by
//! its sha256, so a same-size rewrite within the file system's timestamp granularity counts), so
//! that fixing a Secret file takes effect at the next reconcile without a restart. A malformed
//! file is logged and skipped; it never hides the Secrets of the other files.
//!
//! A Secret without `metadata.namespace` belongs to `default`. `data` values are base64,
//! `stringData` values plain text and win over `data`, as the API server merges them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use parking_lot::Mutex;
use serde::Deserialize as _;
use sha2::{Digest as _, Sha256};

/// A Secret's type and decoded data.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// `metadata.namespace` (`default` when unset).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `type`, e.g. `kubernetes.io/dockerconfigjson`; `Opaque` when unset.
    pub type_: String,
    /// Decoded `data` merged with `stringData`.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("type", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why Secrets could not be read. Messages never include Secret data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// In-cluster: the cache of `resource` (`secrets`, `serviceaccounts`) has not completed its
    /// first list within [`SYNC_WAIT`] (the API is unreachable or the RBAC is missing).
    #[error("the {resource} cache has not synced with the Kubernetes API yet")]
    NotSynced {
        /// The resource, e.g. `secrets`.
        resource: &'static str,
    },
    /// Standalone: ServiceAccounts exist only in a cluster.
    #[error("spec.serviceAccountName needs the in-cluster mode")]
    ServiceAccountsNeedCluster,
    /// Listing `--secrets-dir` or reading a file failed.
    #[error("reading {path}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid YAML/JSON or a Secret in it is malformed.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (no data values).
        message: String,
    },
}

/// One file as last parsed: the sha256 of its content and what it held (or why it did not
/// parse).
#[derive(Debug)]
struct Parsed {
    sha256: [u8; 32],
    secrets: Result<Vec<Secret>, String>,
}

/// How long an in-cluster lookup waits for the caches' first list.
pub const SYNC_WAIT: Duration = Duration::from_secs(30);

/// The Secrets (and ServiceAccounts) the reconcilers read: files in standalone mode, the
/// cluster's watch caches in-cluster. Lookups are blocking: call them from `spawn_blocking`.
#[derive(Debug)]
pub enum SecretStore {
    /// Standalone: `--secrets-dir`.
    Files(SecretFiles),
    /// In-cluster: the list+watch caches.
    Cluster {
        /// The cluster's Secrets.
        secrets: Arc<crate::kube::secrets::SecretCache>,
        /// The cluster's ServiceAccounts.
        service_accounts: Arc<crate::kube::service_accounts::ServiceAccountCache>,
    },
}

impl SecretStore {
    /// Standalone: the Secrets of the manifests in `dir` ([`SecretFiles::new`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::Files(SecretFiles::new(dir))
    }

    /// Whether lookups go to the cluster (so `spec.serviceAccountName` can be honoured).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Where a missing Secret was looked for, for the not-found message: `standalone mode reads
    /// Secrets from <dir>`, or nothing in-cluster (kube's own message says it all).
    pub fn not_found_hint(&self) -> Option<String> {
        match self {
            Self::Files(files) => Some(format!(
                "standalone mode reads Secrets from {}",
                files.dir().display()
            )),
            Self::Cluster { .. } => None,
        }
    }

    /// Finds the Secret `namespace/name`. Blocking.
    ///
    /// # Errors
    /// Standalone: as [`SecretFiles::get`]. In-cluster: [`Error::NotSynced`] when the Secrets
    /// cache has not listed within [`SYNC_WAIT`].
    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, Error> {
        match self {
            Self::Files(files) => files.get(namespace, name),
            Self::Cluster { secrets, .. } => {
                if !secrets.wait_synced(SYNC_WAIT) {
                    return Err(Error::NotSynced {
                        resource: "secrets",
                    });
                }
                Ok(secrets.get(namespace, name).map(|s| from_cluster(&s)))
            }
        }
    }

    /// The `imagePullSecrets` names of the ServiceAccount `namespace/name`, or `None` when it
    /// does not exist. Blocking.
    ///
    /// # Errors
    /// [`Error::ServiceAccountsNeedCluster`] in standalone mode; [`Error::NotSynced`] when the
    /// ServiceAccounts cache has not listed within [`SYNC_WAIT`].
    pub fn image_pull_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        let Self::Cluster {
            service_accounts, ..
        } = self
        else {
            return Err(Error::ServiceAccountsNeedCluster);
        };
        if !service_accounts.wait_synced(SYNC_WAIT) {
            return Err(Error::NotSynced {
                resource: "serviceaccounts",
            });
        }
        Ok(service_accounts
            .get(namespace, name)
            .map(|a| crate::kube::service_accounts::image_pull_secrets(&a)))
    }
}

/// A cluster Secret as the reconcilers read it: `data` (already decoded by the API's JSON) merged
/// with `stringData` (which the API server folds into `data`, so normally empty).
fn from_cluster(secret: &k8s_openapi::api::core::v1::Secret) -> Secret {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.as_bytes().to_vec());
    }
    Secret {
        namespace: secret.metadata.namespace.clone().unwrap_or_default(),
        name: secret.metadata.name.clone().unwrap_or_default(),
        type_: secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
        data,
    }
}

/// The Secrets of `--secrets-dir`, cached per file and re-parsed when a file's content changes.
#[derive(Debug)]
pub struct SecretFiles {
    dir: PathBuf,
    cache: Mutex<HashMap<PathBuf, Parsed>>,
}

impl SecretFiles {
    /// A store over `dir`. A missing directory means "no Secrets". Nothing is read here.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finds `namespace/name`; when several files define it, the last file in name order wins.
    /// Blocking (file IO): call it from `spawn_blocking`.
    ///
    /// Every file is read at each lookup and re-parsed only when the sha256 of its content
    /// changed, so a rewrite is noticed even when it keeps the size and lands within the
    /// file system's timestamp granularity. A file that cannot be read or parsed is logged
    /// (once per content) and skipped: the Secrets of the other files stay available.
    ///
    /// # Errors
    /// [`Error::Read`] when the directory cannot be listed. When `namespace/name` is in no
    /// readable file but some file is malformed, that file's [`Error::Parse`] (or
    /// [`Error::Read`]), since the Secret may be the one it fails to define. Files that hold
    /// other kinds are ignored.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, Error> {
        let files = self.files()?;
        let mut found = None;
        let mut broken = None;
        let mut cache = self.cache.lock();
        cache.retain(|path, _| files.contains(path));
        for path in files {
            let content = match std::fs::read(&path) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    tracing::warn!(path = %path.display(), error = %source, "skipping an unreadable Secret file");
                    broken.get_or_insert(Error::Read { path, source });
                    continue;
                }
            };
            let sha256: [u8; 32] = Sha256::digest(&content).into();
            if cache.get(&path).is_none_or(|p| p.sha256 != sha256) {
                let secrets = std::str::from_utf8(&content)
                    .map_err(|_| "not UTF-8 text".to_owned())
                    .and_then(parse);
                if let Err(message) = &secrets {
                    tracing::warn!(path = %path.display(), %message, "skipping a malformed Secret manifest");
                }
                cache.insert(path.clone(), Parsed { sha256, secrets });
            }
            let parsed = &cache[&path];
            match &parsed.secrets {
                Ok(secrets) => {
                    if let Some(s) = secrets
                        .iter()
                        .find(|s| s.namespace == namespace && s.name == name)
                    {
                        found = Some(s.clone());
                    }
                }
                Err(message) => {
                    broken.get_or_insert(Error::Parse {
                        path,
                        message: message.clone(),
                    });
                }
            }
        }
        match (found, broken) {
            (Some(secret), _) => Ok(Some(secret)),
            (None, Some(error)) => Err(error),
            (None, None) => Ok(None),
        }
    }

    /// The `.yaml`, `.yml` and `.json` files of the directory, sorted; none when it is missing.
    fn files(&self) -> Result<Vec<PathBuf>, Error> {
        let read_error = |source| Error::Read {
            path: self.dir.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(read_error(source)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(read_error)?.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if matches!(ext, "yaml" | "yml" | "json") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

/// Parses every `kind: Secret` document of a YAML or JSON text (lists `kind: List` too).
fn parse(text: &str) -> Result<Vec<Secret>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc).map_err(|e| e.to_string())?;
        collect(&value, &mut out)?;
    }
    Ok(out)
}

fn collect(value: &serde_json::Value, out: &mut Vec<Secret>) -> Result<(), String> {
    match value["kind"].as_str() {
        Some("List") | Some("SecretList") => {
            for item in value["items"].as_array().into_iter().flatten() {
                collect(item, out)?;
            }
        }
        Some("Secret") => {
            let name = value["metadata"]["name"]
                .as_str()
                .ok_or("a Secret without metadata.name")?
                .to_owned();
            let namespace = value["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            let mut data = BTreeMap::new();
            if let Some(map) = value["data"].as_object() {
                for (k, v) in map {
                    let text = v.as_str().unwrap_or("");
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .map_err(|_| {
                            format!("Secret {namespace}/{name}: data.{k} is not valid base64")
                        })?;
                    data.insert(k.clone(), bytes);
                }
            }
            if let Some(map) = value["stringData"].as_object() {
                for (k, v) in map {
                    data.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
                }
            }
            out.push(Secret {
                namespace,
                name,
                type_: value["type"].as_str().unwrap_or("Opaque").to_owned(),
                data,
            });
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_and_reread_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: e30=\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n  namespace: other\nstringData:\n  address: http://proxy\n",
        )
        .unwrap();
        let store = SecretStore::new(dir.path());
        let a = store.get("default", "a").unwrap().unwrap();
        assert_eq!(a.type_, "kubernetes.io/dockerconfigjson");
        assert_eq!(a.data[".dockerconfigjson"], b"{}");
        let b = store.get("other", "b").unwrap().unwrap();
        assert_eq!(b.data["address"], b"http://proxy");
        assert!(store.get("default", "b").unwrap().is_none());
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  x: changed-and-longer\n",
        )
        .unwrap();
        let a = store.get("default", "a").unwrap().unwrap();
        assert_eq!(a.data["x"], b"changed-and-longer");
        assert!(!format!("{a:?}").contains("changed"), "Debug shows no data");
    }

    fn opaque(name: &str, value: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  v: {value}\n"
        )
    }

    #[test]
    fn a_same_size_rewrite_with_the_same_modification_time_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds.yaml");
        std::fs::write(&file, opaque("a", "one")).unwrap();
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        let store = SecretStore::new(dir.path());
        assert_eq!(
            store.get("default", "a").unwrap().unwrap().data["v"],
            b"one"
        );
        // Same size, same modification time: only the content tells them apart.
        std::fs::write(&file, opaque("a", "two")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        assert_eq!(
            store.get("default", "a").unwrap().unwrap().data["v"],
            b"two"
        );
    }

    #[test]
    fn a_malformed_manifest_is_skipped_and_named_only_for_secrets_found_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), opaque("a", "one")).unwrap();
        std::fs::write(
            dir.path().join("m.yaml"),
            "kind: Secret\nmetadata: [unclosed\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("n.yaml"),
            "kind: Secret\nmetadata:\n  name: n\ndata:\n  k: '%%%'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("z.yaml"), opaque("z", "last")).unwrap();
        let store = SecretStore::new(dir.path());
        assert_eq!(
            store.get("default", "a").unwrap().unwrap().data["v"],
            b"one"
        );
        assert_eq!(
            store.get("default", "z").unwrap().unwrap().data["v"],
            b"last"
        );
        match store.get("default", "missing") {
            Err(Error::Parse { path, message }) => {
                assert_eq!(path, dir.path().join("m.yaml"));
                assert!(!message.is_empty());
            }
            other => panic!("the malformed file is named: {other:?}"),
        }
        std::fs::remove_file(dir.path().join("m.yaml")).unwrap();
        match store.get("default", "missing") {
            Err(Error::Parse { path, message }) => {
                assert_eq!(path, dir.path().join("n.yaml"));
                assert_eq!(message, "Secret default/n: data.k is not valid base64");
            }
            other => panic!("the file with bad base64 is named: {other:?}"),
        }
        std::fs::remove_file(dir.path().join("n.yaml")).unwrap();
        assert!(store.get("default", "missing").unwrap().is_none());
    }

    #[test]
    fn a_missing_directory_has_no_secrets() {
        let store = SecretStore::new("/nonexistent/secrets");
        assert!(store.get("default", "a").unwrap().is_none());
    }
}
