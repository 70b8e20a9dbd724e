#![allow(clippy::unwrap_used)]
//! u32 redirect filters: structure against `tc -j filter`, and real traffic.

use cni_testkit::Ns;
use nl_ops::filter::ETH_P_ALL;
use nl_ops::qdisc::INGRESS_HANDLE;

/// The first node of u32's root hash table, the handle the kernel gives the
/// first filter added without one.
const U32_FIRST: u32 = 0x8000_0800;

fn tx_packets(ns: &Ns, dev: &str) -> u64 {
    let j = ns.ip_json(&["-s", "link", "show", "dev", dev]);
    j[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

#[test]
fn redirect_filter_structure_replace_and_precise_delete() {
    cni_testkit::need_root!("redirect_filter_structure_replace_and_precise_delete");
    let ns = Ns::new("filter");
    ns.veth("v0", "v1", None);
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let idx = ns.ifindex("v0");
    let ifb = s.add_ifb("ifbf0", 1500, 0, None).unwrap();
    let ifb2 = s.add_ifb("ifbf1", 1500, 0, None).unwrap();
    assert!(s.add_ingress_qdisc(idx).unwrap());
    s.add_redirect_filter(idx, INGRESS_HANDLE, 1, ifb.index, None)
        .unwrap();

    let j = ns.tc_json(&["filter", "show", "dev", "v0", "parent", "ffff:"]);
    let nodes: Vec<_> = j
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["options"]["fh"] == "800::800")
        .collect();
    assert_eq!(nodes.len(), 1, "{j}");
    let f = nodes[0];
    assert_eq!(f["protocol"], "all");
    assert_eq!(f["pref"], 1);
    assert_eq!(f["kind"], "u32");
    let acts = f["options"]["actions"].as_array().unwrap();
    assert_eq!(acts.len(), 1, "exactly one mirred: {f}");
    assert_eq!(acts[0]["kind"], "mirred");
    assert_eq!(acts[0]["mirred_action"], "redirect");
    assert_eq!(acts[0]["direction"], "egress");
    assert_eq!(acts[0]["to_dev"], "ifbf0");
    assert_eq!(acts[0]["control_action"]["type"], "stolen");

    let got = s.filters(idx, INGRESS_HANDLE).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0].priority,
            got[0].protocol,
            got[0].kind.as_str(),
            got[0].handle
        ),
        (1, ETH_P_ALL, "u32", U32_FIRST)
    );
    assert_eq!(got[0].parent, INGRESS_HANDLE);
    assert_eq!(got[0].mirred_targets, vec![ifb.index]);
    assert!(got[0].only_redirects());

    // Replaced in place: still one filter, now to the other ifb.
    s.replace_redirect_filter(idx, INGRESS_HANDLE, 1, U32_FIRST, ifb2.index, None)
        .unwrap();
    let got = s.filters(idx, INGRESS_HANDLE).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].handle, got[0].mirred_targets.clone()),
        (U32_FIRST, vec![ifb2.index])
    );

    // The reference plugin's double mirred at the same priority: a node of
    // its own beside ours, seen with both actions.
    ns.exec(&[
        "tc", "filter", "add", "dev", "v0", "parent", "ffff:", "protocol", "all", "prio", "1", "u32",
        "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "ifbf0", "action",
        "mirred", "egress", "redirect", "dev", "ifbf0",
    ]);
    let got = s.filters(idx, INGRESS_HANDLE).unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    let theirs = got.iter().find(|f| f.handle != U32_FIRST).unwrap();
    assert_eq!(theirs.mirred_targets, vec![ifb.index, ifb.index]);
    // Deleting our node leaves theirs.
    assert!(s
        .delete_filter(idx, INGRESS_HANDLE, 1, ETH_P_ALL, "u32", U32_FIRST)
        .unwrap());
    assert!(!s
        .delete_filter(idx, INGRESS_HANDLE, 1, ETH_P_ALL, "u32", U32_FIRST)
        .unwrap());
    let got = s.filters(idx, INGRESS_HANDLE).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].handle, theirs.handle);
    // Handle 0: the whole priority goes.
    assert!(s
        .delete_filter(idx, INGRESS_HANDLE, 1, ETH_P_ALL, "u32", 0)
        .unwrap());
    assert!(s.filters(idx, INGRESS_HANDLE).unwrap().is_empty());

    // Another protocol at priority 1: the kernel refuses ours beside it.
    ns.exec(&[
        "tc", "filter", "add", "dev", "v0", "parent", "ffff:", "protocol", "ip", "prio", "1", "u32", "match",
        "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "ifbf1",
    ]);
    assert!(s
        .add_redirect_filter(idx, INGRESS_HANDLE, 1, ifb.index, None)
        .is_err());
    let got = s.filters(idx, INGRESS_HANDLE).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].protocol, got[0].actions), (0x0800, 1));
    // At another priority it goes in beside it.
    s.add_redirect_filter(idx, INGRESS_HANDLE, 2, ifb.index, None)
        .unwrap();
    assert_eq!(s.filters(idx, INGRESS_HANDLE).unwrap().len(), 2);

    // No ingress qdisc: no filters, not an error.
    assert!(s.delete_ingress_qdisc(idx).unwrap());
    assert!(s.filters(idx, INGRESS_HANDLE).unwrap().is_empty());
}

