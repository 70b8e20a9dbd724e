//! An exclusive lock per network namespace, for plugins that change one
//! namespace from parallel invocations.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{CniError, CniResult, Code};

/// Where the lock files live.
pub const LOCK_DIR: &str = "/run/cni-rs/locks";

/// Held until dropped.
#[derive(Debug)]
pub struct NsLock {
    _file: Flock<File>,
    path: PathBuf,
}

/// FNV-1a, 64 bit: stable across builds and releases, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The lock file name for `plugin` and `netns`. The path is resolved when it
/// exists, so `/var/run/netns/x` and `/run/netns/x` share a lock.
pub fn lock_name(plugin: &str, netns: &Path) -> String {
    let resolved = std::fs::canonicalize(netns).unwrap_or_else(|_| netns.to_path_buf());
    let plugin: String = plugin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{plugin}-{:016x}.lock", fnv1a(resolved.as_os_str().as_bytes()))
}

impl NsLock {
    /// Locks `/run/cni-rs/locks/<plugin>-<key of netns path>` with flock,
    /// blocking. Never touches the netns path itself.
    pub fn acquire(plugin: &str, netns: &Path) -> CniResult<NsLock> {
        Self::acquire_in(Path::new(LOCK_DIR), plugin, netns)
    }

    /// [`NsLock::acquire`] with another lock directory (created 0700).
    pub fn acquire_in(dir: &Path, plugin: &str, netns: &Path) -> CniResult<NsLock> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                CniError::new(
                    Code::Io,
                    format!(
                        "failed to create lock directory {}: {}",
                        dir.display(),
                        crate::error::io_text(&e)
                    ),
                )
            })?;
        let path = dir.join(lock_name(plugin, netns));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                CniError::new(
                    Code::Io,
                    format!(
                        "failed to open lock file {}: {}",
                        path.display(),
                        crate::error::io_text(&e)
                    ),
                )
            })?;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(NsLock { _file: lock, path }),
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => {
                    return Err(CniError::new(
                        Code::from_errno(e as i32),
                        format!(
                            "failed to lock {}: {}",
                            path.display(),
                            crate::error::errno_text(e as i32)
                        ),
                    ))
                }
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
