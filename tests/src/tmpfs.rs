//! A small tmpfs mounted on a directory, to make disk faults real: filled up (`ENOSPC`) or
//! remounted read-only (`EROFS`) under a running server. Mounting needs root (CAP_SYS_ADMIN),
//! as the CI runs; [`Tmpfs::mount_as_root`] says when the caller is not root so the test can
//! skip with that message, and panics when root cannot mount.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop (lazily, so a process that still holds a file open does
/// not keep it mounted).
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

/// The name of the file [`Tmpfs::fill`] writes at the root of the tmpfs.
pub const FILLER: &str = "filler";

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`, e.g. `"8m"`) on the existing directory
    /// `dir`.
    ///
    /// # Errors
    /// `Err(reason)` when the process is not root: the caller skips with that reason.
    ///
    /// # Panics
    /// When root cannot mount (the message says why).
    pub fn mount_as_root(dir: &Path, size: &str) -> Result<Self, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .expect("running id -u");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err(format!(
                "skipped: mounting a tmpfs on {} needs root (CAP_SYS_ADMIN), and this test runs \
                 as uid {}; CI runs the suite as root",
                dir.display(),
                String::from_utf8_lossy(&uid.stdout).trim()
            ));
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} failed as root: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes [`FILLER`] until the file system is full, down to the last byte; returns its
    /// path (remove it to free the space).
    ///
    /// # Panics
    /// On a write error other than `ENOSPC`.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join(FILLER);
        let mut file = std::fs::File::create(&path).expect("creating the filler");
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Whatever is left is less than one chunk: take it byte by byte.
        while let Ok(1) = file.write(&[0]) {}
        path
    }

    /// Remounts read-only (`ro`) or read-write again.
    ///
    /// # Panics
    /// When `mount -o remount` fails.
    pub fn remount(&self, read_only: bool) {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let out = Command::new("mount")
            .args(["-o", mode])
            .arg(&self.dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mount -o {mode} {} failed: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
