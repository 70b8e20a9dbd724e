//! Opening a regular file at a path from a config without following a
//! symlink anywhere in the path and without blocking: a plugin runs as root,
//! so a link planted in any directory of the path, a FIFO nobody reads, or a
//! hard link to another file must not make it write somewhere else or hang.
//!
//! `openat2` with `RESOLVE_NO_SYMLINKS` (Linux 5.6) does it in one call;
//! where it is missing or refuses, the path is walked one directory at a
//! time with `O_PATH | O_DIRECTORY | O_NOFOLLOW`, which is as safe and also
//! names the component that is a symlink.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fcntl, openat, openat2, AtFlags, FcntlArg, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, FsType};

/// Why a path was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not a file this opener writes; the text says what is there
    /// ("/var/run is a symlink", "it is a fifo", "it has 2 hard links").
    Refused(String),
    /// The system said no for another reason (no such directory, no space).
    Os(Errno),
}

/// How the directories of the path are resolved: `openat2` first and the
/// walk when it fails (to say why, or when the kernel lacks it), or only the
/// walk (as on kernels without `openat2`; tests cover it this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    Openat2,
    #[cfg_attr(not(test), allow(dead_code))]
    Walk,
}

/// Opens the regular file at `path` with `flags` (plus `O_CREAT` and
/// `mode` when asked to create): it must have exactly one link, and no
/// component of the path may be a symlink. The fd is blocking again when
/// returned.
pub(crate) fn open_regular(path: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, OpenError> {
    open_with(path, flags, mode, Resolve::Openat2)
}

fn open_with(path: &Path, flags: OFlag, mode: Mode, resolve: Resolve) -> Result<OwnedFd, OpenError> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    // openat2 refuses a mode without O_CREAT.
    let mode = if flags.contains(OFlag::O_CREAT) {
        mode
    } else {
        Mode::empty()
    };
    let first = match resolve {
        Resolve::Openat2 => openat2(
            AT_FDCWD,
            path,
            OpenHow::new()
                .flags(flags)
                .mode(mode)
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS),
        )
        .ok(),
        Resolve::Walk => None,
    };
    let fd = match first {
        Some(fd) => fd,
        None => walk(path, flags, mode)?,
    };
    let st = fstat(&fd).map_err(OpenError::Os)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(OpenError::Refused(format!("it is {}", kind_name(kind))));
    }
    if st.st_nlink != 1 {
        return Err(OpenError::Refused(format!(
            "it has {} hard links, not 1",
            st.st_nlink
        )));
    }
    if let Some(fs) = kernel_interface(fstatfs(&fd).map_err(OpenError::Os)?.filesystem_type()) {
        return Err(OpenError::Refused(format!(
            "it is on {fs}, a kernel interface, not a file system for logs"
        )));
    }
    // O_NONBLOCK kept open() from waiting (a FIFO, a lease); writes should wait.
    let now = fcntl(&fd, FcntlArg::F_GETFL).map_err(OpenError::Os)?;
    let blocking = OFlag::from_bits_truncate(now) & !OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(blocking)).map_err(OpenError::Os)?;
    Ok(fd)
}

/// File systems whose regular files are knobs of the kernel: a write to
/// `/sys/.../ifalias` renames a link's alias, to `/proc/sys/kernel/hostname`
/// the host. Their magic numbers are the kernel's `include/uapi/linux/magic.h`.
const KERNEL_INTERFACES: &[(u32, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2fs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0xcafe_4a11, "bpffs"),
    (0x6265_6570, "configfs"),
    (0x6165_676c, "pstorefs"),
    (0xde5e_81e4, "efivarfs"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x6e73_6673, "nsfs"),
    (0x6573_5543, "fusectl"),
    (0x0765_5821, "resctrl"),
    (0x1980_0202, "mqueue"),
    (0x1cd1, "devpts"),
    (0x9fa2, "usbfs"),
    (0x9fa1, "openpromfs"),
    (0xabba_1974, "xenfs"),
];

/// The name of `fs` when it is one of [`KERNEL_INTERFACES`].
fn kernel_interface(fs: FsType) -> Option<&'static str> {
    KERNEL_INTERFACES
        .iter()
        .find(|(magic, _)| FsType((*magic).into()) == fs)
        .map(|(_, name)| *name)
}

