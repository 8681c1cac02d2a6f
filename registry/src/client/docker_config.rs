//! Docker config files (`~/.docker/config.json`, or a `kubernetes.io/dockerconfigjson` Secret's
//! `.dockerconfigjson`) and docker credential helpers.

use std::fmt;
use std::path::Path;

use super::{Error, Result};

/// A parsed docker config: `auths` (with `auth` = base64 `user:pass`, or `username`/`password`,
/// or `identitytoken`), `credsStore` and `credHelpers`. `Debug` redacts secrets.
#[derive(Clone, Default)]
pub struct DockerConfig {
    _private: (),
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DockerConfig")
    }
}

impl DockerConfig {
    /// Loads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. A missing file gives
    /// an empty config (anonymous everywhere).
    ///
    /// # Errors
    /// [`Error::DockerConfig`] when the file exists but cannot be read or parsed.
    pub fn load_default() -> Result<Self> {
        unimplemented!("load_default")
    }

    /// Parses config JSON.
    ///
    /// # Errors
    /// [`Error::DockerConfig`] with `path: None` for invalid JSON or a bad `auth` field.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let _ = bytes;
        Err(Error::DockerConfig {
            path: None,
            message: "not implemented yet".into(),
        })
    }

    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`Error::DockerConfig`] when it cannot be read or parsed.
    pub fn from_path(path: &Path) -> Result<Self> {
        let _ = path;
        unimplemented!("from_path")
    }
}
