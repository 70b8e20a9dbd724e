//! Root integration tests: every rule of the bandwidth plugin against the
//! real kernel, each test in fresh namespaces.

#![allow(clippy::unwrap_used)]

mod common;

use cni_testkit::path_or_skip;
use common::*;
use serde_json::{json, Value};

const NET: &str = "bwnet";

/// Everything bandwidth could have put on the host side.
fn snapshot(host: &Ns, a: &Attachment) -> (Vec<Value>, Vec<(String, String)>, Vec<String>) {
    let mut q = qdiscs(host, &a.veth);
    for x in &mut q {
        x.as_object_mut().unwrap().remove("refcnt");
    }
    let r = if has_ingress_qdisc(host, &a.veth) {
        redirects(host, &a.veth)
    } else {
        vec![]
    };
    (q, r, ifb_names(host))
}

#[test]
fn add_shapes_both_directions() {
    let Some((host, a)) = setup("addboth") else { return };
    // A non-default MTU shows the ifb copies it.
    host.ip(&["link", "set", &a.veth, "mtu", "1400"]);
    let out = a.run(&host, "ADD", &a.conf(NET, both()));
    out.assert_ok();
    let ifb = ifb_name(NET, &a.cid);

    // Ingress: TBF at the root of the host veth, 10 Mbit/s = 1.25 MB/s.
    assert_eq!(root_tbf(&host, &a.veth), Some((1_250_000, 125_000)));
    // The bounded queue: the whole 1414 B frames of 25 ms of rate (22 in
    // 31250 B) and 512 B for small packets. A bucket of 125000 B would pass
    // whole GSO packets larger than that: a peak bucket of one frame (1414 B
    // at 100 Gbit/s, one tick) makes the TBF split them.
    let raw = host.tc_json(&["-raw", "qdisc", "show", "dev", &a.veth]);
    let veth_tbf = raw
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "tbf")
        .unwrap();
    assert_eq!(veth_tbf["options"]["limit"], 22 * 1414 + 512, "{veth_tbf}");
    assert_eq!(veth_tbf["options"]["mtu_raw"], "1", "{veth_tbf}");

    // Egress: ingress qdisc + one u32 filter, one stolen redirect to the ifb.
    assert!(has_ingress_qdisc(&host, &a.veth));
    assert_eq!(
        redirects(&host, &a.veth),
        vec![(ifb.clone(), "stolen".to_string())]
    );
    let filters = host.tc_json(&["filter", "show", "dev", &a.veth, "ingress"]);
    for f in filters.as_array().unwrap() {
        assert_eq!(f["kind"], "u32");
        assert_eq!(f["protocol"], "all");
        assert_eq!(f["pref"], 1);
    }
    let links = ifbs(&host);
    assert_eq!(links.len(), 1);
    let l = &links[0];
    assert_eq!(l["ifname"], ifb.as_str());
    assert_eq!(l["mtu"], 1400);
    assert!(l["flags"].as_array().unwrap().contains(&json!("UP")), "{l}");
    assert_eq!(l["ifalias"], format!("cni-bandwidth {NET} {} eth0", a.cid));
    assert_eq!(root_tbf(&host, &ifb), Some((2_500_000, 250_000)));

    // The result: prevResult with the ifb appended.
    let res = &out.stdout;
    assert_eq!(res["cniVersion"], "1.0.0");
    let ifaces = res["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 3);
    assert_eq!(ifaces[0]["name"], a.veth.as_str());
    assert_eq!(ifaces[2]["name"], ifb.as_str());
    assert_eq!(ifaces[2]["mac"], l["address"]);
    assert!(ifaces[2].get("sandbox").is_none());
    assert_eq!(res["ips"][0]["address"], format!("{}/24", a.ctr_ip));
}

