#![allow(clippy::unwrap_used)]
//! bandwidth's lock (root): one of 64 slot files per attachment key, so the
//! files never exceed the slot count however many attachments come and go,
//! and ADD, CHECK, DEL and GC wait while someone holds their attachment's slot.

mod common;

use cni_core::lock::Lock;
use cni_testkit::plugin::{must_succeed, spawn_plugin};
use cni_testkit::run_dir::{waits_in_flock, PrivateRun};
use common::*;

const NET: &str = "locknet";
const SLOTS: u32 = bandwidth::LOCK_SLOTS;

#[test]
fn lock_files_stay_within_the_slots() {
    let Some(a) = setup("lock_files_stay_within_the_slots") else {
        return;
    };
    // A /run/cni-rs of this test's own, so other runs on the machine do not count.
    let run = PrivateRun::new();
    let conf = conf(&a, NET, both());
    for i in 0..100 {
        // One more attachment key each time: the ifb (and lock key) follows the container ID.
        let cid = format!("slots-{i}");
        for verb in ["ADD", "DEL"] {
            let mut c = run.command("ip");
            c.args(["netns", "exec", &a.host.name, BIN]);
            must_succeed(
                spawn_plugin(c, verb, &cid, Some(&a.ctr.path()), "eth0", &conf),
                verb,
            );
        }
    }
    assert!(ifb_names(&a.host).is_empty());
    let files = run.files();
    let locks: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with("locks") && f.as_os_str() != "locks")
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), locks.len() + 1, "not only lock files: {files:?}");
    assert!(
        locks.len() <= SLOTS as usize,
        "{} lock files: {locks:?}",
        locks.len()
    );
    for name in &locks {
        let n: u32 = name
            .strip_prefix("bandwidth-slot-")
            .and_then(|r| r.strip_suffix(".lock"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected lock file {name}"));
        assert!(n < SLOTS, "{name}");
    }
}

#[test]
fn add_check_and_del_wait_for_the_attachment_lock() {
    let Some(a) = setup("add_check_and_del_wait_for_the_attachment_lock") else {
        return;
    };
    let conf = conf(&a, NET, both());
    // CHECK too: unlocked it could run during a half-done ADD and report drift that is not there.
    for verb in ["ADD", "CHECK", "DEL"] {
        let held = Lock::slot("bandwidth", &ifb_name(NET, &a.container_id), SLOTS).unwrap();
        let mut child = spawn(
            BIN,
            &a.host,
            verb,
            &a.container_id,
            Some(&a.ctr.path()),
            "eth0",
            &conf,
        );
        assert!(
            waits_in_flock(&mut child),
            "{verb} did not wait for the attachment's lock"
        );
        drop(held);
        must_succeed(child, verb);
    }
}

#[test]
fn gc_waits_for_the_attachment_lock() {
    let Some(a) = setup("gc_waits_for_the_attachment_lock") else {
        return;
    };
    run(&a, "ADD", &conf(&a, NET, both())).assert_ok();
    let gc = serde_json::json!({
        "cniVersion": "1.1.0", "name": NET, "type": "bandwidth", "cni.dev/valid-attachments": []
    });
    let held = Lock::slot("bandwidth", &ifb_name(NET, &a.container_id), SLOTS).unwrap();
    let mut child = spawn(BIN, &a.host, "GC", "", None, "", &gc);
    assert!(
        waits_in_flock(&mut child),
        "GC did not wait for the attachment's lock"
    );
    assert_eq!(ifb_names(&a.host), [ifb_name(NET, &a.container_id)]);
    drop(held);
    must_succeed(child, "GC");
    assert!(ifb_names(&a.host).is_empty());
}
