#![allow(clippy::unwrap_used)]
//! Issue 20 item 1 with a tcx program on the veth, which the suite cannot
//! attach (bpf(2) and a 6.6 kernel, which scripts/test-vm's lacks): it
//! stays through ADD and DEL, and shaping works beside it. The clsact
//! agents' filters, item 2 and 12's scenarios live once, in the suite's
//! foreign group.

mod common;

use common::*;

const NET: &str = "coexnet";

/// Packets the root qdisc of `dev` has sent.
fn sent(host: &Ns, dev: &str) -> u64 {
    host.tc_json(&["-s", "qdisc", "show", "dev", dev, "root"])[0]["packets"]
        .as_u64()
        .unwrap()
}

/// A tcx program and a clsact on the veth: ADD puts the redirect on
/// clsact's ingress hook; traffic reaches the ifb's TBF; DEL takes only ours.
#[test]
fn a_tcx_program_stays_and_traffic_is_shaped() {
    let Some(a) = setup("coexclsact") else {
        return;
    };
    let (host, veth) = (&a.host, a.host_veth.as_str());
    let _agent = host.attach_tcx_ingress(veth);
    assert_eq!(host.tcx_ingress_programs(veth), 1);
    host.tc(&["qdisc", "add", "dev", veth, "clsact"]);
    let conf = conf(&a, NET, both());
    for cmd in ["ADD", "CHECK", "ADD"] {
        run(&a, cmd, &conf).assert_ok();
    }
    let ifb = ifb_name(NET, &a.container_id);
    let qd = qdiscs(host, veth);
    assert!(
        qd.iter().any(|q| q["kind"] == "clsact") && !qd.iter().any(|q| q["kind"] == "ingress"),
        "{qd:?}"
    );
    assert_eq!(host.tcx_ingress_programs(veth), 1);
    let was = sent(host, &ifb);
    a.ctr
        .exec(&["busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", &a.gateway()]);
    assert!(
        sent(host, &ifb) >= was + 3,
        "traffic does not reach the ifb's tbf"
    );
    run(&a, "DEL", &conf).assert_ok();
    let filters = host.tc_json(&["filter", "show", "dev", veth, "ingress"]);
    assert_eq!(filters, serde_json::json!([]), "DEL left a filter");
    assert!(qdiscs(host, veth).iter().any(|q| q["kind"] == "clsact"));
    assert!(ifb_names(host).is_empty());
    assert_eq!(host.tcx_ingress_programs(veth), 1);
}