#[test]
fn runtime_config_and_case_insensitive_keys() {
    let Some((host, a)) = setup("rtconf") else { return };
    let conf = a.conf(
        NET,
        json!({"runtimeConfig": {"bandWidth": {"IngressRate": 16_000_000, "ingressburst": 160_000}}}),
    );
    a.run(&host, "ADD", &conf).assert_ok();
    assert_eq!(root_tbf(&host, &a.veth), Some((2_000_000, 20_000)));
    // Any top-level limit makes the static config win.
    let conf = a.conf(
        NET,
        json!({
            "egressRate": 8_000_000, "egressBurst": 80_000,
            "runtimeConfig": {"bandwidth": {"ingressRate": 16_000_000, "ingressBurst": 160_000}}
        }),
    );
    a.run(&host, "ADD", &conf).assert_ok();
    assert_eq!(
        root_tbf(&host, &a.veth),
        Some((2_000_000, 20_000)),
        "ADD leaves what the config no longer shapes"
    );
    assert_eq!(root_tbf(&host, &ifb_name(NET, &a.cid)), Some((1_000_000, 10_000)));
}

#[test]
fn no_limits_passes_prev_result_through() {
    let Some((host, a)) = setup("nolimit") else { return };
    let before = snapshot(&host, &a);
    let out = a.run(&host, "ADD", &a.conf(NET, json!({})));
    out.assert_ok();
    assert_eq!(out.stdout["interfaces"], a.prev_result("1.0.0")["interfaces"]);
    assert_eq!(snapshot(&host, &a), before);
    a.run(&host, "CHECK", &a.conf(NET, json!({}))).assert_ok();
}

