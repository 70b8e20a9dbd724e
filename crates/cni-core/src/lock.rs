//! Exclusive locks for plugins whose parallel invocations would otherwise
//! interleave their changes. Two kinds, for two different needs:
//!
//! - [`Lock::netns`] locks the network namespace itself (`flock` on the
//!   nsfs file the plugin already opened). For a plugin that changes state
//!   inside one namespace (sbr: rules and tables shared by every interface
//!   of a pod). It needs no file of its own, so nothing piles up; every
//!   path of one namespace (`/proc/PID/ns/net`, a `/var/run/netns` bind
//!   mount) is one inode and so one lock; and it is the lock the reference
//!   sbr takes (go-filemutex on the netns path), so ours and the
//!   reference's exclude each other during an upgrade.
//! - [`Lock::slot`] locks one of a fixed number of files under
//!   [`LOCK_DIR`], chosen by a hash of a key. For a plugin whose state is
//!   outside the container's namespace, keyed by something that is not a
//!   file (bandwidth: the attachment's host-side qdiscs and ifb). The files
//!   stay at most `slots` per plugin however many keys come and go, at the
//!   price of two keys sometimes sharing a slot and waiting for each other.
//!
//! Both block until the lock is free and release it when dropped (or when
//! the process dies).

use std::fs::DirBuilder;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::error::{errno_text, io_text, CniError, CniResult, Code};
use crate::netns::NetNs;
use crate::nofollow::{self, OpenError};

/// Where [`Lock::slot`] keeps its files (tmpfs: gone at reboot).
pub const LOCK_DIR: &str = "/run/cni-rs/locks";

/// Held until dropped.
#[derive(Debug)]
pub struct Lock {
    _held: Flock<OwnedFd>,
    /// What is locked, for messages and debugging.
    what: PathBuf,
}

/// FNV-1a, 64 bit: stable across builds and releases, unlike std's hasher,
/// so two versions of a plugin pick the same slot for a key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file name of `plugin`'s slot for `key`: `<plugin>-slot-<n>.lock`,
/// `n` below `slots` (at least 1).
pub fn slot_name(plugin: &str, key: &str, slots: u32) -> String {
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
    let n = fnv1a(key.as_bytes()) % u64::from(slots.max(1));
    format!("{plugin}-slot-{n}.lock")
}

/// `flock(LOCK_EX)`, waiting, again after a signal.
fn lock_exclusive(fd: OwnedFd, what: &Path) -> CniResult<Flock<OwnedFd>> {
    let mut fd = fd;
    loop {
        match Flock::lock(fd, FlockArg::LockExclusive) {
            Ok(held) => return Ok(held),
            Err((f, Errno::EINTR)) => fd = f,
            Err((_, e)) => {
                return Err(CniError::new(
                    Code::from_errno(e as i32),
                    format!("failed to lock {}: {}", what.display(), errno_text(e as i32)),
                ))
            }
        }
    }
}

impl Lock {
    /// Locks the network namespace `ns` (opened and verified by
    /// [`NetNs::open`], so a path that is no namespace is never locked and
    /// nothing is ever created at it). A namespace that is gone cannot be
    /// opened: the caller learns it from [`NetNs::open_opt`] before asking.
    pub fn netns(ns: &NetNs) -> CniResult<Lock> {
        let what = ns.path().to_path_buf();
        // A second fd of the same open file: the lock belongs to the open
        // file, and dropping the Lock unlocks it while `ns` stays usable.
        let fd = ns.fd().try_clone().map_err(|e| {
            CniError::new(
                Code::Io,
                format!("failed to lock {}: {}", what.display(), io_text(&e)),
            )
        })?;
        let held = lock_exclusive(fd, &what)?;
        Ok(Lock { _held: held, what })
    }

    /// Locks `plugin`'s slot for `key` in [`LOCK_DIR`].
    pub fn slot(plugin: &str, key: &str, slots: u32) -> CniResult<Lock> {
        Self::slot_in(Path::new(LOCK_DIR), plugin, key, slots)
    }

    /// [`Lock::slot`] in another directory (created 0700). The slot file is
    /// created 0600 and must be a regular file with one link, reached
    /// without a symlink.
    pub fn slot_in(dir: &Path, plugin: &str, key: &str, slots: u32) -> CniResult<Lock> {
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
                        io_text(&e)
                    ),
                )
            })?;
        let what = dir.join(slot_name(plugin, key, slots));
        let fd = nofollow::open_regular(
            &what,
            OFlag::O_RDWR | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| {
            let why = match e {
                OpenError::Refused(why) => why,
                OpenError::Os(e) => errno_text(e as i32),
            };
            CniError::new(
                Code::Io,
                format!("failed to open lock file {}: {why}", what.display()),
            )
        })?;
        let held = lock_exclusive(fd, &what)?;
        Ok(Lock { _held: held, what })
    }

    /// What is locked: the namespace's path or the slot file.
    pub fn path(&self) -> &Path {
        &self.what
    }
}
