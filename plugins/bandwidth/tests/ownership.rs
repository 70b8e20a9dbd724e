#![allow(clippy::unwrap_used)]
//! Issue 12: the plugin changes only what is this attachment's. Others'
//! qdiscs and filters on the veth, present before ADD or added between ADD
//! and DEL, stay; what the reference made is cleaned up by our DEL.

mod common;

use cni_testkit::path_or_skip;
use common::*;
use serde_json::{json, Value};

const NET: &str = "ownnet";

fn tc(host: &Ns, args: &[&str]) {
    let mut a = vec!["tc"];
    a.extend_from_slice(args);
    host.exec(&a);
}

/// Qdiscs and filters of the veth as tc prints them, counters left out
/// (the kernel's IPv6 neighbour discovery passes packets meanwhile).
fn veth_state(host: &Ns, a: &Attachment) -> (Value, Value) {
    let mut qdiscs = host.tc_json(&["qdisc", "show", "dev", &a.veth]);
    for q in qdiscs.as_array_mut().into_iter().flatten() {
        if let Some(o) = q["options"].as_object_mut() {
            o.remove("direct_packets_stat");
        }
    }
    (
        qdiscs,
        host.tc_json(&["filter", "show", "dev", &a.veth, "ingress"]),
    )
}

#[test]
fn a_foreign_root_qdisc_is_refused_and_kept() {
    let Some((host, a)) = setup("foreignroot") else {
        return;
    };
    tc(
        &host,
        &["qdisc", "add", "dev", &a.veth, "root", "handle", "1:", "htb"],
    );
    let before = veth_state(&host, &a);
    let out = a.run(&host, "ADD", &a.conf(NET, both()));
    out.assert_err(7, "cannot shape");
    assert!(out.msg().contains("htb (1:)"), "{}", out.msg());
    assert_eq!(veth_state(&host, &a), before);
    assert!(ifb_names(&host).is_empty(), "failed ADD left an ifb");
    // DEL without ADD leaves it too.
    a.run(&host, "DEL", &a.conf(NET, both())).assert_ok();
    assert_eq!(veth_state(&host, &a), before);
}

#[test]
fn del_without_add_and_egress_only_add_keep_a_foreign_tbf() {
    let Some((host, a)) = setup("foreigntbf") else {
        return;
    };
    // Someone's own shaping: a TBF the kernel numbers itself.
    tc(
        &host,
        &[
            "qdisc", "add", "dev", &a.veth, "root", "tbf", "rate", "1mbit", "burst", "32kbit", "latency",
            "400ms",
        ],
    );
    let before = veth_state(&host, &a);
    a.run(&host, "DEL", &a.conf(NET, both())).assert_ok();
    assert_eq!(veth_state(&host, &a), before, "DEL without ADD changed the veth");
    let egress = a.conf(NET, json!({"egressRate": 8_000_000, "egressBurst": 80_000}));
    a.run(&host, "ADD", &egress).assert_ok();
    a.run(&host, "CHECK", &egress).assert_ok();
    assert_eq!(
        veth_state(&host, &a).0[0],
        before.0[0],
        "egress-only ADD touched the root TBF"
    );
    a.run(&host, "DEL", &egress).assert_ok();
    assert_eq!(veth_state(&host, &a), before);
}

/// Someone's ingress qdisc with no filter on it: DEL without ADD keeps it
/// (nothing of this attachment is on it and it has no ifb).
#[test]
fn del_without_add_keeps_a_foreign_empty_ingress_qdisc() {
    let Some((host, a)) = setup("foreigning") else {
        return;
    };
    tc(&host, &["qdisc", "add", "dev", &a.veth, "ingress"]);
    let before = veth_state(&host, &a);
    a.run(&host, "DEL", &a.conf(NET, both())).assert_ok();
    assert_eq!(
        veth_state(&host, &a),
        before,
        "DEL without ADD deleted the ingress qdisc"
    );
    assert!(has_ingress_qdisc(&host, &a.veth));
}