/// With `queue: "reference"` tc shows the reference's numbers: rate,
/// bucket and the latency derived from its queue limit (issue 19 item 3).
#[test]
fn matches_reference_tc_values() {
    if !root_or_skip("reference") || !path_or_skip("reference", REFERENCE) {
        return;
    }
    let configs = [
        (10_000_000u64, 1_000_000u64),
        (100_000_000, 12_000_000),
        (1_000_000, 100_000),
        (40_000_000_000, 64_000_000),
        (999_999_937, 777_777),
        (123_456_789, 9_876_543),
    ];
    let mut mismatches = Vec::new();
    for (i, (rate, burst)) in (0u32..).zip(configs) {
        let host = Ns::new("refcmp");
        let ours = Attachment::new(&host, "refours", 2 * i);
        let theirs = Attachment::new(&host, "reftheirs", 2 * i + 1);
        let l = limits((rate, burst), (rate, burst));
        // The reference's queue asked for: every number the reference's.
        let mut queue_reference = l.clone();
        queue_reference["queue"] = json!("reference");
        ours.run(&host, "ADD", &ours.conf(NET, queue_reference))
            .assert_ok();
        cni(
            REFERENCE,
            &host,
            "ADD",
            &theirs.cid,
            Some(&theirs.ctr.path()),
            "eth0",
            &theirs.conf(NET, l),
        )
        .assert_ok();
        let tbf = |dev: &str| {
            let q = qdiscs(&host, dev)
                .into_iter()
                .find(|q| q["kind"] == "tbf")
                .unwrap();
            (
                q["options"]["rate"].clone(),
                q["options"]["burst"].clone(),
                q["options"]["lat"].clone(),
            )
        };
        let (o, t) = (tbf(&ours.veth), tbf(&theirs.veth));
        if o != t {
            mismatches.push(format!(
                "ingress rate {rate} burst {burst}: ours {o:?}, reference {t:?}"
            ));
        }
        let (o, t) = (tbf(&ifb_name(NET, &ours.cid)), tbf(&ifb_name(NET, &theirs.cid)));
        if o != t {
            mismatches.push(format!(
                "egress rate {rate} burst {burst}: ours {o:?}, reference {t:?}"
            ));
        }
        let mtu = |cid: &str| {
            ifbs(&host)
                .into_iter()
                .find(|l| l["ifname"] == ifb_name(NET, cid).as_str())
                .unwrap()["mtu"]
                .clone()
        };
        assert_eq!(mtu(&ours.cid), mtu(&theirs.cid));
        // Ours DELs the reference's attachment too: it is named the same way.
        ours.run(&host, "DEL", &ours.conf(NET, json!({}))).assert_ok();
        cni(
            BIN,
            &host,
            "DEL",
            &theirs.cid,
            Some(&theirs.ctr.path()),
            "eth0",
            &theirs.conf(NET, json!({})),
        )
        .assert_ok();
        assert!(ifb_names(&host).is_empty());
        assert_eq!(root_tbf(&host, &theirs.veth), None);
    }
    assert!(
        mismatches.is_empty(),
        "tc shows other values than the reference:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn add_is_reentrant_and_convergent() {
    let Some((host, a)) = setup("reentrant") else {
        return;
    };
    let conf = a.conf(NET, both());
    a.run(&host, "ADD", &conf).assert_ok();
    let first = snapshot(&host, &a);
    let out = a.run(&host, "ADD", &conf);
    out.assert_ok();
    assert_eq!(snapshot(&host, &a), first, "a second ADD changes nothing");
    assert_eq!(out.stdout["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(ifb_names(&host).len(), 1);
    // A prevResult that already lists the ifb keeps one entry, in place.
    let mut again = conf.clone();
    again["prevResult"] = out.stdout.clone();
    let out2 = a.run(&host, "ADD", &again);
    out2.assert_ok();
    assert_eq!(out2.stdout["interfaces"], out.stdout["interfaces"]);
    assert_eq!(redirects(&host, &a.veth).len(), 1);
    a.run(&host, "CHECK", &conf).assert_ok();

    // New values converge in place.
    let conf2 = a.conf(NET, limits((8_000_000, 80_000), (16_000_000, 160_000)));
    a.run(&host, "ADD", &conf2).assert_ok();
    assert_eq!(root_tbf(&host, &a.veth), Some((1_000_000, 10_000)));
    assert_eq!(root_tbf(&host, &ifb_name(NET, &a.cid)), Some((2_000_000, 20_000)));
    a.run(&host, "CHECK", &conf2).assert_ok();
    a.run(&host, "CHECK", &conf).assert_err(100, "rate");

    // A config without egress leaves the egress side as it is (ADD adds,
    // only DEL takes away).
    let conf3 = a.conf(NET, json!({"ingressRate": 8_000_000, "ingressBurst": 80_000}));
    let before = snapshot(&host, &a);
    a.run(&host, "ADD", &conf3).assert_ok();
    assert_eq!(snapshot(&host, &a), before);
    a.run(&host, "DEL", &conf3).assert_ok();
    assert!(ifb_names(&host).is_empty());
    assert!(!has_ingress_qdisc(&host, &a.veth));
    assert_eq!(root_tbf(&host, &a.veth), None);
}

#[test]
fn del_needs_neither_netns_nor_prev_result() {
    let Some((host, a)) = setup("delbare") else { return };
    a.run(&host, "ADD", &a.conf(NET, both())).assert_ok();
    let bare = json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth"});
    cni(BIN, &host, "DEL", &a.cid, None, "eth0", &bare).assert_ok();
    assert!(ifb_names(&host).is_empty());
    // With the prevResult it finds the veth and clears it as well.
    a.run(&host, "ADD", &a.conf(NET, both())).assert_ok();
    let mut with_prev = bare.clone();
    with_prev["prevResult"] = a.prev_result("1.0.0");
    cni(BIN, &host, "DEL", &a.cid, None, "eth0", &with_prev).assert_ok();
    assert!(ifb_names(&host).is_empty());
    assert_eq!(root_tbf(&host, &a.veth), None);
    assert!(!has_ingress_qdisc(&host, &a.veth));

    // A namespace that is gone: DEL still succeeds and creates nothing there.
    a.run(&host, "ADD", &a.conf(NET, both())).assert_ok();
    let gone = std::path::PathBuf::from(format!("/var/run/netns/bw-gone-{}", std::process::id()));
    cni(BIN, &host, "DEL", &a.cid, Some(&gone), "eth0", &bare).assert_ok();
    assert!(!gone.exists());
    assert!(ifb_names(&host).is_empty());
    // Limits that no longer validate do not block teardown.
    a.run(&host, "DEL", &a.conf(NET, json!({"ingressRate": 5})))
        .assert_ok();
}

#[test]
fn check_verifies_everything() {
    let Some((host, a)) = setup("check") else { return };
    let conf = a.conf(NET, both());
    let ifb = ifb_name(NET, &a.cid);
    type Break = Box<dyn Fn(&Ns, &Attachment, &str)>;
    let cases: Vec<(Break, &str)> = vec![
        (
            Box::new(|h, a, _| {
                h.exec(&[
                    "tc", "qdisc", "replace", "dev", &a.veth, "root", "tbf", "rate", "9mbit", "burst",
                    "125000", "latency", "25ms",
                ]);
            }),
            "has rate (B/s) 1125000, want 1250000",
        ),
        (
            Box::new(|h, a, _| {
                h.exec(&[
                    "tc", "qdisc", "replace", "dev", &a.veth, "root", "tbf", "rate", "10mbit", "burst",
                    "200000", "limit", "30792",
                ]);
            }),
            "buffer",
        ),
        (
            Box::new(|h, a, _| {
                h.exec(&[
                    "tc", "qdisc", "replace", "dev", &a.veth, "root", "tbf", "rate", "10mbit", "burst",
                    "125000", "latency", "50ms",
                ]);
            }),
            "limit",
        ),
        (
            Box::new(|h, _, ifb| {
                h.exec(&["tc", "qdisc", "del", "dev", ifb, "root"]);
            }),
            "has no root tbf",
        ),
        (
            Box::new(|h, _, ifb| {
                h.ip(&["link", "set", ifb, "mtu", "1400"]);
            }),
            "mtu 1400",
        ),
        (
            Box::new(|h, _, ifb| {
                h.ip(&["link", "del", ifb]);
            }),
            "does not exist",
        ),
        (
            Box::new(|h, a, _| {
                h.exec(&["tc", "qdisc", "del", "dev", &a.veth, "ingress"]);
            }),
            "no ingress qdisc",
        ),
        (
            Box::new(|h, a, _| {
                h.exec(&["tc", "filter", "del", "dev", &a.veth, "ingress"]);
            }),
            "no filter redirecting",
        ),
        (
            Box::new(|h, _, ifb| {
                h.ip(&["link", "set", ifb, "down"]);
            }),
            "down",
        ),
    ];
    for (brk, want) in cases {
        a.run(&host, "ADD", &conf).assert_ok();
        a.run(&host, "CHECK", &conf).assert_ok();
        brk(&host, &a, &ifb);
        a.run(&host, "CHECK", &conf).assert_err(100, want);
        // ADD repairs whatever was broken.
        a.run(&host, "ADD", &conf).assert_ok();
        a.run(&host, "CHECK", &conf).assert_ok();
    }
    // A config without limits checks fine.
    a.run(&host, "CHECK", &a.conf(NET, json!({}))).assert_ok();
}

#[test]
fn gc_deletes_only_this_networks_stale_ifbs() {
    if !root_or_skip("gc") {
        return;
    }
    let host = Ns::new("gc");
    let a1 = Attachment::new(&host, "gc", 1);
    let a2 = Attachment::new(&host, "gc", 2);
    let a3 = Attachment::new(&host, "gc", 3);
    let l = limits((8_000_000, 80_000), (8_000_000, 80_000));
    a1.run(&host, "ADD", &a1.conf("neta", l.clone())).assert_ok();
    a2.run(&host, "ADD", &a2.conf("neta", l.clone())).assert_ok();
    a3.run(&host, "ADD", &a3.conf("netb", l)).assert_ok();
    host.ip(&["link", "add", "bwpforeign", "type", "ifb"]);
    host.ip(&["link", "add", "bwpaliased", "type", "ifb"]);
    host.ip(&["link", "set", "bwpaliased", "alias", "something else"]);
    let gc = json!({
        "cniVersion": "1.1.0", "name": "neta", "type": "bandwidth",
        "cni.dev/valid-attachments": [{"containerID": a1.cid, "ifname": "eth0"}, {"containerID": a2.cid, "ifname": "eth1"}]
    });
    cni(BIN, &host, "GC", "", None, "", &gc).assert_ok();
    let mut names = ifb_names(&host);
    names.sort();
    let mut want = vec![
        ifb_name("neta", &a1.cid),
        ifb_name("netb", &a3.cid),
        "bwpforeign".to_string(),
        "bwpaliased".to_string(),
    ];
    want.sort();
    assert_eq!(names, want);
    // A second GC has nothing left to do.
    cni(BIN, &host, "GC", "", None, "", &gc).assert_ok();
    assert_eq!(ifb_names(&host).len(), 4);
}

#[test]
fn status_reports_kernel_support() {
    if !root_or_skip("status") {
        return;
    }
    let host = Ns::new("status");
    let before = host.ip_json(&["link", "show"]);
    let conf = json!({"cniVersion": "1.1.0", "name": NET, "type": "bandwidth"});
    let out = cni(BIN, &host, "STATUS", "", None, "", &conf);
    out.assert_ok();
    assert_eq!(out.stdout, Value::Null);
    // The probe runs in a namespace of its own.
    assert_eq!(host.ip_json(&["link", "show"]), before);
    // STATUS needs 1.1.
    let old = json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth"});
    cni(BIN, &host, "STATUS", "", None, "", &old).assert_err(1, "");
}

#[test]
fn invalid_configs_change_nothing() {
    let Some((host, a)) = setup("invalid") else { return };
    let clean = snapshot(&host, &a);
    let cases = [
        (
            json!({"ingressRate": 8_000_000}),
            7,
            "if rate is set, burst must also be set",
        ),
        (
            json!({"egressBurst": 80_000}),
            7,
            "if burst is set, rate must also be set",
        ),
        (
            json!({"egressRate": 8_000_000, "egressBurst": 8u64 << 32}),
            7,
            "burst cannot be more than 4GB",
        ),
        (
            json!({"ingressRate": 7, "ingressBurst": 80_000}),
            7,
            "below 8 bit/s",
        ),
        // Buckets the kernel refuses (the reference answers 999).
        (
            json!({"ingressRate": 1_000_000_000_000u64, "ingressBurst": 160_000}),
            7,
            "ingressBurst of 160000 bits drains in under a microsecond at ingressRate 1000000000000 bit/s",
        ),
        (
            json!({"egressRate": u64::MAX, "egressBurst": 160_000}),
            7,
            "egressRate 18446744073709551615 bit/s",
        ),
        (
            json!({"ingressRate": "fast", "ingressBurst": 80_000}),
            7,
            "invalid",
        ),
        (json!({"ingressRate": -5, "ingressBurst": 80_000}), 7, "invalid"),
        (json!({"runtimeConfig": {"bandwidth": 5}}), 7, "invalid"),
    ];
    for (extra, code, msg) in cases {
        let mut extra = extra;
        // Egress valid alongside, so an ifb would appear if anything ran.
        if extra.get("egressRate").is_none()
            && extra.get("egressBurst").is_none()
            && extra.get("runtimeConfig").is_none()
        {
            extra["egressRate"] = json!(8_000_000);
            extra["egressBurst"] = json!(80_000);
        }
        a.run(&host, "ADD", &a.conf(NET, extra.clone()))
            .assert_err(code, msg);
        assert_eq!(snapshot(&host, &a), clean, "{extra}");
    }
    // Broken JSON is a decode error.
    let out = cni(
        BIN,
        &host,
        "ADD",
        &a.cid,
        Some(&a.ctr.path()),
        "eth0",
        &json!("{"),
    );
    assert!(!out.ok);
    assert!(matches!(out.code(), 6 | 7), "{:?}", out.stdout);
}

#[test]
fn versions() {
    let Some((host, a)) = setup("versions") else {
        return;
    };
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let out = a.run(&host, "ADD", &a.conf_v(v, NET, both()));
        out.assert_ok();
        assert_eq!(out.stdout["cniVersion"], v);
        assert_eq!(out.stdout["interfaces"].as_array().unwrap().len(), 3, "{v}");
        a.run(&host, "DEL", &a.conf_v(v, NET, json!({}))).assert_ok();
    }
    for v in ["0.1.0", "0.2.0"] {
        a.run(&host, "ADD", &a.conf_v(v, NET, both())).assert_err(1, "");
    }
    assert!(ifb_names(&host).is_empty());
}

#[test]
fn host_veth_errors() {
    let Some((host, a)) = setup("hosterr") else { return };
    let clean = snapshot(&host, &a);
    // prevResult with no interfaces.
    let mut c = a.conf(NET, both());
    c["prevResult"]["interfaces"] = json!([]);
    c["prevResult"]["ips"] = json!([]);
    a.run(&host, "ADD", &c).assert_err(7, "no interfaces");
    // No prevResult at all.
    let mut c = a.conf(NET, both());
    c.as_object_mut().unwrap().remove("prevResult");
    a.run(&host, "ADD", &c)
        .assert_err(7, "must be called as chained plugin");
    // The host veth missing from prevResult.
    let mut c = a.conf(NET, both());
    c["prevResult"]["interfaces"][0]["name"] = json!("other0");
    a.run(&host, "ADD", &c)
        .assert_err(7, "no veth peer of container interface found in host ns");
    // The container interface is no veth.
    a.ctr.ip(&["link", "add", "ifb0", "type", "ifb"]);
    let out = cni(
        BIN,
        &host,
        "ADD",
        &a.cid,
        Some(&a.ctr.path()),
        "ifb0",
        &a.conf(NET, both()),
    );
    out.assert_err(7, "has no veth peer");
    // The container interface does not exist.
    let out = cni(
        BIN,
        &host,
        "ADD",
        &a.cid,
        Some(&a.ctr.path()),
        "eth9",
        &a.conf(NET, both()),
    );
    out.assert_err(4, "eth9 not found");
    // The peer lives in a third namespace, not the host's.
    let third = Ns::new("third");
    a.ctr
        .ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "p1"]);
    a.ctr.ip(&["link", "set", "p1", "netns", &third.name]);
    let out = cni(
        BIN,
        &host,
        "ADD",
        &a.cid,
        Some(&a.ctr.path()),
        "eth1",
        &a.conf(NET, both()),
    );
    out.assert_err(7, "not in the host namespace");
    // A veth with both ends in the container.
    a.ctr
        .ip(&["link", "add", "eth2", "type", "veth", "peer", "name", "p2"]);
    let out = cni(
        BIN,
        &host,
        "ADD",
        &a.cid,
        Some(&a.ctr.path()),
        "eth2",
        &a.conf(NET, both()),
    );
    out.assert_err(7, "inside the container namespace");
    assert_eq!(snapshot(&host, &a), clean);
}

