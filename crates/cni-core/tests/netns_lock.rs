#![allow(clippy::unwrap_used)]
//! Namespaces and locks (root). New namespaces are made by `unshare` in a
//! helper thread; the test threads' own namespace is never changed.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use cni_core::lock::{lock_name, NsLock};
use cni_core::netns::NetNs;
use cni_core::testutil::root_or_skip;
use cni_core::Code;
use nix::fcntl::{Flock, FlockArg};
use nix::sched::{unshare, CloneFlags};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cni-core-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn ns_inode(path: &str) -> u64 {
    fs::metadata(path).unwrap().ino()
}

/// A fresh network namespace, held open by the returned handle.
fn new_netns() -> NetNs {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        tx.send(NetNs::current().unwrap()).unwrap();
    })
    .join()
    .unwrap();
    rx.recv().unwrap()
}

#[test]
fn opens_real_namespaces() {
    let ns = NetNs::open(Path::new("/proc/self/ns/net")).unwrap();
    assert_eq!(ns.path(), Path::new("/proc/self/ns/net"));
    let cur = NetNs::current().unwrap();
    assert_eq!(cur.path(), Path::new("/proc/thread-self/ns/net"));
}

#[test]
fn regular_file_is_code_4_naming_it() {
    let dir = scratch("regular");
    let f = dir.join("netns");
    fs::write(&f, b"").unwrap();
    for e in [NetNs::open(&f).unwrap_err(), NetNs::open_opt(&f).unwrap_err()] {
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert!(
            e.msg.contains(f.to_str().unwrap()) && e.msg.contains("not a network namespace"),
            "{}",
            e.msg
        );
    }
    assert_eq!(NetNs::open(&dir).unwrap_err().code, Code::InvalidEnvironment);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn other_namespace_types_are_refused() {
    let e = NetNs::open(Path::new("/proc/self/ns/mnt")).unwrap_err();
    assert_eq!(e.code, Code::InvalidEnvironment);
    assert!(e.msg.contains("not a network namespace"), "{}", e.msg);
}

#[test]
fn missing_path_is_code_4_and_creates_nothing() {
    let dir = scratch("missing");
    let p = dir.join("gone");
    let e = NetNs::open(&p).unwrap_err();
    assert_eq!(e.code, Code::InvalidEnvironment);
    assert!(
        e.msg.contains("does not exist") && e.msg.contains(p.to_str().unwrap()),
        "{}",
        e.msg
    );
    assert!(NetNs::open_opt(&p).unwrap().is_none());
    assert!(NetNs::open_opt(&dir.join("no/such/dir")).unwrap().is_none());
    assert!(!p.exists(), "open must not create the netns path");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fifo_does_not_hang() {
    let dir = scratch("fifo");
    let p = dir.join("fifo");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_eq!(NetNs::open(&p).unwrap_err().code, Code::InvalidEnvironment);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_enters_and_always_returns() {
    if !root_or_skip("run_enters_and_always_returns") {
        return;
    }
    let before = ns_inode("/proc/thread-self/ns/net");
    let ns = new_netns();
    let target = fs::metadata(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(ns.fd())
    ))
    .unwrap()
    .ino();
    assert_ne!(before, target);
    let inside = ns.run(|| ns_inode("/proc/thread-self/ns/net")).unwrap();
    assert_eq!(inside, target);
    assert_eq!(ns_inode("/proc/thread-self/ns/net"), before);
    // Also when the closure unwinds.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ns.run(|| panic!("inside")).unwrap();
    }));
    assert!(caught.is_err());
    assert_eq!(ns_inode("/proc/thread-self/ns/net"), before);
    // A namespace opened by path, through another handle.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(ns.fd()));
    let again = NetNs::open(Path::new(&path)).unwrap();
    assert_eq!(
        again.run(|| ns_inode("/proc/thread-self/ns/net")).unwrap(),
        target
    );
}

fn try_lock(path: &Path) -> bool {
    let f = File::open(path).unwrap();
    Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok()
}

#[test]
fn lock_is_exclusive_private_and_away_from_the_netns() {
    let dir = scratch("lock");
    let locks = dir.join("locks/nested");
    let netns = dir.join("netns-that-does-not-exist");
    let l = NsLock::acquire_in(&locks, "sbr", &netns).unwrap();
    assert!(l.path().starts_with(&locks));
    assert!(l
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("sbr-"));
    assert_eq!(
        fs::metadata(l.path()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::metadata(&locks).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(!netns.exists(), "the netns path is never touched");
    assert!(!try_lock(l.path()), "held lock must exclude others");
    let path = l.path().to_path_buf();
    drop(l);
    assert!(try_lock(&path));
    // Another plugin or namespace has its own lock.
    let a = NsLock::acquire_in(&locks, "sbr", &netns).unwrap();
    let b = NsLock::acquire_in(&locks, "bandwidth", &netns).unwrap();
    let c = NsLock::acquire_in(&locks, "sbr", &dir.join("other")).unwrap();
    assert_ne!(a.path(), b.path());
    assert_ne!(a.path(), c.path());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lock_blocks_until_released() {
    let dir = scratch("lockwait");
    let netns = dir.join("ns");
    let held = NsLock::acquire_in(&dir, "sbr", &netns).unwrap();
    let (tx, rx) = mpsc::channel();
    let (d, n) = (dir.clone(), netns.clone());
    let waiter = std::thread::spawn(move || {
        let l = NsLock::acquire_in(&d, "sbr", &n).unwrap();
        tx.send(()).unwrap();
        drop(l);
    });
    assert!(
        rx.try_recv().is_err(),
        "second acquire got the lock while it was held"
    );
    drop(held);
    rx.recv().unwrap();
    waiter.join().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lock_names_resolve_symlinked_paths() {
    let dir = scratch("lockname");
    let real = dir.join("real");
    fs::write(&real, b"").unwrap();
    std::os::unix::fs::symlink(&real, dir.join("link")).unwrap();
    assert_eq!(lock_name("sbr", &real), lock_name("sbr", &dir.join("link")));
    assert_ne!(lock_name("sbr", &real), lock_name("sbr", &dir.join("missing")));
    assert!(!lock_name("a/../b", &real).contains('/'));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_lock_dir_under_run() {
    if !root_or_skip("default_lock_dir_under_run") {
        return;
    }
    let netns = Path::new("/run/netns/cni-core-test-does-not-exist");
    let l = NsLock::acquire(&format!("cni-core-test-{}", std::process::id()), netns).unwrap();
    assert!(l.path().starts_with("/run/cni-rs/locks"));
    assert!(!netns.exists());
    let p = l.path().to_path_buf();
    drop(l);
    fs::remove_file(p).unwrap();
}
