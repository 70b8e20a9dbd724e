#![allow(clippy::unwrap_used)]
//! Issue 20 item 1 with a tcx program beside the clsact agents' filters,
//! which the suite cannot attach (it needs a bpf(2) program of nl-ops'
//! test kit): all stay through ADD and DEL, and shaping works beside them.
//! Item 2 and 12's scenarios live once, in the suite's foreign group.

mod common;

use common::*;
use serde_json::Value;

const NET: &str = "coexnet";

fn tc(host: &Ns, args: &[&str]) {
    let mut a = vec!["tc"];
    a.extend_from_slice(args);
    host.exec(&a);
}

/// The filters on the veth's ingress hook (`ffff:fff2`, as tc prints them
/// for ingress and clsact alike).
fn ingress_filters(host: &Ns, veth: &str) -> Vec<Value> {
    host.tc_json(&["filter", "show", "dev", veth, "ingress"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Qdiscs without counters, and the filters, of the veth.
fn veth_state(host: &Ns, veth: &str) -> (Vec<Value>, Vec<Value>) {
    (qdiscs(host, veth), ingress_filters(host, veth))
}

/// Filters redirecting to `to_dev`.
fn redirecting_to<'a>(filters: &'a [Value], to_dev: &str) -> Vec<&'a Value> {
    filters
        .iter()
        .filter(|f| {
            f["options"]["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["to_dev"] == to_dev))
        })
        .collect()
}

/// Packets the root qdisc of `dev` has sent.
fn sent(host: &Ns, dev: &str) -> u64 {
    host.tc_json(&["-s", "qdisc", "show", "dev", dev, "root"])[0]["packets"]
        .as_u64()
        .unwrap()
}

fn ping(a: &Attachment) {
    a.ctr
        .exec(&["busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", &a.host_ip]);
}

/// Item 1: a clsact with an agent's cls_bpf and u32 filters, and a tcx
/// program beside it. ADD puts the redirect on clsact's ingress hook after
/// theirs; traffic reaches the ifb's TBF; DEL takes only ours.
#[test]
fn clsact_and_tcx_agents_stay_and_traffic_is_shaped() {
    let Some((host, a)) = setup("coexclsact") else {
        return;
    };
    let _agent = host.attach_tcx_ingress(&a.veth);
    assert_eq!(host.tcx_ingress_programs(&a.veth), 1);
    tc(&host, &["qdisc", "add", "dev", &a.veth, "clsact"]);
    tc(
        &host,
        &[
            "filter",
            "add",
            "dev",
            &a.veth,
            "ingress",
            "prio",
            "1",
            "protocol",
            "all",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
        ],
    );
    tc(
        &host,
        &[
            "filter",
            "add",
            "dev",
            &a.veth,
            "ingress",
            "prio",
            "3",
            "protocol",
            "all",
            "u32",
            "match",
            "ip",
            "dst",
            "192.0.2.0/24",
            "flowid",
            "1:1",
        ],
    );
    let before = veth_state(&host, &a.veth);
    let conf = a.conf(NET, both());
    a.run(&host, "ADD", &conf).assert_ok();
    a.run(&host, "CHECK", &conf).assert_ok();
    a.run(&host, "ADD", &conf).assert_ok();
    let ifb = ifb_name(NET, &a.cid);
    let (qd, filters) = veth_state(&host, &a.veth);
    assert!(
        qd.iter().any(|q| q["kind"] == "clsact") && !qd.iter().any(|q| q["kind"] == "ingress"),
        "{qd:?}"
    );
    let ours = redirecting_to(&filters, &ifb);
    assert_eq!(ours.len(), 1, "{filters:?}");
    assert_eq!(ours[0]["pref"], 4, "ours goes after theirs: {filters:?}");
    for f in &before.1 {
        assert!(filters.contains(f), "their filter went: {f}");
    }
    assert_eq!(host.tcx_ingress_programs(&a.veth), 1);
    let was = sent(&host, &ifb);
    ping(&a);
    assert!(
        sent(&host, &ifb) >= was + 3,
        "traffic does not reach the ifb's tbf"
    );
    a.run(&host, "DEL", &conf).assert_ok();
    let after = veth_state(&host, &a.veth);
    assert_eq!(after.1, before.1, "DEL changed their filters");
    assert!(after.0.iter().any(|q| q["kind"] == "clsact"), "{:?}", after.0);
    assert!(ifb_names(&host).is_empty());
    assert_eq!(host.tcx_ingress_programs(&a.veth), 1);
    a.run(&host, "DEL", &conf).assert_ok();
    assert_eq!(veth_state(&host, &a.veth).1, before.1);
}