#[test]
fn failed_add_rolls_back_and_names_the_step() {
    let Some((host, a)) = setup("rollback") else {
        return;
    };
    // A redirect for all protocols to a link since deleted looks like ours
    // once our ifb is gone, so ADD makes it a redirect to the new ifb, in
    // place, as its last step. This one carries a flag (skip_hw) that ours
    // do not, and the kernel replaces no u32 node with other flags: the last
    // step fails after the TBFs and the ifb exist.
    host.ip(&["link", "add", "gone0", "type", "ifb"]);
    host.exec(&["tc", "qdisc", "add", "dev", &a.veth, "ingress"]);
    host.exec(&[
        "tc", "filter", "add", "dev", &a.veth, "parent", "ffff:", "protocol", "all", "prio", "1", "u32",
        "skip_hw", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "gone0",
    ]);
    host.ip(&["link", "del", "gone0"]);
    let filters = host.tc_json(&["filter", "show", "dev", &a.veth, "ingress"]);
    let out = a.run(&host, "ADD", &a.conf(NET, both()));
    out.assert_err(999, "failed to replace filter");
    assert!(out.msg().contains("flags do not match"), "{}", out.msg());
    assert!(
        out.stdout["details"].as_str().unwrap().contains("rolled back"),
        "{}",
        out.stdout
    );
    assert!(ifb_names(&host).is_empty());
    assert_eq!(root_tbf(&host, &a.veth), None);
    // The ingress qdisc and the filter that were there before stay as they were.
    assert!(has_ingress_qdisc(&host, &a.veth));
    assert_eq!(
        host.tc_json(&["filter", "show", "dev", &a.veth, "ingress"]),
        filters
    );
    // Once the obstacle is gone, ADD succeeds.
    host.exec(&[
        "tc", "filter", "del", "dev", &a.veth, "parent", "ffff:", "protocol", "all", "prio", "1", "u32",
    ]);
    a.run(&host, "ADD", &a.conf(NET, both())).assert_ok();
    a.run(&host, "CHECK", &a.conf(NET, both())).assert_ok();
}

