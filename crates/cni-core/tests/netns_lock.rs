#![allow(clippy::unwrap_used)]
//! Namespaces and locks (the namespace tests need root). New namespaces are
//! made by `unshare` in a helper thread or `ip netns add`; the test threads'
//! own namespace is never changed.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cni_core::lock::{slot_name, Lock, LOCK_DIR};
use cni_core::netns::{Found, NetNs};
use cni_core::Code;
use nix::fcntl::{Flock, FlockArg};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

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

/// DEL's view: gone (nothing there, a stale file, another namespace type)
/// is told apart from a path that cannot be opened, which is an error
/// naming it.
#[test]
fn find_tells_gone_from_unreadable() {
    let dir = scratch("find");
    assert!(matches!(NetNs::find(&dir.join("gone")).unwrap(), Found::Nothing));
    let f = dir.join("stale");
    fs::write(&f, b"").unwrap();
    match NetNs::find(&f).unwrap() {
        Found::NotNetNs(e) => assert!(e.msg.contains("not a network namespace"), "{}", e.msg),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        NetNs::find(Path::new("/proc/self/ns/mnt")).unwrap(),
        Found::NotNetNs(_)
    ));
    assert!(matches!(
        NetNs::find(Path::new("/proc/self/ns/net")).unwrap(),
        Found::NetNs(_)
    ));
    // A symlink loop cannot be opened (ELOOP), as EACCES or EMFILE cannot.
    let a = dir.join("a");
    std::os::unix::fs::symlink(dir.join("b"), &a).unwrap();
    std::os::unix::fs::symlink(&a, dir.join("b")).unwrap();
    let e = NetNs::find(&a).unwrap_err();
    assert_eq!(e.code, Code::InvalidEnvironment);
    assert!(
        e.msg.contains(a.to_str().unwrap()) && e.msg.contains("failed to open network namespace"),
        "{}",
        e.msg
    );
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
    cni_testkit::need_root!("run_enters_and_always_returns");
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

/// util-linux `flock -n PATH true` in another process: it opens PATH
/// read-only with O_CREAT and flocks it, as the reference sbr's
/// go-filemutex does. True when it got the lock.
fn other_process_gets(path: &Path) -> bool {
    let st = Command::new("flock")
        .arg("-n")
        .arg(path)
        .arg("true")
        .status()
        .unwrap();
    match st.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("flock -n {}: {other:?}", path.display()),
    }
}

