//! Network namespaces: open, verify, and a scoped switch that always returns.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use cni_spec::error::{errno_text, io_text};
use cni_spec::{CniError, CniResult, Code};

/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`. `libc::Ioctl` is the
/// request type of the C library built against (glibc: unsigned long, musl: int).
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

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
        match Self::open_opt(path)? {
            Some(ns) => Ok(ns),
            None => Err(CniError::env(format!(
                "network namespace {} does not exist",
                path.display()
            ))),
        }
    }

    /// Like [`NetNs::open`], but a path that does not exist is `Ok(None)`.
    pub fn open_opt(path: &Path) -> CniResult<Option<NetNs>> {
        match Self::find(path)? {
            Found::NetNs(ns) => Ok(Some(ns)),
            Found::Nothing => Ok(None),
            Found::NotNetNs(e) => Err(e),
        }
    }

    /// What stands at `path`, for DEL: a namespace that is gone (nothing
    /// there, or the stale file a bind mount leaves) means nothing to do,
    /// while a path that cannot be opened or inspected (EACCES, EMFILE, ...)
    /// says nothing about the namespace and is an error naming the path.
    pub fn find(path: &Path) -> CniResult<Found> {
        // Read-only and without O_CREAT: nothing ever appears at `path`. std
        // adds O_CLOEXEC; O_NONBLOCK keeps a FIFO there from hanging us.
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Found::Nothing),
            Err(e) => {
                return Err(CniError::env(format!(
                    "failed to open network namespace {}: {}",
                    path.display(),
                    io_text(&e)
                )))
            }
        };
        let fd = OwnedFd::from(file);
        let fs = fstatfs(&fd).map_err(|e| {
            CniError::env(format!(
                "failed to inspect network namespace {}: {}",
                path.display(),
                errno_text(e as i32)
            ))
        })?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Ok(Found::NotNetNs(CniError::env(format!(
                "{} is not a network namespace",
                path.display()
            ))));
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd (nix
        // has ioctls only as generated unsafe fns).
        let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
        // Kernels before 4.11 lack the ioctl (ENOTTY); nsfs is then all we know.
        if kind >= 0 && kind != libc::CLONE_NEWNET {
            return Ok(Found::NotNetNs(CniError::env(format!(
                "{} is a namespace but not a network namespace",
                path.display()
            ))));
        }
        Ok(Found::NetNs(NetNs {
            fd,
            path: path.to_path_buf(),
        }))
    }

    /// The calling thread's namespace.
    pub fn current() -> CniResult<NetNs> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
            .map_err(|e| CniError::internal(e.msg).context("failed to open the current network namespace"))
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
        let origin = NetNs::current()?;
        setns(&self.fd, CloneFlags::CLONE_NEWNET).map_err(|e| {
            CniError::new(
                Code::from_errno(e as i32),
                format!(
                    "failed to enter network namespace {}: {}",
                    self.path.display(),
                    errno_text(e as i32)
                ),
            )
        })?;
        // Restores on return and on unwinding alike.
        let _back = Restore(origin);
        Ok(f())
    }
}

/// What [`NetNs::find`] found at a path.
#[derive(Debug)]
pub enum Found {
    NetNs(NetNs),
    /// Nothing at the path.
    Nothing,
    /// A file or another kind of namespace, not a network namespace (the
    /// error says which, code 4).
    NotNetNs(CniError),
}

struct Restore(NetNs);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.0.fd, CloneFlags::CLONE_NEWNET) {
            let msg = format!(
                "failed to return to network namespace {}: {e}; aborting",
                self.0.path.display()
            );
            log::error!("{msg}");
            eprintln!("{msg}");
            std::process::abort();
        }
    }
}

/// Runs `f` on a thread of its own inside a new, empty network namespace,
/// which goes away with the thread: for probing what the kernel can do
/// without touching any namespace in use. Fails when the namespace cannot
/// be made (no CAP_SYS_ADMIN, or a kernel without network namespaces).
pub fn in_throwaway<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    std::thread::spawn(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread in the throwaway namespace panicked"))?
}
