//! Finding test tools (installed by `scripts/setup.sh`) and free loopback ports.

use std::env;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

/// The Python venv `scripts/setup.sh` creates: `$SOURCE_APISERVER_VENV`, else
/// `/root/.cache/source-apiserver/venv` (which is `$HOME/.cache/source-apiserver/venv` for root).
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = env::var_os("SOURCE_APISERVER_VENV") {
        return PathBuf::from(dir);
    }
    match env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".cache/source-apiserver/venv"),
        None => PathBuf::from("/root/.cache/source-apiserver/venv"),
    }
}

/// Finds `tool` on `PATH`, then in the venv's `bin/`, then in `/usr/sbin` and `/sbin`.
///
/// # Panics
/// With `missing <tool>: run scripts/setup.sh` when it is nowhere, so a test that needs a
/// missing tool fails loudly instead of skipping.
pub fn require(tool: &str) -> PathBuf {
    find(tool).unwrap_or_else(|| panic!("missing {tool}: run scripts/setup.sh"))
}

/// Like [`require`] but returns `None` instead of panicking.
pub fn find(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(venv_dir().join("bin"));
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.push(PathBuf::from("/sbin"));
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The venv's `python` (with `oras`, `cryptography`, ...).
///
/// # Panics
/// With `missing venv python: run scripts/setup.sh` when the venv is absent.
pub fn venv_python() -> PathBuf {
    let python = venv_dir().join("bin/python");
    if !is_executable(&python) {
        panic!(
            "missing venv python at {}: run scripts/setup.sh",
            python.display()
        );
    }
    python
}

/// A loopback TCP port that was free a moment ago (bind to port 0, read it, release it).
///
/// # Panics
/// When no loopback port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_names_setup_script_when_missing() {
        let err = std::panic::catch_unwind(|| require("definitely-not-a-tool-xyz")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert_eq!(
            msg,
            "missing definitely-not-a-tool-xyz: run scripts/setup.sh"
        );
    }

    #[test]
    fn finds_sh() {
        assert!(find("sh").is_some());
        assert_ne!(free_port(), 0);
    }
}