/// The walk: each directory opened below the last with `O_NOFOLLOW`, then
/// the file below the last directory.
fn walk(path: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, OpenError> {
    if path.as_os_str().is_empty() {
        return Err(OpenError::Os(Errno::ENOENT));
    }
    // Path::components drops a trailing slash, which names a directory.
    if path.as_os_str().as_bytes().ends_with(b"/") {
        return Err(OpenError::Refused("it is a directory".into()));
    }
    let mut parts: Vec<Component<'_>> = path.components().collect();
    let leaf = match parts.pop() {
        Some(Component::Normal(name)) => name,
        _ => return Err(OpenError::Refused("it is a directory".into())),
    };
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let start = if path.is_absolute() { "/" } else { "." };
    let mut dir = openat(AT_FDCWD, start, dir_flags, Mode::empty()).map_err(OpenError::Os)?;
    let mut walked = PathBuf::new();
    for part in parts {
        let name: &OsStr = match part {
            Component::RootDir => {
                walked.push("/");
                continue;
            }
            Component::CurDir | Component::Prefix(_) => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(n) => n,
        };
        walked.push(name);
        dir = match openat(&dir, name, dir_flags, Mode::empty()) {
            Ok(next) => next,
            // O_PATH | O_NOFOLLOW opens a symlink itself, which is no directory.
            Err(Errno::ENOTDIR) if is_symlink(&dir, name) => {
                return Err(OpenError::Refused(format!("{} is a symlink", walked.display())))
            }
            Err(e) => return Err(OpenError::Os(e)),
        };
    }
    match openat(&dir, leaf, flags, mode) {
        Ok(fd) => Ok(fd),
        Err(Errno::ELOOP) => Err(OpenError::Refused(format!("{} is a symlink", path.display()))),
        Err(Errno::EISDIR) => Err(OpenError::Refused("it is a directory".into())),
        // O_NONBLOCK: a FIFO without a reader, or a socket.
        Err(Errno::ENXIO) => Err(OpenError::Refused(match kind_at(&dir, leaf) {
            Some(SFlag::S_IFIFO) => "it is a fifo without a reader".to_string(),
            Some(k) => format!("it is {}", kind_name(k)),
            None => "it cannot be opened without waiting".to_string(),
        })),
        Err(e) => Err(OpenError::Os(e)),
    }
}

fn kind_at(dir: &OwnedFd, name: &OsStr) -> Option<SFlag> {
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    Some(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}

fn is_symlink(dir: &OwnedFd, name: &OsStr) -> bool {
    kind_at(dir, name) == Some(SFlag::S_IFLNK)
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a fifo",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFLNK => "a symlink",
        SFlag::S_IFREG => "a regular file",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::{Read, Write};
    use std::os::unix::fs::{symlink, OpenOptionsExt};

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cni-core-nofollow-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real")).unwrap();
        dir
    }

    fn append(p: &Path, r: Resolve) -> Result<OwnedFd, OpenError> {
        open_with(
            p,
            OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o600),
            r,
        )
    }

    fn refused(r: Result<OwnedFd, OpenError>) -> String {
        match r {
            Err(OpenError::Refused(why)) => why,
            other => panic!("want a refusal, got {other:?}"),
        }
    }

    #[test]
    fn both_resolutions_agree() {
        for (i, r) in [Resolve::Openat2, Resolve::Walk].into_iter().enumerate() {
            let dir = scratch(&format!("agree{i}"));
            let real = dir.join("real");

            // A plain file: created, appended to, blocking afterwards.
            let file = real.join("a.log");
            let fd = append(&file, r).unwrap();
            let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL).unwrap());
            assert!(!flags.contains(OFlag::O_NONBLOCK), "{r:?}");
            fs::File::from(fd).write_all(b"x\n").unwrap();
            fs::File::from(append(&file, r).unwrap())
                .write_all(b"y\n")
                .unwrap();
            assert_eq!(fs::read_to_string(&file).unwrap(), "x\ny\n");

            // `..` and `.` are no links.
            let dotted = dir.join("real/../real/./a.log");
            assert!(append(&dotted, r).is_ok(), "{r:?}");

            // A symlinked directory anywhere in the path.
            symlink(&real, dir.join("linkdir")).unwrap();
            let why = refused(append(&dir.join("linkdir/b.log"), r));
            assert!(why.contains("is a symlink"), "{r:?}: {why}");
            if r == Resolve::Walk {
                assert!(why.contains("linkdir"), "{why}");
            }
            assert!(!real.join("b.log").exists(), "{r:?}");

            // The file itself a symlink, also dangling.
            symlink(&file, real.join("c.log")).unwrap();
            assert!(refused(append(&real.join("c.log"), r)).contains("symlink"));
            symlink(real.join("nowhere"), real.join("d.log")).unwrap();
            assert!(refused(append(&real.join("d.log"), r)).contains("symlink"));
            assert!(!real.join("nowhere").exists());

            // A second hard link.
            fs::hard_link(&file, real.join("e.log")).unwrap();
            let why = refused(append(&real.join("e.log"), r));
            assert!(why.contains("2 hard links"), "{why}");
            assert!(refused(append(&file, r)).contains("2 hard links"));
            assert_eq!(fs::read_to_string(&file).unwrap(), "x\ny\n");

            // Not regular files.
            assert_eq!(refused(append(&real, r)), "it is a directory");
            assert_eq!(
                refused(append(Path::new("/dev/null"), r)),
                "it is a character device"
            );
            let fifo = real.join("fifo");
            nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
            assert_eq!(refused(append(&fifo, r)), "it is a fifo without a reader");
            // With a reader the open succeeds, and the type refuses it.
            let mut reader = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap();
            assert_eq!(refused(append(&fifo, r)), "it is a fifo");
            let mut buf = Vec::new();
            let _ = reader.read_to_end(&mut buf);
            assert!(buf.is_empty());

            // Missing directories are the system's answer.
            assert_eq!(
                append(&dir.join("no/such/x.log"), r).unwrap_err(),
                OpenError::Os(Errno::ENOENT)
            );
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    /// Opened read-only, so nothing there can change even where the check
    /// were missing.
    #[test]
    fn kernel_interfaces_are_refused() {
        for (path, fs) in [
            ("/proc/sys/kernel/hostname", "procfs"),
            ("/proc/1/comm", "procfs"),
            ("/sys/devices/virtual/net/lo/ifalias", "sysfs"),
            ("/sys/fs/cgroup/cgroup.procs", "cgroup2fs"),
            ("/sys/fs/cgroup/memory/cgroup.procs", "cgroupfs"),
        ] {
            if !Path::new(path).exists() {
                continue;
            }
            for r in [Resolve::Openat2, Resolve::Walk] {
                let why = refused(open_with(Path::new(path), OFlag::O_RDONLY, Mode::empty(), r));
                assert!(
                    why.contains(fs) && why.contains("kernel interface"),
                    "{path}: {why}"
                );
            }
        }
        // tmpfs and the usual disk file systems are not.
        let dir = scratch("fs");
        assert!(append(&dir.join("real/ok.log"), Resolve::Openat2).is_ok());
        assert!(kernel_interface(nix::sys::statfs::TMPFS_MAGIC).is_none());
        assert!(kernel_interface(nix::sys::statfs::EXT4_SUPER_MAGIC).is_none());
        assert_eq!(
            kernel_interface(nix::sys::statfs::CGROUP2_SUPER_MAGIC),
            Some("cgroup2fs")
        );
        assert_eq!(kernel_interface(nix::sys::statfs::BPF_FS_MAGIC), Some("bpffs"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn relative_paths_and_trailing_slashes() {
        let dir = scratch("rel");
        let file = dir.join("real/r.log");
        fs::write(&file, b"").unwrap();
        // The same file relative to the working directory, through "..".
        let cwd = std::env::current_dir().unwrap();
        let mut rel = PathBuf::new();
        for _ in 1..cwd.components().count() {
            rel.push("..");
        }
        rel.push(file.strip_prefix("/").unwrap());
        for r in [Resolve::Openat2, Resolve::Walk] {
            assert!(append(&rel, r).is_ok(), "{r:?} {}", rel.display());
            assert_eq!(refused(append(&dir.join("real/"), r)), "it is a directory");
            assert_eq!(refused(append(&dir.join("real/.."), r)), "it is a directory");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