/// An ingress qdisc on a shared filter block takes no filter of the veth's
/// own (the kernel says "operation not supported"): refused with code 7
/// before anything changes, naming the device and the block, and DEL
/// leaves it as someone else's.
#[test]
fn a_shared_block_ingress_is_refused_untouched() {
    let Some((host, a)) = setup("sharedblk") else {
        return;
    };
    host.exec(&[
        "tc",
        "qdisc",
        "add",
        "dev",
        &a.veth,
        "ingress_block",
        "7",
        "ingress",
    ]);
    let clean = snapshot(&host, &a);
    let conf = a.conf(NET, both());
    let out = a.run(&host, "ADD", &conf);
    out.assert_err(7, &format!("{} has an ingress qdisc on shared block 7", a.veth));
    assert_eq!(snapshot(&host, &a), clean);
    a.run(&host, "DEL", &conf).assert_ok();
    assert_eq!(snapshot(&host, &a), clean);
    // Ingress shaping alone does not need the slot.
    let ingress = a.conf(NET, limits((8_000_000, 80_000), (0, 0)));
    a.run(&host, "ADD", &ingress).assert_ok();
    a.run(&host, "CHECK", &ingress).assert_ok();
    a.run(&host, "DEL", &ingress).assert_ok();
    assert_eq!(snapshot(&host, &a), clean);
}

