#![allow(clippy::unwrap_used)]
//! sbr's lock is the container's network namespace itself (root): it makes
//! no file, so none can pile up; ADD, CHECK and DEL wait while someone holds
//! it; and the reference sbr, which flocks the netns path too, waits for ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use cni_core::lock::Lock;
use cni_core::netns::NetNs;
use cni_testkit::plugin::{must_succeed, spawn_plugin};
use cni_testkit::run_dir::{waits_in_flock, PrivateRun};
use cni_testkit::{path_or_skip, root_or_skip, Ns};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_sbr");
const REFERENCE: &str = "/usr/lib/cni/sbr";

/// A container namespace with `net1` (10.1.0.2/24, IPv6 off so the
/// reference behaves alike) whose peer sits in a host namespace.
struct Pod {
    ctr: Ns,
    _host: Ns,
}

fn pod(tag: &str) -> Pod {
    let ctr = Ns::new(tag);
    let host = Ns::new(&format!("{tag}h"));
    ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    ctr.veth("net1", "h1", Some(&host));
    host.ip(&["link", "set", "h1", "up"]);
    ctr.ip(&["addr", "add", "10.1.0.2/24", "dev", "net1"]);
    ctr.ip(&["link", "set", "net1", "up"]);
    Pod { ctr, _host: host }
}

fn conf() -> Value {
    json!({
        "cniVersion": "1.0.0", "name": "locknet", "type": "sbr",
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}]
        }
    })
}

fn spawn(cmd: Command, verb: &str, netns: &Path) -> Child {
    spawn_plugin(cmd, verb, "lockctr", Some(netns), "net1", &conf())
}

#[test]
fn lock_files_never_pile_up() {
    if !root_or_skip("lock_files_never_pile_up") {
        return;
    }
    // A /run/cni-rs of this test's own, so other runs on the machine do not count.
    let run = PrivateRun::new();
    for i in 0..8 {
        let p = pod(&format!("pile{i}"));
        let path = p.ctr.path();
        must_succeed(spawn(run.command(BIN), "ADD", &path), "ADD");
        must_succeed(spawn(run.command(BIN), "DEL", &path), "DEL");
        // DEL again once the namespace is gone: nothing to do, nothing made.
        drop(p);
        must_succeed(spawn(run.command(BIN), "DEL", &path), "DEL of a gone namespace");
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
    if !root_or_skip("add_check_and_del_wait_for_the_namespace_lock") {
        return;
    }
    let p = pod("lockwait");
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
        let mut child = spawn(Command::new(BIN), verb, &path);
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
    let p = pod("lockref");
    let ns = NetNs::open(&p.ctr.path()).unwrap();
    let held = Lock::netns(&ns).unwrap();
    let mut child = spawn(Command::new(REFERENCE), "ADD", &p.ctr.path());
    assert!(
        waits_in_flock(&mut child),
        "the reference sbr did not wait for the namespace lock"
    );
    drop(held);
    must_succeed(child, "reference ADD");
    must_succeed(spawn(Command::new(BIN), "DEL", &p.ctr.path()), "DEL");
}