fn ino(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// What the namespace test made: the named namespace, the process inside
/// it and the lock holder's process group, gone however the test ends (a
/// failed assertion would otherwise leave them behind).
struct Made {
    name: String,
    inside: Option<Child>,
    /// Set while the group's leader is our unreaped child, so the number
    /// cannot belong to anyone else.
    holder_group: Option<i32>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(group) = self.holder_group.take() {
            // The process group of our own, unreaped child.
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        if let Some(mut child) = self.inside.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
fn netns_lock_is_the_namespace_across_processes_and_paths() {
    cni_testkit::need_root!("netns_lock_is_the_namespace_across_processes_and_paths");
    let name = format!("cnicore-lock-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    let mut made = Made {
        name: name.clone(),
        inside: None,
        holder_group: None,
    };
    let bind = PathBuf::from(format!("/var/run/netns/{name}"));
    // The same namespace by another path: a process inside it.
    let inside = made.inside.insert(
        Command::new("ip")
            .args(["netns", "exec", &name, "sleep", "120"])
            .spawn()
            .unwrap(),
    );
    let via_proc = PathBuf::from(format!("/proc/{}/ns/net", inside.id()));
    let start = Instant::now();
    while ino(&via_proc) != ino(&bind) {
        if let Some(st) = inside.try_wait().unwrap() {
            panic!("ip netns exec {name} sleep 120 ended: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {} not in namespace {name} after 10 s",
            inside.id()
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Ours held: another process is excluded by either path.
    let ns = NetNs::open(&bind).unwrap();
    let held = Lock::netns(&ns).unwrap();
    assert_eq!(held.path(), bind);
    assert!(
        !other_process_gets(&via_proc),
        "not excluded via {}",
        via_proc.display()
    );
    assert!(!other_process_gets(&bind), "not excluded via {}", bind.display());
    // The namespace is still usable while locked, and unlocking keeps it open.
    assert!(ns.run(|| ()).is_ok());
    drop(held);
    assert!(other_process_gets(&via_proc));
    assert!(ns.run(|| ()).is_ok());

    // Held by another process (go-filemutex's way): Lock::netns waits.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&via_proc)
        .args(["sh", "-c", "echo held; exec sleep 120"])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = i32::try_from(holder.id()).unwrap();
    made.holder_group = Some(group);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let (tx, rx) = mpsc::channel();
    let b = bind.clone();
    let waiter = std::thread::spawn(move || {
        let ns = NetNs::open(&b).unwrap();
        let l = Lock::netns(&ns).unwrap();
        tx.send(()).unwrap();
        drop(l);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "Lock::netns did not wait for the other process's lock"
    );
    // `flock -o` keeps the lock in flock itself, not in its command; the
    // group goes, so the sleep does too.
    killpg(Pid::from_raw(group), Signal::SIGKILL).unwrap();
    made.holder_group = None;
    holder.wait().unwrap();
    rx.recv_timeout(Duration::from_secs(10))
        .expect("no lock after the holder died");
    waiter.join().unwrap();

    let mut inside = made.inside.take().unwrap();
    inside.kill().unwrap();
    inside.wait().unwrap();
    assert!(Command::new("ip")
        .args(["netns", "del", &name])
        .status()
        .unwrap()
        .success());
}

#[test]
fn slot_files_are_bounded_private_and_exclusive() {
    let dir = scratch("slots");
    let locks = dir.join("locks/nested");
    let mut used = BTreeSet::new();
    for i in 0..1000 {
        let key = format!("attachment-{i}");
        let l = Lock::slot_in(&locks, "bw", &key, 8).unwrap();
        assert_eq!(l.path(), locks.join(slot_name("bw", &key, 8)));
        used.insert(l.path().file_name().unwrap().to_str().unwrap().to_string());
    }
    let on_disk: BTreeSet<String> = fs::read_dir(&locks)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(on_disk, used);
    let want: BTreeSet<String> = (0..8).map(|n| format!("bw-slot-{n}.lock")).collect();
    assert_eq!(on_disk, want, "1000 keys over 8 slots");
    for name in &on_disk {
        let mode = fs::metadata(locks.join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    assert_eq!(fs::metadata(&locks).unwrap().permissions().mode() & 0o777, 0o700);

    // One key, one slot; held excludes others; another plugin has its own.
    let a = Lock::slot_in(&locks, "bw", "k", 8).unwrap();
    assert_eq!(
        slot_name("bw", "k", 8),
        a.path().file_name().unwrap().to_str().unwrap()
    );
    assert!(!try_lock(a.path()), "held slot must exclude others");
    let other = Lock::slot_in(&locks, "sbr", "k", 8).unwrap();
    assert_ne!(a.path(), other.path());
    let path = a.path().to_path_buf();
    drop(a);
    assert!(try_lock(&path));

    // Names stay inside the directory; zero slots mean one.
    assert!(!slot_name("a/../b", "k", 4).contains('/'));
    assert_eq!(slot_name("p", "anything", 0), "p-slot-0.lock");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slot_lock_blocks_until_released() {
    let dir = scratch("lockwait");
    let held = Lock::slot_in(&dir, "bw", "key", 4).unwrap();
    let (tx, rx) = mpsc::channel();
    let d = dir.clone();
    let waiter = std::thread::spawn(move || {
        let l = Lock::slot_in(&d, "bw", "key", 4).unwrap();
        tx.send(()).unwrap();
        drop(l);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "second lock got the slot while it was held"
    );
    drop(held);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    waiter.join().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slot_lock_refuses_a_planted_symlink() {
    let dir = scratch("locklink");
    let target = dir.join("target");
    std::os::unix::fs::symlink(&target, dir.join(slot_name("bw", "k", 1))).unwrap();
    let e = Lock::slot_in(&dir, "bw", "k", 1).unwrap_err();
    assert_eq!(e.code, Code::Io);
    assert!(
        e.msg.contains("symlink") && e.msg.contains("bw-slot-0.lock"),
        "{}",
        e.msg
    );
    assert!(!target.exists(), "the symlink's target was created");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_slot_dir_under_run() {
    cni_testkit::need_root!("default_slot_dir_under_run");
    let plugin = format!("cni-core-test-{}", std::process::id());
    let l = Lock::slot(&plugin, "k", 1).unwrap();
    assert_eq!(
        l.path(),
        Path::new(LOCK_DIR).join(format!("{plugin}-slot-0.lock"))
    );
    let p = l.path().to_path_buf();
    drop(l);
    fs::remove_file(p).unwrap();
}
