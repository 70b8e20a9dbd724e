//! Root integration tests under load and faults: many attachments in one
//! host namespace at once, and a plugin killed in the middle of ADD.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const NET: &str = "loadnet";
const N: u32 = 32;

fn both() -> Value {
    limits((10_000_000, 1_000_000), (20_000_000, 2_000_000))
}

#[test]
fn parallel_adds_and_dels_in_one_host_namespace() {
    if !root_or_skip("parallel") {
        return;
    }
    let host = Ns::new("parallel");
    let atts: Vec<Attachment> = (0..N).map(|n| Attachment::new(&host, "par", n)).collect();

    run_all(&host, &atts, "ADD");
    assert_eq!(ifb_names(&host).len(), N as usize);
    for a in &atts {
        a.run(&host, "CHECK", &a.conf(NET, both())).assert_ok();
    }

    run_all(&host, &atts, "DEL");
    assert!(ifb_names(&host).is_empty());
    for a in &atts {
        assert_eq!(root_tbf(&host, &a.veth), None);
        assert!(!has_ingress_qdisc(&host, &a.veth));
    }
}

/// Kills ADD at a sweep of moments (from before it starts to after it
/// ends); every time DEL must leave nothing and a new ADD must converge.
#[test]
fn killed_add_is_cleaned_by_del_and_converged_by_add() {
    if !root_or_skip("killed") {
        return;
    }
    let host = Ns::new("killed");
    let a = Attachment::new(&host, "killed", 1);
    let conf = a.conf(NET, both());
    let clean = (qdiscs(&host, &a.veth).len(), ifb_names(&host));
    // A cheap deterministic spread: 0 to ~6 ms in uneven steps.
    let mut delay_us: u64 = 0;
    for round in 0..30u64 {
        let mut child = spawn(BIN, &host, "ADD", &a.cid, Some(&a.ctr.path()), "eth0", &conf);
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = child.kill();
        let _ = child.wait();
        delay_us = (delay_us * 7 + 173 * round + 97) % 6000;

        // Whatever the kill left: CHECK may fail, but DEL cleans it all.
        a.run(&host, "DEL", &conf).assert_ok();
        assert!(ifb_names(&host).is_empty(), "round {round}: ifb left after DEL");
        assert_eq!(root_tbf(&host, &a.veth), None, "round {round}");
        assert!(!has_ingress_qdisc(&host, &a.veth), "round {round}");
        assert_eq!((qdiscs(&host, &a.veth).len(), ifb_names(&host)), clean);

        // Kill again, then ADD over the leftovers converges.
        let mut child = spawn(BIN, &host, "ADD", &a.cid, Some(&a.ctr.path()), "eth0", &conf);
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = child.kill();
        let _ = child.wait();
        a.run(&host, "ADD", &conf).assert_ok();
        a.run(&host, "CHECK", &conf).assert_ok();
        assert_eq!(ifb_names(&host), vec![ifb_name(NET, &a.cid)]);
        assert_eq!(redirects(&host, &a.veth).len(), 1);
        a.run(
            &host,
            "DEL",
            &json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth"}),
        )
        .assert_ok();
        a.run(&host, "DEL", &conf).assert_ok();
    }
}

/// Runs `command` for every attachment at once and wants each to succeed.
fn run_all(host: &Ns, atts: &[Attachment], command: &str) {
    let children: Vec<_> = atts
        .iter()
        .map(|a| {
            spawn(
                BIN,
                host,
                command,
                &a.cid,
                Some(&a.ctr.path()),
                "eth0",
                &a.conf(NET, both()),
            )
        })
        .collect();
    for (a, c) in atts.iter().zip(children) {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{command} of {} failed: {} {}",
            a.cid,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