#[test]
fn redirect_moves_real_traffic_into_the_ifb() {
    cni_testkit::need_root!("redirect_moves_real_traffic_into_the_ifb");
    let host = Ns::new("redir-host");
    let cont = Ns::new("redir-cont");
    host.veth("vhost0", "eth0", Some(&cont));
    host.ip(&["addr", "add", "10.66.0.1/24", "dev", "vhost0"]);
    host.ip(&["link", "set", "vhost0", "up"]);
    cont.ip(&["addr", "add", "10.66.0.2/24", "dev", "eth0"]);
    cont.ip(&["link", "set", "eth0", "up"]);
    let mut s = host.inside(nl_ops::Socket::new).expect("netlink socket");
    let vh = host.ifindex("vhost0");
    let ifb = s.add_ifb("ifbr0", 1500, 0, Some("test")).unwrap();
    s.add_ingress_qdisc(vh).unwrap();
    s.add_redirect_filter(vh, INGRESS_HANDLE, 1, ifb.index, None)
        .unwrap();

    let before = tx_packets(&host, "ifbr0");
    // busybox: no iputils ping on this machine.
    cont.exec(&["busybox", "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.66.0.1"]);
    let after = tx_packets(&host, "ifbr0");
    eprintln!("ifb tx packets {before} -> {after}");
    // Every echo request (and the ARP) coming in on vhost0 went through the ifb.
    assert!(after >= before + 5, "ifb tx {before} -> {after}");
    let j = host.tc_json(&["-s", "filter", "show", "dev", "vhost0", "parent", "ffff:"]);
    eprintln!("{j}");
}

/// The ingress qdisc and the redirect in one datagram: each acked on its
/// own, the filter carrying its cookie; over an existing qdisc the first
/// fails (EEXIST) and the second still runs, as the kernel takes them.
#[test]
fn ingress_qdisc_and_redirect_in_one_datagram() {
    cni_testkit::need_root!("ingress_qdisc_and_redirect_in_one_datagram");
    let ns = Ns::new("filterdg");
    ns.veth("v0", "v1", None);
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let idx = ns.ifindex("v0");
    let ifb = s.add_ifb("ifbd0", 1500, 0, None).unwrap();
    let (q, f) = s
        .add_ingress_qdisc_with_redirect(idx, 1, ifb.index, Some(b"cni-bw ingress"))
        .unwrap();
    q.unwrap();
    f.unwrap();
    let got = s.filters(idx, INGRESS_HANDLE).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].mirred_targets, vec![ifb.index]);
    assert_eq!(got[0].cookie.as_deref(), Some(&b"cni-bw ingress"[..]));
    assert!(got[0].match_all);
    let (q, f) = s
        .add_ingress_qdisc_with_redirect(idx, 2, ifb.index, None)
        .unwrap();
    assert!(q.unwrap_err().is_exists());
    f.unwrap();
    assert_eq!(s.filters(idx, INGRESS_HANDLE).unwrap().len(), 2);
}