#[test]
fn foreign_filters_stay_through_add_and_del() {
    let Some((host, a)) = setup("foreignflt") else {
        return;
    };
    // Someone's ingress qdisc with a u32 for all protocols at priority 1
    // (redirecting to an ifb of theirs) and another at priority 7.
    host.ip(&["link", "add", "theirs0", "type", "ifb"]);
    tc(&host, &["qdisc", "add", "dev", &a.veth, "ingress"]);
    for prio in ["1", "7"] {
        tc(
            &host,
            &[
                "filter", "add", "dev", &a.veth, "parent", "ffff:", "protocol", "all", "prio", prio, "u32",
                "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "theirs0",
            ],
        );
    }
    let before = veth_state(&host, &a);
    let conf = a.conf(NET, both());
    a.run(&host, "ADD", &conf).assert_ok();
    let after_add = redirects(&host, &a.veth);
    assert_eq!(
        after_add.iter().filter(|(dev, _)| dev == "theirs0").count(),
        2,
        "ADD removed someone's filter: {after_add:?}"
    );
    a.run(&host, "CHECK", &conf).assert_ok();
    // Added between ADD and DEL: one more of theirs.
    tc(
        &host,
        &[
            "filter", "add", "dev", &a.veth, "parent", "ffff:", "protocol", "all", "prio", "9", "u32",
            "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "theirs0",
        ],
    );
    a.run(&host, "DEL", &conf).assert_ok();
    let (qdiscs, filters) = veth_state(&host, &a);
    assert!(
        ifb_names(&host).iter().all(|n| n == "theirs0"),
        "{:?}",
        ifb_names(&host)
    );
    assert_eq!(qdiscs, before.0, "the ingress qdisc with their filters must stay");
    let prios: Vec<u64> = filters
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["options"]["actions"].is_array())
        .map(|f| f["pref"].as_u64().unwrap())
        .collect();
    assert_eq!(prios, [1, 7, 9], "{filters}");
}