/// Issue 11: what the reference installs broken is installed working:
/// below one frame raised to a frame, beyond the kernel's range capped. CHECK
/// passes right after.
#[test]
fn broken_buckets_are_installed_working() {
    let Some((host, a)) = setup("broken") else { return };
    for (l, want) in [
        // One byte short of a frame; the veth's MTU minus one.
        (limits((8_000_000, 8 * 1513), (8_000_000, 8 * 1499)), "raised"),
        // containerd's 2^32 - 1 bits at 1 Mbit/s: 4295 s of rate, capped at 274.9 s.
        (
            limits((1_000_000, 4_294_967_295), (1_000_000, 4_294_967_295)),
            "capped",
        ),
    ] {
        let conf = a.conf(NET, l);
        let out = a.run(&host, "ADD", &conf);
        out.assert_ok();
        let ifb = ifb_name(NET, &a.cid);
        for dev in [a.veth.as_str(), ifb.as_str()] {
            let (rate, burst) = root_tbf(&host, dev).unwrap();
            match want {
                "raised" => assert!(burst >= 1514, "{dev}: {burst}"),
                _ => {
                    assert_eq!(rate, 125_000);
                    assert!(burst.abs_diff(125_000 * 274) < 125_000, "{dev}: {burst}");
                }
            }
        }
        assert!(out.stderr.contains("WARN"), "{}", out.stderr);
        a.run(&host, "CHECK", &conf).assert_ok();
        a.run(&host, "DEL", &conf).assert_ok();
    }
}
