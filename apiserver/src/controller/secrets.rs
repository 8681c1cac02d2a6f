//! Standalone mode's Secrets: the Kubernetes `Secret` manifests (YAML or JSON, several
//! documents a file allowed, as `kubectl create secret … --dry-run=client -o yaml` writes them)
//! in `--secrets-dir`, re-read whenever a file changes (by modification time and size), so that
//! fixing a Secret file takes effect at the next reconcile without a restart.
//!
//! A Secret without `metadata.namespace` belongs to `default`. `data` values are base64,
//! `stringData` values plain text and win over `data`, as the API server merges them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use parking_lot::Mutex;
use serde::Deserialize as _;

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

type Parsed = (SystemTime, u64, Vec<Secret>);

/// The Secrets of `--secrets-dir`, cached per file and re-parsed when a file changes.
#[derive(Debug)]
pub struct SecretStore {
    dir: PathBuf,
    cache: Mutex<HashMap<PathBuf, Parsed>>,
}

impl SecretStore {
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

    /// Finds `namespace/name`. Blocking (file IO): call it from `spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::Read`] when the directory or a file cannot be read, [`Error::Parse`] for a file
    /// that is not YAML/JSON. Files that hold other kinds are ignored.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if matches!(ext, "yaml" | "yml" | "json") {
                files.push(path);
            }
        }
        files.sort();
        let mut found = None;
        for path in files {
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            let cached = {
                let cache = self.cache.lock();
                cache
                    .get(&path)
                    .filter(|(t, l, _)| (*t, *l) == stamp)
                    .map(|(_, _, s)| s.clone())
            };
            let secrets = match cached {
                Some(s) => s,
                None => {
                    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?;
                    let parsed = parse(&text).map_err(|message| Error::Parse {
                        path: path.clone(),
                        message,
                    })?;
                    self.cache
                        .lock()
                        .insert(path.clone(), (stamp.0, stamp.1, parsed.clone()));
                    parsed
                }
            };
            if let Some(s) = secrets
                .into_iter()
                .find(|s| s.namespace == namespace && s.name == name)
            {
                found = Some(s);
            }
        }
        Ok(found)
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

    #[test]
    fn a_missing_directory_has_no_secrets() {
        let store = SecretStore::new("/nonexistent/secrets");
        assert!(store.get("default", "a").unwrap().is_none());
    }
}