/// Someone's u32 for IPv4 alone, redirecting to a link since deleted (its
/// mirred then dumps index 0, as ours does once our ifb is gone): not ours,
/// since ours are for all protocols, so it stays through DEL.
#[test]
fn a_protocol_ip_redirect_to_a_deleted_link_stays() {
    let Some((host, a)) = setup("foreignip") else {
        return;
    };
    let conf = a.conf(NET, both());
    a.run(&host, "ADD", &conf).assert_ok();
    host.ip(&["link", "add", "gone0", "type", "ifb"]);
    tc(
        &host,
        &[
            "filter", "add", "dev", &a.veth, "parent", "ffff:", "protocol", "ip", "prio", "5", "u32",
            "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "gone0",
        ],
    );
    host.ip(&["link", "del", "gone0"]);
    a.run(&host, "DEL", &conf).assert_ok();
    assert!(ifb_names(&host).is_empty());
    let (qdiscs, filters) = veth_state(&host, &a);
    assert!(qdiscs.to_string().contains("\"ingress\""), "{qdiscs}");
    let theirs: Vec<_> = filters
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["options"]["actions"].is_array())
        .map(|f| {
            (
                f["pref"].as_u64().unwrap(),
                f["protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(theirs, [(5, "ip".to_string())], "{filters}");
}

/// A node upgraded in place: the reference's ADD, then our CHECK (which
/// accepts its exact shape: no alias, double mirred, its TBF numbers, also
/// wrapped with containerd's burst: issue 20 item 11), ADD (converging it to
/// ours) and DEL.
#[test]
fn the_references_state_is_ours_to_converge_and_delete() {
    let test = "the_references_state_is_ours_to_converge_and_delete";
    if !path_or_skip(test, REFERENCE) {
        return;
    }
    let Some((host, a)) = setup("refstate") else {
        return;
    };
    let clean = veth_state(&host, &a);
    // containerd's annotation: 2^32 - 1 bits of burst.
    let containerd = json!({"runtimeConfig": {"bandwidth": {
        "ingressRate": 10_000_000, "ingressBurst": 4_294_967_295u64,
        "egressRate": 10_000_000, "egressBurst": 4_294_967_295u64}}});
    for extra in [both(), containerd] {
        let conf = a.conf(NET, extra);
        cni(
            REFERENCE,
            &host,
            "ADD",
            &a.cid,
            Some(&a.ctr.path()),
            "eth0",
            &conf,
        )
        .assert_ok();
        assert_eq!(
            redirects(&host, &a.veth).len(),
            2,
            "the reference's double mirred"
        );
        let limit = |dev: &str| {
            // tc prints the limit as such only raw.
            host.tc_json(&["-raw", "qdisc", "show", "dev", dev])
                .as_array()
                .into_iter()
                .flatten()
                .find(|q| q["kind"] == "tbf")
                .map(|q| q["options"]["limit"].as_u64().unwrap_or_else(|| panic!("{q}")))
        };
        let ifb = ifb_name(NET, &a.cid);
        let theirs = (limit(&a.veth), limit(&ifb));
        a.run(&host, "CHECK", &conf).assert_ok();
        a.run(&host, "ADD", &conf).assert_ok();
        assert_eq!(redirects(&host, &a.veth).len(), 1);
        // Our bounded queue replaced the reference's.
        let ours = (limit(&a.veth), limit(&ifb));
        assert_ne!(ours, theirs, "{conf}");
        a.run(&host, "CHECK", &conf).assert_ok();
        a.run(&host, "DEL", &conf).assert_ok();
        assert_eq!(veth_state(&host, &a), clean);
        assert!(ifb_names(&host).is_empty());
        // And the reference's ADD straight into our DEL.
        cni(
            REFERENCE,
            &host,
            "ADD",
            &a.cid,
            Some(&a.ctr.path()),
            "eth0",
            &conf,
        )
        .assert_ok();
        a.run(&host, "DEL", &conf).assert_ok();
        assert_eq!(veth_state(&host, &a), clean);
        assert!(ifb_names(&host).is_empty());
    }
}

/// Issue 12 item 2: names the spec forbids are code 7 with nothing made;
/// long valid names and container IDs work through ADD, CHECK, DEL and GC.
#[test]
fn network_names_and_long_container_ids() {
    let Some((host, a)) = setup("names") else { return };
    for bad in ["", "a b", "-lead", "net/1"] {
        let out = cni(
            BIN,
            &host,
            "ADD",
            &a.cid,
            Some(&a.ctr.path()),
            "eth0",
            &a.conf(bad, both()),
        );
        out.assert_err(7, "network name");
        assert!(ifb_names(&host).is_empty(), "{bad:?}: {:?}", ifb_names(&host));
    }
    let net = format!("n{}", "e".repeat(299));
    for cid in [a.cid.clone(), "c".repeat(10_000)] {
        let conf = a.conf(&net, both());
        let run = |cmd: &str, c: &Value| cni(BIN, &host, cmd, &cid, Some(&a.ctr.path()), "eth0", c);
        run("ADD", &conf).assert_ok();
        run("ADD", &conf).assert_ok();
        run("CHECK", &conf).assert_ok();
        let alias = ifbs(&host)[0]["ifalias"].as_str().unwrap().to_string();
        assert!(alias.len() <= 255, "{alias}");
        // GC with this attachment valid keeps it, without it collects it.
        let gc = |valid: Value| json!({"cniVersion": "1.1.0", "name": net, "type": "bandwidth", "cni.dev/valid-attachments": valid});
        cni(
            BIN,
            &host,
            "GC",
            "",
            None,
            "",
            &gc(json!([{"containerID": cid, "ifname": "eth0"}])),
        )
        .assert_ok();
        assert_eq!(ifb_names(&host).len(), 1);
        cni(BIN, &host, "GC", "", None, "", &gc(json!([]))).assert_ok();
        assert!(ifb_names(&host).is_empty());
        run("ADD", &conf).assert_ok();
        run("DEL", &conf).assert_ok();
        assert!(ifb_names(&host).is_empty());
        assert_eq!(root_tbf(&host, &a.veth), None);
    }
}

/// Issue 12 item 7: a veth in a third namespace whose index and peer index
/// match the container's pair is not the host veth.
#[test]
fn a_veth_that_only_looks_like_the_peer_is_refused() {
    if !root_or_skip("a_veth_that_only_looks_like_the_peer_is_refused") {
        return;
    }
    let host = Ns::new("nsidhost");
    let ctr = Ns::new("nsidctr");
    let other = Ns::new("nsidother");
    let elsewhere = Ns::new("nsidelse");
    // The container's eth0 (index 60) pairs with index 50 in `other`.
    other.ip(&[
        "link", "add", "p0", "index", "50", "type", "veth", "peer", "name", "eth0", "index", "60", "netns",
        &ctr.name,
    ]);
    // In the host, index 50 is a veth whose peer has index 60 elsewhere.
    host.ip(&[
        "link",
        "add",
        "vh0",
        "index",
        "50",
        "type",
        "veth",
        "peer",
        "name",
        "q0",
        "index",
        "60",
        "netns",
        &elsewhere.name,
    ]);
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "vh0"}, {"name": "eth0", "sandbox": ctr.path()}],
        "ips": [{"address": "10.9.9.2/24", "interface": 1}]
    });
    let mut conf = json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth", "prevResult": prev});
    for (k, v) in both().as_object().unwrap() {
        conf[k] = v.clone();
    }
    let out = cni(BIN, &host, "ADD", "c1", Some(&ctr.path()), "eth0", &conf);
    out.assert_err(7, "is not in the host namespace");
    assert_eq!(root_tbf(&host, "vh0"), None, "shaped the wrong device");
    assert!(ifb_names(&host).is_empty());
}
