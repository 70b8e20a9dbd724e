//! Network namespaces: open, verify, and a scoped switch that always returns.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::CniResult;

/// An open network namespace (verified to be nsfs).
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    path: PathBuf,
}

impl NetNs {
    /// Opens `path` read-only without creating anything there; not a
    /// namespace or not there: code 4 naming the path.
    pub fn open(path: &Path) -> CniResult<NetNs> {
        let _ = path;
        todo!("cni-core helper")
    }

    /// The calling thread's namespace.
    pub fn current() -> CniResult<NetNs> {
        todo!("cni-core helper")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` inside this namespace and switches back; if switching back
    /// fails the process aborts rather than go on in the wrong namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> CniResult<T> {
        let _ = f;
        todo!("cni-core helper")
    }
}
