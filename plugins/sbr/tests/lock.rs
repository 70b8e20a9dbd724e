#![allow(clippy::unwrap_used)]
//! sbr's lock is the container's network namespace itself (root): it makes
//! no file, so none can pile up; ADD, CHECK and DEL wait while someone holds
//! it; and the reference sbr, which flocks the netns path too, waits for ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use cni_core::lock::Lock;
use cni_core::netns::NetNs;
use cni_testkit::plugin::{must_succeed, spawn_plugin};
use cni_testkit::pod::Pod;
use cni_testkit::run_dir::{waits_in_flock, PrivateRun};
use cni_testkit::{path_or_skip, root_or_skip};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_sbr");
const REFERENCE: &str = "/usr/lib/cni/sbr";

fn pod() -> Pod {
    Pod::new("lockctr").unwrap()
}

fn conf(p: &Pod) -> Value {
    json!({"cniVersion": "1.0.0", "name": "locknet", "type": "sbr", "prevResult": p.prev_result("1.0.0")})
}

fn spawn(cmd: Command, verb: &str, p: &Pod, netns: &Path) -> Child {
    spawn_plugin(cmd, verb, &p.container_id, Some(netns), &p.ifname, &conf(p))
}

#[test]
fn lock_files_never_pile_up() {
    cni_testkit::need_root!("lock_files_never_pile_up");
    // A /run/cni-rs of this test's own, so other runs on the machine do not count.
    let run = PrivateRun::new();
    for _ in 0..8 {
        let p = pod();
        let path = p.ctr.path();
        must_succeed(spawn(run.command(BIN), "ADD", &p, &path), "ADD");
        must_succeed(spawn(run.command(BIN), "DEL", &p, &path), "DEL");
        // DEL again once the namespace is gone: nothing to do, nothing made.
        let (c, cid, ifname) = (conf(&p), p.container_id.clone(), p.ifname.clone());
        drop(p);
        let del = spawn_plugin(run.command(BIN), "DEL", &cid, Some(&path), &ifname, &c);
        must_succeed(del, "DEL of a gone namespace");
        assert!(!path.exists(), "DEL created {}", path.display());
    }
    assert_eq!(
        run.files(),
        Vec::<PathBuf>::new(),
        "sbr left files under /run/cni-rs"
    );
}

#[test]
fn add_check_and_del_wait_for_the_namespace_lock() {
    cni_testkit::need_root!("add_check_and_del_wait_for_the_namespace_lock");
    let p = pod();
    // The same namespace by another path: a process inside it, killed
    // however the test ends.
    let inside = Killed(
        Command::new("ip")
            .args(["netns", "exec", &p.ctr.name, "sleep", "120"])
            .spawn()
            .unwrap(),
    );
    let proc_path = PathBuf::from(format!("/proc/{}/ns/net", inside.0.id()));
    let target = std::fs::metadata(p.ctr.path())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    while std::fs::metadata(&proc_path)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .ok()
        != Some(target)
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // CHECK too: unlocked it could run during a half-done ADD and report drift that is not there.
    for (verb, path) in [
        ("ADD", p.ctr.path()),
        ("CHECK", proc_path.clone()),
        ("DEL", proc_path.clone()),
    ] {
        let ns = NetNs::open(&p.ctr.path()).unwrap();
        let held = Lock::netns(&ns).unwrap();
        let mut child = spawn(Command::new(BIN), verb, &p, &path);
        assert!(
            waits_in_flock(&mut child),
            "{verb} via {} did not wait for the namespace lock",
            path.display()
        );
        drop(held);
        must_succeed(child, verb);
    }
}

/// A child killed and reaped when dropped, also when an assertion fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn reference_sbr_waits_for_our_lock() {
    if !root_or_skip("reference_sbr_waits_for_our_lock")
        || !path_or_skip("reference_sbr_waits_for_our_lock", REFERENCE)
    {
        return;
    }
    let p = pod();
    let ns = NetNs::open(&p.ctr.path()).unwrap();
    let held = Lock::netns(&ns).unwrap();
    let mut child = spawn(Command::new(REFERENCE), "ADD", &p, &p.ctr.path());
    assert!(
        waits_in_flock(&mut child),
        "the reference sbr did not wait for the namespace lock"
    );
    drop(held);
    must_succeed(child, "reference ADD");
    must_succeed(spawn(Command::new(BIN), "DEL", &p, &p.ctr.path()), "DEL");
}
